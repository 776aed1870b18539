//! Faults of the database under a running service: a full disk, a held lock, deleted files.
//! The log fails closed while the fault lasts and recovers by itself once it is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use auditgate::ledger::bundle::verify_text;
use auditgate::ledger::entry::{Action, Outcome};
use serde_json::json;
use sqlx::Connection;

use crate::helpers::{Backend, TestDb, assert_problem, fresh_db, spawn_with, test_settings};

/// A tmpfs of `mb` megabytes, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mb: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Self { dir })
        } else {
            if std::env::var("CI").is_ok() {
                panic!("CI runs as root and must be able to mount a tmpfs");
            }
            eprintln!("SKIPPED: mounting a tmpfs needs root");
            None
        }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Polls `path` anonymously until it answers `status`, or fails after `within`.
async fn until(app: &crate::helpers::TestApp, path: &str, status: u16, within: Duration) {
    let start = Instant::now();
    loop {
        let got = app.get_anonymous(path).await.status().as_u16();
        if got == status {
            return;
        }
        assert!(start.elapsed() < within, "{path} still answers {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn db_on(dir: &Path) -> TestDb {
    let keys = tempfile::tempdir().unwrap();
    TestDb {
        url: format!("sqlite:{}", dir.join("auditgate.db").display()),
        dir: keys,
    }
}

#[tokio::test]
async fn a_full_disk_fails_closed_and_everything_recovers_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let db = db_on(disk.dir.path());
    let app = spawn_with(test_settings(&db), db).await;
    assert_eq!(
        app.import(&json!([app.event("Buy", "alice", "i1")]))
            .await
            .status(),
        200
    );
    let filler = disk.fill();
    // Enough work to need new pages in the WAL: each read appends an entry.
    let mut refused = 0;
    let mut answered = std::collections::BTreeSet::new();
    for i in 0..40 {
        let r = app
            .import(&json!([app.event(
                "Buy",
                &format!("u{i}"),
                &format!("j{i}")
            )]))
            .await;
        if r.status() == 503 {
            refused += 1;
        } else {
            assert_eq!(r.status(), 200);
            answered.insert(format!("u{i}"));
        }
        let r = app.get("/api/v1/projects/shop/events").await;
        if r.status() == 503 {
            let body = r.text().await.unwrap();
            assert!(!body.contains("alice"), "no data in a 503: {body}");
        }
    }
    assert!(refused > 0, "the full disk refused nothing");
    assert_problem(app.get_anonymous("/readyz").await, 503).await;

    std::fs::remove_file(filler).unwrap();
    // Ready again with no data request in between: the probe's own write decides.
    until(&app, "/readyz", 200, Duration::from_secs(5)).await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    assert_eq!(
        app.import(&json!([app.event("Buy", "bob", "k1")]))
            .await
            .status(),
        200
    );
    app.settle().await;
    let (bundle, entries) = app.export_log().await;
    verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
    // Every batch answered 200 is stored, and no stored batch lacks its entry (on SQLite the
    // events are written in their entry's transaction, which the full disk refused whole).
    let stored: std::collections::BTreeSet<String> = app
        .all_events()
        .await
        .iter()
        .filter_map(|e| e["distinct_id"].as_str().map(str::to_owned))
        .collect();
    let batches_stored = stored.iter().filter(|d| d.starts_with('u')).count();
    assert!(
        answered.iter().all(|d| stored.contains(d)),
        "{answered:?} in {stored:?}"
    );
    let ingested = entries
        .iter()
        .filter(|e| e.action == Action::EventsIngest && e.outcome == Outcome::Allowed)
        .count();
    assert!(
        ingested >= batches_stored + 2,
        "{ingested} entries for {} batches stored",
        batches_stored + 2
    );
}

#[tokio::test]
async fn readiness_recovers_by_itself_when_a_lock_is_released() {
    let db = fresh_db(Backend::Sqlite, "lock_released").await.unwrap();
    let mut settings = test_settings(&db);
    settings.audit.write_timeout_ms = 300;
    settings.database.acquire_timeout_ms = 1000;
    let app = spawn_with(settings, db).await;
    let mut conn = sqlx::SqliteConnection::connect(&app._db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_problem(app.get("/api/v1/projects/shop/events").await, 503).await;
    assert_problem(app.get_anonymous("/readyz").await, 503).await;
    // Operators see it: the refusal and the failed commit are counted.
    let fail_closed = crate::health::metric(&app, "auditgate_audit_fail_closed_total").await;
    assert!(fail_closed >= Some(1.0), "{fail_closed:?}");
    let failures = crate::health::metric(&app, "auditgate_audit_commit_failures_total").await;
    assert!(failures >= Some(1.0), "{failures:?}");
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    // No traffic but the load balancer's probe.
    until(&app, "/readyz", 200, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn deleted_database_files_are_noticed_at_once() {
    let db = fresh_db(Backend::Sqlite, "deleted").await.unwrap();
    let path = db.dir.path().join("auditgate.db");
    let app = spawn_with(test_settings(&db), db).await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let body = assert_problem(app.get("/api/v1/projects/shop/events").await, 503).await;
    assert!(
        body["detail"].as_str().unwrap().contains("is gone"),
        "{body}"
    );
    let body = assert_problem(app.get_anonymous("/readyz").await, 503).await;
    assert!(
        body["detail"].as_str().unwrap().contains("is gone"),
        "{body}"
    );
}

/// A TCP proxy in front of PostgreSQL that can go away (connections dropped, new ones
/// refused) and come back on the same port.
struct Proxy {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(format!("127.0.0.1:{port}").parse().unwrap())
            .unwrap();
        let listener = socket.listen(64).unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                relays.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            port,
            task: Some(task),
        }
    }

    /// Drops every connection and stops listening: new connections are refused.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn postgres_refusing_connections_is_a_503_with_retry_after_and_recovers() {
    let Some(db) = fresh_db(Backend::Postgres, "pg_refusing").await else {
        return;
    };
    let mut proxy = Proxy::start(0).await;
    let mut settings = test_settings(&db);
    settings.database.url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        settings.database.url, db.url,
        "the test URL names 127.0.0.1:5432"
    );
    settings.database.acquire_timeout_ms = 1000;
    settings.audit.write_timeout_ms = 1000;
    let app = spawn_with(settings, db).await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);

    proxy.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for path in [
        "/api/v1/projects/shop/events",
        "/api/v1/projects/shop/events/count",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 503, "{path}");
        assert!(r.headers().contains_key("retry-after"), "{path}");
    }
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));

    let _back = Proxy::start(proxy.port).await;
    until(&app, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);

    // PostgreSQL itself refusing: live connections terminated by an administrator (57P01),
    // new ones refused (55000). Each is a database error, not an I/O one.
    let name = app._db.url.rsplit('/').next().unwrap().to_owned();
    let admin = crate::helpers::postgres_server("pg_refusing").unwrap();
    let mut admin = sqlx::PgConnection::connect(&admin).await.unwrap();
    let set = |allow: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}");
    sqlx::query(sqlx::AssertSqlSafe(set(false)))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = app.get("/api/v1/projects/shop/events").await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
    }
    assert_eq!(app.get_anonymous("/readyz").await.status(), 503);
    sqlx::query(sqlx::AssertSqlSafe(set(true)))
        .execute(&mut admin)
        .await
        .unwrap();
    until(&app, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
}

/// Rewrites history as a database administrator without the signing key could: entry `at`
/// gets other details, every later entry is re-chained, the tree's hashes and the head are
/// recomputed, and the checkpoints from `at` on are deleted. Every table is self-consistent
/// afterwards; only a signature over the old history (or its memory) can tell.
async fn rewrite_history(url: &str, at: u64) {
    use auditgate::ledger::entry::{Entry, chain_link};
    use auditgate::ledger::merkle::{CompactRange, leaf_hash};
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    for sql in [
        "DROP TRIGGER audit_entries_no_update",
        "DROP TRIGGER audit_entries_no_delete",
        "DROP TRIGGER audit_entries_no_replace",
        "DROP TRIGGER audit_checkpoints_no_delete",
        "DROP TRIGGER audit_nodes_no_delete",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, bytes FROM audit_entries ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut range = CompactRange::new();
    let mut nodes = Vec::new();
    let mut last_link = [0u8; 32];
    let mut last_time = 0;
    sqlx::query("DELETE FROM audit_nodes")
        .execute(&mut conn)
        .await
        .unwrap();
    for (seq, bytes) in rows {
        let mut e = Entry::decode(&bytes).unwrap();
        if seq as u64 >= at {
            if seq as u64 == at {
                e.details = r#"{"rewritten":true}"#.into();
            }
            e.prev = last_link;
            let bytes = e.encode();
            sqlx::query(
                "UPDATE audit_entries SET bytes = $1, leaf_hash = $2, link = $3 WHERE seq = $4",
            )
            .bind(&bytes)
            .bind(leaf_hash(&bytes).to_vec())
            .bind(chain_link(&bytes).to_vec())
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        let bytes = e.encode();
        range.push_with(leaf_hash(&bytes), |n| nodes.push(n));
        last_link = chain_link(&bytes);
        last_time = e.time_ms;
    }
    for n in nodes {
        sqlx::query("INSERT INTO audit_nodes (level, idx, hash) VALUES ($1, $2, $3)")
            .bind(i64::from(n.level))
            .bind(n.index as i64)
            .bind(n.hash.to_vec())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE audit_head SET last_link = $1, peaks = $2, last_time = $3 WHERE id = 1")
        .bind(last_link.to_vec())
        .bind(range.peaks().concat())
        .bind(last_time)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_checkpoints WHERE size > $1")
        .bind(at as i64)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// A second service over the same database and keys, as a restart would start it.
async fn restart(app: &crate::helpers::TestApp) -> anyhow::Result<auditgate::startup::Application> {
    let mut settings = test_settings(&app._db);
    settings.database.url = app._db.url.clone();
    auditgate::startup::Application::build(settings, std::sync::Arc::new(app.clock.clone())).await
}

#[tokio::test]
async fn a_history_rewritten_in_the_database_without_the_key_is_never_signed() {
    let db = fresh_db(Backend::Sqlite, "rewritten").await.unwrap();
    let app = spawn_with(test_settings(&db), db).await;
    for i in 0..12 {
        app.get(&format!("/api/v1/projects/shop/events?distinct_id=u{i}"))
            .await;
    }
    app.settle().await;
    let (before, _) = app.export_log().await;
    verify_text(&before, vec![app.verifier_key()], None).unwrap();

    rewrite_history(&app._db.url, 5).await;
    // The running service notices at its next commit: nothing is answered, nothing signed.
    let body = assert_problem(app.get("/api/v1/projects/shop/events").await, 503).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("refusing to sign"),
        "{body}"
    );
    assert_problem(app.get("/api/v1/projects/shop/events").await, 503).await;
    let latest = app.store.latest_checkpoint().await.unwrap().unwrap().0;
    assert_eq!(
        latest, 5,
        "no checkpoint was signed over the rewritten history"
    );
    // And a restart refuses to start on it.
    let err = restart(&app).await.err().expect("refused to start");
    assert!(format!("{err:#}").contains("refusing to sign"), "{err:#}");
}

#[tokio::test]
async fn an_old_backup_or_deleted_files_never_start_a_second_log_under_the_same_key() {
    let db = fresh_db(Backend::Sqlite, "backup").await.unwrap();
    let path = db.dir.path().join("auditgate.db");
    let app = spawn_with(test_settings(&db), db).await;
    app.get("/api/v1/projects/shop/events").await;
    app.settle().await;
    let backup = app._db.dir.path().join("backup.db");
    let mut conn = sqlx::SqliteConnection::connect(&app._db.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        backup.display()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    for i in 0..5 {
        app.get(&format!("/api/v1/projects/shop/events?distinct_id=u{i}"))
            .await;
    }
    app.settle().await;
    let second = restart(&app).await.expect("the real database starts");
    second.store().close().await;
    // The service stopped, and the backup put back in place of the live files.
    app.store.close().await;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::copy(&backup, &path).unwrap();
    let err = restart(&app)
        .await
        .err()
        .expect("refused to start on the backup");
    assert!(
        format!("{err:#}").contains("an old backup was restored"),
        "{err:#}"
    );

    // No database at all: a fresh, empty log would be a second log under the same key.
    std::fs::remove_file(&path).unwrap();
    let err = restart(&app).await.err().expect("refused to start afresh");
    assert!(format!("{err:#}").contains("refusing to sign"), "{err:#}");
}
