//! Projects, their service accounts and tokens: the portable SQL.

use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type,
};

use super::sql::*;
use super::*;

pub(super) const PROJECT_COLUMNS: &str = "id, name, ingest_token, retention_days, created_at, deleted_at, \
     consent_required, consent_property, purged_at, allowed_origins, record_client_ip";
pub(super) const TOKEN_SELECT: &str = "SELECT t.id, t.created_at, t.revoked_at, t.last_used_at, s.id AS sa_id, s.project_id, s.name, s.locked_at \
     FROM api_tokens t JOIN service_accounts s ON s.id = t.service_account_id";

portable_impl!(ProjectStore {
    async fn create_project(&self, new: &NewProject) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        let p = &new.project;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO projects (id, name, ingest_token, retention_days, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(p.id.as_str().to_owned())
        .bind(p.name.clone())
        .bind(p.ingest_token.clone())
        .bind(p.retention_days)
        .bind(p.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("project {} already exists", p.id)),
            other => other,
        })?;
        let sa = &new.service_account;
        sqlx::query("INSERT INTO service_accounts (id, project_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(sa.id.clone())
            .bind(sa.project_id.as_str().to_owned())
            .bind(sa.name.clone())
            .bind(p.created_at.millis())
            .execute(&mut *tx)
            .await?;
        insert_token(&mut *tx, &new.token).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(project_from_row::<DB>).collect()
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        let fetch = async {
            let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(id.as_str().to_owned())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(project_from_row::<DB>).transpose()
        };
        self.cache
            .through_some(&self.cache.projects, id.as_str().to_owned(), fetch)
            .await
    }

    async fn project_by_ingest_token(&self, token: &str) -> StoreResult<Option<Project>> {
        let fetch = async {
            let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ingest_token = $1");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(token.to_owned())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(project_from_row::<DB>).transpose()
        };
        // Only tokens that name a project are kept (`through_some`): unknown ones, which any
        // caller can send, always go to the database and cannot fill the memo.
        self.cache
            .through_some(&self.cache.by_ingest_token, token.to_owned(), fetch)
            .await
    }

    async fn service_accounts(&self, project: &ProjectId) -> StoreResult<Vec<ServiceAccount>> {
        let rows = sqlx::query(
            "SELECT id, project_id, name FROM service_accounts WHERE project_id = $1 ORDER BY name",
        )
        .bind(project.as_str().to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ServiceAccount {
                    id: r.try_get("id")?,
                    project_id: project_id(r.try_get("project_id")?)?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    async fn all_service_accounts(&self) -> StoreResult<Vec<(ServiceAccount, Option<Timestamp>)>> {
        let rows = sqlx::query(
            "SELECT id, project_id, name, locked_at FROM service_accounts ORDER BY project_id, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let account = ServiceAccount {
                    id: r.try_get("id")?,
                    project_id: project_id(r.try_get("project_id")?)?,
                    name: r.try_get("name")?,
                };
                Ok((account, opt_time(r.try_get("locked_at")?)))
            })
            .collect()
    }

    async fn create_token(&self, token: &NewToken) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        let mut conn = self.pool.acquire().await?;
        insert_token(&mut *conn, token).await
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn touch_token(&self, id: &str, at: Timestamp) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at.millis())
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        let fetch = async {
            let sql = format!("{TOKEN_SELECT} WHERE t.secret_hash = $1");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(hash.to_vec())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(token_from_row::<DB>).transpose()
        };
        self.cache
            .through_some(&self.cache.tokens, hash.to_vec(), fetch)
            .await
    }

    async fn tokens(&self, project: &ProjectId) -> StoreResult<Vec<TokenRecord>> {
        let sql = format!("{TOKEN_SELECT} WHERE s.project_id = $1 ORDER BY t.created_at, t.id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(project.as_str().to_owned())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row::<DB>).collect()
    }
});

pub(super) async fn insert_token<'c, DB, E>(conn: E, t: &NewToken) -> StoreResult<()>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    sqlx::query("INSERT INTO api_tokens (id, service_account_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(t.id.clone())
        .bind(t.service_account_id.clone())
        .bind(t.secret_hash.clone())
        .bind(t.created_at.millis())
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) fn project_from_row<DB>(r: &DB::Row) -> StoreResult<Project>
where
    DB: Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    Ok(Project {
        id: project_id(r.try_get("id")?)?,
        name: r.try_get("name")?,
        ingest_token: r.try_get("ingest_token")?,
        retention_days: r.try_get("retention_days")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        deleted_at: opt_time(r.try_get("deleted_at")?),
        consent_required: r.try_get::<i64, _>("consent_required")? != 0,
        consent_property: r.try_get("consent_property")?,
        purged_at: opt_time(r.try_get("purged_at")?),
        allowed_origins: AllowedOrigins::from_stored(&r.try_get::<String, _>("allowed_origins")?),
        record_client_ip: r.try_get::<i64, _>("record_client_ip")? != 0,
    })
}

pub(super) fn token_from_row<DB>(r: &DB::Row) -> StoreResult<TokenRecord>
where
    DB: Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    Ok(TokenRecord {
        id: r.try_get("id")?,
        service_account: ServiceAccount {
            id: r.try_get("sa_id")?,
            project_id: project_id(r.try_get("project_id")?)?,
            name: r.try_get("name")?,
        },
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        revoked_at: opt_time(r.try_get("revoked_at")?),
        locked_at: opt_time(r.try_get("locked_at")?),
        last_used_at: opt_time(r.try_get("last_used_at")?),
    })
}
