//! The SQLite backend: a local file in WAL mode, the default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use sqlx::Connection;

use super::sql::{Backend, FileIdentity, SqlStore};
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

    const AFTER_ERASURE: Option<&'static str> = Some("PRAGMA wal_checkpoint(TRUNCATE)");
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
        .busy_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        // Erased personal data must not linger in free pages.
        .pragma("secure_delete", "ON");
    let pool = SqlitePoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        // When a write fails for lack of space or an I/O error, SQLite rolls the transaction
        // back by itself, but sqlx still counts it open, and the next BEGIN on that connection
        // fails for ever. A connection released inside a transaction is closed instead of
        // pooled, so writes work again as soon as the cause is gone.
        .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .connect_with(options)
        .await?;
    let file = FileIdentity::of(&path)
        .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    Ok(SqlStore::over_file(pool, file))
}
