//! Stored grants: who holds which role (or is denied which permission) where.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::StoreResult;
use super::sql::{Backend, SqlStore, portable_impl};
use crate::domain::Timestamp;
use crate::domain::{
    AccessRequest, CustomRole, Effect, GrantRecord, GrantStatus, Permission, RequestStatus,
    SubjectKind,
};

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
    /// Records a review of a grant (kept as evidence); false if there is no such grant.
    async fn review_grant(
        &self,
        id: &str,
        by: &str,
        note: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Locks (Some) or unlocks (None) a grant; false if there is no such grant.
    async fn lock_grant(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool>;
    /// Locks (Some) or unlocks (None) a service account; false if there is none.
    async fn lock_service_account(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool>;
    /// When a service account was locked, if it is.
    async fn service_account_locked(&self, id: &str) -> StoreResult<Option<Timestamp>>;
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
     created_at, expires_at, status, decided_by, decided_at, review_every_days, reviewed_at, locked_at";

portable_impl!(GrantStore {
    async fn create_grant(&self, g: &GrantRecord) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO grants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
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
        .bind(g.review_every_days)
        .bind(g.reviewed_at.map(|t| t.millis()))
        .bind(g.locked_at.map(|t| t.millis()))
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
        let fetch = async {
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
        };
        self.cache
            .through(&self.cache.grants, (kind, subjects.to_vec()), fetch)
            .await
    }

    async fn review_grant(
        &self,
        id: &str,
        by: &str,
        note: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE grants SET reviewed_at = $1, reviewed_by = $2 WHERE id = $3")
            .bind(at.millis())
            .bind(by.to_owned())
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO grant_reviews (grant_id, reviewed_by, reviewed_at, note) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_owned())
        .bind(by.to_owned())
        .bind(at.millis())
        .bind(note.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn lock_grant(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query("UPDATE grants SET locked_at = $1 WHERE id = $2")
            .bind(at.map(|t| t.millis()))
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn lock_service_account(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query("UPDATE service_accounts SET locked_at = $1 WHERE id = $2")
            .bind(at.map(|t| t.millis()))
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn service_account_locked(&self, id: &str) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query("SELECT locked_at FROM service_accounts WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r
                .try_get::<Option<i64>, _>("locked_at")?
                .map(Timestamp::from_millis),
            None => None,
        })
    }

    async fn decide_grant(
        &self,
        id: &str,
        from: GrantStatus,
        to: GrantStatus,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
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
});

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
        review_every_days: r.try_get("review_every_days")?,
        reviewed_at: r
            .try_get::<Option<i64>, _>("reviewed_at")?
            .map(Timestamp::from_millis),
        locked_at: r
            .try_get::<Option<i64>, _>("locked_at")?
            .map(Timestamp::from_millis),
    })
}

/// Whether a property belongs to events or to profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
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
    /// Marks a property sensitive, withdrawing any request to remove the mark; false if it
    /// already was, with no such request.
    async fn classify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether a property is marked, and who asked to remove the mark: `None` if unmarked.
    async fn classification(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
    ) -> StoreResult<Option<Option<String>>>;
    /// Records `by`'s request to remove a mark nobody asked to remove yet; false otherwise.
    async fn request_declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Removes a mark someone other than `by` asked to remove; false otherwise.
    async fn confirm_declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
    ) -> StoreResult<bool>;
    /// Removes the mark at once (the server operator's command); false if there was none.
    async fn declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
    ) -> StoreResult<bool>;
}

portable_impl!(ClassificationStore {
    async fn sensitive_properties(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
    ) -> StoreResult<Vec<String>> {
        let fetch = async {
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
        };
        self.cache
            .through(
                &self.cache.sensitive,
                (project.as_str().to_owned(), kind),
                fetch,
            )
            .await
    }

    async fn classify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query(
            "INSERT INTO sensitive_properties (project_id, kind, name, classified_by, classified_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, kind, name) DO UPDATE \
             SET unmark_requested_by = NULL, unmark_requested_at = NULL \
             WHERE sensitive_properties.unmark_requested_by IS NOT NULL",
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

    async fn classification(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
    ) -> StoreResult<Option<Option<String>>> {
        let row = sqlx::query(
            "SELECT unmark_requested_by FROM sensitive_properties \
             WHERE project_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(project.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(name.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get("unmark_requested_by")?))
            .transpose()
    }

    async fn request_declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query(
            "UPDATE sensitive_properties SET unmark_requested_by = $1, unmark_requested_at = $2 \
             WHERE project_id = $3 AND kind = $4 AND name = $5 AND unmark_requested_by IS NULL",
        )
        .bind(by.to_owned())
        .bind(at.millis())
        .bind(project.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(name.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn confirm_declassify(
        &self,
        project: &crate::domain::ProjectId,
        kind: PropertyKind,
        name: &str,
        by: &str,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query(
            "DELETE FROM sensitive_properties WHERE project_id = $1 AND kind = $2 AND name = $3 \
             AND unmark_requested_by IS NOT NULL AND unmark_requested_by <> $4",
        )
        .bind(project.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(name.to_owned())
        .bind(by.to_owned())
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
        let _stale = self.cache.invalidate_on_return();
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
});

/// Just-in-time access requests and their approvals.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Stores a new request.
    async fn create_request(&self, r: &AccessRequest) -> StoreResult<()>;
    /// A request and the ids of those who approved it so far.
    async fn request(&self, id: &str) -> StoreResult<Option<(AccessRequest, Vec<String>)>>;
    /// Requests by one person (newest first), or every pending one when `requester` is None.
    async fn requests(&self, requester: Option<&str>) -> StoreResult<Vec<AccessRequest>>;
    /// Records one approval; `Conflict` if this approver already approved.
    async fn approve_request(&self, id: &str, approver: &str, at: Timestamp) -> StoreResult<()>;
    /// Closes a pending request as granted (with its grant) or rejected; false if not pending.
    async fn close_request(
        &self,
        id: &str,
        status: RequestStatus,
        grant: Option<&GrantRecord>,
        at: Timestamp,
    ) -> StoreResult<bool>;
}

const REQUEST_COLUMNS: &str = "id, requester, project, role, reason, duration_ms, approvals_needed, created_at, \
     lapses_at, status, grant_id, decided_at";

portable_impl!(RequestStore {
    async fn create_request(&self, r: &AccessRequest) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO access_requests ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(r.id.clone())
        .bind(r.requester.clone())
        .bind(r.project.clone())
        .bind(r.role.clone())
        .bind(r.reason.clone())
        .bind(r.duration_ms)
        .bind(i64::from(r.approvals_needed))
        .bind(r.created_at.millis())
        .bind(r.lapses_at.millis())
        .bind(r.status.as_str().to_owned())
        .bind(r.grant_id.clone())
        .bind(r.decided_at.map(|t| t.millis()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn request(&self, id: &str) -> StoreResult<Option<(AccessRequest, Vec<String>)>> {
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let approvals = sqlx::query(
            "SELECT approver FROM access_request_approvals WHERE request_id = $1 ORDER BY at, approver",
        )
        .bind(id.to_owned())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("approver")?))
        .collect::<StoreResult<Vec<String>>>()?;
        Ok(Some((request_row::<DB>(&row)?, approvals)))
    }

    async fn requests(&self, requester: Option<&str>) -> StoreResult<Vec<AccessRequest>> {
        let rows = match requester {
            Some(who) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE requester = $1 ORDER BY created_at DESC, id"
                )))
                .bind(who.to_owned())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE status = 'pending' ORDER BY created_at DESC, id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(request_row::<DB>).collect()
    }

    async fn approve_request(&self, id: &str, approver: &str, at: Timestamp) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        sqlx::query(
            "INSERT INTO access_request_approvals (request_id, approver, at) VALUES ($1, $2, $3)",
        )
        .bind(id.to_owned())
        .bind(approver.to_owned())
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn close_request(
        &self,
        id: &str,
        status: RequestStatus,
        grant: Option<&GrantRecord>,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE access_requests SET status = $1, grant_id = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str().to_owned())
        .bind(grant.map(|g| g.id.clone()))
        .bind(at.millis())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) == 0 {
            return Ok(false);
        }
        if let Some(g) = grant {
            // The grant and the request's closing commit together, or neither does.
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO grants ({COLUMNS}) VALUES ($1, $2, $3, 'allow', $4, NULL, $5, $6, $7, $8, $9, 'active', $10, $11, NULL, NULL, NULL)"
            )))
            .bind(g.id.clone())
            .bind(g.subject_kind.as_str().to_owned())
            .bind(g.subject.clone())
            .bind(g.role.clone())
            .bind(g.project.clone())
            .bind(g.reason.clone())
            .bind(g.granted_by.clone())
            .bind(g.created_at.millis())
            .bind(g.expires_at.map(|t| t.millis()))
            .bind(g.decided_by.clone())
            .bind(g.decided_at.map(|t| t.millis()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
});

fn request_row<DB>(r: &DB::Row) -> StoreResult<AccessRequest>
where
    DB: sqlx::Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let status: String = r.try_get("status")?;
    let needed: i64 = r.try_get("approvals_needed")?;
    Ok(AccessRequest {
        id: r.try_get("id")?,
        requester: r.try_get("requester")?,
        project: r.try_get("project")?,
        role: r.try_get("role")?,
        reason: r.try_get("reason")?,
        duration_ms: r.try_get("duration_ms")?,
        approvals_needed: u32::try_from(needed).unwrap_or(1),
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        lapses_at: Timestamp::from_millis(r.try_get("lapses_at")?),
        status: RequestStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown request status {status:?}"))?,
        grant_id: r.try_get("grant_id")?,
        decided_at: r
            .try_get::<Option<i64>, _>("decided_at")?
            .map(Timestamp::from_millis),
    })
}

/// Roles administrators defined.
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// The live custom roles, by name.
    async fn custom_roles(&self) -> StoreResult<Vec<CustomRole>>;
    /// Defines a role; `Conflict` if the name was ever used.
    async fn create_role(&self, role: &CustomRole, by: &str, at: Timestamp) -> StoreResult<()>;
    /// Removes a role (softly); false if there was no live one.
    async fn delete_role(&self, name: &str, at: Timestamp) -> StoreResult<bool>;
}

portable_impl!(RoleStore {
    async fn custom_roles(&self) -> StoreResult<Vec<CustomRole>> {
        let fetch = async {
            let rows = sqlx::query(
            "SELECT name, permissions, description FROM custom_roles WHERE deleted_at IS NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
            rows.iter()
                .map(|r| {
                    let text: String = r.try_get("permissions")?;
                    let names: Vec<String> = serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("stored role permissions: {e}"))?;
                    Ok(CustomRole {
                        name: r.try_get("name")?,
                        permissions: names.iter().filter_map(|n| Permission::parse(n)).collect(),
                        description: r.try_get("description")?,
                    })
                })
                .collect()
        };
        self.cache.through(&self.cache.roles, (), fetch).await
    }

    async fn create_role(&self, role: &CustomRole, by: &str, at: Timestamp) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        let names: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
        sqlx::query(
            "INSERT INTO custom_roles (name, permissions, description, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(role.name.clone())
        .bind(serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()))
        .bind(role.description.clone())
        .bind(by.to_owned())
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_role(&self, name: &str, at: Timestamp) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query(
            "UPDATE custom_roles SET deleted_at = $1 WHERE name = $2 AND deleted_at IS NULL",
        )
        .bind(at.millis())
        .bind(name.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }
});
