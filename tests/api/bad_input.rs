//! Every kind of bad input gets a clear 4xx problem, never a 500, and loses nothing stored.

use serde_json::json;

use crate::helpers::{Backend, assert_problem, fresh_db, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    let body = assert_problem(app.import_raw("[{\"event\": ").await, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));
    assert_problem(app.import_raw("42").await, 400).await;
    assert_problem(app.import_raw("[]").await, 400).await;
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let app = spawn_app().await;
    let mut e = app.event("Buy", "u1", "i1");
    e["properties"]["time"] = json!("yesterday");
    let body = assert_problem(app.import(&json!([e])).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "properties.time");
    let mut e = app.event("Buy", "u1", "i1");
    e["properties"] = json!(["not", "an", "object"]);
    let body = assert_problem(app.import(&json!([e])).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "properties");
}

#[tokio::test]
async fn unknown_projects_are_refused_not_revealed() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/api/v1/projects/nowhere/events").await, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("events:read"));
    assert_problem(app.get("/api/v1/projects/nowhere/profiles/u1").await, 403).await;
    assert_problem(app.get("/api/v1/projects/Not%20A%20Slug/events").await, 400).await;
}

#[tokio::test]
async fn oversized_bodies_are_a_413() {
    let db = fresh_db(Backend::Sqlite, "oversized").await.unwrap();
    let mut settings = test_settings(&db);
    settings.server.max_body_bytes = 64 * 1024;
    let app = spawn_with(settings, db).await;
    let big = "x".repeat(100 * 1024);
    assert_problem(
        app.import_raw(format!("[{{\"event\": \"{big}\"}}]")).await,
        413,
    )
    .await;
    let r = app
        .client
        .post(format!("{}/track", app.address))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(r, 413).await;
}

#[tokio::test]
async fn more_than_2000_records_is_a_413() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..2001)
        .map(|i| app.event("Buy", "u1", &format!("i{i}")))
        .collect();
    let body = assert_problem(app.import(&json!(batch)).await, 413).await;
    assert!(body["detail"].as_str().unwrap().contains("2000"));
    assert!(app.all_events().await.is_empty());
    let ok: Vec<_> = (0..2000)
        .map(|i| app.event("Buy", "u1", &format!("i{i}")))
        .collect();
    assert_eq!(app.import(&json!(ok)).await.status(), 200);
}

#[tokio::test]
async fn events_without_distinct_id_are_refused() {
    let app = spawn_app().await;
    let mut e = app.event("Buy", "u1", "i1");
    e["properties"]
        .as_object_mut()
        .unwrap()
        .remove("distinct_id");
    let body = assert_problem(app.import(&json!([e])).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "properties.distinct_id");
    let mut e = app.event("Buy", "", "i1");
    e["properties"]["distinct_id"] = json!("   ");
    assert_problem(app.import(&json!([e])).await, 400).await;
}

#[tokio::test]
async fn events_far_in_the_future_are_refused() {
    let app = spawn_app().await;
    let mut e = app.event("Buy", "u1", "i1");
    e["properties"]["time"] = json!(app.now_secs() + 2 * 3600);
    let body = assert_problem(app.import(&json!([e])).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "properties.time");
    assert!(
        body["failed_records"][0]["message"]
            .as_str()
            .unwrap()
            .contains("future")
    );
    let mut e = app.event("Buy", "u1", "i2");
    e["properties"]["time"] = json!(app.now_secs() + 600);
    assert_eq!(
        app.import(&json!([e])).await.status(),
        200,
        "a little clock skew is fine"
    );
}

#[tokio::test]
async fn invalid_utf8_is_a_400() {
    let app = spawn_app().await;
    let mut bytes = b"[{\"event\": \"".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    bytes.extend_from_slice(b"\"}]");
    let body = assert_problem(app.import_raw(bytes.clone()).await, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("UTF-8"));
    let r = app
        .client
        .post(format!("{}/track", app.address))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
}

#[tokio::test]
async fn deeply_nested_properties_are_refused_without_harm() {
    let app = spawn_app().await;
    let mut e = app.event("Buy", "u1", "i1");
    e["properties"]["deep"] = json!({"a": {"b": {"c": {"d": 1}}}});
    let body = assert_problem(
        app.import(&json!([e, app.event("Ok", "u1", "i2")])).await,
        400,
    )
    .await;
    assert_eq!(body["num_records_imported"], 1);
    // Far deeper than any parser should recurse: refused as malformed, not a crash.
    let bomb = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    assert_problem(app.import_raw(bomb).await, 400).await;
    assert_eq!(app.get_anonymous("/healthz").await.status(), 200);
    assert_eq!(app.all_events().await.len(), 1);
}

#[tokio::test]
async fn bad_query_parameters_are_400s() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/projects/shop/events?limit=5000",
        "/api/v1/projects/shop/events?limit=0",
        "/api/v1/projects/shop/events?limit=ten",
        "/api/v1/projects/shop/events?cursor=garbage!",
        "/api/v1/projects/shop/events?from=last-tuesday",
        "/api/v1/projects/shop/events?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
        "/api/v1/projects/shop/events/count?group_by=week",
    ] {
        assert_problem(app.get(path).await, 400).await;
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404_problems() {
    let app = spawn_app().await;
    assert_problem(app.get_anonymous("/no/such/route").await, 404).await;
    let r = app
        .client
        .delete(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404).await;
}

/// PostgreSQL refuses a NUL character in text, SQLite stores it: each id and name the service
/// stores as text is refused with a NUL on both, before anything is written, and the rest of
/// the store is untouched.
async fn nul_characters_are_refused(backend: Backend, test: &str) {
    let Some(app) = crate::helpers::spawn_app_on(backend, test).await else {
        return;
    };
    assert_eq!(
        app.import(&json!([app.event("Buy", "u1", "ok")]))
            .await
            .status(),
        200
    );
    let mut named = app.event("Bu\u{0}y", "u1", "i1");
    let body = assert_problem(app.import(&json!([named.clone()])).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "event", "{body}");
    named["event"] = json!("Buy");
    named["properties"]["$insert_id"] = json!("i\u{0}1");
    let body = assert_problem(app.import(&json!([named])).await, 400).await;
    assert_eq!(
        body["failed_records"][0]["field"], "properties.$insert_id",
        "{body}"
    );
    // A browser's batch: its good event is stored, the other refused by name.
    let tracked: Vec<_> = [("Buy", "t0"), ("Bu\u{0}y", "t1")]
        .into_iter()
        .map(|(name, id)| {
            let mut e = app.event(name, "u1", id);
            e["properties"]["token"] = json!(app.token());
            e
        })
        .collect();
    let body = assert_problem(app.post_form_plain("/track", &json!(tracked)).await, 400).await;
    assert_eq!(body["failed_records"][0]["field"], "event", "{body}");
    // Groups likewise, by key and by id.
    let group = |key: &str, id: &str| json!({"$token": app.token(), "$group_key": key, "$group_id": id, "$set": {"a": 1}});
    let groups = json!([
        group("company", "acme"),
        group("com\u{0}pany", "acme"),
        group("company", "ac\u{0}me")
    ]);
    let body = assert_problem(app.post_form_plain("/groups", &groups).await, 400).await;
    let fields: Vec<_> = body["failed_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["$group_key", "$group_id"], "{body}");
    assert_eq!(
        app.get("/api/v1/projects/shop/groups/company/acme")
            .await
            .status(),
        200
    );
    // A NUL inside a property value is JSON text's escape, stored and read back as sent.
    let mut valued = app.event("Buy", "u1", "v1");
    valued["properties"]["note"] = json!("a\u{0}b");
    assert_eq!(app.import(&json!([valued])).await.status(), 200);
    let events = app.all_events().await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().any(|e| e["properties"]["note"] == "a\u{0}b"),
        "{events:?}"
    );
}

#[tokio::test]
async fn nul_characters_are_refused_on_sqlite() {
    nul_characters_are_refused(Backend::Sqlite, "nul_characters_are_refused_on_sqlite").await;
}

#[tokio::test]
async fn nul_characters_are_refused_on_postgres() {
    nul_characters_are_refused(Backend::Postgres, "nul_characters_are_refused_on_postgres").await;
}
