//! End-to-end sign-in against a real OpenID Provider: the certified `oidc-provider` npm
//! package (pinned in tests/oidc/package-lock.json), run on loopback by Node.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use auditgate::clock::Clock;
use auditgate::ledger::entry::{Action, AuthMethod, Outcome};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, fresh_db, spawn_with, test_settings};
use crate::signin::{Browser, free_port, resolve, sso_settings};

/// `oidc-provider` running under Node; killed when dropped.
pub struct NodeProvider {
    child: Child,
    pub issuer: String,
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder with the provider script and its node_modules.
pub fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Whether Node and the pinned packages are installed; says why not, or fails in CI.
pub fn node_ready(test: &str) -> bool {
    let node = Command::new("node").arg("--version").output().is_ok();
    let modules = oidc_dir().join("node_modules/oidc-provider").exists();
    if node && modules {
        return true;
    }
    if std::env::var("AUDITGATE_REQUIRE_OIDC").is_ok() {
        panic!(
            "{test}: Node or tests/oidc/node_modules is missing but AUDITGATE_REQUIRE_OIDC is set"
        );
    }
    eprintln!(
        "SKIPPED {test}: needs Node and `npm ci` in tests/oidc (node: {node}, node_modules: {modules})"
    );
    false
}

impl NodeProvider {
    /// Starts the provider for an app on `app_port`: `alg` RS256 or ES256, groups in the
    /// `id_token` or only from `userinfo`.
    pub fn start(alg: &str, groups: &str, app_port: u16) -> Self {
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(oidc_dir())
            .env("OP_ALG", alg)
            .env("OP_GROUPS", groups)
            .env(
                "OP_REDIRECT",
                format!("http://127.0.0.1:{app_port}/auth/callback"),
            )
            .env(
                "OP_BACKCHANNEL",
                format!("http://127.0.0.1:{app_port}/auth/backchannel-logout/corp"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let issuer = serde_json::from_str::<Value>(&line)
            .unwrap_or_else(|_| panic!("the provider printed {line:?}"))["issuer"]
            .as_str()
            .unwrap()
            .to_owned();
        Self { child, issuer }
    }
}

/// The app configured for a real provider started for it.
pub async fn app_with_node(alg: &str, groups: &str) -> (TestApp, NodeProvider) {
    let db = fresh_db(Backend::Sqlite, "oidc_e2e").await.unwrap();
    let port = free_port();
    let provider = NodeProvider::start(alg, groups, port);
    let mut s = sso_settings(
        test_settings(&db),
        db.dir.path(),
        &provider.issuer,
        "auditgate",
        "auditgate-e2e-secret",
    );
    s.server.bind = format!("127.0.0.1:{port}");
    s.auth.public_url = format!("http://127.0.0.1:{port}");
    s.access
        .group_roles
        .push(auditgate::config::GroupRoleSettings {
            group: "dpos".into(),
            role: "data_protection_officer".into(),
            project: "shop".into(),
            review_by: None,
        });
    s.access
        .group_roles
        .push(auditgate::config::GroupRoleSettings {
            group: "owners".into(),
            role: "owner".into(),
            project: "*".into(),
            review_by: None,
        });
    (spawn_with(s, db).await, provider)
}

/// Signs in through the provider's own sign-in form as `account`; returns our callback's answer.
pub async fn sign_in_as(b: &mut Browser, account: &str) -> Value {
    let start: Value = b
        .get("/auth/login?provider=corp")
        .await
        .json()
        .await
        .unwrap();
    let mut url = start["authorization_url"].as_str().unwrap().to_owned();
    for _ in 0..20 {
        let resp = b.get(&url).await;
        if resp.status().is_redirection() {
            url = resolve(&url, resp.headers()["location"].to_str().unwrap());
        } else if resp.status() == 200 && url.contains("/interaction/") {
            let form = resp.text().await.unwrap();
            assert!(form.contains("name=\"login\""), "{form}");
            let posted = b
                .client
                .post(format!("{url}/login"))
                .form(&[("login", account)])
                .send()
                .await
                .unwrap();
            assert!(posted.status().is_redirection(), "{}", posted.status());
            url = resolve(&url, posted.headers()["location"].to_str().unwrap());
        } else {
            panic!("{} at {url}: {}", resp.status(), resp.text().await.unwrap());
        }
        if url.starts_with(&b.base) {
            let resp = b.get(&url).await;
            assert_eq!(
                resp.status(),
                200,
                "callback: {}",
                resp.text().await.unwrap()
            );
            let body: Value = resp.json().await.unwrap();
            b.csrf = body["csrf_token"].as_str().map(str::to_owned);
            return body;
        }
    }
    panic!("too many redirects");
}

#[tokio::test]
async fn rs256_groups_in_the_id_token_full_journey_and_back_channel_logout() {
    if !node_ready("rs256_groups_in_the_id_token") {
        return;
    }
    let (app, op) = app_with_node("RS256", "id_token").await;
    let mut b = Browser::new(&app);
    assert_eq!(sign_in_as(&mut b, "alice").await["second_factor"], "enroll");
    assert_problem(b.get("/api/v1/projects/shop/events").await, 401).await;
    let secret = b.enroll(app.clock.now()).await;
    let used = secret.code_at(app.clock.now());
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["grants"][0]["role"], "analyst");
    assert_eq!(me["authentication"]["session"]["acr"], "urn:test:loa:1");
    assert!(me["authentication"]["session"]["auth_time"].is_string());
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    let out: Value = b
        .post("/auth/logout", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        out["end_session_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/session/end", op.issuer))
    );

    // Again: the used code is a replay; a fresh one passes.
    assert_eq!(sign_in_as(&mut b, "alice").await["second_factor"], "verify");
    assert_problem(b.verify(json!({"code": used})).await, 401).await;
    app.clock.advance_millis(30_000);
    let me = b
        .verify(json!({"code": secret.code_at(app.clock.now())}))
        .await;
    assert_eq!(me.status(), 200);
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);

    // Signing out at the provider ends the session here through the back channel.
    let end = b
        .get(&format!("{}/session/end?client_id=auditgate", op.issuer))
        .await
        .text()
        .await
        .unwrap();
    let xsrf = end
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no xsrf in {end}"));
    let confirm = b
        .client
        .post(format!("{}/session/end/confirm", op.issuer))
        .form(&[("xsrf", xsrf), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(confirm.status().is_redirection() || confirm.status() == 200);
    assert_problem(b.get("/api/v1/me").await, 401).await;

    app.settle().await;
    let (_, log) = app.export_log().await;
    let signin: Vec<_> = log
        .iter()
        .filter(|e| e.action == Action::SignIn && e.outcome == Outcome::Allowed)
        .collect();
    assert_eq!(signin.len(), 2);
    let d: Value = serde_json::from_str(&signin[0].details).unwrap();
    assert_eq!(d["issuer"], op.issuer);
    assert_eq!(d["amr"], json!(["pwd"]));
    assert!(log.iter().any(|e| e.action == Action::ProviderLogout));
    assert!(log.iter().any(|e| e.action == Action::SecondFactorFailed));
    assert!(
        log.iter()
            .filter(|e| e.action == Action::EventsQuery && e.outcome == Outcome::Allowed)
            .all(|e| e.actor.method == AuthMethod::Oidc && e.actor.second_factor)
    );
}

#[tokio::test]
async fn es256_groups_only_from_userinfo() {
    if !node_ready("es256_groups_only_from_userinfo") {
        return;
    }
    let (app, _op) = app_with_node("ES256", "userinfo").await;
    let mut b = Browser::new(&app);
    assert_eq!(sign_in_as(&mut b, "alice").await["second_factor"], "enroll");
    b.enroll(app.clock.now()).await;
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com", "email came from userinfo");
    assert_eq!(me["grants"][0]["source"]["group"], "analysts");
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);

    // Bob's group makes him an auditor: the log, no event data.
    let mut bob = Browser::new(&app);
    sign_in_as(&mut bob, "bob").await;
    bob.enroll(app.clock.now()).await;
    let me: Value = bob.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["grants"][0]["role"], "auditor");
    assert_problem(bob.get("/api/v1/projects/shop/events").await, 403).await;
}

/// Debian's Chromium, or the one `CHROMIUM` names.
fn chromium() -> Option<String> {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    std::path::Path::new(&path).exists().then_some(path)
}

#[tokio::test]
async fn a_browser_walks_the_sign_in_pages() {
    let test = "a_browser_walks_the_sign_in_pages";
    if !node_ready(test) {
        return;
    }
    let Some(chromium) = chromium() else {
        if std::env::var("AUDITGATE_REQUIRE_BROWSER").is_ok() {
            panic!("{test}: /usr/bin/chromium is missing but AUDITGATE_REQUIRE_BROWSER is set");
        }
        eprintln!("SKIPPED {test}: install Debian's chromium (apt-get install chromium)");
        return;
    };
    let (app, op) = app_with_node("RS256", "id_token").await;
    let address = app.address.clone();
    let time = app.clock.now().millis().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser.mjs")
            .current_dir(oidc_dir())
            .env("APP", address)
            .env("APP_TIME_MS", time)
            .env("CHROMIUM", chromium)
            .stderr(Stdio::inherit())
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["qr_size"].as_u64().unwrap() >= 100, "{seen}");
    assert!(
        seen["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert_eq!(seen["recovery_codes"], 10);
    assert!(seen["who"].as_str().unwrap().contains("alice@example.com"));
    assert_eq!(seen["events_status"], 200);
    assert_eq!(seen["events_body_has_events"], true);
    assert_eq!(
        seen["after_logout"], "/session/end",
        "sent on to the provider"
    );
    assert_eq!(seen["replay_status"], 401);
    assert!(
        seen["notices"].as_u64().unwrap() >= 1,
        "the replay is shown"
    );

    app.settle().await;
    let (_, log) = app.export_log().await;
    let count = |a: Action, o: Outcome| {
        log.iter()
            .filter(|e| e.action == a && e.outcome == o)
            .count()
    };
    assert_eq!(count(Action::SignIn, Outcome::Allowed), 2);
    assert_eq!(count(Action::SecondFactorEnroll, Outcome::Allowed), 1);
    assert_eq!(count(Action::SecondFactorFailed, Outcome::Denied), 1);
    assert_eq!(count(Action::SecondFactor, Outcome::Allowed), 1);
    assert_eq!(count(Action::SignOut, Outcome::Allowed), 1);
    assert_eq!(count(Action::EventsQuery, Outcome::Allowed), 1);
    drop(op);
}

#[tokio::test]
async fn every_role_walks_the_console_in_chromium_and_what_it_downloads_verifies() {
    let test = "every_role_walks_the_console_in_chromium_and_what_it_downloads_verifies";
    if !node_ready(test) {
        return;
    }
    let Some(chromium) = chromium() else {
        if std::env::var("AUDITGATE_REQUIRE_BROWSER").is_ok() {
            panic!("{test}: /usr/bin/chromium is missing but AUDITGATE_REQUIRE_BROWSER is set");
        }
        eprintln!("SKIPPED {test}: install Debian's chromium (apt-get install chromium)");
        return;
    };
    let (app, op) = app_with_node("RS256", "id_token").await;
    for who in ["cust-named", "cust-erased"] {
        let r = app
            .import(&json!([app.event("Buy", who, &format!("{who}-1"))]))
            .await;
        assert_eq!(r.status(), 200);
        let r = app
            .get(&format!("/api/v1/projects/shop/events?distinct_id={who}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    // What the analyst explores: a sign-up carrying an e-mail marked sensitive, a profile.
    let t = app.now_secs();
    let r = app
        .import(&json!([{"event": "Signup", "properties": {"distinct_id": "cust-named", "time": t - 86_400, "$insert_id": "su-1", "email": "hidden@example.com"}}]))
        .await;
    assert_eq!(r.status(), 200);
    app.post_form(
        "/engage",
        &json!([{"$token": app.token(), "$distinct_id": "cust-named", "$set": {"$email": "hidden@example.com", "tier": "gold"}}]),
    )
    .await;
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    for (kind, name) in [
        (auditgate::store::PropertyKind::Event, "email"),
        (auditgate::store::PropertyKind::Profile, "$email"),
    ] {
        app.store
            .classify(&shop, kind, name, "test", app.clock.now())
            .await
            .unwrap();
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-output/console");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let (address, time, dir) = (
        app.address.clone(),
        app.clock.now().millis().to_string(),
        out.clone(),
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("console.mjs")
            .current_dir(oidc_dir())
            .env("APP", address)
            .env("APP_TIME_MS", time)
            .env("CHROMIUM", chromium)
            .env("OUT", dir)
            .env("NAMED", "cust-named")
            .env("ERASED", "cust-erased")
            .stderr(Stdio::inherit())
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["erasure_state"], "SUCCESS", "{seen}");
    assert_eq!(seen["custom_role"], "events:read", "{seen}");
    assert!(
        seen["service_token_length"].as_u64().unwrap() > 20,
        "{seen}"
    );
    assert_eq!(seen["retention_after"], "120", "{seen}");
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    let stored = app.store.project(&shop).await.unwrap().unwrap();
    assert_eq!(stored.retention_days, 120, "saved, not only typed");
    assert_eq!(
        seen["home_path"], "/console",
        "sign-in lands on the home page"
    );
    assert_eq!(seen["home_cards"], 3, "{seen}");
    assert!(seen["filtered_rows"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["filtered_all_queries"], true);
    assert_eq!(seen["entry_action"], "events.query");
    assert!(seen["proof_hashes"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(seen["named_standing"], "named");
    assert!(seen["named_rows"].as_u64().unwrap() >= 1);
    assert_eq!(seen["erased_standing"], "erased");
    assert!(
        seen["erased_message"]
            .as_str()
            .unwrap()
            .contains("no report can be made"),
        "{seen}"
    );
    assert_eq!(seen["error_status"], 404);
    assert_eq!(seen["csp_violations"], json!([]), "{seen}");
    assert_eq!(seen["analyst_has_audit"], false);
    assert_eq!(
        seen["explorer_rows"], 2,
        "the erased person's event is gone: {seen}"
    );
    assert!(seen["explorer_redacted"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["explorer_bars"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["explorer_filtered_rows"], 1);
    assert!(seen["profile_redacted"].as_u64().unwrap() >= 1, "{seen}");
    // An employee asked, an owner approved and granted more, a second owner approved that.
    assert_eq!(seen["asked_state"], "pending");
    assert_eq!(seen["granted_state"], "granted");
    assert!(
        seen["duty_note"]
            .as_str()
            .unwrap()
            .contains("separation of duties")
    );
    assert_eq!(seen["emma_sees_events"], true);
    assert_eq!(seen["emma_grants_after_second_approval"], true, "{seen}");
    let pages = seen["pages"].as_object().unwrap();
    assert_eq!(pages.len(), 19, "{seen}");
    for (name, p) in pages {
        assert_eq!(p["axe"], json!([]), "axe-core on {name}: {p}");
        assert!(
            p["overflow_at_360"].as_i64().unwrap() <= 0,
            "{name} at 360 px: {p}"
        );
        assert_ne!(
            p["dark_background"], "rgb(255, 255, 255)",
            "{name} follows a dark scheme"
        );
        for variant in ["", "-dark", "-360"] {
            assert!(out.join(format!("{name}{variant}.png")).exists());
        }
    }

    // What the auditor downloaded verifies offline, with the command the page showed.
    let key = app.verifier_key().to_string();
    assert!(seen["verify_command"].as_str().unwrap().contains(&key));
    for (file, says) in [
        ("shop.bundle", "entries of project shop"),
        ("subject.bundle", "naming subject"),
    ] {
        let verified = Command::new(env!("CARGO_BIN_EXE_auditgate-verify"))
            .arg(out.join(file))
            .args(["--key", &key])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&verified.stdout);
        assert_eq!(verified.status.code(), Some(0), "{file}: {text}");
        assert!(text.contains(says), "{file}: {text}");
    }

    // And every page's read is in the log, as its API call's would be.
    app.settle().await;
    let (_, log) = app.export_log().await;
    let by_bob = |a: Action| {
        log.iter()
            .filter(|e| {
                e.action == a && e.actor.method == AuthMethod::Oidc && e.outcome == Outcome::Allowed
            })
            .count()
    };
    assert!(by_bob(Action::AuditRead) >= 4, "log pages and the entry");
    assert_eq!(by_bob(Action::AuditExport), 1);
    assert_eq!(
        by_bob(Action::AuditSubjectReport),
        3,
        "two reports and a bundle"
    );
    drop(op);
}
