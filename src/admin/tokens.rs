//! A service account's API tokens: list, create (the secret shown once), revoke. One
//! implementation for the API, the console and `auditgate token ...`; each act needs
//! `users:admin` on every project (as locking an account) and is logged, in the account's
//! project, before it is made.

use std::collections::HashMap;

use serde_json::json;

use super::people::service_account;
use super::{Admin, Administrator};
use crate::access::perm;
use crate::auth::tokens::ApiSecret;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::{ServiceAccount, TokenRecord};

/// The account's tokens, revoked ones included, oldest first.
pub async fn list(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    account: &str,
) -> Result<(ServiceAccount, Vec<TokenRecord>), AppError> {
    // The right first (everywhere, as for locking), so an unknown account is no answer to
    // someone who may not ask.
    by.may::<perm::UsersAdmin>(admin.audit, Action::TokenCreate, "*")
        .await?;
    let account = service_account(admin, account).await?;
    let tokens = admin
        .store
        .tokens(&account.project_id)
        .await?
        .into_iter()
        .filter(|t| t.service_account.id == account.id)
        .collect();
    Ok((account, tokens))
}

/// Every service account with when it was locked and its tokens: one check of the right,
/// and each project's tokens read once (for the console's list).
pub async fn every_account(
    admin: &Admin<'_>,
    by: Administrator<'_>,
) -> Result<Vec<(ServiceAccount, Option<Timestamp>, Vec<TokenRecord>)>, AppError> {
    let accounts = super::people::service_accounts(admin, by).await?;
    let mut by_project: HashMap<String, Vec<TokenRecord>> = HashMap::new();
    let mut out = Vec::with_capacity(accounts.len());
    for (account, locked) in accounts {
        let project = account.project_id.as_str().to_owned();
        if !by_project.contains_key(&project) {
            let found = admin.store.tokens(&account.project_id).await?;
            by_project.insert(project.clone(), found);
        }
        let tokens = by_project[&project]
            .iter()
            .filter(|t| t.service_account.id == account.id)
            .cloned()
            .collect();
        out.push((account, locked, tokens));
    }
    Ok(out)
}

/// Makes a new token for the account; its secret is returned once and only its hash kept.
pub async fn create(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    account: &str,
) -> Result<(ServiceAccount, String, ApiSecret), AppError> {
    by.may::<perm::UsersAdmin>(admin.audit, Action::TokenCreate, "*")
        .await?;
    let account = service_account(admin, account).await?;
    let scope = account.project_id.as_str();
    crate::projects::live(admin.store.as_ref(), &account.project_id).await?;
    let (token, secret) = crate::auth::tokens::new_token(&account, admin.clock);
    let details = json!({"token_id": token.id, "service_account": account.id});
    by.record_as::<perm::UsersAdmin>(admin.audit, Action::TokenCreate, scope, details)
        .await?;
    admin.store.create_token(&token).await?;
    Ok((account, token.id, secret))
}

/// Revokes one of the account's live tokens: it stops working at the next request.
pub async fn revoke(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    account: &str,
    token: &str,
) -> Result<TokenRecord, AppError> {
    let (account, tokens) = list(admin, by, account).await?;
    let Some(found) = tokens.into_iter().find(|t| t.id == token) else {
        return Err(AppError::NotFound(format!(
            "service account {} has no token {token:?}",
            account.name
        )));
    };
    if found.revoked_at.is_some() {
        return Err(AppError::Conflict(format!(
            "token {token} is already revoked"
        )));
    }
    let details = json!({"token_id": found.id, "service_account": account.id, "before": {"revoked": false}, "after": {"revoked": true}});
    let scope = account.project_id.as_str();
    by.record_as::<perm::UsersAdmin>(admin.audit, Action::TokenRevoke, scope, details)
        .await?;
    let now = admin.clock.now();
    if !admin.store.revoke_token(&found.id, now).await? {
        return Err(AppError::Conflict(format!(
            "token {token} was revoked meanwhile"
        )));
    }
    Ok(TokenRecord {
        revoked_at: Some(now),
        ..found
    })
}

/// The account whose token this is, among every service account (for the CLI, which names
/// a token by its id alone).
pub async fn owner_of(admin: &Admin<'_>, token: &str) -> Result<ServiceAccount, AppError> {
    for (account, _) in admin.store.all_service_accounts().await? {
        let tokens = admin.store.tokens(&account.project_id).await?;
        if tokens
            .iter()
            .any(|t| t.id == token && t.service_account.id == account.id)
        {
            return Ok(account);
        }
    }
    Err(AppError::NotFound(format!("no token with id {token:?}")))
}
