//! Data-subject requests: made, approved and cancelled under a capability, then run as jobs
//! by a background worker that survives restarts (the state lives in the database).
//!
//! Every act writes its audit entry first, naming people only by pseudonym. An erasure writes
//! one entry before it deletes anything and one when it is done; the people's salts are then
//! deleted, so the log verifies as before but can no longer be tied to them.

use std::collections::BTreeSet;

use serde_json::json;

use crate::access::{Authorized, Principal, Requirement, perm};
use crate::audit::{AuditLog, RequestContext, actor_of, job_draft};
use crate::clock::SharedClock;
use crate::config::PrivacySettings;
use crate::domain::{DistinctId, ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::{Action, Outcome};
use crate::ledger::merkle::Hash;
use crate::store::{Affected, SharedStore};

pub use super::request::{
    ComplianceType, IDENTIFYING_PROPERTIES, JobState, MAX_SUBJECTS, RequestKind, SubjectRequest,
};

/// What someone asks for, before it is checked.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// What to do.
    pub kind: RequestKind,
    /// GDPR or CCPA.
    pub compliance_type: ComplianceType,
    /// A ticket reference.
    pub reason: String,
    /// The people, 1 to 2000 of them.
    pub distinct_ids: Vec<DistinctId>,
    /// The property to delete (`erase_property` only).
    pub property: Option<String>,
    /// Properties to drop (`anonymize` only).
    pub drop_properties: Vec<String>,
}

/// How the log names the worker that runs requests.
const JOB: &str = "subject-requests";

/// How the log and the requests table name a principal: `kind:id`.
pub fn actor_name(principal: &Principal) -> String {
    let a = actor_of(principal.subject());
    format!("{}:{}", a.kind.as_str(), a.id)
}

fn check(new: &NewRequest) -> Result<(), AppError> {
    if new.distinct_ids.is_empty() || new.distinct_ids.len() > MAX_SUBJECTS {
        return Err(AppError::Unprocessable(format!(
            "distinct_ids must hold 1 to {MAX_SUBJECTS} ids, not {}",
            new.distinct_ids.len()
        )));
    }
    if new.reason.trim().is_empty() || new.reason.len() > 500 {
        return Err(AppError::Unprocessable(
            "reason (a ticket reference) is required, at most 500 bytes".into(),
        ));
    }
    let property_ok = |p: &str| !p.is_empty() && p.len() <= 255;
    match (new.kind, &new.property) {
        (RequestKind::EraseProperty, Some(p)) if property_ok(p) => {}
        (RequestKind::EraseProperty, _) => {
            return Err(AppError::Unprocessable(
                "erase_property needs property, the name of the property to delete".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(AppError::Unprocessable(
                "property is only for erase_property".into(),
            ));
        }
        _ => {}
    }
    if !new.drop_properties.is_empty() && new.kind != RequestKind::Anonymize {
        return Err(AppError::Unprocessable(
            "drop_properties is only for anonymize".into(),
        ));
    }
    if new.drop_properties.len() > 100 || !new.drop_properties.iter().all(|p| property_ok(p)) {
        return Err(AppError::Unprocessable(
            "drop_properties holds at most 100 property names".into(),
        ));
    }
    Ok(())
}

fn dedup(ids: Vec<DistinctId>) -> Vec<DistinctId> {
    let mut seen = BTreeSet::new();
    ids.into_iter()
        .filter(|d| seen.insert(d.as_str().to_owned()))
        .collect()
}

/// A checked request, its people, and what the log will say of it.
pub struct Prepared {
    /// The request to store.
    pub request: SubjectRequest,
    /// Its people, without repeats.
    pub people: Vec<DistinctId>,
    /// The audit entry's details.
    pub details: serde_json::Value,
    /// The people's pseudonyms.
    pub subjects: Vec<Hash>,
}

/// Checks a request and builds it, without storing or logging anything.
pub async fn prepare(
    store: &SharedStore,
    audit: &AuditLog,
    project: &ProjectId,
    requested_by: String,
    mut new: NewRequest,
    settings: &PrivacySettings,
    now: Timestamp,
) -> Result<Prepared, AppError> {
    check(&new)?;
    let asked = dedup(new.distinct_ids.clone()).len();
    // A person is every id merged into theirs: the request covers them all.
    let mut people = Vec::new();
    for d in &new.distinct_ids {
        people.extend(store.identity_cluster(project, d).await?);
    }
    new.distinct_ids = dedup(people);
    if new.distinct_ids.len() > MAX_SUBJECTS {
        return Err(AppError::Unprocessable(format!(
            "with the ids merged into theirs, these people have {} ids, more than the \
             {MAX_SUBJECTS} one request may hold: split the request",
            new.distinct_ids.len()
        )));
    }
    let ids: Vec<String> = new
        .distinct_ids
        .iter()
        .map(|d| d.as_str().to_owned())
        .collect();
    let needs_approval = new.kind.erases()
        && (ids.len() as u64 > settings.approval_above_subjects
            || store.count_subject_data(project, &ids).await?.events
                > settings.approval_above_events);
    let request = SubjectRequest {
        id: uuid::Uuid::new_v4().to_string(),
        project: project.clone(),
        kind: new.kind,
        compliance_type: new.compliance_type,
        state: JobState::Pending,
        requested_by,
        reason: new.reason.clone(),
        subject_count: ids.len() as u64,
        property: new.property.clone(),
        drop_properties: new.drop_properties.clone(),
        needs_approval,
        approved_by: None,
        approved_at: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        events_affected: 0,
        profiles_affected: 0,
        error: None,
    };
    let subjects = audit.pseudonyms(project, &new.distinct_ids).await?;
    let details = json!({
        "change": "create",
        "request_id": request.id,
        "kind": request.kind.as_str(),
        "compliance_type": request.compliance_type.as_str(),
        "reason": request.reason,
        "subject_count": request.subject_count,
        "merged_ids_added": request.subject_count as usize - asked,
        "property": request.property,
        "drop_properties": request.drop_properties,
        "needs_approval": needs_approval,
    });
    Ok(Prepared {
        request,
        people: new.distinct_ids,
        details,
        subjects,
    })
}

/// Records and stores a request after checking it. Callers hold the capability for its kind.
async fn create<P: Requirement>(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<P>,
    new: NewRequest,
    settings: &PrivacySettings,
    now: Timestamp,
) -> Result<SubjectRequest, AppError> {
    let by = actor_name(auth.principal());
    let p = prepare(store, audit, auth.project(), by, new, settings, now).await?;
    audit
        .record(ctx, auth, Action::SubjectsRequest, 0, p.details, p.subjects)
        .await?;
    store.create_subject_request(&p.request, &p.people).await?;
    Ok(p.request)
}

/// Makes an export request (access and portability).
pub async fn create_export(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::SubjectsExport>,
    new: NewRequest,
    settings: &PrivacySettings,
    now: Timestamp,
) -> Result<SubjectRequest, AppError> {
    if new.kind != RequestKind::Export {
        return Err(AppError::Unprocessable(
            "this endpoint makes export requests only".into(),
        ));
    }
    create(store, audit, ctx, auth, new, settings, now).await
}

/// Makes an erasure, property-erasure or anonymisation request.
pub async fn create_deletion(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::SubjectsErase>,
    new: NewRequest,
    settings: &PrivacySettings,
    now: Timestamp,
) -> Result<SubjectRequest, AppError> {
    if !new.kind.erases() {
        return Err(AppError::Unprocessable(
            "kind must be erase, erase_property or anonymize here; exports have their own endpoint"
                .into(),
        ));
    }
    create(store, audit, ctx, auth, new, settings, now).await
}

/// One request of the authorized project, if its kind is the one `P` governs.
pub async fn find<P: Requirement>(
    store: &SharedStore,
    auth: &Authorized<P>,
    id: &str,
) -> Result<SubjectRequest, AppError> {
    let exports = P::PERMISSION == crate::access::Permission::SubjectsExport;
    store
        .subject_request(auth.project(), id)
        .await?
        .filter(|r| (r.kind == RequestKind::Export) == exports)
        .ok_or_else(|| AppError::NotFound(format!("no such request in {}", auth.project())))
}

/// Gives the second approval an erasure needs; never by the person who asked.
pub async fn approve(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::SubjectsErase>,
    id: &str,
    now: Timestamp,
) -> Result<SubjectRequest, AppError> {
    let r = find(store, auth, id).await?;
    let me = actor_name(auth.principal());
    if r.requested_by == me {
        let details = json!({"change": "approve", "request_id": r.id, "reason": "the requester cannot approve their own request"});
        audit
            .refused_act(ctx, auth, Action::SubjectsRequest, details)
            .await?;
        return Err(AppError::Forbidden(
            "the requester cannot approve their own request; another person must".into(),
        ));
    }
    if !r.needs_approval || r.approved_by.is_some() || r.state != JobState::Pending {
        return Err(AppError::Conflict(format!(
            "request {} is {} and awaits no approval",
            r.id,
            r.state.as_str()
        )));
    }
    let details = json!({"change": "approve", "request_id": r.id, "requested_by": r.requested_by});
    audit
        .record(ctx, auth, Action::SubjectsRequest, 0, details, vec![])
        .await?;
    if !store.approve_subject_request(&r.id, &me, now).await? {
        return Err(AppError::Conflict(format!(
            "request {} changed meanwhile",
            r.id
        )));
    }
    find(store, auth, id).await
}

/// Cancels a request that has not started (Mixpanel: cancellable until STARTED).
pub async fn cancel<P: Requirement>(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<P>,
    id: &str,
    now: Timestamp,
) -> Result<SubjectRequest, AppError> {
    let r = find(store, auth, id).await?;
    if !JobState::CANCELLABLE.contains(&r.state) {
        return Err(AppError::Conflict(format!(
            "request {} is {}: only PENDING or STAGING requests can be cancelled",
            r.id,
            r.state.as_str()
        )));
    }
    let details = json!({"change": "cancel", "request_id": r.id, "state_before": r.state.as_str()});
    audit
        .record(ctx, auth, Action::SubjectsRequest, 0, details, vec![])
        .await?;
    if !store
        .move_subject_request(&r.id, &JobState::CANCELLABLE, JobState::Revoked, now)
        .await?
    {
        return Err(AppError::Conflict(format!(
            "request {} started meanwhile and can no longer be cancelled",
            r.id
        )));
    }
    if r.kind.erases() {
        store.drop_subject_request_ids(&r.id).await?;
    }
    find(store, auth, id).await
}

/// Jobs left STAGING or STARTED longer than this are taken to be orphaned by a process that
/// stopped, and resumed.
const ORPHANED_AFTER_MS: i64 = 5 * 60 * 1000;

/// Runs every open request that may run. On the first pass after start-up, requests left
/// STAGING or STARTED by a stopped process are resumed (every step is idempotent). Returns how
/// many jobs ran to an end.
pub async fn run_open(
    store: &SharedStore,
    audit: &AuditLog,
    clock: &SharedClock,
    first_pass: bool,
) -> Result<usize, AppError> {
    let mut ended = 0;
    for r in store.open_subject_requests().await? {
        let orphaned =
            first_pass || r.updated_at.millis() < clock.now().millis() - ORPHANED_AFTER_MS;
        if !r.runnable() || (r.state != JobState::Pending && !orphaned) {
            continue;
        }
        let id = r.id.clone();
        match run(store, audit, clock, r).await {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(request = %id, error = %e, "subject request will be retried"),
        }
    }
    Ok(ended)
}

/// Takes one request through its states; false if it was cancelled or taken meanwhile.
async fn run(
    store: &SharedStore,
    audit: &AuditLog,
    clock: &SharedClock,
    mut r: SubjectRequest,
) -> Result<bool, AppError> {
    if r.state == JobState::Pending {
        if !store
            .move_subject_request(&r.id, &[JobState::Pending], JobState::Staging, clock.now())
            .await?
        {
            return Ok(false);
        }
        r.state = JobState::Staging;
    }
    let ids = store.subject_request_ids(&r.id).await?;
    let people = ids
        .iter()
        .map(|d| DistinctId::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a stored distinct_id: {}", e.0)))?;
    // What is stored about them now: decides NOT_FOUND, and is what the work is due to change.
    let due = store.count_subject_data(&r.project, &ids).await?;
    if r.state == JobState::Staging {
        let next = if due == Affected::default() {
            JobState::NotFound
        } else {
            JobState::Started
        };
        if next == JobState::NotFound {
            let details = json!({"change": "state", "request_id": r.id, "state": "NOT_FOUND"});
            audit
                .append(job_draft(
                    JOB,
                    &r.project,
                    Action::SubjectsRequest,
                    Outcome::Allowed,
                    0,
                    details,
                    vec![],
                ))
                .await?;
        }
        if !store
            .move_subject_request(&r.id, &[JobState::Staging], next, clock.now())
            .await?
        {
            return Ok(false);
        }
        if next == JobState::NotFound {
            if r.kind.erases() {
                store.drop_subject_request_ids(&r.id).await?;
            }
            return Ok(true);
        }
        r.state = JobState::Started;
    }
    match execute(store, audit, &r, &people, due).await {
        Ok(done) => {
            store
                .finish_subject_request(&r.id, JobState::Success, done, None, clock.now())
                .await?;
            Ok(true)
        }
        // The log or the database is away: leave it STARTED, to be resumed.
        Err(e @ AppError::Unavailable(_)) => Err(e),
        Err(e) => {
            let message = e.to_string();
            let details = json!({"change": "state", "request_id": r.id, "state": "FAILURE", "error": message});
            audit
                .append(job_draft(
                    JOB,
                    &r.project,
                    action_of(r.kind),
                    Outcome::Failed,
                    0,
                    details,
                    vec![],
                ))
                .await?;
            store
                .finish_subject_request(
                    &r.id,
                    JobState::Failure,
                    Affected::default(),
                    Some(&message),
                    clock.now(),
                )
                .await?;
            Ok(true)
        }
    }
}

fn action_of(kind: RequestKind) -> Action {
    match kind {
        RequestKind::Export => Action::SubjectsExport,
        RequestKind::Erase | RequestKind::EraseProperty => Action::SubjectsErase,
        RequestKind::Anonymize => Action::SubjectsAnonymize,
    }
}

/// Does the work of a STARTED request, audit entry first.
async fn execute(
    store: &SharedStore,
    audit: &AuditLog,
    r: &SubjectRequest,
    people: &[DistinctId],
    due: Affected,
) -> Result<Affected, AppError> {
    let project = &r.project;
    if r.kind == RequestKind::Export {
        // The data leaves only when downloaded, and each download is logged then.
        let details = json!({"change": "state", "request_id": r.id, "state": "SUCCESS", "events": due.events, "profiles": due.profiles, "group_profiles": due.groups});
        audit
            .append(job_draft(
                JOB,
                project,
                Action::SubjectsRequest,
                Outcome::Allowed,
                0,
                details,
                vec![],
            ))
            .await?;
        return Ok(due);
    }
    let action = action_of(r.kind);
    let drop: Vec<String> = r
        .drop_properties
        .iter()
        .cloned()
        .chain(IDENTIFYING_PROPERTIES.iter().map(|p| (*p).to_owned()))
        .collect();
    let mode = json!({
        "request_id": r.id,
        "kind": r.kind.as_str(),
        "compliance_type": r.compliance_type.as_str(),
        "requested_by": r.requested_by,
        "approved_by": r.approved_by,
        "property": r.property,
        "drop_properties": (r.kind == RequestKind::Anonymize).then_some(&drop),
    });
    let mut start = mode.clone();
    start["stage"] = json!("start");
    start["events_due"] = json!(due.events);
    start["profiles_due"] = json!(due.profiles);
    start["group_profiles_due"] = json!(due.groups);
    let subjects = audit.pseudonyms(project, people).await?;
    audit
        .append(job_draft(
            JOB,
            project,
            action,
            Outcome::Allowed,
            due.events,
            start,
            subjects,
        ))
        .await?;
    let mut done = Affected::default();
    let mut salts = 0;
    for person in people {
        let id = person.as_str();
        done += match r.kind {
            RequestKind::Erase => store.erase_subject(project, id).await?,
            RequestKind::EraseProperty => {
                let property = r.property.as_deref().unwrap_or_default();
                store.erase_subject_property(project, id, property).await?
            }
            RequestKind::Anonymize => {
                let new_id = format!("anon-{}", uuid::Uuid::new_v4().simple());
                store.anonymize_subject(project, id, &new_id, &drop).await?
            }
            RequestKind::Export => unreachable!("exports returned above"),
        };
        // Unlink the person from the log only once their data is gone.
        if r.kind != RequestKind::EraseProperty && audit.forget_subject(project, person).await? {
            salts += 1;
        }
    }
    if r.kind != RequestKind::EraseProperty {
        store.drop_subject_request_ids(&r.id).await?;
    }
    store.after_erasure().await?;
    let mut end = mode;
    end["stage"] = json!("done");
    end["events_changed"] = json!(done.events);
    end["profiles_changed"] = json!(done.profiles);
    end["group_profiles_changed"] = json!(done.groups);
    end["pseudonym_salts_deleted"] = json!(salts);
    audit
        .append(job_draft(
            JOB,
            project,
            action,
            Outcome::Allowed,
            done.events,
            end,
            vec![],
        ))
        .await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: RequestKind, n: usize) -> NewRequest {
        NewRequest {
            kind,
            compliance_type: ComplianceType::Gdpr,
            reason: "DPO-1".into(),
            distinct_ids: (0..n)
                .map(|i| DistinctId::parse(&format!("u{i}")).unwrap())
                .collect(),
            property: None,
            drop_properties: vec![],
        }
    }

    #[test]
    fn requests_are_checked_before_anything_is_stored() {
        assert!(check(&request(RequestKind::Erase, 1)).is_ok());
        assert!(check(&request(RequestKind::Erase, MAX_SUBJECTS)).is_ok());
        assert!(check(&request(RequestKind::Erase, 0)).is_err());
        assert!(check(&request(RequestKind::Erase, MAX_SUBJECTS + 1)).is_err());
        let mut no_reason = request(RequestKind::Export, 1);
        no_reason.reason = "  ".into();
        assert!(check(&no_reason).is_err());
        let mut property = request(RequestKind::EraseProperty, 1);
        assert!(check(&property).is_err(), "erase_property names a property");
        property.property = Some("email".into());
        assert!(check(&property).is_ok());
        let mut stray = request(RequestKind::Erase, 1);
        stray.drop_properties = vec!["plan".into()];
        assert!(check(&stray).is_err(), "drop_properties is for anonymize");
        let mut anon = request(RequestKind::Anonymize, 1);
        anon.drop_properties = vec!["plan".into()];
        assert!(check(&anon).is_ok());
    }

    #[test]
    fn repeated_ids_count_once() {
        let ids = ["a", "b", "a"]
            .iter()
            .map(|s| DistinctId::parse(s).unwrap())
            .collect();
        let got: Vec<String> = dedup(ids).iter().map(|d| d.as_str().to_owned()).collect();
        assert_eq!(got, ["a", "b"]);
    }
}
