use serde_json::{Value, json};

use auditgate::clock::Clock;

use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_on};

const DAY_MS: i64 = 86_400_000;

/// Imports `n` events spread one minute apart, ending an hour ago, alternating two people.
async fn seed(app: &TestApp, n: usize) -> i64 {
    let start = app.clock.now().millis() - 3_600_000 - n as i64 * 60_000;
    let batch: Vec<_> = (0..n)
        .map(|i| {
            json!({"event": if i % 3 == 0 { "Buy" } else { "View" }, "properties": {
                "distinct_id": if i % 2 == 0 { "alice" } else { "bob" },
                "time": start + i as i64 * 60_000, "$insert_id": format!("e{i}"), "i": i}})
        })
        .collect();
    assert_eq!(app.import(&json!(batch)).await.status(), 200);
    start
}

#[tokio::test]
async fn pages_walk_every_event_once_in_time_order() {
    let app = spawn_app().await;
    seed(&app, 250).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page: Value = app
            .get(&format!("/api/v1/projects/shop/events?limit=100{cursor}"))
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["properties"]["i"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..250).collect::<Vec<_>>());
}

#[tokio::test]
async fn filters_narrow_by_person_event_and_time() {
    let app = spawn_app().await;
    let start = seed(&app, 30).await;
    let get = |q: String| {
        let app = &app;
        async move {
            let page: Value = app
                .get(&format!("/api/v1/projects/shop/events?{q}"))
                .await
                .json()
                .await
                .unwrap();
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["properties"]["i"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        get("distinct_id=bob".into()).await,
        (1..30).step_by(2).collect::<Vec<_>>()
    );
    assert_eq!(
        get("event=Buy".into()).await,
        (0..30).step_by(3).collect::<Vec<_>>()
    );
    assert_eq!(
        get(format!(
            "from={}&to={}",
            start + 10 * 60_000,
            start + 13 * 60_000
        ))
        .await,
        vec![10, 11, 12]
    );
    let rfc = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let q = format!(
        "from={}&to={}&distinct_id=alice",
        rfc(start + 10 * 60_000),
        rfc(start + 14 * 60_000)
    );
    assert_eq!(get(q.replace('+', "%2B")).await, vec![10, 12]);
}

#[tokio::test]
async fn counts_group_by_event_and_day() {
    let app = spawn_app().await;
    let now = app.clock.now().millis();
    let batch = json!([
        {"event": "Buy", "properties": {"distinct_id": "a", "time": now - 2 * DAY_MS, "$insert_id": "1"}},
        {"event": "Buy", "properties": {"distinct_id": "a", "time": now - DAY_MS, "$insert_id": "2"}},
        {"event": "View", "properties": {"distinct_id": "b", "time": now - DAY_MS, "$insert_id": "3"}},
    ]);
    assert_eq!(app.import(&batch).await.status(), 200);
    let c: Value = app
        .get("/api/v1/projects/shop/events/count")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["total"], 3);
    let c: Value = app
        .get("/api/v1/projects/shop/events/count?group_by=event")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        c["counts"],
        json!([{"key": "Buy", "count": 2}, {"key": "View", "count": 1}])
    );
    let c: Value = app
        .get("/api/v1/projects/shop/events/count?group_by=day")
        .await
        .json()
        .await
        .unwrap();
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    assert_eq!(
        c["counts"],
        json!([{"key": day(now - 2 * DAY_MS), "count": 1}, {"key": day(now - DAY_MS), "count": 2}])
    );
    let c: Value = app
        .get("/api/v1/projects/shop/events/count?group_by=event_day")
        .await
        .json()
        .await
        .unwrap();
    let (d1, d2) = (day(now - 2 * DAY_MS), day(now - DAY_MS));
    assert_eq!(c["group_by"], "event_day");
    assert_eq!(
        c["counts"],
        json!([
            {"key": format!("{d1}/Buy"), "day": d1, "event": "Buy", "count": 1},
            {"key": format!("{d2}/Buy"), "day": d2, "event": "Buy", "count": 1},
            {"key": format!("{d2}/View"), "day": d2, "event": "View", "count": 1},
        ])
    );
}

#[tokio::test]
async fn profiles_are_read_by_distinct_id() {
    let app = spawn_app().await;
    let u = json!({"$token": app.token(), "$distinct_id": "alice", "$set": {"$email": "a@example.com"}});
    app.post_form("/engage", &u).await;
    let p: Value = app
        .get("/api/v1/projects/shop/profiles/alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["properties"]["$email"], "a@example.com");
    assert_problem(app.get("/api/v1/projects/shop/profiles/nobody").await, 404).await;
    // Probing whether someone has a profile is a read like any other: logged, pseudonymised.
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let reads: Vec<_> = entries
        .iter()
        .filter(|e| e.action == auditgate::ledger::entry::Action::ProfilesRead)
        .collect();
    assert_eq!(reads.len(), 2);
    let probe: Value = serde_json::from_str(&reads[1].details).unwrap();
    assert_eq!(probe["found"], false);
    assert_eq!(reads[1].records, 0);
    assert_eq!(reads[1].subjects.len(), 1);
    assert_ne!(reads[0].subjects, reads[1].subjects);
    assert!(!reads[1].details.contains("nobody"));
}

#[tokio::test]
async fn a_project_token_reads_nothing_of_another_project() {
    let app = spawn_app().await;
    seed(&app, 3).await;
    let other = app.other_project("bank").await;
    for path in [
        "/api/v1/projects/shop/events",
        "/api/v1/projects/shop/events/count",
        "/api/v1/projects/shop/profiles/alice",
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(other.secret.expose())
            .send()
            .await
            .unwrap();
        let body = assert_problem(r, 403).await;
        assert!(!body.to_string().contains("alice"), "no data in a refusal");
    }
}

#[tokio::test]
async fn ingest_and_query_work_on_postgres() {
    let Some(app) = spawn_app_on(Backend::Postgres, "ingest_and_query_work_on_postgres").await
    else {
        return;
    };
    seed(&app, 120).await;
    assert_eq!(app.all_events().await.len(), 120);
    let c: Value = app
        .get("/api/v1/projects/shop/events/count?group_by=event")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["total"], 120);
    let body: Value = app.get_anonymous("/readyz").await.json().await.unwrap();
    assert_eq!(body["database"], "postgres");
}

/// What a read returns for `plan` on the one event, and its status.
async fn plan_of(app: &TestApp) -> (u16, Value) {
    let resp = app.get("/api/v1/projects/shop/events").await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["events"][0]["properties"]["plan"].clone())
}

/// How long the service keeps what it read for a request, by default.
fn cache_ttl_ms() -> i64 {
    auditgate::config::Settings::defaults()
        .database
        .cache_ttl_ms as i64
}

/// Waits until the service has recorded the first use of the project's tokens, a write of its
/// own made off the request's path that forgets what the read memo kept.
async fn wait_for_token_use(app: &TestApp, project: &auditgate::domain::ProjectId) {
    for _ in 0..200 {
        let tokens = app.store.tokens(project).await.unwrap();
        if tokens.iter().all(|t| t.last_used_at.is_some()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the token's first use was not recorded within 2 s");
}

/// A second store on the app's database, as the CLI or another instance opens it.
async fn another_process(app: &TestApp) -> auditgate::store::SharedStore {
    auditgate::store::connect(&auditgate::config::DatabaseSettings {
        url: app._db.url.clone(),
        ..auditgate::config::Settings::defaults().database
    })
    .await
    .unwrap()
}

async fn changes_apply_at_once_here_and_within_the_cache_ttl_from_elsewhere(backend: Backend) {
    use auditgate::store::PropertyKind;
    let Some(app) = spawn_app_on(backend, "cache_ttl").await else {
        return;
    };
    let ttl = cache_ttl_ms();
    assert!(ttl > 0, "the default keeps reads for a moment");
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    let body = json!([{"event": "signup", "properties": {"distinct_id": "u1",
        "time": app.now_secs() - 60, "$insert_id": "s1", "plan": "pro", "email": "u1@example.com"}}]);
    assert_eq!(app.import(&body).await.status(), 200);
    assert_eq!(plan_of(&app).await, (200, json!("pro")));

    // Through this service (the store it runs on): at the very next request.
    let now = app.clock.now();
    app.store
        .classify(&shop, PropertyKind::Event, "plan", "test", now)
        .await
        .unwrap();
    assert_eq!(plan_of(&app).await.1, json!("[redacted]"));
    app.store
        .declassify(&shop, PropertyKind::Event, "plan")
        .await
        .unwrap();
    assert_eq!(plan_of(&app).await.1, json!("pro"));

    // The service records its token's first use off the request's path, and that write (its
    // own) forgets what it kept: wait for it, so it cannot land in the middle of what follows.
    wait_for_token_use(&app, &shop).await;
    plan_of(&app).await;

    // Through another process on the same database (the CLI opens it so): once the
    // service's copy is older than database.cache_ttl_ms, and not before.
    let other = another_process(&app).await;
    other
        .classify(&shop, PropertyKind::Event, "plan", "cli", now)
        .await
        .unwrap();
    assert_eq!(
        plan_of(&app).await.1,
        json!("pro"),
        "the copy is still fresh"
    );
    app.clock.advance_millis(ttl - 1);
    assert_eq!(plan_of(&app).await.1, json!("pro"));
    app.clock.advance_millis(1);
    assert_eq!(plan_of(&app).await.1, json!("[redacted]"));

    assert!(
        other
            .revoke_token(&app.project.token_id, app.clock.now())
            .await
            .unwrap()
    );
    assert_eq!(plan_of(&app).await.0, 200, "the copy is still fresh");
    app.clock.advance_millis(ttl);
    assert_eq!(plan_of(&app).await.0, 401, "the revoked token is refused");
    other.close().await;
}

#[tokio::test]
async fn changes_apply_at_once_here_and_within_the_cache_ttl_from_elsewhere_on_sqlite() {
    changes_apply_at_once_here_and_within_the_cache_ttl_from_elsewhere(Backend::Sqlite).await;
}

#[tokio::test]
async fn changes_apply_at_once_here_and_within_the_cache_ttl_from_elsewhere_on_postgres() {
    changes_apply_at_once_here_and_within_the_cache_ttl_from_elsewhere(Backend::Postgres).await;
}

/// `/track` finds its project by the token each record carries, kept for a moment like the
/// other reads every request makes: a project deleted or restored through this service is seen
/// at the next batch, one deleted from elsewhere once the copy is older than the cache's TTL.
async fn a_deleted_projects_token_stops_at_once_here_and_within_the_cache_ttl_from_elsewhere(
    backend: Backend,
) {
    let Some(app) = spawn_app_on(backend, "token_ttl").await else {
        return;
    };
    let ttl = cache_ttl_ms();
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    async fn track(app: &TestApp, n: u32) -> reqwest::Response {
        let e = json!({"event": "view", "properties": {"token": app.token(), "distinct_id": "u1",
            "$insert_id": format!("t{n}")}});
        app.post_form("/track", &e).await
    }
    async fn stored(r: reqwest::Response) {
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], 1);
    }
    stored(track(&app, 1).await).await;

    // Through this service: at the very next batch, either way.
    app.store
        .set_project_deleted(&shop, Some(app.clock.now()))
        .await
        .unwrap();
    let error = crate::helpers::assert_mixpanel_refusal(track(&app, 2).await, 401).await;
    assert_eq!(error, "no record carries a valid project token");
    app.store.set_project_deleted(&shop, None).await.unwrap();
    stored(track(&app, 3).await).await;

    // Through another process on the same database: once the copy is older than the TTL.
    let other = another_process(&app).await;
    other
        .set_project_deleted(&shop, Some(app.clock.now()))
        .await
        .unwrap();
    app.clock.advance_millis(ttl - 1);
    stored(track(&app, 4).await).await;
    app.clock.advance_millis(1);
    crate::helpers::assert_mixpanel_refusal(track(&app, 5).await, 401).await;
    other.close().await;
    app.store.set_project_deleted(&shop, None).await.unwrap();
    let ids: Vec<Value> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["insert_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("t1"), json!("t3"), json!("t4")]);
}

#[tokio::test]
async fn a_deleted_projects_token_stops_at_once_here_and_within_the_cache_ttl_from_elsewhere_on_sqlite()
 {
    a_deleted_projects_token_stops_at_once_here_and_within_the_cache_ttl_from_elsewhere(
        Backend::Sqlite,
    )
    .await;
}

#[tokio::test]
async fn a_deleted_projects_token_stops_at_once_here_and_within_the_cache_ttl_from_elsewhere_on_postgres()
 {
    a_deleted_projects_token_stops_at_once_here_and_within_the_cache_ttl_from_elsewhere(
        Backend::Postgres,
    )
    .await;
}

/// Each batch is screened against its project's opt-outs, kept for a moment like the other
/// per-request reads: an opt-out recorded through this service (here an SDK's `$opt_out`)
/// drops the person's events from then on; one recorded by another process on the same
/// database, once the copy is older than the cache's TTL, and not before. (Only the public
/// token is used until the end: a service token's first use is recorded off the request's path,
/// a write of the service's own that would forget the memo at a moment the test cannot choose.)
async fn an_opt_out_applies_at_once_here_and_within_the_cache_ttl_from_elsewhere(backend: Backend) {
    let Some(app) = spawn_app_on(backend, "opt_out_ttl").await else {
        return;
    };
    let ttl = cache_ttl_ms();
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    async fn track(app: &TestApp, who: &str, n: u32, extra: Value) {
        let mut properties = json!({"token": app.token(), "distinct_id": who,
            "$insert_id": format!("{who}-{n}")});
        properties
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = json!({"event": "view", "properties": properties});
        let r = app.post_form("/track", &e).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], 1);
    }
    track(&app, "near", 1, json!({})).await;
    track(&app, "far", 1, json!({})).await;

    // Through this service: the event that opts out and every later one are dropped at once.
    track(&app, "near", 2, json!({"$opt_out": true})).await;
    track(&app, "near", 3, json!({})).await;

    // Through another process on the same database: once the copy is older than the TTL.
    let other = another_process(&app).await;
    let far = auditgate::domain::DistinctId::parse("far").unwrap();
    let lookup = app.audit.subject_lookup(&shop, &far);
    other
        .set_opt_out(&shop, &lookup, "cli", app.clock.now())
        .await
        .unwrap();
    app.clock.advance_millis(ttl - 1);
    track(&app, "far", 2, json!({})).await;
    app.clock.advance_millis(1);
    track(&app, "far", 3, json!({})).await;
    other.close().await;

    let mut ids: Vec<String> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["far-1", "far-2", "near-1"]);
}

#[tokio::test]
async fn an_opt_out_applies_at_once_here_and_within_the_cache_ttl_from_elsewhere_on_sqlite() {
    an_opt_out_applies_at_once_here_and_within_the_cache_ttl_from_elsewhere(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_opt_out_applies_at_once_here_and_within_the_cache_ttl_from_elsewhere_on_postgres() {
    an_opt_out_applies_at_once_here_and_within_the_cache_ttl_from_elsewhere(Backend::Postgres)
        .await;
}
