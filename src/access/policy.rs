//! The one policy function: who may do what on which project. Pure: no I/O, no clock.

use super::Permission;
use super::roles::Grants;
use crate::domain::ProjectId;
use crate::ledger::entry::AuthMethod;

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A project's service account, authenticated by one of its API tokens.
    ServiceAccount {
        /// The account's id.
        id: String,
        /// The account's user name.
        name: String,
        /// The project it belongs to.
        project: ProjectId,
        /// The token it used.
        token_id: String,
        /// What it holds: its own project's ingest and read, and stored grants.
        grants: Grants,
    },
    /// A client that presented a project's public ingestion token (as Mixpanel SDKs do).
    ProjectToken {
        /// The project the token names.
        project: ProjectId,
    },
    /// A person, through a session or one of their personal tokens.
    User {
        /// The person's id.
        id: String,
        /// How they authenticated: OIDC, the break-glass password, or a personal token.
        method: AuthMethod,
        /// The session's public id or the token's id.
        credential: String,
        /// Whether 2-step verification was passed.
        second_factor: bool,
        /// What they hold as of this request.
        grants: Grants,
    },
}

impl Subject {
    /// Who this is in the operations log: a kind and an id, never a name or an e-mail.
    pub fn log_name(&self) -> String {
        match self {
            Self::ServiceAccount { id, .. } => format!("service_account:{id}"),
            Self::ProjectToken { project } => format!("project_token:{}", project.as_str()),
            Self::User { id, .. } => format!("user:{id}"),
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with the reason given to the caller and to the audit log.
    Deny(String),
}

/// Decides whether `subject` holds `permission` on `project`. Default deny; a deny grant
/// wins over any allow.
pub fn decide(subject: &Subject, permission: Permission, project: &ProjectId) -> Decision {
    let allowed = match subject {
        Subject::ServiceAccount { grants, .. } | Subject::User { grants, .. } => {
            grants.allows(permission, project)
        }
        // A public ingestion token only ever sends events to its own project.
        Subject::ProjectToken { project: home } => {
            home == project && permission == Permission::EventsIngest
        }
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "missing permission {permission} on project {project}"
        ))
    }
}

/// Decides whether `subject` holds `permission` on every project, as service-wide acts need.
pub fn decide_global(subject: &Subject, permission: Permission) -> Decision {
    match subject {
        Subject::User { grants, .. } | Subject::ServiceAccount { grants, .. }
            if grants.allows_everywhere(permission) =>
        {
            Decision::Allow
        }
        _ => Decision::Deny(format!(
            "missing permission {permission} on every project (*)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    fn account(project: &str) -> Subject {
        Subject::ServiceAccount {
            id: "sa".into(),
            name: "shop-service".into(),
            project: p(project),
            token_id: "t".into(),
            grants: Grants::service_account(&p(project)),
        }
    }

    #[test]
    fn service_accounts_read_and_ingest_only_their_project() {
        let sa = account("shop");
        assert_eq!(
            decide(&sa, Permission::EventsRead, &p("shop")),
            Decision::Allow
        );
        assert_eq!(
            decide(&sa, Permission::EventsIngest, &p("shop")),
            Decision::Allow
        );
        assert!(matches!(
            decide(&sa, Permission::EventsRead, &p("bank")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            decide(&sa, Permission::AuditExport, &p("shop")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn public_tokens_only_ingest() {
        let t = Subject::ProjectToken { project: p("shop") };
        assert_eq!(
            decide(&t, Permission::EventsIngest, &p("shop")),
            Decision::Allow
        );
        for perm in Permission::ALL
            .into_iter()
            .filter(|x| *x != Permission::EventsIngest)
        {
            assert!(
                matches!(decide(&t, perm, &p("shop")), Decision::Deny(_)),
                "{perm}"
            );
        }
    }
}
