//! Data-protection operations over the API: a retention sweep on demand.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::access::{Principal, perm};
use crate::audit::RequestContext;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::privacy::retention;
use crate::state::AppState;

/// How a sweep runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SweepParams {
    /// Events deleted per statement (default `retention.batch`).
    batch: Option<u32>,
    /// Stop after this many batches; the next sweep carries on.
    max_batches: Option<u32>,
}

/// Runs a retention sweep now (needs `project:admin` on every project).
#[utoipa::path(post, path = "/api/v1/admin/retention/sweep", tag = "admin", params(SweepParams),
    responses((status = 200, description = "What was due and deleted, per project"), (status = 400), (status = 401), (status = 403)))]
pub async fn sweep(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<SweepParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize_global::<perm::ProjectAdmin>(&ctx, &principal, Action::RetentionSweep)
        .await?;
    let batch = q.batch.unwrap_or(state.settings.retention.batch);
    if !(1..=100_000).contains(&batch) {
        return Err(AppError::BadRequest(
            "batch must be between 1 and 100000".into(),
        ));
    }
    let report = retention::sweep(
        &state.store,
        &state.audit,
        state.clock.now(),
        batch,
        q.max_batches,
    )
    .await?;
    Ok(HttpResponse::Ok().json(report))
}
