//! The audit log over HTTP: the latest checkpoint and proofs for anyone (they reveal only
//! salted hashes), and exports for holders of `audit:export`.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::pages;
use crate::access::{Principal, perm};
use crate::audit::{RequestContext, Standing, export, proofs, read, report};
use crate::domain::{ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::{Action, Outcome};
use crate::ledger::show;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/audit/checkpoint", tag = "audit",
    responses((status = 200, description = "The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)", content((String = "text/plain"))), (status = 404)))]
pub async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let (_, note) = state
        .store
        .latest_checkpoint()
        .await?
        .ok_or_else(|| AppError::NotFound("no checkpoint yet".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(note))
}

/// Which inclusion proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionParams {
    /// The entry's sequence number.
    seq: u64,
    /// The tree size to prove against (default: the latest checkpoint's).
    size: Option<u64>,
}

/// An inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    seq: u64,
    size: u64,
    /// Base64 RFC 6962 leaf hash of the entry.
    leaf_hash: String,
    /// Base64 sibling hashes, leaf to root.
    proof: Vec<String>,
}

/// A consistency proof between two sizes of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older size.
    from: u64,
    /// The newer size.
    to: u64,
    /// Base64 RFC 6962 hashes proving the tree of `to` extends the tree of `from`.
    proof: Vec<String>,
}

fn b64s(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(|h| STANDARD.encode(h)).collect()
}

#[utoipa::path(get, path = "/api/v1/audit/proof/inclusion", tag = "audit", params(InclusionParams),
    responses((status = 200, body = InclusionProof), (status = 400)))]
pub async fn inclusion(
    state: web::Data<AppState>,
    q: web::Query<InclusionParams>,
) -> Result<HttpResponse, AppError> {
    let found = proofs::inclusion(state.store.as_ref(), q.seq, q.size).await?;
    Ok(HttpResponse::Ok().json(InclusionProof {
        seq: q.seq,
        size: found.size,
        leaf_hash: STANDARD.encode(found.leaf),
        proof: b64s(&found.proof),
    }))
}

/// Which consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// The older tree size.
    from: u64,
    /// The newer tree size (default: the latest checkpoint's).
    to: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/audit/proof/consistency", tag = "audit", params(ConsistencyParams),
    responses((status = 200, description = "`from`, `to` and base64 `proof` hashes", body = ConsistencyProof), (status = 400)))]
pub async fn consistency(
    state: web::Data<AppState>,
    q: web::Query<ConsistencyParams>,
) -> Result<HttpResponse, AppError> {
    let (to, proof) = proofs::consistency(state.store.as_ref(), q.from, q.to).await?;
    Ok(HttpResponse::Ok().json(ConsistencyProof {
        from: q.from,
        to,
        proof: b64s(&proof),
    }))
}

/// A failure after the response has begun can only cut the bundle short (it then fails
/// verification); it is logged here, since the client sees only the cut.
fn stream_error(chunk: anyhow::Result<web::Bytes>) -> Result<web::Bytes, AppError> {
    chunk.map_err(|e| {
        tracing::error!(error = %e, "an audit export stopped part-way");
        AppError::Unavailable(e.to_string())
    })
}

/// A proved bundle that cannot be started: the store's own error, or (the checkpoint it
/// waited for missing) the service's condition, never the caller's.
fn export_failed(e: anyhow::Error) -> AppError {
    match e.downcast::<crate::store::StoreError>() {
        Ok(store) => AppError::from(store),
        Err(e) => AppError::Unavailable(e.to_string()),
    }
}

/// What to export: one project's entries, or a range of the whole log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// The project whose entries to export, each with an inclusion proof. Without it, the
    /// whole log (which needs `audit:export` on every project).
    project: Option<String>,
    /// Whole-log export: the first sequence number (default 0).
    from: Option<u64>,
    /// Whole-log export: stop at the last signed size not above this.
    to: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportParams),
    responses((status = 200, description = "A bundle: one JSON object per line (docs/audit-log-format.md)", content((String = "application/x-ndjson"))), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub async fn export(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<ExportParams>,
) -> Result<HttpResponse, AppError> {
    let Some(project) = &q.project else {
        let auth = state
            .audit
            .authorize_global::<perm::AuditExport>(&ctx, &principal, Action::AuditExport)
            .await?;
        let from = q.from.unwrap_or(0);
        let bundle = export::Export::log(
            state.store.clone(),
            &state.settings.audit.origin,
            from,
            q.to,
            None,
        )
        .await
        // A store failure stays a 503; anything else is a range the log cannot serve.
        .map_err(|e| match e.downcast::<crate::store::StoreError>() {
            Ok(store) => AppError::from(store),
            Err(e) => AppError::BadRequest(e.to_string()),
        })?;
        let entries = bundle.log_entries();
        // Logged before the first byte goes out; the bundle then streams a chunk at a time.
        state
            .audit
            .record_global(
                &ctx,
                &auth,
                Action::AuditExport,
                json!({"scope": "log", "from": from, "to": q.to, "entries": entries}),
            )
            .await?;
        return Ok(HttpResponse::Ok()
            .content_type("application/x-ndjson")
            .streaming(bundle.stream().map(stream_error)));
    };
    let project = ProjectId::parse(project).map_err(|e| AppError::BadRequest(e.0))?;
    let auth = state
        .audit
        .authorize::<perm::AuditExport>(&ctx, &principal, &project, Action::AuditExport)
        .await?;
    // The export's own entry comes first: it closes its commit group, so the bundle can end
    // at it and prove that no entry of the project is missing.
    let seq = state
        .audit
        .record(
            &ctx,
            &auth,
            Action::AuditExport,
            0,
            json!({"scope": "project"}),
            vec![],
        )
        .await?;
    state
        .audit
        .wait_signed(seq, std::time::Duration::from_secs(5))
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let bundle = export::Export::project(
        state.store.clone(),
        &state.settings.audit.origin,
        &project,
        seq + 1,
    )
    .await
    .map_err(export_failed)?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(bundle.stream().map(stream_error)))
}

/// Which entries to read.
#[derive(Debug, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryParams {
    /// Only this project's entries (needs `audit:read` there). Without it, every entry, which
    /// needs `audit:read` on every project.
    pub project: Option<String>,
    /// Only this action, such as `events.query`.
    pub action: Option<String>,
    /// Only this outcome: `allowed`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// Only this actor id (a person's id, a service account's name).
    pub actor: Option<String>,
    /// From this time, inclusive: RFC 3339 or epoch milliseconds.
    pub from: Option<String>,
    /// To this time, exclusive: RFC 3339 or epoch milliseconds.
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Entries per page, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

impl EntryParams {
    /// The same with empty fields as absent: a form sends every field, filled or not.
    pub fn without_empty(self) -> Self {
        let some = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Self {
            project: some(self.project),
            action: some(self.action),
            outcome: some(self.outcome),
            actor: some(self.actor),
            from: some(self.from),
            to: some(self.to),
            ..self
        }
    }

    /// The filters as the `audit.read` entry records them.
    pub fn filters(&self, limit: u32) -> serde_json::Value {
        json!({
            "project": self.project, "action": self.action, "outcome": self.outcome,
            "actor": self.actor, "from": self.from, "to": self.to, "cursor": self.cursor,
            "limit": limit,
        })
    }
}

impl EntryParams {
    /// The query these parameters ask for; a 400 naming the first bad one.
    pub fn parse(&self) -> Result<read::EntryQuery, AppError> {
        let bad = |what: &str, v: &str| AppError::BadRequest(format!("{what} {v:?} is not known"));
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(crate::domain::Timestamp::parse)
                .transpose()
                .map_err(|e| AppError::BadRequest(format!("{name}: {e}")))
        };
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(AppError::BadRequest(
                "limit must be between 1 and 500".into(),
            ));
        }
        if let Some(actor) = &self.actor {
            crate::domain::FreeText::parse("actor", actor)?;
        }
        Ok(read::EntryQuery {
            project: self
                .project
                .as_deref()
                .map(ProjectId::parse)
                .transpose()
                .map_err(|e| AppError::BadRequest(e.0))?,
            action: self
                .action
                .as_deref()
                .map(|a| Action::parse(a).ok_or_else(|| bad("action", a)))
                .transpose()?,
            outcome: self
                .outcome
                .as_deref()
                .map(|o| Outcome::parse(o).ok_or_else(|| bad("outcome", o)))
                .transpose()?,
            actor: self.actor.clone(),
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            before: self.cursor,
            limit,
        })
    }
}

/// A page of decoded entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPageView {
    /// Newest first, each with every field of docs/audit-log-format.md section 1 (`details`
    /// parsed, hashes in hex, `time` in RFC 3339 beside `time_ms`).
    #[schema(value_type = Vec<Object>)]
    entries: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent when there is no more.
    next_cursor: Option<u64>,
}

/// Reads the log's entries, decoded, newest first; the read is itself logged (`audit.read`,
/// with its filters).
#[utoipa::path(get, path = "/api/v1/audit/entries", tag = "audit", params(EntryParams),
    responses((status = 200, body = EntryPageView), (status = 400), (status = 401), (status = 403)))]
pub async fn entries(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<EntryParams>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner().without_empty();
    let query = q.parse()?;
    let filters = q.filters(query.limit);
    // The right is checked before anything is read; the read is logged before it is answered.
    let page = read::read_page(
        &state.audit,
        state.store.as_ref(),
        &ctx,
        &principal,
        &query,
        filters,
    )
    .await?;
    Ok(HttpResponse::Ok().json(EntryPageView {
        entries: page.entries.iter().map(show::entry_json).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Whose report: a person of a project, named by their distinct_id (in the body, so it never
/// lands in a URL, a proxy's log or the browser's history).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectReportRequest {
    /// The project.
    project: String,
    /// The person's distinct_id in that project.
    distinct_id: String,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<u64>,
    /// Entries per page, 1 to 500 (default 100).
    #[serde(default)]
    limit: Option<u32>,
}

/// Who accessed one person's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectReport {
    project: String,
    /// `named` (the entries below name them), `erased` (their salt was deleted: no entry can
    /// be tied to them any more) or `never_named` (no entry names them).
    standing: &'static str,
    /// The pseudonym their entries carry (hex), when named: the value of
    /// `auditgate-verify --show --subject` on the project's bundle.
    subject: Option<String>,
    /// When they were erased: for `erased`, or for `named` when the same id was erased
    /// before and named again since (entries from before then are not in the report).
    erased_at: Option<String>,
    /// The answer in a sentence.
    message: String,
    /// The entries naming them, newest first, decoded as in `GET /api/v1/audit/entries`.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent when there is no more.
    next_cursor: Option<u64>,
}

/// Every audit entry naming one person of a project: who read, exported, changed or erased
/// their data, when and from where (GDPR article 15's recipients). The report is itself
/// logged (`audit.subject_report`, naming the person's pseudonym, never their id).
#[utoipa::path(post, path = "/api/v1/audit/subject-report", tag = "audit", request_body = SubjectReportRequest,
    responses((status = 200, body = SubjectReport), (status = 400), (status = 401), (status = 403), (status = 422)))]
pub async fn subject_report(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let q: SubjectReportRequest = pages::body(&req, &body)?;
    let asked = report::Asked::parse(&q.project, &q.distinct_id, q.cursor, q.limit)?;
    let found =
        report::subject_report(&state.audit, state.store.as_ref(), &ctx, &principal, &asked)
            .await?;
    Ok(HttpResponse::Ok().json(SubjectReport {
        project: found.project.to_string(),
        standing: found.standing_name(),
        subject: found.subject_hex(),
        erased_at: match found.standing {
            Standing::Erased(at) => Some(at.to_rfc3339()),
            _ => found.earlier_erasure.map(Timestamp::to_rfc3339),
        },
        message: found.message(),
        entries: found.page.entries.iter().map(show::entry_json).collect(),
        next_cursor: found.page.next_cursor,
    }))
}

/// Whose report to download as a bundle.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectBundleRequest {
    /// The project.
    project: String,
    /// The person's distinct_id in that project.
    distinct_id: String,
}

/// The subject report as a bundle: every entry naming the person, each with an inclusion
/// proof in the checkpoint signed at the report's own entry, to verify offline with
/// `auditgate-verify`. Someone erased or never named gets a 404 saying which.
#[utoipa::path(post, path = "/api/v1/audit/subject-report/bundle", tag = "audit", request_body = SubjectBundleRequest,
    responses((status = 200, description = "A subject bundle: one JSON object per line (docs/audit-log-format.md 6.3)", content((String = "application/x-ndjson"))), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn subject_bundle(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let q: SubjectBundleRequest = pages::body(&req, &body)?;
    let asked = report::Asked::parse(&q.project, &q.distinct_id, None, None)?;
    let (project, subject, seq) =
        report::subject_bundle_at(&state.audit, state.store.as_ref(), &ctx, &principal, &asked)
            .await?;
    let bundle = export::Export::subject(
        state.store.clone(),
        &state.settings.audit.origin,
        &project,
        &subject,
        seq,
    )
    .await
    .map_err(export_failed)?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"subject-report-{project}.bundle\""),
        ))
        .streaming(bundle.stream().map(stream_error)))
}
