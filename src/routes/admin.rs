//! Service-wide administration of people (needs `users:admin` on every project).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::access::{Principal, perm};
use crate::audit::RequestContext;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::state::AppState;
use crate::store::EndReason;

/// A person's 2-step verification, reset.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SecondFactorReset {
    /// Whether they had one to reset.
    reset: bool,
    /// How many live sessions ended.
    sessions_ended: u64,
}

/// A person's sessions, ended.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    /// How many were live.
    sessions_ended: u64,
}

async fn existing(state: &AppState, id: &str) -> Result<(), AppError> {
    match state.store.user(id).await? {
        Some(_) => Ok(()),
        None => Err(AppError::NotFound(format!("no person {id}"))),
    }
}

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
    let auth = state
        .audit
        .authorize_global::<perm::UsersAdmin>(&ctx, &principal, Action::SecondFactorReset)
        .await?;
    existing(&state, &path).await?;
    let had = state.store.totp(&path).await?.is_some();
    let now = state.clock.now();
    // Logged first: fail closed before anything changes.
    let details = json!({
        "user": *path,
        "before": {"second_factor": had},
        "after": {"second_factor": false, "sessions": "ended"},
    });
    state
        .audit
        .record_global(&ctx, &auth, Action::SecondFactorReset, details)
        .await?;
    state.store.reset_totp(&path).await?;
    let ended = state
        .store
        .end_user_sessions(&path, EndReason::Ended, now)
        .await?;
    Ok(HttpResponse::Ok().json(SecondFactorReset {
        reset: had,
        sessions_ended: ended,
    }))
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
    let auth = state
        .audit
        .authorize_global::<perm::UsersAdmin>(&ctx, &principal, Action::SessionEnd)
        .await?;
    existing(&state, &path).await?;
    let live = state
        .store
        .live_sessions(&path, state.clock.now())
        .await?
        .len();
    state
        .audit
        .record_global(
            &ctx,
            &auth,
            Action::SessionEnd,
            json!({"user": *path, "before": {"live_sessions": live}, "after": {"live_sessions": 0}}),
        )
        .await?;
    let ended = state
        .store
        .end_user_sessions(&path, EndReason::Ended, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(SessionsEnded {
        sessions_ended: ended,
    }))
}
