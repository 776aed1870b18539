//! People and service accounts: disabled, re-enabled, locked and unlocked through one
//! implementation, whoever asks (`users:admin` for a person, the operator at the CLI).

use serde::Serialize;
use serde_json::json;

use super::{Admin, Administrator};
use crate::access::perm;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::{EndReason, ServiceAccount, User};

/// What disabling or re-enabling someone did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Disabled {
    /// The person.
    pub id: String,
    /// Whether they are disabled now.
    pub disabled: bool,
    /// Live sessions ended.
    pub sessions_ended: u64,
    /// Personal tokens revoked.
    pub tokens_revoked: u64,
}

/// Disables a person (their sessions end and their personal tokens are revoked at once) or
/// re-enables them. Nobody disables or re-enables themselves.
pub async fn set_disabled(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
    disable: bool,
) -> Result<Disabled, AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::UserChange, "*")
        .await?;
    let (user, _) = admin
        .store
        .user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no person {id}")))?;
    if by.id() == Some(id) {
        return Err(AppError::Forbidden(
            "nobody can disable or re-enable themselves".into(),
        ));
    }
    let now = admin.clock.now();
    let details = json!({
        "user": id,
        "before": {"disabled": user.disabled_at.is_some()},
        "after": {"disabled": disable, "sessions": if disable { "ended" } else { "unchanged" }, "personal_tokens": if disable { "revoked" } else { "unchanged" }},
    });
    by.record_as::<perm::UsersAdmin>(admin.audit, Action::UserChange, "*", details)
        .await?;
    admin
        .store
        .set_user_disabled(id, disable.then_some(now))
        .await?;
    let (mut sessions_ended, mut tokens_revoked) = (0, 0);
    if disable {
        sessions_ended = admin
            .store
            .end_user_sessions(id, EndReason::Disabled, now)
            .await?;
        tokens_revoked = admin.store.revoke_personal_tokens(id, now).await?;
    }
    Ok(Disabled {
        id: id.to_owned(),
        disabled: disable,
        sessions_ended,
        tokens_revoked,
    })
}

/// Every person, for those holding `users:admin`.
pub async fn list(admin: &Admin<'_>, by: Administrator<'_>) -> Result<Vec<User>, AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::UserChange, "*")
        .await?;
    Ok(admin.store.users().await?)
}

/// A person's 2-step verification, reset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecondFactorReset {
    /// Whether they had one to reset.
    pub reset: bool,
    /// How many live sessions ended.
    pub sessions_ended: u64,
}

/// A person's sessions, ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    /// How many were live.
    pub sessions_ended: u64,
}

async fn existing(admin: &Admin<'_>, id: &str) -> Result<(), AppError> {
    match admin.store.user(id).await? {
        Some(_) => Ok(()),
        None => Err(AppError::NotFound(format!("no person {id}"))),
    }
}

/// Resets a person's 2-step verification (a lost phone): they enroll again at their next
/// sign-in, and their live sessions end.
pub async fn reset_second_factor(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
) -> Result<SecondFactorReset, AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::SecondFactorReset, "*")
        .await?;
    existing(admin, id).await?;
    let had = admin.store.totp(id).await?.is_some();
    let details = json!({
        "user": id,
        "before": {"second_factor": had},
        "after": {"second_factor": false, "sessions": "ended"},
    });
    by.record_as::<perm::UsersAdmin>(admin.audit, Action::SecondFactorReset, "*", details)
        .await?;
    admin.store.reset_totp(id).await?;
    let sessions_ended = admin
        .store
        .end_user_sessions(id, EndReason::Ended, admin.clock.now())
        .await?;
    Ok(SecondFactorReset {
        reset: had,
        sessions_ended,
    })
}

/// Ends every live session of a person (their personal tokens keep working).
pub async fn end_sessions(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &str,
) -> Result<SessionsEnded, AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::SessionEnd, "*")
        .await?;
    existing(admin, id).await?;
    let now = admin.clock.now();
    let live = admin.store.live_sessions(id, now).await?.len();
    let details =
        json!({"user": id, "before": {"live_sessions": live}, "after": {"live_sessions": 0}});
    by.record_as::<perm::UsersAdmin>(admin.audit, Action::SessionEnd, "*", details)
        .await?;
    let sessions_ended = admin
        .store
        .end_user_sessions(id, EndReason::Ended, now)
        .await?;
    Ok(SessionsEnded { sessions_ended })
}

/// The one service account with this id or name.
pub async fn service_account(
    admin: &Admin<'_>,
    id_or_name: &str,
) -> Result<ServiceAccount, AppError> {
    let mut matches: Vec<ServiceAccount> = admin
        .store
        .all_service_accounts()
        .await?
        .into_iter()
        .map(|(sa, _)| sa)
        .filter(|sa| sa.id == id_or_name || sa.name == id_or_name)
        .collect();
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(AppError::NotFound(format!(
            "no service account with the id or name {id_or_name:?}"
        ))),
        n => Err(AppError::Conflict(format!(
            "{id_or_name:?} names {n} service accounts; use one of their ids: {}",
            matches
                .iter()
                .map(|sa| sa.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Every service account with when it was locked, for those holding `users:admin`.
pub async fn service_accounts(
    admin: &Admin<'_>,
    by: Administrator<'_>,
) -> Result<Vec<(ServiceAccount, Option<crate::domain::Timestamp>)>, AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::UserChange, "*")
        .await?;
    Ok(admin.store.all_service_accounts().await?)
}

/// Locks a service account (every token of it stops at the next request) or unlocks it.
pub async fn lock_service_account(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id_or_name: &str,
    lock: bool,
) -> Result<ServiceAccount, AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::UserChange, "*")
        .await?;
    let account = service_account(admin, id_or_name).await?;
    let before = admin
        .store
        .service_account_locked(&account.id)
        .await?
        .is_some();
    let details = json!({"service_account": account.id, "before": {"locked": before}, "after": {"locked": lock}});
    by.record_as::<perm::UsersAdmin>(admin.audit, Action::UserChange, "*", details)
        .await?;
    let now = admin.clock.now();
    admin
        .store
        .lock_service_account(&account.id, lock.then_some(now))
        .await?;
    Ok(account)
}
