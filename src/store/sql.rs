//! The store over sqlx pools, generic over the backend: its pools, the database file's
//! identity, and what every aggregate's queries share. The queries themselves are written once
//! for both backends, one file per aggregate (`projects.rs`, `events.rs`, `audit_log.rs`,
//! `people.rs`, `grants.rs`, `privacy.rs`): both dialects accept `$n` placeholders,
//! `ON CONFLICT` and integer division, so only connecting and locking differ.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
};

use super::cache::ReadCache;
use super::*;

/// `impl<DB> Trait for SqlStore<DB>` under the one set of bounds every aggregate's queries
/// need (the types sqlx binds and reads on both backends), written here once instead of above
/// each impl.
macro_rules! portable_impl {
    ($store:ident { $($body:tt)* }) => {
        #[async_trait::async_trait]
        impl<DB> $store for SqlStore<DB>
        where
            DB: Backend,
            for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
            DB::Arguments: IntoArguments<DB>,
            for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'s> &'s str: ColumnIndex<DB::Row>,
            usize: ColumnIndex<DB::Row>,
        {
            $($body)*
        }
    };
}
pub(super) use portable_impl;

/// What a backend adds to the portable queries.
pub trait Backend: Database + sqlx::database::HasStatementCache {
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
    /// Whether the events' indexes begin with (project, arrival bucket) (`0022_event_buckets.sql`):
    /// reads then name the buckets to seek in. SQLite's are: an insert into its indexes got
    /// slower as they grew (0.38x at 1M events). PostgreSQL's are not: it held its rate without
    /// them, and per-bucket seeks made its reads of a day three times slower.
    const BUCKETED: bool = false;
    /// Whether [`Backend::write_group`] writes audit groups (PostgreSQL): the appender then
    /// seals a group on the head it last wrote, without reading it first.
    const WRITES_GROUP_AT_ONCE: bool = false;
    /// Writes a sealed audit group in one statement, its own transaction: one round trip
    /// instead of one per table and two for the transaction, which is most of a commit's time
    /// when a commit is a few small rows. `Ok(false)` when the head was not `group.base` any
    /// more (another writer), and nothing was written.
    fn write_group<'a>(
        _pool: &'a Pool<Self>,
        _group: &'a super::audit_log::GroupWrite<'a>,
    ) -> futures_util::future::BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async { Ok(false) })
    }
    /// Stores a batch of events in as few statements as the backend allows (PostgreSQL: with
    /// the batches waiting beside it, the links' lookup and then one statement); the batch back
    /// where the portable statements do it, one per table.
    fn insert_batch(
        _store: &SqlStore<Self>,
        batch: super::batches::ReadyBatch,
    ) -> Result<
        futures_util::future::BoxFuture<'_, StoreResult<InsertOutcome>>,
        super::batches::ReadyBatch,
    > {
        Err(batch)
    }
}

/// A store over sqlx pools to one database, so that no kind of work can take every
/// connection another needs.
pub struct SqlStore<DB: Database> {
    /// Everything not named below: sign-in, grants, ingestion, administration.
    pub(super) pool: Pool<DB>,
    /// Event, count and profile reads, proofs and exports' pages, whose cost grows with the
    /// data: each statement runs under `database.read_timeout_ms`, and (on SQLite) with the
    /// default small page cache, so reading the whole log does not fill memory.
    pub(super) reads: Pool<DB>,
    /// The audit appender's alone: a request's entry never waits behind a slow read.
    pub(super) audit: Pool<DB>,
    /// The event batch groups' writers' (`batches.rs`): the general pool's, except where
    /// [`SqlStore::with_event_writers`] gives them their own.
    pub(super) ingest: Pool<DB>,
    /// The database file, for a backend that is one (SQLite).
    pub(super) file: Option<FileIdentity>,
    /// Each project's next `project_seq`, as of the log's size when it was known: good only
    /// while that is still the size (nobody else appended), so no `MAX()` per commit.
    pub(super) project_seqs: std::sync::Mutex<(u64, HashMap<String, u64>)>,
    /// The head this process last wrote, for a backend that writes a group without reading
    /// the head first ([`Backend::WRITES_GROUP_AT_ONCE`]); the write checks it is still so.
    pub(super) last_head: std::sync::Mutex<Option<crate::ledger::chain::Head>>,
    /// What nearly every request reads again, kept for `database.cache_ttl_ms`.
    pub(super) cache: ReadCache,
    /// The order this process's writers take the one write lock in, for a backend that has one
    /// (SQLite).
    pub(super) gate: Option<std::sync::Arc<WriteGate>>,
    /// Event batches waiting to be committed together (`batches.rs`).
    pub(super) batches: std::sync::Arc<super::batches::BatchQueue>,
    /// Identity links this process has made, and how many it will have made when it next
    /// refreshes the table's planner statistics (PostgreSQL, `postgres.rs`).
    pub(super) links_made: std::sync::atomic::AtomicU64,
    pub(super) links_analyzed: std::sync::atomic::AtomicU64,
    /// About how many events share an arrival bucket (`0022_event_buckets.sql`).
    pub(super) events_per_bucket: i64,
}

/// SQLite has one write lock, and its waiters race for it, each sleeping and retrying: under
/// load one writer can lose every race for seconds. This process's writers queue here instead,
/// in order, and the audit appender goes to the front of the queue: it waits for at most the
/// transaction writing and the one next in line, so a stream of event batches cannot keep a
/// request's audit entry out (the request would fail closed).
pub struct WriteGate {
    /// Where ordinary writers wait, so that at most one of them waits on `lock`.
    line: tokio::sync::Mutex<()>,
    /// The turn to write (FIFO).
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Longest wait for a turn before answering that the database is busy.
    patience: std::time::Duration,
}

/// A turn at the write lock, held until the transaction ends.
pub(super) type Turn = tokio::sync::OwnedMutexGuard<()>;

impl WriteGate {
    /// A gate whose ordinary writers give up after `patience`.
    pub fn new(patience: std::time::Duration) -> Self {
        Self {
            line: tokio::sync::Mutex::new(()),
            lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            patience,
        }
    }

    /// Waits in line for a turn.
    pub(super) async fn ordinary(&self) -> StoreResult<Turn> {
        let wait = async {
            let _in_line = self.line.lock().await;
            self.lock.clone().lock_owned().await
        };
        tokio::time::timeout(self.patience, wait)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the database is busy: no turn to write within {} ms",
                    self.patience.as_millis()
                ))
            })
    }

    /// Takes the next turn, ahead of everyone in line (the appender, which has its own
    /// time limit).
    pub(super) async fn first(&self) -> Turn {
        self.lock.clone().lock_owned().await
    }
}

/// A write transaction with its turn at the write lock, which ends with it.
pub(super) struct WriteTx<DB: Database> {
    tx: sqlx::Transaction<'static, DB>,
    // Dropped after `tx`, whose rollback (if not committed) is queued first.
    _turn: Option<Turn>,
}

impl<DB: Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

impl<DB: Database> WriteTx<DB> {
    /// Commits, then gives up the turn.
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
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

/// Begins a write transaction on `pool`, in turn at `gate` if there is one.
pub(super) async fn begin_write_with<DB: Backend>(
    pool: &Pool<DB>,
    gate: Option<&WriteGate>,
) -> StoreResult<WriteTx<DB>> {
    let turn = match gate {
        Some(gate) => Some(gate.ordinary().await?),
        None => None,
    };
    let tx = pool.begin_with(DB::BEGIN_WRITE).await?;
    Ok(WriteTx { tx, _turn: turn })
}

impl<DB: Database> SqlStore<DB> {
    /// Wraps connected pools, over the database file `file` for a backend that is one.
    pub fn new(pools: Pools<DB>, file: Option<FileIdentity>, cache: ReadCache) -> Self {
        Self {
            ingest: pools.general.clone(),
            pool: pools.general,
            reads: pools.reads,
            audit: pools.audit,
            file,
            project_seqs: std::sync::Mutex::new((u64::MAX, HashMap::new())),
            last_head: std::sync::Mutex::new(None),
            links_made: Default::default(),
            links_analyzed: std::sync::atomic::AtomicU64::new(1000),
            cache,
            gate: None,
            batches: Default::default(),
            events_per_bucket: 100_000,
        }
    }

    /// Writes event batches in groups of one project's, each group one statement on a
    /// connection of `pool`, as many groups at a time as it has connections (a backend whose
    /// writers run side by side, PostgreSQL).
    pub fn with_event_writers(mut self, pool: Pool<DB>) -> Self {
        let writers = pool.options().get_max_connections() as usize;
        self.batches = std::sync::Arc::new(super::batches::BatchQueue::new(writers, true));
        self.ingest = pool;
        self
    }

    /// Sets how many events share an arrival bucket (`database.events_per_bucket`).
    pub fn with_events_per_bucket(mut self, n: u64) -> Self {
        self.events_per_bucket = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// Makes this process's writers take turns at a backend's one write lock (SQLite).
    pub fn with_write_gate(mut self, gate: WriteGate) -> Self {
        self.gate = Some(std::sync::Arc::new(gate));
        self
    }

    /// Begins a write transaction on the general pool, in turn.
    pub(super) async fn begin_write(&self) -> StoreResult<WriteTx<DB>>
    where
        DB: Backend,
    {
        begin_write_with(&self.pool, self.gate.as_deref()).await
    }

    /// Begins the appender's write transaction on its own pool, ahead of the line.
    pub(super) async fn begin_audit_write(&self) -> StoreResult<WriteTx<DB>>
    where
        DB: Backend,
    {
        let turn = match &self.gate {
            Some(gate) => Some(gate.first().await),
            None => None,
        };
        let tx = self.audit.begin_with(DB::BEGIN_WRITE).await?;
        Ok(WriteTx { tx, _turn: turn })
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
        // The checkpoint holds the write lock while it waits for readers: in turn, like any
        // writer, so this process's writers queue in order instead of racing it.
        let _turn = match &self.gate {
            Some(gate) => Some(gate.ordinary().await?),
            None => None,
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

    pub(super) fn check_file(&self) -> StoreResult<()> {
        self.file.as_ref().map_or(Ok(()), FileIdentity::check)
    }

    /// The underlying pool, for benchmarks that compare against raw sqlx.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

/// Rows per multi-row INSERT: 7 parameters a row stays under SQLite's 32766-variable limit.
pub(super) const INSERT_CHUNK: usize = 1000;

pub(super) fn json_object(text: &str) -> StoreResult<Map<String, Value>> {
    match serde_json::from_str(text).context("stored JSON is not an object")? {
        Value::Object(map) => Ok(map),
        _ => Err(anyhow::anyhow!("stored JSON is not an object").into()),
    }
}

pub(super) fn project_id(text: String) -> StoreResult<ProjectId> {
    ProjectId::parse(&text).map_err(|e| StoreError::Other(e.into()))
}

pub(super) fn opt_time(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    SqlStore<DB>: ProjectStore
        + EventStore
        + AuditStore
        + PeopleStore
        + SessionStore
        + CredentialStore
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

    async fn pending_migrations(&self) -> StoreResult<usize> {
        let known = DB::migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count();
        let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await?;
        let applied: i64 = row.try_get("n")?;
        Ok(known.saturating_sub(applied.max(0) as usize))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.check_file()?;
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn autovacuum(&self) -> StoreResult<Option<bool>> {
        if <DB as Backend>::NAME != "postgres" {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT (CASE WHEN setting = 'on' THEN 1 ELSE 0 END)::bigint AS on_ FROM pg_settings WHERE name = 'autovacuum'",
        )
        .fetch_one(&self.pool)
        .await?;
        let on: i64 = row.try_get("on_")?;
        Ok(Some(on == 1))
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
        self.ingest.close().await;
        self.pool.close().await;
        self.audit.close().await;
    }
}
