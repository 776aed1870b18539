//! Data-subject requests over HTTP: exports (`subjects:export`) and deletions (`subjects:erase`)
//! under `/api/v1/projects/{project}/subject-requests/`, plus Mixpanel's GDPR API paths
//! (`/api/app/data-retrievals/v3.0/`, `/api/app/data-deletions/v3.0/`) so existing scripts work.
//! Each route declares one permission, so exports and deletions live under separate paths.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::{self, Authorized, Permission, Principal, Requirement, perm};
use crate::audit::RequestContext;
use crate::domain::{DistinctId, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::privacy::export;
use crate::privacy::subjects::{self, ComplianceType, NewRequest, RequestKind, SubjectRequest};
use crate::projects;
use crate::routes::extract::ProjectPath;
use crate::state::AppState;

/// A request to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// The people, 1 to 2000 distinct_ids.
    distinct_ids: Vec<String>,
    /// `GDPR` (the default) or `CCPA`.
    compliance_type: Option<String>,
    /// Why: a ticket reference (required here; Mixpanel's paths fill it in).
    reason: Option<String>,
    /// Deletions only: `erase` (the default), `erase_property` or `anonymize`.
    kind: Option<String>,
    /// `erase_property`: the property to delete.
    property: Option<String>,
    /// `anonymize`: properties to drop besides the identifying ones.
    drop_properties: Option<Vec<String>>,
    /// Accepted for Mixpanel compatibility (CCPA disclosure type); exports always hold the data.
    #[allow(dead_code)]
    disclosure_type: Option<String>,
}

impl RequestBody {
    fn parse(
        self,
        default_kind: RequestKind,
        reason: Option<&str>,
    ) -> Result<NewRequest, AppError> {
        let reason = self
            .reason
            .or(reason.map(str::to_owned))
            .unwrap_or_default();
        crate::domain::FreeText::parse("reason", &reason)?;
        let kind = match self.kind.as_deref() {
            None => default_kind,
            Some(k) => RequestKind::parse(k).ok_or_else(|| {
                AppError::Unprocessable(format!(
                    "kind must be erase, erase_property or anonymize, not {k:?}"
                ))
            })?,
        };
        let compliance_type = match self.compliance_type.as_deref() {
            None => ComplianceType::Gdpr,
            Some(c) => ComplianceType::parse(&c.to_ascii_uppercase()).ok_or_else(|| {
                AppError::Unprocessable(format!("compliance_type must be GDPR or CCPA, not {c:?}"))
            })?,
        };
        let distinct_ids = self
            .distinct_ids
            .iter()
            .enumerate()
            .map(|(i, d)| {
                DistinctId::parse(d)
                    .map_err(|e| AppError::Unprocessable(format!("distinct_ids[{i}]: {}", e.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NewRequest {
            kind,
            compliance_type,
            reason,
            distinct_ids,
            property: self.property,
            drop_properties: self.drop_properties.unwrap_or_default(),
        })
    }
}

/// A request as the API shows it. The distinct_ids are never echoed back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    /// The request's id (Mixpanel's `task_id`).
    id: String,
    /// The project.
    project: String,
    /// `export`, `erase`, `erase_property` or `anonymize`.
    kind: &'static str,
    /// `GDPR` or `CCPA`.
    compliance_type: &'static str,
    /// PENDING, STAGING, STARTED, SUCCESS, FAILURE, REVOKED or NOT_FOUND.
    status: &'static str,
    /// Who asked.
    requested_by: String,
    /// Why.
    reason: String,
    /// How many distinct_ids it names.
    subject_count: u64,
    /// The property to delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    property: Option<String>,
    /// The properties to drop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    drop_properties: Vec<String>,
    /// Whether it waits for, or had, a second approval.
    needs_approval: bool,
    /// Who approved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_by: Option<String>,
    /// When it was made.
    created_at: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    /// Events exported, deleted or changed.
    events: u64,
    /// Profiles exported, deleted or changed.
    profiles: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Where the document is, for a finished export.
    #[serde(skip_serializing_if = "Option::is_none")]
    download: Option<String>,
}

impl From<SubjectRequest> for RequestView {
    fn from(r: SubjectRequest) -> Self {
        let download = (r.kind == RequestKind::Export && r.state == subjects::JobState::Success)
            .then(|| {
                format!(
                    "/api/v1/projects/{}/subject-requests/exports/{}/download",
                    r.project, r.id
                )
            });
        Self {
            id: r.id,
            project: r.project.to_string(),
            kind: r.kind.as_str(),
            compliance_type: r.compliance_type.as_str(),
            status: r.state.as_str(),
            requested_by: r.requested_by,
            reason: r.reason,
            subject_count: r.subject_count,
            property: r.property,
            drop_properties: r.drop_properties,
            needs_approval: r.needs_approval,
            approved_by: r.approved_by,
            created_at: r.created_at.to_rfc3339(),
            completed_at: r.completed_at.map(|t| t.to_rfc3339()),
            events: r.events_affected,
            profiles: r.profiles_affected,
            error: r.error,
            download,
        }
    }
}

/// Reads a JSON body's fields only after authorization, so a refused caller learns nothing
/// about what a valid body looks like.
pub(super) fn body_of<T: serde::de::DeserializeOwned>(
    body: web::Json<serde_json::Value>,
) -> Result<T, AppError> {
    serde_json::from_value(body.into_inner()).map_err(|e| AppError::Unprocessable(e.to_string()))
}

pub(super) async fn authorized<P: Requirement>(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    project: &ProjectId,
) -> Result<Authorized<P>, AppError> {
    let action = if P::PERMISSION == Permission::SubjectsExport {
        Action::SubjectsExport
    } else {
        Action::SubjectsErase
    };
    let auth = state
        .audit
        .authorize::<P>(ctx, principal, project, action)
        .await?;
    projects::live(state.store.as_ref(), project).await?;
    Ok(auth)
}

pub(super) async fn make<P: Requirement>(
    state: &AppState,
    ctx: &RequestContext,
    auth: &Authorized<P>,
    new: NewRequest,
) -> Result<SubjectRequest, AppError> {
    let now = state.clock.now();
    let settings = &state.settings.privacy;
    // Each path holds exactly one capability; the kind picks the service call that takes it.
    let made = if P::PERMISSION == Permission::SubjectsExport {
        let auth = access::narrow::<P, perm::SubjectsExport>(auth)?;
        subjects::create_export(&state.store, &state.audit, ctx, &auth, new, settings, now).await?
    } else {
        let auth = access::narrow::<P, perm::SubjectsErase>(auth)?;
        subjects::create_deletion(&state.store, &state.audit, ctx, &auth, new, settings, now)
            .await?
    };
    state.jobs.notify_one();
    Ok(made)
}

fn accepted(r: SubjectRequest) -> HttpResponse {
    let location = format!(
        "/api/v1/projects/{}/subject-requests/{}/{}",
        r.project,
        if r.kind == RequestKind::Export {
            "exports"
        } else {
            "deletions"
        },
        r.id
    );
    HttpResponse::Accepted()
        .insert_header((header::LOCATION, location))
        .json(RequestView::from(r))
}

/// Asks for everything stored about up to 2000 people.
#[utoipa::path(post, path = "/api/v1/projects/{project}/subject-requests/exports", tag = "privacy",
    params(("project" = String, Path, description = "The project")), request_body = RequestBody,
    responses((status = 202, body = RequestView), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn create_export(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let auth = authorized::<perm::SubjectsExport>(&state, &ctx, &principal, &project).await?;
    let new = body_of::<RequestBody>(body)?.parse(RequestKind::Export, None)?;
    Ok(accepted(make(&state, &ctx, &auth, new).await?))
}

/// Asks to erase, erase one property of, or anonymise up to 2000 people.
#[utoipa::path(post, path = "/api/v1/projects/{project}/subject-requests/deletions", tag = "privacy",
    params(("project" = String, Path, description = "The project")), request_body = RequestBody,
    responses((status = 202, body = RequestView), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn create_deletion(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let auth = authorized::<perm::SubjectsErase>(&state, &ctx, &principal, &project).await?;
    let new = body_of::<RequestBody>(body)?.parse(RequestKind::Erase, None)?;
    Ok(accepted(make(&state, &ctx, &auth, new).await?))
}

async fn list<P: Requirement>(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    authorized::<P>(&state, &ctx, &principal, &project).await?;
    let exports = P::PERMISSION == Permission::SubjectsExport;
    let requests: Vec<RequestView> = state
        .store
        .subject_requests(&project)
        .await?
        .into_iter()
        .filter(|r| (r.kind == RequestKind::Export) == exports)
        .map(RequestView::from)
        .collect();
    Ok(HttpResponse::Ok().json(RequestList { requests }))
}

/// A project's requests of one kind (exports, or deletions), newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestList {
    /// The requests.
    requests: Vec<RequestView>,
}

/// The project's export requests, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/subject-requests/exports", tag = "privacy",
    params(("project" = String, Path, description = "The project")),
    responses((status = 200, description = "`requests`", body = RequestList), (status = 401), (status = 403), (status = 404)))]
pub async fn list_exports(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    list::<perm::SubjectsExport>(ctx, principal, ProjectPath(project), state).await
}

/// The project's deletion requests, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/subject-requests/deletions", tag = "privacy",
    params(("project" = String, Path, description = "The project")),
    responses((status = 200, description = "`requests`", body = RequestList), (status = 401), (status = 403), (status = 404)))]
pub async fn list_deletions(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    list::<perm::SubjectsErase>(ctx, principal, ProjectPath(project), state).await
}

async fn show<P: Requirement>(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let auth = authorized::<P>(&state, &ctx, &principal, &project).await?;
    let r = subjects::find(&state.store, &auth, &id).await?;
    Ok(HttpResponse::Ok().json(RequestView::from(r)))
}

/// One export request.
#[utoipa::path(get, path = "/api/v1/projects/{project}/subject-requests/exports/{id}", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The request")),
    responses((status = 200, body = RequestView), (status = 401), (status = 403), (status = 404)))]
pub async fn show_export(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    show::<perm::SubjectsExport>(ctx, principal, ProjectPath(project), path, state).await
}

/// One deletion request.
#[utoipa::path(get, path = "/api/v1/projects/{project}/subject-requests/deletions/{id}", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The request")),
    responses((status = 200, body = RequestView), (status = 401), (status = 403), (status = 404)))]
pub async fn show_deletion(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    show::<perm::SubjectsErase>(ctx, principal, ProjectPath(project), path, state).await
}

async fn cancel<P: Requirement>(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let auth = authorized::<P>(&state, &ctx, &principal, &project).await?;
    let r = subjects::cancel(
        &state.store,
        &state.audit,
        &ctx,
        &auth,
        &id,
        state.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(RequestView::from(r)))
}

/// Cancels an export request that has not started.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/subject-requests/exports/{id}", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The request")),
    responses((status = 200, body = RequestView), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn cancel_export(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    cancel::<perm::SubjectsExport>(ctx, principal, ProjectPath(project), path, state).await
}

/// Cancels a deletion request that has not started.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/subject-requests/deletions/{id}", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The request")),
    responses((status = 200, body = RequestView), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn cancel_deletion(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    cancel::<perm::SubjectsErase>(ctx, principal, ProjectPath(project), path, state).await
}

/// Gives a large deletion its second approval (never by the requester).
#[utoipa::path(post, path = "/api/v1/projects/{project}/subject-requests/deletions/{id}/approve", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The request")),
    responses((status = 200, body = RequestView), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn approve_deletion(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let auth = authorized::<perm::SubjectsErase>(&state, &ctx, &principal, &project).await?;
    let r = subjects::approve(
        &state.store,
        &state.audit,
        &ctx,
        &auth,
        &id,
        state.clock.now(),
    )
    .await?;
    state.jobs.notify_one();
    Ok(HttpResponse::Ok().json(RequestView::from(r)))
}

/// Streams a finished export: one JSON document with each person's profile and events.
#[utoipa::path(get, path = "/api/v1/projects/{project}/subject-requests/exports/{id}/download", tag = "privacy",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The request")),
    responses((status = 200, description = "The export document, streamed", body = crate::privacy::export::ExportDocument), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn download(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let auth = authorized::<perm::SubjectsExport>(&state, &ctx, &principal, &project).await?;
    let r = subjects::find(&state.store, &auth, &id).await?;
    let reveal = access::holds(&principal, Permission::EventsReadSensitive, &project);
    let export::Download { mut plan, details } =
        export::download(&state.store, &r, reveal, state.clock.now()).await?;
    let subjects = state.audit.pseudonyms(&project, &plan.people).await?;
    state
        .audit
        .record(
            &ctx,
            &auth,
            Action::SubjectsExport,
            r.events_affected,
            details,
            subjects.clone(),
        )
        .await?;
    // The entry above is written before any data leaves; this one says what actually did.
    plan.on_end = Some({
        let (state, ctx, auth) = (state.clone(), ctx.clone(), auth.clone());
        let (request_id, subjects) = (r.id.clone(), subjects.clone());
        Box::new(move |records, complete| {
            Box::pin(async move {
                let details = json!({
                    "request_id": request_id,
                    "streamed_records": records,
                    "complete": complete,
                });
                let recorded = state
                    .audit
                    .record(
                        &ctx,
                        &auth,
                        Action::SubjectsExport,
                        records,
                        details,
                        subjects,
                    )
                    .await;
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "recording what an export streamed failed");
                }
            })
        })
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"subject-export-{}.json\"", r.id),
        ))
        .streaming(export::stream(plan)))
}

/// Mixpanel's GDPR API answer: `ok`, and what was asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope {
    /// `ok`.
    status: &'static str,
    /// The task's id (create), its state, result and request (status); absent on cancel.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    results: Option<serde_json::Value>,
}

/// Mixpanel's `?token=` query: the project's public token names the project.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenParam {
    /// The project's public ingestion token.
    token: String,
}

async fn project_by_token(state: &AppState, token: &str) -> Result<ProjectId, AppError> {
    match state.store.project_by_ingest_token(token).await? {
        Some(p) if p.is_live() => Ok(p.id),
        _ => Err(AppError::NotFound(
            "token is not the token of any project".into(),
        )),
    }
}

/// Mixpanel's create call: `{"status": "ok", "results": {"task_id": ...}}`.
async fn mixpanel_create<P: Requirement>(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<TokenParam>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
    kind: RequestKind,
) -> Result<HttpResponse, AppError> {
    let project = project_by_token(&state, &q.token).await?;
    let auth = authorized::<P>(&state, &ctx, &principal, &project).await?;
    let new = body_of::<RequestBody>(body)?
        .parse(kind, Some("made through the Mixpanel-compatible GDPR API"))?;
    let r = make(&state, &ctx, &auth, new).await?;
    Ok(HttpResponse::Ok().json(Envelope {
        status: "ok",
        results: Some(json!({"task_id": r.id})),
    }))
}

/// Mixpanel's status call: `{"status": "ok", "results": {"status": ..., "result": ...}}`.
async fn mixpanel_status<P: Requirement>(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<TokenParam>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let project = project_by_token(&state, &q.token).await?;
    let auth = authorized::<P>(&state, &ctx, &principal, &project).await?;
    let r = subjects::find(&state.store, &auth, &path).await?;
    let view = RequestView::from(r);
    let result = view
        .download
        .clone()
        .or(view.error.clone())
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(Envelope {
        status: "ok",
        results: Some(json!({"status": view.status, "result": result, "request": view})),
    }))
}

/// Mixpanel-compatible: create a retrieval (an export).
#[utoipa::path(post, path = "/api/app/data-retrievals/v3.0/", tag = "privacy", params(TokenParam), request_body = RequestBody,
    responses((status = 200, body = Envelope, description = "`{\"status\": \"ok\", \"results\": {\"task_id\": ...}}`"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn mixpanel_create_retrieval(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<TokenParam>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    mixpanel_create::<perm::SubjectsExport>(ctx, principal, q, body, state, RequestKind::Export)
        .await
}

/// Mixpanel-compatible: a retrieval's status.
#[utoipa::path(get, path = "/api/app/data-retrievals/v3.0/{task_id}", tag = "privacy",
    params(("task_id" = String, Path, description = "The request"), TokenParam),
    responses((status = 200, body = Envelope, description = "`results.status` is the job state"), (status = 401), (status = 403), (status = 404)))]
pub async fn mixpanel_retrieval_status(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<TokenParam>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    mixpanel_status::<perm::SubjectsExport>(ctx, principal, path, q, state).await
}

/// Mixpanel-compatible: create a deletion.
#[utoipa::path(post, path = "/api/app/data-deletions/v3.0/", tag = "privacy", params(TokenParam), request_body = RequestBody,
    responses((status = 200, body = Envelope, description = "`{\"status\": \"ok\", \"results\": {\"task_id\": ...}}`"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn mixpanel_create_deletion(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<TokenParam>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    mixpanel_create::<perm::SubjectsErase>(ctx, principal, q, body, state, RequestKind::Erase).await
}

/// Mixpanel-compatible: a deletion's status.
#[utoipa::path(get, path = "/api/app/data-deletions/v3.0/{task_id}", tag = "privacy",
    params(("task_id" = String, Path, description = "The request"), TokenParam),
    responses((status = 200, body = Envelope, description = "`results.status` is the job state"), (status = 401), (status = 403), (status = 404)))]
pub async fn mixpanel_deletion_status(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<TokenParam>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    mixpanel_status::<perm::SubjectsErase>(ctx, principal, path, q, state).await
}

/// Mixpanel-compatible: cancel a deletion that has not started.
#[utoipa::path(delete, path = "/api/app/data-deletions/v3.0/{task_id}", tag = "privacy",
    params(("task_id" = String, Path, description = "The request"), TokenParam),
    responses((status = 200, body = Envelope, description = "`{\"status\": \"ok\"}`"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn mixpanel_cancel_deletion(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<TokenParam>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let project = project_by_token(&state, &q.token).await?;
    let auth = authorized::<perm::SubjectsErase>(&state, &ctx, &principal, &project).await?;
    subjects::cancel(
        &state.store,
        &state.audit,
        &ctx,
        &auth,
        &path,
        state.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Envelope {
        status: "ok",
        results: None,
    }))
}
