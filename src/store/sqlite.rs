//! The SQLite backend: a local file in WAL mode, the default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use super::sql::{Backend, SqlStore};
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
        .connect_with(options)
        .await?;
    Ok(SqlStore::new(pool))
}
