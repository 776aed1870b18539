//! Ingestion throughput and query latency, each beside raw sqlx on the same database.
//!
//! `cargo bench --bench ingest` prints, for SQLite and (when AUDITGATE_TEST_POSTGRES_URL is
//! set) PostgreSQL: `/import` events/s with 2000-event batches of ~1 KB events, the raw insert
//! rate of the same rows with sqlx, their ratio, and p50/p99 latency of the events query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditgate::clock::{Clock, SystemClock};
use auditgate::config::Settings;
use auditgate::domain::ProjectId;
use auditgate::projects;
use auditgate::startup::Application;
use auditgate::store::{self, SharedStore};
use serde_json::{Value, json};
use sqlx::{Database, Executor, IntoArguments, Pool, QueryBuilder};

mod common;

const BATCH: usize = 2000;
const BATCHES: usize = 10;
const QUERIES: usize = 300;

fn events(prefix: &str, now_ms: i64) -> Vec<Value> {
    let padding = "x".repeat(880);
    (0..BATCH * BATCHES)
        .map(|i| {
            json!({"event": format!("Event {}", i % 20), "properties": {
                "distinct_id": format!("user-{}", i % 500), "time": now_ms - 3_600_000 + i as i64,
                "$insert_id": format!("{prefix}-{i}"), "plan": "pro", "country": "NL", "padding": padding}})
        })
        .collect()
}

/// Inserts the same rows the service would, with one multi-row INSERT per 1000 rows and one
/// transaction per batch, as the store does.
async fn raw_insert<DB: Database>(pool: &Pool<DB>, project: &str, rows: &[Value]) -> Duration
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let start = Instant::now();
    for batch in rows.chunks(BATCH) {
        let mut tx = pool.begin().await.unwrap();
        for chunk in batch.chunks(1000) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO events (project_id, event, distinct_id, time_ms, insert_id, properties, received_at) ",
            );
            qb.push_values(chunk, |mut b, e| {
                let p = &e["properties"];
                b.push_bind(project.to_owned())
                    .push_bind(e["event"].as_str().unwrap().to_owned())
                    .push_bind(p["distinct_id"].as_str().unwrap().to_owned())
                    .push_bind(p["time"].as_i64().unwrap())
                    .push_bind(p["$insert_id"].as_str().unwrap().to_owned())
                    .push_bind(json!({"plan": p["plan"], "country": p["country"], "padding": p["padding"]}).to_string())
                    .push_bind(0i64);
            });
            qb.push(" ON CONFLICT (project_id, insert_id) DO NOTHING");
            qb.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(label: &'static str, url: String, keys: &std::path::Path) {
    let mut settings = Settings::defaults();
    settings.audit.signing_key_file = keys.join("audit-signing.key");
    settings.audit.pseudonym_key_file = keys.join("pseudonym.key");
    settings.auth.secret_key_file = keys.join("secrets.key");
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = url;
    let store: SharedStore = store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    let clock = SystemClock;
    for id in ["bench", "raw"] {
        projects::create(store.as_ref(), &clock, ProjectId::parse(id).unwrap(), None)
            .await
            .unwrap();
    }
    let created = projects::create(
        store.as_ref(),
        &clock,
        ProjectId::parse("api").unwrap(),
        None,
    )
    .await
    .unwrap();
    let app = Application::build_with_store(settings.clone(), Arc::new(clock), store.clone())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let now = clock.now().millis();

    // Raw sqlx on its own pool with the same connection settings, once before and once after
    // the API run, since the table grows.
    let raw_run = |prefix: &'static str| {
        let settings = settings.clone();
        async move {
            let rows = events(prefix, now);
            if label == "sqlite" {
                let s = store::sqlite::connect(&settings.database).await.unwrap();
                raw_insert(s.pool(), "raw", &rows).await
            } else {
                let s = store::postgres::connect(&settings.database).await.unwrap();
                raw_insert(s.pool(), "raw", &rows).await
            }
        }
    };
    let raw_before = raw_run("raw1").await;

    let rows = events("api", now);
    let bodies: Vec<String> = rows
        .chunks(BATCH)
        .map(|b| serde_json::to_string(b).unwrap())
        .collect();
    let bytes: usize = bodies.iter().map(String::len).sum();
    let start = Instant::now();
    for body in bodies {
        let r = client
            .post(format!("{base}/import"))
            .basic_auth(&created.service_account.name, Some(created.secret.expose()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let api = start.elapsed();
    let raw = (raw_before + raw_run("raw2").await) / 2;

    let n = (BATCH * BATCHES) as f64;
    let raw_rate = n / raw.as_secs_f64();
    let api_rate = n / api.as_secs_f64();
    println!(
        "{label:<8} ingest: /import {api_rate:>9.0} events/s | raw sqlx insert {raw_rate:>9.0} rows/s | ratio {:>5.1}% | {} events of {} bytes avg",
        100.0 * api_rate / raw_rate,
        BATCH * BATCHES,
        bytes / (BATCH * BATCHES)
    );

    let mut lat = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES {
        let t = Instant::now();
        let r = client
            .get(format!(
                "{base}/api/v1/projects/api/events?limit=100&distinct_id=user-{}",
                i % 30
            ))
            .bearer_auth(created.secret.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "{label:<8} query:  events?distinct_id=&limit=100 over {} events, 30 people, each audited: p50 {:.2} ms, p99 {:.2} ms ({QUERIES} requests)",
        BATCH * BATCHES,
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let dir = tempfile::tempdir().unwrap();
    run(
        "sqlite",
        format!("sqlite:{}", dir.path().join("bench.db").display()),
        dir.path(),
    )
    .await;
    if let Some(db) = common::fresh_postgres("auditgate_bench").await {
        run("postgres", db.url.clone(), dir.path()).await;
        db.remove().await;
    }
}
