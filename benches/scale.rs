//! Scale: a realistic data set on SQLite and PostgreSQL, every figure beside its raw baseline.
//!
//! `cargo bench --bench scale` loads AUDITGATE_BENCH_EVENTS events (default 1,000,000: 40
//! event names, 50,000 people, 10 properties, 180 days) through `/import` in batches of 2,000
//! from 4 clients, and the same rows into a second database of the same schema with plain
//! sqlx. It prints, per 100,000 events, both rates and their ratio; at 100,000 events and at
//! the end, bytes per event, the WAL's size, and p50/p99 and requests/s at 1 and 16
//! connections of five audited reads beside the same SQL run directly on the same database;
//! and the peak memory of `auditgate log export` at 100,000 and 1,000,000 audit entries.
//! Then AUDITGATE_BENCH_BROWSER_EVENTS (default 50,000) events as mixpanel-browser sends them
//! (`POST /track/?verbose=1&ip=1`, base64 form batches of 50 with an allowed `Origin`, 16
//! clients) beside raw inserts of the same rows in transactions of 50 from 16 clients: once
//! with each batch one browser's (one device, one person: one identity link a batch, as
//! mixpanel-browser queues), once with every event a different browser's (50 links a batch).
//! PostgreSQL runs when AUDITGATE_TEST_POSTGRES_URL names a server.
//!
//! For profiling: AUDITGATE_BENCH_BACKEND (`sqlite` or `postgres`) runs one backend,
//! AUDITGATE_BENCH_ONLY (part of a read's name, e.g. `person`) times that read alone, and
//! AUDITGATE_BENCH_READS sets the calls per connection at 16 connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auditgate::audit::AuditLog;
use auditgate::clock::{Clock, SystemClock};
use auditgate::config::Settings;
use auditgate::domain::{AllowedOrigins, ProjectId};
use auditgate::ledger::entry::Action;
use auditgate::projects;
use auditgate::startup::Application;
use auditgate::store::{self, SharedStore};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Database, Executor, IntoArguments, Pool, QueryBuilder};

mod common;

const NAMES: usize = 40;
const PEOPLE: usize = 50_000;
const DAYS: i64 = 180;
const DAY_MS: i64 = 86_400_000;
const BATCH: usize = 2000;
const CLIENTS: usize = 4;
const SEGMENT: usize = 100_000;

/// Event `i` of the data set, as an SDK sends it to `/import`.
fn event(i: usize, now: i64, token: &str) -> Value {
    let person = (i.wrapping_mul(2_654_435_761)) % PEOPLE;
    let time = now - 1 - ((i as i64).wrapping_mul(7_777_777_777) % (DAYS * DAY_MS)).abs();
    let pick = |options: &[&str], n: usize| options[i % n].to_owned();
    json!({"event": format!("event {:02}", (i * 31) % NAMES), "properties": {
        "token": token, "distinct_id": format!("person-{person}"), "time": time,
        "$insert_id": format!("e{i}"),
        "plan": pick(&["free", "pro", "team"], 3), "country": pick(&["NL", "DE", "FR", "US", "BR"], 5),
        "browser": pick(&["Firefox", "Chrome", "Safari"], 3), "os": pick(&["Linux", "macOS", "Windows", "iOS"], 4),
        "version": format!("1.{}.{}", i % 7, i % 13), "referrer": format!("https://ref{}.example/", i % 50),
        "amount": (i % 1000) as f64 / 10.0, "campaign": format!("c{}", i % 25),
        "screen": pick(&["1920x1080", "1366x768", "390x844"], 3), "lang": pick(&["en", "nl", "de"], 3),
    }})
}

/// The row the store keeps of an event: its properties without the ones it has columns for.
fn row(e: &Value) -> (String, String, i64, String, String) {
    let mut p = e["properties"].as_object().unwrap().clone();
    let who = p
        .remove("distinct_id")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let time = p.remove("time").unwrap().as_i64().unwrap();
    let id = p.remove("$insert_id").unwrap().as_str().unwrap().to_owned();
    p.remove("token");
    let name = e["event"].as_str().unwrap().to_owned();
    (name, who, time, id, Value::Object(p).to_string())
}

/// Inserts rows as the store does (multi-row INSERTs of up to 1000, one transaction per batch),
/// from `clients` tasks, with nothing else: no gate, no audit entry, no per-day counts.
async fn raw_insert<DB: Database>(
    pool: &Pool<DB>,
    begin: &'static str,
    rows: Arc<Vec<Value>>,
    (batch_size, clients): (usize, usize),
) -> Duration
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (pool, rows, next) = (pool.clone(), rows.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::SeqCst);
                    let Some(batch) = rows.chunks(batch_size).nth(b) else { break };
                    let mut tx = pool.begin_with(begin).await.unwrap();
                    // The schema's arrival bucket, found and noted as the store does (on
                    // SQLite; PostgreSQL's events all stay in bucket 0).
                    let mut bucket = 0i64;
                    if DB::NAME == "SQLite" {
                        bucket = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) / $1 FROM events")
                            .bind(100_000i64)
                            .fetch_one(&mut *tx)
                            .await
                            .unwrap();
                        let times = batch
                            .iter()
                            .map(|e| e["properties"]["time"].as_i64().unwrap());
                        sqlx::query(
                            "INSERT INTO event_buckets (project_id, bucket, first_ms, last_ms) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, bucket) DO UPDATE SET \
                             first_ms = CASE WHEN excluded.first_ms < event_buckets.first_ms \
                                 THEN excluded.first_ms ELSE event_buckets.first_ms END, \
                             last_ms = CASE WHEN excluded.last_ms > event_buckets.last_ms \
                                 THEN excluded.last_ms ELSE event_buckets.last_ms END",
                        )
                        .bind("shop".to_owned())
                        .bind(bucket)
                        .bind(times.clone().min().unwrap())
                        .bind(times.max().unwrap())
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    }
                    for chunk in batch.chunks(1000) {
                        let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                            "INSERT INTO events (project_id, event, distinct_id, time_ms, insert_id, properties, received_at, bucket) ",
                        );
                        qb.push_values(chunk, |mut q, e| {
                            let (name, who, time, id, props) = row(e);
                            q.push_bind("shop".to_owned())
                                .push_bind(name)
                                .push_bind(who)
                                .push_bind(time)
                                .push_bind(id)
                                .push_bind(props)
                                .push_bind(0i64)
                                .push_bind(bucket);
                        });
                        qb.push(" ON CONFLICT (project_id, insert_id) DO NOTHING");
                        qb.build().execute(&mut *tx).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Posts batches to `/import` from 4 clients; every batch must be answered 200.
async fn import(
    client: &reqwest::Client,
    base: &str,
    auth: &(String, String),
    rows: &[Value],
) -> Duration {
    let bodies: Arc<Vec<String>> = Arc::new(
        rows.chunks(BATCH)
            .map(|b| serde_json::to_string(b).unwrap())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, base, auth, bodies, next) = (
                client.clone(),
                base.to_owned(),
                auth.clone(),
                bodies.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(b) else { break };
                    let r = client
                        .post(format!("{base}/import"))
                        .basic_auth(&auth.0, Some(&auth.1))
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    assert_eq!(status, 200, "/import: {}", r.text().await.unwrap());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Browser batches: mixpanel-browser's batch size and a crowd of page views at once.
const BROWSER_BATCH: usize = 50;
const BROWSER_CLIENTS: usize = 16;
const BROWSER_ORIGIN: &str = "https://app.example";

/// Who sends the browser-shaped batches.
#[derive(Clone, Copy)]
enum Crowd {
    /// As mixpanel-browser does: a batch is one browser's queue, one device and one signed-in
    /// person, so it asks for one identity link.
    BrowserPerBatch,
    /// The worst case for identity links: every event from a different browser and person, 50
    /// links a batch.
    BrowserPerEvent,
}

impl Crowd {
    fn label(self) -> &'static str {
        match self {
            Crowd::BrowserPerBatch => "a browser a batch",
            Crowd::BrowserPerEvent => "a browser an event",
        }
    }
}

/// An event as mixpanel-browser sends it after sign-in: device and user ids, its library.
fn browser_event(i: usize, now: i64, token: &str, crowd: Crowd) -> Value {
    let (browser, prefix) = match crowd {
        Crowd::BrowserPerBatch => (i / BROWSER_BATCH, "b"),
        Crowd::BrowserPerEvent => (i, "w"),
    };
    let mut e = event(i, now, token);
    let p = e["properties"].as_object_mut().unwrap();
    p["time"] = json!(now - 1 - (i as i64 % 3_600_000));
    p["$insert_id"] = json!(format!("{prefix}{i}"));
    let who = json!(format!(
        "person-{}",
        browser.wrapping_mul(2_654_435_761) % PEOPLE
    ));
    p["distinct_id"] = who.clone();
    p.insert("$user_id".into(), who);
    p.insert("$device_id".into(), json!(format!("{prefix}dev-{browser}")));
    p.insert("mp_lib".into(), json!("web"));
    e
}

/// Posts browser-shaped batches (`POST /track/?verbose=1&ip=1`, form `data=` in base64, an
/// `Origin` the project allows) from 16 clients; every batch is answered `status: 1` or, when
/// the log could not take its entry in time, 503 (failing closed). Returns the time taken and
/// the batches refused.
async fn track_like_a_browser(
    client: &reqwest::Client,
    base: &str,
    rows: &[Value],
) -> (Duration, usize) {
    use base64::Engine as _;
    let bodies: Arc<Vec<String>> = Arc::new(
        rows.chunks(BROWSER_BATCH)
            .map(|b| {
                let json = serde_json::to_string(b).unwrap();
                let data = base64::engine::general_purpose::STANDARD.encode(json);
                serde_urlencoded::to_string([("data", data)]).unwrap()
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..BROWSER_CLIENTS)
        .map(|_| {
            let (client, base, bodies, next, refused) = (
                client.clone(),
                base.to_owned(),
                bodies.clone(),
                next.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(b) else { break };
                    let r = client
                        .post(format!("{base}/track/?verbose=1&ip=1"))
                        .header("Origin", BROWSER_ORIGIN)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        r.headers()["access-control-allow-origin"],
                        BROWSER_ORIGIN,
                        "CORS answered"
                    );
                    if r.status() == 503 {
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let answer: Value = r.json().await.unwrap();
                    assert_eq!(answer["status"], 1, "/track/: {answer}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (start.elapsed(), refused.load(Ordering::SeqCst))
}

/// Calls per connection: 200 alone, 60 each of 16 (AUDITGATE_BENCH_READS overrides the second,
/// for profiling one read).
fn per_conn(conns: usize) -> usize {
    if conns == 1 {
        return 200;
    }
    std::env::var("AUDITGATE_BENCH_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Latencies, the wall time and the failures (5xx) of `per_conn` calls from each of `conns`
/// concurrent callers.
async fn measure<F, Fut>(conns: usize, per_conn: usize, call: F) -> (Vec<Duration>, Duration, usize)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_conn);
                let mut failed = 0;
                for i in 0..per_conn {
                    let t = Instant::now();
                    let status = call(c * per_conn + i).await;
                    lat.push(t.elapsed());
                    failed += usize::from(status >= 500);
                }
                (lat, failed)
            })
        })
        .collect();
    let (mut all, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (lat, f) = t.await.unwrap();
        all.extend(lat);
        failed += f;
    }
    let wall = start.elapsed();
    all.sort();
    (all, wall, failed)
}

fn figures(lat: &[Duration], wall: Duration) -> String {
    format!(
        "p50 {:>6.2} ms p99 {:>7.2} ms {:>7.0}/s",
        percentile(lat, 0.5).as_secs_f64() * 1e3,
        percentile(lat, 0.99).as_secs_f64() * 1e3,
        lat.len() as f64 / wall.as_secs_f64()
    )
}

struct Target {
    label: &'static str,
    base: String,
    client: reqwest::Client,
    secret: String,
    raw: RawPool,
    log: AuditLog,
    now: i64,
}

/// The five reads, through auditgate and as the same SQL straight on the database.
async fn reads(t: &Target, events: usize) {
    let kinds: [(&str, &str); 5] = [
        (
            "events of one person",
            "SELECT id, event, distinct_id, time_ms, insert_id, properties FROM events WHERE project_id = $1 AND bucket IN (SELECT bucket FROM event_buckets WHERE project_id = $1) AND distinct_id = $2 ORDER BY time_ms, id LIMIT $3",
        ),
        (
            "one day of events",
            // Per bucket (run_sql writes it out as the store does): the first page of each, then
            // the first of those.
            "SELECT id, event, distinct_id, time_ms, insert_id, properties FROM events WHERE project_id = $1 AND bucket = $b AND time_ms >= $2 AND time_ms < $3 ORDER BY time_ms, id LIMIT $4",
        ),
        (
            "counts by day",
            "SELECT day, '', CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM event_counts WHERE project_id = $1 GROUP BY day",
        ),
        (
            "counts by event",
            "SELECT CAST(0 AS BIGINT), event, CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM event_counts WHERE project_id = $1 GROUP BY event",
        ),
        (
            "a profile",
            "SELECT distinct_id, properties, updated_at FROM profiles WHERE project_id = $1 AND distinct_id = $2",
        ),
    ];
    let day0 = t.now - t.now % DAY_MS - 30 * DAY_MS;
    let only = std::env::var("AUDITGATE_BENCH_ONLY").ok();
    // The floor any answered request has on this machine: HTTP to a route that reads nothing.
    for conns in [1usize, 16] {
        if only.is_some() {
            break;
        }
        let (client, base) = (t.client.clone(), t.base.clone());
        let call = move |_| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let r = client.get(format!("{base}/healthz")).send().await.unwrap();
                r.status().as_u16()
            }
        };
        let (lat, wall, failed) = measure(conns, per_conn(conns), call).await;
        println!(
            "{:<8} {:>7} events {:<20} {:>2} conn: /healthz  {} | 5xx {}",
            t.label,
            events,
            "HTTP floor",
            conns,
            figures(&lat, wall),
            failed
        );
    }
    // The other floor: every audited read waits for its entry's durable commit, and at 16
    // connections a commit group holds at most 16 entries.
    for conns in [1usize, 16] {
        if only.is_some() {
            break;
        }
        let log = t.log.clone();
        let call = move |_| {
            let log = log.clone();
            async move {
                let project = ProjectId::parse("shop").unwrap();
                log.record_cli(
                    Action::AuditRead,
                    Some(&project),
                    0,
                    json!({"bench": "append"}),
                )
                .await
                .map_or(503, |_| 200)
            }
        };
        let (lat, wall, failed) = measure(conns, per_conn(conns), call).await;
        println!(
            "{:<8} {:>7} events {:<20} {:>2} conn: appends   {} | 5xx {}",
            t.label,
            events,
            "audit entries alone",
            conns,
            figures(&lat, wall),
            failed
        );
    }
    for (k, (name, sql)) in kinds.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for conns in [1usize, 16] {
            let per_conn = per_conn(conns);
            let (client, base, secret) = (t.client.clone(), t.base.clone(), t.secret.clone());
            let api = move |i: usize| {
                let (client, base, secret) = (client.clone(), base.clone(), secret.clone());
                async move {
                    let person = (i * 7919) % PEOPLE;
                    let day = day0 - (i as i64 % 150) * DAY_MS;
                    let path = match k {
                        0 => format!(
                            "/api/v1/projects/shop/events?distinct_id=person-{person}&limit=100"
                        ),
                        1 => format!(
                            "/api/v1/projects/shop/events?from={day}&to={}&limit=100",
                            day + DAY_MS
                        ),
                        2 => "/api/v1/projects/shop/events/count?group_by=day".into(),
                        3 => "/api/v1/projects/shop/events/count?group_by=event".into(),
                        _ => format!("/api/v1/projects/shop/profiles/person-{person}"),
                    };
                    let r = client
                        .get(format!("{base}{path}"))
                        .bearer_auth(&secret)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    r.bytes().await.unwrap();
                    status
                }
            };
            let (alat, awall, afailed) = measure(conns, per_conn, api).await;
            let pool = t.raw.clone();
            let sql = (*sql).to_owned();
            let raw = move |i: usize| {
                let (pool, sql) = (pool.clone(), sql.clone());
                async move {
                    let person = format!("person-{}", (i * 7919) % PEOPLE);
                    let day = day0 - (i as i64 % 150) * DAY_MS;
                    match pool {
                        RawPool::Sqlite(p) => run_sql(&p, &sql, person, day).await,
                        RawPool::Postgres(p) => run_sql(&p, &sql, person, day).await,
                    }
                    200
                }
            };
            let (rlat, rwall, _) = measure(conns, per_conn, raw).await;
            let ratio = 100.0 * (alat.len() as f64 / awall.as_secs_f64())
                / (rlat.len() as f64 / rwall.as_secs_f64());
            println!(
                "{:<8} {:>7} events {:<20} {:>2} conn: auditgate {} | raw SQL {} | {:>5.1}% | 5xx {}",
                t.label,
                events,
                name,
                conns,
                figures(&alat, awall),
                figures(&rlat, rwall),
                ratio,
                afailed
            );
        }
    }
}

/// Runs one of the reads' SQL straight on the database, binding the parameters it uses
/// (typed as the store binds them, so both get the same plans).
async fn run_sql<DB: Database>(pool: &Pool<DB>, sql: &str, person: String, day: i64)
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // The store names buckets on SQLite only (its `Backend::BUCKETED`): the same SQL as it runs.
    let plain;
    let sql = if DB::NAME == "SQLite" {
        sql
    } else {
        plain = sql
            .replace(
                " AND bucket IN (SELECT bucket FROM event_buckets WHERE project_id = $1)",
                "",
            )
            .replace(" AND bucket = $b", "");
        plain.as_str()
    };
    if sql.contains("bucket = $b") {
        let buckets: Vec<i64> = sqlx::query_scalar(
            "SELECT bucket FROM event_buckets WHERE project_id = $1 AND last_ms >= $2 \
             AND first_ms < $3 ORDER BY bucket",
        )
        .bind("shop".to_owned())
        .bind(day)
        .bind(day + DAY_MS)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut qb: QueryBuilder<DB> = QueryBuilder::new(
            "SELECT id, event, distinct_id, time_ms, insert_id, properties FROM events WHERE id IN (SELECT id FROM (",
        );
        for (i, b) in buckets.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ALL ");
            }
            qb.push("SELECT * FROM (SELECT time_ms, id FROM events WHERE project_id = ")
                .push_bind("shop".to_owned())
                .push(" AND bucket = ")
                .push_bind(*b)
                .push(" AND time_ms >= ")
                .push_bind(day)
                .push(" AND time_ms < ")
                .push_bind(day + DAY_MS)
                .push(" ORDER BY time_ms, id LIMIT ")
                .push_bind(100i64)
                .push(format!(") AS b{i}"));
        }
        qb.push(") AS firsts ORDER BY time_ms, id LIMIT ")
            .push_bind(100i64)
            .push(") ORDER BY time_ms, id");
        let rows = qb.build().fetch_all(pool).await.unwrap();
        if std::env::var("BENCH_DEBUG").is_ok() {
            eprintln!("{} rows: {sql} over {} buckets", rows.len(), buckets.len());
        }
        return;
    }
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned())).bind("shop".to_owned());
    if sql.contains("distinct_id = $2") {
        q = q.bind(person);
    } else if sql.contains("time_ms >= $2") {
        q = q.bind(day).bind(day + DAY_MS);
    }
    if sql.contains("LIMIT $") {
        q = q.bind(100i64);
    }
    let rows = q.fetch_all(pool).await.unwrap();
    if std::env::var("BENCH_DEBUG").is_ok() {
        eprintln!("{} rows: {sql}", rows.len());
    }
}

/// A plain sqlx pool of 16 connections on the service's own database.
#[derive(Clone)]
enum RawPool {
    Sqlite(Pool<sqlx::Sqlite>),
    Postgres(Pool<sqlx::Postgres>),
}

/// Bytes the database holds, and its write-ahead log's size.
async fn sizes(raw: &RawPool, url: &str) -> (u64, u64) {
    if let RawPool::Sqlite(_) = raw {
        let path = url.trim_start_matches("sqlite:");
        let len = |p: String| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        (len(path.to_owned()), len(format!("{path}-wal")))
    } else {
        let RawPool::Postgres(pool) = raw else {
            unreachable!()
        };
        let (db,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(pool)
            .await
            .unwrap();
        let (wal,): (i64,) =
            sqlx::query_as("SELECT COALESCE(SUM(size), 0)::BIGINT FROM pg_ls_waldir()")
                .fetch_one(pool)
                .await
                .unwrap_or((0,));
        (db as u64, wal as u64)
    }
}

/// Grows the audit log to `entries` entries (64 writers), then times `auditgate log export`
/// in a process of its own and reads its peak memory.
async fn export_memory(
    label: &str,
    store: &SharedStore,
    log: &AuditLog,
    dir: &std::path::Path,
    entries: u64,
) {
    let have = store.audit_head().await.unwrap().size();
    let missing = entries.saturating_sub(have);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (log, next) = (log.clone(), next.clone());
            let project = ProjectId::parse("shop").unwrap();
            tokio::spawn(async move {
                while (next.fetch_add(1, Ordering::SeqCst) as u64) < missing {
                    log.record_cli(Action::AuditRead, Some(&project), 0, json!({"bench": true}))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let size = store.audit_head().await.unwrap().size();
    log.wait_signed(size - 1, Duration::from_secs(30))
        .await
        .unwrap();
    let out = dir.join("log.bundle");
    let start = Instant::now();
    let run = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_auditgate"))
        .args([
            "--config",
            dir.join("bench.toml").to_str().unwrap(),
            "log",
            "export",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let peak_kb: u64 = String::from_utf8_lossy(&run.stderr)
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    println!(
        "{label:<8} export: {} audit entries, {:.0} MB bundle in {:.1} s, peak memory {:.0} MB (auditgate log export)",
        size,
        std::fs::metadata(&out).unwrap().len() as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        peak_kb as f64 / 1024.0
    );
}

async fn run(
    label: &'static str,
    url: String,
    raw_url: String,
    dir: &std::path::Path,
    total: usize,
) {
    let mut settings = Settings::defaults();
    settings.audit.signing_key_file = dir.join(format!("{label}-signing.key"));
    settings.audit.pseudonym_key_file = dir.join(format!("{label}-pseudonym.key"));
    settings.auth.secret_key_file = dir.join(format!("{label}-secrets.key"));
    settings.server.bind = "127.0.0.1:0".into();
    // Ingestion limits are for anonymous callers; the benchmark is one trusted client.
    settings.server.rate_limit.public_per_second = 1_000_000;
    settings.server.rate_limit.public_burst = 1_000_000;
    settings.database.url = url.clone();
    if let Some(mib) = std::env::var("AUDITGATE_BENCH_SQLITE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.database.sqlite_cache_mib = mib;
    }
    std::fs::write(
        dir.join("bench.toml"),
        format!(
            "[database]\nurl = {url:?}\n[audit]\nsigning_key_file = {:?}\npseudonym_key_file = {:?}\n[auth]\nsecret_key_file = {:?}\n",
            settings.audit.signing_key_file, settings.audit.pseudonym_key_file, settings.auth.secret_key_file
        ),
    )
    .unwrap();
    let store: SharedStore = store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    let clock = SystemClock;
    let created = projects::create(
        store.as_ref(),
        &clock,
        ProjectId::parse("shop").unwrap(),
        None,
    )
    .await
    .unwrap();
    let mut raw_settings = settings.database.clone();
    raw_settings.url = raw_url;
    let raw_store = store::connect(&raw_settings).await.unwrap();
    raw_store.migrate().await.unwrap();
    projects::create(
        raw_store.as_ref(),
        &clock,
        ProjectId::parse("shop").unwrap(),
        None,
    )
    .await
    .unwrap();
    let app = Application::build_with_store(settings.clone(), Arc::new(clock), store.clone())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let log = app.audit();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let now = clock.now().millis();
    let token = created.project.ingest_token.clone();
    let auth = (
        created.service_account.name.clone(),
        created.secret.expose().to_owned(),
    );
    // The reads' raw baseline: the same SQL on the service's database, 16 connections.
    let mut read_settings = settings.database.clone();
    read_settings.max_connections = 16;
    let raw_pool = if label == "sqlite" {
        RawPool::Sqlite(
            store::sqlite::connect(&read_settings)
                .await
                .unwrap()
                .pool()
                .clone(),
        )
    } else {
        RawPool::Postgres(
            store::postgres::connect(&read_settings)
                .await
                .unwrap()
                .pool()
                .clone(),
        )
    };

    // Profiles for every person (not timed).
    for chunk in (0..PEOPLE).collect::<Vec<_>>().chunks(BATCH) {
        let updates: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"$token": token, "$distinct_id": format!("person-{p}"), "$set": {"plan": "pro", "seen": p}}))
            .collect();
        let r = client
            .post(format!("{base}/engage"))
            .form(&[("data", Value::Array(updates).to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let target = Target {
        label,
        base: base.clone(),
        client: client.clone(),
        secret: auth.1.clone(),
        raw: raw_pool.clone(),
        log: log.clone(),
        now,
    };
    let mut first = None;
    for start in (0..total).step_by(SEGMENT) {
        let rows: Arc<Vec<Value>> = Arc::new(
            (start..(start + SEGMENT).min(total))
                .map(|i| event(i, now, &token))
                .collect(),
        );
        let api = import(&client, &base, &auth, &rows).await;
        let raw = match raw_store.backend() {
            "sqlite" => {
                raw_insert(
                    store::sqlite::connect(&raw_settings).await.unwrap().pool(),
                    "BEGIN IMMEDIATE",
                    rows.clone(),
                    (BATCH, CLIENTS),
                )
                .await
            }
            _ => {
                raw_insert(
                    store::postgres::connect(&raw_settings)
                        .await
                        .unwrap()
                        .pool(),
                    "BEGIN",
                    rows.clone(),
                    (BATCH, CLIENTS),
                )
                .await
            }
        };
        let n = rows.len() as f64;
        let (api_rate, raw_rate) = (n / api.as_secs_f64(), n / raw.as_secs_f64());
        first.get_or_insert(api_rate);
        let (db, wal) = sizes(&raw_pool, &url).await;
        println!(
            "{label:<8} ingest {:>7}-{:<7}: /import {api_rate:>7.0} events/s | raw insert {raw_rate:>7.0} rows/s | {:>5.1}% | {:.2}x the first segment | db {:.0} MB, WAL {:.1} MB",
            start,
            start + rows.len(),
            100.0 * api_rate / raw_rate,
            api_rate / first.unwrap(),
            db as f64 / 1e6,
            wal as f64 / 1e6,
        );
        let done = start + rows.len();
        if done == SEGMENT.min(total) || done == total {
            let (db, wal) = sizes(&raw_pool, &url).await;
            println!(
                "{label:<8} {done:>7} events: {:.0} bytes per event (whole database), WAL {:.1} MB",
                db as f64 / done as f64,
                wal as f64 / 1e6
            );
            reads(&target, done).await;
            if label == "sqlite" {
                export_memory(
                    label,
                    &store,
                    &log,
                    dir,
                    if done == total && total >= 1_000_000 {
                        1_000_000
                    } else {
                        100_000
                    },
                )
                .await;
            }
        }
    }

    // Browser-shaped ingestion on the loaded table, beside raw inserts of the same rows in
    // transactions of the same size from as many clients.
    let p = &created.project;
    let opened = store::ProjectSettings {
        retention_days: p.retention_days,
        consent_required: p.consent_required,
        consent_property: p.consent_property.clone(),
        allowed_origins: AllowedOrigins::parse_list(&[BROWSER_ORIGIN.to_owned()]).unwrap(),
        record_client_ip: false,
    };
    store.update_project_settings(&p.id, &opened).await.unwrap();
    let n: usize = std::env::var("AUDITGATE_BENCH_BROWSER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    for crowd in [Crowd::BrowserPerBatch, Crowd::BrowserPerEvent] {
        let rows: Arc<Vec<Value>> = Arc::new(
            (0..n)
                .map(|i| browser_event(i, now, &token, crowd))
                .collect(),
        );
        let (api, refused) = track_like_a_browser(&client, &base, &rows).await;
        let shape = (BROWSER_BATCH, BROWSER_CLIENTS);
        let raw = match raw_store.backend() {
            "sqlite" => {
                let pool = store::sqlite::connect(&raw_settings).await.unwrap();
                raw_insert(pool.pool(), "BEGIN IMMEDIATE", rows.clone(), shape).await
            }
            _ => {
                let pool = store::postgres::connect(&raw_settings).await.unwrap();
                raw_insert(pool.pool(), "BEGIN", rows.clone(), shape).await
            }
        };
        // The rate counts stored events only: a refused batch is not ingestion.
        let stored = n - (refused * BROWSER_BATCH).min(n);
        let (api_rate, raw_rate) = (
            stored as f64 / api.as_secs_f64(),
            n as f64 / raw.as_secs_f64(),
        );
        println!(
            "{label:<8} browser {n} events on {total}, {}: POST /track/ (batches of {BROWSER_BATCH}, CORS, {BROWSER_CLIENTS} clients) {api_rate:>7.0} events/s, {refused} batches 503 | raw insert (transactions of {BROWSER_BATCH}, {BROWSER_CLIENTS} clients) {raw_rate:>7.0} rows/s | {:>5.1}%",
            crowd.label(),
            100.0 * api_rate / raw_rate,
        );
    }
}

/// The allocator the `auditgate` binary ships with (src/main.rs), so the service measured
/// here is the one deployed; the raw baselines in the same process get it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // Quiet unless asked: RUST_LOG=error shows what a failed answer's server side said.
    if std::env::var_os("RUST_LOG").is_some() {
        auditgate::telemetry::init(auditgate::config::LogFormat::Text, "error");
    }
    let total: usize = std::env::var("AUDITGATE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let backend = std::env::var("AUDITGATE_BENCH_BACKEND").ok();
    if backend.as_deref() != Some("postgres") {
        run(
            "sqlite",
            format!("sqlite:{}", dir.path().join("bench.db").display()),
            format!("sqlite:{}", dir.path().join("raw.db").display()),
            dir.path(),
            total,
        )
        .await;
    }
    if backend.as_deref() == Some("sqlite") {
        return;
    }
    if let (Some(db), Some(raw)) = (
        common::fresh_postgres("auditgate_scale").await,
        common::fresh_postgres("auditgate_raw").await,
    ) {
        run(
            "postgres",
            db.url.clone(),
            raw.url.clone(),
            dir.path(),
            total,
        )
        .await;
        db.remove().await;
        raw.remove().await;
    }
}
