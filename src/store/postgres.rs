//! The PostgreSQL backend, for production.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};

use super::sql::{Backend, SqlStore};
use super::{StoreError, StoreResult};
use crate::config::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Backend for Postgres {
    const NAME: &'static str = "postgres";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    const BEGIN_WRITE: &'static str = "BEGIN";

    // Dead tuples are reclaimed by (auto)vacuum; see docs/privacy.md.
    const AFTER_ERASURE: Option<&'static str> = None;
}

/// Connects to the PostgreSQL database named by a `postgres://` URL.
pub async fn connect(settings: &DatabaseSettings) -> StoreResult<SqlStore<Postgres>> {
    let options = PgConnectOptions::from_str(&settings.url)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("database.url: {e}")))?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await?;
    Ok(SqlStore::new(pool))
}
