//! Reading the log online: entries decoded, newest first, a page at a time. Project, action
//! and time select on the log's own indexed columns; actor and outcome are read from each
//! entry's bytes, so a page scans a bounded number of entries and says where to go on.

use serde_json::{Value, json};

use super::{AuditLog, RequestContext};
use crate::access::{Principal, perm};
use crate::domain::{ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::{Action, Entry, Outcome};
use crate::store::{EntryFilter, Store};

/// Entries read from the store in one go while a page fills.
const CHUNK: u32 = 500;
/// Entries one page looks at, at most, before it answers with what it found.
pub const SCAN_LIMIT: u64 = 10_000;

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct EntryQuery {
    /// Only this project's entries (otherwise every entry, with or without a project).
    pub project: Option<ProjectId>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only this actor id.
    pub actor: Option<String>,
    /// From this time, inclusive.
    pub from: Option<Timestamp>,
    /// To this time, exclusive.
    pub to: Option<Timestamp>,
    /// Only entries older than this sequence number (the previous page's cursor).
    pub before: Option<u64>,
    /// At most this many entries.
    pub limit: u32,
}

/// A page of entries, newest first.
#[derive(Debug)]
pub struct EntryPage {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Where the next page starts (`before`), when there may be more.
    pub next_cursor: Option<u64>,
    /// How many entries were looked at.
    pub scanned: u64,
}

/// The page of entries `q` selects.
pub async fn page(store: &dyn Store, q: &EntryQuery) -> Result<EntryPage, AppError> {
    let filter = EntryFilter {
        project: q.project.as_ref().map(|p| p.as_str().to_owned()),
        action: q.action.map(|a| a.as_str().to_owned()),
        from_ms: q.from.map(Timestamp::millis),
        to_ms: q.to.map(Timestamp::millis),
    };
    let wanted = |e: &Entry| {
        q.outcome.is_none_or(|o| e.outcome == o)
            && q.actor.as_ref().is_none_or(|a| &e.actor.id == a)
    };
    let mut page = EntryPage {
        entries: Vec::new(),
        next_cursor: None,
        scanned: 0,
    };
    let mut before = q.before;
    loop {
        let chunk = store.audit_entries_page(&filter, before, CHUNK).await?;
        let exhausted = (chunk.len() as u32) < CHUNK;
        for stored in chunk {
            page.scanned += 1;
            before = Some(stored.seq);
            let entry = Entry::decode(&stored.bytes).map_err(|e| {
                AppError::Internal(anyhow::anyhow!(
                    "stored entry {} is unreadable: {e}",
                    stored.seq
                ))
            })?;
            if wanted(&entry) {
                page.entries.push(entry);
                if page.entries.len() as u32 == q.limit {
                    page.next_cursor = before;
                    return Ok(page);
                }
            }
        }
        if exhausted {
            return Ok(page);
        }
        if page.scanned >= SCAN_LIMIT {
            page.next_cursor = before;
            return Ok(page);
        }
    }
}

/// The right `q` needs, checked before anything is read: `audit:read` on its project, or on
/// every project for entries without one.
enum Scope {
    Project(crate::access::Authorized<perm::AuditRead>),
    Log(crate::access::AuthorizedGlobal<perm::AuditRead>),
}

async fn scope_of(
    audit: &AuditLog,
    ctx: &RequestContext,
    principal: &Principal,
    project: Option<&ProjectId>,
) -> Result<Scope, AppError> {
    Ok(match project {
        Some(p) => Scope::Project(
            audit
                .authorize::<perm::AuditRead>(ctx, principal, p, Action::AuditRead)
                .await?,
        ),
        None => Scope::Log(
            audit
                .authorize_global::<perm::AuditRead>(ctx, principal, Action::AuditRead)
                .await?,
        ),
    })
}

/// Logs a read of the log (`audit.read`, with what was read) before it is answered.
async fn logged(
    audit: &AuditLog,
    ctx: &RequestContext,
    scope: &Scope,
    records: u64,
    details: Value,
) -> Result<(), AppError> {
    match scope {
        Scope::Project(auth) => {
            audit
                .record(ctx, auth, Action::AuditRead, records, details, vec![])
                .await?
        }
        Scope::Log(global) => {
            audit
                .record_global(ctx, global, Action::AuditRead, details)
                .await?
        }
    };
    Ok(())
}

/// A page of entries for `principal`, as the API and the console read it: the right checked
/// first, the read logged (with `filters`) before it is answered.
pub async fn read_page(
    audit: &AuditLog,
    store: &dyn Store,
    ctx: &RequestContext,
    principal: &Principal,
    q: &EntryQuery,
    filters: Value,
) -> Result<EntryPage, AppError> {
    let scope = scope_of(audit, ctx, principal, q.project.as_ref()).await?;
    let found = page(store, q).await?;
    let n = found.entries.len();
    let details = json!({"filters": filters, "entries": n, "scanned": found.scanned});
    logged(audit, ctx, &scope, n as u64, details).await?;
    Ok(found)
}

/// One entry and its inclusion proof in the latest checkpoint, for `principal`: `audit:read`
/// on the entry's project (or on every project for an entry without one); the read is logged.
pub async fn read_one(
    audit: &AuditLog,
    store: &dyn Store,
    ctx: &RequestContext,
    principal: &Principal,
    seq: u64,
) -> Result<(Entry, super::proofs::Inclusion), AppError> {
    let Some(stored) = store.audit_entries(seq, seq.saturating_add(1)).await?.pop() else {
        return Err(AppError::NotFound(format!("the log has no entry {seq}")));
    };
    let entry = Entry::decode(&stored.bytes).map_err(|e| {
        AppError::Internal(anyhow::anyhow!("stored entry {seq} is unreadable: {e}"))
    })?;
    let project = entry
        .project
        .as_deref()
        .map(ProjectId::parse)
        .transpose()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("entry {seq}: {}", e.0)))?;
    let scope = scope_of(audit, ctx, principal, project.as_ref()).await?;
    // A fresh entry may not be under a checkpoint yet: then it is shown without a proof.
    let proof = super::proofs::inclusion(store, seq, None).await;
    logged(audit, ctx, &scope, 1, json!({"seq": seq})).await?;
    let proof = proof.unwrap_or(super::proofs::Inclusion {
        size: 0,
        leaf: [0; 32],
        proof: vec![],
    });
    Ok((entry, proof))
}
