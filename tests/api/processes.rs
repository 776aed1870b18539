//! The real binary in separate processes: crash recovery and two writers on one database.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::helpers::{Backend, fresh_db};

/// The exit status of the independent verifier (tests/independent-verifier, written from
/// docs/audit-log-format.md alone, in JavaScript) on `bundle` with `key`; `None` without Node.
pub fn independent(bundle: &Path, key: &str) -> Option<i32> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent-verifier/verify.mjs");
    match Command::new("node")
        .arg(script)
        .arg(bundle)
        .arg(key)
        .output()
    {
        Ok(out) => out.status.code(),
        Err(_) if std::env::var("CI").is_err() => {
            eprintln!("SKIPPED the independent verifier: node is not installed");
            None
        }
        Err(e) => panic!("CI needs node for the independent verifier: {e}"),
    }
}

/// Asserts the independent verifier's verdict (when Node is there to run it).
pub fn agrees(bundle: &Path, key: &str, code: i32, what: &str) {
    if let Some(got) = independent(bundle, key) {
        assert_eq!(got, code, "{what}: the independent verifier disagrees");
    }
}

/// A running `auditgate serve`; killed when dropped.
struct Server {
    child: Child,
    base: String,
    /// Its operations log (stderr, JSON lines) so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auditgate(dir: &Path, db_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditgate"));
    c.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("AUDITGATE_DATA_DIR", dir)
        .env("AUDITGATE__DATABASE__URL", db_url)
        .env(
            "AUDITGATE__AUDIT__SIGNING_KEY_FILE",
            dir.join("signing.key"),
        )
        .env(
            "AUDITGATE__AUDIT__PSEUDONYM_KEY_FILE",
            dir.join("pseudonym.key"),
        );
    c
}

fn serve(dir: &Path, db_url: &str) -> Server {
    let mut child = auditgate(dir, db_url)
        .env("AUDITGATE__LOG__FORMAT", "json")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("serve exited early").unwrap();
        if let Some(port) = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|l| l["port"].as_u64())
        {
            break port;
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

fn create_project(dir: &Path, db_url: &str) -> String {
    let migrated = auditgate(dir, db_url).arg("migrate").status().unwrap();
    assert!(migrated.success());
    let out = auditgate(dir, db_url)
        .args(["--json", "project", "create", "shop"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Reads from every server until `stop`, returning the request ids of the 200 answers.
async fn load(bases: Vec<String>, secret: String, workers: usize, stop: Instant) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, secret, base) = (
            client.clone(),
            secret.clone(),
            bases[w % bases.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while Instant::now() < stop {
                let url = format!("{base}/api/v1/projects/shop/events?limit=10");
                match client
                    .get(url)
                    .bearer_auth(&secret)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
                        // Answered means the whole body arrived.
                        if r.bytes().await.is_ok() {
                            answered.push(id);
                        }
                    }
                    _ => break, // the server is gone
                }
            }
            answered
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Exports the whole log with the CLI, verifies it with `auditgate-verify`, and returns the
/// request ids its entries record.
fn export_and_verify(dir: &Path, db_url: &str) -> (HashSet<String>, u64) {
    let bundle = dir.join("log.bundle");
    let out = auditgate(dir, db_url)
        .args(["log", "export", "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(
        auditgate(dir, db_url)
            .args(["keys", "show"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_auditgate-verify"))
        .arg(&bundle)
        .args(["--key", key.trim(), "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let mut ids = HashSet::new();
    for line in std::fs::read_to_string(&bundle).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "entry" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v["bytes"].as_str().unwrap())
                .unwrap();
            if let Some(id) = auditgate::ledger::entry::Entry::decode(&bytes)
                .unwrap()
                .request_id
            {
                ids.insert(id);
            }
        }
    }
    (ids, report["report"]["entries"].as_u64().unwrap())
}

#[tokio::test]
async fn after_kill_9_under_load_the_log_verifies_and_holds_every_answered_request() {
    let db = fresh_db(Backend::Sqlite, "kill9").await.unwrap();
    let dir = db.dir.path().to_owned();
    let secret = create_project(&dir, &db.url);
    let mut server = serve(&dir, &db.url);
    let killer = {
        let pid = server.child.id();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
        })
    };
    let answered = load(
        vec![server.base.clone()],
        secret,
        16,
        Instant::now() + Duration::from_secs(10),
    )
    .await;
    killer.await.unwrap();
    let _ = server.child.wait();
    assert!(
        answered.len() > 20,
        "only {} requests were answered before the kill",
        answered.len()
    );

    // Restart: the service starts on the crashed log and keeps appending to it.
    drop(serve(&dir, &db.url));
    let (logged, _) = export_and_verify(&dir, &db.url);
    let missing: Vec<_> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} answered requests are not in the log: {missing:?}",
        missing.len()
    );
}

#[tokio::test]
async fn two_processes_append_to_one_postgres_log_without_forking_it() {
    let Some(db) = fresh_db(
        Backend::Postgres,
        "two_processes_append_to_one_postgres_log",
    )
    .await
    else {
        return;
    };
    let dir = db.dir.path().to_owned();
    let secret = create_project(&dir, &db.url);
    let a = serve(&dir, &db.url);
    let b = serve(&dir, &db.url);
    let answered = load(
        vec![a.base.clone(), b.base.clone()],
        secret,
        16,
        Instant::now() + Duration::from_secs(2),
    )
    .await;
    drop((a, b));
    assert!(answered.len() > 20);
    let (logged, entries) = export_and_verify(&dir, &db.url);
    assert!(
        answered.iter().all(|id| logged.contains(id)),
        "every answered read is in the one log"
    );
    // log.init, project.create, then one entry per read (the export's own entry comes after).
    assert_eq!(
        entries,
        2 + answered.len() as u64,
        "no extra or missing entries, no fork"
    );
}

#[tokio::test]
async fn after_a_key_rotation_the_original_key_still_verifies_the_whole_log() {
    let db = fresh_db(Backend::Sqlite, "rotation").await.unwrap();
    let dir = db.dir.path().to_owned();
    let secret = create_project(&dir, &db.url);
    let key_text = |dir: &Path| {
        String::from_utf8(
            auditgate(dir, &db.url)
                .args(["keys", "show"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    let original = key_text(&dir);

    let before = {
        let server = serve(&dir, &db.url);
        let answered = load(
            vec![server.base.clone()],
            secret.clone(),
            4,
            Instant::now() + Duration::from_millis(300),
        )
        .await;
        // Never a service left signing with a retired key: refused while one runs.
        let refused = auditgate(&dir, &db.url)
            .args(["--yes", "keys", "rotate"])
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("stop every service"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        assert_eq!(key_text(&dir), original, "the key is unchanged");
        answered
    };
    let out = auditgate(&dir, &db.url)
        .args(["--json", "--yes", "keys", "rotate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rotated["old"], original);
    let current = key_text(&dir);
    assert_eq!(rotated["new"], current);
    assert_ne!(current, original);
    assert!(
        std::fs::read_dir(&dir).unwrap().any(|f| f
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("retired"))
    );
    let after = {
        let server = serve(&dir, &db.url);
        load(
            vec![server.base.clone()],
            secret,
            4,
            Instant::now() + Duration::from_millis(300),
        )
        .await
    };
    assert!(!before.is_empty() && !after.is_empty());

    let bundle = dir.join("rotated.bundle");
    let export = |args: &[&str]| {
        let out = auditgate(&dir, &db.url)
            .args(["log", "export", "--out"])
            .arg(&bundle)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let verify = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_auditgate-verify"))
            .arg(&bundle)
            .args(["--key", key])
            .output()
            .unwrap()
    };
    let verifies_with_both = |what: &str| {
        for key in [&original, &current] {
            let out = verify(key);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what} with {key}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            agrees(&bundle, key, 0, what);
        }
    };
    // Thinned (the README's command) and with every checkpoint, from the original key's era
    // through the hand-over to the current key's: either key verifies all of it.
    export(&[]);
    verifies_with_both("the whole log, thinned");
    export(&["--all-checkpoints"]);
    verifies_with_both("the whole log, every checkpoint");
    // The hand-over checkpoint carries both signatures.
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("checkpoint") && l.matches('\u{2014}').count() == 2)
    );
    assert!(text.lines().any(|l| l.starts_with(r#"{"type":"handover""#)));
    export(&["--project", "shop"]);
    verifies_with_both("the project bundle");
    let rotation: u64 = rotated["entry"].as_u64().unwrap();
    export(&["--from", &(rotation + 1).to_string()]);
    verifies_with_both("a range after the hand-over");
    export(&["--from", "1", "--to", &rotation.to_string()]);
    verifies_with_both("a range before the hand-over");

    // A key that is neither, or a hand-over line removed, is refused.
    let stranger =
        auditgate::ledger::note::SignerKey::from_seed("auditgate.local/audit-log", [7; 32])
            .unwrap()
            .verifier()
            .to_string();
    export(&[]);
    assert_eq!(verify(&stranger).status.code(), Some(1));
    agrees(&bundle, &stranger, 1, "a stranger's key");
    let without: String = std::fs::read_to_string(&bundle)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(r#"{"type":"handover""#))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bundle, without).unwrap();
    assert_eq!(verify(&original).status.code(), Some(1));
    assert_eq!(verify(&current).status.code(), Some(1));
    agrees(&bundle, &original, 1, "no hand-over line");
    agrees(&bundle, &current, 1, "no hand-over line");

    // Range exports across the rotation: many from/to pairs, each verified with either key
    // by the library the binaries share (the binaries were run on three of them above).
    let settings = auditgate::config::DatabaseSettings {
        url: db.url.clone(),
        ..auditgate::config::Settings::defaults().database
    };
    let store = auditgate::store::connect(&settings).await.unwrap();
    let origin = auditgate::config::Settings::defaults().audit.origin;
    let sizes: Vec<u64> = store
        .checkpoints(1, u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|(size, _)| size)
        .collect();
    let last = *sizes.last().unwrap();
    let keys = [
        auditgate::ledger::note::VerifierKey::parse(&original).unwrap(),
        auditgate::ledger::note::VerifierKey::parse(&current).unwrap(),
    ];
    let mut froms: Vec<u64> = vec![0, 1, 2, 3, rotation - 1, rotation, rotation + 1, last - 1];
    froms.extend((0..last).step_by((last as usize / 7).max(1)));
    let mut checked = 0;
    for &from in &froms {
        for to in [
            None,
            Some(rotation + 1),
            Some(last / 2),
            Some(from + 1),
            Some(from + 5),
        ] {
            let Ok(export) =
                auditgate::audit::export::Export::log(store.clone(), &origin, from, to, Some(3))
                    .await
            else {
                continue; // no signed size in range: the export says so
            };
            let lines = export.collect().await.unwrap();
            let text = auditgate::audit::export::to_text(&lines);
            if checked % 3 == 0 {
                let file = dir.join("range.bundle");
                std::fs::write(&file, &text).unwrap();
                for key in [&original, &current] {
                    agrees(&file, key, 0, &format!("from {from} to {to:?}"));
                }
            }
            for key in &keys {
                let report = auditgate::ledger::bundle::verify_text(&text, vec![key.clone()], None)
                    .unwrap_or_else(|e| panic!("from {from} to {to:?} with {key}: {e}"));
                assert_eq!(report.from, from);
                assert!(sizes.contains(&report.to));
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} ranges exported");
}

#[tokio::test]
async fn the_operations_log_has_a_line_per_request_naming_its_route_but_no_end_users_id() {
    let db = fresh_db(Backend::Sqlite, "oplog").await.unwrap();
    let dir = db.dir.path().to_owned();
    let secret = create_project(&dir, &db.url);
    let server = serve(&dir, &db.url);
    let client = reqwest::Client::new();
    let shop = format!("{}/api/v1/projects/shop", server.base);
    // An end user's id in a query string, in a path, on a refused call and on no route at all.
    let calls = [
        (
            format!("{shop}/events?distinct_id=alice%40example.com"),
            true,
            200,
        ),
        (format!("{shop}/profiles/alice%40example.com"), true, 404),
        (
            format!("{shop}/events?distinct_id=alice%40example.com"),
            false,
            401,
        ),
        (
            format!("{}/nowhere/alice@example.com", server.base),
            false,
            404,
        ),
    ];
    let mut ids = Vec::new();
    for (url, with_secret, status) in &calls {
        let mut req = client.get(url);
        if *with_secret {
            req = req.bearer_auth(&secret);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), *status, "{url}");
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    let line_of = |id: &str| -> Option<Value> {
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "request" && l["span"]["request_id"] == id)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ids.iter().any(|id| line_of(id).is_none()) {
        assert!(
            Instant::now() < deadline,
            "{:#?}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<Value> = ids.iter().map(|id| line_of(id).unwrap()).collect();
    let expected = [
        ("/api/v1/projects/{project}/events", 200),
        ("/api/v1/projects/{project}/profiles/{distinct_id}", 404),
        ("/api/v1/projects/{project}/events", 401),
        ("(no route)", 404),
    ];
    for (line, (route, status)) in lines.iter().zip(expected) {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["span"]["method"], "GET", "{line}");
        assert_eq!(line["span"]["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    }
    let principal = lines[0]["span"]["principal"].as_str().unwrap();
    assert!(principal.starts_with("service_account:"), "{principal}");
    assert!(lines[2]["span"].get("principal").is_none(), "{}", lines[2]);
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("alice"),
        "an end user's id in the operations log:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log written to a pipe"
    );
}
