//! Permissions, principals and the one `authorize` call every handler makes before data.
//!
//! A handler gets at data only through an [`Authorized<P>`], which only [`authorize`] makes.

mod duties;
mod policy;
mod principal;
mod requests;
mod roles;

use std::marker::PhantomData;

pub use crate::domain::{Permission, Requirement, perm};
pub use duties::{
    Actor as DutyActor, Change as GrantChange, check_approval, check_break_glass_grant,
    check_change, check_new_grant,
};
pub use policy::{Decision, Subject, decide, decide_global};
pub use principal::{Access, AccountNeed, Principal};
pub use requests::{
    AccessRequest, RequestStatus, approvals_needed, check_ask, check_request_approval,
};
pub use roles::{
    BREAK_GLASS, BUILTIN, CustomRole, Effect, Grant, GrantRecord, GrantSource, GrantStatus, Grants,
    Role, RoleBook, SERVICE_ACCOUNT, SubjectKind, person_grants,
};

use crate::domain::ProjectId;

/// Why [`authorize`] gave no capability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The policy refuses: the reason, for the caller and the log.
    #[error("{0}")]
    Policy(String),
    /// The handler asked for a permission its route does not declare: a bug, not a denial.
    #[error("handler authorized {asked} but its route declares {declared}")]
    Undeclared {
        /// What the handler asked for.
        asked: Permission,
        /// What its route declares.
        declared: Permission,
    },
}

/// Proof that `authorize` allowed permission `P` on one project for one principal.
#[derive(Debug, Clone)]
pub struct Authorized<P: Requirement> {
    principal: Principal,
    project: ProjectId,
    _permission: PhantomData<P>,
}

impl<P: Requirement> Authorized<P> {
    /// The project the permission holds on.
    pub fn project(&self) -> &ProjectId {
        &self.project
    }

    /// Who was authorized.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// Proof that `authorize_global` allowed permission `P` on every project for one principal.
#[derive(Debug, Clone)]
pub struct AuthorizedGlobal<P: Requirement> {
    principal: Principal,
    _permission: PhantomData<P>,
}

impl<P: Requirement> AuthorizedGlobal<P> {
    /// Who was authorized.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

fn check_declared<P: Requirement>(principal: &Principal) -> Result<(), Denied> {
    if principal.route_permission() != P::PERMISSION {
        return Err(Denied::Undeclared {
            asked: P::PERMISSION,
            declared: principal.route_permission(),
        });
    }
    Ok(())
}

/// Checks that the route declared `P` and that the policy allows it on every project.
pub fn authorize_global<P: Requirement>(
    principal: &Principal,
) -> Result<AuthorizedGlobal<P>, Denied> {
    check_declared::<P>(principal)?;
    match decide_global(principal.subject(), P::PERMISSION) {
        Decision::Allow => Ok(AuthorizedGlobal {
            principal: principal.clone(),
            _permission: PhantomData,
        }),
        Decision::Deny(reason) => Err(Denied::Policy(reason)),
    }
}

/// Whether `principal` holds `permission` on `project`, for shaping an answer (redaction)
/// rather than admitting a request: admission always goes through `authorize`.
pub fn holds(principal: &Principal, permission: Permission, project: &ProjectId) -> bool {
    decide(principal.subject(), permission, project) == Decision::Allow
}

/// The same capability under its concrete type, for code generic over `P` that must call a
/// service taking `Authorized<Q>`: succeeds only when both name the same permission.
pub fn narrow<P: Requirement, Q: Requirement>(
    auth: &Authorized<P>,
) -> Result<Authorized<Q>, Denied> {
    if P::PERMISSION != Q::PERMISSION {
        return Err(Denied::Undeclared {
            asked: Q::PERMISSION,
            declared: P::PERMISSION,
        });
    }
    Ok(Authorized {
        principal: auth.principal.clone(),
        project: auth.project.clone(),
        _permission: PhantomData,
    })
}

/// Checks that the route declared `P` and that the policy allows it for `principal` on `project`.
pub fn authorize<P: Requirement>(
    principal: &Principal,
    project: &ProjectId,
) -> Result<Authorized<P>, Denied> {
    check_declared::<P>(principal)?;
    match decide(principal.subject(), P::PERMISSION, project) {
        Decision::Allow => Ok(Authorized {
            principal: principal.clone(),
            project: project.clone(),
            _permission: PhantomData,
        }),
        Decision::Deny(reason) => Err(Denied::Policy(reason)),
    }
}
