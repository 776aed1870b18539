//! People, their identities at providers, sessions, 2-step verification and personal tokens.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql::{Backend, SqlStore, portable_impl};
use super::{StoreError, StoreResult};
use crate::domain::Timestamp;
use crate::domain::TotpState;

/// How a person's account came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// Provisioned at first sign-in through an identity provider.
    Sso,
    /// The break-glass administrator, signing in with a password.
    Local,
}

impl UserKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sso => "sso",
            Self::Local => "local",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "sso" => Ok(Self::Sso),
            "local" => Ok(Self::Local),
            other => Err(anyhow::anyhow!("unknown user kind {other:?}").into()),
        }
    }
}

/// A secret that locks after repeated failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// The break-glass password.
    Password,
    /// TOTP codes and recovery codes.
    Totp,
}

impl Factor {
    fn table(self) -> &'static str {
        match self {
            Self::Password => "local_passwords",
            Self::Totp => "totp_credentials",
        }
    }
}

/// What claiming an attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Evaluate it. `locks_until` is set when it is the last allowed: the lock stands
    /// unless it succeeds.
    Granted {
        /// The lock this attempt set.
        locks_until: Option<Timestamp>,
    },
    /// Locked (until then, if known), or no such factor: evaluate nothing.
    Refused {
        /// When the lock ends.
        until: Option<Timestamp>,
    },
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// A random id; the audit log names people by it.
    pub id: String,
    /// The email address the provider last reported.
    pub email: String,
    /// The display name the provider last reported.
    pub name: Option<String>,
    /// SSO or break-glass.
    pub kind: UserKind,
    /// When the account was created.
    pub created_at: Timestamp,
    /// The last successful sign-in.
    pub last_signin_at: Option<Timestamp>,
    /// Set while the account is disabled.
    pub disabled_at: Option<Timestamp>,
}

/// A person as the access review lists them: their groups and their tokens' last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonOverview {
    /// The person.
    pub user: User,
    /// The groups their providers last reported, sorted.
    pub groups: Vec<String>,
    /// The last use of any of their personal tokens.
    pub token_last_used: Option<Timestamp>,
}

impl User {
    /// The local break-glass account (not signed in through a provider): it reads no data.
    pub fn is_break_glass(&self) -> bool {
        self.kind == UserKind::Local
    }
}

/// Who a provider says signed in, as stored at each sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoProfile {
    /// The provider's name in configuration.
    pub provider: String,
    /// The issuer URL.
    pub issuer: String,
    /// The provider's stable subject id.
    pub subject: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Group names.
    pub groups: Vec<String>,
}

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

/// A security notice shown to a person about their own account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// When.
    pub at: Timestamp,
    /// A stable kind, such as `totp_replay`.
    pub kind: String,
    /// What happened, in words.
    pub detail: String,
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

/// People and everything about how they sign in.
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Finds or provisions the person behind (issuer, subject) and refreshes what the
    /// provider said; returns the person and whether they were created now.
    async fn upsert_sso_user(
        &self,
        profile: &SsoProfile,
        new_id: &str,
        now: Timestamp,
    ) -> StoreResult<(User, bool)>;
    /// Creates a break-glass account; `Conflict` if the email is taken.
    async fn create_local_user(&self, user: &User, password_hash: &str) -> StoreResult<()>;
    /// A break-glass account by email, with its password hash, failures and lock.
    async fn local_user(
        &self,
        email: &str,
    ) -> StoreResult<Option<(User, String, u32, Option<Timestamp>)>>;
    /// Counts one attempt at a factor before it is evaluated, in one conditional update, so
    /// that parallel attempts cannot all be evaluated: the `max`-th sets the lock (`until`),
    /// and attempts while locked are refused. A success clears the count.
    async fn claim_attempt(
        &self,
        factor: Factor,
        user_id: &str,
        max: u32,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Claim>;
    /// Clears a factor's count and lock after a success.
    async fn clear_attempts(&self, factor: Factor, user_id: &str) -> StoreResult<()>;
    /// A person by id, with the groups of all their identities.
    async fn user(&self, id: &str) -> StoreResult<Option<(User, Vec<String>)>>;
    /// Every person, oldest first.
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Every person with their groups and their tokens' last use, in three queries whatever
    /// their number.
    async fn people_overview(&self) -> StoreResult<Vec<PersonOverview>>;
    /// Marks a sign-in.
    async fn touch_user(&self, id: &str, at: Timestamp) -> StoreResult<()>;
    /// Disables (Some) or re-enables (None) a person; false if there is no such person.
    async fn set_user_disabled(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool>;

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
    /// The person behind (issuer, subject), if known.
    async fn user_by_identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>>;

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
    /// Replaces the groups a provider reported for a person.
    async fn set_identity_groups(
        &self,
        user_id: &str,
        provider: &str,
        groups: &[String],
        at: Timestamp,
    ) -> StoreResult<()>;
    /// When a provider last confirmed the person's groups (sign-in or refresh).
    async fn groups_confirmed_at(&self, user_id: &str) -> StoreResult<Option<Timestamp>>;
    /// The provider tokens of the person's most recent session that neither they, an
    /// administrator nor the provider ended: (session public id, provider, sealed tokens).
    async fn latest_provider_tokens(
        &self,
        user_id: &str,
    ) -> StoreResult<Option<(String, String, String)>>;

    /// Adds a security notice for a person.
    async fn add_notice(&self, user_id: &str, notice: &Notice) -> StoreResult<()>;
    /// A person's notices, newest first.
    async fn notices(&self, user_id: &str) -> StoreResult<Vec<Notice>>;
}

const USER_COLUMNS: &str = "id, email, name, kind, created_at, last_signin_at, disabled_at";
const SESSION_COLUMNS: &str = "id_hash, public_id, user_id, method, provider, idp_sid, acr, amr, auth_time, csrf, \
     second_factor_at, created_at, last_seen_at, expires_at, ended_at, client_ip, user_agent";
const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, expires_at, revoked_at, last_used_at";

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

fn groups_text(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".into())
}

fn groups_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

portable_impl!(PeopleStore {
    async fn upsert_sso_user(
        &self,
        p: &SsoProfile,
        new_id: &str,
        now: Timestamp,
    ) -> StoreResult<(User, bool)> {
        let mut tx = self.begin_write().await?;
        let existing: Option<String> =
            sqlx::query("SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2")
                .bind(p.issuer.clone())
                .bind(p.subject.clone())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("user_id"))
                .transpose()?;
        let created = existing.is_none();
        let id = match existing {
            Some(id) => {
                sqlx::query("UPDATE users SET email = $1, name = $2 WHERE id = $3")
                    .bind(p.email.clone())
                    .bind(p.name.clone())
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE identities SET groups = $1, updated_at = $2, provider = $3 WHERE issuer = $4 AND subject = $5",
                )
                .bind(groups_text(&p.groups))
                .bind(now.millis())
                .bind(p.provider.clone())
                .bind(p.issuer.clone())
                .bind(p.subject.clone())
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                sqlx::query(
                    "INSERT INTO users (id, email, name, kind, created_at) VALUES ($1, $2, $3, 'sso', $4)",
                )
                .bind(new_id.to_owned())
                .bind(p.email.clone())
                .bind(p.name.clone())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO identities (issuer, subject, user_id, provider, groups, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(p.issuer.clone())
                .bind(p.subject.clone())
                .bind(new_id.to_owned())
                .bind(p.provider.clone())
                .bind(groups_text(&p.groups))
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                new_id.to_owned()
            }
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let user = user_row::<DB>(&row)?;
        tx.commit().await?;
        Ok((user, created))
    }

    async fn create_local_user(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, email, name, kind, created_at) VALUES ($1, $2, $3, 'local', $4)",
        )
        .bind(user.id.clone())
        .bind(user.email.clone())
        .bind(user.name.clone())
        .bind(user.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a local account for {} already exists", user.email))
            }
            other => other,
        })?;
        sqlx::query("INSERT INTO local_passwords (user_id, hash, updated_at) VALUES ($1, $2, $3)")
            .bind(user.id.clone())
            .bind(password_hash.to_owned())
            .bind(user.created_at.millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn local_user(
        &self,
        email: &str,
    ) -> StoreResult<Option<(User, String, u32, Option<Timestamp>)>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.kind, u.created_at, u.last_signin_at, u.disabled_at, \
             p.hash, p.failures, p.locked_until \
             FROM users u JOIN local_passwords p ON p.user_id = u.id \
             WHERE u.kind = 'local' AND u.email = $1",
        )
        .bind(email.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let failures: i64 = r.try_get("failures")?;
            Ok((
                user_row::<DB>(&r)?,
                r.try_get("hash")?,
                u32::try_from(failures).unwrap_or(u32::MAX),
                opt_ts(r.try_get("locked_until")?),
            ))
        })
        .transpose()
    }

    async fn claim_attempt(
        &self,
        factor: Factor,
        user_id: &str,
        max: u32,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Claim> {
        // An expired lock restarts the count; the right-hand sides see the row before the
        // update on both backends.
        let table = factor.table();
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} SET \
             failures = CASE WHEN locked_until IS NULL THEN failures + 1 ELSE 1 END, \
             locked_until = CASE WHEN (CASE WHEN locked_until IS NULL THEN failures + 1 ELSE 1 END) >= $1 \
             THEN $2 ELSE NULL END \
             WHERE user_id = $3 AND (locked_until IS NULL OR locked_until <= $4) \
             RETURNING locked_until"
        )))
        .bind(i64::from(max))
        .bind(until.millis())
        .bind(user_id.to_owned())
        .bind(now.millis())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = row {
            return Ok(Claim::Granted {
                locks_until: opt_ts(r.try_get("locked_until")?),
            });
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT locked_until FROM {table} WHERE user_id = $1"
        )))
        .bind(user_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let until = match row {
            Some(r) => opt_ts(r.try_get("locked_until")?),
            None => None,
        };
        Ok(Claim::Refused { until })
    }

    async fn clear_attempts(&self, factor: Factor, user_id: &str) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET failures = 0, locked_until = NULL WHERE user_id = $1",
            factor.table()
        )))
        .bind(user_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn user(&self, id: &str) -> StoreResult<Option<(User, Vec<String>)>> {
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let user = user_row::<DB>(&row)?;
        let rows = sqlx::query("SELECT groups FROM identities WHERE user_id = $1")
            .bind(id.to_owned())
            .fetch_all(&self.pool)
            .await?;
        let mut groups = Vec::new();
        for r in rows {
            let text: String = r.try_get("groups")?;
            groups.extend(groups_of(&text));
        }
        groups.sort();
        groups.dedup();
        Ok(Some((user, groups)))
    }

    async fn people_overview(&self) -> StoreResult<Vec<PersonOverview>> {
        let users = self.users().await?;
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        for r in sqlx::query("SELECT user_id, groups FROM identities")
            .fetch_all(&self.pool)
            .await?
        {
            let text: String = r.try_get("groups")?;
            groups
                .entry(r.try_get("user_id")?)
                .or_default()
                .extend(groups_of(&text));
        }
        let mut used: HashMap<String, Option<i64>> = HashMap::new();
        for r in sqlx::query(
            "SELECT user_id, MAX(last_used_at) AS used FROM personal_tokens GROUP BY user_id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            used.insert(r.try_get("user_id")?, r.try_get("used")?);
        }
        Ok(users
            .into_iter()
            .map(|user| {
                let mut groups = groups.remove(&user.id).unwrap_or_default();
                groups.sort();
                groups.dedup();
                let token_last_used = used
                    .get(&user.id)
                    .copied()
                    .flatten()
                    .map(Timestamp::from_millis);
                PersonOverview {
                    user,
                    groups,
                    token_last_used,
                }
            })
            .collect())
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_row::<DB>).collect()
    }

    async fn touch_user(&self, id: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE users SET last_signin_at = $1 WHERE id = $2")
            .bind(at.millis())
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_user_disabled(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(at.map(|t| t.millis()))
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

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

    async fn user_by_identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2")
            .bind(issuer.to_owned())
            .bind(subject.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("user_id")).transpose()?)
    }

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

    async fn groups_confirmed_at(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query("SELECT MAX(updated_at) AS at FROM identities WHERE user_id = $1")
            .bind(user_id.to_owned())
            .fetch_one(&self.pool)
            .await?;
        Ok(opt_ts(row.try_get("at")?))
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

    async fn set_identity_groups(
        &self,
        user_id: &str,
        provider: &str,
        groups: &[String],
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE identities SET groups = $1, updated_at = $2 WHERE user_id = $3 AND provider = $4",
        )
        .bind(groups_text(groups))
        .bind(at.millis())
        .bind(user_id.to_owned())
        .bind(provider.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_notice(&self, user_id: &str, n: &Notice) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO security_notices (id, user_id, at, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user_id.to_owned())
        .bind(n.at.millis())
        .bind(n.kind.clone())
        .bind(n.detail.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notices(&self, user_id: &str) -> StoreResult<Vec<Notice>> {
        let rows = sqlx::query(
            "SELECT at, kind, detail FROM security_notices WHERE user_id = $1 ORDER BY at DESC LIMIT 50",
        )
        .bind(user_id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Notice {
                    at: ts(r.try_get("at")?),
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
});

use sqlx::AssertSqlSafe;

fn user_row<DB>(r: &DB::Row) -> StoreResult<User>
where
    DB: sqlx::Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let kind: String = r.try_get("kind")?;
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        kind: UserKind::parse(&kind)?,
        created_at: ts(r.try_get("created_at")?),
        last_signin_at: opt_ts(r.try_get("last_signin_at")?),
        disabled_at: opt_ts(r.try_get("disabled_at")?),
    })
}

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
