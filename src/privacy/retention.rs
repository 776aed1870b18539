//! Retention: each project's events older than its window are deleted in bounded batches.
//! One audit entry per sweep, written before anything is deleted, says what is due.

use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditLog, system_draft};
use crate::domain::{ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::SharedStore;

/// What one sweep found due and deleted, per project.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectSweep {
    /// The project.
    pub project: ProjectId,
    /// Events from before this time are past the window.
    pub cutoff: String,
    /// How many were due when the sweep began.
    pub due: u64,
    /// How many this sweep deleted.
    pub deleted: u64,
}

/// A sweep's report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    /// Projects with events past their window.
    pub projects: Vec<ProjectSweep>,
    /// False when `max_batches` stopped the sweep early; the next one carries on.
    pub complete: bool,
}

/// Deletes every project's events older than its retention window as of `now`, `batch` rows
/// at a time (at most `max_batches` batches in all, if given). Safe to interrupt: the next
/// sweep deletes whatever is still due.
pub async fn sweep(
    store: &SharedStore,
    audit: &AuditLog,
    now: Timestamp,
    batch: u32,
    max_batches: Option<u32>,
) -> Result<SweepReport, AppError> {
    let mut due = Vec::new();
    for p in store.list_projects().await? {
        if p.deleted_at.is_some() {
            continue;
        }
        let cutoff = Timestamp::from_millis(now.millis() - p.retention_days * 86_400_000);
        let n = store.count_events_before(&p.id, cutoff).await?;
        if n > 0 {
            due.push((p.id, cutoff, n));
        }
    }
    if due.is_empty() {
        return Ok(SweepReport {
            projects: vec![],
            complete: true,
        });
    }
    let total: u64 = due.iter().map(|(_, _, n)| n).sum();
    let mut draft = system_draft(
        Action::RetentionSweep,
        json!({
            "batch": batch,
            "projects": due.iter().map(|(p, c, n)| json!({"project": p, "cutoff": c.to_rfc3339(), "due": n})).collect::<Vec<_>>(),
        }),
    );
    draft.records = total;
    audit.append(draft).await?;
    let mut batches = 0u32;
    let mut complete = true;
    let mut projects = Vec::new();
    for (project, cutoff, n) in due {
        let mut deleted = 0;
        loop {
            if max_batches.is_some_and(|m| batches >= m) {
                complete = false;
                break;
            }
            let d = store.delete_events_before(&project, cutoff, batch).await?;
            batches += 1;
            deleted += d;
            if d < u64::from(batch) {
                break;
            }
        }
        projects.push(ProjectSweep {
            project,
            cutoff: cutoff.to_rfc3339(),
            due: n,
            deleted,
        });
    }
    Ok(SweepReport { projects, complete })
}
