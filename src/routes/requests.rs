//! Just-in-time access: people ask for a role on a project for a while; administrators other
//! than the requester approve; approved access becomes a grant that expires by itself.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::pages::body;
use crate::access::Principal;
use crate::admin::Administrator;
use crate::admin::requests::{self, AccessRequestView, NewRequest};
use crate::audit::RequestContext;
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::signin::caller::Person;
use crate::state::AppState;

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
    let asked = requests::ask(&super::grants::admin(&state), &ctx, person.actor(), b).await?;
    Ok(HttpResponse::Created().json(asked))
}

/// My access requests, newest first.
#[utoipa::path(get, path = "/api/v1/access-requests", tag = "access",
    responses((status = 200, body = AccessRequestList, description = "My requests"), (status = 401)))]
pub async fn mine(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let list = requests::of_person(&super::grants::admin(&state), &person.user.id).await?;
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
    let project = q
        .project
        .as_deref()
        .map(ProjectId::parse)
        .transpose()
        .map_err(|e| AppError::BadRequest(e.0))?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let now = state.clock.now();
    let requests = requests::pending(&super::grants::admin(&state), by, project.as_ref())
        .await?
        .iter()
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
