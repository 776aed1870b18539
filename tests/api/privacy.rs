//! Data-subject rights end to end: exports, erasure (also from the SQLite file's bytes),
//! property deletion, anonymisation, second approval, cancellation, jobs across a restart,
//! opt-outs, consent, and soft-deleted projects. The log holds pseudonyms only and verifies.

use std::sync::Arc;
use std::time::Duration;

use auditgate::clock::{Clock, ManualClock};
use auditgate::config::Settings;
use auditgate::domain::ProjectId;
use auditgate::ledger::entry::{Action, Entry, Outcome};
use auditgate::startup::Application;
use serde_json::{Value, json};

use crate::grants::{app, grant, log, person, to_user};
use crate::helpers::{TestApp, assert_problem};
use crate::signin::Browser;

const SHOP: &str = "/api/v1/projects/shop";

/// An owner and a data-protection officer on shop.
async fn team(app: &TestApp, idp: &crate::fake_idp::FakeIdp) -> (Browser, Browser) {
    let (owner, _) = person(app, idp, "olga", &["owners"]).await;
    let (dpo, dpo_id) = person(app, idp, "dora", &[]).await;
    let g = grant(&owner, to_user(&dpo_id, "data_protection_officer", "shop")).await;
    assert_eq!(g.status(), 201);
    (owner, dpo)
}

static NEXT_INSERT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn event(app: &TestApp, who: &str, n: usize, extra: Value) -> Value {
    let insert_id = NEXT_INSERT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut props = json!({"distinct_id": who, "time": app.now_secs() - 600 + n as i64, "$insert_id": format!("i{insert_id}"), "plan": "pro"});
    for (k, v) in extra.as_object().unwrap() {
        props[k] = v.clone();
    }
    json!({"event": "Buy", "properties": props})
}

async fn import_for(app: &TestApp, who: &str, n: usize, extra: Value) {
    let events: Vec<Value> = (0..n).map(|i| event(app, who, i, extra.clone())).collect();
    let r = app.import(&json!(events)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn set_profile(app: &TestApp, who: &str, props: Value) {
    let r = app
        .post_form(
            "/engage",
            &json!([{"$token": app.token(), "$distinct_id": who, "$set": props}]),
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// Polls a request until it reaches a final state.
async fn finished(b: &Browser, path: &str) -> Value {
    for _ in 0..300 {
        let r: Value = b.get(path).await.json().await.unwrap();
        if ["SUCCESS", "FAILURE", "REVOKED", "NOT_FOUND"].contains(&r["status"].as_str().unwrap()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("request at {path} never finished");
}

async fn request(b: &Browser, kind: &str, body: Value) -> (String, Value) {
    let r = b
        .post(&format!("{SHOP}/subject-requests/{kind}"), body)
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let made: Value = r.json().await.unwrap();
    let path = format!(
        "{SHOP}/subject-requests/{kind}/{}",
        made["id"].as_str().unwrap()
    );
    (path, made)
}

async fn events_of(app: &TestApp, who: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("{SHOP}/events?distinct_id={who}&limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

/// Whether `text` holds `id` as a word of its own: inside a longer run of letters, digits and
/// hyphens it is part of something else (a short id like `d-7` turns up in one random request
/// id in sixty-four, as in `…2d-7b…`).
fn names_in_clear(text: &str, id: &str) -> bool {
    let part_of_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    text.match_indices(id).any(|(at, _)| {
        !part_of_word(text[..at].chars().next_back())
            && !part_of_word(text[at + id.len()..].chars().next())
    })
}

#[test]
fn an_id_is_found_in_clear_only_as_a_word_of_its_own() {
    assert!(names_in_clear(r#"{"distinct_id":"d-7"}"#, "d-7"));
    assert!(names_in_clear(r#"{"who":"$device:d-7"}"#, "d-7"));
    assert!(!names_in_clear(r#"{"request":"0f3a12d-7b4e"}"#, "d-7"));
    assert!(!names_in_clear(r#"{"n":"cust-70"}"#, "cust-7"));
}

/// Every entry's details and the log verifies; no entry names `ids` in clear.
async fn checked_log(app: &TestApp, ids: &[&str]) -> Vec<Entry> {
    let entries = log(app).await;
    for e in &entries {
        for id in ids {
            assert!(
                !names_in_clear(&e.details, id),
                "{id} appears in clear in a {} entry: {}",
                e.action.as_str(),
                e.details
            );
        }
    }
    let (text, _) = app.export_log().await;
    auditgate::ledger::bundle::verify_text(&text, vec![app.verifier_key()], None).unwrap();
    entries
}

fn details(e: &Entry) -> Value {
    serde_json::from_str(&e.details).unwrap()
}

#[tokio::test]
async fn an_export_holds_exactly_the_persons_data_with_sensitive_values_redacted() {
    let (app, idp) = app(|_| {}).await;
    let (owner, dpo) = team(&app, &idp).await;
    import_for(&app, "cust-7", 3, json!({"email": "c7@example.com"})).await;
    import_for(&app, "cust-8", 2, json!({})).await;
    set_profile(&app, "cust-7", json!({"$name": "Seven", "tier": "gold"})).await;
    let mark = owner
        .client
        .put(format!(
            "{}{SHOP}/sensitive-properties/event/email",
            owner.base
        ))
        .header("x-csrf-token", owner.csrf.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(mark.status(), 200);

    // An analyst may not ask; the DPO may.
    let (analyst, analyst_id) = person(&app, &idp, "anna", &[]).await;
    grant(&owner, to_user(&analyst_id, "analyst", "shop")).await;
    assert_problem(
        analyst
            .post(
                &format!("{SHOP}/subject-requests/exports"),
                json!({"distinct_ids": ["cust-7"], "reason": "DSR-1"}),
            )
            .await,
        403,
    )
    .await;
    let (path, made) = request(
        &dpo,
        "exports",
        json!({"distinct_ids": ["cust-7"], "reason": "DSR-1", "compliance_type": "GDPR"}),
    )
    .await;
    assert_eq!(made["kind"], "export");
    assert!(
        made.get("distinct_ids").is_none(),
        "ids are never echoed back"
    );
    let done = finished(&dpo, &path).await;
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["events"], 3);
    assert_eq!(done["profiles"], 1);
    // Operators see the job among the requests by kind and state.
    let jobs = r#"auditgate_subject_requests{kind="export",state="SUCCESS"}"#;
    assert_eq!(crate::health::metric(&app, jobs).await, Some(1.0));
    let doc: Value = dpo
        .get(done["download"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let subjects = doc["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["distinct_id"], "cust-7");
    assert_eq!(subjects[0]["profile"]["properties"]["tier"], "gold");
    let events = subjects[0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "exactly the person's events");
    assert!(events.iter().all(|e| e["distinct_id"] == "cust-7"));
    assert!(
        events
            .iter()
            .all(|e| e["properties"]["email"] == "[redacted]")
    );
    assert_eq!(doc["sensitive_redacted"], true);

    let entries = checked_log(&app, &["cust-7", "cust-8"]).await;
    let download = entries
        .iter()
        .find(|e| e.action == Action::SubjectsExport && e.outcome == Outcome::Allowed)
        .expect("the download is logged");
    assert_eq!(download.subjects.len(), 1, "one pseudonym");
    assert_eq!(details(download)["sensitive_revealed"], false);
    // After the document went out, what it held: one profile and three events.
    let streamed = entries
        .iter()
        .find(|e| e.action == Action::SubjectsExport && details(e)["streamed_records"].is_u64())
        .expect("what the download streamed is logged");
    assert_eq!(details(streamed)["streamed_records"], 4);
    assert_eq!(details(streamed)["complete"], true);
    assert_eq!(streamed.records, 4);
    assert!(streamed.seq > download.seq);
    let created = entries
        .iter()
        .find(|e| e.action == Action::SubjectsRequest && details(e)["change"] == "create")
        .unwrap();
    assert_eq!(created.subjects, download.subjects);
    assert!(
        entries
            .iter()
            .any(|e| e.action == Action::SubjectsExport && e.outcome == Outcome::Denied),
        "the analyst's refusal is logged"
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erasure_removes_the_person_from_every_api_and_from_the_sqlite_file() {
    let (app, idp) = app(|_| {}).await;
    let (_, dpo) = team(&app, &idp).await;
    let who = "cust-erase-9f3b";
    import_for(&app, who, 4, json!({"note": "secret-marker-5d1e"})).await;
    import_for(&app, "cust-stays", 2, json!({})).await;
    set_profile(&app, who, json!({"$email": "profile-marker-77aa"})).await;
    // An earlier export request names the person too: erasure must scrub it.
    let (export, _) = request(
        &dpo,
        "exports",
        json!({"distinct_ids": [who], "reason": "DSR-2"}),
    )
    .await;
    finished(&dpo, &export).await;

    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": [who], "reason": "DSR-3"}),
    )
    .await;
    let done = finished(&dpo, &path).await;
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["events"], 4);
    assert_eq!(done["profiles"], 1);

    assert!(events_of(&app, who).await.is_empty());
    assert_problem(app.get(&format!("{SHOP}/profiles/{who}")).await, 404).await;
    assert_eq!(events_of(&app, "cust-stays").await.len(), 2);
    let count: Value = app
        .get(&format!("{SHOP}/events/count"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["total"], 2);
    let old_export: Value = dpo
        .get(&format!("{export}/download"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        old_export["subjects"],
        json!([]),
        "the export no longer names them"
    );

    let entries = checked_log(&app, &[who, "cust-stays"]).await;
    let erase: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.action == Action::SubjectsErase && e.outcome == Outcome::Allowed)
        .collect();
    assert_eq!(erase.len(), 2, "one entry before, one after");
    assert_eq!(details(erase[0])["stage"], "start");
    assert_eq!(erase[0].subjects.len(), 1);
    assert_eq!(details(erase[1])["stage"], "done");
    assert_eq!(details(erase[1])["pseudonym_salts_deleted"], 1);

    // Nothing of the person is left in the database's files, free pages and WAL included.
    let dir = app._db.dir.path();
    for name in ["auditgate.db", "auditgate.db-wal"] {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            continue;
        };
        for marker in [who, "secret-marker-5d1e", "profile-marker-77aa"] {
            assert!(!contains(&bytes, marker), "{marker} is still in {name}");
        }
        if name == "auditgate.db" {
            assert!(
                contains(&bytes, "cust-stays"),
                "the scan can see stored ids"
            );
        }
    }
}

#[tokio::test]
async fn deleting_one_property_leaves_the_others_and_anonymising_keeps_the_counts() {
    let (app, idp) = app(|_| {}).await;
    let (_, dpo) = team(&app, &idp).await;
    import_for(
        &app,
        "cust-p",
        3,
        json!({"email": "p@example.com", "$device_id": "dev-1"}),
    )
    .await;
    set_profile(
        &app,
        "cust-p",
        json!({"email": "p@example.com", "tier": "gold"}),
    )
    .await;
    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["cust-p"], "reason": "DSR-4", "kind": "erase_property", "property": "email"}),
    )
    .await;
    let done = finished(&dpo, &path).await;
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["events"], 3);
    let events = events_of(&app, "cust-p").await;
    assert_eq!(events.len(), 3);
    for e in &events {
        assert!(e["properties"].get("email").is_none());
        assert_eq!(e["properties"]["plan"], "pro", "other properties stay");
    }
    let profile: Value = app
        .get(&format!("{SHOP}/profiles/cust-p"))
        .await
        .json()
        .await
        .unwrap();
    assert!(profile["properties"].get("email").is_none());
    assert_eq!(profile["properties"]["tier"], "gold");

    // Anonymise: the person's events survive under a random id, without the dropped properties.
    import_for(&app, "cust-q", 2, json!({"$device_id": "dev-2"})).await;
    let before: Value = app
        .get(&format!("{SHOP}/events/count"))
        .await
        .json()
        .await
        .unwrap();
    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["cust-p", "cust-q"], "reason": "DSR-5", "kind": "anonymize", "drop_properties": ["plan"]}),
    )
    .await;
    assert_eq!(finished(&dpo, &path).await["status"], "SUCCESS");
    let after: Value = app
        .get(&format!("{SHOP}/events/count"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["total"], before["total"], "aggregate counts survive");
    assert!(events_of(&app, "cust-p").await.is_empty());
    assert!(events_of(&app, "cust-q").await.is_empty());
    let all = app.all_events().await;
    let anon: Vec<&Value> = all
        .iter()
        .filter(|e| e["distinct_id"].as_str().unwrap().starts_with("anon-"))
        .collect();
    assert_eq!(anon.len(), 5);
    let ids: std::collections::BTreeSet<&str> = anon
        .iter()
        .map(|e| e["distinct_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "one random id per person, so unique counts survive"
    );
    for e in anon {
        assert!(e["properties"].get("plan").is_none());
        assert!(e["properties"].get("$device_id").is_none());
    }
    assert_problem(app.get(&format!("{SHOP}/profiles/cust-p")).await, 404).await;
    let entries = checked_log(&app, &["cust-p", "cust-q"]).await;
    let anonymised = entries
        .iter()
        .find(|e| e.action == Action::SubjectsAnonymize && details(e)["stage"] == "start")
        .unwrap();
    assert_eq!(anonymised.subjects.len(), 2);
}

#[tokio::test]
async fn large_erasures_wait_for_a_second_person_and_unstarted_requests_cancel() {
    let (app, idp) = app(|s| s.privacy.approval_above_subjects = 1).await;
    let (owner, dpo) = team(&app, &idp).await;
    let (dpo2, dpo2_id) = person(&app, &idp, "dana", &[]).await;
    grant(&owner, to_user(&dpo2_id, "data_protection_officer", "shop")).await;
    import_for(&app, "cust-a", 1, json!({})).await;
    import_for(&app, "cust-b", 1, json!({})).await;

    let two = json!({"distinct_ids": ["cust-a", "cust-b"], "reason": "DSR-6"});
    let (path, made) = request(&dpo, "deletions", two.clone()).await;
    assert_eq!(made["needs_approval"], true);
    assert_eq!(made["status"], "PENDING");
    assert_problem(dpo.post(&format!("{path}/approve"), json!({})).await, 403).await;
    assert_eq!(
        dpo.get(&path).await.json::<Value>().await.unwrap()["status"],
        "PENDING"
    );
    assert_eq!(
        events_of(&app, "cust-a").await.len(),
        1,
        "nothing erased yet"
    );
    let ok = dpo2.post(&format!("{path}/approve"), json!({})).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(finished(&dpo, &path).await["status"], "SUCCESS");
    assert!(events_of(&app, "cust-a").await.is_empty());
    assert_problem(dpo2.post(&format!("{path}/approve"), json!({})).await, 409).await;
    assert_problem(dpo.delete(&path).await, 409).await;

    // A request awaiting approval is cancellable; a cancelled one never runs.
    import_for(&app, "cust-c", 1, json!({})).await;
    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["cust-c", "cust-d"], "reason": "DSR-7"}),
    )
    .await;
    let cancelled: Value = dpo.delete(&path).await.json().await.unwrap();
    assert_eq!(cancelled["status"], "REVOKED");
    assert_problem(dpo2.post(&format!("{path}/approve"), json!({})).await, 409).await;
    assert_eq!(events_of(&app, "cust-c").await.len(), 1);

    // Someone with nothing stored: NOT_FOUND. Too many ids, or none: 422.
    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["nobody-here"], "reason": "DSR-8"}),
    )
    .await;
    assert_eq!(finished(&dpo, &path).await["status"], "NOT_FOUND");
    let many: Vec<String> = (0..2001).map(|i| format!("u{i}")).collect();
    assert_problem(
        dpo.post(
            &format!("{SHOP}/subject-requests/deletions"),
            json!({"distinct_ids": many, "reason": "DSR-9"}),
        )
        .await,
        422,
    )
    .await;
    assert_problem(
        dpo.post(
            &format!("{SHOP}/subject-requests/deletions"),
            json!({"distinct_ids": ["x"]}),
        )
        .await,
        422,
    )
    .await;

    let entries = checked_log(&app, &["cust-a", "cust-b", "cust-c", "cust-d"]).await;
    let self_approval = entries
        .iter()
        .find(|e| e.action == Action::SubjectsRequest && e.outcome == Outcome::Denied)
        .expect("the self-approval is logged as refused");
    assert_eq!(details(self_approval)["change"], "approve");
}

#[tokio::test]
async fn mixpanels_gdpr_api_paths_work_with_a_project_token() {
    let (app, idp) = app(|_| {}).await;
    let (_, dpo) = team(&app, &idp).await;
    import_for(&app, "cust-m", 2, json!({})).await;
    let token = app.token().to_owned();
    let r: Value = dpo
        .post(
            &format!("/api/app/data-deletions/v3.0/?token={token}"),
            json!({"distinct_ids": ["cust-m"], "compliance_type": "CCPA"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "ok");
    let task = r["results"]["task_id"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..300 {
        status = dpo
            .get(&format!(
                "/api/app/data-deletions/v3.0/{task}?token={token}"
            ))
            .await
            .json()
            .await
            .unwrap();
        if status["results"]["status"] == "SUCCESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["results"]["status"], "SUCCESS");
    assert_eq!(status["results"]["request"]["compliance_type"], "CCPA");
    assert!(events_of(&app, "cust-m").await.is_empty());
    assert_problem(
        dpo.get(&format!(
            "/api/app/data-deletions/v3.0/{task}?token=not-a-token"
        ))
        .await,
        404,
    )
    .await;
    checked_log(&app, &["cust-m"]).await;
}

/// A second process over the same database, as after a restart.
async fn restart(app: &TestApp, settings: Settings) -> auditgate::store::SharedStore {
    let store = auditgate::store::connect(&settings.database).await.unwrap();
    let clock = ManualClock::new(app.clock.now());
    let second = Application::build_with_store(settings, Arc::new(clock), store.clone())
        .await
        .unwrap();
    tokio::spawn(second.run_until_stopped());
    store
}

#[tokio::test]
async fn jobs_left_pending_or_started_finish_after_a_restart() {
    let mut settings = None;
    let (app, idp) = app(|s| {
        s.privacy.run_jobs = false;
        settings = Some(s.clone());
    })
    .await;
    let (_, dpo) = team(&app, &idp).await;
    import_for(&app, "cust-r1", 2, json!({})).await;
    import_for(&app, "cust-r2", 3, json!({})).await;
    let (waiting, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["cust-r1"], "reason": "DSR-10"}),
    )
    .await;
    let (interrupted, made) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["cust-r2"], "reason": "DSR-11"}),
    )
    .await;
    // No worker runs in this process: both stay PENDING. Mark one as a crash mid-job would
    // leave it: STARTED, its data still there.
    let url = app._db.url.clone();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE subject_requests SET state = 'STARTED' WHERE id = ?")
        .bind(made["id"].as_str().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        dpo.get(&waiting).await.json::<Value>().await.unwrap()["status"],
        "PENDING"
    );
    assert_problem(dpo.delete(&interrupted).await, 409).await;

    let mut s = settings.unwrap();
    s.privacy.run_jobs = true;
    s.server.bind = "127.0.0.1:0".into();
    let _second = restart(&app, s).await;
    assert_eq!(finished(&dpo, &waiting).await["status"], "SUCCESS");
    let done = finished(&dpo, &interrupted).await;
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["events"], 3);
    assert!(events_of(&app, "cust-r1").await.is_empty());
    assert!(events_of(&app, "cust-r2").await.is_empty());
    checked_log(&app, &["cust-r1", "cust-r2"]).await;
}

async fn service_put(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .put(format!("{}{path}", app.address))
        .bearer_auth(app.secret())
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn opted_out_and_unconsented_events_are_dropped_counted_and_never_stored() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = team(&app, &idp).await;
    // The service opts a person out through the API...
    let r = service_put(
        &app,
        &format!("{SHOP}/subjects/cust-out/opt-out"),
        json!({"source": "privacy-centre"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let events = vec![
        event(&app, "cust-out", 0, json!({})),
        event(&app, "cust-in", 1, json!({})),
    ];
    let r: Value = app.import(&json!(events)).await.json().await.unwrap();
    assert_eq!(r["num_records_imported"], 1);
    assert_eq!(r["num_records_dropped"], 1);
    // ...and an SDK does it with a property: that event and every later one are dropped.
    let r = app
        .post_form(
            "/track",
            &json!([{"event": "Settings", "properties": {"token": app.token(), "distinct_id": "cust-sdk", "$opt_out": true, "time": app.now_secs()}}]),
        )
        .await;
    assert_eq!(r.status(), 200);
    import_for(&app, "cust-sdk", 2, json!({})).await;
    let r = app
        .post_form(
            "/engage",
            &json!([{"$token": app.token(), "$distinct_id": "cust-out", "$set": {"tier": "gold"}}]),
        )
        .await;
    assert_eq!(r.status(), 200);
    let stored: Vec<String> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["distinct_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, ["cust-in"]);
    assert_problem(app.get(&format!("{SHOP}/profiles/cust-out")).await, 404).await;

    // Consent required: the marker or a recorded consent; a recorded withdrawal wins.
    let r = owner
        .client
        .patch(format!("{}{SHOP}", owner.base))
        .header("x-csrf-token", owner.csrf.clone().unwrap())
        .json(&json!({"consent_required": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let batch = vec![
        event(&app, "cust-marked", 10, json!({"$consent": true})),
        event(&app, "cust-silent", 11, json!({})),
        event(&app, "cust-false", 12, json!({"$consent": false})),
    ];
    let r: Value = app.import(&json!(batch)).await.json().await.unwrap();
    assert_eq!(r["num_records_imported"], 1);
    assert_eq!(r["num_records_dropped"], 2);
    let r = service_put(
        &app,
        &format!("{SHOP}/subjects/cust-silent/consent"),
        json!({"source": "banner-v2"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let withdraw = app
        .client
        .delete(format!(
            "{}{SHOP}/subjects/cust-marked/consent",
            app.address
        ))
        .bearer_auth(app.secret())
        .json(&json!({"source": "support-ticket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(withdraw.status(), 200);
    let batch = vec![
        event(&app, "cust-marked", 20, json!({"$consent": true})),
        event(&app, "cust-silent", 21, json!({})),
    ];
    let r: Value = app.import(&json!(batch)).await.json().await.unwrap();
    assert_eq!(r["num_records_imported"], 1);
    assert_eq!(events_of(&app, "cust-silent").await.len(), 1);
    assert_eq!(
        events_of(&app, "cust-marked").await.len(),
        1,
        "only the first"
    );
    let prefs: Value = app
        .get(&format!("{SHOP}/subjects/cust-marked/preferences"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prefs["consent"], false);
    assert_eq!(prefs["consent_history"][0]["source"], "support-ticket");
    assert!(prefs["consent_history"][0]["at"].is_string());
    let prefs: Value = app
        .get(&format!("{SHOP}/subjects/cust-out/preferences"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prefs["opted_out"], true);
    assert_eq!(prefs["opt_out_source"], "privacy-centre");

    let entries = checked_log(
        &app,
        &[
            "cust-out",
            "cust-in",
            "cust-sdk",
            "cust-marked",
            "cust-silent",
        ],
    )
    .await;
    let opt_outs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.action == Action::SubjectsOptOut)
        .collect();
    assert_eq!(opt_outs.len(), 2, "one from the API, one from the SDK");
    assert!(opt_outs.iter().all(|e| e.subjects.len() == 1));
    let dropped: u64 = entries
        .iter()
        .filter(|e| e.action == Action::EventsIngest && e.outcome == Outcome::Allowed)
        .map(|e| {
            let d = details(e)["dropped"].clone();
            d["opt_out"].as_u64().unwrap_or(0) + d["no_consent"].as_u64().unwrap_or(0)
        })
        .sum();
    assert_eq!(dropped, 1 + 1 + 2 + 2 + 1, "every dropped event is counted");
    assert!(
        entries
            .iter()
            .filter(|e| e.action == Action::SubjectsConsent)
            .all(|e| e.subjects.len() == 1)
    );
}

#[tokio::test]
async fn a_deleted_project_is_unreachable_restorable_then_purged_after_the_grace_period() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = team(&app, &idp).await;
    import_for(&app, "cust-x", 3, json!({})).await;
    let deleted: Value = owner.delete(SHOP).await.json().await.unwrap();
    assert!(deleted["restorable_until"].is_string());
    assert_problem(app.get(&format!("{SHOP}/events")).await, 404).await;
    assert_problem(app.get(&format!("{SHOP}/events/count")).await, 404).await;
    assert_problem(
        app.import(&json!([event(&app, "cust-x", 9, json!({}))]))
            .await,
        404,
    )
    .await;
    let r = app
        .post_form(
            "/track",
            &json!([{"event": "e", "properties": {"token": app.token(), "distinct_id": "cust-x"}}]),
        )
        .await;
    assert_eq!(r.status(), 401, "its token no longer names a project");
    assert_problem(owner.get(SHOP).await, 404).await;

    let restored = owner.post(&format!("{SHOP}/restore"), json!({})).await;
    assert_eq!(restored.status(), 200);
    assert_eq!(events_of(&app, "cust-x").await.len(), 3, "restored whole");
    assert_problem(owner.post(&format!("{SHOP}/restore"), json!({})).await, 409).await;

    owner.delete(SHOP).await;
    app.clock.advance_millis(59 * 86_400_000);
    // Weeks later, sessions long over: another owner signs in.
    let (owner, _) = person(&app, &idp, "otto", &["owners"]).await;
    let sweep: Value = owner
        .post("/api/v1/admin/retention/sweep", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sweep["purged"], json!([]), "still within the grace period");
    app.clock.advance_millis(2 * 86_400_000);
    let (owner, _) = person(&app, &idp, "oscar", &["owners"]).await;
    let sweep: Value = owner
        .post("/api/v1/admin/retention/sweep", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sweep["purged"], json!(["shop"]));
    assert_problem(owner.post(&format!("{SHOP}/restore"), json!({})).await, 404).await;
    let shop = ProjectId::parse("shop").unwrap();
    let everything = auditgate::domain::Timestamp::from_millis(i64::MAX);
    assert_eq!(
        app.store
            .count_events_before(&shop, everything)
            .await
            .unwrap(),
        0
    );
    let entries = checked_log(&app, &["cust-x"]).await;
    let kinds: Vec<Action> = entries
        .iter()
        .filter(|e| e.project.as_deref() == Some("shop"))
        .map(|e| e.action)
        .filter(|a| {
            [
                Action::ProjectDelete,
                Action::ProjectRestore,
                Action::ProjectPurge,
            ]
            .contains(a)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Action::ProjectDelete,
            Action::ProjectRestore,
            Action::ProjectDelete,
            Action::ProjectPurge
        ]
    );
}

#[tokio::test]
async fn a_persons_merged_ids_are_read_exported_and_erased_together() {
    let (app, idp) = app(|_| {}).await;
    let (_, dpo) = team(&app, &idp).await;
    let t = app.now_secs() - 600;
    let ev = |name: &str, props: Value| json!({"event": name, "properties": props});
    // Before sign-in on a device, after sign-in (simplified ID merge), and an older SDK's
    // anonymous id merged by $identify. Someone else, and an alias that would join two
    // people who already have ids of their own, which is refused.
    let batch = json!([
        ev(
            "Viewed",
            json!({"distinct_id": "$device:d-7", "$device_id": "d-7", "time": t, "$insert_id": "m1"})
        ),
        ev(
            "Signed In",
            json!({"distinct_id": "cust-merged", "$device_id": "d-7", "$user_id": "cust-merged", "time": t + 1, "$insert_id": "m2"})
        ),
        ev(
            "Opened",
            json!({"distinct_id": "legacy-anon-1", "time": t + 2, "$insert_id": "m3"})
        ),
        ev(
            "$identify",
            json!({"distinct_id": "cust-merged", "$anon_distinct_id": "legacy-anon-1", "time": t + 3, "$insert_id": "m4"})
        ),
        ev(
            "Viewed",
            json!({"distinct_id": "$device:d-8", "$device_id": "d-8", "$user_id": "cust-other", "time": t + 4, "$insert_id": "m5"})
        ),
        ev(
            "$create_alias",
            json!({"distinct_id": "cust-other", "alias": "cust-merged", "time": t + 5, "$insert_id": "m6"})
        ),
    ]);
    let r = app.import(&batch).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Whichever id is asked, the person's events come together; the other person's do not.
    let names = |events: Vec<Value>| {
        let mut n: Vec<String> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    let theirs = ["$identify", "Opened", "Signed In", "Viewed"];
    for id in ["cust-merged", "%24device%3Ad-7", "legacy-anon-1"] {
        assert_eq!(names(events_of(&app, id).await), theirs, "asked by {id}");
    }
    assert_eq!(
        names(events_of(&app, "cust-other").await),
        ["$create_alias", "Viewed"]
    );
    let count: Value = app
        .get(&format!("{SHOP}/events/count?distinct_id=legacy-anon-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["total"], 4);
    // A profile set under the canonical id is found by the device's id.
    set_profile(&app, "cust-merged", json!({"plan": "gold"})).await;
    let p: Value = app
        .get(&format!("{SHOP}/profiles/%24device%3Ad-7"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["distinct_id"], "cust-merged");
    assert_eq!(p["properties"]["plan"], "gold");

    // The log names every id the read covered, by pseudonym.
    let entries = checked_log(&app, &["cust-merged", "d-7", "legacy-anon-1"]).await;
    let read = entries
        .iter()
        .rev()
        .find(|e| e.action == Action::EventsCount)
        .unwrap();
    assert_eq!(details(read)["merged_ids"], 2);
    assert_eq!(read.subjects.len(), 3);

    // One export or erasure asked by one id covers the person's every id.
    let (export, made) = request(
        &dpo,
        "exports",
        json!({"distinct_ids": ["$device:d-7"], "reason": "DSR-8"}),
    )
    .await;
    assert_eq!(made["subject_count"], 3, "{made}");
    finished(&dpo, &export).await;
    let exported: Value = dpo
        .get(&format!("{export}/download"))
        .await
        .json()
        .await
        .unwrap();
    let events_exported: usize = exported["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(events_exported, 4, "{exported}");

    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["legacy-anon-1"], "reason": "DSR-9"}),
    )
    .await;
    let done = finished(&dpo, &path).await;
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["events"], 4);
    for id in ["cust-merged", "%24device%3Ad-7", "legacy-anon-1"] {
        assert!(events_of(&app, id).await.is_empty(), "asked by {id}");
    }
    assert_eq!(events_of(&app, "cust-other").await.len(), 2);
    // The links went with them: the same ids seen again are strangers to each other.
    let again = json!([ev(
        "Opened",
        json!({"distinct_id": "legacy-anon-1", "time": t + 9, "$insert_id": "m9"})
    ),]);
    assert_eq!(app.import(&again).await.status(), 200);
    assert_eq!(names(events_of(&app, "legacy-anon-1").await), ["Opened"]);
    assert!(events_of(&app, "cust-merged").await.is_empty());
    let erase = log(&app)
        .await
        .into_iter()
        .find(|e| e.action == Action::SubjectsErase && details(e)["stage"] == "start")
        .unwrap();
    assert_eq!(
        erase.subjects.len(),
        3,
        "the start names everyone it erases"
    );
}

#[tokio::test]
async fn group_profiles_naming_a_person_are_exported_with_them_and_lose_them_on_erasure() {
    let (app, idp) = app(|_| {}).await;
    let (_, dpo) = team(&app, &idp).await;
    let t = app.token().to_owned();
    let set = |id: &str, props: Value| json!({"$token": t, "$group_key": "company", "$group_id": id, "$set": props});
    // acme names the person twice; beta names someone else; gamma holds a longer id that
    // contains theirs as text, which is not them. The person has no events or profile.
    let batch = json!([
        set(
            "acme",
            json!({"owner": "cust-g", "name": "Acme", "members": ["cust-g", "cust-h"]})
        ),
        set("beta", json!({"owner": "cust-h"})),
        set("gamma", json!({"owner": "cust-g2", "note": "cust-g%"})),
    ]);
    assert_eq!(app.post_form("/groups", &batch).await.status(), 200);
    let group = |id: &'static str| {
        let app = &app;
        async move {
            let g: Value = app
                .get(&format!("{SHOP}/groups/company/{id}"))
                .await
                .json()
                .await
                .unwrap();
            g["properties"].clone()
        }
    };

    // Group profiles are data about them too: an export finds them (not NOT_FOUND).
    let (export, _) = request(
        &dpo,
        "exports",
        json!({"distinct_ids": ["cust-g"], "reason": "DSR-10"}),
    )
    .await;
    assert_eq!(finished(&dpo, &export).await["status"], "SUCCESS");
    let exported: Value = dpo
        .get(&format!("{export}/download"))
        .await
        .json()
        .await
        .unwrap();
    let groups = &exported["subjects"][0]["group_profiles"];
    assert_eq!(groups.as_array().unwrap().len(), 1, "{exported}");
    assert_eq!(groups[0]["group_id"], "acme");
    assert_eq!(groups[0]["properties"]["name"], "Acme");

    // Erasure takes them out of acme and leaves everything else as it was.
    let (path, _) = request(
        &dpo,
        "deletions",
        json!({"distinct_ids": ["cust-g"], "reason": "DSR-11"}),
    )
    .await;
    assert_eq!(finished(&dpo, &path).await["status"], "SUCCESS");
    assert_eq!(
        group("acme").await,
        json!({"name": "Acme", "members": ["cust-h"]})
    );
    assert_eq!(group("beta").await, json!({"owner": "cust-h"}));
    assert_eq!(
        group("gamma").await,
        json!({"owner": "cust-g2", "note": "cust-g%"})
    );
    let done = log(&app)
        .await
        .into_iter()
        .find(|e| e.action == Action::SubjectsErase && details(e)["stage"] == "done")
        .unwrap();
    assert_eq!(details(&done)["group_profiles_changed"], 1);
}
