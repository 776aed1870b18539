//! Behaviour at size: slow reads stop by themselves and never starve the log or ingestion.

use std::time::Instant;

use auditgate::clock::Clock;

use auditgate::domain::{DistinctId, ProjectId, Timestamp};
use auditgate::ledger::entry::Action;
use auditgate::store::NewEvent;
use serde_json::{Map, Value, json};

use crate::helpers::{Backend, TestApp, fresh_db, spawn_with, test_settings};

/// Stores `n` events straight through the store (as a long-running import would have):
/// `names` event names, `people` distinct ids, spread over `days` days before now.
pub async fn seed(app: &TestApp, n: usize, names: usize, people: usize, days: i64) {
    let project = ProjectId::parse("shop").unwrap();
    let now = app.clock.now().millis();
    let day = 86_400_000;
    for start in (0..n).step_by(2000) {
        let batch: Vec<NewEvent> = (start..(start + 2000).min(n))
            .map(|i| {
                let mut properties = Map::new();
                properties.insert("plan".into(), json!(["free", "pro", "team"][i % 3]));
                NewEvent {
                    event: format!("event {}", i % names),
                    distinct_id: DistinctId::parse(&format!("person-{}", (i * 7919) % people))
                        .unwrap(),
                    // Spread evenly, with a stride that is not a multiple of a day.
                    time: Timestamp::from_millis(now - 1 - ((i as i64 * 7_777_777) % (days * day))),
                    insert_id: Some(format!("seed-{i}")),
                    properties,
                }
            })
            .collect();
        app.store
            .insert_events(&project, &batch, &[], app.clock.now())
            .await
            .unwrap();
    }
}

fn slow_read() -> String {
    // No index narrows an event name that is absent: the read walks every event.
    "/api/v1/projects/shop/events?event=absent&limit=1000".into()
}

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn slow_reads_leave_the_rest_alone(backend: Backend) {
    let Some(db) = fresh_db(backend, "slow_reads").await else {
        return;
    };
    let mut settings = test_settings(&db);
    // A full walk of 200k events takes 50-60 ms on PostgreSQL and several hundred on SQLite
    // (built without optimisation in tests); a person's ten events take a millisecond.
    settings.database.read_timeout_ms = match backend {
        Backend::Sqlite => 150,
        Backend::Postgres => 25,
    };
    let app = spawn_with(settings, db).await;
    seed(&app, 200_000, 40, 5_000, 180).await;
    let started = Instant::now();
    let single = app.get(&slow_read()).await.status().as_u16();
    eprintln!("one slow read alone: {single} in {:?}", started.elapsed());

    // 16 slow reads at once, while ingestion, a person's events and readiness go on.
    let slow = futures_util::future::join_all(
        (0..16).map(|_| async { status_and_body(app.get(&slow_read()).await).await }),
    );
    let others = async {
        let mut seen = Vec::new();
        for i in 0..10 {
            let event = app.event("during", &format!("p{i}"), &format!("during-{i}"));
            let track = app.post_form("/track", &json!([event])).await;
            seen.push(("track", track.status().as_u16()));
            let person = app
                .get("/api/v1/projects/shop/events?distinct_id=person-7&limit=10")
                .await;
            seen.push(("person", person.status().as_u16()));
            let ready = app.get_anonymous("/readyz").await;
            seen.push(("readyz", ready.status().as_u16()));
        }
        seen
    };
    let (slow, others) = tokio::join!(slow, others);
    for (what, status) in &others {
        assert_eq!(*status, 200, "{what} failed while slow reads ran");
    }
    let answered = slow.iter().filter(|(s, _)| *s == 200).count();
    let stopped: Vec<_> = slow.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(answered + stopped.len(), 16, "only 200 or 503: {slow:?}");
    assert!(
        !stopped.is_empty(),
        "at 200k events a full walk outlasts the limit: {slow:?}"
    );
    for (_, body) in &stopped {
        assert!(
            body["detail"].as_str().unwrap().contains("read_timeout_ms"),
            "{body}"
        );
    }

    // The log holds every ingestion batch and exactly the reads that returned data.
    app.settle().await;
    let (_, entries) = app.export_log().await;
    let of = |action: Action| entries.iter().filter(|e| e.action == action).count();
    assert_eq!(of(Action::EventsIngest), 10);
    let person_reads = 10;
    assert_eq!(
        of(Action::EventsQuery),
        usize::from(single == 200) + person_reads + answered
    );
}

#[tokio::test]
async fn slow_reads_stop_by_themselves_and_starve_nothing_on_sqlite() {
    slow_reads_leave_the_rest_alone(Backend::Sqlite).await;
}

#[tokio::test]
async fn slow_reads_stop_by_themselves_and_starve_nothing_on_postgres() {
    slow_reads_leave_the_rest_alone(Backend::Postgres).await;
}
