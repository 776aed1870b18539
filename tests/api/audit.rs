//! The audit log as users meet it: what gets logged, failing closed, append-only tables,
//! checkpoints and proofs over HTTP, and bundles that verify offline.

use std::time::{Duration, Instant};

use auditgate::ledger::bundle::{Scope, verify_text};
use auditgate::ledger::checkpoint;
use auditgate::ledger::entry::{Action, ActorKind, Outcome};
use auditgate::ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{Backend, assert_problem, fresh_db, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn reads_ingestion_denials_and_bad_tokens_are_logged_without_personal_data() {
    let app = spawn_app().await;
    assert_eq!(
        app.import(&json!([
            app.event("Buy", "alice@example.com", "i1"),
            app.event("Buy", "bob", "i2")
        ]))
        .await
        .status(),
        200
    );
    let r = app
        .get("/api/v1/projects/shop/events?distinct_id=alice%40example.com&event=Buy")
        .await;
    assert_eq!(r.status(), 200);
    app.other_project("bank").await;
    assert_problem(app.get("/api/v1/projects/bank/events").await, 403).await;
    let bad = app
        .client
        .get(format!("{}/api/v1/projects/shop/events", app.address))
        .bearer_auth("ags_forged")
        .send()
        .await
        .unwrap();
    assert_problem(bad, 401).await;
    let forged = json!({"event": "x", "properties": {"token": "0000", "distinct_id": "u"}});
    assert_problem(app.post_form_plain("/track", &forged).await, 401).await;
    app.settle().await;

    let (bundle, entries) = app.export_log().await;
    let actions: Vec<_> = entries.iter().map(|e| (e.action, e.outcome)).collect();
    assert_eq!(
        actions,
        [
            (Action::LogInit, Outcome::Allowed),
            (Action::EventsIngest, Outcome::Allowed),
            (Action::EventsQuery, Outcome::Allowed),
            (Action::EventsQuery, Outcome::Denied),
            (Action::AuthRejected, Outcome::Denied),
            (Action::AuthRejected, Outcome::Denied),
        ]
    );
    let ingest = &entries[1];
    assert_eq!(
        (ingest.records, ingest.project.as_deref()),
        (2, Some("shop"))
    );
    assert_eq!(ingest.actor.kind, ActorKind::ServiceAccount);
    let read = &entries[2];
    assert_eq!(read.records, 1);
    assert_eq!(
        read.subjects.len(),
        1,
        "the person filtered on appears as a pseudonym"
    );
    assert_eq!(read.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(read.request_id.is_some());
    let details: Value = serde_json::from_str(&read.details).unwrap();
    assert_eq!(details["event"], "Buy");
    let denied: Value = serde_json::from_str(&entries[3].details).unwrap();
    assert_eq!(denied["missing_permission"], "events:read");
    assert_eq!(entries[3].project.as_deref(), Some("bank"));
    assert!(
        !bundle.contains("alice"),
        "no end-user id in clear anywhere in the log"
    );
    let all_bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
    assert!(!all_bytes.windows(5).any(|w| w == b"alice"));

    // The same person, read again, gets the same pseudonym; another person another.
    let u = json!({"$token": app.token(), "$distinct_id": "alice@example.com", "$set": {"plan": "pro"}});
    app.post_form("/engage", &u).await;
    app.get("/api/v1/projects/shop/profiles/alice@example.com")
        .await;
    app.get("/api/v1/projects/shop/events?distinct_id=bob")
        .await;
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let n = entries.len();
    assert_eq!(
        entries[n - 2].subjects,
        read.subjects,
        "profile read of the same person"
    );
    assert_ne!(entries[n - 1].subjects, read.subjects);

    let report = verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
    assert_eq!((report.entries, report.scope), (6, Scope::Log));
}

/// Base64 hashes from a proof response.
fn hashes(v: &Value) -> Vec<[u8; 32]> {
    let items = v.as_array().unwrap().iter();
    items
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

/// Makes every insert into the log (and the readiness probe's write) fail, as a full or
/// read-only disk would, while reads work.
async fn break_the_log(url: &str) -> sqlx::SqliteConnection {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    for sql in [
        "CREATE TRIGGER fail_closed_test BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        "CREATE TRIGGER fail_closed_probe BEFORE UPDATE ON health_probe BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn
}

#[tokio::test]
async fn no_data_leaves_when_the_log_cannot_be_written() {
    let app = spawn_app().await;
    assert_eq!(
        app.import(&json!([app.event("Buy", "alice", "i1")]))
            .await
            .status(),
        200
    );
    let mut conn = break_the_log(&app._db.url).await;

    let r = app.get("/api/v1/projects/shop/events").await;
    let body = assert_problem(r, 503).await;
    assert!(
        body.get("events").is_none() && !body.to_string().contains("alice"),
        "no data in a 503: {body}"
    );
    assert_problem(app.get("/api/v1/projects/shop/events/count").await, 503).await;
    // Nothing is written without its trace either.
    assert_problem(
        app.import(&json!([app.event("Buy", "carol", "i2")])).await,
        503,
    )
    .await;
    assert_problem(app.get_anonymous("/readyz").await, 503).await;

    for sql in [
        "DROP TRIGGER fail_closed_test",
        "DROP TRIGGER fail_closed_probe",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    assert_eq!(
        app.get_anonymous("/readyz").await.status(),
        200,
        "healthy again after a good write"
    );
    assert_eq!(
        app.all_events().await.len(),
        1,
        "the refused batch was not stored"
    );
    app.settle().await;
    let (bundle, _) = app.export_log().await;
    verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
}

#[tokio::test]
async fn a_locked_database_gives_503_within_the_write_timeout_not_a_hang() {
    let db = fresh_db(Backend::Sqlite, "locked").await.unwrap();
    let mut settings = test_settings(&db);
    settings.audit.write_timeout_ms = 500;
    let app = spawn_with(settings, db).await;
    let mut conn = sqlx::SqliteConnection::connect(&app._db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    let start = Instant::now();
    let r = app.get("/api/v1/projects/shop/events").await;
    assert_problem(r, 503).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        start.elapsed()
    );
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
}

#[tokio::test]
async fn log_tables_refuse_update_and_delete() {
    let app = spawn_app().await;
    app.settle().await;
    let mut conn = sqlx::SqliteConnection::connect(&app._db.url).await.unwrap();
    for sql in [
        "UPDATE audit_entries SET action = 'x' WHERE seq = 0",
        "DELETE FROM audit_entries",
        "UPDATE audit_checkpoints SET note = 'x'",
        "DELETE FROM audit_checkpoints",
        // REPLACE deletes the old row without firing the delete trigger.
        "REPLACE INTO audit_entries SELECT seq, project_id, project_seq, time_ms, 'x', leaf_hash, link, bytes FROM audit_entries WHERE seq = 0",
        "INSERT OR REPLACE INTO audit_entries SELECT seq, project_id, project_seq, time_ms, 'x', leaf_hash, link, bytes FROM audit_entries WHERE seq = 0",
        "REPLACE INTO audit_checkpoints SELECT size, 'forged', created_at FROM audit_checkpoints LIMIT 1",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn checkpoints_and_proofs_are_served_for_live_checks() {
    let app = spawn_app().await;
    app.settle().await;
    let first = app
        .get_anonymous("/api/v1/audit/checkpoint")
        .await
        .text()
        .await
        .unwrap();
    let key = [app.verifier_key()];
    let cp1 = checkpoint::open(&first, &key).unwrap().checkpoint;
    assert_eq!(cp1.origin, app.origin);
    for i in 0..5 {
        app.import(&json!([app.event("Buy", "u", &format!("i{i}"))]))
            .await;
    }
    app.settle().await;
    let second = app
        .get_anonymous("/api/v1/audit/checkpoint")
        .await
        .text()
        .await
        .unwrap();
    let cp2 = checkpoint::open(&second, &key).unwrap().checkpoint;
    assert!(cp2.size > cp1.size);

    let c: Value = app
        .get_anonymous(&format!(
            "/api/v1/audit/proof/consistency?from={}",
            cp1.size
        ))
        .await
        .json()
        .await
        .unwrap();
    let proof = hashes(&c["proof"]);
    verify_consistency(cp1.size, cp2.size, &proof, &cp1.root, &cp2.root).unwrap();

    let (_, entries) = app.export_log().await;
    let seq = 2u64;
    let p: Value = app
        .get_anonymous(&format!("/api/v1/audit/proof/inclusion?seq={seq}"))
        .await
        .json()
        .await
        .unwrap();
    let proof = hashes(&p["proof"]);
    let leaf = leaf_hash(&entries[seq as usize].encode());
    verify_inclusion(&leaf, seq, cp2.size, &proof, &cp2.root).unwrap();
    assert_problem(
        app.get_anonymous("/api/v1/audit/proof/inclusion?seq=999")
            .await,
        400,
    )
    .await;
    assert_problem(
        app.get_anonymous("/api/v1/audit/proof/consistency?from=0")
            .await,
        400,
    )
    .await;
}

#[tokio::test]
async fn api_export_needs_audit_export_and_the_refusal_is_logged() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/api/v1/audit/export?project=shop").await, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("audit:export"));
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let last = entries.last().unwrap();
    assert_eq!(
        (last.action, last.outcome),
        (Action::AuditExport, Outcome::Denied)
    );
}

#[tokio::test]
async fn concurrent_requests_share_commits_without_gaps() {
    let app = spawn_app().await;
    let mut handles = Vec::new();
    for i in 0..64 {
        let client = app.client.clone();
        let url = format!(
            "{}/api/v1/projects/shop/events?limit={}",
            app.address,
            i + 1
        );
        let secret = app.secret().to_owned();
        handles.push(tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    app.settle().await;
    let (bundle, entries) = app.export_log().await;
    assert_eq!(entries.len(), 65);
    assert!(entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    let report = verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
    assert!(
        report.checkpoints < 65,
        "requests shared commits: {} checkpoints",
        report.checkpoints
    );
    // Checkpoints skipped while requests waited: once they stop, the last commit is signed,
    // and what the signer remembers beside its key is exactly the latest checkpoint stored.
    let (size, note) = app.store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(size, 65);
    let memory = app._db.dir.path().join("audit-signing.checkpoint");
    assert_eq!(std::fs::read_to_string(memory).unwrap(), note);
}

#[tokio::test]
async fn forgetting_a_persons_salt_unlinks_them_while_the_log_still_verifies() {
    let app = spawn_app().await;
    let u = json!({"$token": app.token(), "$distinct_id": "alice", "$set": {"plan": "pro"}});
    app.post_form("/engage", &u).await;
    assert_eq!(
        app.get("/api/v1/projects/shop/profiles/alice")
            .await
            .status(),
        200
    );
    app.settle().await;
    let (_, before) = app.export_log().await;
    let old = before.last().unwrap().subjects.clone();
    assert_eq!(old.len(), 1);

    // What an erasure does to the log's side: delete the salt (issue 6 adds the request flow).
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    let keys = auditgate::audit::keys::PseudonymKey::load_or_create(
        &app._db.dir.path().join("pseudonym.key"),
    )
    .unwrap();
    let alice = auditgate::domain::DistinctId::parse("alice").unwrap();
    let salt = app
        .store
        .forget_subject(
            &shop,
            &keys.lookup(&shop, &alice),
            auditgate::domain::Timestamp::from_millis(0),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        keys.pseudonym(&salt, &shop, &alice),
        old[0],
        "the auditor's link, before erasure"
    );
    assert!(
        app.store
            .forget_subject(
                &shop,
                &keys.lookup(&shop, &alice),
                auditgate::domain::Timestamp::from_millis(0)
            )
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        app.get("/api/v1/projects/shop/profiles/alice")
            .await
            .status(),
        200
    );
    app.settle().await;
    let (bundle, after) = app.export_log().await;
    assert_ne!(
        after.last().unwrap().subjects,
        old,
        "a new salt: the old entries link to no one"
    );
    assert_eq!(after[..before.len()], before[..], "no entry was touched");
    verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
}

#[tokio::test]
async fn postgres_log_tables_refuse_update_delete_and_truncate() {
    let Some(app) =
        crate::helpers::spawn_app_on(Backend::Postgres, "postgres_log_tables_append_only").await
    else {
        return;
    };
    app.settle().await;
    let mut conn = sqlx::PgConnection::connect(&app._db.url).await.unwrap();
    for sql in [
        "UPDATE audit_entries SET action = 'x' WHERE seq = 0",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "UPDATE audit_checkpoints SET note = 'x'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
        "INSERT INTO audit_entries SELECT seq, project_id, project_seq, time_ms, 'x', leaf_hash, link, bytes FROM audit_entries WHERE seq = 0",
        "INSERT INTO audit_checkpoints SELECT size, 'forged', created_at FROM audit_checkpoints LIMIT 1",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn a_log_written_before_interior_hashes_were_kept_is_filled_in() {
    use auditgate::ledger::merkle::MerkleTree;
    let app = spawn_app().await;
    for i in 0..20 {
        app.get(&format!("/api/v1/projects/shop/events?distinct_id=u{i}"))
            .await;
    }
    app.settle().await;
    let mut conn = sqlx::SqliteConnection::connect(&app._db.url).await.unwrap();
    for sql in [
        "DROP TRIGGER audit_nodes_no_delete",
        "DELETE FROM audit_nodes",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let size = app.store.audit_head().await.unwrap().size();
    assert!(
        auditgate::audit::proofs::inclusion_proofs(app.store.as_ref(), &[3], size)
            .await
            .is_err(),
        "without the interior hashes there is no proof"
    );
    auditgate::audit::proofs::fill_in(app.store.as_ref())
        .await
        .unwrap();
    let tree = MerkleTree::from_leaves(app.store.audit_leaves(size).await.unwrap());
    for seq in [0, 3, size / 2, size - 1] {
        assert_eq!(
            auditgate::audit::proofs::inclusion_proofs(app.store.as_ref(), &[seq], size)
                .await
                .unwrap()[0],
            tree.inclusion_proof(seq, size).unwrap()
        );
    }
    assert_eq!(
        auditgate::audit::proofs::consistency_proof(app.store.as_ref(), 5, size)
            .await
            .unwrap(),
        tree.consistency_proof(5, size).unwrap()
    );
}

#[tokio::test]
async fn first_reads_of_a_new_person_agree_on_one_pseudonym_stored_with_the_entries() {
    let app = spawn_app().await;
    let project = auditgate::domain::ProjectId::parse("shop").unwrap();
    let person = auditgate::domain::DistinctId::parse("never-seen").unwrap();
    let lookup = app.audit.subject_lookup(&project, &person);
    assert_eq!(app.store.subject_salt("shop", &lookup).await.unwrap(), None);
    let reads = futures_util::future::join_all(
        (0..20).map(|_| app.get("/api/v1/projects/shop/events?distinct_id=never-seen")),
    )
    .await;
    assert!(reads.iter().all(|r| r.status() == 200));
    // Stored by the commits that carried the reads' entries, with no commit of its own.
    assert!(
        app.store
            .subject_salt("shop", &lookup)
            .await
            .unwrap()
            .is_some()
    );
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let named: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::EventsQuery)
        .map(|e| e.subjects.clone())
        .collect();
    assert_eq!(named.len(), 20);
    let expected = app.audit.pseudonym(&project, &person).await.unwrap();
    assert!(
        named.iter().all(|s| s == &vec![expected]),
        "every read names the one pseudonym"
    );
}

async fn page(b: &crate::signin::Browser, q: &str) -> reqwest::Response {
    b.get(&format!("/api/v1/audit/entries{q}")).await
}

#[tokio::test]
async fn auditors_read_the_log_decoded_a_page_at_a_time_within_their_scope() {
    use auditgate::config::GroupRoleSettings;
    let auditor_on = |group: &str, project: &str| GroupRoleSettings {
        group: group.into(),
        role: "auditor".into(),
        project: project.into(),
        review_by: None,
    };
    let mappings = vec![
        auditor_on("auditors", "*"),
        auditor_on("shop-auditors", "shop"),
    ];
    let (app, idp) = crate::grants::app(|s| s.access.group_roles.extend(mappings)).await;
    app.other_project("bank").await;
    app.import(&json!([app.event("Buy", "alice", "i1")])).await;
    app.get("/api/v1/projects/shop/events").await;
    app.get("/api/v1/projects/shop/events/count").await;
    let (all, _) = crate::grants::person(&app, &idp, "ada", &["auditors"]).await;
    let (shop, _) = crate::grants::person(&app, &idp, "sam", &["shop-auditors"]).await;
    let (nobody, _) = crate::grants::person(&app, &idp, "ned", &[]).await;

    // Everything, newest first, decoded: the same entries as an export, field for field.
    let r: Value = page(&all, "?limit=500").await.json().await.unwrap();
    let listed = r["entries"].as_array().unwrap().clone();
    assert!(r["next_cursor"].is_null(), "{r}");
    let (_, exported) = app.export_log().await;
    assert!(listed.len() >= 8, "{r}");
    for (json, entry) in listed.iter().zip(
        exported
            .iter()
            .rev()
            .skip_while(|e| e.seq > listed[0]["seq"].as_u64().unwrap()),
    ) {
        assert_eq!(json["seq"], entry.seq);
        assert_eq!(json["action"], entry.action.as_str());
        assert_eq!(json["actor_id"], entry.actor.id);
    }
    assert!(!r.to_string().contains("alice"), "no end-user id in clear");

    // Filters: project and action on the log's columns, outcome and actor from the entries.
    let r: Value = page(&all, "?project=shop&action=events.query")
        .await
        .json()
        .await
        .unwrap();
    let queries = r["entries"].as_array().unwrap();
    assert_eq!(queries.len(), 1, "{r}");
    assert_eq!(queries[0]["project"], "shop");
    let service = queries[0]["actor_id"].as_str().unwrap().to_owned();
    let r: Value = page(&all, &format!("?actor={service}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_id"] == service.as_str())
    );
    assert_eq!(
        r["entries"].as_array().unwrap().len(),
        3,
        "ingest, query, count: {r}"
    );

    // Pages: two at a time, each older than the last, none twice, until there are no more.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r: Value = page(&all, &format!("?limit=2{cursor}"))
            .await
            .json()
            .await
            .unwrap();
        let entries = r["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        seen.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
        match r["next_cursor"].as_u64() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    assert!(seen.len() >= listed.len());

    // Scope: an auditor of shop reads shop's entries, not the whole log nor bank's.
    assert_eq!(page(&shop, "?project=shop").await.status(), 200);
    assert_problem(page(&shop, "").await, 403).await;
    assert_problem(page(&shop, "?project=bank").await, 403).await;
    assert_problem(page(&nobody, "?project=shop").await, 403).await;
    // Bad input is a 400 naming the parameter.
    for q in [
        "?limit=0",
        "?limit=501",
        "?action=events.peek",
        "?outcome=maybe",
        "?project=Shop!",
        "?from=yesterday",
    ] {
        assert_problem(page(&all, q).await, 400).await;
    }

    // Reading the log is logged, with the filters; refusals too.
    let log = crate::grants::log(&app).await;
    let reads: Vec<_> = log
        .iter()
        .filter(|e| e.action == Action::AuditRead)
        .collect();
    let allowed = reads
        .iter()
        .filter(|e| e.outcome == Outcome::Allowed)
        .count();
    let denied = reads
        .iter()
        .filter(|e| e.outcome == Outcome::Denied)
        .count();
    assert!(allowed >= 5, "{allowed}");
    assert_eq!(denied, 3);
    let filtered = reads
        .iter()
        .find(|e| e.details.contains("events.query"))
        .expect("the filtered read");
    let details: Value = serde_json::from_str(&filtered.details).unwrap();
    assert_eq!(details["filters"]["action"], "events.query");
    assert_eq!(details["entries"], 1);
    assert_eq!(filtered.project.as_deref(), Some("shop"));
}
