//! Built-in roles and the grants a person holds. Pure: the caller loads groups and mappings.

use std::borrow::Cow;

use serde::Serialize;

use super::Permission;
use crate::config::GroupRoleSettings;
use crate::domain::{ProjectId, Timestamp};

/// A named set of permissions.
#[derive(Debug, PartialEq, Eq)]
pub struct Role {
    /// The name used in configuration and APIs.
    pub name: &'static str,
    /// What it allows.
    pub permissions: &'static [Permission],
}

use Permission as P;

/// The built-in roles: Mixpanel's four, plus auditor, data-protection officer and ingest.
/// No built-in role reads sensitive properties.
pub const BUILTIN: &[Role] = &[
    Role {
        name: "owner",
        permissions: &[
            P::EventsIngest,
            P::EventsRead,
            P::EventsExport,
            P::ProfilesRead,
            P::SubjectsExport,
            P::SubjectsErase,
            P::ProjectAdmin,
            P::RolesAssign,
            P::AuditRead,
            P::AuditExport,
            P::KeysRotate,
            P::UsersAdmin,
            P::PropertiesClassify,
            P::SubjectsConsent,
        ],
    },
    Role {
        name: "admin",
        permissions: &[
            P::EventsIngest,
            P::EventsRead,
            P::EventsExport,
            P::ProfilesRead,
            P::ProjectAdmin,
            P::RolesAssign,
            P::UsersAdmin,
            P::AuditRead,
            P::PropertiesClassify,
            P::SubjectsConsent,
        ],
    },
    Role {
        name: "analyst",
        permissions: &[P::EventsRead, P::EventsExport, P::ProfilesRead],
    },
    Role {
        name: "consumer",
        permissions: &[P::EventsRead],
    },
    Role {
        name: "auditor",
        permissions: &[P::AuditRead, P::AuditExport],
    },
    Role {
        name: "data_protection_officer",
        permissions: &[
            P::SubjectsExport,
            P::SubjectsErase,
            P::SubjectsConsent,
            P::AuditRead,
        ],
    },
    Role {
        name: "ingest_service",
        permissions: &[P::EventsIngest, P::SubjectsConsent],
    },
    // Held beside a reading role, and only by explicit grant: reveals sensitive properties.
    Role {
        name: "sensitive_reader",
        permissions: &[P::EventsReadSensitive],
    },
];

/// What a service account holds on its own project: ingest and read, as Mixpanel's
/// service accounts do, and relaying people's opt-outs and consent (which SDKs also send). Stored deny grants can narrow it.
pub const SERVICE_ACCOUNT: Role = Role {
    name: "service_account",
    permissions: &[
        P::EventsIngest,
        P::EventsRead,
        P::ProfilesRead,
        P::SubjectsConsent,
    ],
};

/// What the break-glass administrator holds on every project: enough to repair access when
/// the identity provider is down, and no event data.
pub const BREAK_GLASS: Role = Role {
    name: "break_glass",
    permissions: &[P::UsersAdmin, P::RolesAssign, P::ProjectAdmin, P::AuditRead],
};

impl Role {
    /// The built-in role with this name.
    pub fn builtin(name: &str) -> Option<&'static Role> {
        BUILTIN.iter().find(|r| r.name == name)
    }
}

/// A role an administrator defined from the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomRole {
    /// Its name (never a built-in one).
    pub name: String,
    /// What it allows.
    pub permissions: Vec<Permission>,
    /// What it is for.
    pub description: String,
}

/// Every grantable role: the built-in ones and the custom ones, as of this request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleBook {
    custom: Vec<CustomRole>,
}

impl RoleBook {
    /// The built-in roles and these custom ones.
    pub fn new(custom: Vec<CustomRole>) -> Self {
        Self { custom }
    }

    /// The permissions of the role called `name`, if there is one.
    pub fn permissions(&self, name: &str) -> Option<Cow<'static, [Permission]>> {
        if let Some(r) = Role::builtin(name) {
            return Some(Cow::Borrowed(r.permissions));
        }
        self.custom
            .iter()
            .find(|r| r.name == name)
            .map(|r| Cow::Owned(r.permissions.clone()))
    }

    /// Whether granting role `name` needs a second approval: owner, and any role carrying
    /// `roles:assign` or `keys:rotate`.
    pub fn is_powerful(&self, name: &str) -> bool {
        name == "owner"
            || self.permissions(name).is_some_and(|ps| {
                ps.iter()
                    .any(|p| matches!(p, P::RolesAssign | P::KeysRotate))
            })
    }

    /// The custom roles.
    pub fn custom(&self) -> &[CustomRole] {
        &self.custom
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Scope {
    /// One project.
    Project(ProjectId),
    /// Every project (`*`).
    All,
}

impl Scope {
    fn covers(&self, project: &ProjectId) -> bool {
        match self {
            Self::Project(p) => p == project,
            Self::All => true,
        }
    }
}

/// Why a grant is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// Membership of an identity-provider group, mapped in configuration.
    Group(String),
    /// A stored grant (to the person, one of their groups, or a service account).
    Grant(String),
    /// Being the break-glass administrator.
    BreakGlass,
    /// What every service account holds on its own project.
    ServiceAccount,
}

/// Allow a role, or deny one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The role's permissions are allowed.
    Allow,
    /// The permission is denied, whatever else allows it.
    Deny,
}

/// The life of a stored grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Waiting for a second administrator's approval: inert.
    Pending,
    /// In force (until its expiry, if any).
    Active,
    /// Refused by the approver.
    Rejected,
    /// Revoked.
    Revoked,
}

impl GrantStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Active, Self::Rejected, Self::Revoked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Who a stored grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person, by id.
    User,
    /// An identity-provider group, by name.
    Group,
    /// A service account, by id.
    ServiceAccount,
}

impl SubjectKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::ServiceAccount => "service_account",
        }
    }

    /// The kind with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::Group, Self::ServiceAccount]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A stored grant, as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The id.
    pub id: String,
    /// Who it is for.
    pub subject_kind: SubjectKind,
    /// The person's id, the group's name or the service account's id.
    pub subject: String,
    /// Allow a role or deny a permission.
    pub effect: Effect,
    /// The role, for an allow grant.
    pub role: Option<String>,
    /// The permission, for a deny grant.
    pub permission: Option<Permission>,
    /// A project id, or `*`.
    pub project: String,
    /// Why it was granted (a ticket, a sentence).
    pub reason: String,
    /// Who granted it (a person's id, or `cli`).
    pub granted_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working on its own.
    pub expires_at: Option<Timestamp>,
    /// Pending, active, rejected or revoked.
    pub status: GrantStatus,
    /// Who approved, rejected or revoked it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// How often it must be reviewed, in days.
    pub review_every_days: Option<i64>,
    /// The last review.
    pub reviewed_at: Option<Timestamp>,
    /// Set while locked.
    pub locked_at: Option<Timestamp>,
}

impl GrantRecord {
    /// Whether it is in force at `now`: active, not expired, not locked, and (when overdue
    /// grants lapse) not overdue for review.
    pub fn in_force(&self, now: Timestamp, lapse_overdue: bool) -> bool {
        self.status == GrantStatus::Active
            && self.expires_at.is_none_or(|e| now < e)
            && self.locked_at.is_none()
            // A deny never lapses for want of a review: that would widen access.
            && !(lapse_overdue && self.effect == Effect::Allow && self.review_overdue(now))
    }

    /// When its next review is due, if it has a cadence.
    pub fn review_due(&self) -> Option<Timestamp> {
        let last = self
            .reviewed_at
            .or(self.decided_at)
            .unwrap_or(self.created_at);
        self.review_every_days
            .map(|d| Timestamp::from_millis(last.millis() + d * 86_400_000))
    }

    /// Whether its review is overdue at `now`.
    pub fn review_overdue(&self, now: Timestamp) -> bool {
        self.status == GrantStatus::Active && self.review_due().is_some_and(|due| now >= due)
    }

    /// The permissions it allows (empty for a deny grant or an unknown role).
    pub fn permissions(&self, roles: &RoleBook) -> Cow<'static, [Permission]> {
        match (
            self.effect,
            self.role.as_deref().and_then(|r| roles.permissions(r)),
        ) {
            (Effect::Allow, Some(permissions)) => permissions,
            _ => Cow::Borrowed(&[]),
        }
    }

    /// Whether it carries the most powerful permissions, which need a second approval.
    pub fn is_powerful(&self, roles: &RoleBook) -> bool {
        self.effect == Effect::Allow && self.role.as_deref().is_some_and(|r| roles.is_powerful(r))
    }
}

/// One role (or one denied permission) on one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The role's name, for an allow.
    pub role: Option<String>,
    /// The permission denied, for a deny.
    pub deny: Option<Permission>,
    /// Where it applies (`*` is every project).
    pub project: String,
    /// Why it is held.
    pub source: GrantSource,
    /// When it stops working on its own.
    pub expires_at: Option<String>,
    #[serde(skip)]
    scope: Scope,
    #[serde(skip)]
    permissions: Cow<'static, [Permission]>,
}

fn scope_of(project: &str) -> Option<Scope> {
    if project == "*" {
        Some(Scope::All)
    } else {
        ProjectId::parse(project).ok().map(Scope::Project)
    }
}

/// Everything a principal holds, as of the request being served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// The grants that `groups` carry under `mappings` (those overdue for review lapse when
    /// `lapse_overdue` is given the time).
    pub fn from_groups(groups: &[String], mappings: &[GroupRoleSettings]) -> Self {
        Self::from_groups_at(groups, mappings, None)
    }

    /// As `from_groups`, dropping mappings whose `review_by` is past at `lapse_at`.
    pub fn from_groups_at(
        groups: &[String],
        mappings: &[GroupRoleSettings],
        lapse_at: Option<Timestamp>,
    ) -> Self {
        let mut grants = Self::default();
        let overdue = |m: &GroupRoleSettings| {
            lapse_at.is_some_and(|now| {
                m.review_by
                    .as_deref()
                    .and_then(|t| Timestamp::parse(t).ok())
                    .is_some_and(|by| now >= by)
            })
        };
        // Configuration names built-in roles only (checked at start-up).
        let builtin = RoleBook::default();
        for m in mappings
            .iter()
            .filter(|m| groups.contains(&m.group) && !overdue(m))
        {
            grants.allow(
                &builtin,
                &m.role,
                &m.project,
                GrantSource::Group(m.group.clone()),
                None,
            );
        }
        grants
    }

    fn allow(
        &mut self,
        roles: &RoleBook,
        role: &str,
        project: &str,
        source: GrantSource,
        expires: Option<Timestamp>,
    ) {
        let (Some(permissions), Some(scope)) = (roles.permissions(role), scope_of(project)) else {
            return;
        };
        self.0.push(Grant {
            role: Some(role.to_owned()),
            deny: None,
            project: project.to_owned(),
            source,
            expires_at: expires.map(Timestamp::to_rfc3339),
            scope,
            permissions,
        });
    }

    /// Adds the stored grants in force at `now` (overdue ones lapse if `lapse_overdue`).
    pub fn with_stored(
        mut self,
        stored: &[GrantRecord],
        roles: &RoleBook,
        now: Timestamp,
        lapse_overdue: bool,
    ) -> Self {
        for g in stored.iter().filter(|g| g.in_force(now, lapse_overdue)) {
            let source = GrantSource::Grant(g.id.clone());
            match (g.effect, &g.role, g.permission) {
                (Effect::Allow, Some(role), _) => {
                    self.allow(roles, role, &g.project, source, g.expires_at);
                }
                (Effect::Deny, _, Some(permission)) => {
                    if let Some(scope) = scope_of(&g.project) {
                        self.0.push(Grant {
                            role: None,
                            deny: Some(permission),
                            project: g.project.clone(),
                            source,
                            expires_at: g.expires_at.map(Timestamp::to_rfc3339),
                            scope,
                            permissions: Cow::Borrowed(&[]),
                        });
                    }
                }
                _ => {}
            }
        }
        self
    }

    /// The break-glass administrator's grant.
    pub fn break_glass() -> Self {
        let mut g = Self::default();
        g.0.push(Grant {
            role: Some(BREAK_GLASS.name.to_owned()),
            deny: None,
            project: "*".into(),
            source: GrantSource::BreakGlass,
            expires_at: None,
            scope: Scope::All,
            permissions: Cow::Borrowed(BREAK_GLASS.permissions),
        });
        g
    }

    /// What a service account holds on its own project before any stored grant.
    pub fn service_account(project: &ProjectId) -> Self {
        let mut g = Self::default();
        g.0.push(Grant {
            role: Some(SERVICE_ACCOUNT.name.to_owned()),
            deny: None,
            project: project.to_string(),
            source: GrantSource::ServiceAccount,
            expires_at: None,
            scope: Scope::Project(project.clone()),
            permissions: Cow::Borrowed(SERVICE_ACCOUNT.permissions),
        });
        g
    }

    fn denied(&self, permission: Permission, project: Option<&ProjectId>) -> bool {
        self.0.iter().any(|g| {
            g.deny == Some(permission)
                && match project {
                    Some(p) => g.scope.covers(p),
                    // A service-wide act is refused by a deny anywhere.
                    None => true,
                }
        })
    }

    /// Whether some grant allows `permission` on `project` and no deny refuses it.
    pub fn allows(&self, permission: Permission, project: &ProjectId) -> bool {
        !self.denied(permission, Some(project))
            && self
                .0
                .iter()
                .any(|g| g.scope.covers(project) && g.permissions.contains(&permission))
    }

    /// Whether a grant on every project (`*`) allows `permission` and no deny refuses it
    /// anywhere: what service-wide acts (people, keys, the whole log) need.
    pub fn allows_everywhere(&self, permission: Permission) -> bool {
        !self.denied(permission, None)
            && self
                .0
                .iter()
                .any(|g| g.scope == Scope::All && g.permissions.contains(&permission))
    }

    /// Whether some grant reads event or profile data anywhere.
    pub fn reads_data(&self) -> bool {
        self.0
            .iter()
            .any(|g| g.permissions.iter().any(|p| p.reads_data()))
    }

    /// The same grants without any permission that reads data: what the break-glass account
    /// holds, whatever it was granted.
    pub fn without_data(mut self) -> Self {
        for g in &mut self.0 {
            if g.permissions.iter().any(|p| p.reads_data()) {
                g.permissions = Cow::Owned(
                    g.permissions
                        .iter()
                        .copied()
                        .filter(|p| !p.reads_data())
                        .collect(),
                );
            }
        }
        self
    }

    /// The grants, for display.
    pub fn list(&self) -> &[Grant] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(group: &str, role: &str, project: &str) -> GroupRoleSettings {
        GroupRoleSettings {
            group: group.into(),
            role: role.into(),
            project: project.into(),
            review_by: None,
        }
    }

    fn p(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    #[test]
    fn groups_carry_their_roles_on_their_projects_only() {
        let maps = [
            mapping("analysts", "analyst", "shop"),
            mapping("auditors", "auditor", "*"),
        ];
        let g = Grants::from_groups(&["analysts".into()], &maps);
        assert!(g.allows(P::EventsRead, &p("shop")));
        assert!(!g.allows(P::EventsRead, &p("bank")));
        assert!(!g.allows(P::AuditExport, &p("shop")));
        assert!(g.reads_data());
        let a = Grants::from_groups(&["auditors".into()], &maps);
        assert!(a.allows(P::AuditExport, &p("bank")));
        assert!(!a.allows(P::EventsRead, &p("bank")));
        assert!(!a.reads_data());
        assert_eq!(
            Grants::from_groups(&["other".into()], &maps),
            Grants::default()
        );
    }

    #[test]
    fn only_the_sensitive_reader_role_reads_sensitive_properties() {
        // It reads nothing by itself: it is held beside a reading role, by explicit grant.
        for role in BUILTIN.iter().chain([&BREAK_GLASS, &SERVICE_ACCOUNT]) {
            let reads = role.permissions.contains(&P::EventsReadSensitive);
            assert_eq!(reads, role.name == "sensitive_reader", "{}", role.name);
        }
        assert_eq!(
            Role::builtin("sensitive_reader").unwrap().permissions,
            &[P::EventsReadSensitive]
        );
    }

    #[test]
    fn break_glass_reads_no_data() {
        let g = Grants::break_glass();
        assert!(g.allows(P::UsersAdmin, &p("shop")));
        assert!(!g.reads_data());
    }
}
