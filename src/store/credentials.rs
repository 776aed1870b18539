//! 2-step verification (TOTP and recovery codes) and personal API tokens.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::StoreResult;
use super::people::{opt_ts, ts};
use super::sql::{Backend, SqlStore, portable_impl};
use crate::domain::{Timestamp, TotpState};

/// A stored TOTP credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The secret, sealed (base64).
    pub secret_sealed: String,
    /// Replay and lockout state.
    pub state: TotpState,
    /// When enrollment began.
    pub created_at: Timestamp,
    /// When enrollment was confirmed; pending until then.
    pub activated_at: Option<Timestamp>,
}

/// A personal API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalToken {
    /// The id.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// What the owner called it.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used.
    pub last_used_at: Option<Timestamp>,
}

/// 2-step verification, recovery codes and personal tokens.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// A person's TOTP credential.
    async fn totp(&self, user_id: &str) -> StoreResult<Option<TotpRecord>>;
    /// Starts (or restarts) enrollment with a new sealed secret; refused once active.
    async fn begin_totp(&self, user_id: &str, sealed: &str, at: Timestamp) -> StoreResult<bool>;
    /// Accepts a TOTP code's time step if it is later than any accepted before (false for a
    /// replay, even by a parallel request), clears the failure count, and activates a pending
    /// credential if `activate`.
    async fn accept_totp_step(
        &self,
        user_id: &str,
        step: u64,
        activate: Option<Timestamp>,
    ) -> StoreResult<bool>;
    /// Removes a person's TOTP credential and recovery codes (an administrator's reset).
    async fn reset_totp(&self, user_id: &str) -> StoreResult<bool>;
    /// Replaces a person's recovery codes with a new batch of hashes.
    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()>;
    /// Hashes of a person's unused recovery codes.
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<String>>;
    /// Marks one recovery code used; false if it already was.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores a personal token under the hash of its secret.
    async fn create_personal_token(&self, token: &PersonalToken, hash: &str) -> StoreResult<()>;
    /// A personal token by the hash of its secret.
    async fn personal_token(&self, hash: &str) -> StoreResult<Option<PersonalToken>>;
    /// A person's tokens, newest first.
    async fn personal_tokens(&self, user_id: &str) -> StoreResult<Vec<PersonalToken>>;
    /// Revokes one of a person's tokens; false if none was live.
    async fn revoke_personal_token(
        &self,
        user_id: &str,
        id: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Revokes all of a person's tokens; returns how many.
    async fn revoke_personal_tokens(&self, user_id: &str, at: Timestamp) -> StoreResult<u64>;
    /// Records a token's use.
    async fn touch_personal_token(&self, id: &str, at: Timestamp) -> StoreResult<()>;
}

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, expires_at, revoked_at, last_used_at";

portable_impl!(CredentialStore {

    async fn totp(&self, user_id: &str) -> StoreResult<Option<TotpRecord>> {
        let row = sqlx::query(
            "SELECT secret_sealed, last_step, failures, locked_until, created_at, activated_at \
             FROM totp_credentials WHERE user_id = $1",
        )
        .bind(user_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let last_step: Option<i64> = r.try_get("last_step")?;
            let failures: i64 = r.try_get("failures")?;
            Ok(TotpRecord {
                secret_sealed: r.try_get("secret_sealed")?,
                state: TotpState {
                    last_step: last_step.map(|s| s.max(0) as u64),
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    locked_until: opt_ts(r.try_get("locked_until")?),
                },
                created_at: ts(r.try_get("created_at")?),
                activated_at: opt_ts(r.try_get("activated_at")?),
            })
        })
        .transpose()
    }

    async fn begin_totp(&self, user_id: &str, sealed: &str, at: Timestamp) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO totp_credentials (user_id, secret_sealed, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, \
             created_at = excluded.created_at, last_step = NULL, failures = 0, locked_until = NULL \
             WHERE totp_credentials.activated_at IS NULL",
        )
        .bind(user_id.to_owned())
        .bind(sealed.to_owned())
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn accept_totp_step(
        &self,
        user_id: &str,
        step: u64,
        activate: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE totp_credentials SET last_step = $1, failures = 0, locked_until = NULL, \
             activated_at = COALESCE(activated_at, $2) \
             WHERE user_id = $3 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(activate.map(|t| t.millis()))
        .bind(user_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn reset_totp(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user_id.to_owned())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.to_owned())
            .execute(&mut *tx)
            .await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, hash) VALUES ($1, $2)")
                .bind(user_id.to_owned())
                .bind(hash.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT hash FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL ORDER BY hash",
        )
        .bind(user_id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("hash")?))
            .collect::<StoreResult<_>>()
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND hash = $3 AND used_at IS NULL",
        )
        .bind(at.millis())
        .bind(user_id.to_owned())
        .bind(hash.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn create_personal_token(&self, t: &PersonalToken, hash: &str) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO personal_tokens ({TOKEN_COLUMNS}, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )))
        .bind(t.id.clone())
        .bind(t.user_id.clone())
        .bind(t.name.clone())
        .bind(t.created_at.millis())
        .bind(t.expires_at.millis())
        .bind(t.revoked_at.map(|x| x.millis()))
        .bind(t.last_used_at.map(|x| x.millis()))
        .bind(hash.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn personal_token(&self, hash: &str) -> StoreResult<Option<PersonalToken>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM personal_tokens WHERE token_hash = $1"
        )))
        .bind(hash.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_row::<DB>).transpose()
    }

    async fn personal_tokens(&self, user_id: &str) -> StoreResult<Vec<PersonalToken>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM personal_tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
        )))
        .bind(user_id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row::<DB>).collect()
    }

    async fn revoke_personal_token(
        &self,
        user_id: &str,
        id: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE personal_tokens SET revoked_at = $1 WHERE user_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(user_id.to_owned())
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn revoke_personal_tokens(&self, user_id: &str, at: Timestamp) -> StoreResult<u64> {
        let r = sqlx::query(
            "UPDATE personal_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(user_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r))
    }

    async fn touch_personal_token(&self, id: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE personal_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at.millis())
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
});

use sqlx::AssertSqlSafe;

fn token_row<DB>(r: &DB::Row) -> StoreResult<PersonalToken>
where
    DB: sqlx::Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    Ok(PersonalToken {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        created_at: ts(r.try_get("created_at")?),
        expires_at: ts(r.try_get("expires_at")?),
        revoked_at: opt_ts(r.try_get("revoked_at")?),
        last_used_at: opt_ts(r.try_get("last_used_at")?),
    })
}
