//! Reading the log online: entries decoded, newest first, a page at a time. Project, action
//! and time select on the log's own indexed columns; actor and outcome are read from each
//! entry's bytes, so a page scans a bounded number of entries and says where to go on.

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
