//! Built-in roles and the grants a person holds. Pure: the caller loads groups and mappings.

use serde::Serialize;

use super::Permission;
use crate::config::GroupRoleSettings;
use crate::domain::ProjectId;

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
        permissions: &[P::SubjectsExport, P::SubjectsErase, P::AuditRead],
    },
    Role {
        name: "ingest_service",
        permissions: &[P::EventsIngest],
    },
];

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

/// Why a person holds a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// Membership of an identity-provider group.
    Group(String),
    /// Being the break-glass administrator.
    BreakGlass,
}

/// One role on one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The role's name.
    pub role: &'static str,
    /// Where it applies (`*` is every project).
    pub project: String,
    /// Why it is held.
    pub source: GrantSource,
    #[serde(skip)]
    scope: Scope,
    #[serde(skip)]
    permissions: &'static [Permission],
}

/// Everything a person holds, as of the request being served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// The grants that `groups` carry under `mappings`.
    pub fn from_groups(groups: &[String], mappings: &[GroupRoleSettings]) -> Self {
        let mut grants = Vec::new();
        for m in mappings {
            let Some(role) = Role::builtin(&m.role) else {
                continue;
            };
            if !groups.contains(&m.group) {
                continue;
            }
            let scope = if m.project == "*" {
                Scope::All
            } else {
                match ProjectId::parse(&m.project) {
                    Ok(p) => Scope::Project(p),
                    Err(_) => continue,
                }
            };
            grants.push(Grant {
                role: role.name,
                project: m.project.clone(),
                source: GrantSource::Group(m.group.clone()),
                scope,
                permissions: role.permissions,
            });
        }
        Self(grants)
    }

    /// The break-glass administrator's grant.
    pub fn break_glass() -> Self {
        Self(vec![Grant {
            role: BREAK_GLASS.name,
            project: "*".into(),
            source: GrantSource::BreakGlass,
            scope: Scope::All,
            permissions: BREAK_GLASS.permissions,
        }])
    }

    /// Whether some grant allows `permission` on `project`.
    pub fn allows(&self, permission: Permission, project: &ProjectId) -> bool {
        self.0
            .iter()
            .any(|g| g.scope.covers(project) && g.permissions.contains(&permission))
    }

    /// Whether some grant on every project (`*`) allows `permission`: what service-wide
    /// acts (people, keys) need.
    pub fn allows_everywhere(&self, permission: Permission) -> bool {
        self.0
            .iter()
            .any(|g| g.scope == Scope::All && g.permissions.contains(&permission))
    }

    /// Whether some grant reads event or profile data anywhere.
    pub fn reads_data(&self) -> bool {
        self.0.iter().any(|g| {
            g.permissions.iter().any(|p| {
                matches!(
                    p,
                    P::EventsRead
                        | P::EventsReadSensitive
                        | P::EventsExport
                        | P::ProfilesRead
                        | P::SubjectsExport
                )
            })
        })
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
    fn no_builtin_role_reads_sensitive_properties() {
        for role in BUILTIN.iter().chain([&BREAK_GLASS]) {
            assert!(
                !role.permissions.contains(&P::EventsReadSensitive),
                "{}",
                role.name
            );
        }
    }

    #[test]
    fn break_glass_reads_no_data() {
        let g = Grants::break_glass();
        assert!(g.allows(P::UsersAdmin, &p("shop")));
        assert!(!g.reads_data());
    }
}
