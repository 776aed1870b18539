//! Mixpanel-compatible ingestion: `/track`, `/engage` and `/import`.
//!
//! `/track` and `/engage` authenticate each record by the project token inside it, as the
//! SDKs expect; `/import` authenticates the caller as a service account (HTTP Basic).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::access::{Authorized, Principal, authorize, perm};
use crate::audit::RequestContext;
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::events::mixpanel::{self, Endpoint, ParsedEvent, ParsedUpdate, Payload, RecordError};
use crate::events::{self, profile::ProfileUpdate};
use crate::ledger::entry::Action;
use crate::privacy::consent::{self, Screen, Screened};
use crate::signin::principal::{self as principal_of, RouteAccess};
use crate::state::AppState;
use crate::store::{NewEvent, Project};

fn read_payload(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<Payload, AppError> {
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let payload = mixpanel::decode_body(body, form).map_err(|e| AppError::BadRequest(e.0))?;
    let max = state.settings.ingest.max_batch;
    if payload.records.len() > max {
        return Err(AppError::PayloadTooLarge(format!(
            "{} records in one request; at most {max} are accepted",
            payload.records.len()
        )));
    }
    if payload.records.is_empty() {
        return Err(AppError::BadRequest("the request holds no records".into()));
    }
    Ok(payload)
}

/// How a batch ended: what was stored and what was refused.
struct BatchResult {
    endpoint: &'static str,
    /// Whether any record or the caller proved a project (else the answer is 401).
    authenticated: bool,
    verbose: bool,
    form: bool,
    total: usize,
    accepted: u64,
    /// Valid records not stored because of an opt-out or missing consent.
    dropped: u64,
    failed: Vec<RecordError>,
}

impl BatchResult {
    fn new(
        endpoint: &'static str,
        authenticated: bool,
        (verbose, form, total): (bool, bool, usize),
        accepted: u64,
        failed: Vec<RecordError>,
    ) -> Self {
        Self {
            endpoint,
            authenticated,
            verbose,
            form,
            total,
            accepted,
            dropped: 0,
            failed,
        }
    }

    fn with_dropped(mut self, dropped: u64) -> Self {
        self.dropped = dropped;
        self
    }

    fn respond(mut self) -> Result<HttpResponse, AppError> {
        if self.failed.is_empty() {
            return Ok(match (self.endpoint, self.verbose) {
                ("import", _) => {
                    let mut body = json!({
                        "code": 200,
                        "num_records_imported": self.accepted,
                        // The SDKs (form bodies) want 1; Mixpanel's raw JSON Import API says "OK".
                        "status": if self.form { json!(1) } else { json!("OK") },
                    });
                    if self.dropped > 0 {
                        // Opted out or without consent: accepted, never stored, logged.
                        body["num_records_dropped"] = json!(self.dropped);
                    }
                    HttpResponse::Ok().json(body)
                }
                (_, true) => HttpResponse::Ok().json(json!({"status": 1, "error": null})),
                (_, false) => HttpResponse::Ok().content_type("text/plain").body("1"),
            });
        }
        self.failed.sort_by_key(|f| f.index);
        let (status, detail) = if !self.authenticated {
            (
                StatusCode::UNAUTHORIZED,
                "no record carries a valid project token".to_owned(),
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "{} of {} records failed validation; the others were stored",
                    self.failed.len(),
                    self.total
                ),
            )
        };
        let mut extensions = Map::new();
        extensions.insert("code".into(), status.as_u16().into());
        extensions.insert("num_records_imported".into(), self.accepted.into());
        extensions.insert(
            "failed_records".into(),
            serde_json::to_value(&self.failed).map_err(anyhow::Error::from)?,
        );
        Err(AppError::Detailed {
            status,
            detail,
            extensions,
        })
    }
}

/// Records an ingestion batch before it is written, so no write goes untraced; fails closed.
#[allow(clippy::too_many_arguments)]
async fn record_batch(
    state: &AppState,
    ctx: &RequestContext,
    auth: &Authorized<perm::EventsIngest>,
    action: Action,
    endpoint: &str,
    stored: usize,
    rejected: usize,
    dropped: Value,
) -> Result<u64, AppError> {
    let details = json!({"endpoint": endpoint, "valid": stored, "rejected_in_request": rejected, "dropped": dropped});
    state
        .audit
        .record(ctx, auth, action, stored as u64, details, vec![])
        .await
}

/// Drops what opted-out (or, where required, unconsented) people sent, before it is logged
/// and stored. `project` is the live project `auth` names, which callers have already read.
async fn screen<T: Screened>(
    state: &AppState,
    ctx: &RequestContext,
    auth: &Authorized<perm::EventsIngest>,
    project: &Project,
    items: Vec<T>,
) -> Result<Screen<T>, AppError> {
    consent::screen(
        &state.store,
        &state.audit,
        ctx,
        auth,
        project,
        items,
        &state.settings.privacy.opt_out_property,
        state.clock.now(),
    )
    .await
}

/// Groups records by the project token they carry and authorizes each group; records without
/// a known token join `failed`. A request with no valid token at all is logged as rejected.
async fn authorize_by_token<T>(
    state: &AppState,
    ctx: &RequestContext,
    route: RouteAccess,
    items: Vec<(usize, Option<String>, Option<String>, T)>,
    token_field: &str,
    failed: &mut Vec<RecordError>,
) -> Result<Vec<(Authorized<perm::EventsIngest>, Project, Vec<T>)>, AppError> {
    let mut groups: BTreeMap<String, Vec<(usize, Option<String>, T)>> = BTreeMap::new();
    for (index, insert_id, token, item) in items {
        match token {
            Some(t) => groups.entry(t).or_default().push((index, insert_id, item)),
            None => failed.push(RecordError {
                index,
                insert_id,
                field: token_field.into(),
                message: "is required".into(),
            }),
        }
    }
    let mut out = Vec::new();
    for (token, members) in groups {
        match state.store.project_by_ingest_token(&token).await? {
            Some(project) if project.is_live() => {
                let principal = principal_of::of_project_token(project.id.clone(), route)?;
                let auth = authorize::<perm::EventsIngest>(&principal, &project.id)?;
                let items = members.into_iter().map(|(_, _, item)| item).collect();
                out.push((auth, project, items));
            }
            _ => failed.extend(
                members
                    .into_iter()
                    .map(|(index, insert_id, _)| RecordError {
                        index,
                        insert_id,
                        field: token_field.into(),
                        message: "is not the token of any project".into(),
                    }),
            ),
        }
    }
    if out.is_empty() {
        // Not one record proved a project: an authentication failure, and logged as one.
        state
            .audit
            .rejected(ctx, "no record carries a valid project token")
            .await?;
    }
    Ok(out)
}

#[utoipa::path(post, path = "/track", tag = "ingest",
    request_body(content = String, description = "Form field `data` (JSON or base64 JSON) or a raw JSON list of events", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{\"status\": 1}` (verbose) or `1`"), (status = 400), (status = 401), (status = 413)))]
pub async fn track(
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
    route: RouteAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let payload = read_payload(&req, &body, &state)?;
    let rules = state.time_rules();
    let mut failed = Vec::new();
    let mut items = Vec::new();
    let total = payload.records.len();
    for (i, record) in payload.records.into_iter().enumerate() {
        match mixpanel::parse_event(i, record, Endpoint::Track, rules) {
            Ok(ParsedEvent { token, event }) => {
                items.push((i, event.insert_id.clone(), token, event))
            }
            Err(e) => failed.push(e),
        }
    }
    let (mut accepted, mut dropped) = (0, 0);
    let groups =
        authorize_by_token(&state, &ctx, route, items, "properties.token", &mut failed).await?;
    let authenticated = !groups.is_empty();
    for (auth, project, batch) in groups {
        let screened = screen(&state, &ctx, &auth, &project, batch).await?;
        dropped += screened.opted_out + screened.no_consent;
        record_batch(
            &state,
            &ctx,
            &auth,
            Action::EventsIngest,
            "track",
            screened.kept.len(),
            failed.len(),
            screened.dropped(),
        )
        .await?;
        if !screened.kept.is_empty() {
            let outcome = events::ingest(&state.store, &auth, &screened.kept, rules.now).await?;
            accepted += outcome.inserted + outcome.duplicates;
        }
    }
    BatchResult::new(
        "track",
        authenticated,
        (payload.verbose, payload.form, total),
        accepted,
        failed,
    )
    .with_dropped(dropped)
    .respond()
}

#[utoipa::path(post, path = "/engage", tag = "ingest",
    request_body(content = String, description = "Form field `data` or raw JSON: profile updates (`$set`, `$set_once`, `$add`, `$append`, `$union`, `$remove`, `$unset`, `$delete`)", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{\"status\": 1}` (verbose) or `1`"), (status = 400), (status = 401), (status = 413)))]
pub async fn engage(
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
    route: RouteAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let payload = read_payload(&req, &body, &state)?;
    let mut failed = Vec::new();
    let mut items: Vec<(usize, Option<String>, Option<String>, ProfileUpdate)> = Vec::new();
    for (i, record) in payload.records.iter().enumerate() {
        match mixpanel::parse_update(i, record) {
            Ok(ParsedUpdate { token, update }) => items.push((i, None, token, update)),
            Err(e) => failed.push(e),
        }
    }
    let now = state.clock.now();
    let (mut accepted, mut dropped) = (0, 0);
    let groups = authorize_by_token(&state, &ctx, route, items, "$token", &mut failed).await?;
    let authenticated = !groups.is_empty();
    for (auth, project, batch) in groups {
        let screened = screen(&state, &ctx, &auth, &project, batch).await?;
        dropped += screened.opted_out + screened.no_consent;
        record_batch(
            &state,
            &ctx,
            &auth,
            Action::ProfilesUpdate,
            "engage",
            screened.kept.len(),
            failed.len(),
            screened.dropped(),
        )
        .await?;
        if !screened.kept.is_empty() {
            accepted += events::update_profiles(&state.store, &auth, &screened.kept, now).await?;
        }
    }
    BatchResult::new(
        "engage",
        authenticated,
        (payload.verbose, payload.form, payload.records.len()),
        accepted,
        failed,
    )
    .with_dropped(dropped)
    .respond()
}

/// `/import`'s query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// The project to import into; defaults to the service account's own.
    project_id: Option<String>,
}

#[utoipa::path(post, path = "/import", tag = "ingest", params(ImportParams),
    request_body(content = String, description = "Form field `data` or a raw JSON list of events, each with `time` and `$insert_id`", content_type = "application/json"),
    responses((status = 200, description = "`code`, `num_records_imported`, `status`"), (status = 400, description = "Some records failed: `failed_records` says which and why"), (status = 401), (status = 403), (status = 413)),
    security(("basic" = [])))]
pub async fn import(
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
    principal: Principal,
    params: web::Query<ImportParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let project = match &params.project_id {
        Some(p) => {
            ProjectId::parse(p).map_err(|e| AppError::BadRequest(format!("project_id: {e}")))?
        }
        None => match principal.subject() {
            crate::access::Subject::ServiceAccount { project, .. } => project.clone(),
            crate::access::Subject::ProjectToken { project } => project.clone(),
            crate::access::Subject::User { .. } => {
                return Err(AppError::BadRequest(
                    "project_id is required when a person imports".into(),
                ));
            }
        },
    };
    let auth = state
        .audit
        .authorize::<perm::EventsIngest>(&ctx, &principal, &project, Action::EventsIngest)
        .await?;
    let payload = read_payload(&req, &body, &state)?;
    let live = crate::projects::live(state.store.as_ref(), auth.project()).await?;
    let rules = state.time_rules();
    let mut failed = Vec::new();
    let mut batch: Vec<NewEvent> = Vec::new();
    let total = payload.records.len();
    for (i, record) in payload.records.into_iter().enumerate() {
        match mixpanel::parse_event(i, record, Endpoint::Import, rules) {
            Ok(ParsedEvent {
                token: Some(t),
                event,
            }) if t != live.ingest_token => failed.push(RecordError {
                index: i,
                insert_id: event.insert_id,
                field: "properties.token".into(),
                message: "does not belong to the project being imported into".into(),
            }),
            Ok(ParsedEvent { event, .. }) => batch.push(event),
            Err(e) => failed.push(e),
        }
    }
    let (mut accepted, mut dropped) = (0, 0);
    if !batch.is_empty() {
        let screened = screen(&state, &ctx, &auth, &live, batch).await?;
        dropped = screened.opted_out + screened.no_consent;
        record_batch(
            &state,
            &ctx,
            &auth,
            Action::EventsIngest,
            "import",
            screened.kept.len(),
            failed.len(),
            screened.dropped(),
        )
        .await?;
        if !screened.kept.is_empty() {
            let outcome = events::ingest(&state.store, &auth, &screened.kept, rules.now).await?;
            accepted = outcome.inserted + outcome.duplicates;
        }
    }
    BatchResult::new(
        "import",
        true,
        (payload.verbose, payload.form, total),
        accepted,
        failed,
    )
    .with_dropped(dropped)
    .respond()
}
