//! Deciding just-in-time access requests: one implementation for administrators over the API
//! and the operator at the CLI. Enough approvals turn a request into an expiring grant, whose
//! entry has the shape of every other grant's.

use serde::Deserialize;
use serde_json::{Value, json};

use super::grants::grant_json;
use super::{Admin, Administrator};
use crate::access::{DutyActor, approvals_needed, check_ask, check_request_approval, perm};
use crate::audit::RequestContext;
use crate::domain::{AccessRequest, ProjectId, RequestStatus, RoleBook, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::{Action, Actor, Outcome};

/// A request for access, as a person asks it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The project.
    pub project: String,
    /// The role.
    pub role: String,
    /// Why (an incident or ticket).
    pub reason: String,
    /// For how long once granted (at most `access.request_max_days`).
    pub duration_hours: i64,
}

/// Records a person's request for a role on a project for a while: pending until enough
/// others approve it. Returns the request as the log records it.
pub async fn ask(
    admin: &Admin<'_>,
    ctx: &RequestContext,
    requester: Actor,
    b: NewRequest,
) -> Result<Value, AppError> {
    let access = admin.access;
    let duration_ms = b.duration_hours.saturating_mul(3_600_000);
    let roles = RoleBook::new(admin.store.custom_roles().await?);
    check_ask(
        &roles,
        &b.role,
        &b.project,
        duration_ms,
        access.request_max_days * 86_400_000,
    )
    .map_err(AppError::Unprocessable)?;
    crate::domain::FreeText::required("reason", &b.reason)?;
    let now = admin.clock.now();
    let r = AccessRequest {
        id: uuid::Uuid::new_v4().to_string(),
        requester: requester.id.clone(),
        project: b.project,
        approvals_needed: approvals_needed(
            &roles,
            &b.role,
            access.request_approvals.get(&b.role).copied(),
            access.powerful_grants_need_approval,
        ),
        role: b.role,
        reason: b.reason,
        duration_ms,
        created_at: now,
        lapses_at: Timestamp::from_millis(now.millis() + access.request_lapse_minutes * 60_000),
        status: RequestStatus::Pending,
        grant_id: None,
        decided_at: None,
    };
    let json = request_json(&r, &[], now);
    admin
        .audit
        .account(
            ctx,
            requester,
            Action::AccessRequest,
            Outcome::Allowed,
            json!({"request": r.id, "before": null, "after": json}),
        )
        .await?;
    admin.store.create_request(&r).await?;
    Ok(json)
}

/// A person's own requests, newest first.
pub async fn of_person(admin: &Admin<'_>, id: &str) -> Result<Vec<AccessRequest>, AppError> {
    Ok(admin.store.requests(Some(id)).await?)
}

/// The requests pending now, on one project or on all, for those who may decide them
/// (`roles:assign` there).
pub async fn pending(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    project: Option<&ProjectId>,
) -> Result<Vec<AccessRequest>, AppError> {
    let scope = project.map_or("*", |p| p.as_str());
    by.may::<perm::RolesAssign>(admin.audit, Action::AccessRequest, scope)
        .await?;
    let all = admin.store.requests(None).await?;
    Ok(still_pending(all, project, admin.clock.now()))
}

/// Those of `requests` (on `project`, or on any) still pending at `now`: not decided, not
/// lapsed.
pub fn still_pending(
    requests: Vec<AccessRequest>,
    project: Option<&ProjectId>,
    now: Timestamp,
) -> Vec<AccessRequest> {
    requests
        .into_iter()
        .filter(|r| project.is_none_or(|p| p.as_str() == r.project))
        .filter(|r| r.state_at(now) == "pending")
        .collect()
}

/// A request as the API shows it and the log records it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccessRequestView {
    /// Its id.
    id: String,
    /// Who asks (a person's id).
    requester: String,
    /// Where: a project's id.
    project: String,
    /// Which role.
    role: String,
    /// Why (a ticket, an incident).
    reason: String,
    /// For how long, once granted.
    duration_hours: f64,
    /// Approvals needed.
    approvals_needed: u32,
    /// Who approved so far.
    approvals: Vec<String>,
    /// When it was asked (RFC 3339).
    created_at: String,
    /// When it lapses unanswered.
    lapses_at: String,
    /// `pending`, `granted`, `rejected` or `lapsed`.
    state: &'static str,
    /// The grant it became.
    grant_id: Option<String>,
}

impl AccessRequestView {
    /// The view of `r` with `approvals`, as of `now`.
    pub fn of(r: &AccessRequest, approvals: &[String], now: Timestamp) -> Self {
        Self {
            id: r.id.clone(),
            requester: r.requester.clone(),
            project: r.project.clone(),
            role: r.role.clone(),
            reason: r.reason.clone(),
            duration_hours: r.duration_ms as f64 / 3_600_000.0,
            approvals_needed: r.approvals_needed,
            approvals: approvals.to_vec(),
            created_at: r.created_at.to_rfc3339(),
            lapses_at: r.lapses_at.to_rfc3339(),
            state: r.state_at(now),
            grant_id: r.grant_id.clone(),
        }
    }
}

/// [`AccessRequestView`] as JSON, for the log's before/after details.
pub fn request_json(r: &AccessRequest, approvals: &[String], now: Timestamp) -> Value {
    serde_json::to_value(AccessRequestView::of(r, approvals, now)).expect("a request serializes")
}

/// Approves or rejects a pending request, as one more approval (a person: not the requester,
/// not twice, holding what it would give) or as the operator's. Returns the request after.
pub async fn decide(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
    approve: bool,
) -> Result<Value, AppError> {
    let Some((request, approvals)) = admin.store.request(id).await? else {
        by.may::<perm::RolesAssign>(admin.audit, Action::AccessRequest, "*")
            .await?;
        return Err(AppError::NotFound(format!("no access request {id}")));
    };
    by.may::<perm::RolesAssign>(admin.audit, Action::AccessRequest, &request.project)
        .await?;
    let now = admin.clock.now();
    let approver = match by {
        Administrator::Person { principal, .. } => {
            let crate::access::Subject::User { id: me, grants, .. } = principal.subject() else {
                return Err(AppError::Forbidden(
                    "only people decide access requests".into(),
                ));
            };
            let groups = admin
                .store
                .user(me)
                .await?
                .map(|(_, g)| g)
                .unwrap_or_default();
            let actor = DutyActor {
                id: me,
                groups: &groups,
                grants,
            };
            let roles = RoleBook::new(admin.store.custom_roles().await?);
            if let Err(reason) = check_request_approval(&actor, &request, &approvals, &roles, now) {
                let pending = request.state_at(now) == "pending";
                return Err(match by.refuse(admin.audit, reason).await {
                    AppError::Forbidden(reason) if !pending => AppError::Conflict(reason),
                    other => other,
                });
            }
            me.clone()
        }
        Administrator::Operator => {
            if request.state_at(now) != "pending" {
                return Err(AppError::Conflict(format!(
                    "the request is {}",
                    request.state_at(now)
                )));
            }
            if approvals.iter().any(|a| a == "cli") {
                return Err(AppError::Conflict(
                    "the operator already approved it".into(),
                ));
            }
            "cli".to_owned()
        }
    };
    let before = request_json(&request, &approvals, now);
    let mut after_approvals = approvals.clone();
    if approve {
        after_approvals.push(approver.clone());
    }
    let granted = approve && after_approvals.len() as u32 >= request.approvals_needed;
    let grant = granted.then(|| request.to_grant(uuid::Uuid::new_v4().to_string(), &approver, now));
    let mut after = request_json(&request, &after_approvals, now);
    after["state"] = json!(match (approve, granted) {
        (false, _) => "rejected",
        (true, true) => "granted",
        (true, false) => "pending",
    });
    after["grant_id"] = json!(grant.as_ref().map(|g| g.id.clone()));
    let details = json!({"request": id, "before": before, "after": after});
    by.record_as::<perm::RolesAssign>(
        admin.audit,
        Action::AccessRequest,
        &request.project,
        details,
    )
    .await?;
    if let Some(g) = &grant {
        let details = json!({"grant": g.id, "request": id, "before": null, "after": grant_json(g)});
        by.record(admin.audit, &g.project, details).await?;
    }
    if approve {
        admin.store.approve_request(id, &approver, now).await?;
    }
    if !approve || granted {
        let status = if approve {
            RequestStatus::Granted
        } else {
            RequestStatus::Rejected
        };
        if !admin
            .store
            .close_request(id, status, grant.as_ref(), now)
            .await?
        {
            return Err(AppError::Conflict("the request changed meanwhile".into()));
        }
    }
    Ok(after)
}
