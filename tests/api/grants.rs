//! Roles and grants: the role-by-route matrix, no access across projects, separation of
//! duties, approvals, expiry mid-session, deny grants, and disabling people.

use auditgate::access::{Access, BUILTIN, Permission};
use auditgate::clock::Clock;
use auditgate::config::{GroupRoleSettings, Settings};
use auditgate::ledger::entry::{Action, Outcome};
use auditgate::routes::registry;
use serde_json::{Value, json};

use crate::fake_idp::FakeIdp;
use crate::helpers::{Backend, TestApp, assert_problem, fresh_db, spawn_with, test_settings};
use crate::signin::{Browser, sso_settings};

pub(crate) async fn app(tweak: impl FnOnce(&mut Settings)) -> (TestApp, FakeIdp) {
    let idp = FakeIdp::start();
    let db = fresh_db(Backend::Sqlite, "grants").await.unwrap();
    let mut s = sso_settings(
        test_settings(&db),
        db.dir.path(),
        &idp.issuer,
        &idp.client_id,
        &idp.client_secret,
    );
    s.access.group_roles.push(GroupRoleSettings {
        group: "owners".into(),
        role: "owner".into(),
        project: "*".into(),
        review_by: None,
    });
    s.access.group_roles.push(GroupRoleSettings {
        group: "shop-admins".into(),
        role: "admin".into(),
        project: "shop".into(),
        review_by: None,
    });
    // Long sessions, so that grants can expire while one is live.
    s.auth.session_idle_minutes = 3 * 24 * 60;
    s.auth.session_max_hours = 72;
    tweak(&mut s);
    let app = spawn_with(s, db).await;
    idp.use_clock(app.clock.clone());
    (app, idp)
}

/// Signs `name` in through SSO with `groups`, enrolls TOTP; returns the browser and their id.
pub(crate) async fn person(
    app: &TestApp,
    idp: &FakeIdp,
    name: &str,
    groups: &[&str],
) -> (Browser, String) {
    idp.set(|b| {
        b.subject = format!("{name}-sub");
        b.email = format!("{name}@example.com");
        b.groups = groups.iter().map(|g| g.to_string()).collect();
    });
    let mut b = Browser::new(app);
    b.sign_in().await;
    b.enroll(app.clock.now()).await;
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    (b, me["id"].as_str().unwrap().to_owned())
}

pub(crate) async fn grant(b: &Browser, body: Value) -> reqwest::Response {
    b.post("/api/v1/admin/grants", body).await
}

pub(crate) fn to_user(id: &str, role: &str, project: &str) -> Value {
    json!({"subject_kind": "user", "subject": id, "role": role, "project": project, "reason": "TICKET-1"})
}

pub(crate) async fn log(app: &TestApp) -> Vec<auditgate::ledger::entry::Entry> {
    app.settle().await;
    app.export_log().await.1
}

#[tokio::test]
async fn a_grant_works_at_once_and_lapses_on_its_own_mid_session() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    // Granted: works at once, in the live session. Revoked: gone at once.
    let g: Value = grant(&alice, to_user(&carol_id, "analyst", "shop"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["status"], "active");
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    let id = g["id"].as_str().unwrap();
    assert_eq!(
        alice
            .delete(&format!("/api/v1/admin/grants/{id}"))
            .await
            .status(),
        200
    );
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    assert_problem(
        alice.delete(&format!("/api/v1/admin/grants/{id}")).await,
        409,
    )
    .await;

    // Granted for a day: lapses by itself while the session lives on.
    let mut body = to_user(&carol_id, "analyst", "shop");
    body["expires_in_days"] = json!(1);
    assert_eq!(grant(&alice, body).await.status(), 201);
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    app.clock.advance_millis(86_400_000);
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    assert_eq!(
        carol.get("/api/v1/me").await.status(),
        200,
        "the session itself lives on"
    );

    let entries = log(&app).await;
    let changes: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::GrantChange && e.outcome == Outcome::Allowed)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["before"], Value::Null);
    assert_eq!(changes[0]["after"]["role"], "analyst");
    assert_eq!(changes[1]["before"]["status"], "active");
    assert_eq!(changes[1]["after"]["status"], "revoked");
    assert!(changes[2]["after"]["expires_at"].is_string());
}

#[tokio::test]
async fn nobody_grants_to_themselves_or_beyond_what_they_hold() {
    let (app, idp) = app(|_| {}).await;
    let (alice, alice_id) = person(&app, &idp, "alice", &["owners"]).await;
    let (dave, dave_id) = person(&app, &idp, "dave", &["shop-admins"]).await;
    let (_, carol_id) = person(&app, &idp, "carol", &[]).await;
    app.other_project("bank").await;
    let body = assert_problem(
        grant(&alice, to_user(&alice_id, "analyst", "shop")).await,
        403,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("themselves"));
    let group = json!({"subject_kind": "group", "subject": "owners", "role": "analyst", "project": "shop", "reason": "x"});
    assert_problem(grant(&alice, group).await, 403).await;
    assert_problem(grant(&dave, to_user(&dave_id, "admin", "shop")).await, 403).await;
    // An admin on shop holds no audit:export, and no roles:assign on bank.
    let body = assert_problem(
        grant(&dave, to_user(&carol_id, "auditor", "shop")).await,
        403,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("audit:export"));
    assert_problem(
        grant(&dave, to_user(&carol_id, "analyst", "bank")).await,
        403,
    )
    .await;
    assert_eq!(
        grant(&dave, to_user(&carol_id, "analyst", "shop"))
            .await
            .status(),
        201
    );
    assert_problem(
        grant(
            &dave,
            json!({"subject_kind": "user", "subject": carol_id, "project": "shop", "reason": "x"}),
        )
        .await,
        422,
    )
    .await;
    let entries = log(&app).await;
    assert!(entries.iter().any(|e| e.action == Action::GrantChange
        && e.outcome == Outcome::Denied
        && e.details.contains("roles:assign")));
}

#[tokio::test]
async fn a_powerful_grant_is_inert_until_a_second_administrator_approves_it() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (bob, _) = person(&app, &idp, "bob", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let g: Value = grant(&alice, to_user(&carol_id, "owner", "shop"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["status"], "pending");
    let id = g["id"].as_str().unwrap();
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    let own = assert_problem(
        alice
            .post(&format!("/api/v1/admin/grants/{id}/approve"), json!({}))
            .await,
        403,
    )
    .await;
    assert!(own["detail"].as_str().unwrap().contains("granted it"));
    assert_problem(
        carol
            .post(&format!("/api/v1/admin/grants/{id}/approve"), json!({}))
            .await,
        403,
    )
    .await;
    let ok = bob
        .post(&format!("/api/v1/admin/grants/{id}/approve"), json!({}))
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    // Approving twice is a conflict, not a second approval.
    assert_problem(
        bob.post(&format!("/api/v1/admin/grants/{id}/approve"), json!({}))
            .await,
        409,
    )
    .await;
    let list: Value = alice
        .get("/api/v1/admin/grants?project=shop")
        .await
        .json()
        .await
        .unwrap();
    assert!(list["grants"][0]["decided_by"].is_string());
}

#[tokio::test]
async fn a_deny_grant_wins_over_any_allow_on_every_path() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    grant(&alice, to_user(&carol_id, "analyst", "shop")).await;
    let token = carol.personal_token("nb", 1).await;
    let deny = json!({"subject_kind": "user", "subject": carol_id, "deny": "events:read", "project": "shop", "reason": "contractor"});
    assert_eq!(grant(&alice, deny).await.status(), 201);
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    assert_eq!(
        carol.get("/api/v1/projects/shop/profiles/x").await.status(),
        404
    );
    let by_token = app
        .client
        .get(format!("{}/api/v1/projects/shop/events", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(by_token, 403).await;
    // Service accounts too: a deny on the project's service account stops its reads.
    let sa = json!({"subject_kind": "service_account", "subject": app.project.service_account.id, "deny": "events:read", "project": "shop", "reason": "ingest only"});
    assert_eq!(grant(&alice, sa).await.status(), 201);
    assert_problem(app.get("/api/v1/projects/shop/events").await, 403).await;
}

#[tokio::test]
async fn disabling_a_person_ends_their_live_session_and_tokens_at_once() {
    let (app, idp) = app(|_| {}).await;
    let (alice, alice_id) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let token = carol.personal_token("nb", 1).await;
    let resp = alice
        .post(
            &format!("/api/v1/admin/users/{carol_id}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["sessions_ended"].as_u64(),
            body["tokens_revoked"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_problem(carol.get("/api/v1/me").await, 401).await;
    let by_token = app
        .client
        .get(format!("{}/api/v1/me", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(by_token, 401).await;
    assert_problem(
        alice
            .post(
                &format!("/api/v1/admin/users/{alice_id}/disable"),
                json!({}),
            )
            .await,
        403,
    )
    .await;
    let users: Value = alice.get("/api/v1/admin/users").await.json().await.unwrap();
    assert!(
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == carol_id.as_str() && u["disabled_at"].is_string())
    );
    assert_eq!(
        alice
            .post(&format!("/api/v1/admin/users/{carol_id}/enable"), json!({}))
            .await
            .status(),
        200
    );
    let entries = log(&app).await;
    let change = entries
        .iter()
        .find(|e| e.action == Action::UserChange && e.details.contains("\"disabled\":true"))
        .unwrap();
    let d: Value = serde_json::from_str(&change.details).unwrap();
    assert_eq!(d["before"]["disabled"], false);
}

/// A request for `path` with bodies that pass validation, so only authorization decides.
pub(crate) async fn call(b: &Browser, method: &str, path: &str) -> reqwest::Response {
    match method {
        "GET" => b.get(path).await,
        "DELETE" => b.delete(path).await,
        "PUT" => b
            .client
            .put(format!("{}{path}", b.base))
            .header("x-csrf-token", b.csrf.clone().unwrap_or_default())
            .send()
            .await
            .unwrap(),
        "PATCH" => b
            .client
            .patch(format!("{}{path}", b.base))
            .header("x-csrf-token", b.csrf.clone().unwrap_or_default())
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        _ => {
            let body = if path == "/api/v1/admin/grants" {
                json!({"subject_kind": "user", "subject": "someone-else", "role": "consumer", "project": "shop", "reason": "matrix"})
            } else if path.contains("/audit/subject-report") {
                json!({"project": "shop", "distinct_id": "matrix-person"})
            } else if path.starts_with("/import") {
                json!([{"event": "e", "properties": {"distinct_id": "u", "time": 1_700_000_000, "$insert_id": "m"}}])
            } else {
                json!({})
            };
            b.post(path, body).await
        }
    }
}

pub(crate) fn concrete(path: &str, project: &str) -> String {
    let p = path
        .replace("{project}", project)
        .replace("{distinct_id}", "alice")
        .replace("{id}", "nobody")
        .replace("{seq}", "0")
        .replace("{kind}", "event")
        .replace("{name}", "plan");
    if p == "/import" {
        format!("/import?project_id={project}")
    } else {
        p
    }
}

/// Mixpanel's GDPR paths name the project by its public token.
pub(crate) async fn with_token(app: &TestApp, url: String, project: &str) -> String {
    if !url.starts_with("/api/app/") {
        return url;
    }
    let id = auditgate::domain::ProjectId::parse(project).unwrap();
    let token = app.store.project(&id).await.unwrap().unwrap().ingest_token;
    format!("{url}?token={token}")
}

/// Routes a person reaches with a session; /track, /engage and /groups authenticate by the
/// project token inside each record instead.
pub(crate) fn person_routes() -> Vec<(String, String, Permission)> {
    registry()
        .into_iter()
        .filter_map(|r| match r.access {
            Access::Requires(p) if !["/track", "/engage", "/groups"].contains(&r.path) => {
                Some((r.method.to_string(), r.path.to_owned(), p))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_builtin_role_reaches_exactly_the_routes_its_permissions_allow() {
    let mappings: Vec<GroupRoleSettings> = BUILTIN
        .iter()
        .map(|r| GroupRoleSettings {
            group: format!("role-{}", r.name),
            role: r.name.into(),
            project: "*".into(),
            review_by: None,
        })
        .collect();
    let (app, idp) = app(|s| s.access.group_roles.extend(mappings)).await;
    let routes = person_routes();
    assert!(routes.len() >= 15);
    for role in BUILTIN {
        let group = format!("role-{}", role.name);
        let (b, _) = person(&app, &idp, role.name, &[group.as_str()]).await;
        for (method, path, permission) in &routes {
            let url = with_token(&app, concrete(path, "shop"), "shop").await;
            let status = call(&b, method, &url).await.status().as_u16();
            if role.permissions.contains(permission) {
                assert!(
                    status != 401 && status != 403,
                    "{} should reach {method} {url} ({permission}) but got {status}",
                    role.name
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{} must not reach {method} {url} ({permission})",
                    role.name
                );
            }
        }
    }
}

#[tokio::test]
async fn a_grant_on_one_project_reaches_nothing_on_another() {
    let (app, idp) = app(|_| {}).await;
    let (_, _) = person(&app, &idp, "alice", &["owners"]).await;
    app.other_project("bank").await;
    // Dave is admin on shop only; give him everything else on shop through an owner grant.
    let (dave, _) = person(&app, &idp, "dave", &["shop-admins"]).await;
    let mut checked = 0;
    for (method, path, _) in person_routes()
        .into_iter()
        .filter(|(_, p, _)| p.contains("{project}") || p == "/import")
    {
        let resp = call(&dave, &method, &concrete(&path, "bank")).await;
        let body = assert_problem(resp, 403).await;
        assert!(body.get("events").is_none());
        checked += 1;
    }
    assert!(checked >= 4);
    let entries = log(&app).await;
    assert!(
        entries
            .iter()
            .filter(|e| e.outcome == Outcome::Denied && e.project.as_deref() == Some("bank"))
            .count()
            >= checked
    );
}

#[tokio::test]
async fn sensitive_properties_are_redacted_unless_granted_and_the_log_says_which() {
    use auditgate::access::{Effect, GrantRecord, GrantStatus, SubjectKind};
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    grant(&alice, to_user(&carol_id, "analyst", "shop")).await;
    app.import(&json!([{"event": "signup", "properties": {"distinct_id": "u1", "time": 1_700_000_000, "$insert_id": "s1", "email": "u1@example.com", "plan": "pro"}}]))
        .await;
    let mark = alice
        .client
        .put(format!(
            "{}/api/v1/projects/shop/sensitive-properties/event/email",
            app.address
        ))
        .header("x-csrf-token", alice.csrf.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(mark.status(), 200);
    // An analyst may not classify; classifying is not reading.
    let refused = carol
        .client
        .put(format!(
            "{}/api/v1/projects/shop/sensitive-properties/event/plan",
            app.address
        ))
        .header("x-csrf-token", carol.csrf.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_problem(refused, 403).await;
    let listed: Value = alice
        .get("/api/v1/projects/shop/sensitive-properties")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["event"], json!(["email"]));

    for reader in [&carol, &alice] {
        let page: Value = reader
            .get("/api/v1/projects/shop/events")
            .await
            .json()
            .await
            .unwrap();
        let props = &page["events"][0]["properties"];
        assert_eq!(
            props["email"], "[redacted]",
            "even an owner does not read it by default"
        );
        assert_eq!(props["plan"], "pro");
    }
    // The owner cannot grant what nobody gave them; the operator can (here, straight to the store).
    let body = json!({"subject_kind": "user", "subject": carol_id, "role": "sensitive_reader", "project": "shop", "reason": "DPA-7"});
    assert_problem(grant(&alice, body).await, 403).await;
    app.store
        .create_grant(&GrantRecord {
            id: "op-1".into(),
            subject_kind: SubjectKind::User,
            subject: carol_id.clone(),
            effect: Effect::Allow,
            role: Some("sensitive_reader".into()),
            permission: None,
            project: "shop".into(),
            reason: "DPA-7".into(),
            granted_by: "cli".into(),
            created_at: app.clock.now(),
            expires_at: None,
            status: GrantStatus::Active,
            decided_by: None,
            decided_at: None,
            review_every_days: None,
            reviewed_at: None,
            locked_at: None,
        })
        .await
        .unwrap();
    let page: Value = carol
        .get("/api/v1/projects/shop/events")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"][0]["properties"]["email"], "u1@example.com");

    let entries = log(&app).await;
    let reads: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::EventsQuery && e.outcome == Outcome::Allowed)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(reads[0]["sensitive_redacted"], json!(["email"]));
    assert_eq!(reads[0]["sensitive_returned"], json!([]));
    assert_eq!(
        reads.last().unwrap()["sensitive_returned"],
        json!(["email"])
    );
    let classified = entries
        .iter()
        .find(|e| e.action == Action::PropertiesClassify && e.outcome == Outcome::Allowed)
        .unwrap();
    let d: Value = serde_json::from_str(&classified.details).unwrap();
    assert_eq!(
        (
            d["before"]["sensitive"].as_bool(),
            d["after"]["sensitive"].as_bool()
        ),
        (Some(false), Some(true))
    );
}

#[tokio::test]
async fn the_access_review_lists_who_holds_what_where_and_why_as_json_and_csv() {
    let (app, idp) = app(|_| {}).await;
    let (alice, alice_id) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let g: Value = grant(&alice, to_user(&carol_id, "analyst", "shop"))
        .await
        .json()
        .await
        .unwrap();
    app.other_project("bank").await;
    assert_problem(carol.get("/api/v1/admin/access-review").await, 403).await;
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    // The token's use is recorded off the request's path: wait for it.
    let shop = auditgate::domain::ProjectId::parse("shop").unwrap();
    for _ in 0..200 {
        if app.store.tokens(&shop).await.unwrap()[0]
            .last_used_at
            .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let review: Value = alice
        .get("/api/v1/admin/access-review?project=shop")
        .await
        .json()
        .await
        .unwrap();
    let rows = review["rows"].as_array().unwrap();
    let carol_row = rows
        .iter()
        .find(|r| r["principal"] == carol_id.as_str())
        .unwrap();
    assert_eq!(carol_row["role"], "analyst");
    assert_eq!(carol_row["project"], "shop");
    assert!(
        carol_row["via"]
            .as_str()
            .unwrap()
            .contains(g["id"].as_str().unwrap())
    );
    assert_eq!(carol_row["granted_by"], alice_id.as_str());
    assert!(
        carol_row["last_signin_at"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );
    let alice_row = rows
        .iter()
        .find(|r| r["principal"] == alice_id.as_str())
        .unwrap();
    assert_eq!(alice_row["role"], "owner");
    assert!(alice_row["via"].as_str().unwrap().contains("owners"));
    let sa_row = rows
        .iter()
        .find(|r| r["principal_kind"] == "service_account" && r["project"] == "shop")
        .unwrap();
    assert!(
        sa_row["last_used_at"].as_str().unwrap().starts_with("20"),
        "the service account read before the review"
    );
    assert!(
        rows.iter()
            .all(|r| r["project"] == "shop" || r["project"] == "*")
    );

    let csv = alice.get("/api/v1/admin/access-review?format=csv").await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("principal_kind,principal,email,role,denied,project,via")
    );
    assert!(text.contains(&format!("user,{carol_id},carol@example.com,analyst,,shop,")));
    assert!(
        text.lines()
            .any(|l| l.contains("service_account") && l.contains(",bank,"))
    );
    assert_problem(
        alice.get("/api/v1/admin/access-review?format=xml").await,
        400,
    )
    .await;
}

#[tokio::test]
async fn just_in_time_access_needs_others_approvals_lapses_and_expires() {
    let (app, idp) = app(|s| {
        s.access.request_approvals.insert("owner".into(), 2);
    })
    .await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (bob, _) = person(&app, &idp, "bob", &["owners"]).await;
    let (dave, _) = person(&app, &idp, "dave", &["shop-admins"]).await;
    let (carol, _) = person(&app, &idp, "carol", &[]).await;
    let ask = |role: &str, hours: i64| json!({"project": "shop", "role": role, "reason": "INC-42", "duration_hours": hours});
    assert_problem(
        dave.post("/api/v1/access-requests", ask("owner", 15 * 24))
            .await,
        422,
    )
    .await;
    let r: Value = dave
        .post("/api/v1/access-requests", ask("owner", 2))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "pending");
    assert_eq!(r["approvals_needed"], 2);
    let id = r["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/v1/admin/access-requests/{id}/approve");
    let own = assert_problem(dave.post(&approve, json!({})).await, 403).await;
    assert!(own["detail"].as_str().unwrap().contains("own request"));
    let pending: Value = alice
        .get("/api/v1/admin/access-requests")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["requests"][0]["id"], id.as_str());
    let first: Value = alice.post(&approve, json!({})).await.json().await.unwrap();
    assert_eq!(first["state"], "pending");
    assert_problem(alice.post(&approve, json!({})).await, 403).await;
    assert_problem(dave.get("/api/v1/audit/export?project=shop").await, 403).await;
    let second: Value = bob.post(&approve, json!({})).await.json().await.unwrap();
    assert_eq!(second["state"], "granted");
    assert_eq!(
        dave.get("/api/v1/audit/export?project=shop").await.status(),
        200
    );
    let me: Value = dave.get("/api/v1/me").await.json().await.unwrap();
    assert!(
        me["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["role"] == "owner" && g["expires_at"].is_string())
    );
    // Granted for two hours: then gone by itself.
    app.clock.advance_millis(2 * 3_600_000);
    let mine: Value = dave
        .get("/api/v1/access-requests")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["requests"][0]["state"], "granted");
    let roles = |me: Value| -> Vec<String> {
        me["grants"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["role"].as_str().map(str::to_owned))
            .collect()
    };
    let me: Value = dave.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(
        roles(me),
        vec!["admin".to_owned()],
        "the owner grant expired; the admin role stays"
    );

    // Unanswered for an hour: lapsed, and no longer approvable.
    let lapsing: Value = carol
        .post("/api/v1/access-requests", ask("analyst", 1))
        .await
        .json()
        .await
        .unwrap();
    let lid = lapsing["id"].as_str().unwrap();
    app.clock.advance_millis(61 * 60_000);
    let mine: Value = carol
        .get("/api/v1/access-requests")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["requests"][0]["state"], "lapsed");
    assert_problem(
        alice
            .post(
                &format!("/api/v1/admin/access-requests/{lid}/approve"),
                json!({}),
            )
            .await,
        401,
    )
    .await; // alice's step-up has long expired: sensitive acts ask for a fresh code first

    let entries = log(&app).await;
    let asked: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::AccessRequest && e.outcome == Outcome::Allowed)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(asked.len(), 4, "two asks, two approvals");
    assert_eq!(asked[1]["after"]["state"], "pending");
    assert_eq!(asked[2]["after"]["state"], "granted");
    assert!(
        entries
            .iter()
            .any(|e| e.action == Action::GrantChange && e.details.contains(&id))
    );
}

#[tokio::test]
async fn overdue_grants_are_flagged_and_can_lapse_until_reviewed() {
    let (app, idp) = app(|s| {
        s.access.review_every_days = 1;
        s.access.lapse_overdue_grants = true;
    })
    .await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let g: Value = grant(&alice, to_user(&carol_id, "analyst", "shop"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["review_every_days"], 1);
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    app.clock.advance_millis(86_400_000 + 60_000);
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    // A fresh owner reviews it: evidence kept, the grant works again, next review later.
    let (bob, _) = person(&app, &idp, "bob", &["owners"]).await;
    let id = g["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/grants/{id}/review");
    assert_problem(bob.post(&path, json!({})).await, 422).await;
    let reviewed: Value = bob
        .post(&path, json!({"note": "still on the churn project"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(reviewed["review_due"].as_str().unwrap() > g["review_due"].as_str().unwrap());
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    // Carol's last 2-step verification is a day old: sensitive acts ask for a fresh one first.
    assert_problem(carol.post(&path, json!({"note": "x"})).await, 401).await;
    let entries = log(&app).await;
    assert!(entries.iter().any(
        |e| e.action == Action::GrantChange && e.details.contains("still on the churn project")
    ));
}

#[tokio::test]
async fn locks_stop_grants_and_service_accounts_at_the_next_request() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let g: Value = grant(&alice, to_user(&carol_id, "analyst", "shop"))
        .await
        .json()
        .await
        .unwrap();
    let id = g["id"].as_str().unwrap();
    assert_eq!(
        alice
            .post(&format!("/api/v1/admin/grants/{id}/lock"), json!({}))
            .await
            .status(),
        200
    );
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
    assert_eq!(
        alice
            .post(&format!("/api/v1/admin/grants/{id}/unlock"), json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );

    let accounts: Value = alice
        .get("/api/v1/admin/service-accounts")
        .await
        .json()
        .await
        .unwrap();
    let sa = accounts["service_accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    assert_eq!(
        alice
            .post(
                &format!("/api/v1/admin/service-accounts/{sa}/lock"),
                json!({})
            )
            .await
            .status(),
        200
    );
    let body = assert_problem(app.get("/api/v1/projects/shop/events").await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("locked"));
    assert_eq!(
        alice
            .post(
                &format!("/api/v1/admin/service-accounts/{sa}/unlock"),
                json!({})
            )
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/api/v1/projects/shop/events").await.status(), 200);
    assert_problem(
        alice
            .post("/api/v1/admin/service-accounts/nope/lock", json!({}))
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn custom_roles_are_defined_granted_and_removed_only_when_unused() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let role = json!({"name": "counter", "permissions": ["events:read"], "description": "dashboards only"});
    assert_eq!(
        alice
            .post("/api/v1/admin/roles", role.clone())
            .await
            .status(),
        201
    );
    assert_problem(alice.post("/api/v1/admin/roles", role).await, 409).await;
    let bad = json!({"name": "owner", "permissions": ["events:read"], "description": "x"});
    assert_problem(alice.post("/api/v1/admin/roles", bad).await, 422).await;
    let bad = json!({"name": "x", "permissions": ["events:fly"], "description": "x"});
    assert_problem(alice.post("/api/v1/admin/roles", bad).await, 422).await;
    let listed: Value = alice.get("/api/v1/admin/roles").await.json().await.unwrap();
    assert!(
        listed["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "counter" && r["builtin"] == false)
    );

    let g: Value = grant(&alice, to_user(&carol_id, "counter", "shop"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["status"], "active");
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    assert_problem(carol.get("/api/v1/projects/shop/profiles/u1").await, 403).await;
    assert_problem(alice.delete("/api/v1/admin/roles/counter").await, 409).await;
    let id = g["id"].as_str().unwrap();
    alice.delete(&format!("/api/v1/admin/grants/{id}")).await;
    assert_eq!(
        alice.delete("/api/v1/admin/roles/counter").await.status(),
        200
    );
    assert_problem(alice.delete("/api/v1/admin/roles/counter").await, 404).await;
    let entries = log(&app).await;
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == Action::RoleChange && e.outcome == Outcome::Allowed)
            .count(),
        2
    );
}

#[tokio::test]
async fn configured_group_mappings_carry_a_review_date_too() {
    let now = auditgate::clock::Clock::now(&auditgate::clock::SystemClock);
    let tomorrow =
        auditgate::domain::Timestamp::from_millis(now.millis() + 86_400_000).to_rfc3339();
    let late = GroupRoleSettings {
        group: "late".into(),
        role: "analyst".into(),
        project: "shop".into(),
        review_by: Some(tomorrow),
    };
    // Flagged in the access review once past its date...
    let mapping = late.clone();
    let (app, idp) = app(move |s| s.access.group_roles.push(mapping)).await;
    let (carol, carol_id) = person(&app, &idp, "carol", &["late"]).await;
    app.clock.advance_millis(2 * 86_400_000);
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let review: Value = alice
        .get("/api/v1/admin/access-review")
        .await
        .json()
        .await
        .unwrap();
    let row = review["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["principal"] == carol_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["review_overdue"], true);
    // ...and with lapse_overdue_grants, it stops working.
    let (strict, idp) = self::app(move |s| {
        s.access.lapse_overdue_grants = true;
        s.access.group_roles.push(late);
    })
    .await;
    let (carol, _) = person(&strict, &idp, "carol", &["late"]).await;
    assert_eq!(
        carol.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    strict.clock.advance_millis(2 * 86_400_000);
    assert_problem(carol.get("/api/v1/projects/shop/events").await, 403).await;
}

#[tokio::test]
async fn the_retention_sweeper_deletes_exactly_what_is_past_the_window_in_batches() {
    // Only the sweeps this test asks for: the background one, which runs at start-up, could
    // otherwise take some of the events first when the machine is slow.
    let (app, idp) = app(|s| s.retention.sweep_interval_secs = 0).await;
    let old: Vec<Value> = (0..25)
        .map(|i| json!({"event": "old", "properties": {"distinct_id": "u", "time": 1_400_000_000 + i, "$insert_id": format!("o{i}")}}))
        .collect();
    let now_secs = app.clock.now().millis() / 1000;
    let recent: Vec<Value> = (0..5)
        .map(|i| json!({"event": "new", "properties": {"distinct_id": "u", "time": now_secs - 3600 + i, "$insert_id": format!("n{i}")}}))
        .collect();
    assert_eq!(app.import(&json!(old)).await.status(), 200);
    assert_eq!(app.import(&json!(recent)).await.status(), 200);
    let (carol, carol_id) = person(&app, &idp, "carol", &[]).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    grant(&alice, to_user(&carol_id, "analyst", "shop")).await;
    assert_problem(
        carol.post("/api/v1/admin/retention/sweep", json!({})).await,
        403,
    )
    .await;

    // Interrupted after two batches of ten...
    let first: Value = alice
        .post(
            "/api/v1/admin/retention/sweep?batch=10&max_batches=2",
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["complete"], false);
    assert_eq!(first["projects"][0]["due"], 25);
    assert_eq!(first["projects"][0]["deleted"], 20);
    // ...the next sweep finishes the job, and nothing recent is touched.
    let second: Value = alice
        .post("/api/v1/admin/retention/sweep?batch=10", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["complete"], true);
    assert_eq!(second["projects"][0]["deleted"], 5);
    let third: Value = alice
        .post("/api/v1/admin/retention/sweep", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(third["projects"], json!([]), "nothing left past the window");
    let events = app.all_events().await;
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["event"] == "new"));

    let entries = log(&app).await;
    let sweeps: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::RetentionSweep && e.outcome == Outcome::Allowed)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(
        sweeps.len(),
        2,
        "one entry per sweep that had something to delete"
    );
    assert_eq!(sweeps[0]["projects"][0]["due"], 25);
    assert_eq!(sweeps[1]["projects"][0]["due"], 5);
    let (text, _) = app.export_log().await;
    auditgate::ledger::bundle::verify_text(&text, vec![app.verifier_key()], None).unwrap();
}
