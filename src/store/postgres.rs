//! The PostgreSQL backend, for production.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};

use super::cache::ReadCache;
use super::sql::{Backend, Pools, SqlStore};
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
    const TRUNCATE_WAL: Option<&'static str> = None;
}

/// Connects to the PostgreSQL database named by a `postgres://` URL.
pub async fn connect(settings: &DatabaseSettings) -> StoreResult<SqlStore<Postgres>> {
    let options = PgConnectOptions::from_str(&settings.url)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("database.url: {e}")))?;
    let pool = |size: u32, options: PgConnectOptions| {
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .connect_with(options)
    };
    let timed = options
        .clone()
        .options([("statement_timeout", settings.read_timeout_ms.to_string())]);
    let pools = Pools {
        general: pool(settings.max_connections, options.clone()).await?,
        reads: pool(settings.max_connections, timed).await?,
        audit: pool(settings.audit_connections, options).await?,
    };
    Ok(SqlStore::new(pools, None, ReadCache::of(settings)))
}
