//! Grants and people, administered over the API. Every change is logged, with the value
//! before and after, before it is made.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{
    DutyActor, Effect, GrantChange, GrantRecord, GrantStatus, Permission, Principal, Subject,
    SubjectKind, check_approval, check_break_glass_grant, check_change, check_new_grant, perm,
};
use crate::audit::RequestContext;
use crate::auth::caller::role_book;
use crate::auth::signin::is_break_glass;
use crate::domain::{FreeText, ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::state::AppState;
use crate::store::EndReason;

fn grant_json(g: &GrantRecord) -> Value {
    json!({
        "id": g.id,
        "subject_kind": g.subject_kind,
        "subject": g.subject,
        "effect": match g.effect { Effect::Allow => "allow", Effect::Deny => "deny" },
        "role": g.role,
        "permission": g.permission,
        "project": g.project,
        "reason": g.reason,
        "granted_by": g.granted_by,
        "created_at": g.created_at.to_rfc3339(),
        "expires_at": g.expires_at.map(Timestamp::to_rfc3339),
        "status": g.status,
        "decided_by": g.decided_by,
        "decided_at": g.decided_at.map(Timestamp::to_rfc3339),
        "review_every_days": g.review_every_days,
        "reviewed_at": g.reviewed_at.map(Timestamp::to_rfc3339),
        "review_due": g.review_due().map(Timestamp::to_rfc3339),
        "locked_at": g.locked_at.map(Timestamp::to_rfc3339),
    })
}

/// Authorizes `roles:assign` on a grant's scope: one project, or every project for `*`.
async fn authorize_assign(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    project: &str,
) -> Result<(), AppError> {
    if project == "*" {
        state
            .audit
            .authorize_global::<perm::RolesAssign>(ctx, principal, Action::GrantChange)
            .await?;
    } else {
        let p = ProjectId::parse(project).map_err(|e| AppError::Unprocessable(e.0))?;
        state
            .audit
            .authorize::<perm::RolesAssign>(ctx, principal, &p, Action::GrantChange)
            .await?;
    }
    Ok(())
}

/// The acting administrator, as separation of duties sees them (people only).
async fn duty_actor(
    state: &AppState,
    principal: &Principal,
) -> Result<(String, Vec<String>, crate::access::Grants), AppError> {
    match principal.subject() {
        Subject::User { id, grants, .. } => {
            let groups = state
                .store
                .user(id)
                .await?
                .map(|(_, g)| g)
                .unwrap_or_default();
            Ok((id.clone(), groups, grants.clone()))
        }
        _ => Err(AppError::Forbidden(
            "only people administer grants, never tokens of services".into(),
        )),
    }
}

/// Refuses (and logs) a lock, unlock or revocation that separation of duties forbids.
async fn check_duties(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    actor: &DutyActor<'_>,
    grant: &GrantRecord,
    change: GrantChange,
) -> Result<(), AppError> {
    if let Err(reason) = check_change(actor, grant, change) {
        state
            .audit
            .refused(ctx, crate::audit::actor_of(principal.subject()), &reason)
            .await?;
        return Err(AppError::Forbidden(reason));
    }
    Ok(())
}

/// A new grant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// `user`, `group` or `service_account`.
    subject_kind: String,
    /// The person's id, the group's name or the service account's id.
    subject: String,
    /// The role to allow.
    #[serde(default)]
    role: Option<String>,
    /// Or the one permission to deny.
    #[serde(default)]
    deny: Option<String>,
    /// A project id, or `*` for every project.
    project: String,
    /// Why (a ticket reference).
    reason: String,
    /// Days until it lapses on its own.
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// Grants a role (or denies a permission) to a person, group or service account.
#[utoipa::path(post, path = "/api/v1/admin/grants", tag = "admin", request_body = NewGrant,
    responses((status = 201, description = "Created: active, or pending a second approval"), (status = 401), (status = 403), (status = 422)))]
pub async fn create(
    ctx: RequestContext,
    principal: Principal,
    body: web::Json<NewGrant>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    authorize_assign(&state, &ctx, &principal, &b.project).await?;
    let (actor_id, groups, grants) = duty_actor(&state, &principal).await?;
    let subject_kind = SubjectKind::parse(&b.subject_kind).ok_or_else(|| {
        AppError::Unprocessable("subject_kind is user, group or service_account".into())
    })?;
    let (effect, role, permission) = match (b.role, b.deny) {
        (Some(role), None) => (Effect::Allow, Some(role), None),
        (None, Some(p)) => (
            Effect::Deny,
            None,
            Some(
                Permission::parse(&p)
                    .ok_or_else(|| AppError::Unprocessable(format!("{p:?} is not a permission")))?,
            ),
        ),
        _ => {
            return Err(AppError::Unprocessable(
                "send exactly one of role and deny".into(),
            ));
        }
    };
    FreeText::required("reason", &b.reason)?;
    let now = state.clock.now();
    let expires_at = match b.expires_in_days {
        Some(d) if !(1..=3650).contains(&d) => {
            return Err(AppError::Unprocessable(
                "expires_in_days must be between 1 and 3650".into(),
            ));
        }
        Some(d) => Some(Timestamp::from_millis(now.millis() + d * 86_400_000)),
        None => None,
    };
    let mut grant = GrantRecord {
        id: uuid::Uuid::new_v4().to_string(),
        subject_kind,
        subject: b.subject,
        effect,
        role,
        permission,
        project: b.project,
        reason: b.reason,
        granted_by: actor_id.clone(),
        created_at: now,
        expires_at,
        status: GrantStatus::Pending,
        decided_by: None,
        decided_at: None,
        review_every_days: Some(state.settings.access.review_every_days),
        reviewed_at: None,
        locked_at: None,
    };
    let actor = DutyActor {
        id: &actor_id,
        groups: &groups,
        grants: &grants,
    };
    let roles = role_book(&state).await?;
    let to_break_glass = subject_kind == SubjectKind::User
        && state
            .store
            .user(&grant.subject)
            .await?
            .is_some_and(|(u, _)| is_break_glass(&u));
    let checked = if to_break_glass {
        check_break_glass_grant(&grant, &roles)
    } else {
        Ok(())
    };
    grant.status = match checked.and_then(|()| {
        check_new_grant(
            &actor,
            &grant,
            &roles,
            state.settings.access.powerful_grants_need_approval,
        )
    }) {
        Ok(status) => status,
        Err(reason) => {
            state
                .audit
                .refused(&ctx, crate::audit::actor_of(principal.subject()), &reason)
                .await?;
            return Err(AppError::Forbidden(reason));
        }
    };
    let details = json!({"grant": grant.id, "before": null, "after": grant_json(&grant)});
    record(&state, &ctx, &principal, &grant.project, details).await?;
    state.store.create_grant(&grant).await?;
    Ok(HttpResponse::Created().json(grant_json(&grant)))
}

async fn record(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    project: &str,
    details: Value,
) -> Result<(), AppError> {
    // The change is logged (and the log committed) before it is made.
    if project == "*" {
        let auth = crate::access::authorize_global::<perm::RolesAssign>(principal)?;
        state
            .audit
            .record_global(ctx, &auth, Action::GrantChange, details)
            .await?;
    } else {
        let p = ProjectId::parse(project).map_err(|e| AppError::Unprocessable(e.0))?;
        let auth = crate::access::authorize::<perm::RolesAssign>(principal, &p)?;
        state
            .audit
            .record(ctx, &auth, Action::GrantChange, 0, details, vec![])
            .await?;
    }
    Ok(())
}

/// Which grants to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Only grants on this project (and on every project).
    project: Option<String>,
}

/// Lists grants in every state, newest first.
#[utoipa::path(get, path = "/api/v1/admin/grants", tag = "admin", params(ListParams),
    responses((status = 200, description = "The grants"), (status = 401), (status = 403)))]
pub async fn list(
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let scope = q.project.clone().unwrap_or_else(|| "*".into());
    authorize_assign(&state, &ctx, &principal, &scope).await?;
    let grants = state.store.grants(q.project.as_deref()).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"grants": grants.iter().map(grant_json).collect::<Vec<_>>()})))
}

async fn decide(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    to: GrantStatus,
) -> Result<HttpResponse, AppError> {
    let Some(grant) = state.store.grant(id).await? else {
        // Whether a grant exists is told only to those who may assign roles everywhere.
        authorize_assign(state, ctx, principal, "*").await?;
        return Err(AppError::NotFound(format!("no grant {id}")));
    };
    authorize_assign(state, ctx, principal, &grant.project).await?;
    let (actor_id, groups, grants) = duty_actor(state, principal).await?;
    let actor = DutyActor {
        id: &actor_id,
        groups: &groups,
        grants: &grants,
    };
    let from = if to == GrantStatus::Revoked {
        check_duties(state, ctx, principal, &actor, &grant, GrantChange::Revoke).await?;
        if !matches!(grant.status, GrantStatus::Active | GrantStatus::Pending) {
            return Err(AppError::Conflict(format!(
                "the grant is already {}",
                grant.status.as_str()
            )));
        }
        grant.status
    } else {
        let roles = role_book(state).await?;
        if let Err(reason) = check_approval(&actor, &grant, &roles) {
            state
                .audit
                .refused(ctx, crate::audit::actor_of(principal.subject()), &reason)
                .await?;
            return Err(if grant.status == GrantStatus::Pending {
                AppError::Forbidden(reason)
            } else {
                AppError::Conflict(reason)
            });
        }
        GrantStatus::Pending
    };
    let now = state.clock.now();
    let after = GrantRecord {
        status: to,
        decided_by: Some(actor_id.clone()),
        decided_at: Some(now),
        ..grant.clone()
    };
    let details =
        json!({"grant": grant.id, "before": grant_json(&grant), "after": grant_json(&after)});
    record(state, ctx, principal, &grant.project, details).await?;
    if !state
        .store
        .decide_grant(id, from, to, &actor_id, now)
        .await?
    {
        return Err(AppError::Conflict(
            "the grant changed meanwhile; try again".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(grant_json(&after)))
}

/// Approves a pending grant (by an administrator other than the granter and the grantee).
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/approve", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, description = "Active"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn approve(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, GrantStatus::Active).await
}

/// Rejects a pending grant.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/reject", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, description = "Rejected"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reject(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, GrantStatus::Rejected).await
}

/// Revokes a grant at once.
#[utoipa::path(delete, path = "/api/v1/admin/grants/{id}", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, description = "Revoked"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn revoke(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide(&state, &ctx, &principal, &path, GrantStatus::Revoked).await
}

/// Every person, with whether they are disabled.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    responses((status = 200, description = "People"), (status = 401), (status = 403)))]
pub async fn users(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize_global::<perm::UsersAdmin>(&ctx, &principal, Action::UserChange)
        .await?;
    let people = state.store.users().await?;
    Ok(
        HttpResponse::Ok().json(json!({"users": people.iter().map(|u| json!({
        "id": u.id, "email": u.email, "name": u.name, "kind": u.kind.as_str(),
        "created_at": u.created_at.to_rfc3339(),
        "last_signin_at": u.last_signin_at.map(Timestamp::to_rfc3339),
        "disabled_at": u.disabled_at.map(Timestamp::to_rfc3339),
    })).collect::<Vec<_>>()})),
    )
}

async fn set_disabled(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    disable: bool,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize_global::<perm::UsersAdmin>(ctx, principal, Action::UserChange)
        .await?;
    let (user, _) = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no person {id}")))?;
    if let Subject::User { id: me, .. } = principal.subject()
        && me == id
    {
        return Err(AppError::Forbidden(
            "nobody can disable or re-enable themselves".into(),
        ));
    }
    let now = state.clock.now();
    let details = json!({
        "user": id,
        "before": {"disabled": user.disabled_at.is_some()},
        "after": {"disabled": disable, "sessions": if disable { "ended" } else { "unchanged" }, "personal_tokens": if disable { "revoked" } else { "unchanged" }},
    });
    state
        .audit
        .record_global(ctx, &auth, Action::UserChange, details)
        .await?;
    state
        .store
        .set_user_disabled(id, disable.then_some(now))
        .await?;
    let (mut sessions, mut tokens) = (0, 0);
    if disable {
        sessions = state
            .store
            .end_user_sessions(id, EndReason::Disabled, now)
            .await?;
        tokens = state.store.revoke_personal_tokens(id, now).await?;
    }
    Ok(HttpResponse::Ok().json(json!({"id": id, "disabled": disable, "sessions_ended": sessions, "tokens_revoked": tokens})))
}

/// Disables a person: their sessions end and their personal tokens stop at once.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable", tag = "admin",
    params(("id" = String, Path, description = "The person")),
    responses((status = 200, description = "Disabled"), (status = 401), (status = 403), (status = 404)))]
pub async fn disable(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    set_disabled(&state, &ctx, &principal, &path, true).await
}

/// Re-enables a person.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable", tag = "admin",
    params(("id" = String, Path, description = "The person")),
    responses((status = 200, description = "Enabled"), (status = 401), (status = 403), (status = 404)))]
pub async fn enable(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    set_disabled(&state, &ctx, &principal, &path, false).await
}

/// A review's note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewNote {
    /// What was checked (kept as evidence).
    note: String,
}

/// Records that a grant was reviewed and is still needed; the next review falls due later.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/review", tag = "admin",
    params(("id" = String, Path, description = "The grant")), request_body = ReviewNote,
    responses((status = 200, description = "Reviewed"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn review(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let grant = existing_grant(&state, &ctx, &principal, &path).await?;
    // Parsed only once authorized, so that the refusal is the same whatever the body.
    let body: ReviewNote = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::Unprocessable(format!("the body does not match: {e}")))?;
    let (me, _, _) = duty_actor(&state, &principal).await?;
    if grant.subject_kind == SubjectKind::User && grant.subject == me {
        return Err(AppError::Forbidden("nobody reviews their own grant".into()));
    }
    FreeText::required("note", &body.note)?;
    let now = state.clock.now();
    let after = GrantRecord {
        reviewed_at: Some(now),
        ..grant.clone()
    };
    let details = json!({
        "grant": grant.id,
        "review": body.note,
        "before": {"reviewed_at": grant.reviewed_at.map(Timestamp::to_rfc3339), "review_due": grant.review_due().map(Timestamp::to_rfc3339)},
        "after": {"reviewed_at": now.to_rfc3339(), "review_due": after.review_due().map(Timestamp::to_rfc3339)},
    });
    record(&state, &ctx, &principal, &grant.project, details).await?;
    state
        .store
        .review_grant(&path, &me, &body.note, now)
        .await?;
    Ok(HttpResponse::Ok().json(grant_json(&after)))
}

async fn existing_grant(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
) -> Result<GrantRecord, AppError> {
    let Some(grant) = state.store.grant(id).await? else {
        authorize_assign(state, ctx, principal, "*").await?;
        return Err(AppError::NotFound(format!("no grant {id}")));
    };
    authorize_assign(state, ctx, principal, &grant.project).await?;
    Ok(grant)
}

async fn lock_grant(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    lock: bool,
) -> Result<HttpResponse, AppError> {
    let grant = existing_grant(state, ctx, principal, id).await?;
    let change = if lock {
        GrantChange::Lock
    } else {
        GrantChange::Unlock
    };
    let (actor_id, groups, grants) = duty_actor(state, principal).await?;
    let actor = DutyActor {
        id: &actor_id,
        groups: &groups,
        grants: &grants,
    };
    check_duties(state, ctx, principal, &actor, &grant, change).await?;
    let now = state.clock.now();
    let after = GrantRecord {
        locked_at: lock.then_some(now),
        ..grant.clone()
    };
    let details = json!({"grant": id, "before": {"locked": grant.locked_at.is_some()}, "after": {"locked": lock}});
    record(state, ctx, principal, &grant.project, details).await?;
    state.store.lock_grant(id, lock.then_some(now)).await?;
    Ok(HttpResponse::Ok().json(grant_json(&after)))
}

/// Locks a grant: it stops working at the next request, until unlocked.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/lock", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, description = "Locked"), (status = 401), (status = 403), (status = 404)))]
pub async fn lock(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_grant(&state, &ctx, &principal, &path, true).await
}

/// Unlocks a grant.
#[utoipa::path(post, path = "/api/v1/admin/grants/{id}/unlock", tag = "admin",
    params(("id" = String, Path, description = "The grant")),
    responses((status = 200, description = "Unlocked"), (status = 401), (status = 403), (status = 404)))]
pub async fn unlock(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_grant(&state, &ctx, &principal, &path, false).await
}

/// Every service account, with its project and lock.
#[utoipa::path(get, path = "/api/v1/admin/service-accounts", tag = "admin",
    responses((status = 200, description = "Service accounts"), (status = 401), (status = 403)))]
pub async fn service_accounts(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize_global::<perm::UsersAdmin>(&ctx, &principal, Action::UserChange)
        .await?;
    let mut out = Vec::new();
    for p in state.store.list_projects().await? {
        for sa in state.store.service_accounts(&p.id).await? {
            let locked = state.store.service_account_locked(&sa.id).await?;
            out.push(json!({"id": sa.id, "name": sa.name, "project": sa.project_id, "locked_at": locked.map(Timestamp::to_rfc3339)}));
        }
    }
    Ok(HttpResponse::Ok().json(json!({"service_accounts": out})))
}

async fn lock_account(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    id: &str,
    lock: bool,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize_global::<perm::UsersAdmin>(ctx, principal, Action::UserChange)
        .await?;
    let mut known = false;
    for p in state.store.list_projects().await? {
        known |= state
            .store
            .service_accounts(&p.id)
            .await?
            .iter()
            .any(|sa| sa.id == id);
    }
    if !known {
        return Err(AppError::NotFound(format!("no service account {id}")));
    }
    let before = state.store.service_account_locked(id).await?.is_some();
    let details =
        json!({"service_account": id, "before": {"locked": before}, "after": {"locked": lock}});
    state
        .audit
        .record_global(ctx, &auth, Action::UserChange, details)
        .await?;
    let now = state.clock.now();
    state
        .store
        .lock_service_account(id, lock.then_some(now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({"id": id, "locked": lock})))
}

/// Locks a service account: its tokens stop working at the next request.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts/{id}/lock", tag = "admin",
    params(("id" = String, Path, description = "The service account")),
    responses((status = 200, description = "Locked"), (status = 401), (status = 403), (status = 404)))]
pub async fn lock_service_account(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_account(&state, &ctx, &principal, &path, true).await
}

/// Unlocks a service account.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts/{id}/unlock", tag = "admin",
    params(("id" = String, Path, description = "The service account")),
    responses((status = 200, description = "Unlocked"), (status = 401), (status = 403), (status = 404)))]
pub async fn unlock_service_account(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    lock_account(&state, &ctx, &principal, &path, false).await
}

/// Every grantable role: built-in and custom.
#[utoipa::path(get, path = "/api/v1/admin/roles", tag = "admin",
    responses((status = 200, description = "Roles and their permissions"), (status = 401), (status = 403)))]
pub async fn roles(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    authorize_assign(&state, &ctx, &principal, "*").await?;
    let builtin: Vec<Value> = crate::access::BUILTIN
        .iter()
        .map(|r| json!({"name": r.name, "permissions": r.permissions, "builtin": true}))
        .collect();
    let custom: Vec<Value> = role_book(&state)
        .await?
        .custom()
        .iter()
        .map(|r| json!({"name": r.name, "permissions": r.permissions, "description": r.description, "builtin": false}))
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({"roles": builtin.into_iter().chain(custom).collect::<Vec<_>>()})))
}

/// A custom role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// Its name: a-z, 0-9, '_' or '-', not a built-in role's.
    name: String,
    /// Permissions from the catalogue.
    permissions: Vec<String>,
    /// What it is for.
    description: String,
}

/// Defines a custom role from the permission catalogue.
#[utoipa::path(post, path = "/api/v1/admin/roles", tag = "admin", request_body = NewRole,
    responses((status = 201, description = "Defined"), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub async fn create_role(
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize_global::<perm::RolesAssign>(&ctx, &principal, Action::RoleChange)
        .await?;
    let b: NewRole = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::Unprocessable(format!("the body does not match: {e}")))?;
    FreeText::parse("description", &b.description)?;
    let valid_name = (1..=64).contains(&b.name.len())
        && b.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid_name || crate::access::Role::builtin(&b.name).is_some() {
        return Err(AppError::Unprocessable(format!(
            "{:?} must be a-z, 0-9, '_' or '-' and not a built-in role",
            b.name
        )));
    }
    let mut permissions = Vec::new();
    for p in &b.permissions {
        let p = Permission::parse(p)
            .ok_or_else(|| AppError::Unprocessable(format!("{p:?} is not a permission")))?;
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    if permissions.is_empty() {
        return Err(AppError::Unprocessable("a role needs a permission".into()));
    }
    if role_book(&state).await?.permissions(&b.name).is_some() {
        return Err(AppError::Conflict(format!(
            "a role called {} exists",
            b.name
        )));
    }
    let role = crate::access::CustomRole {
        name: b.name,
        permissions,
        description: b.description,
    };
    let details = json!({"role": role.name, "before": null, "after": {"permissions": role.permissions, "description": role.description}});
    state
        .audit
        .record_global(&ctx, &auth, Action::RoleChange, details)
        .await?;
    let by = crate::audit::actor_of(principal.subject()).id;
    state
        .store
        .create_role(&role, &by, state.clock.now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                AppError::Conflict(format!("a role called {} exists or existed", role.name))
            }
            other => other.into(),
        })?;
    Ok(HttpResponse::Created().json(json!({"name": role.name, "permissions": role.permissions, "description": role.description})))
}

/// Removes a custom role no active grant uses.
#[utoipa::path(delete, path = "/api/v1/admin/roles/{name}", tag = "admin",
    params(("name" = String, Path, description = "The role")),
    responses((status = 200, description = "Removed"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn delete_role(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize_global::<perm::RolesAssign>(&ctx, &principal, Action::RoleChange)
        .await?;
    let book = role_book(&state).await?;
    let Some(role) = book.custom().iter().find(|r| r.name == *path) else {
        return Err(AppError::NotFound(format!("no custom role {}", *path)));
    };
    let in_use = state.store.grants(None).await?.iter().any(|g| {
        g.role.as_deref() == Some(path.as_str())
            && matches!(g.status, GrantStatus::Active | GrantStatus::Pending)
    });
    if in_use {
        return Err(AppError::Conflict(format!(
            "role {} is in use by a live grant: revoke those first",
            *path
        )));
    }
    let details =
        json!({"role": role.name, "before": {"permissions": role.permissions}, "after": null});
    state
        .audit
        .record_global(&ctx, &auth, Action::RoleChange, details)
        .await?;
    state.store.delete_role(&path, state.clock.now()).await?;
    Ok(HttpResponse::Ok().json(json!({"name": *path, "deleted": true})))
}
