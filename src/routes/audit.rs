//! The audit log over HTTP: the latest checkpoint and proofs for anyone (they reveal only
//! salted hashes), and exports for holders of `audit:export`.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::access::{Principal, perm};
use crate::audit::{RequestContext, export, proofs, read};
use crate::domain::ProjectId;
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
    .map_err(|e| match e.downcast::<crate::store::StoreError>() {
        Ok(store) => AppError::from(store),
        Err(e) => AppError::Unavailable(e.to_string()),
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(bundle.stream().map(stream_error)))
}

/// Which entries to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryParams {
    /// Only this project's entries (needs `audit:read` there). Without it, every entry, which
    /// needs `audit:read` on every project.
    project: Option<String>,
    /// Only this action, such as `events.query`.
    action: Option<String>,
    /// Only this outcome: `allowed`, `denied` or `failed`.
    outcome: Option<String>,
    /// Only this actor id (a person's id, a service account's name).
    actor: Option<String>,
    /// From this time, inclusive: RFC 3339 or epoch milliseconds.
    from: Option<String>,
    /// To this time, exclusive: RFC 3339 or epoch milliseconds.
    to: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
    /// Entries per page, 1 to 500 (default 100).
    limit: Option<u32>,
}

impl EntryParams {
    fn parse(&self) -> Result<read::EntryQuery, AppError> {
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
    let query = q.parse()?;
    let filters = json!({
        "project": q.project, "action": q.action, "outcome": q.outcome, "actor": q.actor,
        "from": q.from, "to": q.to, "cursor": q.cursor, "limit": query.limit,
    });
    // The right is checked before anything is read; the read is logged before it is answered.
    enum Scope {
        Project(crate::access::Authorized<perm::AuditRead>),
        Log(crate::access::AuthorizedGlobal<perm::AuditRead>),
    }
    let scope = match &query.project {
        Some(project) => Scope::Project(
            state
                .audit
                .authorize::<perm::AuditRead>(&ctx, &principal, project, Action::AuditRead)
                .await?,
        ),
        None => Scope::Log(
            state
                .audit
                .authorize_global::<perm::AuditRead>(&ctx, &principal, Action::AuditRead)
                .await?,
        ),
    };
    let page = read::page(state.store.as_ref(), &query).await?;
    let n = page.entries.len();
    let details = json!({"filters": filters, "entries": n, "scanned": page.scanned});
    match &scope {
        Scope::Project(auth) => {
            let records = n as u64;
            state
                .audit
                .record(&ctx, auth, Action::AuditRead, records, details, vec![])
                .await?
        }
        Scope::Log(global) => {
            state
                .audit
                .record_global(&ctx, global, Action::AuditRead, details)
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(EntryPageView {
        entries: page.entries.iter().map(show::entry_json).collect(),
        next_cursor: page.next_cursor,
    }))
}
