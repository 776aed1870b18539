//! "Who accessed this person's data?": the entries naming one person's pseudonym, read from
//! the `audit_subjects` index (written with the entries), newest first, a page at a time;
//! and the same entries as a bundle, each with an inclusion proof, to verify offline.

use serde_json::json;

use super::{AuditLog, RequestContext, Standing};
use crate::access::{Authorized, Principal, perm};
use crate::domain::{DistinctId, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::{Action, Entry};
use crate::ledger::merkle::Hash;
use crate::store::Store;

/// Entries indexed per step of the start-up backfill.
const BACKFILL_BATCH: u64 = 10_000;

/// Indexes the subjects of entries written before the index existed (once, at start-up).
pub async fn index_backlog(store: &dyn Store) -> anyhow::Result<()> {
    let mut left = store.index_subjects_backlog(BACKFILL_BATCH).await?;
    if left > 0 {
        tracing::info!(entries = left, "indexing the people the audit log names");
    }
    while left > 0 {
        left = store.index_subjects_backlog(BACKFILL_BATCH).await?;
    }
    Ok(())
}

/// A page of the entries naming one pseudonym, newest first.
#[derive(Debug)]
pub struct NamingPage {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Where the next page starts (`before`), when there may be more.
    pub next_cursor: Option<u64>,
}

/// Up to `limit` entries naming `subject`, older than `before` when given.
pub async fn naming(
    store: &dyn Store,
    subject: &Hash,
    before: Option<u64>,
    limit: u32,
) -> Result<NamingPage, AppError> {
    let stored = store
        .entries_naming(subject, 0..before.unwrap_or(u64::MAX), true, limit)
        .await?;
    let next_cursor = (stored.len() as u32 == limit)
        .then(|| stored.last().map(|e| e.seq))
        .flatten();
    let entries = stored
        .iter()
        .map(|s| {
            Entry::decode(&s.bytes).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("stored entry {} is unreadable: {e}", s.seq))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(NamingPage {
        entries,
        next_cursor,
    })
}

/// A subject report asked for, parsed.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The project.
    pub project: ProjectId,
    /// The person.
    pub person: DistinctId,
    /// Only entries older than this sequence number (the previous page's cursor).
    pub before: Option<u64>,
    /// Entries per page.
    pub limit: u32,
}

impl Asked {
    /// Parses what a form or a body sent: 422 for a bad id, 400 for a bad page size.
    pub fn parse(
        project: &str,
        distinct_id: &str,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Self, AppError> {
        let limit = limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(AppError::BadRequest(
                "limit must be between 1 and 500".into(),
            ));
        }
        Ok(Self {
            project: ProjectId::parse(project).map_err(|e| AppError::Unprocessable(e.0))?,
            person: DistinctId::parse(distinct_id).map_err(|e| AppError::Unprocessable(e.0))?,
            before,
            limit,
        })
    }
}

/// The answer: whether the log can name the person, and the entries that do.
#[derive(Debug)]
pub struct SubjectReport {
    /// The project.
    pub project: ProjectId,
    /// Whether the log can still tie the person to entries.
    pub standing: Standing,
    /// The entries naming them, newest first (none unless `Named`).
    pub page: NamingPage,
    /// When the same id was erased before it was named again: what came before then names
    /// a pseudonym nobody can tie to them, so this report starts there.
    pub earlier_erasure: Option<crate::domain::Timestamp>,
}

impl SubjectReport {
    /// `named`, `erased` or `never_named`.
    pub fn standing_name(&self) -> &'static str {
        standing_name(&self.standing)
    }

    /// The pseudonym in hex, when named.
    pub fn subject_hex(&self) -> Option<String> {
        match self.standing {
            Standing::Named(h) => Some(hex::encode(h)),
            _ => None,
        }
    }

    /// The answer in a sentence.
    pub fn message(&self) -> String {
        match self.earlier_erasure {
            Some(at) => format!(
                "{} The same id was erased on {} and named again since: entries from before the erasure name a pseudonym no one can tie to this person, so they are not here.",
                message(&self.standing),
                at.to_rfc3339()
            ),
            None => message(&self.standing),
        }
    }
}

fn standing_name(standing: &Standing) -> &'static str {
    match standing {
        Standing::Named(_) => "named",
        Standing::Erased(_) => "erased",
        Standing::NeverNamed => "never_named",
    }
}

fn message(standing: &Standing) -> String {
    match standing {
        Standing::Named(_) => "Every entry of the audit log that names this person, newest first.".into(),
        Standing::Erased(at) => format!(
            "This person was erased on {}: their pseudonym can no longer be tied to them, so no report can be made on them.",
            at.to_rfc3339()
        ),
        Standing::NeverNamed => "No entry of the audit log names this person: nobody has read, exported, changed or erased their data through auditgate.".into(),
    }
}

/// The checks both forms share: the right held on the project (a refusal is logged), the
/// project known, and whether the log can still name the person.
async fn standing(
    audit: &AuditLog,
    store: &dyn Store,
    ctx: &RequestContext,
    principal: &Principal,
    asked: &Asked,
) -> Result<(Authorized<perm::AuditInvestigate>, Standing), AppError> {
    let auth = audit
        .authorize::<perm::AuditInvestigate>(
            ctx,
            principal,
            &asked.project,
            Action::AuditSubjectReport,
        )
        .await?;
    // After the right is checked, so that only those who may ask learn which projects exist.
    if store.project(&asked.project).await?.is_none() {
        return Err(AppError::NotFound(format!(
            "there is no project {}",
            asked.project
        )));
    }
    let standing = audit
        .existing_pseudonym(&asked.project, &asked.person)
        .await?;
    Ok((auth, standing))
}

/// Every entry naming one person, a page at a time. The report is itself logged
/// (`audit.subject_report`, naming the person's pseudonym, never their id) before it is
/// answered.
pub async fn subject_report(
    audit: &AuditLog,
    store: &dyn Store,
    ctx: &RequestContext,
    principal: &Principal,
    asked: &Asked,
) -> Result<SubjectReport, AppError> {
    let (auth, standing) = standing(audit, store, ctx, principal, asked).await?;
    let page = match &standing {
        Standing::Named(subject) => naming(store, subject, asked.before, asked.limit).await?,
        _ => NamingPage {
            entries: vec![],
            next_cursor: None,
        },
    };
    let subjects = match standing {
        Standing::Named(h) => vec![h],
        _ => vec![],
    };
    // An id erased and then seen again has a new salt; the erasure is still worth saying.
    let earlier_erasure = match standing {
        Standing::Named(_) => {
            let lookup = audit.subject_lookup(&asked.project, &asked.person);
            store.subject_erased_at(&asked.project, &lookup).await?
        }
        _ => None,
    };
    let n = page.entries.len();
    audit
        .record(
            ctx,
            &auth,
            Action::AuditSubjectReport,
            n as u64,
            json!({"form": "page", "standing": standing_name(&standing), "cursor": asked.before, "limit": asked.limit, "entries": n}),
            subjects,
        )
        .await?;
    Ok(SubjectReport {
        project: asked.project.clone(),
        standing,
        page,
        earlier_erasure,
    })
}

/// Starts a subject bundle: logs the report's own entry (which names the person and closes
/// its commit group) and waits for its checkpoint; answers the tree size to export at. A
/// person erased or never named is a 404 saying which (logged too).
pub async fn subject_bundle_at(
    audit: &AuditLog,
    store: &dyn Store,
    ctx: &RequestContext,
    principal: &Principal,
    asked: &Asked,
) -> Result<(ProjectId, Hash, u64), AppError> {
    let (auth, standing) = standing(audit, store, ctx, principal, asked).await?;
    let details = json!({"form": "bundle", "standing": standing_name(&standing)});
    let Standing::Named(subject) = standing else {
        audit
            .record(ctx, &auth, Action::AuditSubjectReport, 0, details, vec![])
            .await?;
        return Err(AppError::NotFound(message(&standing)));
    };
    let seq = audit
        .record(
            ctx,
            &auth,
            Action::AuditSubjectReport,
            0,
            details,
            vec![subject],
        )
        .await?;
    audit
        .wait_signed(seq, std::time::Duration::from_secs(5))
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok((asked.project.clone(), subject, seq + 1))
}
