//! What the benchmarks share: a fresh PostgreSQL database, when one is configured.

use sqlx::{Connection, Executor, PgConnection};

/// A database created for one benchmark run on the server named by AUDITGATE_TEST_POSTGRES_URL.
pub struct BenchDb {
    /// Its URL.
    pub url: String,
    name: String,
    admin: PgConnection,
}

/// Creates the database, or says why PostgreSQL is skipped and returns `None`.
pub async fn fresh_postgres(prefix: &str) -> Option<BenchDb> {
    let server = std::env::var("AUDITGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let Some(server) = server else {
        println!("postgres skipped: set AUDITGATE_TEST_POSTGRES_URL to measure it");
        return None;
    };
    let name = format!("{prefix}_{}", std::process::id());
    let mut admin = PgConnection::connect(&server).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
    Some(BenchDb { url, name, admin })
}

impl BenchDb {
    /// Drops the database.
    pub async fn remove(mut self) {
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        self.admin.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
    }
}
