//! Mixpanel-compatible ingestion: `/track`, `/engage` and `/import`, in every shape the
//! official SDKs send: with or without a trailing slash; `POST` with a form field `data=` (JSON
//! or base64) or a JSON body; `GET` with `data=` in the query string (`img=1`, the image pixel,
//! is answered with a 1×1 GIF); `verbose` and `ip` from the query string or the form.
//!
//! `/track` and `/engage` authenticate each record by the project token inside it, as the
//! SDKs expect, and accept a browser's page only from the origins its project lists
//! (routes/cors.rs); `/import` authenticates the caller as a service account (HTTP Basic).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::cors;
use crate::access::{Authorized, Principal, authorize, perm};
use crate::audit::RequestContext;
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::events;
use crate::events::identity::Sender;
use crate::events::metrics::Fate;
use crate::events::mixpanel::{
    self, Endpoint, ParsedEvent, ParsedGroupUpdate, ParsedUpdate, Payload, RecordError,
};
use crate::events::profile::{GroupUpdate, ProfileUpdate};
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
    let payload = mixpanel::decode_request(req.query_string(), body, form)
        .map_err(|e| AppError::BadRequest(e.0))?;
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

/// A transparent 1×1 GIF: the answer to the image-pixel shape (`img=1`).
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// Answers `/track` and `/engage` as Mixpanel does when the client asked `verbose=1`: a failure
/// is `{"status": 0, "error": why}` (with its HTTP status), which the SDKs read; otherwise a
/// problem.
fn answer(verbose: bool, r: Result<HttpResponse, AppError>) -> Result<HttpResponse, AppError> {
    match r {
        Err(e) if verbose => Ok(e.mixpanel_verbose()),
        other => other,
    }
}

/// How a request was sent, which decides how it is answered.
#[derive(Debug, Clone, Copy)]
struct Shape {
    verbose: bool,
    form: bool,
    img: bool,
    ip: bool,
    total: usize,
}

impl Shape {
    fn of(payload: &Payload) -> Self {
        Self {
            verbose: payload.verbose,
            form: payload.form,
            img: payload.img,
            ip: payload.ip,
            total: payload.records.len(),
        }
    }
}

/// How a batch ended: what was stored and what was refused.
/// What `/track`, `/engage` and `/groups` answer when asked `verbose=1` (and `/import` a form
/// body), as Mixpanel's SDKs read it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Verbose {
    /// 1: stored.
    status: u8,
    /// Why not, when not (refusals are problem+json documents that carry it too).
    error: Option<String>,
}

/// What `/import` answers with a JSON body, as Mixpanel's Import API does.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// The HTTP status.
    code: u16,
    /// Records stored (or already stored under their `$insert_id`).
    num_records_imported: u64,
    /// `"OK"` (a JSON body) or `1` (a form body, as the SDKs send).
    #[schema(value_type = Object)]
    status: Value,
    /// Records accepted but not stored: their person opted out, or consent was missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    num_records_dropped: Option<u64>,
    /// Present (null) for a form body, as the SDKs expect.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

struct BatchResult {
    endpoint: &'static str,
    /// Why no record proved a project that accepts it, if none did (the answer is then 401).
    refused: Option<String>,
    verbose: bool,
    form: bool,
    img: bool,
    total: usize,
    accepted: u64,
    /// Valid records not stored because of an opt-out or missing consent.
    dropped: u64,
    failed: Vec<RecordError>,
}

impl BatchResult {
    fn new(
        endpoint: &'static str,
        refused: Option<String>,
        shape: Shape,
        accepted: u64,
        failed: Vec<RecordError>,
    ) -> Self {
        Self {
            endpoint,
            refused,
            verbose: shape.verbose,
            form: shape.form,
            img: shape.img,
            total: shape.total,
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
            // Mixpanel answers a bare 1 unless asked for verbose answers, whatever the body's
            // type (the mobile SDKs post JSON and parse the answer as a number), except that
            // its JSON Import API always answers JSON.
            let import_json = self.endpoint == "import" && !self.form;
            return Ok(match (self.endpoint, self.verbose || import_json) {
                (_, _) if self.img => HttpResponse::Ok()
                    .content_type("image/gif")
                    .insert_header(("Cache-Control", "no-store"))
                    .body(PIXEL),
                ("import", true) => HttpResponse::Ok().json(Imported {
                    code: 200,
                    num_records_imported: self.accepted,
                    // The SDKs (form bodies, verbose=1) want 1; Mixpanel's JSON Import API
                    // says "OK".
                    status: if self.form { json!(1) } else { json!("OK") },
                    // Opted out or without consent: accepted, never stored, logged.
                    num_records_dropped: (self.dropped > 0).then_some(self.dropped),
                    error: self.form.then_some(Value::Null),
                }),
                (_, true) => HttpResponse::Ok().json(Verbose {
                    status: 1,
                    error: None,
                }),
                (_, false) => HttpResponse::Ok().content_type("text/plain").body("1"),
            });
        }
        self.failed.sort_by_key(|f| f.index);
        let (status, detail) = if let Some(why) = self.refused.take() {
            (StatusCode::UNAUTHORIZED, why)
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

/// Counts the events screening dropped, for `/metrics`.
fn count_screened(state: &AppState, screened: &Screen<NewEvent>) {
    state
        .ingested
        .add(Fate::OptedOut, screened.opted_out as usize);
    state
        .ingested
        .add(Fate::NoConsent, screened.no_consent as usize);
}

/// Counts the events stored and those already stored, for `/metrics`.
fn count_stored(state: &AppState, outcome: &crate::store::InsertOutcome) {
    state.ingested.add(Fate::Stored, outcome.inserted as usize);
    state
        .ingested
        .add(Fate::Duplicate, outcome.duplicates as usize);
}

/// Records a batch of profile updates before it is written, so no write goes untraced; fails
/// closed.
async fn record_profiles(
    state: &AppState,
    ctx: &RequestContext,
    auth: &Authorized<perm::EventsIngest>,
    stored: usize,
    rejected: usize,
    dropped: Value,
) -> Result<u64, AppError> {
    let details = json!({"endpoint": "engage", "valid": stored, "rejected_in_request": rejected, "dropped": dropped});
    state
        .audit
        .record(
            ctx,
            auth,
            Action::ProfilesUpdate,
            stored as u64,
            details,
            vec![],
        )
        .await
}

/// Records an event batch and stores what screening kept of it, with the identity links the
/// events ask for; fails closed. Counts the stored events for `/metrics`; returns how many
/// were accepted (stored, or already stored).
async fn store_batch(
    state: &AppState,
    ctx: &RequestContext,
    auth: &Authorized<perm::EventsIngest>,
    endpoint: &str,
    screened: &Screen<NewEvent>,
    rejected: usize,
    sender: Sender,
) -> Result<u64, AppError> {
    let kept = &screened.kept;
    let links = events::identity::links_of(kept, sender);
    // Links asked for, not made: the entry is written before (or with) the batch.
    let details = json!({"endpoint": endpoint, "valid": kept.len(), "rejected_in_request": rejected,
        "dropped": screened.dropped(), "identity_links_asked": links.len()});
    let now = state.clock.now();
    let stored = events::ingest(
        &state.store,
        &state.audit,
        ctx,
        auth,
        details,
        (kept, &links),
        now,
    )
    .await?;
    Ok(stored.map_or(0, |outcome| {
        count_stored(state, &outcome);
        outcome.inserted + outcome.duplicates
    }))
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
/// a known token, or whose project does not accept the browser page they come from, join
/// `failed`. A request with no accepted record at all is logged as rejected.
async fn authorize_by_token<T>(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    route: RouteAccess,
    items: Vec<(usize, Option<String>, Option<String>, T)>,
    token_field: &str,
    failed: &mut Vec<RecordError>,
) -> Result<(TokenGroups<T>, Option<String>), AppError> {
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
    let origin = cors::page_origin(req);
    let mut refused_origin = None;
    let mut out = Vec::new();
    for (token, members) in groups {
        let refuse = |field: &str, message: String, failed: &mut Vec<RecordError>| {
            failed.extend(members.iter().map(|(index, insert_id, _)| RecordError {
                index: *index,
                insert_id: insert_id.clone(),
                field: field.into(),
                message: message.clone(),
            }))
        };
        match state.store.project_by_ingest_token(&token).await? {
            Some(project) if project.is_live() => {
                if let Some(why) = cors::refusal(&project, &origin) {
                    refuse("Origin", why.clone(), failed);
                    refused_origin = Some(why);
                    continue;
                }
                let principal = principal_of::of_project_token(project.id.clone(), route)?;
                let auth = authorize::<perm::EventsIngest>(&principal, &project.id)?;
                let items = members.into_iter().map(|(_, _, item)| item).collect();
                out.push((auth, project, items));
            }
            _ => refuse(
                token_field,
                "is not the token of any project".into(),
                failed,
            ),
        }
    }
    if out.is_empty() {
        // Not one record proved a project that accepts it: an authentication failure, logged.
        let why =
            refused_origin.unwrap_or_else(|| "no record carries a valid project token".into());
        state.audit.rejected(ctx, &why).await?;
        return Ok((out, Some(why)));
    }
    cors::accept(req, &origin);
    Ok((out, None))
}

/// Records grouped by the project whose token they carry, each group authorized.
type TokenGroups<T> = Vec<(Authorized<perm::EventsIngest>, Project, Vec<T>)>;

/// Keeps the client's address in `$ip` where the project opts in and the SDK asked for
/// geolocation (`ip=1`); an address the event already carries is left as sent.
fn record_ip(project: &Project, shape: Shape, ctx: &RequestContext, batch: &mut [NewEvent]) {
    let Some(ip) = ctx
        .client_ip
        .as_ref()
        .filter(|_| shape.ip && project.record_client_ip)
    else {
        return;
    };
    for event in batch {
        event
            .properties
            .entry("$ip")
            .or_insert_with(|| Value::String(ip.clone()));
    }
}

#[utoipa::path(method(get, post), path = "/track", tag = "ingest",
    params(("data" = Option<String>, Query, description = "GET: the events, JSON or base64 JSON"),
        ("verbose" = Option<u8>, Query, description = "1: answer `{\"status\": 1, \"error\": null}` or `{\"status\": 0, \"error\": why}`"),
        ("ip" = Option<u8>, Query, description = "1: keep the client's address in `$ip`, where the project opts in"),
        ("img" = Option<u8>, Query, description = "1: answer a 1×1 GIF (the image pixel)")),
    request_body(content = String, description = "Form field `data` (JSON or base64 JSON) or a raw JSON list of events; also at `/track/`", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Stored: `1`, or with `verbose=1` (or a JSON body) `{\"status\": 1, \"error\": null}`, or with `img=1` a 1×1 GIF", content((Verbose = "application/json"), (String = "text/plain"), (Vec<u8> = "image/gif"))), (status = 400), (status = 401), (status = 413)))]
pub async fn track(
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
    route: RouteAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let payload = read_payload(&req, &body, &state)?;
    let verbose = payload.verbose;
    answer(
        verbose,
        track_records(&req, &ctx, route, &state, payload).await,
    )
}

async fn track_records(
    req: &HttpRequest,
    ctx: &RequestContext,
    route: RouteAccess,
    state: &AppState,
    payload: Payload,
) -> Result<HttpResponse, AppError> {
    let shape = Shape::of(&payload);
    let rules = state.time_rules();
    let mut failed = Vec::new();
    let mut items = Vec::new();
    for (i, record) in payload.records.into_iter().enumerate() {
        match mixpanel::parse_event(i, record, Endpoint::Track, rules) {
            Ok(ParsedEvent { token, event }) => {
                items.push((i, event.insert_id.clone(), token, event))
            }
            Err(e) => failed.push(e),
        }
    }
    let (mut accepted, mut dropped) = (0, 0);
    let (groups, refused) = authorize_by_token(
        state,
        req,
        ctx,
        route,
        items,
        "properties.token",
        &mut failed,
    )
    .await?;
    for (auth, project, mut batch) in groups {
        record_ip(&project, shape, ctx, &mut batch);
        let screened = screen(state, ctx, &auth, &project, batch).await?;
        dropped += screened.opted_out + screened.no_consent;
        count_screened(state, &screened);
        accepted += store_batch(
            state,
            ctx,
            &auth,
            "track",
            &screened,
            failed.len(),
            Sender::PublicToken,
        )
        .await?;
    }
    state.ingested.add(Fate::Invalid, failed.len());
    BatchResult::new("track", refused, shape, accepted, failed)
        .with_dropped(dropped)
        .respond()
}

#[utoipa::path(method(get, post), path = "/engage", tag = "ingest",
    params(("data" = Option<String>, Query, description = "GET: the updates, JSON or base64 JSON"),
        ("verbose" = Option<u8>, Query, description = "1: answer `{\"status\": 1, \"error\": null}` or `{\"status\": 0, \"error\": why}`"),
        ("img" = Option<u8>, Query, description = "1: answer a 1×1 GIF (the image pixel)")),
    request_body(content = String, description = "Form field `data` or raw JSON: profile updates (`$set`, `$set_once`, `$add`, `$append`, `$union`, `$remove`, `$unset`, `$delete`); also at `/engage/`", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Stored: `1`, or with `verbose=1` (or a JSON body) `{\"status\": 1, \"error\": null}`, or with `img=1` a 1×1 GIF", content((Verbose = "application/json"), (String = "text/plain"), (Vec<u8> = "image/gif"))), (status = 400), (status = 401), (status = 413)))]
pub async fn engage(
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
    route: RouteAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let payload = read_payload(&req, &body, &state)?;
    let verbose = payload.verbose;
    answer(
        verbose,
        engage_records(&req, &ctx, route, &state, payload).await,
    )
}

async fn engage_records(
    req: &HttpRequest,
    ctx: &RequestContext,
    route: RouteAccess,
    state: &AppState,
    payload: Payload,
) -> Result<HttpResponse, AppError> {
    let shape = Shape::of(&payload);
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
    let (groups, refused) =
        authorize_by_token(state, req, ctx, route, items, "$token", &mut failed).await?;
    for (auth, project, batch) in groups {
        let screened = screen(state, ctx, &auth, &project, batch).await?;
        dropped += screened.opted_out + screened.no_consent;
        record_profiles(
            state,
            ctx,
            &auth,
            screened.kept.len(),
            failed.len(),
            screened.dropped(),
        )
        .await?;
        if !screened.kept.is_empty() {
            accepted += events::update_profiles(&state.store, &auth, &screened.kept, now).await?;
        }
    }
    BatchResult::new("engage", refused, shape, accepted, failed)
        .with_dropped(dropped)
        .respond()
}

#[utoipa::path(method(get, post), path = "/groups", tag = "ingest",
    params(("data" = Option<String>, Query, description = "GET: the updates, JSON or base64 JSON"),
        ("verbose" = Option<u8>, Query, description = "1: answer `{\"status\": 1, \"error\": null}` or `{\"status\": 0, \"error\": why}`")),
    request_body(content = String, description = "Form field `data` or raw JSON: group profile updates, each with `$token`, `$group_key`, `$group_id` and one of `$set`, `$set_once`, `$union`, `$remove`, `$unset`, `$delete`; also at `/groups/`", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Stored: `1`, or with `verbose=1` (or a JSON body) `{\"status\": 1, \"error\": null}`, or with `img=1` a 1×1 GIF", content((Verbose = "application/json"), (String = "text/plain"), (Vec<u8> = "image/gif"))), (status = 400), (status = 401), (status = 413)))]
pub async fn groups(
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
    route: RouteAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let payload = read_payload(&req, &body, &state)?;
    let verbose = payload.verbose;
    answer(
        verbose,
        group_records(&req, &ctx, route, &state, payload).await,
    )
}

async fn group_records(
    req: &HttpRequest,
    ctx: &RequestContext,
    route: RouteAccess,
    state: &AppState,
    payload: Payload,
) -> Result<HttpResponse, AppError> {
    let shape = Shape::of(&payload);
    let mut failed = Vec::new();
    let mut items: Vec<(usize, Option<String>, Option<String>, GroupUpdate)> = Vec::new();
    for (i, record) in payload.records.iter().enumerate() {
        match mixpanel::parse_group_update(i, record) {
            Ok(ParsedGroupUpdate { token, update }) => items.push((i, None, token, update)),
            Err(e) => failed.push(e),
        }
    }
    let now = state.clock.now();
    let mut accepted = 0;
    let (groups, refused) =
        authorize_by_token(state, req, ctx, route, items, "$token", &mut failed).await?;
    for (auth, _project, batch) in groups {
        // A group is not a person: there is no opt-out or consent to screen by. Its keys
        // are logged, never its id, which may name a customer.
        let mut keys: Vec<&str> = batch.iter().map(|u| u.group.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let details = json!({"endpoint": "groups", "valid": batch.len(), "rejected_in_request": failed.len(), "group_keys": keys});
        state
            .audit
            .record(
                ctx,
                &auth,
                Action::ProfilesUpdate,
                batch.len() as u64,
                details,
                vec![],
            )
            .await?;
        accepted += events::update_groups(&state.store, &auth, &batch, now).await?;
    }
    BatchResult::new("groups", refused, shape, accepted, failed).respond()
}

/// `/import`'s query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// The project to import into; defaults to the service account's own.
    project_id: Option<String>,
}

#[utoipa::path(method(get, post), path = "/import", tag = "ingest", params(ImportParams),
    request_body(content = String, description = "Form field `data` or a raw JSON list of events, each with `time` and `$insert_id`", content_type = "application/json"),
    responses((status = 200, description = "Stored: `code`, `num_records_imported`, `status`", content((Imported = "application/json"), (String = "text/plain"))), (status = 400, description = "Some records failed: `failed_records` says which and why"), (status = 401), (status = 403), (status = 413)),
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
    let shape = Shape::of(&payload);
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
        count_screened(&state, &screened);
        accepted = store_batch(
            &state,
            &ctx,
            &auth,
            "import",
            &screened,
            failed.len(),
            Sender::ServiceAccount,
        )
        .await?;
    }
    state.ingested.add(Fate::Invalid, failed.len());
    BatchResult::new("import", None, shape, accepted, failed)
        .with_dropped(dropped)
        .respond()
}
