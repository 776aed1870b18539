//! What an anonymous caller costs: repeated refusals are summarised in the log, and every
//! public and sign-in route is limited per client address.

use auditgate::ledger::bundle::verify_text;
use auditgate::ledger::entry::{Action, Outcome};
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem, fresh_db, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn a_thousand_bad_tokens_write_two_entries_not_a_thousand() {
    let app = spawn_app().await;
    app.settle().await;
    let before = app.export_log().await.1.len();
    let bad = json!({"event": "Buy", "properties": {"distinct_id": "u", "token": "not-a-token"}});
    for _ in 0..1000 {
        assert_eq!(app.post_form("/track", &bad).await.status(), 401);
    }
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let refused: Vec<_> = entries[before..]
        .iter()
        .filter(|e| e.action == Action::AuthRejected)
        .collect();
    assert_eq!(refused.len(), 1, "the first refusal is logged at once");
    assert_eq!(refused[0].client_ip.as_deref(), Some("127.0.0.1"));

    // A minute later the repeats become one summary entry.
    app.clock.advance_millis(61_000);
    app.audit.flush_refusals(false).await.unwrap();
    app.settle().await;
    let (bundle, entries) = app.export_log().await;
    let summary = entries
        .iter()
        .rfind(|e| e.action == Action::AuthRejected)
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Denied);
    assert_eq!(summary.records, 999);
    let details: Value = serde_json::from_str(&summary.details).unwrap();
    assert_eq!(details["summary"]["repeats"], 999);
    assert_eq!(details["reason"], "no record carries a valid project token");
    assert!(details["summary"]["first_ms"].as_i64() <= details["summary"]["last_ms"].as_i64());
    assert_eq!(
        entries.len() - before,
        2,
        "the first refusal and the summary"
    );
    verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
}

#[tokio::test]
async fn public_and_sign_in_routes_are_limited_per_client_address() {
    let db = fresh_db(Backend::Sqlite, "limits").await.unwrap();
    let mut settings = test_settings(&db);
    settings.server.rate_limit.public_per_second = 1;
    settings.server.rate_limit.public_burst = 5;
    settings.server.rate_limit.signin_per_minute = 1;
    settings.server.rate_limit.signin_burst = 3;
    let app = spawn_with(settings, db).await;
    app.settle().await;
    // Twenty at once: the burst of five passes (a sixth if a second went by), the rest wait.
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (
                app.client.clone(),
                format!("{}/api/v1/audit/checkpoint", app.address),
            );
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=6).contains(&passed), "{statuses:?}");
    assert_eq!(
        passed + statuses.iter().filter(|s| **s == 429).count(),
        20,
        "{statuses:?}"
    );
    // The budget is spent; a refill is one per second, so of a few calls now one is refused.
    let mut r = app
        .get_anonymous("/api/v1/audit/proof/inclusion?seq=0")
        .await;
    for _ in 0..3 {
        if r.status() == 429 {
            break;
        }
        r = app
            .get_anonymous("/api/v1/audit/proof/inclusion?seq=0")
            .await;
    }
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body = assert_problem(r, 429).await;
    assert!(body["detail"].as_str().unwrap().contains("try again"));
    // Routes of signed-in people and services are not limited by address.
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    // Liveness is never refused.
    assert_eq!(app.get_anonymous("/healthz").await.status(), 200);

    let password = || {
        app.client
            .post(format!("{}/auth/password", app.address))
            .header("accept", "application/json")
            .json(&json!({"email": "x@example.com", "password": "wrong"}))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(password().await.unwrap().status().as_u16());
    }
    assert!(statuses[..3].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(&statuses[3..], &[429, 429]);
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let db = fresh_db(Backend::Sqlite, "proxies").await.unwrap();
    let mut settings = test_settings(&db);
    settings.server.rate_limit.public_per_second = 1;
    settings.server.rate_limit.public_burst = 2;
    let get = |app: &crate::helpers::TestApp, client: &str| {
        app.client
            .get(format!("{}/api/v1/audit/checkpoint", app.address))
            .header("x-forwarded-for", client)
            .send()
    };
    // Untrusted: a header a client made up changes nothing.
    let app = spawn_with(settings.clone(), db).await;
    for (i, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let s = get(&app, client).await.unwrap().status().as_u16();
        assert_eq!(s == 429, i >= 2, "spoofed {client}: {s}");
    }

    // Behind a trusted proxy, each client has its own budget, and the log names the client.
    let db = fresh_db(Backend::Sqlite, "proxies2").await.unwrap();
    settings.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    settings.database.url = db.url.clone();
    settings.audit.signing_key_file = db.dir.path().join("audit-signing.key");
    settings.audit.pseudonym_key_file = db.dir.path().join("pseudonym.key");
    let app = spawn_with(settings, db).await;
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        for _ in 0..2 {
            assert_ne!(get(&app, client).await.unwrap().status(), 429, "{client}");
        }
        assert_eq!(get(&app, client).await.unwrap().status(), 429, "{client}");
    }
    let bad = json!({"event": "Buy", "properties": {"distinct_id": "u", "token": "nope"}});
    let r = app
        .client
        .post(format!("{}/track", app.address))
        .header("x-forwarded-for", "198.51.100.9, 127.0.0.1")
        .form(&[("data", bad.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let refused = entries
        .iter()
        .rfind(|e| e.action == Action::AuthRejected)
        .unwrap();
    assert_eq!(refused.client_ip.as_deref(), Some("198.51.100.9"));
}

/// Sends a request head announcing `length` body bytes, then only `sent` of them, and keeps
/// the connection open; returns the stream (reading it yields the answer).
async fn partial_upload(address: &str, length: usize, sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /import HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

async fn status_of(mut s: tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ').nth(1).unwrap_or("0").parse().unwrap()
}

#[tokio::test]
async fn a_slow_body_is_cut_off_and_large_bodies_take_turns() {
    let db = fresh_db(Backend::Sqlite, "bodies").await.unwrap();
    let mut settings = test_settings(&db);
    settings.server.body_read_secs = 2;
    settings.server.max_large_bodies = 1;
    let app = spawn_with(settings, db).await;

    // A body that never finishes: 408 once its time is up, not a connection held for ever.
    let start = std::time::Instant::now();
    let slow = partial_upload(&app.address, 100, 10).await;
    assert_eq!(status_of(slow).await, 408);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));

    // One large upload at a time: while one trickles in, a second waits its turn, and a
    // small one is not held up at all.
    let hog = partial_upload(&app.address, 3 << 20, 1 << 20).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = tokio::spawn({
        let (client, url, secret) = (
            app.client.clone(),
            format!("{}/import", app.address),
            app.secret().to_owned(),
        );
        async move {
            client
                .post(url)
                .basic_auth(secret, Some(""))
                .header("content-type", "application/json")
                .body(vec![b' '; 2 << 20])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let small = app
        .import(&json!([app.event("Buy", "alice", "small-1")]))
        .await;
    assert_eq!(small.status(), 200, "a small body does not wait");
    assert_eq!(status_of(hog).await, 408);
    let second = second.await.unwrap();
    assert!(
        second != 503 && second != 408,
        "the second large body got its turn: {second}"
    );
}
