//! API tokens: 256-bit random secrets, shown once and stored only as SHA-256 hashes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::Subject;
use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::store::{NewToken, ProjectStore, ServiceAccount};

/// The prefix that makes a leaked secret easy to recognise by scanners.
const SECRET_PREFIX: &str = "ags_";
/// The prefix of personal tokens, which act for a person rather than a service account.
pub const PERSONAL_PREFIX: &str = "agp_";

/// A token secret in clear: redacted in Debug, compared in constant time.
#[derive(Clone)]
pub struct ApiSecret(String);

impl ApiSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A fresh personal token secret.
    pub fn generate_personal() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(format!(
            "{PERSONAL_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Whether this is a personal token rather than a service account's.
    pub fn is_personal(&self) -> bool {
        self.0.starts_with(PERSONAL_PREFIX)
    }

    /// The hash as hex text, as the people tables keep it.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }

    /// Wraps a secret a client presented.
    pub fn from_presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The secret, to show once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(<redacted>)")
    }
}

impl PartialEq for ApiSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// A random id for tokens and accounts (not secret).
pub fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// Makes a new token for `account`; the secret is returned once and never stored.
pub fn new_token(account: &ServiceAccount, clock: &dyn Clock) -> (NewToken, ApiSecret) {
    let secret = ApiSecret::generate();
    let token = NewToken {
        id: random_id(),
        service_account_id: account.id.clone(),
        secret_hash: secret.hash(),
        created_at: clock.now(),
    };
    (token, secret)
}

/// Finds the live service account behind a presented secret.
///
/// `expected_name` is the Basic-auth user name, when one was given: it must match the account.
pub async fn authenticate(
    store: &dyn ProjectStore,
    secret: &ApiSecret,
    expected_name: Option<&str>,
    now: Timestamp,
    touch: Option<crate::store::SharedStore>,
) -> Result<Subject, AppError> {
    let invalid = || AppError::Unauthorized("the token is not valid".into());
    let record = store
        .token_by_hash(&secret.hash())
        .await?
        .ok_or_else(invalid)?;
    if record.revoked_at.is_some() {
        return Err(AppError::Unauthorized("the token has been revoked".into()));
    }
    if record.locked_at.is_some() {
        return Err(AppError::Unauthorized(
            "this service account is locked".into(),
        ));
    }
    if let Some(name) = expected_name {
        let same: bool = name
            .as_bytes()
            .ct_eq(record.service_account.name.as_bytes())
            .into();
        if !same {
            return Err(invalid());
        }
    }
    // Recorded at most once a minute and off the request's path (best effort: it is
    // bookkeeping for the access review, and must never slow or fail a request).
    if record
        .last_used_at
        .is_none_or(|t| now.millis() - t.millis() >= 60_000)
        && let Some(store) = touch
    {
        let id = record.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&id, now).await {
                tracing::debug!(error = %e, "recording a token's use failed");
            }
        });
    }
    Ok(Subject::ServiceAccount {
        id: record.service_account.id,
        name: record.service_account.name,
        grants: crate::access::Grants::service_account(&record.service_account.project_id),
        project: record.service_account.project_id,
        token_id: record.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_redacted_and_hashed() {
        let a = ApiSecret::generate();
        let b = ApiSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("ags_") && a.expose().len() == 4 + 43);
        assert_eq!(format!("{a:?}"), "ApiSecret(<redacted>)");
        assert_eq!(a.hash(), ApiSecret::from_presented(a.expose()).hash());
        assert_eq!(a.hash().len(), 32);
    }
}
