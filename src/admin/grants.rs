//! Grants: made, approved, rejected and revoked through one implementation, whoever asks.

use serde_json::{Value, json};

use super::{Admin, Administrator};
use crate::access::{
    DutyActor, GrantChange, Grants, Subject, check_approval, check_break_glass_grant, check_change,
    check_new_grant,
};
use crate::domain::{
    Effect, FreeText, GrantRecord, GrantStatus, Permission, ProjectId, RoleBook, SubjectKind,
    Timestamp, did_you_mean,
};
use crate::error::AppError;

/// How long a grant may be given for, in days.
pub const MAX_EXPIRY_DAYS: i64 = 3650;

/// A grant as the API shows it and the log records it: one shape everywhere.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct GrantView {
    /// Its id.
    id: String,
    /// `user`, `group` or `service_account`.
    #[schema(value_type = String)]
    subject_kind: crate::domain::SubjectKind,
    /// Who: a person's or service account's id, or a group's name.
    subject: String,
    /// `allow` (a role) or `deny` (a permission).
    effect: &'static str,
    /// The role an allow grant gives.
    role: Option<String>,
    /// The permission a deny grant takes away.
    #[schema(value_type = Option<String>)]
    permission: Option<Permission>,
    /// A project's id, or `*` for every project.
    project: String,
    /// Why it was given.
    reason: String,
    /// Who gave it.
    granted_by: String,
    /// When (RFC 3339).
    created_at: String,
    /// When it lapses, if it does.
    expires_at: Option<String>,
    /// `active`, `pending`, `revoked`, `rejected` or `expired`.
    #[schema(value_type = String)]
    status: crate::domain::GrantStatus,
    /// Who approved, rejected or revoked it.
    decided_by: Option<String>,
    /// When.
    decided_at: Option<String>,
    /// Days between access reviews.
    review_every_days: Option<i64>,
    /// When it was last reviewed.
    reviewed_at: Option<String>,
    /// When its next review is due.
    review_due: Option<String>,
    /// When it was locked (it then gives nothing until unlocked).
    locked_at: Option<String>,
}

impl GrantView {
    /// The view of `g`.
    pub fn of(g: &GrantRecord) -> Self {
        Self {
            id: g.id.clone(),
            subject_kind: g.subject_kind,
            subject: g.subject.clone(),
            effect: match g.effect {
                Effect::Allow => "allow",
                Effect::Deny => "deny",
            },
            role: g.role.clone(),
            permission: g.permission,
            project: g.project.clone(),
            reason: g.reason.clone(),
            granted_by: g.granted_by.clone(),
            created_at: g.created_at.to_rfc3339(),
            expires_at: g.expires_at.map(Timestamp::to_rfc3339),
            status: g.status,
            decided_by: g.decided_by.clone(),
            decided_at: g.decided_at.map(Timestamp::to_rfc3339),
            review_every_days: g.review_every_days,
            reviewed_at: g.reviewed_at.map(Timestamp::to_rfc3339),
            review_due: g.review_due().map(Timestamp::to_rfc3339),
            locked_at: g.locked_at.map(Timestamp::to_rfc3339),
        }
    }
}

/// [`GrantView`] as JSON, for the log's before/after details.
pub fn grant_json(g: &GrantRecord) -> Value {
    serde_json::to_value(GrantView::of(g)).expect("a grant serializes")
}

/// What a new grant gives, to whom, where: parsed once, from the API's body or the CLI's flags.
#[derive(Debug, Clone)]
pub struct NewGrant {
    subject_kind: SubjectKind,
    subject: String,
    effect: Effect,
    role: Option<String>,
    permission: Option<Permission>,
    project: String,
    reason: String,
    expires_in_days: Option<i64>,
}

impl NewGrant {
    /// Parses a request: exactly one of `role` and `deny`, a project id or `*`, a reason, and
    /// an expiry of 1 to 3650 days if any. Each refusal is a 422 saying what to change.
    pub fn parse(
        subject_kind: &str,
        subject: String,
        role: Option<String>,
        deny: Option<String>,
        project: String,
        reason: String,
        expires_in_days: Option<i64>,
    ) -> Result<Self, AppError> {
        let subject_kind = SubjectKind::parse(subject_kind).ok_or_else(|| {
            AppError::Unprocessable("subject_kind is user, group or service_account".into())
        })?;
        if subject.trim().is_empty() {
            return Err(AppError::Unprocessable("name the grant's subject".into()));
        }
        let (effect, role, permission) = match (role, deny) {
            (Some(role), None) => (Effect::Allow, Some(role), None),
            (None, Some(p)) => (
                Effect::Deny,
                None,
                Some(Permission::parse(&p).ok_or_else(|| {
                    let hint = did_you_mean(&p, Permission::ALL.iter().map(|q| q.as_str()));
                    AppError::Unprocessable(format!("{p:?} is not a permission{hint}"))
                })?),
            ),
            _ => {
                return Err(AppError::Unprocessable(
                    "send exactly one of role and deny".into(),
                ));
            }
        };
        if project != "*" {
            ProjectId::parse(&project).map_err(|e| AppError::Unprocessable(e.0))?;
        }
        FreeText::required("reason", &reason)?;
        if let Some(d) = expires_in_days
            && !(1..=MAX_EXPIRY_DAYS).contains(&d)
        {
            return Err(AppError::Unprocessable(format!(
                "expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}"
            )));
        }
        Ok(Self {
            subject_kind,
            subject,
            effect,
            role,
            permission,
            project,
            reason,
            expires_in_days,
        })
    }
}

/// The acting person as separation of duties sees them, or None for the operator.
async fn duty_actor(
    admin: &Admin<'_>,
    by: Administrator<'_>,
) -> Result<Option<(String, Vec<String>, Grants)>, AppError> {
    let Administrator::Person { principal, .. } = by else {
        return Ok(None);
    };
    match principal.subject() {
        Subject::User { id, grants, .. } => {
            let groups = admin
                .store
                .user(id)
                .await?
                .map(|(_, g)| g)
                .unwrap_or_default();
            Ok(Some((id.clone(), groups, grants.clone())))
        }
        _ => Err(AppError::Forbidden(
            "only people administer grants, never tokens of services".into(),
        )),
    }
}

/// Every grant in every state, newest first; with `project`, those on it (and on every
/// project). Needs `roles:assign` on that scope.
pub async fn list(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    project: Option<&str>,
) -> Result<Vec<GrantRecord>, AppError> {
    by.may_assign(admin.audit, project.unwrap_or("*")).await?;
    Ok(admin.store.grants(project).await?)
}

/// Makes a grant: active, or pending a second administrator's approval when it is powerful
/// and a person made it. Logged (before and after) before it is stored.
pub async fn create(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    new: NewGrant,
) -> Result<GrantRecord, AppError> {
    by.may_assign(admin.audit, &new.project).await?;
    let actor = duty_actor(admin, by).await?;
    let roles = RoleBook::new(admin.store.custom_roles().await?);
    if let Some(role) = &new.role
        && roles.permissions(role).is_none()
    {
        let names = roles
            .custom()
            .iter()
            .map(|r| r.name.as_str())
            .chain(crate::domain::BUILTIN.iter().map(|r| r.name));
        let hint = did_you_mean(role, names);
        return Err(AppError::Unprocessable(format!(
            "{role:?} is not a role{hint}"
        )));
    }
    if new.project != "*" {
        let p = ProjectId::parse(&new.project).map_err(|e| AppError::Unprocessable(e.0))?;
        crate::projects::live(admin.store.as_ref(), &p)
            .await
            .map_err(|e| match e {
                AppError::NotFound(_) => {
                    AppError::Unprocessable(format!("there is no project {p}"))
                }
                other => other,
            })?;
    }
    let grantee = match new.subject_kind {
        SubjectKind::User => Some(
            admin
                .store
                .user(&new.subject)
                .await?
                .ok_or_else(|| {
                    AppError::Unprocessable(format!(
                        "there is no person {:?} (see the people list)",
                        new.subject
                    ))
                })?
                .0,
        ),
        SubjectKind::Group | SubjectKind::ServiceAccount => None,
    };
    let now = admin.clock.now();
    let mut grant = GrantRecord {
        id: uuid::Uuid::new_v4().to_string(),
        subject_kind: new.subject_kind,
        subject: new.subject,
        effect: new.effect,
        role: new.role,
        permission: new.permission,
        project: new.project,
        reason: new.reason,
        granted_by: actor
            .as_ref()
            .map_or_else(|| "cli".to_owned(), |(id, ..)| id.clone()),
        created_at: now,
        expires_at: new
            .expires_in_days
            .map(|d| Timestamp::from_millis(now.millis() + d * 86_400_000)),
        status: GrantStatus::Active,
        decided_by: None,
        decided_at: None,
        review_every_days: Some(admin.access.review_every_days),
        reviewed_at: None,
        locked_at: None,
    };
    let break_glass = grantee.is_some_and(|u| u.is_break_glass());
    let checked = if break_glass {
        check_break_glass_grant(&grant, &roles)
    } else {
        Ok(())
    };
    let status = checked.and_then(|()| match &actor {
        Some((id, groups, grants)) => check_new_grant(
            &DutyActor { id, groups, grants },
            &grant,
            &roles,
            admin.access.powerful_grants_need_approval,
        ),
        None => Ok(GrantStatus::Active),
    });
    grant.status = match status {
        Ok(status) => status,
        Err(reason) => return Err(by.refuse(admin.audit, reason).await),
    };
    let details = json!({"grant": grant.id, "before": null, "after": grant_json(&grant)});
    by.record(admin.audit, &grant.project, details).await?;
    admin.store.create_grant(&grant).await?;
    Ok(grant)
}

/// Approves (`Active`) or rejects a pending grant, or revokes a pending or active one.
pub async fn decide(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
    to: GrantStatus,
) -> Result<GrantRecord, AppError> {
    let grant = existing(admin, by, id).await?;
    let actor = duty_actor(admin, by).await?;
    let duty = actor
        .as_ref()
        .map(|(id, groups, grants)| DutyActor { id, groups, grants });
    let from = if to == GrantStatus::Revoked {
        if let Some(actor) = &duty
            && let Err(reason) = check_change(actor, &grant, GrantChange::Revoke)
        {
            return Err(by.refuse(admin.audit, reason).await);
        }
        if !matches!(grant.status, GrantStatus::Active | GrantStatus::Pending) {
            return Err(AppError::Conflict(format!(
                "the grant is already {}",
                grant.status.as_str()
            )));
        }
        grant.status
    } else {
        let roles = RoleBook::new(admin.store.custom_roles().await?);
        let checked = match &duty {
            Some(actor) => check_approval(actor, &grant, &roles),
            None if grant.status == GrantStatus::Pending => Ok(()),
            None => Err(format!(
                "the grant is {}, not pending",
                grant.status.as_str()
            )),
        };
        if let Err(reason) = checked {
            let pending = grant.status == GrantStatus::Pending;
            let refused = by.refuse(admin.audit, reason).await;
            return Err(match refused {
                AppError::Forbidden(reason) if !pending => AppError::Conflict(reason),
                other => other,
            });
        }
        GrantStatus::Pending
    };
    let decided_by = actor.map_or_else(|| "cli".to_owned(), |(id, ..)| id);
    let now = admin.clock.now();
    let after = GrantRecord {
        status: to,
        decided_by: Some(decided_by.clone()),
        decided_at: Some(now),
        ..grant.clone()
    };
    let details =
        json!({"grant": grant.id, "before": grant_json(&grant), "after": grant_json(&after)});
    by.record(admin.audit, &grant.project, details).await?;
    if !admin
        .store
        .decide_grant(id, from, to, &decided_by, now)
        .await?
    {
        return Err(AppError::Conflict(
            "the grant changed meanwhile; try again".into(),
        ));
    }
    Ok(after)
}

/// A grant that exists, once `by` may assign roles on its scope (a missing grant is told
/// only to those who may assign everywhere).
async fn existing(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
) -> Result<GrantRecord, AppError> {
    let Some(grant) = admin.store.grant(id).await? else {
        by.may_assign(admin.audit, "*").await?;
        return Err(AppError::NotFound(format!("no grant {id}")));
    };
    by.may_assign(admin.audit, &grant.project).await?;
    Ok(grant)
}

/// Locks a grant (it stops working until unlocked) or unlocks it.
pub async fn lock(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
    lock: bool,
) -> Result<GrantRecord, AppError> {
    let grant = existing(admin, by, id).await?;
    let change = if lock {
        GrantChange::Lock
    } else {
        GrantChange::Unlock
    };
    if let Some((actor_id, groups, grants)) = duty_actor(admin, by).await?
        && let Err(reason) = check_change(
            &DutyActor {
                id: &actor_id,
                groups: &groups,
                grants: &grants,
            },
            &grant,
            change,
        )
    {
        return Err(by.refuse(admin.audit, reason).await);
    }
    let now = admin.clock.now();
    let after = GrantRecord {
        locked_at: lock.then_some(now),
        ..grant.clone()
    };
    let details = json!({"grant": id, "before": {"locked": grant.locked_at.is_some()}, "after": {"locked": lock}});
    by.record(admin.audit, &grant.project, details).await?;
    admin.store.lock_grant(id, lock.then_some(now)).await?;
    Ok(after)
}

/// Records a review of a grant by someone other than its grantee, restarting its cadence.
/// `note` is read only once `by` may assign on the grant's scope, so the refusal is the
/// same whatever the body said.
pub async fn review(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
    note: impl FnOnce() -> Result<String, AppError>,
) -> Result<GrantRecord, AppError> {
    let grant = existing(admin, by, id).await?;
    let note = note()?;
    let reviewer = duty_actor(admin, by)
        .await?
        .map_or_else(|| "cli".to_owned(), |(id, ..)| id);
    if grant.subject_kind == SubjectKind::User && grant.subject == reviewer {
        return Err(AppError::Forbidden("nobody reviews their own grant".into()));
    }
    FreeText::required("note", &note)?;
    let now = admin.clock.now();
    let after = GrantRecord {
        reviewed_at: Some(now),
        ..grant.clone()
    };
    let details = json!({
        "grant": grant.id,
        "review": note,
        "before": {"reviewed_at": grant.reviewed_at.map(Timestamp::to_rfc3339), "review_due": grant.review_due().map(Timestamp::to_rfc3339)},
        "after": {"reviewed_at": now.to_rfc3339(), "review_due": after.review_due().map(Timestamp::to_rfc3339)},
    });
    by.record(admin.audit, &grant.project, details).await?;
    admin.store.review_grant(id, &reviewer, &note, now).await?;
    Ok(after)
}
