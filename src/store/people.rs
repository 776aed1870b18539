//! People, their identities at providers, sign-in attempts and security notices.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql::{Backend, SqlStore, portable_impl};
use super::{StoreError, StoreResult};
use crate::domain::Timestamp;

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

/// People, their identities at providers, sign-in attempts and notices.
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
    /// The person behind (issuer, subject), if known.
    async fn user_by_identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>>;
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

    /// Adds a security notice for a person.
    async fn add_notice(&self, user_id: &str, notice: &Notice) -> StoreResult<()>;
    /// A person's notices, newest first.
    async fn notices(&self, user_id: &str) -> StoreResult<Vec<Notice>>;
}

const USER_COLUMNS: &str = "id, email, name, kind, created_at, last_signin_at, disabled_at";

pub(super) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(super) fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

fn groups_text(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".into())
}

pub(super) fn groups_of(text: &str) -> Vec<String> {
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

    async fn user_by_identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2")
            .bind(issuer.to_owned())
            .bind(subject.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("user_id")).transpose()?)
    }

    async fn groups_confirmed_at(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query("SELECT MAX(updated_at) AS at FROM identities WHERE user_id = $1")
            .bind(user_id.to_owned())
            .fetch_one(&self.pool)
            .await?;
        Ok(opt_ts(row.try_get("at")?))
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
