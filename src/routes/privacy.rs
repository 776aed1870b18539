//! Data-protection operations over the API: retention sweeps, opt-outs and consent, and a
//! project's settings and lifecycle (soft delete, restore).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::access::{Principal, perm};
use crate::admin::Administrator;
use crate::admin::projects::{self, SettingsChange};
use crate::audit::RequestContext;
use crate::domain::{DistinctId, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::privacy::consent::{self, Choice, Preferences};
use crate::privacy::retention;
use crate::projects::ProjectView;
use crate::routes::extract::ProjectPath;
use crate::state::AppState;
use crate::store::Project;

/// How a sweep runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SweepParams {
    /// Events deleted per statement (default `retention.batch`).
    batch: Option<u32>,
    /// Stop after this many batches; the next sweep carries on.
    max_batches: Option<u32>,
}

/// Runs a retention sweep now (needs `project:admin` on every project).
#[utoipa::path(post, path = "/api/v1/admin/retention/sweep", tag = "admin", params(SweepParams),
    responses((status = 200, body = retention::SweepReport, description = "What was due and deleted, per project"), (status = 400), (status = 401), (status = 403)))]
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
        state.settings.retention.project_grace_days,
    )
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The person named in a `/subjects/{distinct_id}` path.
fn person_path(path: (String, String)) -> Result<DistinctId, AppError> {
    DistinctId::parse(&path.1).map_err(|e| AppError::BadRequest(e.0))
}

async fn live_project(state: &AppState, project: &ProjectId) -> Result<Project, AppError> {
    crate::projects::live(state.store.as_ref(), project).await
}

/// Where a choice came from.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceBody {
    /// The channel the person used (a consent banner, a support ticket...); defaults to `api`.
    source: Option<String>,
}

async fn choose(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    body: Option<web::Json<ChoiceBody>>,
    state: web::Data<AppState>,
    choice: Choice,
) -> Result<HttpResponse, AppError> {
    let person = person_path(path.into_inner())?;
    let action = match choice {
        Choice::OptOut | Choice::OptIn => Action::SubjectsOptOut,
        Choice::Consent | Choice::Withdraw => Action::SubjectsConsent,
    };
    let auth = state
        .audit
        .authorize::<perm::SubjectsConsent>(&ctx, &principal, &project, action)
        .await?;
    live_project(&state, &project).await?;
    let source = body
        .and_then(|b| b.into_inner().source)
        .unwrap_or_else(|| "api".into());
    crate::domain::FreeText::parse("source", &source)?;
    let changed = consent::record(
        &state.store,
        &state.audit,
        &ctx,
        &auth,
        &person,
        choice,
        &source,
        state.clock.now(),
    )
    .await?;
    let now = consent::preferences(&state.store, &state.audit, &auth, &person).await?;
    Ok(HttpResponse::Ok().json(Changed {
        changed,
        preferences: now,
    }))
}

/// What recording a choice did: whether it changed anything, and the person's preferences now.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Changed {
    /// False when the person had already made this choice.
    changed: bool,
    /// Their preferences after it.
    preferences: consent::Preferences,
}

/// Opts a person out: nothing they send is stored from now on.
#[utoipa::path(put, path = "/api/v1/projects/{project}/subjects/{distinct_id}/opt-out", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("distinct_id" = String, Path, description = "The person")),
    request_body(content = ChoiceBody, description = "Optional source"),
    responses((status = 200, description = "`changed` and the person's preferences", body = Changed), (status = 401), (status = 403), (status = 404)))]
pub async fn opt_out(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    body: Option<web::Json<ChoiceBody>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    choose(
        ctx,
        principal,
        ProjectPath(project),
        path,
        body,
        state,
        Choice::OptOut,
    )
    .await
}

/// Removes a person's opt-out.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/subjects/{distinct_id}/opt-out", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("distinct_id" = String, Path, description = "The person")),
    responses((status = 200, description = "`changed` and the person's preferences", body = Changed), (status = 401), (status = 403), (status = 404)))]
pub async fn opt_in(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    body: Option<web::Json<ChoiceBody>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    choose(
        ctx,
        principal,
        ProjectPath(project),
        path,
        body,
        state,
        Choice::OptIn,
    )
    .await
}

/// Records a person's consent, with its source and time.
#[utoipa::path(put, path = "/api/v1/projects/{project}/subjects/{distinct_id}/consent", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("distinct_id" = String, Path, description = "The person")),
    request_body(content = ChoiceBody, description = "Optional source"),
    responses((status = 200, description = "`changed` and the person's preferences", body = Changed), (status = 401), (status = 403), (status = 404)))]
pub async fn give_consent(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    body: Option<web::Json<ChoiceBody>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    choose(
        ctx,
        principal,
        ProjectPath(project),
        path,
        body,
        state,
        Choice::Consent,
    )
    .await
}

/// Records the withdrawal of a person's consent, with its source and time.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/subjects/{distinct_id}/consent", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("distinct_id" = String, Path, description = "The person")),
    responses((status = 200, description = "`changed` and the person's preferences", body = Changed), (status = 401), (status = 403), (status = 404)))]
pub async fn withdraw_consent(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    body: Option<web::Json<ChoiceBody>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    choose(
        ctx,
        principal,
        ProjectPath(project),
        path,
        body,
        state,
        Choice::Withdraw,
    )
    .await
}

/// A person's opt-out and consent history.
#[utoipa::path(get, path = "/api/v1/projects/{project}/subjects/{distinct_id}/preferences", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("distinct_id" = String, Path, description = "The person")),
    responses((status = 200, body = Preferences), (status = 401), (status = 403), (status = 404)))]
pub async fn preferences(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let person = person_path(path.into_inner())?;
    let auth = state
        .audit
        .authorize::<perm::SubjectsConsent>(&ctx, &principal, &project, Action::SubjectsConsent)
        .await?;
    live_project(&state, &project).await?;
    let prefs = consent::read(&state.store, &state.audit, &ctx, &auth, &person).await?;
    Ok(HttpResponse::Ok().json(prefs))
}

/// A project's settings.
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "admin",
    params(("project" = String, Path, description = "The project")),
    responses((status = 200, body = ProjectView), (status = 401), (status = 403), (status = 404)))]
pub async fn project(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(id): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let view = projects::read(&super::grants::admin(&state), by, &id).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Changes a project's retention window and consent rule.
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "admin",
    params(("project" = String, Path, description = "The project")), request_body = SettingsChange,
    responses((status = 200, body = ProjectView), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn update_project(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(id): ProjectPath,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let change = super::subjects::body_of::<SettingsChange>(body);
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let view = projects::update_settings(&super::grants::admin(&state), by, &id, change).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Deletes a project: unreachable at once, restorable during the grace period, then purged.
#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "admin",
    params(("project" = String, Path, description = "The project")),
    responses((status = 200, body = ProjectView), (status = 401), (status = 403), (status = 404)))]
pub async fn delete_project(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(id): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let view = projects::delete(&super::grants::admin(&state), by, &id).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Restores a deleted project within its grace period.
#[utoipa::path(post, path = "/api/v1/projects/{project}/restore", tag = "admin",
    params(("project" = String, Path, description = "The project")),
    responses((status = 200, body = ProjectView), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn restore_project(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(id): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let view = projects::restore(&super::grants::admin(&state), by, &id).await?;
    Ok(HttpResponse::Ok().json(view))
}
