//! Stored grants: who holds which role (or is denied which permission) where.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::StoreResult;
use super::sql::{Backend, SqlStore};
use crate::access::{Effect, GrantRecord, GrantStatus, Permission, SubjectKind};
use crate::domain::Timestamp;

/// Grants, kept forever as evidence.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant.
    async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()>;
    /// One grant by id.
    async fn grant(&self, id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Every grant (on one project and `*`, if given), newest first.
    async fn grants(&self, project: Option<&str>) -> StoreResult<Vec<GrantRecord>>;
    /// The active grants of these subjects of one kind.
    async fn active_grants(
        &self,
        kind: SubjectKind,
        subjects: &[String],
    ) -> StoreResult<Vec<GrantRecord>>;
    /// Moves a grant from one status to another; false if it was not in `from`.
    async fn decide_grant(
        &self,
        id: &str,
        from: GrantStatus,
        to: GrantStatus,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
}

const COLUMNS: &str = "id, subject_kind, subject, effect, role, permission, project, reason, granted_by, \
     created_at, expires_at, status, decided_by, decided_at";

#[async_trait]
impl<DB> GrantStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    async fn create_grant(&self, g: &GrantRecord) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO grants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        )))
        .bind(g.id.clone())
        .bind(g.subject_kind.as_str().to_owned())
        .bind(g.subject.clone())
        .bind(match g.effect {
            Effect::Allow => "allow".to_owned(),
            Effect::Deny => "deny".to_owned(),
        })
        .bind(g.role.clone())
        .bind(g.permission.map(|p| p.as_str().to_owned()))
        .bind(g.project.clone())
        .bind(g.reason.clone())
        .bind(g.granted_by.clone())
        .bind(g.created_at.millis())
        .bind(g.expires_at.map(|t| t.millis()))
        .bind(g.status.as_str().to_owned())
        .bind(g.decided_by.clone())
        .bind(g.decided_at.map(|t| t.millis()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_row::<DB>).transpose()
    }

    async fn grants(&self, project: Option<&str>) -> StoreResult<Vec<GrantRecord>> {
        let rows = match project {
            Some(p) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM grants WHERE project = $1 OR project = '*' ORDER BY created_at DESC, id"
                )))
                .bind(p.to_owned())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM grants ORDER BY created_at DESC, id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(grant_row::<DB>).collect()
    }

    async fn active_grants(
        &self,
        kind: SubjectKind,
        subjects: &[String],
    ) -> StoreResult<Vec<GrantRecord>> {
        if subjects.is_empty() {
            return Ok(vec![]);
        }
        let mut qb = sqlx::QueryBuilder::<DB>::new(format!(
            "SELECT {COLUMNS} FROM grants WHERE status = 'active' AND subject_kind = "
        ));
        qb.push_bind(kind.as_str().to_owned());
        qb.push(" AND subject IN (");
        let mut list = qb.separated(", ");
        for s in subjects {
            list.push_bind(s.clone());
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(grant_row::<DB>).collect()
    }

    async fn decide_grant(
        &self,
        id: &str,
        from: GrantStatus,
        to: GrantStatus,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE grants SET status = $1, decided_by = $2, decided_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(to.as_str().to_owned())
        .bind(by.to_owned())
        .bind(at.millis())
        .bind(id.to_owned())
        .bind(from.as_str().to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }
}

fn grant_row<DB>(r: &DB::Row) -> StoreResult<GrantRecord>
where
    DB: sqlx::Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let bad = |what: &str, v: &str| anyhow::anyhow!("stored grant has unknown {what} {v:?}");
    let kind: String = r.try_get("subject_kind")?;
    let effect: String = r.try_get("effect")?;
    let status: String = r.try_get("status")?;
    let permission: Option<String> = r.try_get("permission")?;
    Ok(GrantRecord {
        id: r.try_get("id")?,
        subject_kind: SubjectKind::parse(&kind).ok_or_else(|| bad("subject kind", &kind))?,
        subject: r.try_get("subject")?,
        effect: match effect.as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            other => return Err(bad("effect", other).into()),
        },
        role: r.try_get("role")?,
        permission: match permission {
            Some(p) => Some(Permission::parse(&p).ok_or_else(|| bad("permission", &p))?),
            None => None,
        },
        project: r.try_get("project")?,
        reason: r.try_get("reason")?,
        granted_by: r.try_get("granted_by")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        expires_at: r
            .try_get::<Option<i64>, _>("expires_at")?
            .map(Timestamp::from_millis),
        status: GrantStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r
            .try_get::<Option<i64>, _>("decided_at")?
            .map(Timestamp::from_millis),
    })
}

/// Whether a property belongs to events or to profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyKind {
    /// An event property.
    Event,
    /// A profile property.
    Profile,
}

impl PropertyKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Profile => "profile",
        }
    }

    /// The kind with this name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "event" => Some(Self::Event),
            "profile" => Some(Self::Profile),
            _ => None,
        }
    }
}

/// Which properties are sensitive, per project.
#[async_trait]
pub trait ClassificationStore: Send + Sync {
    /// The names of a project's sensitive properties of one kind, sorted.
    async fn sensitive_properties(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
    ) -> StoreResult<Vec<String>>;
    /// Marks a property sensitive; false if it already was.
    async fn classify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Removes the mark; false if there was none.
    async fn declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
    ) -> StoreResult<bool>;
}

#[async_trait]
impl<DB> ClassificationStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    async fn sensitive_properties(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
    ) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT name FROM sensitive_properties WHERE project_id = $1 AND kind = $2 ORDER BY name",
        )
        .bind(project.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("name")?))
            .collect::<StoreResult<_>>()
    }

    async fn classify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO sensitive_properties (project_id, kind, name, classified_by, classified_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, kind, name) DO NOTHING",
        )
        .bind(project.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(name.to_owned())
        .bind(by.to_owned())
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "DELETE FROM sensitive_properties WHERE project_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(project.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(name.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }
}
