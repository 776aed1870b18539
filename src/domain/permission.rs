//! The fixed catalogue of permissions, and one zero-sized type per permission so that a
//! handler's capability names, in its type, what it was authorized for.

use std::fmt;

use serde::Serialize;

/// Everything a principal can be allowed to do; routes declare exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Permission {
    /// Send events and profile updates.
    #[serde(rename = "events:ingest")]
    EventsIngest,
    /// Query and count events.
    #[serde(rename = "events:read")]
    EventsRead,
    /// See properties marked sensitive.
    #[serde(rename = "events:read_sensitive")]
    EventsReadSensitive,
    /// Bulk-export events.
    #[serde(rename = "events:export")]
    EventsExport,
    /// Read people's profiles.
    #[serde(rename = "profiles:read")]
    ProfilesRead,
    /// Export everything about one person.
    #[serde(rename = "subjects:export")]
    SubjectsExport,
    /// Erase one person's data.
    #[serde(rename = "subjects:erase")]
    SubjectsErase,
    /// Change a project's settings.
    #[serde(rename = "project:admin")]
    ProjectAdmin,
    /// Grant and revoke roles.
    #[serde(rename = "roles:assign")]
    RolesAssign,
    /// Read the audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Export the audit log.
    #[serde(rename = "audit:export")]
    AuditExport,
    /// Report who accessed one person's data (derives their pseudonym from a distinct_id).
    #[serde(rename = "audit:investigate")]
    AuditInvestigate,
    /// Rotate the log's signing key.
    #[serde(rename = "keys:rotate")]
    KeysRotate,
    /// Manage people and service accounts.
    #[serde(rename = "users:admin")]
    UsersAdmin,
    /// Mark properties as sensitive.
    #[serde(rename = "properties:classify")]
    PropertiesClassify,
    /// Record people's opt-outs and consent.
    #[serde(rename = "subjects:consent")]
    SubjectsConsent,
}

impl Permission {
    /// Every permission, in catalogue order.
    pub const ALL: [Permission; 16] = [
        Self::EventsIngest,
        Self::EventsRead,
        Self::EventsReadSensitive,
        Self::EventsExport,
        Self::ProfilesRead,
        Self::SubjectsExport,
        Self::SubjectsErase,
        Self::ProjectAdmin,
        Self::RolesAssign,
        Self::AuditRead,
        Self::AuditExport,
        Self::AuditInvestigate,
        Self::KeysRotate,
        Self::UsersAdmin,
        Self::PropertiesClassify,
        Self::SubjectsConsent,
    ];

    /// Whether a person's session must have passed 2-step verification within the last few
    /// minutes to use it (a step-up). Project settings are here because retention and
    /// deletion destroy data.
    pub fn needs_step_up(self) -> bool {
        matches!(
            self,
            Self::EventsExport
                | Self::SubjectsExport
                | Self::SubjectsErase
                | Self::ProjectAdmin
                | Self::RolesAssign
                | Self::AuditExport
                | Self::KeysRotate
                | Self::UsersAdmin
        )
    }

    /// Whether it administers the service (roles, people, keys, projects, classification):
    /// kept for people in a session, never used with a token of any kind.
    pub fn administers(self) -> bool {
        matches!(
            self,
            Self::RolesAssign
                | Self::UsersAdmin
                | Self::KeysRotate
                | Self::ProjectAdmin
                | Self::PropertiesClassify
        )
    }

    /// Whether a personal token may use it: a token proves no fresh second factor, so
    /// nothing that needs a step-up in a session, and no administration.
    pub fn personal_tokens_may(self) -> bool {
        !self.needs_step_up() && !self.administers()
    }

    /// Whether a service account's token may use it: whatever its grants allow, except
    /// administration.
    pub fn service_tokens_may(self) -> bool {
        !self.administers()
    }

    /// Whether it reveals event or profile data (what the break-glass account never holds,
    /// and what `second_factor = "data_readers"` asks a second factor for).
    pub fn reads_data(self) -> bool {
        matches!(
            self,
            Self::EventsRead
                | Self::EventsReadSensitive
                | Self::EventsExport
                | Self::ProfilesRead
                | Self::SubjectsExport
        )
    }

    /// The permission with this `area:verb` name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The `area:verb` name used in APIs, configuration and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventsIngest => "events:ingest",
            Self::EventsRead => "events:read",
            Self::EventsReadSensitive => "events:read_sensitive",
            Self::EventsExport => "events:export",
            Self::ProfilesRead => "profiles:read",
            Self::SubjectsExport => "subjects:export",
            Self::SubjectsErase => "subjects:erase",
            Self::ProjectAdmin => "project:admin",
            Self::RolesAssign => "roles:assign",
            Self::AuditRead => "audit:read",
            Self::AuditExport => "audit:export",
            Self::AuditInvestigate => "audit:investigate",
            Self::KeysRotate => "keys:rotate",
            Self::UsersAdmin => "users:admin",
            Self::PropertiesClassify => "properties:classify",
            Self::SubjectsConsent => "subjects:consent",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission as a type, so `Authorized<P>` can only come from authorizing `P`.
pub trait Requirement: Send + Sync + 'static {
    /// The permission this type stands for.
    const PERMISSION: Permission;
}

macro_rules! requirements {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("The `", stringify!($name), "` permission as a type.")]
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl Requirement for $name {
            const PERMISSION: Permission = Permission::$name;
        }
    )*};
}

/// One type per permission.
pub mod perm {
    use super::{Permission, Requirement};
    requirements!(
        EventsIngest,
        EventsRead,
        EventsReadSensitive,
        EventsExport,
        ProfilesRead,
        SubjectsExport,
        SubjectsErase,
        ProjectAdmin,
        RolesAssign,
        AuditRead,
        AuditExport,
        AuditInvestigate,
        KeysRotate,
        UsersAdmin,
        PropertiesClassify,
        SubjectsConsent,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in Permission::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
            assert!(seen.insert(p.as_str()));
        }
    }

    #[test]
    fn personal_tokens_never_carry_what_needs_a_step_up() {
        for p in Permission::ALL {
            assert!(!(p.needs_step_up() && p.personal_tokens_may()), "{p}");
        }
        assert!(!Permission::PropertiesClassify.personal_tokens_may());
        assert!(!Permission::ProjectAdmin.service_tokens_may());
        assert!(Permission::EventsRead.personal_tokens_may());
        assert!(Permission::EventsExport.service_tokens_may());
    }
}
