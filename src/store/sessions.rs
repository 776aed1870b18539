//! Sessions, and the provider tokens kept with SSO sessions to confirm a person's groups.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::StoreResult;
use super::people::{groups_of, opt_ts, ts};
use super::sql::{Backend, SqlStore, portable_impl};
use crate::domain::Timestamp;

/// A server-side session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie value, hex.
    pub id_hash: String,
    /// An id safe to show and to name in URLs.
    pub public_id: String,
    /// Whose session it is.
    pub user_id: String,
    /// How the person signed in (an `AuthMethod` name).
    pub method: String,
    /// The provider, for SSO sessions.
    pub provider: Option<String>,
    /// The provider's session id (`sid`), for back-channel logout.
    pub idp_sid: Option<String>,
    /// The provider's authentication context class.
    pub acr: Option<String>,
    /// The provider's authentication methods.
    pub amr: Vec<String>,
    /// When the provider authenticated the person.
    pub auth_time: Option<Timestamp>,
    /// The token state-changing requests must carry.
    pub csrf: String,
    /// The last time 2-step verification was passed in this session.
    pub second_factor_at: Option<Timestamp>,
    /// When the session began.
    pub created_at: Timestamp,
    /// The last request.
    pub last_seen_at: Timestamp,
    /// The absolute end.
    pub expires_at: Timestamp,
    /// Set once ended.
    pub ended_at: Option<Timestamp>,
    /// Client IP at sign-in.
    pub client_ip: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
}

/// Why sessions end, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The person signed out.
    SignOut,
    /// The person or an administrator ended it from the session list.
    Ended,
    /// The provider sent a back-channel logout.
    ProviderLogout,
    /// The account was disabled.
    Disabled,
    /// Replaced by a new id when 2-step verification completed.
    Rotated,
}

impl EndReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignOut => "sign_out",
            Self::Ended => "ended",
            Self::ProviderLogout => "provider_logout",
            Self::Disabled => "disabled",
            Self::Rotated => "rotated",
        }
    }
}

/// Sessions, and the provider tokens kept with SSO sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// A session by the hash of its cookie value.
    async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>>;
    /// Records a request on a live session.
    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> StoreResult<()>;
    /// Gives a session a new id and CSRF token, recording a passed 2-step verification.
    async fn rotate_session(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_csrf: &str,
        second_factor_at: Timestamp,
    ) -> StoreResult<bool>;
    /// Ends one of a person's sessions by its public id; false if none was live.
    async fn end_session(
        &self,
        user_id: &str,
        public_id: &str,
        reason: EndReason,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Ends every live session of a person; returns how many.
    async fn end_user_sessions(
        &self,
        user_id: &str,
        reason: EndReason,
        at: Timestamp,
    ) -> StoreResult<u64>;
    /// Ends the live sessions a provider's logout names (by `sid`, else by subject).
    async fn end_provider_sessions(
        &self,
        provider: &str,
        sid: Option<&str>,
        user_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// A person's live sessions at `now`, newest first.
    async fn live_sessions(&self, user_id: &str, now: Timestamp)
    -> StoreResult<Vec<SessionRecord>>;

    /// Stores (or replaces) a session's sealed provider tokens and when groups were checked.
    async fn put_provider_tokens(
        &self,
        session_public_id: &str,
        sealed: &str,
        checked_at: Timestamp,
    ) -> StoreResult<()>;
    /// A session's sealed provider tokens and when groups were last checked.
    async fn provider_tokens(
        &self,
        session_public_id: &str,
    ) -> StoreResult<Option<(String, Timestamp)>>;
    /// The provider tokens of the person's most recent session that neither they, an
    /// administrator nor the provider ended: (session public id, provider, sealed tokens).
    async fn latest_provider_tokens(
        &self,
        user_id: &str,
    ) -> StoreResult<Option<(String, String, String)>>;
}

const SESSION_COLUMNS: &str = "id_hash, public_id, user_id, method, provider, idp_sid, acr, amr, auth_time, csrf, \
     second_factor_at, created_at, last_seen_at, expires_at, ended_at, client_ip, user_agent";

portable_impl!(SessionStore {

    async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        )))
        .bind(s.id_hash.clone())
        .bind(s.public_id.clone())
        .bind(s.user_id.clone())
        .bind(s.method.clone())
        .bind(s.provider.clone())
        .bind(s.idp_sid.clone())
        .bind(s.acr.clone())
        .bind(serde_json::to_string(&s.amr).unwrap_or_else(|_| "[]".into()))
        .bind(s.auth_time.map(|t| t.millis()))
        .bind(s.csrf.clone())
        .bind(s.second_factor_at.map(|t| t.millis()))
        .bind(s.created_at.millis())
        .bind(s.last_seen_at.millis())
        .bind(s.expires_at.millis())
        .bind(s.ended_at.map(|t| t.millis()))
        .bind(s.client_ip.clone())
        .bind(s.user_agent.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"
        )))
        .bind(id_hash.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_row::<DB>).transpose()
    }

    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1",
        )
        .bind(at.millis())
        .bind(id_hash.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn rotate_session(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_csrf: &str,
        second_factor_at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE sessions SET id_hash = $1, csrf = $2, second_factor_at = $3 WHERE id_hash = $4 AND ended_at IS NULL",
        )
        .bind(new_hash.to_owned())
        .bind(new_csrf.to_owned())
        .bind(second_factor_at.millis())
        .bind(old_hash.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn end_session(
        &self,
        user_id: &str,
        public_id: &str,
        reason: EndReason,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE user_id = $3 AND public_id = $4 AND ended_at IS NULL",
        )
        .bind(at.millis())
        .bind(reason.as_str().to_owned())
        .bind(user_id.to_owned())
        .bind(public_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn end_user_sessions(
        &self,
        user_id: &str,
        reason: EndReason,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let r = sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE user_id = $3 AND ended_at IS NULL",
        )
        .bind(at.millis())
        .bind(reason.as_str().to_owned())
        .bind(user_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r))
    }

    async fn end_provider_sessions(
        &self,
        provider: &str,
        sid: Option<&str>,
        user_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>> {
        let mut tx = self.begin_write().await?;
        // A sid names one provider session; without one, the subject's every session ends.
        let (clause, key) = match (sid, user_id) {
            (Some(sid), _) => ("idp_sid = $2", sid.to_owned()),
            (None, Some(user)) => ("user_id = $2", user.to_owned()),
            (None, None) => return Ok(vec![]),
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE provider = $1 AND {clause} AND ended_at IS NULL"
        )))
        .bind(provider.to_owned())
        .bind(key.clone())
        .fetch_all(&mut *tx)
        .await?;
        let sessions = rows
            .iter()
            .map(session_row::<DB>)
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE sessions SET ended_at = $3, end_reason = 'provider_logout' WHERE provider = $1 AND {clause} AND ended_at IS NULL"
        )))
        .bind(provider.to_owned())
        .bind(key)
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sessions)
    }

    async fn live_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC"
        )))
        .bind(user_id.to_owned())
        .bind(now.millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_row::<DB>).collect()
    }

    async fn put_provider_tokens(
        &self,
        session_public_id: &str,
        sealed: &str,
        checked_at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO session_provider_tokens (session_public_id, sealed, groups_checked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (session_public_id) DO UPDATE SET sealed = excluded.sealed, groups_checked_at = excluded.groups_checked_at",
        )
        .bind(session_public_id.to_owned())
        .bind(sealed.to_owned())
        .bind(checked_at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn provider_tokens(
        &self,
        session_public_id: &str,
    ) -> StoreResult<Option<(String, Timestamp)>> {
        let row = sqlx::query(
            "SELECT sealed, groups_checked_at FROM session_provider_tokens WHERE session_public_id = $1",
        )
        .bind(session_public_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("sealed")?, ts(r.try_get("groups_checked_at")?))))
            .transpose()
    }

    async fn latest_provider_tokens(
        &self,
        user_id: &str,
    ) -> StoreResult<Option<(String, String, String)>> {
        // A session replaced at 2-step verification ('rotated') handed on its tokens;
        // one ended by a sign-out, an administrator or the provider did not.
        let row = sqlx::query(
            "SELECT s.public_id, s.provider, t.sealed FROM sessions s \
             JOIN session_provider_tokens t ON t.session_public_id = s.public_id \
             WHERE s.user_id = $1 AND s.provider IS NOT NULL \
             AND (s.ended_at IS NULL OR s.end_reason = 'rotated') \
             ORDER BY s.created_at DESC LIMIT 1",
        )
        .bind(user_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("public_id")?,
                r.try_get("provider")?,
                r.try_get("sealed")?,
            ))
        })
        .transpose()
    }
});

use sqlx::AssertSqlSafe;

fn session_row<DB>(r: &DB::Row) -> StoreResult<SessionRecord>
where
    DB: sqlx::Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let amr: Option<String> = r.try_get("amr")?;
    Ok(SessionRecord {
        id_hash: r.try_get("id_hash")?,
        public_id: r.try_get("public_id")?,
        user_id: r.try_get("user_id")?,
        method: r.try_get("method")?,
        provider: r.try_get("provider")?,
        idp_sid: r.try_get("idp_sid")?,
        acr: r.try_get("acr")?,
        amr: amr.map(|a| groups_of(&a)).unwrap_or_default(),
        auth_time: opt_ts(r.try_get("auth_time")?),
        csrf: r.try_get("csrf")?,
        second_factor_at: opt_ts(r.try_get("second_factor_at")?),
        created_at: ts(r.try_get("created_at")?),
        last_seen_at: ts(r.try_get("last_seen_at")?),
        expires_at: ts(r.try_get("expires_at")?),
        ended_at: opt_ts(r.try_get("ended_at")?),
        client_ip: r.try_get("client_ip")?,
        user_agent: r.try_get("user_agent")?,
    })
}
