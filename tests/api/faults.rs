//! Faults of the database under a running service: a full disk, a held lock, deleted files.
//! The log fails closed while the fault lasts and recovers by itself once it is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use auditgate::ledger::bundle::verify_text;
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
    let (bundle, _) = app.export_log().await;
    verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
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
