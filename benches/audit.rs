//! The audit log's speed, each figure beside a raw baseline measured in the same run.
//!
//! `cargo bench --bench audit` prints: raw SHA-256 throughput and Ed25519 verification rate;
//! durable appends per second with 1, 16 and 64 concurrent requesters on SQLite and (with
//! AUDITGATE_TEST_POSTGRES_URL) PostgreSQL; time from an append to a stored signed checkpoint;
//! the latency one append adds to a request; offline verification speed against hashing
//! the same bytes alone; and inclusion and consistency proof latency at 10k, 100k and 1M
//! entries beside a one-row lookup of the same store, with the latency of a page of decoded
//! entries (`GET /api/v1/audit/entries`) at the same sizes, in process and (at the largest)
//! over HTTP from 1 and 16 clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditgate::audit::{AuditLog, system_draft};
use auditgate::clock::SystemClock;
use auditgate::config::Settings;
use auditgate::ledger::bundle::verify_text;
use auditgate::ledger::entry::{Action, chain_link};
use auditgate::ledger::merkle::leaf_hash;
use auditgate::ledger::note::SignerKey;
use auditgate::store::{self, SharedStore};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

mod common;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn raw_baselines() {
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(1) {
        std::hint::black_box(Sha256::digest(&buf));
        n += 1;
    }
    println!(
        "raw      SHA-256: {:.0} MB/s",
        n as f64 / start.elapsed().as_secs_f64() * 1.048576
    );
    let key = SignerKey::from_seed("bench.example/log", [9; 32]).unwrap();
    let note = auditgate::ledger::note::sign("bench.example/log\n1\nAAAA\n", &[&key]).unwrap();
    let parsed = auditgate::ledger::note::Note::parse(&note).unwrap();
    let trusted = [key.verifier()];
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(1) {
        parsed.verify(&trusted).unwrap();
        n += 1;
    }
    println!(
        "raw      Ed25519 verify: {:.0} signatures/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
}

async fn open(
    label: &str,
    url: String,
    dir: &std::path::Path,
) -> (SharedStore, AuditLog, Settings) {
    let mut settings = Settings::defaults();
    settings.database.url = url;
    settings.database.max_connections = 8;
    settings.audit.signing_key_file = dir.join(format!("{label}.key"));
    settings.audit.pseudonym_key_file = dir.join(format!("{label}.pseudonym"));
    settings.audit.write_timeout_ms = 30_000;
    let store = store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    let log = AuditLog::start(store.clone(), Arc::new(SystemClock), &settings.audit)
        .await
        .unwrap();
    (store, log, settings)
}

fn draft(i: usize) -> auditgate::ledger::chain::Draft {
    let mut d = system_draft(
        Action::EventsQuery,
        json!({"event": "Buy", "limit": 100, "i": i}),
    );
    d.project = Some("shop".into());
    d.records = 100;
    d.client_ip = Some("192.0.2.7".into());
    d.user_agent = Some("python-requests/2.32".into());
    d.request_id = Some(format!("{i:036}"));
    d.subjects = vec![[i as u8; 32]];
    d
}

async fn appends(label: &str, log: &AuditLog, concurrency: usize, total: usize) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..total / concurrency {
                log.append(draft(c * 1_000_000 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    println!(
        "{label:<8} durable appends, {concurrency:>2} concurrent requesters: {rate:>8.0}/s ({total} entries)"
    );
}

async fn latencies(label: &str, store: &SharedStore, log: &AuditLog) {
    let mut append = Vec::new();
    let mut signed = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        let seq = log.append(draft(i)).await.unwrap();
        append.push(t.elapsed());
        loop {
            if store
                .latest_checkpoint()
                .await
                .unwrap()
                .is_some_and(|(s, _)| s > seq)
            {
                break;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        signed.push(t.elapsed());
    }
    append.sort();
    signed.sort();
    println!(
        "{label:<8} latency one append adds to a request: p50 {:.2} ms, p99 {:.2} ms; append to stored signed checkpoint: p50 {:.2} ms, p99 {:.2} ms",
        pct(&append, 0.5),
        pct(&append, 0.99),
        pct(&signed, 0.5),
        pct(&signed, 0.99)
    );
}

async fn verification(
    store: &SharedStore,
    settings: &Settings,
    key: auditgate::ledger::note::VerifierKey,
) {
    let lines = auditgate::audit::export::Export::log(
        store.clone(),
        &settings.audit.origin,
        0,
        None,
        Some(1000),
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let bundle = auditgate::audit::export::to_text(&lines);
    let entries: Vec<Vec<u8>> = lines
        .iter()
        .filter_map(|l| match l {
            auditgate::ledger::bundle::Line::Entry { bytes, .. } => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(bytes)
                    .unwrap(),
            ),
            _ => None,
        })
        .collect();
    let checkpoints = lines.len() - entries.len() - 2;
    let start = Instant::now();
    let report = verify_text(&bundle, vec![key], None).unwrap();
    let verify = start.elapsed();
    // The hashing any verifier must do: every entry as a leaf and as a chain link, and the
    // Merkle tree's interior nodes.
    let start = Instant::now();
    let mut range = auditgate::ledger::merkle::CompactRange::new();
    for e in &entries {
        range.push(leaf_hash(e));
        std::hint::black_box(chain_link(e));
    }
    std::hint::black_box(range.root());
    let hashing = start.elapsed();
    let n = report.entries as f64;
    println!(
        "offline  verification: {:.0} entries/s ({} entries, {checkpoints} checkpoints, {:.1} MB) | hashing the same entries alone (leaf, chain link, tree): {:.0} entries/s | ratio {:.0}%",
        n / verify.as_secs_f64(),
        report.entries,
        bundle.len() as f64 / 1e6,
        n / hashing.as_secs_f64(),
        100.0 * hashing.as_secs_f64() / verify.as_secs_f64()
    );
}

/// Proof latency as the log grows: it must stay flat (O(log n) stored hashes per proof).
async fn proof_latency(
    label: &str,
    store: &SharedStore,
    postgres: Option<&str>,
    http: Option<&Settings>,
) {
    let mut next = store.audit_head().await.unwrap().size() as usize;
    // AUDITGATE_BENCH_LOG_SIZES (e.g. "10000,100000") measures fewer sizes, for a quick look.
    let sizes: Vec<usize> = std::env::var("AUDITGATE_BENCH_LOG_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    for &target in &sizes {
        while next < target {
            let n = (target - next).min(5_000);
            let drafts = (next..next + n).map(draft).collect::<Vec<_>>();
            let salts = vec![[7u8; 16]; n];
            store
                .append_audit(
                    drafts,
                    salts,
                    auditgate::clock::Clock::now(&SystemClock),
                    None,
                    &[],
                )
                .await
                .unwrap();
            next += n;
        }
        let size = next as u64;
        if let Some(url) = postgres {
            // What autovacuum does in production after a load like this (this machine's
            // PostgreSQL runs with autovacuum off): without it the planner believes the
            // table holds the few rows it had when last analysed.
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
        let mut inclusion = Vec::new();
        let mut consistency = Vec::new();
        let mut lookup = Vec::new();
        for i in 0..300u64 {
            let seq = i.wrapping_mul(2_654_435_761) % size;
            let t = Instant::now();
            auditgate::audit::proofs::inclusion_proof(store.as_ref(), seq, size)
                .await
                .unwrap();
            inclusion.push(t.elapsed());
            let t = Instant::now();
            auditgate::audit::proofs::consistency_proof(store.as_ref(), seq.max(1), size)
                .await
                .unwrap();
            consistency.push(t.elapsed());
            let t = Instant::now();
            store.audit_entries(seq, seq + 1).await.unwrap();
            lookup.push(t.elapsed());
        }
        for v in [&mut inclusion, &mut consistency, &mut lookup] {
            v.sort();
        }
        println!(
            "{label:<8} proofs at {size:>7} entries: inclusion p50 {:.2} ms p99 {:.2} ms, consistency p50 {:.2} ms p99 {:.2} ms | one-row lookup p50 {:.2} ms",
            pct(&inclusion, 0.5),
            pct(&inclusion, 0.99),
            pct(&consistency, 0.5),
            pct(&consistency, 0.99),
            pct(&lookup, 0.5),
        );
        let in_process = entry_pages(label, store, size, pct(&lookup, 0.5)).await;
        subject_reports(label, store, size, pct(&lookup, 0.5)).await;
        // Over HTTP at the largest size only: the server's log must be the last to append.
        if let Some(settings) = http.filter(|_| Some(&target) == sizes.last()) {
            http_entry_pages(label, store, settings, size, in_process).await;
        }
    }
}

/// The same page over HTTP, as an auditor's script or the console asks for it: `GET
/// /api/v1/audit/entries?project=shop&limit=100` with a service token holding `auditor` on
/// shop, from 1 and from 16 concurrent clients; each request also appends its own
/// `audit.read` entry, as in production. Beside it, the in-process page of the same run.
async fn http_entry_pages(
    label: &str,
    store: &SharedStore,
    settings: &Settings,
    size: u64,
    in_process_p99: f64,
) {
    use auditgate::admin::{Admin, Administrator, grants};
    let mut settings = settings.clone();
    let dir = settings.audit.signing_key_file.parent().unwrap().to_owned();
    settings.auth.secret_key_file = dir.join(format!("{label}-http-secrets.key"));
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.rate_limit.public_per_second = 1_000_000;
    settings.server.rate_limit.public_burst = 1_000_000;
    let clock = SystemClock;
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    let created = auditgate::projects::create(store.as_ref(), &clock, shop, None)
        .await
        .unwrap();
    let app = auditgate::startup::Application::build_with_store(
        settings.clone(),
        Arc::new(clock),
        store.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let log = app.audit();
    let admin = Admin {
        store,
        audit: &log,
        clock: &clock,
        access: &settings.access,
        project_grace_days: settings.retention.project_grace_days,
    };
    let new = grants::NewGrant::parse(
        "service_account",
        created.service_account.id.clone(),
        Some("auditor".into()),
        None,
        "shop".into(),
        "benchmark".into(),
        None,
    )
    .unwrap();
    grants::create(&admin, Administrator::Operator, new)
        .await
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let secret = created.secret.expose().to_owned();
    let url = format!("{base}/api/v1/audit/entries?project=shop&limit=100");
    let mut line = format!("{label:<8} entry pages over HTTP at {size:>7} entries:");
    for clients in [1usize, 16] {
        let per_client = if clients == 1 { 200 } else { 50 };
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..per_client {
                    let t = Instant::now();
                    let r = client.get(&url).bearer_auth(&secret).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    std::hint::black_box(r.bytes().await.unwrap());
                    times.push(t.elapsed());
                }
                times
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.unwrap());
        }
        let rate = times.len() as f64 / start.elapsed().as_secs_f64();
        times.sort();
        line.push_str(&format!(
            " {clients} client(s) p50 {:.2} ms p99 {:.2} ms ({rate:.0} pages/s),",
            pct(&times, 0.5),
            pct(&times, 0.99)
        ));
    }
    println!("{line} | in process, newest 100 p99 {in_process_p99:.2} ms");
}

/// What `POST /api/v1/audit/subject-report` reads: every entry here names one of 256
/// pseudonyms, so one person is named in 1 of 256 entries (about 3,900 at 1M, a heavy case).
/// A page of 100, every entry naming them decoded, and their whole bundle with proofs.
async fn subject_reports(label: &str, store: &SharedStore, size: u64, lookup_ms: f64) {
    use auditgate::audit::report::naming;
    let subject = [7u8; 32];
    let (mut page, mut whole, mut bundle) = (Vec::new(), Vec::new(), Vec::new());
    let mut named = 0;
    for _ in 0..20 {
        let t = Instant::now();
        std::hint::black_box(naming(store.as_ref(), &subject, None, 100).await.unwrap());
        page.push(t.elapsed());
        let t = Instant::now();
        let mut before = None;
        named = 0;
        loop {
            let p = naming(store.as_ref(), &subject, before, 500).await.unwrap();
            named += p.entries.len();
            match p.next_cursor {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        whole.push(t.elapsed());
    }
    for _ in 0..3 {
        let t = Instant::now();
        let mut lines = 0;
        let mut next = 0;
        // The bundle's reads, as `Export::subject` makes them: entries in chunks, then proofs.
        loop {
            let chunk = store
                .entries_naming(&subject, next..size, false, 2000)
                .await
                .unwrap();
            let seqs: Vec<u64> = chunk.iter().map(|e| e.seq).collect();
            let proofs = auditgate::audit::proofs::inclusion_proofs(store.as_ref(), &seqs, size)
                .await
                .unwrap();
            lines += proofs.len();
            match chunk.last() {
                Some(e) if chunk.len() == 2000 => next = e.seq + 1,
                _ => break,
            }
        }
        std::hint::black_box(lines);
        bundle.push(t.elapsed());
    }
    for v in [&mut page, &mut whole, &mut bundle] {
        v.sort();
    }
    println!(
        "{label:<8} subject report at {size:>7} entries ({named} name the person): newest 100 p50 {:.2} ms p99 {:.2} ms, all {named} decoded p50 {:.1} ms p99 {:.1} ms, bundle with proofs p50 {:.1} ms | one-row lookup p50 {lookup_ms:.2} ms",
        pct(&page, 0.5),
        pct(&page, 0.99),
        pct(&whole, 0.5),
        pct(&whole, 0.99),
        pct(&bundle, 0.5),
    );
}

/// What `GET /api/v1/audit/entries` reads: a page of 100 of a project's entries, newest and
/// from a cursor half-way down, and a page whose filter matches nothing (it looks at the most
/// entries a page may, then answers with a cursor).
async fn entry_pages(label: &str, store: &SharedStore, size: u64, lookup_ms: f64) -> f64 {
    use auditgate::audit::read::{EntryQuery, page};
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    let newest = EntryQuery {
        project: Some(shop.clone()),
        limit: 100,
        ..Default::default()
    };
    let deep = EntryQuery {
        before: Some(size / 2),
        ..newest.clone()
    };
    let nothing = EntryQuery {
        actor: Some("nobody".into()),
        ..newest.clone()
    };
    let mut newest_p99 = 0.0;
    let mut line = format!("{label:<8} entry pages at {size:>7} entries:");
    for (name, q, runs) in [
        ("newest 100", &newest, 100),
        ("100 from half-way", &deep, 100),
        ("no match", &nothing, 10),
    ] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(page(store.as_ref(), q).await.unwrap());
            times.push(t.elapsed());
        }
        times.sort();
        if name == "newest 100" {
            newest_p99 = pct(&times, 0.99);
        }
        line.push_str(&format!(
            " {name} p50 {:.2} ms p99 {:.2} ms,",
            pct(&times, 0.5),
            pct(&times, 0.99)
        ));
    }
    println!("{line} | one-row lookup p50 {lookup_ms:.2} ms");
    newest_p99
}

async fn run(label: &str, url: String, dir: &std::path::Path) {
    let (store, log, settings) = open(label, url, dir).await;
    appends(label, &log, 1, 1_000).await;
    appends(label, &log, 16, 16_000).await;
    appends(label, &log, 64, 64_000).await;
    latencies(label, &store, &log).await;
    if label == "sqlite" {
        verification(&store, &settings, log.verifier_key().clone()).await;
        // A log of its own, so the sizes are exactly 10k, 100k and 1M.
        let (store, _log, proof_settings) = open(
            "proofs",
            format!("sqlite:{}", dir.join("proofs.db").display()),
            dir,
        )
        .await;
        proof_latency("sqlite", &store, None, Some(&proof_settings)).await;
    } else if let Some(db) = common::fresh_postgres("auditgate_bench_proofs").await {
        // The same log of exactly 10k, 100k and 1M entries, on PostgreSQL.
        let (store, _log, proof_settings) = open("pg-proofs", db.url.clone(), dir).await;
        proof_latency("postgres", &store, Some(&db.url), Some(&proof_settings)).await;
        store.close().await;
        db.remove().await;
    }
}

/// The allocator the `auditgate` binary ships with (src/main.rs), so the service measured
/// here is the one deployed; the raw baselines in the same process get it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    raw_baselines();
    let dir = tempfile::tempdir().unwrap();
    // AUDITGATE_BENCH_BACKEND=postgres measures PostgreSQL alone.
    if std::env::var("AUDITGATE_BENCH_BACKEND").as_deref() != Ok("postgres") {
        run(
            "sqlite",
            format!("sqlite:{}", dir.path().join("audit.db").display()),
            dir.path(),
        )
        .await;
    }
    if let Some(db) = common::fresh_postgres("auditgate_bench_audit").await {
        run("postgres", db.url.clone(), dir.path()).await;
        db.remove().await;
    }
}
