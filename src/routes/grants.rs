//! Grants and people, administered over the API. Every change is logged, with the value
//! before and after, before it is made.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::access::{GrantStatus, Principal, perm};
use crate::admin::grants::{self, GrantView};
use crate::admin::{Admin, Administrator};
use crate::admin::{people, roles};
use crate::audit::RequestContext;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::state::AppState;

/// A new grant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// `user`, `group` or `service_account`.
    subject_kind: String,
    /// The person's id, the group's name or the service account's id.
    subject: String,
    /// The role to allow.
    #[serde(default)]
    role: Option<String>,
    /// Or the one permission to deny.
    #[serde(default)]
    deny: Option<String>,
    /// A project id, or `*` for every project.
    project: String,
    /// Why (a ticket reference).
    reason: String,
    /// Days until it lapses on its own.
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// Grants a role (or denies a permission) to a person, group or service account.
#[utoipa::path(post, path = "/api/v1/admin/grants", tag = "admin", request_body = NewGrant,
    responses((status = 201, body = GrantView, description = "Created: active, or pending a second approval"), (status = 401), (status = 403), (status = 422)))]
pub async fn create(
    ctx: RequestContext,
    principal: Principal,
    body: web::Json<NewGrant>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    let new = grants::NewGrant::parse(
        &b.subject_kind,
        b.subject,
        b.role,
        b.deny,
        b.project,
        b.reason,
        b.expires_in_days,
    )?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let grant = grants::create(&admin(&state), by, new).await?;
    Ok(HttpResponse::Created().json(GrantView::of(&grant)))
}

/// The administration services over this service's state.
pub(super) fn admin(state: &AppState) -> Admin<'_> {
    Admin {
        store: &state.store,
        audit: &state.audit,
        clock: state.clock.as_ref(),
        access: &state.settings.access,
        project_grace_days: state.settings.retention.project_grace_days,
    }
}

/// Which grants to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only grants on this project (and on every project).
    project: Option<String>,
}

/// Lists grants in every state, newest first.
#[utoipa::path(get, path = "/api/v1/admin/grants", tag = "admin", params(ListParams),
    responses((status = 200, body = GrantList, description = "The grants"), (status = 401), (status = 403)))]
pub async fn list(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let grants = grants::list(&admin(&state), by, q.project.as_deref()).await?;
    Ok(HttpResponse::Ok().json(GrantList {
        grants: grants.iter().map(GrantView::of).collect(),
    }))
}

/// Grants, as the API shows them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct GrantList {
    /// The grants.
    grants: Vec<GrantView>,
}

async fn decide(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    to: GrantStatus,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person { ctx, principal };
    let after = grants::decide(&admin(state), by, id, to).await?;
    Ok(HttpResponse::Ok().json(GrantView::of(&after)))
}

/// Approves a pending grant (by an administrator other than the granter and the grantee).
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/approve", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, body = GrantView, description = "Active"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn approve(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, GrantStatus::Active).await
}

/// Rejects a pending grant.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/reject", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, body = GrantView, description = "Rejected"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reject(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, GrantStatus::Rejected).await
}

/// Revokes a grant at once.
#[utoipa::path(delete, path = "/api/v1/admin/grants/{id}", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, body = GrantView, description = "Revoked"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn revoke(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, GrantStatus::Revoked).await
}

/// Every person, with whether they are disabled.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    responses((status = 200, body = UserList, description = "People"), (status = 401), (status = 403)))]
pub async fn users(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let people = people::list(&admin(&state), by).await?;
    let users = people
        .iter()
        .map(|u| UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            kind: u.kind.as_str(),
            created_at: u.created_at.to_rfc3339(),
            last_signin_at: u.last_signin_at.map(Timestamp::to_rfc3339),
            disabled_at: u.disabled_at.map(Timestamp::to_rfc3339),
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserList { users }))
}

/// A person, as administrators see them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Their id.
    id: String,
    /// Their e-mail address (their sign-in name).
    email: String,
    /// Their name, as their identity provider gives it.
    name: Option<String>,
    /// `sso` or `break_glass`.
    kind: &'static str,
    /// When they first signed in (RFC 3339).
    created_at: String,
    /// When they last signed in.
    last_signin_at: Option<String>,
    /// When they were disabled, if they are.
    disabled_at: Option<String>,
}

/// Everyone who has signed in.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserList {
    /// The people.
    users: Vec<UserView>,
}

/// A service account, as administrators see it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ServiceAccountView {
    /// Its id.
    id: String,
    /// Its user name (HTTP Basic on /import).
    name: String,
    /// Its project.
    project: String,
    /// When it was locked, if it is.
    locked_at: Option<String>,
}

/// Service accounts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ServiceAccountList {
    /// The accounts.
    service_accounts: Vec<ServiceAccountView>,
}

/// A service account locked or unlocked.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Locked {
    /// The account.
    id: String,
    /// Whether it is locked now.
    locked: bool,
}

async fn set_disabled(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    disable: bool,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person { ctx, principal };
    let done = people::set_disabled(&admin(state), by, id, disable).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Disables a person: their sessions end and their personal tokens stop at once.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable", tag = "admin",
    params(("id" = String, Path, description = "The person")),
    responses((status = 200, body = people::Disabled, description = "Disabled"), (status = 401), (status = 403), (status = 404)))]
pub async fn disable(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    set_disabled(&state, &ctx, &principal, &path, true).await
}

/// Re-enables a person.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable", tag = "admin",
    params(("id" = String, Path, description = "The person")),
    responses((status = 200, body = people::Disabled, description = "Enabled"), (status = 401), (status = 403), (status = 404)))]
pub async fn enable(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    set_disabled(&state, &ctx, &principal, &path, false).await
}

/// A review's note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewNote {
    /// What was checked (kept as evidence).
    note: String,
}

/// Records that a grant was reviewed and is still needed; the next review falls due later.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/review", tag = "admin",
    params(("id" = String, Path, description = "The grant")), request_body = ReviewNote,
    responses((status = 200, body = GrantView, description = "Reviewed"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn review(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let note = || {
        serde_json::from_slice::<ReviewNote>(&bytes)
            .map(|b| b.note)
            .map_err(|e| AppError::Unprocessable(format!("the body does not match: {e}")))
    };
    let after = grants::review(&admin(&state), by, &path, note).await?;
    Ok(HttpResponse::Ok().json(GrantView::of(&after)))
}

async fn lock_grant(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    lock: bool,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person { ctx, principal };
    let after = grants::lock(&admin(state), by, id, lock).await?;
    Ok(HttpResponse::Ok().json(GrantView::of(&after)))
}

/// Locks a grant: it stops working at the next request, until unlocked.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/lock", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, body = GrantView, description = "Locked"), (status = 401), (status = 403), (status = 404)))]
pub async fn lock(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_grant(&state, &ctx, &principal, &path, true).await
}

/// Unlocks a grant.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/unlock", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, body = GrantView, description = "Unlocked"), (status = 401), (status = 403), (status = 404)))]
pub async fn unlock(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_grant(&state, &ctx, &principal, &path, false).await
}

/// Every service account, with its project and lock.
#[utoipa::path(get, path = "/api/v1/admin/service-accounts", tag = "admin",
    responses((status = 200, body = ServiceAccountList, description = "Service accounts"), (status = 401), (status = 403)))]
pub async fn service_accounts(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let service_accounts = people::service_accounts(&admin(&state), by)
        .await?
        .into_iter()
        .map(|(sa, locked)| ServiceAccountView {
            id: sa.id,
            name: sa.name,
            project: sa.project_id.to_string(),
            locked_at: locked.map(Timestamp::to_rfc3339),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ServiceAccountList { service_accounts }))
}

async fn lock_account(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    lock: bool,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person { ctx, principal };
    let account = people::lock_service_account(&admin(state), by, id, lock).await?;
    Ok(HttpResponse::Ok().json(Locked {
        id: account.id,
        locked: lock,
    }))
}

/// Locks a service account: its tokens stop working at the next request.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts/{id}/lock", tag = "admin",
    params(("id" = String, Path, description = "The service account")),
    responses((status = 200, body = Locked, description = "Locked"), (status = 401), (status = 403), (status = 404)))]
pub async fn lock_service_account(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_account(&state, &ctx, &principal, &path, true).await
}

/// Unlocks a service account.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts/{id}/unlock", tag = "admin",
    params(("id" = String, Path, description = "The service account")),
    responses((status = 200, body = Locked, description = "Unlocked"), (status = 401), (status = 403), (status = 404)))]
pub async fn unlock_service_account(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_account(&state, &ctx, &principal, &path, false).await
}

/// Every grantable role: built-in and custom.
#[utoipa::path(get, path = "/api/v1/admin/roles", tag = "admin",
    responses((status = 200, body = RoleList, description = "Roles and their permissions"), (status = 401), (status = 403)))]
pub async fn roles(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let custom = roles::custom(&admin(&state), by).await?;
    let builtin = crate::access::BUILTIN.iter().map(|r| RoleView {
        name: r.name.to_owned(),
        permissions: r.permissions.to_vec(),
        description: None,
        builtin: true,
    });
    let custom = custom.iter().map(RoleView::custom);
    Ok(HttpResponse::Ok().json(RoleList {
        roles: builtin.chain(custom).collect(),
    }))
}

/// A role and what it allows.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoleView {
    /// Its name.
    name: String,
    /// Its permissions, from the catalogue.
    #[schema(value_type = Vec<String>)]
    permissions: Vec<crate::access::Permission>,
    /// What a custom role is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Built in (fixed), or custom.
    builtin: bool,
}

impl RoleView {
    fn custom(r: &crate::domain::CustomRole) -> Self {
        Self {
            name: r.name.clone(),
            permissions: r.permissions.clone(),
            description: Some(r.description.clone()),
            builtin: false,
        }
    }
}

/// Every role: the built-in ones, then the custom ones.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoleList {
    /// The roles.
    roles: Vec<RoleView>,
}

/// A custom role removed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoleDeleted {
    /// Its name.
    name: String,
    /// Always true.
    deleted: bool,
}

/// A custom role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// Its name: a-z, 0-9, '_' or '-', not a built-in role's.
    name: String,
    /// Permissions from the catalogue.
    permissions: Vec<String>,
    /// What it is for.
    description: String,
}

/// Defines a custom role from the permission catalogue.
#[utoipa::path(post, path = "/api/v1/admin/roles", tag = "admin", request_body = NewRole,
    responses((status = 201, body = RoleView, description = "Defined"), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub async fn create_role(
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    // The body is read only once authorized, so the refusal is the same whatever it says.
    by.may::<perm::RolesAssign>(&state.audit, Action::RoleChange, "*")
        .await?;
    let b: NewRole = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::Unprocessable(format!("the body does not match: {e}")))?;
    let role = roles::create(&admin(&state), by, b.name, &b.permissions, b.description).await?;
    Ok(HttpResponse::Created().json(RoleView::custom(&role)))
}

/// Removes a custom role no active grant uses.
#[utoipa::path(delete, path = "/api/v1/admin/roles/{name}", tag = "admin",
    params(("name" = String, Path, description = "The role")),
    responses((status = 200, body = RoleDeleted, description = "Removed"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn delete_role(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let role = roles::delete(&admin(&state), by, &path).await?;
    Ok(HttpResponse::Ok().json(RoleDeleted {
        name: role.name,
        deleted: true,
    }))
}
