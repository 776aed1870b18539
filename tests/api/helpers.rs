//! Spawns the real application on port 0 over a temporary SQLite file or a fresh PostgreSQL
//! database, with a manual clock, and one project ready to use.

use std::sync::Arc;

use auditgate::clock::{Clock, ManualClock, SystemClock};
use auditgate::config::Settings;
use auditgate::domain::ProjectId;
use auditgate::projects::{self, CreatedProject};
use auditgate::startup::Application;
use auditgate::store::{self, SharedStore};
use serde_json::Value;

/// The environment variable naming a PostgreSQL server for tests.
pub const PG_ENV: &str = "AUDITGATE_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's database lives; dropping it removes a SQLite folder.
pub struct TestDb {
    pub url: String,
    /// Holds the SQLite file (if any) and the audit keys.
    pub dir: tempfile::TempDir,
}

/// A database URL on the test PostgreSQL server, or `None` (after saying so) when unset.
pub fn postgres_server(test: &str) -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("AUDITGATE_REQUIRE_POSTGRES").is_ok() {
                panic!("{test}: {PG_ENV} is unset but AUDITGATE_REQUIRE_POSTGRES is set");
            }
            eprintln!(
                "SKIPPED {test}: set {PG_ENV} (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it on PostgreSQL"
            );
            None
        }
    }
}

/// A fresh, empty database of the given kind.
pub async fn fresh_db(backend: Backend, test: &str) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite:{}", dir.path().join("auditgate.db").display());
            Some(TestDb { url, dir })
        }
        Backend::Postgres => {
            let server = postgres_server(test)?;
            let name = format!("auditgate_test_{}", uuid_hex());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
                .await
                .unwrap();
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
            Some(TestDb {
                url: with_database(&server, &name),
                dir: tempfile::tempdir().unwrap(),
            })
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn uuid_hex() -> String {
    let mut b = [0u8; 8];
    getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// Settings for a test: port 0, the test's database, and its audit keys in its own folder.
pub fn test_settings(db: &TestDb) -> Settings {
    let db_url = db.url.as_str();
    let mut s = Settings::defaults();
    s.audit.signing_key_file = db.dir.path().join("audit-signing.key");
    s.audit.pseudonym_key_file = db.dir.path().join("pseudonym.key");
    s.auth.secret_key_file = db.dir.path().join("secrets.key");
    s.server.bind = "127.0.0.1:0".into();
    s.server.shutdown_timeout_secs = 1;
    s.database.url = db_url.to_owned();
    s.database.max_connections = 4;
    // Tests call the sign-in and public routes far faster than people do; the limits have
    // their own test.
    s.server.rate_limit.public_per_second = 1_000_000;
    s.server.rate_limit.public_burst = 1_000_000;
    s.server.rate_limit.signin_per_minute = 1_000_000;
    s.server.rate_limit.signin_burst = 1_000_000;
    s
}

/// A running application and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub origin: String,
    pub store: SharedStore,
    pub clock: ManualClock,
    pub project: CreatedProject,
    pub client: reqwest::Client,
    pub audit: auditgate::audit::AuditLog,
    pub _db: TestDb,
}

/// The app on a temporary SQLite file.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Sqlite, "spawn_app").await.unwrap()
}

/// The app on the given backend, or `None` when PostgreSQL is not configured.
pub async fn spawn_app_on(backend: Backend, test: &str) -> Option<TestApp> {
    let db = fresh_db(backend, test).await?;
    Some(spawn_with(test_settings(&db), db).await)
}

/// The app with custom settings over an existing test database.
pub async fn spawn_with(settings: Settings, db: TestDb) -> TestApp {
    // Errors the service logs show up in a failing test's output.
    auditgate::telemetry::init(auditgate::config::LogFormat::Text, "error");
    let clock = ManualClock::new(SystemClock.now());
    let store = store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    let project = projects::create(
        store.as_ref(),
        &clock,
        ProjectId::parse("shop").unwrap(),
        None,
    )
    .await
    .unwrap();
    let origin = settings.audit.origin.clone();
    let app = Application::build_with_store(settings, Arc::new(clock.clone()), store.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let audit = app.audit();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        origin,
        store,
        clock,
        project,
        client: reqwest::Client::new(),
        audit,
        _db: db,
    }
}

impl TestApp {
    /// The project's public ingestion token.
    pub fn token(&self) -> &str {
        &self.project.project.ingest_token
    }

    /// The project's service-account secret.
    pub fn secret(&self) -> &str {
        self.project.secret.expose()
    }

    /// Another project with its own credentials.
    pub async fn other_project(&self, id: &str) -> CreatedProject {
        projects::create(
            self.store.as_ref(),
            &self.clock,
            ProjectId::parse(id).unwrap(),
            None,
        )
        .await
        .unwrap()
    }

    /// A GET with the project's bearer token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(self.secret())
            .send()
            .await
            .unwrap()
    }

    /// A GET with no credentials.
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// Posts `data=<json>&verbose=1` as the SDKs do.
    pub async fn post_form(&self, path: &str, data: &Value) -> reqwest::Response {
        self.post_form_with(path, &[("data", data.to_string()), ("verbose", "1".into())])
            .await
    }

    /// Posts `data` as a form without `verbose=1`: failures come back as problems.
    pub async fn post_form_plain(&self, path: &str, data: &Value) -> reqwest::Response {
        self.post_form_with(path, &[("data", data.to_string())])
            .await
    }

    /// Posts these form fields.
    pub async fn post_form_with(&self, path: &str, fields: &[(&str, String)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// Posts a raw body to `/import` with the service account's Basic credentials.
    pub async fn import_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}/import", self.address))
            .basic_auth(&self.project.service_account.name, Some(self.secret()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Imports events as JSON.
    pub async fn import(&self, events: &Value) -> reqwest::Response {
        self.import_raw(events.to_string()).await
    }

    /// All events of the project, every page, as JSON objects.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/api/v1/projects/shop/events?limit=1000".to_owned();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: Value = self.get(&path).await.json().await.unwrap();
            out.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Now, in epoch seconds as the SDKs send it.
    pub fn now_secs(&self) -> i64 {
        self.clock.now().millis() / 1000
    }

    /// An event for `/import` with a unique `$insert_id`.
    pub fn event(&self, name: &str, who: &str, insert_id: &str) -> Value {
        serde_json::json!({
            "event": name,
            "properties": {"distinct_id": who, "time": self.now_secs() - 60, "$insert_id": insert_id, "token": self.token()}
        })
    }
}

/// Asserts the response is a problem with this status and returns its body.
/// Asserts a refusal in the shape Mixpanel gives after `verbose=1`; returns its `error`.
pub async fn assert_mixpanel_refusal(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 0, "{body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "status and error only: {body}"
    );
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty(), "{body}");
    error
}

pub async fn assert_problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "error bodies are problems");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a problem explains itself: {body}"
    );
    body
}

impl TestApp {
    /// The whole log as a bundle, and the entries in it.
    pub async fn export_log(&self) -> (String, Vec<auditgate::ledger::entry::Entry>) {
        let lines =
            auditgate::audit::export::Export::log(self.store.clone(), &self.origin, 0, None, None)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
        let entries = lines
            .iter()
            .filter_map(|l| match l {
                auditgate::ledger::bundle::Line::Entry { bytes, .. } => Some(decode_entry(bytes)),
                _ => None,
            })
            .collect();
        (auditgate::audit::export::to_text(&lines), entries)
    }

    /// One project's bundle, exported as the CLI does: its export entry first, then the
    /// project's entries up to and including it.
    pub async fn export_project(&self, project: &str) -> String {
        let project = ProjectId::parse(project).unwrap();
        let seq = self
            .audit
            .record_cli(
                auditgate::ledger::entry::Action::AuditExport,
                Some(&project),
                0,
                serde_json::json!({"scope": "project"}),
            )
            .await
            .unwrap();
        self.audit
            .wait_signed(seq, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let lines = auditgate::audit::export::Export::project(
            self.store.clone(),
            &self.origin,
            &project,
            seq + 1,
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        auditgate::audit::export::to_text(&lines)
    }

    /// The key that verifies this app's checkpoints.
    pub fn verifier_key(&self) -> auditgate::ledger::note::VerifierKey {
        let text = std::fs::read_to_string(self._db.dir.path().join("audit-signing.key")).unwrap();
        auditgate::ledger::note::SignerKey::parse(text.trim())
            .unwrap()
            .verifier()
    }

    /// Waits until the latest checkpoint covers every entry (checkpoints are stored just after commit).
    pub async fn settle(&self) {
        for _ in 0..200 {
            let head = self.store.audit_head().await.unwrap().size();
            if self
                .store
                .latest_checkpoint()
                .await
                .unwrap()
                .is_some_and(|(s, _)| s == head)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no checkpoint covers the head");
    }
}

/// An entry from its base64 canonical bytes.
pub fn decode_entry(b64: &str) -> auditgate::ledger::entry::Entry {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    auditgate::ledger::entry::Entry::decode(&bytes).unwrap()
}
