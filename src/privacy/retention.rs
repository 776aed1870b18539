//! Retention: each project's events older than its window are deleted in bounded batches.
//! One audit entry per sweep, written before anything is deleted, says what is due. The sweep
//! also purges projects deleted longer ago than the grace period, one entry per project first.

use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditLog, job_draft, system_draft};
use crate::domain::{ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::{Action, Outcome};
use crate::store::SharedStore;

/// What one sweep found due and deleted, per project.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProjectSweep {
    /// The project.
    #[schema(value_type = String)]
    pub project: ProjectId,
    /// Events from before this time are past the window.
    pub cutoff: String,
    /// How many were due when the sweep began.
    pub due: u64,
    /// How many this sweep deleted.
    pub deleted: u64,
}

/// A sweep's report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SweepReport {
    /// Projects with events past their window.
    pub projects: Vec<ProjectSweep>,
    /// False when `max_batches` stopped the sweep early; the next one carries on.
    pub complete: bool,
    /// Deleted projects whose grace period ended, now hard-deleted.
    #[schema(value_type = Vec<String>)]
    pub purged: Vec<ProjectId>,
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
    grace_days: i64,
) -> Result<SweepReport, AppError> {
    let mut due = Vec::new();
    let mut purged = Vec::new();
    for p in store.list_projects().await? {
        if let Some(deleted) = p.deleted_at {
            if p.purged_at.is_none() && deleted.millis() + grace_days * 86_400_000 <= now.millis() {
                purge(store, audit, &p.id, deleted, batch, now).await?;
                purged.push(p.id);
            }
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
            purged,
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
    Ok(SweepReport {
        projects,
        complete,
        purged,
    })
}

/// Hard-deletes a soft-deleted project's data, events in batches first; safe to interrupt.
async fn purge(
    store: &SharedStore,
    audit: &AuditLog,
    project: &ProjectId,
    deleted: Timestamp,
    batch: u32,
    now: Timestamp,
) -> Result<(), AppError> {
    let everything = Timestamp::from_millis(i64::MAX);
    let events = store.count_events_before(project, everything).await?;
    let details = json!({"deleted_at": deleted.to_rfc3339(), "events": events});
    audit
        .append(job_draft(
            "retention",
            project,
            Action::ProjectPurge,
            Outcome::Allowed,
            events,
            details,
            vec![],
        ))
        .await?;
    while store
        .delete_events_before(project, everything, batch)
        .await?
        == u64::from(batch)
    {}
    store.purge_project(project, now).await?;
    store.after_erasure().await?;
    Ok(())
}
