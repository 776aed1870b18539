//! Just-in-time access: people ask for a role on a project for a while; administrators other
//! than the requester approve; approved access becomes a grant that expires by itself.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::pages::body;
use crate::access::{AccessRequest, Principal, RequestStatus, approvals_needed, check_ask, perm};
use crate::admin::Administrator;
use crate::admin::requests::{self, AccessRequestView, request_json};
use crate::audit::RequestContext;
use crate::domain::{ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::{Action, Outcome};
use crate::signin::caller::{Person, role_book};
use crate::state::AppState;

/// A request for access.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The project.
    project: String,
    /// The role.
    role: String,
    /// Why (an incident or ticket).
    reason: String,
    /// For how long once granted (at most `access.request_max_days`).
    duration_hours: i64,
}

/// Asks for a role on a project for a while.
#[utoipa::path(post, path = "/api/v1/access-requests", tag = "access", request_body = NewRequest,
    responses((status = 201, body = AccessRequestView, description = "Pending approval"), (status = 401), (status = 422)))]
pub async fn ask(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let b: NewRequest = body(&req, &bytes)?;
    let access = &state.settings.access;
    let duration_ms = b.duration_hours.saturating_mul(3_600_000);
    let roles = role_book(&state).await?;
    check_ask(
        &roles,
        &b.role,
        &b.project,
        duration_ms,
        access.request_max_days * 86_400_000,
    )
    .map_err(AppError::Unprocessable)?;
    crate::domain::FreeText::required("reason", &b.reason)?;
    let now = state.clock.now();
    let r = AccessRequest {
        id: uuid::Uuid::new_v4().to_string(),
        requester: person.user.id.clone(),
        project: b.project,
        approvals_needed: approvals_needed(
            &roles,
            &b.role,
            access.request_approvals.get(&b.role).copied(),
            access.powerful_grants_need_approval,
        ),
        role: b.role,
        reason: b.reason,
        duration_ms,
        created_at: now,
        lapses_at: Timestamp::from_millis(now.millis() + access.request_lapse_minutes * 60_000),
        status: RequestStatus::Pending,
        grant_id: None,
        decided_at: None,
    };
    let json = request_json(&r, &[], now);
    state
        .audit
        .account(
            &ctx,
            person.actor(),
            Action::AccessRequest,
            Outcome::Allowed,
            json!({"request": r.id, "before": null, "after": json}),
        )
        .await?;
    state.store.create_request(&r).await?;
    Ok(HttpResponse::Created().json(json))
}

/// My access requests, newest first.
#[utoipa::path(get, path = "/api/v1/access-requests", tag = "access",
    responses((status = 200, body = AccessRequestList, description = "My requests"), (status = 401)))]
pub async fn mine(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let list = state.store.requests(Some(&person.user.id)).await?;
    Ok(HttpResponse::Ok().json(AccessRequestList {
        requests: list
            .iter()
            .map(|r| AccessRequestView::of(r, &[], now))
            .collect(),
    }))
}

/// Which pending requests to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PendingParams {
    /// Only this project's (needs `roles:assign` there; without it, on every project).
    project: Option<String>,
}

/// Pending access requests, for approvers.
#[utoipa::path(get, path = "/api/v1/admin/access-requests", tag = "admin", params(PendingParams),
    responses((status = 200, body = AccessRequestList, description = "Pending requests"), (status = 401), (status = 403)))]
pub async fn pending(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<PendingParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    match &q.project {
        Some(p) => {
            let project = ProjectId::parse(p).map_err(|e| AppError::BadRequest(e.0))?;
            state
                .audit
                .authorize::<perm::RolesAssign>(&ctx, &principal, &project, Action::AccessRequest)
                .await?;
        }
        None => {
            state
                .audit
                .authorize_global::<perm::RolesAssign>(&ctx, &principal, Action::AccessRequest)
                .await?;
        }
    }
    let now = state.clock.now();
    let requests = state
        .store
        .requests(None)
        .await?
        .iter()
        .filter(|r| q.project.as_deref().is_none_or(|p| p == r.project))
        .filter(|r| r.state_at(now) == "pending")
        .map(|r| AccessRequestView::of(r, &[], now))
        .collect();
    Ok(HttpResponse::Ok().json(AccessRequestList { requests }))
}

/// Access requests.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccessRequestList {
    /// The requests.
    requests: Vec<AccessRequestView>,
}

async fn decide(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    approve: bool,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person { ctx, principal };
    let after = requests::decide(&super::grants::admin(state), by, id, approve).await?;
    Ok(HttpResponse::Ok().json(after))
}

/// Approves an access request; enough approvals turn it into an expiring grant.
#[utoipa::path(post, path = "/api/v1/admin/access-requests/{id}/approve", tag = "admin",
    params(("id" = String, Path, description = "The request")),
    responses((status = 200, body = AccessRequestView, description = "Approved (granted once enough approvals)"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn approve(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, true).await
}

/// Rejects an access request.
#[utoipa::path(post, path = "/api/v1/admin/access-requests/{id}/reject", tag = "admin",
    params(("id" = String, Path, description = "The request")),
    responses((status = 200, body = AccessRequestView, description = "Rejected"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reject(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, false).await
}
