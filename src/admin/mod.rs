//! Administration as services: one implementation of each operation, called by the routes and
//! by the CLI alike. Each checks who acts (their capability, and separation of duties) once,
//! and writes its audit entry once, before the change it records.

pub mod grants;
pub mod people;
pub mod projects;
pub mod properties;
pub mod requests;
pub mod review;
pub mod roles;
pub mod tokens;

use serde_json::Value;

use crate::access::{Principal, Requirement, perm};
use crate::audit::{AuditLog, RequestContext};
use crate::clock::Clock;
use crate::config::AccessSettings;
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::SharedStore;

/// What the administration services work with.
pub struct Admin<'a> {
    /// The database.
    pub store: &'a SharedStore,
    /// The log each change is written to first.
    pub audit: &'a AuditLog,
    /// The time.
    pub clock: &'a dyn Clock,
    /// Grant rules: review cadence, second approvals.
    pub access: &'a AccessSettings,
    /// Days a deleted project can be restored (`retention.project_grace_days`).
    pub project_grace_days: i64,
}

/// Who administers, and on what authority.
#[derive(Clone, Copy)]
pub enum Administrator<'a> {
    /// A person over the API: every act needs `roles:assign` on its scope, checked (and a
    /// refusal logged) by the service, and separation of duties applies.
    Person {
        /// The request, for the log.
        ctx: &'a RequestContext,
        /// Who they are and what they hold.
        principal: &'a Principal,
    },
    /// The server's operator at its command line. Whoever runs it holds the keys and the
    /// database, so the operator's right stands: their grants start active (that is how the
    /// first owners are named), and they may approve or reject pending grants. The same
    /// checks of the grant itself apply (roles exist, expiry bounds, the break-glass
    /// account's limits), and every act is logged as `cli`.
    Operator,
}

impl Administrator<'_> {
    /// Checks that a person holds `P` on `scope` (a project id or `*`), logging a refusal
    /// as `action`. The operator needs no permission.
    pub async fn may<P: Requirement>(
        &self,
        audit: &AuditLog,
        action: Action,
        scope: &str,
    ) -> Result<(), AppError> {
        let Self::Person { ctx, principal } = self else {
            return Ok(());
        };
        if scope == "*" {
            audit.authorize_global::<P>(ctx, principal, action).await?;
        } else {
            let p = ProjectId::parse(scope).map_err(|e| AppError::Unprocessable(e.0))?;
            audit.authorize::<P>(ctx, principal, &p, action).await?;
        }
        Ok(())
    }

    /// Checks `roles:assign` on `scope`, logging a refusal.
    pub async fn may_assign(&self, audit: &AuditLog, scope: &str) -> Result<(), AppError> {
        self.may::<perm::RolesAssign>(audit, Action::GrantChange, scope)
            .await
    }

    /// Writes the entry of a change on `scope` under `P`, before the change is made (fails
    /// closed).
    async fn record_as<P: Requirement>(
        &self,
        audit: &AuditLog,
        action: Action,
        scope: &str,
        details: Value,
    ) -> Result<(), AppError> {
        let project = (scope != "*")
            .then(|| ProjectId::parse(scope))
            .transpose()
            .map_err(|e| AppError::Unprocessable(e.0))?;
        match (self, project) {
            (Self::Operator, project) => {
                audit
                    .record_cli(action, project.as_ref(), 0, details)
                    .await?;
            }
            (Self::Person { ctx, principal }, None) => {
                let auth = crate::access::authorize_global::<P>(principal)?;
                audit.record_global(ctx, &auth, action, details).await?;
            }
            (Self::Person { ctx, principal }, Some(p)) => {
                let auth = crate::access::authorize::<P>(principal, &p)?;
                audit.record(ctx, &auth, action, 0, details, vec![]).await?;
            }
        }
        Ok(())
    }

    /// Writes the entry of an act refused for a reason of its own (not a missing permission)
    /// by a person holding `P` on `project`; the operator's refusals are not logged.
    async fn refused_act<P: Requirement>(
        &self,
        audit: &AuditLog,
        action: Action,
        project: &ProjectId,
        details: Value,
    ) -> Result<(), AppError> {
        if let Self::Person { ctx, principal } = self {
            let auth = crate::access::authorize::<P>(principal, project)?;
            audit.refused_act(ctx, &auth, action, details).await?;
        }
        Ok(())
    }

    /// Writes a grant change's entry (see [`Self::record_as`]).
    async fn record(&self, audit: &AuditLog, scope: &str, details: Value) -> Result<(), AppError> {
        self.record_as::<perm::RolesAssign>(audit, Action::GrantChange, scope, details)
            .await
    }

    /// The acting person's id, or `cli` for the operator.
    fn id(&self) -> Option<&str> {
        match self {
            Self::Person { principal, .. } => match principal.subject() {
                crate::access::Subject::User { id, .. } => Some(id),
                _ => None,
            },
            Self::Operator => None,
        }
    }

    /// Logs a refusal by separation of duties (people only) and returns it as 403.
    async fn refuse(&self, audit: &AuditLog, reason: String) -> AppError {
        if let Self::Person { ctx, principal } = self
            && let Err(e) = audit
                .refused(ctx, crate::audit::actor_of(principal.subject()), &reason)
                .await
        {
            return e;
        }
        AppError::Forbidden(reason)
    }
}
