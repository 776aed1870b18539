//! The portable queries, written once for every sqlx backend. Both dialects accept `$n`
//! placeholders, `ON CONFLICT` and integer division, so only connecting and locking differ.

use anyhow::Context;
use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool,
    QueryBuilder, Row, Type,
};

use super::cache::ReadCache;
use super::*;
use crate::ledger::chain::seal;
use crate::ledger::merkle::{CompactRange, Node};
use std::collections::{BTreeMap, HashMap};

/// What a backend adds to the portable queries.
pub trait Backend: Database {
    /// "sqlite" or "postgres".
    const NAME: &'static str;
    /// Rows changed by a statement (sqlx has no common trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// The embedded migrations for this backend.
    fn migrator() -> &'static sqlx::migrate::Migrator;
    /// Starts a transaction that will write: SQLite must take its write lock up front, or a
    /// read-then-write transaction fails with "database is locked" instead of waiting.
    const BEGIN_WRITE: &'static str;
    /// Checkpoints and truncates a write-ahead log: run periodically so it stays small, and
    /// after an erasure so that no copy of the erased rows stays on disk (SQLite's WAL keeps
    /// old pages after a checkpoint unless it is truncated).
    const TRUNCATE_WAL: Option<&'static str>;
}

/// A store over three sqlx pools to one database, so that no kind of work can take every
/// connection another needs.
pub struct SqlStore<DB: Database> {
    /// Everything not named below: sign-in, grants, ingestion, administration.
    pub(super) pool: Pool<DB>,
    /// Event, count and profile reads, proofs and exports' pages, whose cost grows with the
    /// data: each statement runs under `database.read_timeout_ms`, and (on SQLite) with the
    /// default small page cache, so reading the whole log does not fill memory.
    reads: Pool<DB>,
    /// The audit appender's alone: a request's entry never waits behind a slow read.
    audit: Pool<DB>,
    /// The database file, for a backend that is one (SQLite).
    file: Option<FileIdentity>,
    /// Each project's next `project_seq`, as of the log's size when it was known: good only
    /// while that is still the size (nobody else appended), so no `MAX()` per commit.
    project_seqs: std::sync::Mutex<(u64, HashMap<String, u64>)>,
    /// What nearly every request reads again, kept for `database.cache_ttl_ms`.
    pub(super) cache: ReadCache,
}

/// The pools a store is made of (see [`SqlStore`]).
pub struct Pools<DB: Database> {
    /// Everything else.
    pub general: Pool<DB>,
    /// Timed reads.
    pub reads: Pool<DB>,
    /// The appender.
    pub audit: Pool<DB>,
}

/// Which file the store opened: a file deleted or replaced under a running service would
/// otherwise go on taking writes that vanish at the next start.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The identity of the file at `path` now.
    pub fn of(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Fails if the file is gone or is another file now.
    pub fn check(&self) -> StoreResult<()> {
        match Self::of(&self.path) {
            Ok(now) if now.dev == self.dev && now.ino == self.ino => Ok(()),
            Ok(_) => Err(StoreError::Unavailable(format!(
                "the database file {} was replaced while the service ran; restart it once the right file is back",
                self.path.display()
            ))),
            Err(e) => Err(StoreError::Unavailable(format!(
                "the database file {} is gone ({e}); restore it and restart the service",
                self.path.display()
            ))),
        }
    }
}

impl<DB: Database> SqlStore<DB> {
    /// Wraps connected pools, over the database file `file` for a backend that is one.
    pub fn new(pools: Pools<DB>, file: Option<FileIdentity>, cache: ReadCache) -> Self {
        Self {
            pool: pools.general,
            reads: pools.reads,
            audit: pools.audit,
            file,
            project_seqs: std::sync::Mutex::new((u64::MAX, HashMap::new())),
            cache,
        }
    }

    /// Runs the backend's [`Backend::TRUNCATE_WAL`], if it has one; false if readers or
    /// writers kept it from completing. With `patience_ms` it waits at most that long for them
    /// (on a connection closed afterwards), instead of as long as any writer would.
    pub(super) async fn checkpoint_wal(&self, patience_ms: Option<u64>) -> StoreResult<bool>
    where
        DB: Backend,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
        for<'q> i64: Decode<'q, DB> + Type<DB>,
        for<'s> &'s str: ColumnIndex<DB::Row>,
    {
        let Some(sql) = DB::TRUNCATE_WAL else {
            return Ok(true);
        };
        let mut conn = self.pool.acquire().await?;
        if let Some(ms) = patience_ms {
            conn.close_on_drop();
            sqlx::query(AssertSqlSafe(format!("PRAGMA busy_timeout = {ms}")))
                .execute(&mut *conn)
                .await?;
        }
        let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.try_get::<i64, _>("busy")? == 0)
    }

    /// Runs a count query (rows of day, event, count) and adds its rows to `totals`.
    async fn add_counts(
        &self,
        mut query: QueryBuilder<DB>,
        group: CountGroup,
        totals: &mut BTreeMap<String, i64>,
    ) -> StoreResult<()>
    where
        DB: Backend,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
        for<'q> i64: Decode<'q, DB> + Type<DB>,
        for<'q> String: Decode<'q, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        for r in query.build().fetch_all(&self.reads).await? {
            add_count(group, &r, totals)?;
        }
        Ok(())
    }

    fn check_file(&self) -> StoreResult<()> {
        self.file.as_ref().map_or(Ok(()), FileIdentity::check)
    }

    /// The underlying pool, for benchmarks that compare against raw sqlx.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

/// Rows per multi-row INSERT: 7 parameters a row stays under SQLite's 32766-variable limit.
const INSERT_CHUNK: usize = 1000;

const PROJECT_COLUMNS: &str = "id, name, ingest_token, retention_days, created_at, deleted_at, \
     consent_required, consent_property, purged_at";
const TOKEN_SELECT: &str = "SELECT t.id, t.created_at, t.revoked_at, t.last_used_at, s.id AS sa_id, s.project_id, s.name, s.locked_at \
     FROM api_tokens t JOIN service_accounts s ON s.id = t.service_account_id";

fn json_object(text: &str) -> StoreResult<Map<String, Value>> {
    match serde_json::from_str(text).context("stored JSON is not an object")? {
        Value::Object(map) => Ok(map),
        _ => Err(anyhow::anyhow!("stored JSON is not an object").into()),
    }
}

fn project_id(text: String) -> StoreResult<ProjectId> {
    ProjectId::parse(&text).map_err(|e| StoreError::Other(e.into()))
}

fn opt_time(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

const DAY_MS: i64 = 86_400_000;

/// Counts of the events matching `filter`, read from the events.
fn scan_query<DB: Database>(filter: &EventFilter, group: CountGroup) -> QueryBuilder<DB>
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let (day, event, group_by) = count_keys(group, "time_ms / 86400000");
    let mut qb = QueryBuilder::new(format!(
        "SELECT {day} AS d, {event} AS e, COUNT(*) AS n FROM events"
    ));
    push_filter(&mut qb, filter);
    qb.push(group_by);
    qb
}

/// Counts of whole days `[first_day, end_day)`, read from the per-day counts.
fn rollup_query<DB: Database>(
    filter: &EventFilter,
    group: CountGroup,
    first_day: Option<i64>,
    end_day: Option<i64>,
) -> QueryBuilder<DB>
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let (day, event, group_by) = count_keys(group, "day");
    let mut qb = QueryBuilder::new(format!(
        "SELECT {day} AS d, {event} AS e, CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n \
         FROM event_counts WHERE project_id = "
    ));
    qb.push_bind(filter.project.as_str().to_owned());
    if let Some(e) = &filter.event {
        qb.push(" AND event = ").push_bind(e.clone());
    }
    if let Some(d) = first_day {
        qb.push(" AND day >= ").push_bind(d);
    }
    if let Some(d) = end_day {
        qb.push(" AND day < ").push_bind(d);
    }
    qb.push(group_by);
    qb
}

/// The day and event columns a count selects (constants where it does not group by them),
/// and its GROUP BY clause.
fn count_keys(group: CountGroup, day: &'static str) -> (&'static str, &'static str, String) {
    let (d, e) = match group {
        CountGroup::Total => ("CAST(0 AS BIGINT)", "''"),
        CountGroup::Event => ("CAST(0 AS BIGINT)", "event"),
        CountGroup::Day => (day, "''"),
        CountGroup::EventDay => (day, "event"),
    };
    // PostgreSQL refuses constants in GROUP BY: group by the real columns only.
    let by: Vec<&str> = [d, e]
        .into_iter()
        .filter(|c| *c == day || *c == "event")
        .collect();
    let clause = if by.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", by.join(", "))
    };
    (d, e, clause)
}

/// Adds one (d, e, n) row of a count to `totals` under its key.
fn add_count<R: Row>(
    group: CountGroup,
    row: &R,
    totals: &mut BTreeMap<String, i64>,
) -> StoreResult<()>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    let day: i64 = row.try_get(0)?;
    let event: String = row.try_get(1)?;
    let n: i64 = row.try_get(2)?;
    let key = match group {
        CountGroup::Total => "total".to_owned(),
        CountGroup::Event => event,
        CountGroup::Day => day_key(day),
        CountGroup::EventDay => format!("{}/{event}", day_key(day)),
    };
    *totals.entry(key).or_default() += n;
    Ok(())
}

/// Moves the per-day counts by `deltas` ((day, event) -> change), in key order so that
/// concurrent writers lock rows in the same order; rows that reach zero are removed.
pub(super) async fn adjust_counts<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    deltas: BTreeMap<(i64, String), i64>,
) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let changes: Vec<_> = deltas.into_iter().filter(|(_, n)| *n != 0).collect();
    for chunk in changes.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO event_counts (project_id, day, event, n) ");
        qb.push_values(chunk, |mut row, ((day, event), n)| {
            row.push_bind(project.as_str().to_owned())
                .push_bind(*day)
                .push_bind(event.clone())
                .push_bind(*n);
        });
        qb.push(
            " ON CONFLICT (project_id, day, event) DO UPDATE SET n = event_counts.n + excluded.n",
        );
        qb.build().execute(&mut *conn).await?;
    }
    if changes.iter().any(|(_, n)| *n < 0) {
        sqlx::query("DELETE FROM event_counts WHERE project_id = $1 AND n <= 0")
            .bind(project.as_str().to_owned())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The per-day count changes of events (event, time_ms) returned by an INSERT or DELETE.
pub(super) fn count_deltas<R: Row>(
    rows: &[R],
    sign: i64,
) -> StoreResult<BTreeMap<(i64, String), i64>>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    for<'s> &'s str: ColumnIndex<R>,
{
    let mut deltas = BTreeMap::new();
    for r in rows {
        let event: String = r.try_get("event")?;
        let time: i64 = r.try_get("time_ms")?;
        *deltas.entry((time.div_euclid(DAY_MS), event)).or_default() += sign;
    }
    Ok(deltas)
}

fn day_key(day: i64) -> String {
    Timestamp::from_millis(day * 86_400_000).to_rfc3339()[..10].to_owned()
}

/// Appends the WHERE clause shared by event reads and counts.
fn push_filter<DB: Database>(qb: &mut QueryBuilder<DB>, f: &EventFilter)
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    qb.push(" WHERE project_id = ")
        .push_bind(f.project.as_str().to_owned());
    if let Some(d) = &f.distinct_id {
        qb.push(" AND distinct_id = ")
            .push_bind(d.as_str().to_owned());
    }
    if let Some(e) = &f.event {
        qb.push(" AND event = ").push_bind(e.clone());
    }
    if let Some(t) = f.from {
        qb.push(" AND time_ms >= ").push_bind(t.millis());
    }
    if let Some(t) = f.to {
        qb.push(" AND time_ms < ").push_bind(t.millis());
    }
}

#[async_trait]
impl<DB> ProjectStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    async fn create_project(&self, new: &NewProject) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        let p = &new.project;
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
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
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ingest_token = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(token.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from_row::<DB>).transpose()
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
}

async fn insert_token<'c, DB, E>(conn: E, t: &NewToken) -> StoreResult<()>
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

fn project_from_row<DB>(r: &DB::Row) -> StoreResult<Project>
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
    })
}

fn token_from_row<DB>(r: &DB::Row) -> StoreResult<TokenRecord>
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

fn event_from_row<DB>(r: &DB::Row) -> StoreResult<StoredEvent>
where
    DB: Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let properties: String = r.try_get("properties")?;
    Ok(StoredEvent {
        id: r.try_get("id")?,
        event: r.try_get("event")?,
        distinct_id: r.try_get("distinct_id")?,
        time: Timestamp::from_millis(r.try_get("time_ms")?),
        insert_id: r.try_get("insert_id")?,
        properties: json_object(&properties)?,
    })
}

#[async_trait]
impl<DB> EventStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn count_events_before(
        &self,
        project: &ProjectId,
        cutoff: Timestamp,
    ) -> StoreResult<u64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM events WHERE project_id = $1 AND time_ms < $2")
                .bind(project.as_str().to_owned())
                .bind(cutoff.millis())
                .fetch_one(&self.pool)
                .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n.max(0) as u64)
    }

    async fn delete_events_before(
        &self,
        project: &ProjectId,
        cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let gone = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE project_id = $1 AND time_ms < $2 \
             ORDER BY time_ms, id LIMIT $3) RETURNING event, time_ms",
        )
        .bind(project.as_str().to_owned())
        .bind(cutoff.millis())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        adjust_counts(&mut *tx, project, count_deltas(&gone, -1)?).await?;
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    async fn insert_events(
        &self,
        project: &ProjectId,
        events: &[NewEvent],
        received_at: Timestamp,
    ) -> StoreResult<InsertOutcome> {
        let mut inserted = 0;
        let mut deltas = BTreeMap::new();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO events (project_id, event, distinct_id, time_ms, insert_id, properties, received_at) ",
            );
            qb.push_values(chunk, |mut row, e| {
                row.push_bind(project.as_str().to_owned())
                    .push_bind(e.event.clone())
                    .push_bind(e.distinct_id.as_str().to_owned())
                    .push_bind(e.time.millis())
                    .push_bind(e.insert_id.clone())
                    .push_bind(serde_json::to_string(&e.properties).expect("a JSON map serializes"))
                    .push_bind(received_at.millis());
            });
            // Only the rows actually inserted come back: duplicates are not counted.
            qb.push(" ON CONFLICT (project_id, insert_id) DO NOTHING RETURNING event, time_ms");
            let done = qb.build().fetch_all(&mut *tx).await?;
            inserted += done.len() as u64;
            for (key, n) in count_deltas(&done, 1)? {
                *deltas.entry(key).or_default() += n;
            }
        }
        adjust_counts(&mut *tx, project, deltas).await?;
        tx.commit().await?;
        Ok(InsertOutcome {
            inserted,
            duplicates: events.len() as u64 - inserted,
        })
    }

    async fn query_events(
        &self,
        filter: &EventFilter,
        after: Option<EventCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let mut qb: QueryBuilder<DB> = QueryBuilder::new(
            "SELECT id, event, distinct_id, time_ms, insert_id, properties FROM events",
        );
        push_filter(&mut qb, filter);
        if let Some(c) = after {
            qb.push(" AND (time_ms > ")
                .push_bind(c.time.millis())
                .push(" OR (time_ms = ")
                .push_bind(c.time.millis())
                .push(" AND id > ")
                .push_bind(c.id)
                .push("))");
        }
        qb.push(" ORDER BY time_ms, id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.reads).await?;
        rows.iter().map(event_from_row::<DB>).collect()
    }

    async fn count_events(
        &self,
        filter: &EventFilter,
        group: CountGroup,
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut totals = BTreeMap::new();
        // Whole UTC days inside [from, to) come from the per-day counts; the ragged ends, and
        // one person's events (indexed by person), are counted from the events themselves.
        let first_day = filter.from.map(|t| -(-t.millis()).div_euclid(DAY_MS));
        let end_day = filter.to.map(|t| t.millis() / DAY_MS);
        let whole_days =
            filter.distinct_id.is_none() && first_day.zip(end_day).is_none_or(|(a, b)| a < b);
        if !whole_days {
            self.add_counts(scan_query(filter, group), group, &mut totals)
                .await?;
        } else {
            let whole = rollup_query(filter, group, first_day, end_day);
            self.add_counts(whole, group, &mut totals).await?;
            if let (Some(from), Some(day)) = (filter.from, first_day)
                && from.millis() < day * DAY_MS
            {
                let mut head = filter.clone();
                head.to = Some(Timestamp::from_millis(day * DAY_MS));
                self.add_counts(scan_query(&head, group), group, &mut totals)
                    .await?;
            }
            if let (Some(to), Some(day)) = (filter.to, end_day)
                && to.millis() > day * DAY_MS
            {
                let mut tail = filter.clone();
                tail.from = Some(Timestamp::from_millis(day * DAY_MS));
                self.add_counts(scan_query(&tail, group), group, &mut totals)
                    .await?;
            }
        }
        Ok(totals.into_iter().collect())
    }

    async fn profile(
        &self,
        project: &ProjectId,
        distinct_id: &DistinctId,
    ) -> StoreResult<Option<Profile>> {
        let row = sqlx::query(
            "SELECT distinct_id, properties, updated_at FROM profiles WHERE project_id = $1 AND distinct_id = $2",
        )
        .bind(project.as_str().to_owned())
        .bind(distinct_id.as_str().to_owned())
        .fetch_optional(&self.reads)
        .await?;
        row.map(|r| {
            let properties: String = r.try_get("properties")?;
            Ok(Profile {
                distinct_id: r.try_get("distinct_id")?,
                properties: json_object(&properties)?,
                updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
            })
        })
        .transpose()
    }

    async fn apply_profile_updates(
        &self,
        project: &ProjectId,
        updates: &[ProfileUpdate],
        at: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for update in updates {
            let pid = project.as_str().to_owned();
            let did = update.distinct_id.as_str().to_owned();
            let current: Option<String> = sqlx::query(
                "SELECT properties FROM profiles WHERE project_id = $1 AND distinct_id = $2",
            )
            .bind(pid.clone())
            .bind(did.clone())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            let current = current.as_deref().map(json_object).transpose()?;
            match update.apply(current) {
                Some(props) => {
                    sqlx::query(
                        "INSERT INTO profiles (project_id, distinct_id, properties, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (project_id, distinct_id) DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at",
                    )
                    .bind(pid)
                    .bind(did)
                    .bind(Value::Object(props).to_string())
                    .bind(at.millis())
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM profiles WHERE project_id = $1 AND distinct_id = $2")
                        .bind(pid)
                        .bind(did)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(updates.len() as u64)
    }
}

/// Stores perfect-subtree hashes; one already stored with the same hash is skipped.
async fn insert_nodes<DB>(conn: &mut DB::Connection, nodes: &[Node]) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    for chunk in nodes.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO audit_nodes (level, idx, hash) ");
        qb.push_values(chunk, |mut row, n| {
            row.push_bind(i64::from(n.level))
                .push_bind(n.index as i64)
                .push_bind(n.hash.to_vec());
        });
        qb.push(" ON CONFLICT (level, idx) DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores new salts; one already stored with another value (made by another process at the
/// same moment) fails the transaction, since entries were sealed with the salt given.
async fn store_subject_keys<DB>(
    conn: &mut DB::Connection,
    keys: &[NewSubjectKey],
    now: Timestamp,
) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut stored = 0;
    for chunk in keys.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO subject_keys (project_id, lookup, salt, created_at) ");
        qb.push_values(chunk, |mut row, k| {
            row.push_bind(k.project.clone())
                .push_bind(k.lookup.to_vec())
                .push_bind(k.salt.to_vec())
                .push_bind(now.millis());
        });
        qb.push(" ON CONFLICT (project_id, lookup) DO NOTHING");
        stored += DB::rows_affected(&qb.build().execute(&mut *conn).await?);
    }
    if stored < keys.len() as u64 {
        for k in keys {
            let salt: Vec<u8> =
                sqlx::query("SELECT salt FROM subject_keys WHERE project_id = $1 AND lookup = $2")
                    .bind(k.project.clone())
                    .bind(k.lookup.to_vec())
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
            if salt != k.salt {
                return Err(StoreError::Conflict(
                    "a person's salt was made by another process at the same time".into(),
                ));
            }
        }
    }
    Ok(())
}

fn hash_of(bytes: Vec<u8>) -> StoreResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a stored hash is not 32 bytes").into())
}

#[async_trait]
impl<DB> AuditStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn append_audit(
        &self,
        drafts: Vec<Draft>,
        salts: Vec<[u8; 16]>,
        now: Timestamp,
        checkpoint: Option<&(u64, String)>,
        subject_keys: &[NewSubjectKey],
    ) -> StoreResult<Appended> {
        let mut tx = self.audit.begin_with(DB::BEGIN_WRITE).await?;
        store_subject_keys(&mut *tx, subject_keys, now).await?;
        if let Some((size, note)) = checkpoint {
            sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING")
                .bind(*size as i64)
                .bind(note.clone())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
        }
        // Writing the head row first takes its lock (a row lock in PostgreSQL, the write lock
        // in SQLite) before anything is read, so appenders serialize on it.
        let row = sqlx::query("UPDATE audit_head SET size = size WHERE id = 1 RETURNING size, last_link, peaks, last_time")
            .fetch_one(&mut *tx)
            .await?;
        let mut head = head_from_row::<DB>(&row)?;
        let base = head.clone();
        let mut next_project_seq: HashMap<String, u64> = Default::default();
        {
            let known = self.project_seqs.lock().expect("not poisoned");
            if known.0 == base.size() {
                for project in drafts.iter().filter_map(|d| d.project.as_ref()) {
                    if let Some(n) = known.1.get(project) {
                        next_project_seq.insert(project.clone(), *n);
                    }
                }
            }
        }
        for project in drafts.iter().filter_map(|d| d.project.clone()) {
            if next_project_seq.contains_key(&project) {
                continue;
            }
            let max: Option<i64> =
                sqlx::query("SELECT MAX(project_seq) FROM audit_entries WHERE project_id = $1")
                    .bind(project.clone())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
            next_project_seq.insert(project, max.map_or(0, |m| m as u64 + 1));
        }
        let mut sealed = Vec::with_capacity(drafts.len());
        for (draft, salt) in drafts.into_iter().zip(salts) {
            let project_seq = match &draft.project {
                Some(p) => {
                    let n = next_project_seq.get_mut(p).expect("looked up above");
                    *n += 1;
                    *n - 1
                }
                None => 0,
            };
            sealed.push(seal(&mut head, draft, salt, now.millis(), project_seq));
        }
        for chunk in sealed.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO audit_entries (seq, project_id, project_seq, time_ms, action, leaf_hash, link, bytes) ",
            );
            qb.push_values(chunk, |mut row, s| {
                row.push_bind(s.entry.seq as i64)
                    .push_bind(s.entry.project.clone())
                    .push_bind(s.entry.project_seq as i64)
                    .push_bind(s.entry.time_ms)
                    .push_bind(s.entry.action.as_str().to_owned())
                    .push_bind(s.leaf.to_vec())
                    .push_bind(s.link.to_vec())
                    .push_bind(s.bytes.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        let nodes: Vec<Node> = sealed
            .iter()
            .flat_map(|s| s.nodes.iter().copied())
            .collect();
        insert_nodes(&mut *tx, &nodes).await?;
        sqlx::query("UPDATE audit_head SET size = $1, last_link = $2, peaks = $3, last_time = $4 WHERE id = 1")
            .bind(head.size() as i64)
            .bind(head.last_link.to_vec())
            .bind(head.range.peaks().concat())
            .bind(head.last_time)
            .execute(&mut *tx)
            .await?;
        self.check_file()?;
        tx.commit().await?;
        {
            let mut known = self.project_seqs.lock().expect("not poisoned");
            if known.0 != base.size() {
                known.1.clear();
            }
            known.0 = head.size();
            known.1.extend(next_project_seq);
        }
        Ok(Appended {
            seqs: sealed.iter().map(|s| s.entry.seq).collect(),
            head,
            base,
        })
    }

    async fn audit_head(&self) -> StoreResult<Head> {
        let row =
            sqlx::query("SELECT size, last_link, peaks, last_time FROM audit_head WHERE id = 1")
                .fetch_one(&self.audit)
                .await?;
        head_from_row::<DB>(&row)
    }

    async fn insert_checkpoint(&self, size: u64, note: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING")
            .bind(size as i64)
            .bind(note.to_owned())
            .bind(at.millis())
            .execute(&self.audit)
            .await?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> StoreResult<Option<(u64, String)>> {
        let row =
            sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .transpose()
    }

    async fn checkpoint_at_most(&self, size: u64) -> StoreResult<Option<(u64, String)>> {
        let row = sqlx::query(
            "SELECT size, note FROM audit_checkpoints WHERE size <= $1 ORDER BY size DESC LIMIT 1",
        )
        .bind(size.min(i64::MAX as u64) as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .transpose()
    }

    async fn checkpoints(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, String)>> {
        let rows = sqlx::query("SELECT size, note FROM audit_checkpoints WHERE size >= $1 AND size <= $2 ORDER BY size")
            .bind(from as i64)
            .bind(to.min(i64::MAX as u64) as i64)
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .collect()
    }

    async fn audit_entries(&self, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>> {
        let rows = sqlx::query(
            "SELECT seq, bytes FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
        )
        .bind(from as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEntry {
                    seq: r.try_get::<i64, _>(0)? as u64,
                    bytes: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn project_audit_entries(
        &self,
        project: &ProjectId,
        from: u64,
        to: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, StoredEntry)>> {
        // Paged by the project's own numbering, which its index orders.
        let rows = sqlx::query(
            "SELECT project_seq, seq, bytes FROM audit_entries \
             WHERE project_id = $1 AND project_seq >= $2 AND seq < $3 ORDER BY project_seq LIMIT $4",
        )
        .bind(project.as_str().to_owned())
        .bind(from.min(i64::MAX as u64) as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)? as u64,
                    StoredEntry {
                        seq: r.try_get::<i64, _>(1)? as u64,
                        bytes: r.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    // Read once, at start-up, to fill in a tree kept before interior hashes were: a large
    // log may take longer than a read's time limit, and nothing else waits on it.
    async fn audit_leaves(&self, size: u64) -> StoreResult<Vec<Hash>> {
        let rows = sqlx::query("SELECT leaf_hash FROM audit_entries WHERE seq < $1 ORDER BY seq")
            .bind(size.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| hash_of(r.try_get(0)?)).collect()
    }

    async fn audit_nodes(&self, ids: &[(u32, u64)]) -> StoreResult<HashMap<(u32, u64), Hash>> {
        let mut out = HashMap::with_capacity(ids.len());
        let (leaves, inner): (Vec<_>, Vec<_>) = ids.iter().partition(|(level, _)| *level == 0);
        for chunk in leaves.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("SELECT seq, leaf_hash FROM audit_entries WHERE seq IN (");
            let mut list = qb.separated(", ");
            for (_, index) in chunk {
                list.push_bind(*index as i64);
            }
            qb.push(")");
            for r in qb.build().fetch_all(&self.reads).await? {
                out.insert((0, r.try_get::<i64, _>(0)? as u64), hash_of(r.try_get(1)?)?);
            }
        }
        for chunk in inner.chunks(INSERT_CHUNK / 2) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("SELECT level, idx, hash FROM audit_nodes WHERE ");
            for (i, (level, index)) in chunk.iter().enumerate() {
                qb.push(if i == 0 { "(level = " } else { " OR (level = " });
                qb.push_bind(i64::from(*level));
                qb.push(" AND idx = ");
                qb.push_bind(*index as i64);
                qb.push(")");
            }
            for r in qb.build().fetch_all(&self.reads).await? {
                let key = (
                    r.try_get::<i64, _>(0)? as u32,
                    r.try_get::<i64, _>(1)? as u64,
                );
                out.insert(key, hash_of(r.try_get(2)?)?);
            }
        }
        Ok(out)
    }

    async fn audit_node_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_nodes")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    async fn insert_audit_nodes(&self, nodes: &[Node]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        insert_nodes(&mut *tx, nodes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entries_with_action(&self, action: &str) -> StoreResult<Vec<StoredEntry>> {
        let rows =
            sqlx::query("SELECT seq, bytes FROM audit_entries WHERE action = $1 ORDER BY seq")
                .bind(action.to_owned())
                .fetch_all(&self.reads)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEntry {
                    seq: r.try_get::<i64, _>(0)? as u64,
                    bytes: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn checkpoint_covering(&self, seq: u64) -> StoreResult<Option<(u64, String)>> {
        let row = sqlx::query(
            "SELECT size, note FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT 1",
        )
        .bind(seq.min(i64::MAX as u64) as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .transpose()
    }

    async fn add_audit_key(&self, vkey: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("INSERT INTO audit_keys (vkey, created_at) VALUES ($1, $2) ON CONFLICT (vkey) DO NOTHING")
            .bind(vkey.to_owned())
            .bind(at.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn audit_keys(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT vkey FROM audit_keys ORDER BY created_at, vkey")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn forget_subject(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Option<Vec<u8>>> {
        let _stale = self.cache.invalidate_on_return();
        let row = sqlx::query(
            "DELETE FROM subject_keys WHERE project_id = $1 AND lookup = $2 RETURNING salt",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn subject_salt(&self, project: &str, lookup: &Hash) -> StoreResult<Option<Vec<u8>>> {
        let fetch = async {
            let row =
                sqlx::query("SELECT salt FROM subject_keys WHERE project_id = $1 AND lookup = $2")
                    .bind(project.to_owned())
                    .bind(lookup.to_vec())
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        };
        self.cache
            .through_some(&self.cache.salts, (project.to_owned(), *lookup), fetch)
            .await
    }
}

fn head_from_row<DB>(r: &DB::Row) -> StoreResult<Head>
where
    DB: Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let size = r.try_get::<i64, _>(0)? as u64;
    let peaks: Vec<u8> = r.try_get(2)?;
    let peaks = peaks
        .chunks(32)
        .map(|c| hash_of(c.to_vec()))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Head {
        last_link: hash_of(r.try_get(1)?)?,
        range: CompactRange::from_parts(size, peaks).map_err(|e| StoreError::Other(e.into()))?,
        last_time: r.try_get(3)?,
    })
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    SqlStore<DB>: ProjectStore
        + EventStore
        + AuditStore
        + PeopleStore
        + GrantStore
        + ClassificationStore
        + RequestStore
        + RoleStore
        + PrivacyStore,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
    sqlx::migrate::Migrator: Send + Sync,
    DB::Connection: sqlx::migrate::Migrate,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    fn backend(&self) -> &'static str {
        <DB as Backend>::NAME
    }

    async fn migrate(&self) -> StoreResult<()> {
        DB::migrator().run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => StoreError::from(e),
            other => StoreError::Other(other.into()),
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.check_file()?;
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn probe_write(&self, at: Timestamp) -> StoreResult<()> {
        self.check_file()?;
        sqlx::query("UPDATE health_probe SET at = $1 WHERE id = 1")
            .bind(at.millis())
            .execute(&self.audit)
            .await?;
        Ok(())
    }

    fn wal_bytes(&self) -> Option<u64> {
        let file = self.file.as_ref()?;
        let mut wal = file.path.clone().into_os_string();
        wal.push("-wal");
        Some(std::fs::metadata(wal).map_or(0, |m| m.len()))
    }

    fn use_clock(&self, clock: crate::clock::SharedClock) {
        self.cache.use_clock(clock);
    }

    async fn truncate_wal(&self) -> StoreResult<bool> {
        // A full checkpoint holds the write lock while it waits for older readers: it waits a
        // while for them and for writers, never as long as writers would (the next run tries
        // again).
        self.checkpoint_wal(Some(2000)).await
    }

    async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
        self.audit.close().await;
    }
}
