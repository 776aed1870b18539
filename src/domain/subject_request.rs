//! A data-subject request as a value: its kind, compliance type and job state, in the shape of
//! Mixpanel's GDPR/CCPA API, plus the checks that decide what may happen to it next.

use serde::{Deserialize, Serialize};

use crate::domain::{ProjectId, Timestamp};

/// Most distinct_ids one request may name, as in Mixpanel's API.
pub const MAX_SUBJECTS: usize = 2000;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),* }
        impl $name {
            /// The stored and shown name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
            /// The value with this name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }
    };
}

text_enum!(
    /// What a request does to the people it names.
    RequestKind {
        /// Access and portability: everything stored about them, as one JSON document.
        Export = "export",
        /// Delete their events and profiles.
        Erase = "erase",
        /// Delete one named property from their events and profiles.
        EraseProperty = "erase_property",
        /// Replace their distinct_id with a random one and drop chosen properties.
        Anonymize = "anonymize",
    }
);

text_enum!(
    /// The law the request is made under (Mixpanel's `compliance_type`).
    ComplianceType {
        /// The EU General Data Protection Regulation.
        Gdpr = "GDPR",
        /// The California Consumer Privacy Act.
        Ccpa = "CCPA",
    }
);

text_enum!(
    /// Where a request's job is, in Mixpanel's vocabulary.
    JobState {
        /// Accepted, waiting for the worker (or for a second approval).
        Pending = "PENDING",
        /// The worker is finding the data it concerns.
        Staging = "STAGING",
        /// The work has begun: it can no longer be cancelled.
        Started = "STARTED",
        /// Done.
        Success = "SUCCESS",
        /// Stopped by an error; `error` says which.
        Failure = "FAILURE",
        /// Cancelled before it started.
        Revoked = "REVOKED",
        /// Nothing was stored about any of the people named.
        NotFound = "NOT_FOUND",
    }
);

impl JobState {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failure | Self::Revoked | Self::NotFound
        )
    }

    /// The states from which a request can still be cancelled.
    pub const CANCELLABLE: [JobState; 2] = [Self::Pending, Self::Staging];
}

impl RequestKind {
    /// Whether the request changes stored data (and so may need a second approval).
    pub fn erases(self) -> bool {
        self != Self::Export
    }
}

/// A stored request.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRequest {
    /// A random id (Mixpanel's `task_id`).
    pub id: String,
    /// The project it concerns.
    pub project: ProjectId,
    /// What it does.
    pub kind: RequestKind,
    /// GDPR or CCPA.
    pub compliance_type: ComplianceType,
    /// Its job state.
    pub state: JobState,
    /// Who asked, as `kind:id` of the audit actor.
    pub requested_by: String,
    /// Why: a ticket reference.
    pub reason: String,
    /// How many distinct_ids it names.
    pub subject_count: u64,
    /// The property to delete (`erase_property`).
    pub property: Option<String>,
    /// The properties to drop (`anonymize`).
    pub drop_properties: Vec<String>,
    /// Whether a second person must approve it before it runs.
    pub needs_approval: bool,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// When it was approved.
    pub approved_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When its state last changed.
    pub updated_at: Timestamp,
    /// When it reached a final state.
    pub completed_at: Option<Timestamp>,
    /// Events exported, deleted or changed.
    pub events_affected: u64,
    /// Profiles exported, deleted or changed.
    pub profiles_affected: u64,
    /// Why it failed.
    pub error: Option<String>,
}

impl SubjectRequest {
    /// Whether the worker may take it: approved if it must be, and not over.
    pub fn runnable(&self) -> bool {
        !self.state.is_final() && (!self.needs_approval || self.approved_by.is_some())
    }
}

/// The properties every anonymisation drops, besides those asked for: they identify a person
/// or a device as surely as the distinct_id does.
pub const IDENTIFYING_PROPERTIES: [&str; 4] = ["$user_id", "$device_id", "$email", "$ip"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in [
            JobState::Pending,
            JobState::Staging,
            JobState::Started,
            JobState::Success,
            JobState::Failure,
            JobState::Revoked,
            JobState::NotFound,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ComplianceType::parse("CCPA"), Some(ComplianceType::Ccpa));
        assert_eq!(RequestKind::parse("gdpr"), None);
    }

    #[test]
    fn only_unstarted_jobs_cancel_and_only_approved_ones_run() {
        assert!(JobState::CANCELLABLE.contains(&JobState::Staging));
        assert!(!JobState::CANCELLABLE.contains(&JobState::Started));
        assert!(JobState::NotFound.is_final() && !JobState::Started.is_final());
        let mut r = SubjectRequest {
            id: "r".into(),
            project: ProjectId::parse("shop").unwrap(),
            kind: RequestKind::Erase,
            compliance_type: ComplianceType::Gdpr,
            state: JobState::Pending,
            requested_by: "user:a".into(),
            reason: "T-1".into(),
            subject_count: 1,
            property: None,
            drop_properties: vec![],
            needs_approval: true,
            approved_by: None,
            approved_at: None,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
            completed_at: None,
            events_affected: 0,
            profiles_affected: 0,
            error: None,
        };
        assert!(!r.runnable());
        r.approved_by = Some("user:b".into());
        assert!(r.runnable());
        r.state = JobState::Revoked;
        assert!(!r.runnable());
    }
}
