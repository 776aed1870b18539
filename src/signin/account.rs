//! A person's own account: their sessions, personal tokens, 2-step verification state and
//! security notices. Each change is written to the audit log before it is made.

use serde_json::json;

use super::caller::Person;
use crate::audit::RequestContext;
use crate::error::AppError;
use crate::ledger::entry::{Action, Outcome};
use crate::state::AppState;
use crate::store::{EndReason, Notice, PersonalToken, SessionRecord};

/// What a person should know about their own account.
pub struct Standing {
    /// Whether they have confirmed a 2-step verification app.
    pub second_factor_enrolled: bool,
    /// Things that happened to the account, newest first.
    pub notices: Vec<Notice>,
}

/// The person's 2-step verification state and security notices.
pub async fn standing(state: &AppState, person: &Person) -> Result<Standing, AppError> {
    let id = &person.user.id;
    let totp = state.store.totp(id).await?;
    Ok(Standing {
        second_factor_enrolled: totp.is_some_and(|t| t.activated_at.is_some()),
        notices: state.store.notices(id).await?,
    })
}

/// The person's live sessions, newest first.
pub async fn sessions(state: &AppState, person: &Person) -> Result<Vec<SessionRecord>, AppError> {
    Ok(state
        .store
        .live_sessions(&person.user.id, state.clock.now())
        .await?)
}

/// Ends one of the person's live sessions (404 for any other id).
pub async fn end_session(
    state: &AppState,
    ctx: &RequestContext,
    person: &Person,
    public_id: &str,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let live = state.store.live_sessions(&person.user.id, now).await?;
    if !live.iter().any(|s| s.public_id == public_id) {
        return Err(AppError::NotFound(format!(
            "you have no live session {public_id}"
        )));
    }
    state
        .audit
        .account(
            ctx,
            person.actor(),
            Action::SessionEnd,
            Outcome::Allowed,
            json!({"session": public_id, "owner": person.user.id}),
        )
        .await?;
    state
        .store
        .end_session(&person.user.id, public_id, EndReason::Ended, now)
        .await?;
    Ok(())
}

/// The person's personal tokens, newest first (never their secrets).
pub async fn tokens(state: &AppState, person: &Person) -> Result<Vec<PersonalToken>, AppError> {
    Ok(state.store.personal_tokens(&person.user.id).await?)
}

/// Revokes one of the person's tokens that is not revoked yet (404 for any other id).
pub async fn revoke_token(
    state: &AppState,
    ctx: &RequestContext,
    person: &Person,
    id: &str,
) -> Result<(), AppError> {
    let mine = state.store.personal_tokens(&person.user.id).await?;
    if !mine.iter().any(|t| t.id == id && t.revoked_at.is_none()) {
        return Err(AppError::NotFound(format!("you have no live token {id}")));
    }
    state
        .audit
        .account(
            ctx,
            person.actor(),
            Action::TokenRevoke,
            Outcome::Allowed,
            json!({"kind": "personal", "token": id}),
        )
        .await?;
    state
        .store
        .revoke_personal_token(&person.user.id, id, state.clock.now())
        .await?;
    Ok(())
}
