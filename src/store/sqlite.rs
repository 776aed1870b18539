//! The SQLite backend: a local file in WAL mode, the default.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};

use sqlx::Connection;

use super::cache::ReadCache;
use super::sql::{Backend, FileIdentity, Pools, SqlStore, WriteGate};
use super::{StoreError, StoreResult};
use crate::config::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    const TRUNCATE_WAL: Option<&'static str> = Some("PRAGMA wal_checkpoint(TRUNCATE)");

    const BUCKETED: bool = true;
}

/// Opens (creating if needed) the SQLite file named by `sqlite:<path>`.
pub async fn connect(settings: &DatabaseSettings) -> StoreResult<SqlStore<Sqlite>> {
    let options = SqliteConnectOptions::from_str(&settings.url)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("database.url: {e}")))?;
    if let Some(dir) = options
        .get_filename()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let path = options.get_filename().to_owned();
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL with NORMAL is durable against process crashes; FULL also survives power loss.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // A writer waits for the one before it for longer than any commit takes, so
        // concurrent imports queue instead of failing with "database is locked".
        .busy_timeout(Duration::from_millis(settings.busy_timeout_ms))
        // After each checkpoint the WAL file shrinks back to this size instead of keeping
        // its largest size for ever.
        .pragma("journal_size_limit", settings.wal_limit_bytes.to_string())
        // Erased personal data must not linger in free pages.
        .pragma("secure_delete", "ON");
    let pool = |size: u32| {
        SqlitePoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            // When a write fails for lack of space or an I/O error, SQLite rolls the
            // transaction back by itself, but sqlx still counts it open, and the next BEGIN on
            // that connection fails for ever. A connection released inside a transaction is
            // closed instead of pooled, so writes work again as soon as the cause is gone.
            .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
    };
    let read_limit = Duration::from_millis(settings.read_timeout_ms);
    let cache_kib = settings.sqlite_cache_mib * 1024;
    let pools = Pools {
        // Ingestion writes three indexes with keys in no particular order. With SQLite's
        // default 2 MB page cache a 100,000-event import ran at about half the rate it does
        // with a larger one (allocated only as pages are used; README, scale benchmark).
        // Past a few hundred thousand events the cost is writing the pages, not reading them.
        general: pool(settings.max_connections)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "PRAGMA cache_size = -{cache_kib}"
                    )))
                    .execute(conn)
                    .await
                    .map(|_| ())
                })
            })
            .connect_with(options.clone())
            .await?,
        // SQLite has no statement timeout: a progress handler stops a statement once the
        // connection has been out of the pool longer than the limit. It is armed afresh
        // each time a connection is handed out.
        reads: pool(settings.max_connections)
            .after_connect(move |conn, _| Box::pin(arm(conn, read_limit)))
            .before_acquire(move |conn, _| {
                Box::pin(async move { arm(conn, read_limit).await.map(|()| true) })
            })
            .connect_with(options.clone())
            .await?,
        audit: pool(settings.audit_connections)
            .connect_with(options)
            .await?,
    };
    let file = FileIdentity::of(&path)
        .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    Ok(SqlStore::new(pools, Some(file), ReadCache::of(settings))
        .with_events_per_bucket(settings.events_per_bucket)
        .with_write_gate(WriteGate::new(Duration::from_millis(
            settings.busy_timeout_ms,
        ))))
}

/// Makes statements on `conn` fail with SQLITE_INTERRUPT once `limit` has passed from now.
async fn arm(conn: &mut SqliteConnection, limit: Duration) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + limit;
    // About a millisecond of work between checks.
    conn.lock_handle()
        .await?
        .set_progress_handler(10_000, move || Instant::now() < deadline);
    Ok(())
}
