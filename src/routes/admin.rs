//! Service-wide administration of people (needs `users:admin` on every project).

use actix_web::{HttpResponse, web};

use crate::access::Principal;
use crate::admin::Administrator;
use crate::admin::people::{self, SecondFactorReset, SessionsEnded};
use crate::audit::RequestContext;
use crate::error::AppError;
use crate::state::AppState;

/// Resets a person's 2-step verification: they must enroll again at their next sign-in, and
/// their live sessions end.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/second-factor/reset", tag = "admin",
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 200, description = "Reset", body = SecondFactorReset), (status = 401), (status = 403), (status = 404)))]
pub async fn reset_second_factor(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let done = people::reset_second_factor(&super::grants::admin(&state), by, &path).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Ends every live session of a person.
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 200, description = "Ended", body = SessionsEnded), (status = 401), (status = 403), (status = 404)))]
pub async fn end_sessions(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let done = people::end_sessions(&super::grants::admin(&state), by, &path).await?;
    Ok(HttpResponse::Ok().json(done))
}
