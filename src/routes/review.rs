//! The access review over HTTP, as JSON or CSV (the review itself is `admin::review`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::access::Principal;
use crate::admin::Administrator;
use crate::admin::review::{self, Review};
use crate::audit::RequestContext;
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::state::AppState;

/// What to review.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewParams {
    /// Only access on this project (grants on every project included).
    project: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The access review.
#[utoipa::path(get, path = "/api/v1/admin/access-review", tag = "admin", params(ReviewParams),
    responses((status = 200, description = "One row per principal, role and scope; with `format=csv` the same rows as CSV, with a header line", content((Review = "application/json"), (String = "text/csv"))), (status = 401), (status = 403)))]
pub async fn review(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<ReviewParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let project = match &q.project {
        Some(p) => Some(ProjectId::parse(p).map_err(|e| AppError::BadRequest(e.0))?),
        None => None,
    };
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let admin = super::grants::admin(&state);
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            // The permission is checked (and a refusal logged) before the format.
            by.may::<crate::access::perm::AuditRead>(
                admin.audit,
                crate::ledger::entry::Action::AuditRead,
                "*",
            )
            .await?;
            return Err(AppError::BadRequest(format!(
                "format {other:?} is json or csv"
            )));
        }
    };
    let reviewed = review::access_review(&admin, by, project.as_ref()).await?;
    if !csv {
        return Ok(HttpResponse::Ok().json(reviewed));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .body(review::csv(&reviewed)?))
}
