//! Reading events as the API and the console both do: the right checked (a refusal logged),
//! merged ids added, the page read, sensitive values redacted unless the reader may see
//! them, and the read logged (the people it covered as pseudonyms) before it is answered.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Cursor, EventPage, EventQuery, MAX_PAGE};
use crate::access::{self, Permission, Principal, perm};
use crate::audit::{AuditLog, RequestContext};
use crate::domain::{DistinctId, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::ledger::merkle::Hash;
use crate::store::{CountGroup, PropertyKind, SharedStore};

/// Who reads, and through what.
pub struct Reader<'a> {
    /// The log every read is written to first.
    pub audit: &'a AuditLog,
    /// The store.
    pub store: &'a SharedStore,
    /// The request.
    pub ctx: &'a RequestContext,
    /// The caller.
    pub principal: &'a Principal,
}

/// What the log records of a read's filters: never the end user's id, only its pseudonym.
async fn filter_record(
    audit: &AuditLog,
    project: &ProjectId,
    q: &EventQuery,
) -> Result<(Value, Vec<Hash>), AppError> {
    // Everyone whose events the read covered: the asked id and the ids merged into it.
    let people: Vec<DistinctId> = q.distinct_id.iter().chain(&q.merged).cloned().collect();
    let subjects = audit.pseudonyms(project, &people).await?;
    let details = json!({
        "event": q.event,
        "from": q.from.map(|t| t.millis()),
        "to": q.to.map(|t| t.millis()),
        "distinct_id": q.distinct_id.is_some().then_some("pseudonymised in subjects"),
        "merged_ids": q.distinct_id.is_some().then_some(q.merged.len()),
    });
    Ok((details, subjects))
}

/// One page of a project's events, oldest first, as `GET .../events` answers it.
pub async fn events_page(
    r: &Reader<'_>,
    project: &ProjectId,
    filters: EventQuery,
    after: Option<Cursor>,
    limit: u32,
) -> Result<EventPage, AppError> {
    let auth = r
        .audit
        .authorize::<perm::EventsRead>(r.ctx, r.principal, project, Action::EventsQuery)
        .await?;
    let q = super::with_merged_ids(r.store, &auth, filters).await?;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let mut page = super::query(r.store, &auth, &q, after, limit).await?;
    let sensitive = r
        .store
        .sensitive_properties(project, PropertyKind::Event)
        .await?;
    let reveal = access::holds(r.principal, Permission::EventsReadSensitive, project);
    let (mut returned, mut redacted) = (BTreeSet::new(), BTreeSet::new());
    for e in &mut page.events {
        super::redact(
            &mut e.properties,
            &sensitive,
            reveal,
            &mut returned,
            &mut redacted,
        );
    }
    let (mut details, subjects) = filter_record(r.audit, project, &q).await?;
    details["sensitive_returned"] = json!(returned);
    details["sensitive_redacted"] = json!(redacted);
    details["limit"] = json!(limit);
    details["page_after_cursor"] = json!(after.is_some());
    let n = page.events.len() as u64;
    r.audit
        .record(r.ctx, &auth, Action::EventsQuery, n, details, subjects)
        .await?;
    Ok(page)
}

/// A project's events counted by `group` (named `name` in the log), as
/// `GET .../events/count` answers it.
pub async fn counts(
    r: &Reader<'_>,
    project: &ProjectId,
    filters: EventQuery,
    group: CountGroup,
    name: &str,
) -> Result<Vec<(String, i64)>, AppError> {
    let auth = r
        .audit
        .authorize::<perm::EventsRead>(r.ctx, r.principal, project, Action::EventsCount)
        .await?;
    let q = super::with_merged_ids(r.store, &auth, filters).await?;
    let rows = super::count(r.store, &auth, &q, group).await?;
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    let (mut details, subjects) = filter_record(r.audit, project, &q).await?;
    details["group_by"] = json!(name);
    r.audit
        .record(
            r.ctx,
            &auth,
            Action::EventsCount,
            total.max(0) as u64,
            details,
            subjects,
        )
        .await?;
    Ok(rows)
}

/// One person's profile, as `GET .../profiles/{distinct_id}` answers it; whether they have
/// one is itself logged, found or not (a 404 when not).
pub async fn profile(
    r: &Reader<'_>,
    project: &ProjectId,
    distinct_id: &str,
) -> Result<crate::store::Profile, AppError> {
    let auth = r
        .audit
        .authorize::<perm::ProfilesRead>(r.ctx, r.principal, project, Action::ProfilesRead)
        .await?;
    let distinct_id = DistinctId::parse(distinct_id).map_err(|e| AppError::BadRequest(e.0))?;
    let Some(mut p) = super::profile(r.store, &auth, &distinct_id).await? else {
        let subject = r.audit.pseudonym(project, &distinct_id).await?;
        r.audit
            .record(
                r.ctx,
                &auth,
                Action::ProfilesRead,
                0,
                json!({"found": false}),
                vec![subject],
            )
            .await?;
        return Err(AppError::NotFound("no profile for that distinct_id".into()));
    };
    let (returned, redacted) =
        redact_profile(r.store, r.principal, project, &mut p.properties).await?;
    // Asked by an id merged into another person's: both are named.
    let mut people = vec![distinct_id.clone()];
    people.extend(
        DistinctId::parse(&p.distinct_id)
            .ok()
            .filter(|d| *d != distinct_id),
    );
    let subjects = r.audit.pseudonyms(project, &people).await?;
    let details = json!({
        "found": true,
        "properties": p.properties.len(),
        "sensitive_returned": returned,
        "sensitive_redacted": redacted,
    });
    r.audit
        .record(r.ctx, &auth, Action::ProfilesRead, 1, details, subjects)
        .await?;
    Ok(p)
}

/// Hides a profile's sensitive properties from a reader who may not see them; returns the
/// sensitive names returned and redacted, for the log.
pub async fn redact_profile(
    store: &SharedStore,
    principal: &Principal,
    project: &ProjectId,
    properties: &mut serde_json::Map<String, Value>,
) -> Result<(BTreeSet<String>, BTreeSet<String>), AppError> {
    let sensitive = store
        .sensitive_properties(project, PropertyKind::Profile)
        .await?;
    let reveal = access::holds(principal, Permission::EventsReadSensitive, project);
    let (mut returned, mut redacted) = (BTreeSet::new(), BTreeSet::new());
    super::redact(properties, &sensitive, reveal, &mut returned, &mut redacted);
    Ok((returned, redacted))
}
