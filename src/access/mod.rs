//! Permissions, principals and the one `authorize` call every handler makes before data.
//!
//! A handler gets at data only through an [`Authorized<P>`], which only [`authorize`] makes.

mod duties;
mod permission;
mod policy;
mod principal;
mod requests;
mod roles;

use std::marker::PhantomData;

pub use duties::{
    Actor as DutyActor, Change as GrantChange, check_approval, check_break_glass_grant,
    check_change, check_new_grant,
};
pub use permission::{Permission, Requirement, perm};
pub use policy::{Decision, Subject, decide, decide_global};
pub use principal::{Access, AccountNeed, NEEDS_CREDENTIALS, Principal, RouteAccess};
pub use requests::{
    AccessRequest, RequestStatus, approvals_needed, check_ask, check_request_approval,
};
pub use roles::{
    BREAK_GLASS, BUILTIN, CustomRole, Effect, Grant, GrantRecord, GrantSource, GrantStatus, Grants,
    Role, RoleBook, SERVICE_ACCOUNT, SubjectKind,
};

use crate::domain::ProjectId;
use crate::error::AppError;

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

fn check_declared<P: Requirement>(principal: &Principal) -> Result<(), AppError> {
    if principal.route_permission() != P::PERMISSION {
        // A handler asking for something its route does not declare is a bug, not a denial.
        return Err(AppError::Internal(anyhow::anyhow!(
            "handler authorized {} but its route declares {}",
            P::PERMISSION,
            principal.route_permission()
        )));
    }
    Ok(())
}

/// Checks that the route declared `P` and that the policy allows it on every project.
pub fn authorize_global<P: Requirement>(
    principal: &Principal,
) -> Result<AuthorizedGlobal<P>, AppError> {
    check_declared::<P>(principal)?;
    match decide_global(principal.subject(), P::PERMISSION) {
        Decision::Allow => Ok(AuthorizedGlobal {
            principal: principal.clone(),
            _permission: PhantomData,
        }),
        Decision::Deny(reason) => Err(AppError::Forbidden(reason)),
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
) -> Result<Authorized<Q>, AppError> {
    if P::PERMISSION != Q::PERMISSION {
        return Err(AppError::Internal(anyhow::anyhow!(
            "a {} capability cannot stand for {}",
            P::PERMISSION,
            Q::PERMISSION
        )));
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
) -> Result<Authorized<P>, AppError> {
    check_declared::<P>(principal)?;
    match decide(principal.subject(), P::PERMISSION, project) {
        Decision::Allow => Ok(Authorized {
            principal: principal.clone(),
            project: project.clone(),
            _permission: PhantomData,
        }),
        Decision::Deny(reason) => Err(AppError::Forbidden(reason)),
    }
}
