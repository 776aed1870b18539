//! The role catalogue: the built-in roles, the custom ones administrators define, and the
//! permissions each carries. Data, no decisions: those are in `access`.

use std::borrow::Cow;

use serde::Serialize;

use super::Permission;

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
            P::AuditInvestigate,
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
        permissions: &[P::AuditRead, P::AuditExport, P::AuditInvestigate],
    },
    Role {
        name: "data_protection_officer",
        permissions: &[
            P::SubjectsExport,
            P::SubjectsErase,
            P::SubjectsConsent,
            P::AuditRead,
            P::AuditInvestigate,
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
