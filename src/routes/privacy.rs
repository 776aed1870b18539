//! Data-protection operations over the API: retention sweeps, opt-outs and consent, and a
//! project's settings and lifecycle (soft delete, restore).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::access::{Principal, perm};
use crate::audit::RequestContext;
use crate::domain::{AllowedOrigins, DistinctId, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::privacy::consent::{self, Choice, Preferences};
use crate::privacy::retention;
use crate::projects::ProjectView;
use crate::routes::extract::ProjectPath;
use crate::state::AppState;
use crate::store::{Project, ProjectSettings};

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
    let prefs = consent::preferences(&state.store, &state.audit, &auth, &person).await?;
    let subject = state.audit.pseudonym(&project, &person).await?;
    state
        .audit
        .record(
            &ctx,
            &auth,
            Action::SubjectsConsent,
            0,
            json!({"change": "read"}),
            vec![subject],
        )
        .await?;
    Ok(HttpResponse::Ok().json(prefs))
}

/// Settings to change; absent fields keep their value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// Days events are kept, 1 to 36500.
    retention_days: Option<i64>,
    /// Whether events need consent.
    consent_required: Option<bool>,
    /// The consent marker property.
    consent_property: Option<String>,
    /// The web origins browsers may send this project's events from (CORS), such as
    /// `https://shop.example`; `["*"]` alone for any origin; `[]` for none (the default).
    allowed_origins: Option<Vec<String>>,
    /// Keep the client's address in `$ip` when an SDK sends `ip=1` (off by default: an
    /// address is personal data).
    record_client_ip: Option<bool>,
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
    state
        .audit
        .authorize::<perm::ProjectAdmin>(&ctx, &principal, &id, Action::ProjectUpdate)
        .await?;
    let p = live_project(&state, &id).await?;
    Ok(HttpResponse::Ok().json(ProjectView::of(
        &p,
        state.settings.retention.project_grace_days,
    )))
}

/// Changes a project's retention window and consent rule.
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "admin",
    params(("project" = String, Path, description = "The project")), request_body = SettingsBody,
    responses((status = 200, body = ProjectView), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn update_project(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(id): ProjectPath,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize::<perm::ProjectAdmin>(&ctx, &principal, &id, Action::ProjectUpdate)
        .await?;
    let body: SettingsBody = super::subjects::body_of(body)?;
    let p = live_project(&state, &id).await?;
    let grace = state.settings.retention.project_grace_days;
    let before = ProjectView::of(&p, grace);
    let after = ProjectSettings {
        retention_days: body.retention_days.unwrap_or(p.retention_days),
        consent_required: body.consent_required.unwrap_or(p.consent_required),
        consent_property: body
            .consent_property
            .clone()
            .unwrap_or(p.consent_property.clone()),
        allowed_origins: match &body.allowed_origins {
            Some(list) => AllowedOrigins::parse_list(list)?,
            None => p.allowed_origins.clone(),
        },
        record_client_ip: body.record_client_ip.unwrap_or(p.record_client_ip),
    };
    if !(1..=36_500).contains(&after.retention_days) {
        return Err(AppError::Unprocessable(
            "retention_days must be between 1 and 36500".into(),
        ));
    }
    if after.consent_property.is_empty() || after.consent_property.len() > 255 {
        return Err(AppError::Unprocessable(
            "consent_property must be 1 to 255 bytes".into(),
        ));
    }
    let details = json!({"before": before, "after": {
        "retention_days": after.retention_days,
        "consent_required": after.consent_required,
        "consent_property": after.consent_property,
        "allowed_origins": after.allowed_origins.to_list(),
        "record_client_ip": after.record_client_ip,
    }});
    state
        .audit
        .record(&ctx, &auth, Action::ProjectUpdate, 0, details, vec![])
        .await?;
    state.store.update_project_settings(&id, &after).await?;
    let p = live_project(&state, &id).await?;
    Ok(HttpResponse::Ok().json(ProjectView::of(&p, grace)))
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
    let auth = state
        .audit
        .authorize::<perm::ProjectAdmin>(&ctx, &principal, &id, Action::ProjectDelete)
        .await?;
    live_project(&state, &id).await?;
    let now = state.clock.now();
    let grace = state.settings.retention.project_grace_days;
    let details = json!({"before": {"deleted_at": null}, "after": {"deleted_at": now.to_rfc3339()}, "grace_days": grace});
    state
        .audit
        .record(&ctx, &auth, Action::ProjectDelete, 0, details, vec![])
        .await?;
    if !state.store.set_project_deleted(&id, Some(now)).await? {
        return Err(AppError::Conflict(format!(
            "project {id} was deleted meanwhile"
        )));
    }
    let p = state
        .store
        .project(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("project {id} does not exist")))?;
    Ok(HttpResponse::Ok().json(ProjectView::of(&p, grace)))
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
    let auth = state
        .audit
        .authorize::<perm::ProjectAdmin>(&ctx, &principal, &id, Action::ProjectRestore)
        .await?;
    let p = state
        .store
        .project(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("project {id} does not exist")))?;
    let grace = state.settings.retention.project_grace_days;
    match (p.deleted_at, p.purged_at) {
        (None, _) => return Err(AppError::Conflict(format!("project {id} is not deleted"))),
        (Some(_), Some(_)) => {
            return Err(AppError::NotFound(format!(
                "project {id} was purged after its grace period"
            )));
        }
        (Some(_), None) => {}
    }
    let details = json!({"before": {"deleted_at": p.deleted_at.map(|t| t.to_rfc3339())}, "after": {"deleted_at": null}});
    state
        .audit
        .record(&ctx, &auth, Action::ProjectRestore, 0, details, vec![])
        .await?;
    state.store.set_project_deleted(&id, None).await?;
    let p = live_project(&state, &id).await?;
    Ok(HttpResponse::Ok().json(ProjectView::of(&p, grace)))
}
