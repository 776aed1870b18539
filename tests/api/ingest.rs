use std::io::Write;

use auditgate::clock::Clock;
use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{assert_mixpanel_refusal, assert_problem, spawn_app};

#[tokio::test]
async fn track_stores_an_event_and_answers_like_mixpanel() {
    let app = spawn_app().await;
    let event = json!({"event": "Signed Up", "properties": {"token": app.token(), "distinct_id": "u1", "plan": "pro"}});
    let r = app.post_form("/track", &event).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": 1, "error": null})
    );
    let events = app.all_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "Signed Up");
    assert_eq!(events[0]["distinct_id"], "u1");
    assert_eq!(
        events[0]["properties"],
        json!({"plan": "pro"}),
        "token and reserved fields are not properties"
    );
    assert_eq!(
        events[0]["time_ms"],
        app.clock.now().millis(),
        "time defaults to now on /track"
    );
}

#[tokio::test]
async fn track_accepts_raw_json_lists_and_base64_data() {
    let app = spawn_app().await;
    let batch = json!([
        {"event": "a", "properties": {"token": app.token(), "distinct_id": "u1"}},
        {"event": "b", "properties": {"token": app.token(), "distinct_id": "u2"}},
    ]);
    let r = app
        .client
        .post(format!("{}/track", app.address))
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b64 = base64::engine::general_purpose::STANDARD.encode(
        json!({"event": "c", "properties": {"token": app.token(), "distinct_id": "u3"}})
            .to_string(),
    );
    let r = app
        .client
        .post(format!("{}/track", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("data", b64)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "1",
        "without verbose=1 Mixpanel answers a bare 1"
    );
    assert_eq!(app.all_events().await.len(), 3);
}

#[tokio::test]
async fn gzip_bodies_are_accepted() {
    let app = spawn_app().await;
    let batch = json!([
        app.event("Zipped", "u1", "z1"),
        app.event("Zipped", "u2", "z2")
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch.to_string().as_bytes()).unwrap();
    let r = app
        .client
        .post(format!("{}/import", app.address))
        .basic_auth(&app.project.service_account.name, Some(app.secret()))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["num_records_imported"], 2);
    assert_eq!(app.all_events().await.len(), 2);
}

#[tokio::test]
async fn import_answers_like_mixpanels_import_api() {
    let app = spawn_app().await;
    let r = app
        .import(&json!([
            app.event("Buy", "u1", "i1"),
            app.event("Buy", "u2", "i2")
        ]))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": 200, "num_records_imported": 2, "status": "OK"})
    );
}

#[tokio::test]
async fn import_accepts_the_legacy_secret_as_user_name() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(format!("{}/import", app.address))
        .basic_auth(app.secret(), Some(""))
        .body(json!([app.event("Buy", "u1", "i1")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn import_deduplicates_on_insert_id_per_project() {
    let app = spawn_app().await;
    let batch = json!([
        app.event("Buy", "u1", "same"),
        app.event("Buy", "u1", "same"),
        app.event("Buy", "u1", "other")
    ]);
    assert_eq!(app.import(&batch).await.status(), 200);
    assert_eq!(
        app.import(&batch).await.status(),
        200,
        "a retried batch is accepted"
    );
    assert_eq!(
        app.all_events().await.len(),
        2,
        "each $insert_id is stored once"
    );

    // The same $insert_id in another project is another event.
    let other = app.other_project("bank").await;
    let mut e = app.event("Buy", "u1", "same");
    e["properties"]["token"] = json!(other.project.ingest_token);
    let r = app
        .client
        .post(format!("{}/import", app.address))
        .basic_auth(&other.service_account.name, Some(other.secret.expose()))
        .body(json!([e]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let n: Value = app
        .client
        .get(format!("{}/api/v1/projects/bank/events/count", app.address))
        .bearer_auth(other.secret.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(n["total"], 1);
}

#[tokio::test]
async fn a_bad_record_never_loses_the_good_ones() {
    let app = spawn_app().await;
    let batch = json!([
        app.event("Good", "u1", "g1"),
        {"event": "Bad", "properties": {"time": app.now_secs(), "$insert_id": "b1"}},
        app.event("Good", "u2", "g2"),
        {"event": 42, "properties": {"distinct_id": "u3", "time": app.now_secs(), "$insert_id": "b2"}},
    ]);
    let body = assert_problem(app.import(&batch).await, 400).await;
    assert_eq!(body["code"], 400);
    assert_eq!(body["num_records_imported"], 2);
    let failed = body["failed_records"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["index"], 1);
    assert_eq!(failed[0]["$insert_id"], "b1");
    assert_eq!(failed[0]["field"], "properties.distinct_id");
    assert_eq!(failed[1]["index"], 3);
    assert_eq!(failed[1]["field"], "event");
    let names: Vec<_> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(names, vec![json!("Good"), json!("Good")]);
}

#[tokio::test]
async fn engage_applies_profile_operations() {
    let app = spawn_app().await;
    let t = app.token().to_owned();
    let updates = [
        json!({"$token": t, "$distinct_id": "u1", "$set": {"plan": "free", "age": 40}}),
        json!({"$token": t, "$distinct_id": "u1", "$set_once": {"plan": "pro", "first_seen": "today"}}),
        json!({"$token": t, "$distinct_id": "u1", "$add": {"logins": 2}}),
        json!({"$token": t, "$distinct_id": "u1", "$union": {"tags": ["a", "b"]}}),
        json!({"$token": t, "$distinct_id": "u1", "$unset": ["age"]}),
    ];
    for u in &updates {
        assert_eq!(app.post_form("/engage", u).await.status(), 200, "{u}");
    }
    let p: Value = app
        .get("/api/v1/projects/shop/profiles/u1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        p["properties"],
        json!({"plan": "free", "first_seen": "today", "logins": 2, "tags": ["a", "b"]})
    );

    app.post_form(
        "/engage",
        &json!({"$token": t, "$distinct_id": "u1", "$delete": ""}),
    )
    .await;
    assert_problem(app.get("/api/v1/projects/shop/profiles/u1").await, 404).await;
}

#[tokio::test]
async fn unknown_or_missing_project_tokens_are_refused() {
    let app = spawn_app().await;
    let e = json!({"event": "a", "properties": {"token": "not-a-token", "distinct_id": "u"}});
    let body = assert_problem(app.post_form_plain("/track", &e).await, 401).await;
    assert_eq!(body["failed_records"][0]["field"], "properties.token");
    // Asked verbose=1, the same refusal comes in Mixpanel's shape, which the SDKs read.
    let error = assert_mixpanel_refusal(app.post_form("/track", &e).await, 401).await;
    assert_eq!(error, "no record carries a valid project token");
    let e = json!({"event": "a", "properties": {"distinct_id": "u"}});
    assert_problem(app.post_form_plain("/track", &e).await, 401).await;
    let u = json!({"$token": "nope", "$distinct_id": "u", "$set": {"a": 1}});
    assert_problem(app.post_form_plain("/engage", &u).await, 401).await;
    assert_mixpanel_refusal(app.post_form("/engage", &u).await, 401).await;
    assert!(app.all_events().await.is_empty());
}

#[tokio::test]
async fn import_needs_valid_credentials_for_the_right_project() {
    let app = spawn_app().await;
    let batch = json!([app.event("Buy", "u1", "i1")]).to_string();
    let url = format!("{}/import", app.address);
    let r = app
        .client
        .post(&url)
        .body(batch.clone())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    let r = app
        .client
        .post(&url)
        .basic_auth("shop-service", Some("ags_wrong"))
        .body(batch.clone())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    let r = app
        .client
        .post(&url)
        .basic_auth("someone-else", Some(app.secret()))
        .body(batch.clone())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    app.other_project("bank").await;
    let r = app
        .client
        .post(format!("{url}?project_id=bank"))
        .basic_auth("shop-service", Some(app.secret()))
        .body(batch.clone())
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("events:ingest"));
    // A token of another project inside the records is refused record by record.
    let mut e = app.event("Buy", "u1", "i2");
    e["properties"]["token"] = json!("0123456789abcdef0123456789abcdef");
    let body = assert_problem(app.import(&json!([e])).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "properties.token");
    assert!(app.all_events().await.is_empty());
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    assert!(
        app.store
            .revoke_token(&app.project.token_id, app.clock.now())
            .await
            .unwrap()
    );
    let body = assert_problem(app.get("/api/v1/projects/shop/events").await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn compressed_bodies_are_bounded_decoded_and_checked_as_they_stream() {
    let app = spawn_app().await;
    let post = |encoding: &'static str, body: Vec<u8>| {
        app.client
            .post(format!("{}/import", app.address))
            .bearer_auth(app.secret())
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    // 16 MiB of zeros in 16 KiB: refused once the decompressed bytes pass the limit.
    let body = assert_problem(post("gzip", crate::cli::gzip_bomb(16)).await.unwrap(), 413).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("once decompressed"),
        "{body}"
    );
    // Cut short, or not what it says: 400.
    let batch = json!([app.event("Zipped", "u1", "d1")]).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch.as_bytes()).unwrap();
    let mut cut = gz.finish().unwrap();
    cut.truncate(cut.len() - 6);
    assert_problem(post("gzip", cut).await.unwrap(), 400).await;
    assert_problem(post("gzip", batch.clone().into_bytes()).await.unwrap(), 400).await;
    assert_problem(post("br", batch.clone().into_bytes()).await.unwrap(), 400).await;
    // deflate (zlib, as HTTP means it) is read like gzip.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(batch.as_bytes()).unwrap();
    let r = post("deflate", z.finish().unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.all_events().await.len(), 1);
}
