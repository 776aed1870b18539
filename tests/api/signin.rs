//! Sign-in against the in-process fake provider: the whole journey, and every way an ID token
//! or a callback can be wrong. The same journey against a real OpenID Provider is in
//! `oidc_e2e.rs`.

use auditgate::auth::password;
use auditgate::auth::totp::TotpSecret;
use auditgate::clock::Clock;
use auditgate::config::{GroupRoleSettings, ProviderSettings, Settings};
use auditgate::domain::Timestamp;
use auditgate::ledger::entry::{Action, ActorKind, AuthMethod, Entry, Outcome};
use auditgate::store::{User, UserKind};
use serde_json::{Value, json};

use crate::fake_idp::{FakeIdp, Signer};
use crate::helpers::{Backend, TestApp, assert_problem, fresh_db, spawn_with, test_settings};

/// A free loopback port (the redirect URI must be known before the app starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Settings with one provider called `corp` and `analysts` holding analyst on `shop`.
pub fn sso_settings(
    base: Settings,
    dir: &std::path::Path,
    issuer: &str,
    client_id: &str,
    secret: &str,
) -> Settings {
    let mut s = base;
    let port = free_port();
    s.server.bind = format!("127.0.0.1:{port}");
    s.auth.public_url = format!("http://127.0.0.1:{port}");
    let secret_file = dir.join(format!("client-secret-{port}"));
    std::fs::write(&secret_file, secret).unwrap();
    s.auth.providers = vec![ProviderSettings {
        name: "corp".into(),
        display_name: Some("Corp SSO".into()),
        issuer: issuer.into(),
        client_id: client_id.into(),
        client_secret_env: None,
        client_secret_file: Some(secret_file),
        scopes: vec!["email".into(), "profile".into(), "groups".into()],
        email_claim: "email".into(),
        groups_claim: "groups".into(),
        allowed_email_domains: vec![],
        accept_provider_mfa: false,
    }];
    s.access.group_roles = vec![
        GroupRoleSettings {
            group: "analysts".into(),
            role: "analyst".into(),
            project: "shop".into(),
            review_by: None,
        },
        GroupRoleSettings {
            group: "auditors".into(),
            role: "auditor".into(),
            project: "*".into(),
            review_by: None,
        },
    ];
    s
}

/// The app with the fake provider configured.
async fn app_with_idp(tweak: impl FnOnce(&mut Settings)) -> (TestApp, FakeIdp) {
    let idp = FakeIdp::start();
    let db = fresh_db(Backend::Sqlite, "signin").await.unwrap();
    let mut s = sso_settings(
        test_settings(&db),
        db.dir.path(),
        &idp.issuer,
        &idp.client_id,
        &idp.client_secret,
    );
    tweak(&mut s);
    let app = spawn_with(s, db).await;
    idp.use_clock(app.clock.clone());
    (app, idp)
}

/// A browser: keeps cookies, does not follow redirects on its own, asks for JSON.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub csrf: Option<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.address.clone(),
            csrf: None,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("accept", "application/json")
            .json(&body);
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send().await.unwrap()
    }

    /// Starts SSO, lets the provider answer, and returns the callback's response.
    pub async fn sign_in_raw(&self, extra_query: &str) -> reqwest::Response {
        let start: Value = self
            .get(&format!("/auth/login?provider=corp{extra_query}"))
            .await
            .json()
            .await
            .unwrap();
        let mut url = start["authorization_url"].as_str().unwrap().to_owned();
        // Follow the provider's redirects (its login and consent) back to our callback.
        for _ in 0..10 {
            let resp = self.get(&url).await;
            if resp.status().is_redirection() {
                url = resolve(&url, resp.headers()["location"].to_str().unwrap());
                if url.starts_with(&self.base) {
                    return self.get(&url).await;
                }
            } else {
                panic!("the provider answered {} at {url}", resp.status());
            }
        }
        panic!("too many redirects");
    }

    /// Signs in and returns the callback's JSON (`second_factor`: enroll, verify or done).
    pub async fn sign_in(&mut self) -> Value {
        let resp = self.sign_in_raw("").await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        self.csrf = body["csrf_token"].as_str().map(str::to_owned);
        body
    }

    /// Enrolls TOTP and returns the secret.
    pub async fn enroll(&mut self, now: Timestamp) -> TotpSecret {
        let e: Value = self.get("/auth/2fa/enroll").await.json().await.unwrap();
        let secret = secret_of(e["secret"].as_str().unwrap());
        assert!(
            e["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
        let resp = self
            .post("/auth/2fa/enroll", json!({"code": secret.code_at(now)}))
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
        self.csrf = body["csrf_token"].as_str().map(str::to_owned);
        secret
    }

    /// Creates a personal token and returns its secret.
    pub async fn personal_token(&self, name: &str, days: i64) -> String {
        let created: Value = self
            .post(
                "/api/v1/tokens",
                json!({"name": name, "expires_in_days": days}),
            )
            .await
            .json()
            .await
            .unwrap();
        created["token"].as_str().unwrap().to_owned()
    }

    /// Passes 2-step verification with a code or a recovery code.
    pub async fn verify(&mut self, body: Value) -> reqwest::Response {
        let resp = self.post("/auth/2fa/verify", body).await;
        if resp.status() == 200 {
            let body: Value = resp.json().await.unwrap();
            self.csrf = body["csrf_token"].as_str().map(str::to_owned);
            return self.get("/api/v1/me").await;
        }
        resp
    }
}

/// A redirect's target, made absolute against the URL that sent it.
pub fn resolve(current: &str, location: &str) -> String {
    if location.starts_with("http") {
        return location.to_owned();
    }
    let origin: String = current.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    format!("{origin}{location}")
}

pub fn secret_of(base32: &str) -> TotpSecret {
    let bytes = totp_rs::Secret::try_from_base32(base32).unwrap();
    TotpSecret::from_bytes(bytes.as_bytes().try_into().unwrap())
}

async fn entries(app: &TestApp) -> Vec<Entry> {
    app.settle().await;
    app.export_log().await.1
}

fn find(entries: &[Entry], action: Action, outcome: Outcome) -> Vec<&Entry> {
    entries
        .iter()
        .filter(|e| e.action == action && e.outcome == outcome)
        .collect()
}

fn details(e: &Entry) -> Value {
    serde_json::from_str(&e.details).unwrap()
}

#[tokio::test]
async fn the_whole_journey_signs_in_enrolls_refuses_a_replay_reads_and_signs_out() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let mut b = Browser::new(&app);

    let first = b.sign_in().await;
    assert_eq!(first["second_factor"], "enroll");
    // A partial session reaches nothing but the 2-step pages.
    let body = assert_problem(b.get("/api/v1/projects/shop/events").await, 401).await;
    assert_eq!(body["second_factor_required"], true);
    assert_problem(b.get("/api/v1/me").await, 401).await;

    let secret = b.enroll(app.clock.now()).await;
    let used = secret.code_at(app.clock.now());
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["authentication"]["method"], "oidc");
    assert_eq!(me["authentication"]["second_factor"], true);
    assert_eq!(me["authentication"]["session"]["amr"], json!(["pwd"]));
    assert_eq!(me["grants"][0]["role"], "analyst");
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    // Analyst on shop only: another project is refused, not leaked.
    app.other_project("bank").await;
    assert_problem(b.get("/api/v1/projects/bank/events").await, 403).await;
    assert_eq!(b.post("/auth/logout", json!({})).await.status(), 200);
    assert_problem(b.get("/api/v1/me").await, 401).await;

    // Signing in again: the code already used is refused as a replay, and noticed.
    let again = b.sign_in().await;
    assert_eq!(again["second_factor"], "verify");
    let refused = assert_problem(b.verify(json!({"code": used})).await, 401).await;
    assert!(refused["detail"].as_str().unwrap().contains("already used"));
    app.clock.advance_millis(30_000);
    let me: Value = b
        .verify(json!({"code": secret.code_at(app.clock.now())}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["security_notices"][0]["kind"], "totp_replay");
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    assert_eq!(b.post("/auth/logout", json!({})).await.status(), 200);

    let log = entries(&app).await;
    let signins = find(&log, Action::SignIn, Outcome::Allowed);
    assert_eq!(signins.len(), 2);
    assert_eq!(details(signins[0])["provisioned"], true);
    assert_eq!(details(signins[1])["provisioned"], false);
    assert_eq!(details(signins[0])["amr"], json!(["pwd"]));
    assert_eq!(
        find(&log, Action::SecondFactorEnroll, Outcome::Allowed).len(),
        1
    );
    let replay = find(&log, Action::SecondFactorFailed, Outcome::Denied);
    assert_eq!(details(replay[0])["reason"], "replayed");
    assert_eq!(find(&log, Action::SecondFactor, Outcome::Allowed).len(), 1);
    assert_eq!(find(&log, Action::SignOut, Outcome::Allowed).len(), 2);
    let reads = find(&log, Action::EventsQuery, Outcome::Allowed);
    assert_eq!(reads.len(), 2);
    for r in reads {
        assert_eq!(r.actor.kind, ActorKind::User);
        assert_eq!(r.actor.method, AuthMethod::Oidc);
        assert!(r.actor.second_factor);
        assert!(
            !r.actor.id.contains('@'),
            "people are named by id, not email"
        );
    }
    let denied = find(&log, Action::EventsQuery, Outcome::Denied);
    assert_eq!(details(denied[0])["missing_permission"], "events:read");
    let partial = find(&log, Action::AuthRejected, Outcome::Denied);
    assert!(partial.iter().any(|e| e.actor.kind == ActorKind::User));
}

/// Creates the break-glass account root@example.com; returns its password.
pub(crate) async fn break_glass(app: &TestApp) -> &'static str {
    let user = User {
        id: "bg-admin".into(),
        email: "root@example.com".into(),
        name: None,
        kind: UserKind::Local,
        created_at: app.clock.now(),
        last_signin_at: None,
        disabled_at: None,
    };
    let pw = "a long break-glass passphrase";
    app.store
        .create_local_user(&user, &password::hash(pw).unwrap())
        .await
        .unwrap();
    pw
}

async fn signed_in(app: &TestApp) -> (Browser, TotpSecret) {
    let mut b = Browser::new(app);
    b.sign_in().await;
    let secret = b.enroll(app.clock.now()).await;
    (b, secret)
}

#[tokio::test]
async fn groups_only_in_userinfo_still_grant_access() {
    let (app, idp) = app_with_idp(|_| {}).await;
    idp.set(|b| b.groups_in_id_token = false);
    let (b, _) = signed_in(&app).await;
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["grants"][0]["source"]["group"], "analysts");
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
}

#[tokio::test]
async fn state_changes_with_a_cookie_need_the_csrf_token() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (mut b, _) = signed_in(&app).await;
    let token = b.csrf.take();
    let resp = b
        .post(
            "/api/v1/tokens",
            json!({"name": "nb", "expires_in_days": 7}),
        )
        .await;
    let body = assert_problem(resp, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("CSRF"));
    // A cross-site form post carries the cookie but not the token.
    let resp = b
        .client
        .post(format!("{}/auth/logout", b.base))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    let refused = assert_problem(resp, 403).await;
    // It names the origin pages must come from (auth.public_url), never the one sent.
    let detail = refused["detail"].as_str().unwrap();
    let expected = auditgate::config::origin_of(&b.base);
    assert!(
        detail.contains(expected) && detail.contains("auth.public_url"),
        "{detail}"
    );
    assert!(!detail.contains("evil"), "{detail}");
    b.csrf = Some("wrong".into());
    assert_problem(b.post("/auth/logout", json!({})).await, 403).await;
    b.csrf = token;
    assert_eq!(
        b.post(
            "/api/v1/tokens",
            json!({"name": "nb", "expires_in_days": 7})
        )
        .await
        .status(),
        201
    );
    let log = entries(&app).await;
    assert!(
        find(&log, Action::AuthRejected, Outcome::Denied)
            .iter()
            .any(|e| details(e)["reason"].as_str().unwrap().contains("CSRF"))
    );
}

#[tokio::test]
async fn sensitive_actions_need_a_recent_step_up() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (mut b, secret) = signed_in(&app).await;
    app.clock.advance_millis(11 * 60_000);
    let resp = b
        .post(
            "/api/v1/tokens",
            json!({"name": "nb", "expires_in_days": 7}),
        )
        .await;
    let body = assert_problem(resp, 401).await;
    assert_eq!(body["step_up_required"], true);
    // Reading data needs no step-up.
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    b.verify(json!({"code": secret.code_at(app.clock.now())}))
        .await;
    assert_eq!(
        b.post(
            "/api/v1/tokens",
            json!({"name": "nb", "expires_in_days": 7})
        )
        .await
        .status(),
        201
    );
}

#[tokio::test]
async fn account_changes_are_logged_before_they_are_made() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (b, _secret) = signed_in(&app).await;
    let created: Value = b
        .post(
            "/api/v1/tokens",
            json!({"name": "nb", "expires_in_days": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // An id that is not one of mine: 404, and no entry says it was ended or revoked.
    assert_problem(b.delete("/api/v1/tokens/nope").await, 404).await;
    assert_problem(b.delete("/api/v1/sessions/nope").await, 404).await;
    let log = entries(&app).await;
    assert!(find(&log, Action::TokenRevoke, Outcome::Allowed).is_empty());
    assert!(find(&log, Action::SessionEnd, Outcome::Allowed).is_empty());
    // While the log cannot be written, nothing changes: no token is made and none revoked.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&app._db.url).await.unwrap();
    let trigger = "CREATE TRIGGER fail_closed_test BEFORE INSERT ON audit_entries \
                   BEGIN SELECT RAISE(ABORT, 'disk full'); END";
    sqlx::query(trigger).execute(&mut conn).await.unwrap();
    let asked = b
        .post(
            "/api/v1/tokens",
            json!({"name": "nb2", "expires_in_days": 2}),
        )
        .await;
    assert_problem(asked, 503).await;
    assert_problem(b.delete(&format!("/api/v1/tokens/{id}")).await, 503).await;
    sqlx::query("DROP TRIGGER fail_closed_test")
        .execute(&mut conn)
        .await
        .unwrap();
    let list: Value = b.get("/api/v1/tokens").await.json().await.unwrap();
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{list}");
    assert!(tokens[0]["revoked_at"].is_null(), "{list}");
    // Once it can, the revocation goes through and is logged.
    assert_eq!(
        b.delete(&format!("/api/v1/tokens/{id}")).await.status(),
        204
    );
    let log = entries(&app).await;
    assert_eq!(find(&log, Action::TokenRevoke, Outcome::Allowed).len(), 1);
}

#[tokio::test]
async fn personal_tokens_act_for_their_owner_until_revoked_or_expired() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (b, secret) = signed_in(&app).await;
    let resp = b
        .post(
            "/api/v1/tokens",
            json!({"name": "notebook", "expires_in_days": 91}),
        )
        .await;
    assert_problem(resp, 422).await;
    let created: Value = b
        .post(
            "/api/v1/tokens",
            json!({"name": "notebook", "expires_in_days": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("agp_"));
    let get = |path: &str| {
        app.client
            .get(format!("{}{path}", app.address))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        get("/api/v1/projects/shop/events").await.unwrap().status(),
        200
    );
    // Never more than its owner: the owner has no grant on bank.
    app.other_project("bank").await;
    assert_problem(get("/api/v1/projects/bank/events").await.unwrap(), 403).await;
    let me: Value = get("/api/v1/me").await.unwrap().json().await.unwrap();
    assert_eq!(me["authentication"]["method"], "personal_token");
    // A token cannot mint tokens: that needs a verified session.
    let resp = app
        .client
        .post(format!("{}/api/v1/tokens", app.address))
        .bearer_auth(token)
        .json(&json!({"name": "x", "expires_in_days": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401).await;
    let list: Value = b.get("/api/v1/tokens").await.json().await.unwrap();
    assert_eq!(list["tokens"][0]["name"], "notebook");
    assert!(list["tokens"][0].get("token").is_none());
    assert!(!list.to_string().contains(token));

    app.clock.advance_millis(2 * 86_400_000);
    let body = assert_problem(get("/api/v1/projects/shop/events").await.unwrap(), 401).await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    // A second token, revoked: refused at once.
    let mut b2 = Browser::new(&app);
    b2.sign_in().await;
    b2.verify(json!({"code": secret.code_at(app.clock.now())}))
        .await;
    let created: Value = b2
        .post(
            "/api/v1/tokens",
            json!({"name": "script", "expires_in_days": 30}),
        )
        .await
        .json()
        .await
        .unwrap();
    let second = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        b2.delete(&format!("/api/v1/tokens/{id}")).await.status(),
        204
    );
    let resp = app
        .client
        .get(format!("{}/api/v1/projects/shop/events", app.address))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
    let log = entries(&app).await;
    assert_eq!(find(&log, Action::TokenCreate, Outcome::Allowed).len(), 2);
    assert_eq!(find(&log, Action::TokenRevoke, Outcome::Allowed).len(), 1);
    assert!(
        find(&log, Action::EventsQuery, Outcome::Allowed)
            .iter()
            .any(|e| e.actor.method == AuthMethod::PersonalToken)
    );
}

#[tokio::test]
async fn repeated_wrong_codes_lock_and_recovery_codes_work_once() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let e: Value = b.get("/auth/2fa/enroll").await.json().await.unwrap();
    let secret = secret_of(e["secret"].as_str().unwrap());
    let resp = b
        .post(
            "/auth/2fa/enroll",
            json!({"code": secret.code_at(app.clock.now())}),
        )
        .await;
    let codes: Value = resp.json().await.unwrap();
    let recovery = codes["recovery_codes"][0].as_str().unwrap().to_owned();
    assert_eq!(
        b.post("/auth/logout", json!({})).await.status(),
        403,
        "no CSRF token yet"
    );
    b.csrf = codes["csrf_token"].as_str().map(str::to_owned);
    assert_eq!(b.post("/auth/logout", json!({})).await.status(), 200);

    b.sign_in().await;
    assert_problem(b.verify(json!({"code": "12345"})).await, 422).await;
    for _ in 0..5 {
        assert_problem(b.verify(json!({"code": "000000"})).await, 401).await;
    }
    app.clock.advance_millis(30_000);
    let locked = assert_problem(
        b.verify(json!({"code": secret.code_at(app.clock.now())}))
            .await,
        429,
    )
    .await;
    assert!(locked["locked_until"].is_string());
    app.clock.advance_millis(15 * 60_000);
    // The idle timeout passed too: sign in again, then a recovery code works, once.
    b.sign_in().await;
    let me = b
        .verify(json!({"recovery_code": recovery.to_uppercase()}))
        .await;
    assert_eq!(me.status(), 200);
    assert_eq!(b.post("/auth/logout", json!({})).await.status(), 200);
    b.sign_in().await;
    assert_problem(b.verify(json!({"recovery_code": recovery})).await, 401).await;

    let log = entries(&app).await;
    let lockouts = find(&log, Action::Lockout, Outcome::Denied);
    assert!(lockouts.len() >= 2, "the lock and the refusal while locked");
    let used = find(&log, Action::SecondFactor, Outcome::Allowed);
    assert_eq!(details(used[0])["factor"], "recovery_code");
    assert_eq!(details(used[0])["recovery_codes_left"], 9);
    // Operators count the same from /metrics: wrong codes, lockouts, sign-ins.
    let series = |action: &str, outcome: &str| {
        format!("auditgate_audit_entries_total{{action=\"{action}\",outcome=\"{outcome}\"}}")
    };
    let counted = |a: Action, o: Outcome| find(&log, a, o).len() as f64;
    for (action, outcome) in [
        (Action::Lockout, Outcome::Denied),
        (Action::SecondFactorFailed, Outcome::Denied),
        (Action::SignIn, Outcome::Allowed),
    ] {
        let name = series(action.as_str(), outcome.as_str());
        let value = crate::health::metric(&app, &name).await;
        assert_eq!(value, Some(counted(action, outcome)), "{name}");
    }
}

#[tokio::test]
async fn sessions_end_when_idle_too_long_and_can_be_listed_and_ended() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (b, _) = signed_in(&app).await;
    let mut b2 = Browser::new(&app);
    assert_eq!(b2.sign_in().await["second_factor"], "verify");
    let list: Value = b.get("/api/v1/sessions").await.json().await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let id = other["id"].as_str().unwrap();
    assert_eq!(
        b.delete(&format!("/api/v1/sessions/{id}")).await.status(),
        204
    );
    assert_problem(b2.get("/auth/2fa/verify").await, 401).await;

    app.clock.advance_millis(31 * 60_000);
    let body = assert_problem(b.get("/api/v1/me").await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("idle"));
}

#[tokio::test]
async fn a_disabled_person_is_refused_and_loses_live_sessions() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (b, _) = signed_in(&app).await;
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    let id = me["id"].as_str().unwrap();
    app.store
        .set_user_disabled(id, Some(app.clock.now()))
        .await
        .unwrap();
    assert_problem(b.get("/api/v1/projects/shop/events").await, 401).await;
    let fresh = Browser::new(&app);
    assert_problem(fresh.sign_in_raw("").await, 403).await;
    let log = entries(&app).await;
    let failed = find(&log, Action::SignInFailed, Outcome::Denied);
    assert_eq!(details(failed[0])["reason"], "account disabled");
}

#[tokio::test]
async fn back_channel_logout_ends_the_sessions_it_names() {
    let (app, idp) = app_with_idp(|_| {}).await;
    let (b, _) = signed_in(&app).await;
    let post = |token: String| {
        app.client
            .post(format!("{}/auth/backchannel-logout/corp", app.address))
            .form(&[("logout_token", token)])
            .send()
    };
    // Wrong audience, a nonce, or no event: refused, nothing ends.
    for bad in [
        json!({"aud": "someone-else"}),
        json!({"nonce": "n"}),
        json!({"events": {}}),
        json!({"iss": "https://evil.example"}),
    ] {
        assert_problem(post(idp.logout_token("alice-sub", bad)).await.unwrap(), 400).await;
    }
    assert_eq!(b.get("/api/v1/me").await.status(), 200);
    let resp = post(idp.logout_token("alice-sub", json!({"sid": null})))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 1);
    assert_problem(b.get("/api/v1/me").await, 401).await;
    let log = entries(&app).await;
    assert_eq!(
        find(&log, Action::ProviderLogout, Outcome::Allowed).len(),
        1
    );
}

/// Signs in with the provider misbehaving and expects a refusal with no session.
async fn refused(tweak: impl FnOnce(&FakeIdp), status: u16, reason: &str) {
    let (app, idp) = app_with_idp(|_| {}).await;
    tweak(&idp);
    let b = Browser::new(&app);
    let body = assert_problem(b.sign_in_raw("").await, status).await;
    assert!(
        body["detail"].as_str().unwrap().contains(reason),
        "expected {reason:?} in {body}"
    );
    assert_problem(b.get("/api/v1/me").await, 401).await;
    let log = entries(&app).await;
    assert_eq!(find(&log, Action::SignInFailed, Outcome::Denied).len(), 1);
    assert!(find(&log, Action::SignIn, Outcome::Allowed).is_empty());
}

#[tokio::test]
async fn a_token_signed_by_an_unpublished_key_is_refused() {
    refused(
        |idp| idp.set(|b| b.signer = Signer::Forged),
        401,
        "ID token",
    )
    .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    refused(|idp| idp.set(|b| b.signer = Signer::None), 401, "ID token").await;
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    refused(
        |idp| {
            idp.set(|b| {
                b.overrides
                    .insert("iss".into(), json!("https://evil.example"));
            })
        },
        401,
        "ID token",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    refused(
        |idp| {
            idp.set(|b| {
                b.overrides.insert("aud".into(), json!("another-client"));
            })
        },
        401,
        "ID token",
    )
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    refused(
        |idp| {
            idp.set(|b| {
                b.overrides.insert("exp".into(), json!(1_600_000_000));
            })
        },
        401,
        "ID token",
    )
    .await;
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let now = auditgate::clock::Clock::now(&auditgate::clock::SystemClock);
    let future = (now.millis() / 1000 + 3600) as u64;
    refused(
        |idp| {
            idp.set(|b| {
                b.overrides.insert("iat".into(), json!(future));
            })
        },
        401,
        "ID token",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    refused(
        |idp| {
            idp.set(|b| {
                b.overrides.insert("nonce".into(), json!("replayed-nonce"));
            })
        },
        401,
        "ID token",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_key_id_is_refused_until_the_provider_publishes_it() {
    refused(
        |idp| idp.set(|b| b.signer = Signer::RsaSecond),
        401,
        "ID token",
    )
    .await;
    // After a rotation at the provider, the new key id makes us fetch its keys again, at
    // most once every ten seconds.
    let (app, idp) = app_with_idp(|_| {}).await;
    Browser::new(&app).sign_in().await;
    idp.set(|b| b.signer = Signer::RsaSecond);
    idp.publish_second_key();
    assert_problem(Browser::new(&app).sign_in_raw("").await, 401).await;
    app.clock.advance_millis(11_000);
    assert_eq!(
        Browser::new(&app).sign_in().await["second_factor"],
        "enroll"
    );
}

#[tokio::test]
async fn eddsa_tokens_are_accepted() {
    let (app, idp) = app_with_idp(|_| {}).await;
    idp.set(|b| b.signer = Signer::EdDsa);
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in().await["second_factor"], "enroll");
}

#[tokio::test]
async fn a_wrong_state_is_refused() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let b = Browser::new(&app);
    let start: Value = b
        .get("/auth/login?provider=corp")
        .await
        .json()
        .await
        .unwrap();
    let url = start["authorization_url"].as_str().unwrap();
    let resp = b.get(url).await;
    let callback = resp.headers()["location"].to_str().unwrap();
    let forged = callback.replace("state=", "state=x");
    assert_problem(b.get(&forged).await, 400).await;
    // Without the sign-in cookie (another browser), the callback is refused too.
    let other = Browser::new(&app);
    assert_problem(other.get(callback).await, 400).await;
}

#[tokio::test]
async fn a_code_without_its_pkce_verifier_is_refused() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let b = Browser::new(&app);
    let start: Value = b
        .get("/auth/login?provider=corp")
        .await
        .json()
        .await
        .unwrap();
    // An attacker's authorization request: same state, their own PKCE challenge.
    let url = start["authorization_url"].as_str().unwrap();
    let tampered = url
        .split('&')
        .map(|p| {
            if p.starts_with("code_challenge=") {
                "code_challenge=attackers-challenge-attackers-challenge-1234"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    let resp = b.get(&tampered).await;
    let callback = resp.headers()["location"].to_str().unwrap();
    let body = assert_problem(b.get(callback).await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("PKCE"), "{body}");
}

#[tokio::test]
async fn return_to_never_leaves_the_site_and_provider_mfa_is_accepted_only_when_allowed() {
    let (app, idp) = app_with_idp(|s| s.auth.providers[0].accept_provider_mfa = true).await;
    idp.set(|b| b.amr = vec!["pwd".into(), "otp".into(), "mfa".into()]);
    let b = Browser::new(&app);
    let resp = b.sign_in_raw("&return_to=https://evil.example/").await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["second_factor"], "done");
    assert_eq!(body["next"], "/console");
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["authentication"]["second_factor"], true);
    // Without the setting the same `amr` exempts nobody.
    let (app, idp) = app_with_idp(|_| {}).await;
    idp.set(|b| b.amr = vec!["mfa".into()]);
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in().await["second_factor"], "enroll");
}

#[tokio::test]
async fn email_domains_can_be_restricted() {
    let (app, _idp) =
        app_with_idp(|s| s.auth.providers[0].allowed_email_domains = vec!["corp.example".into()])
            .await;
    let b = Browser::new(&app);
    assert_problem(b.sign_in_raw("").await, 403).await;
}

#[tokio::test]
async fn pages_carry_strict_security_headers() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let resp = app
        .client
        .get(format!("{}/auth/login", app.address))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    // Scripts only from our own files (the console's copy buttons), never inline or eval.
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    assert!(html.contains("/auth/login?provider=corp"));
}

#[tokio::test]
async fn the_break_glass_administrator_signs_in_with_a_password_and_2_step_verification() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    break_glass(&app).await;
    let mut b = Browser::new(&app);
    let login = |password: &'static str| {
        b.client
            .post(format!("{}/auth/password", app.address))
            .header("accept", "application/json")
            .json(&json!({"email": "root@example.com", "password": password}))
            .send()
    };
    for _ in 0..5 {
        assert_problem(login("wrong").await.unwrap(), 401).await;
    }
    assert_problem(login("a long break-glass passphrase").await.unwrap(), 429).await;
    app.clock.advance_millis(16 * 60_000);
    let resp = login("a long break-glass passphrase").await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["second_factor"], "enroll");
    b.csrf = body["csrf_token"].as_str().map(str::to_owned);
    b.enroll(app.clock.now()).await;
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["break_glass"], true);
    assert_eq!(me["grants"][0]["role"], "break_glass");
    // It repairs access; it reads no data.
    assert_problem(b.get("/api/v1/projects/shop/events").await, 403).await;
    let log = entries(&app).await;
    assert_eq!(find(&log, Action::BreakGlass, Outcome::Denied).len(), 6);
    assert_eq!(find(&log, Action::BreakGlass, Outcome::Allowed).len(), 1);
    assert!(!find(&log, Action::Lockout, Outcome::Denied).is_empty());
}

#[tokio::test]
async fn an_administrator_resets_2_step_verification_and_ends_sessions() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let (alice, _) = signed_in(&app).await;
    let me: Value = alice.get("/api/v1/me").await.json().await.unwrap();
    let alice_id = me["id"].as_str().unwrap().to_owned();
    // An analyst may not: refused and logged, naming the permission.
    let resp = alice
        .post(
            &format!("/api/v1/admin/users/{alice_id}/second-factor/reset"),
            json!({}),
        )
        .await;
    assert_problem(resp, 403).await;

    let pw = break_glass(&app).await;
    let mut root = Browser::new(&app);
    let body: Value = root
        .post(
            "/auth/password",
            json!({"email": "root@example.com", "password": pw}),
        )
        .await
        .json()
        .await
        .unwrap();
    root.csrf = body["csrf_token"].as_str().map(str::to_owned);
    root.enroll(app.clock.now()).await;
    let resp = root
        .post(
            &format!("/api/v1/admin/users/{alice_id}/second-factor/reset"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reset"], true);
    assert_eq!(body["sessions_ended"], 1);
    assert_problem(alice.get("/api/v1/me").await, 401).await;
    let mut again = Browser::new(&app);
    assert_eq!(again.sign_in().await["second_factor"], "enroll");
    let resp = root
        .delete(&format!("/api/v1/admin/users/{alice_id}/sessions"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_problem(again.get("/auth/2fa/enroll").await, 401).await;
    assert_problem(
        root.delete("/api/v1/admin/users/nobody/sessions").await,
        404,
    )
    .await;

    let log = entries(&app).await;
    let denied = find(&log, Action::SecondFactorReset, Outcome::Denied);
    assert_eq!(details(denied[0])["missing_permission"], "users:admin");
    let reset = find(&log, Action::SecondFactorReset, Outcome::Allowed);
    assert_eq!(details(reset[0])["before"]["second_factor"], true);
    assert_eq!(reset[0].actor.method, AuthMethod::Password);
    assert!(!find(&log, Action::SessionEnd, Outcome::Allowed).is_empty());
}

#[tokio::test]
async fn the_session_id_changes_when_2_step_verification_completes() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let mut b = Browser::new(&app);
    // Read the partial session's cookie from the callback, then present it after enrollment.
    let start: Value = b
        .get("/auth/login?provider=corp")
        .await
        .json()
        .await
        .unwrap();
    let resp = b.get(start["authorization_url"].as_str().unwrap()).await;
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = b.get(&callback).await;
    let partial = resp
        .cookies()
        .find(|c| c.name() == "auditgate_session")
        .unwrap()
        .value()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    b.csrf = body["csrf_token"].as_str().map(str::to_owned);
    b.enroll(app.clock.now()).await;
    assert_eq!(b.get("/api/v1/me").await.status(), 200);
    let old = app
        .client
        .get(format!("{}/auth/2fa/verify", app.address))
        .header("cookie", format!("auditgate_session={partial}"))
        .send()
        .await
        .unwrap();
    assert_problem(old, 401).await;
}

#[tokio::test]
async fn a_new_batch_of_recovery_codes_voids_the_old_one() {
    let (app, _idp) = app_with_idp(|_| {}).await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let e: Value = b.get("/auth/2fa/enroll").await.json().await.unwrap();
    let secret = secret_of(e["secret"].as_str().unwrap());
    let first: Value = b
        .post(
            "/auth/2fa/enroll",
            json!({"code": secret.code_at(app.clock.now())}),
        )
        .await
        .json()
        .await
        .unwrap();
    b.csrf = first["csrf_token"].as_str().map(str::to_owned);
    let old = first["recovery_codes"][0].as_str().unwrap().to_owned();
    let second: Value = b
        .post("/auth/2fa/recovery-codes", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let new = second["recovery_codes"][0].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    b.post("/auth/logout", json!({})).await;
    b.sign_in().await;
    assert_problem(b.verify(json!({"recovery_code": old})).await, 401).await;
    assert_eq!(b.verify(json!({"recovery_code": new})).await.status(), 200);
    let log = entries(&app).await;
    assert_eq!(find(&log, Action::RecoveryCodes, Outcome::Allowed).len(), 1);
}

#[tokio::test]
async fn with_the_data_readers_policy_only_data_readers_need_2_step_verification() {
    let (app, idp) = app_with_idp(|s| {
        s.auth.second_factor = auditgate::config::SecondFactorPolicy::DataReaders;
    })
    .await;
    idp.set(|b| {
        b.subject = "bob-sub".into();
        b.groups = vec!["auditors".into()];
    });
    let mut bob = Browser::new(&app);
    assert_eq!(bob.sign_in().await["second_factor"], "done");
    let me: Value = bob.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["authentication"]["second_factor_required"], false);
    idp.set(|b| {
        b.subject = "alice-sub".into();
        b.groups = vec!["analysts".into()];
    });
    let mut alice = Browser::new(&app);
    assert_eq!(alice.sign_in().await["second_factor"], "enroll");
    assert_problem(alice.get("/api/v1/projects/shop/events").await, 401).await;
}

#[tokio::test]
async fn behind_tls_cookies_are_host_only_and_secure_and_hsts_is_sent() {
    let (app, _idp) =
        app_with_idp(|s| s.auth.public_url = "https://auditgate.example".into()).await;
    let resp = Browser::new(&app).get("/auth/login?provider=corp").await;
    assert_eq!(resp.status(), 200);
    let hsts = resp.headers()["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.starts_with("max-age="));
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-auditgate_login="), "{cookie}");
    for part in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["authorization_url"]
            .as_str()
            .unwrap()
            .contains("redirect_uri=https%3A%2F%2Fauditgate.example%2Fauth%2Fcallback")
    );
}

#[tokio::test]
async fn an_auditor_downloads_and_verifies_the_log_over_http() {
    use auditgate::ledger::bundle::{Scope, verify_text};
    let (app, idp) = app_with_idp(|_| {}).await;
    // Some activity to export: an ingest batch and a read by the service account.
    app.import(&json!([{"event": "e", "properties": {"distinct_id": "u1", "time": 1_700_000_000, "$insert_id": "i1"}}]))
        .await;
    app.get("/api/v1/projects/shop/events").await;
    // An analyst holds no audit:export: refused and logged.
    let (analyst, _) = signed_in(&app).await;
    assert_problem(analyst.get("/api/v1/audit/export?project=shop").await, 403).await;
    assert_problem(analyst.get("/api/v1/audit/export").await, 403).await;

    idp.set(|b| {
        b.subject = "carol-sub".into();
        b.email = "carol@example.com".into();
        b.groups = vec!["auditors".into()];
    });
    let (auditor, _) = signed_in(&app).await;
    assert_problem(auditor.get("/api/v1/projects/shop/events").await, 403).await;
    // Enough entries that both bundles stream in several chunks.
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    futures_util::future::join_all((0..4500).map(|i| {
        let project = (i % 3 != 0).then_some(&shop);
        app.audit
            .record_cli(Action::AuditRead, project, 0, json!({"n": i}))
    }))
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    app.settle().await;
    let whole = auditor.get("/api/v1/audit/export").await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "application/x-ndjson");
    let bundle = whole.text().await.unwrap();
    let report = verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
    assert_eq!(report.scope, Scope::Log);
    assert!(report.entries >= 4508, "{report:?}");
    let whole_entries = report.entries;
    let project = auditor.get("/api/v1/audit/export?project=shop").await;
    assert_eq!(project.status(), 200);
    let report = verify_text(
        &project.text().await.unwrap(),
        vec![app.verifier_key()],
        None,
    )
    .unwrap();
    assert_eq!(report.scope, Scope::Project);
    assert_eq!(report.project.as_deref(), Some("shop"));
    assert!(report.entries >= 3002, "{report:?}");
    // Past the log's end is a clear error.
    assert_problem(auditor.get("/api/v1/audit/export?from=100000").await, 400).await;

    let log = entries(&app).await;
    let exports = find(&log, Action::AuditExport, Outcome::Allowed);
    assert_eq!(exports.len(), 2);
    assert_eq!(details(exports[0])["scope"], "log");
    assert_eq!(details(exports[0])["entries"], whole_entries);
    assert!(
        exports
            .iter()
            .all(|e| e.actor.kind == ActorKind::User && e.actor.second_factor)
    );
    let denied = find(&log, Action::AuditExport, Outcome::Denied);
    assert_eq!(denied.len(), 2);
    assert!(
        denied
            .iter()
            .all(|e| details(e)["missing_permission"] == "audit:export")
    );
}

#[tokio::test]
async fn a_person_removed_from_a_group_loses_its_access_without_signing_out() {
    let (app, idp) = app_with_idp(|_| {}).await;
    let (b, _) = signed_in(&app).await;
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    idp.set_groups("alice-sub", &[]);
    // Within the check interval the session keeps what it had...
    app.clock.advance_millis(4 * 60_000);
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    // ...then the provider is asked again (the access token has expired: it is refreshed).
    app.clock.advance_millis(2 * 60_000);
    assert_problem(b.get("/api/v1/projects/shop/events").await, 403).await;
    assert_eq!(b.get("/api/v1/me").await.status(), 200, "still signed in");
    idp.set_groups("alice-sub", &["analysts"]);
    app.clock.advance_millis(6 * 60_000);
    assert_eq!(b.get("/api/v1/projects/shop/events").await.status(), 200);
    // When the provider no longer vouches for the session, it ends.
    idp.revoke_refresh_tokens();
    app.clock.advance_millis(6 * 60_000);
    let body = assert_problem(b.get("/api/v1/me").await, 401).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("could not be confirmed")
    );
}

#[tokio::test]
async fn oversized_client_text_never_makes_the_log_unverifiable() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (app, _idp) = app_with_idp(|_| {}).await;
    // An anonymous caller's logout token whose header `typ` is 1.1 MB: the refusal is logged,
    // with the echoed text cut to a prefix, its length and its hash.
    let typ = "x".repeat(1_100_000);
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": typ}).to_string());
    let token = format!("{header}.e30.c2ln");
    let resp = app
        .client
        .post(format!("{}/auth/backchannel-logout/corp", app.address))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400).await;

    // A verified person's 1.1 MB reason is refused with a 422 before anything is stored.
    let (b, _) = signed_in(&app).await;
    let ask = json!({"project": "shop", "role": "analyst", "reason": "r".repeat(1_100_000), "duration_hours": 2});
    let body = assert_problem(b.post("/api/v1/access-requests", ask).await, 422).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("reason is 1100000 bytes")
    );

    let log = entries(&app).await; // exports and verifies
    let failed = find(&log, Action::SignInFailed, Outcome::Denied);
    let reason = details(failed[0])["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.len() <= auditgate::ledger::entry::MAX_FIELD,
        "{}",
        reason.len()
    );
    assert!(reason.contains("[cut: "), "{reason:.200}");
    let (bundle, _) = app.export_log().await;
    auditgate::ledger::bundle::verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
}
