//! Built-in roles and the grants a person holds. Pure: the caller loads groups and mappings.

use std::borrow::Cow;

use serde::Serialize;

use super::Permission;
use crate::config::GroupRoleSettings;
pub use crate::domain::{
    BREAK_GLASS, BUILTIN, CustomRole, Effect, GrantRecord, GrantStatus, Role, RoleBook,
    SERVICE_ACCOUNT, SubjectKind,
};
use crate::domain::{ProjectId, Timestamp};

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

/// What a person holds now: the break-glass account's fixed role, or the roles their
/// identity-provider groups map to; and the active stored grants to them or to their groups
/// (others in `stored` are ignored). The break-glass account never holds a data role, even
/// one granted to it otherwise.
pub fn person_grants(
    id: &str,
    break_glass: bool,
    groups: &[String],
    stored: &[GrantRecord],
    roles: &RoleBook,
    access: &crate::config::AccessSettings,
    now: Timestamp,
) -> Grants {
    let base = if break_glass {
        Grants::break_glass()
    } else {
        let lapse_at = access.lapse_overdue_grants.then_some(now);
        Grants::from_groups_at(groups, &access.group_roles, lapse_at)
    };
    let theirs: Vec<GrantRecord> = stored
        .iter()
        .filter(|g| {
            g.status == GrantStatus::Active
                && match g.subject_kind {
                    SubjectKind::User => g.subject == id,
                    SubjectKind::Group => groups.contains(&g.subject),
                    SubjectKind::ServiceAccount => false,
                }
        })
        .cloned()
        .collect();
    let grants = base.with_stored(&theirs, roles, now, access.lapse_overdue_grants);
    if break_glass {
        grants.without_data()
    } else {
        grants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Permission as P;

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
