//! Least privilege for every credential: the role-by-route matrix through personal and service
//! tokens, nobody lifting their own deny, just-in-time requests as strict as grants, the
//! break-glass account's limits, and lockouts that hold under parallel attempts.

use auditgate::access::{
    BUILTIN, GrantRecord, GrantStatus, Permission, SERVICE_ACCOUNT, SubjectKind,
};
use auditgate::clock::Clock;
use auditgate::config::{GroupRoleSettings, SecondFactorPolicy};
use auditgate::ledger::entry::{Action, Outcome};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::fake_idp::FakeIdp;
use crate::grants::{app, call, concrete, grant, log, person, person_routes, to_user, with_token};
use crate::helpers::{TestApp, assert_problem};
use crate::signin::{Browser, break_glass};

/// A client that sends `secret` as a bearer token and keeps no cookies.
fn bearer(app: &TestApp, secret: &str) -> Browser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {secret}").parse().unwrap(),
    );
    Browser {
        client: reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: app.address.clone(),
        csrf: None,
    }
}

fn role_groups() -> Vec<GroupRoleSettings> {
    BUILTIN
        .iter()
        .map(|r| GroupRoleSettings {
            group: format!("role-{}", r.name),
            role: r.name.into(),
            project: "*".into(),
            review_by: None,
        })
        .collect()
}

fn reason(body: &Value) -> String {
    body["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_builtin_role_through_a_personal_token_reaches_only_what_tokens_may() {
    let (app, idp) = app(|s| s.access.group_roles.extend(role_groups())).await;
    let routes = person_routes();
    let mut refused_for_tokens = 0;
    for role in BUILTIN {
        let group = format!("role-{}", role.name);
        let (b, _) = person(&app, &idp, role.name, &[group.as_str()]).await;
        let token = bearer(&app, &b.personal_token("matrix", 1).await);
        for (method, path, permission) in &routes {
            let url = with_token(&app, concrete(path, "shop"), "shop").await;
            let status = call(&token, method, &url).await.status().as_u16();
            if role.permissions.contains(permission) && permission.personal_tokens_may() {
                assert!(
                    status != 401 && status != 403,
                    "{}'s token should reach {method} {url} ({permission}) but got {status}",
                    role.name
                );
            } else {
                if role.permissions.contains(permission) {
                    refused_for_tokens += 1;
                }
                assert_eq!(
                    status, 403,
                    "{}'s token must not reach {method} {url} ({permission})",
                    role.name
                );
            }
        }
    }
    // Owners and admins hold plenty that a token may not use: roles, projects, exports.
    assert!(refused_for_tokens > 20, "{refused_for_tokens}");
    let entries = log(&app).await;
    assert!(
        entries
            .iter()
            .filter(|e| e.action == Action::AuthRejected
                && e.details.contains("a personal token cannot use"))
            .count()
            >= refused_for_tokens
    );
}

#[tokio::test]
async fn every_builtin_role_granted_to_a_service_account_reaches_only_what_services_may() {
    let (app, idp) = app(|s| {
        s.access.powerful_grants_need_approval = false;
        s.access.group_roles.push(GroupRoleSettings {
            group: "sensitive".into(),
            role: "sensitive_reader".into(),
            project: "*".into(),
            review_by: None,
        });
    })
    .await;
    let (alice, _) = person(&app, &idp, "alice", &["owners", "sensitive"]).await;
    let service = bearer(&app, app.secret());
    let account = app.project.service_account.id.clone();
    for role in BUILTIN {
        let body = json!({"subject_kind": "service_account", "subject": account, "role": role.name, "project": "*", "reason": "matrix"});
        let created = grant(&alice, body).await;
        assert_eq!(created.status(), 201, "granting {}", role.name);
        let id = created.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (method, path, permission) in person_routes() {
            let url = with_token(&app, concrete(&path, "shop"), "shop").await;
            let status = call(&service, &method, &url).await.status().as_u16();
            let held = role.permissions.contains(&permission)
                || SERVICE_ACCOUNT.permissions.contains(&permission);
            if held && permission.service_tokens_may() {
                assert!(
                    status != 401 && status != 403,
                    "a service account with {} should reach {method} {url} ({permission}) but got {status}",
                    role.name
                );
            } else {
                assert_eq!(
                    status, 403,
                    "a service account with {} must not reach {method} {url} ({permission})",
                    role.name
                );
            }
        }
        let revoked = alice.delete(&format!("/api/v1/admin/grants/{id}")).await;
        assert_eq!(revoked.status(), 200);
    }
}

#[tokio::test]
async fn nobody_lifts_a_deny_on_themselves_and_denies_never_lapse() {
    let (app, idp) = app(|s| {
        s.access.review_every_days = 1;
        s.access.lapse_overdue_grants = true;
    })
    .await;
    let (alice, alice_id) = person(&app, &idp, "alice", &["owners", "analysts"]).await;
    let (bob, _) = person(&app, &idp, "bob", &["owners"]).await;
    let deny = |kind: &str, who: &str| json!({"subject_kind": kind, "subject": who, "deny": "events:read", "project": "shop", "reason": "INC-7"});
    let mut ids = vec![];
    for body in [deny("user", &alice_id), deny("group", "analysts")] {
        let resp = grant(&bob, body).await;
        assert_eq!(resp.status(), 201);
        ids.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_problem(alice.get("/api/v1/projects/shop/events").await, 403).await;
    for id in &ids {
        for path in [
            format!("/api/v1/admin/grants/{id}/lock"),
            format!("/api/v1/admin/grants/{id}/unlock"),
        ] {
            let body = assert_problem(alice.post(&path, json!({})).await, 403).await;
            assert!(
                reason(&body).contains("deny that applies to them"),
                "{body}"
            );
        }
        let body = assert_problem(
            alice.delete(&format!("/api/v1/admin/grants/{id}")).await,
            403,
        )
        .await;
        assert!(
            reason(&body).contains("deny that applies to them"),
            "{body}"
        );
    }
    assert_problem(alice.get("/api/v1/projects/shop/events").await, 403).await;

    // Past its review date an allow lapses; a deny keeps denying.
    let allow = grant(&bob, to_user(&alice_id, "analyst", "shop")).await;
    assert_eq!(allow.status(), 201);
    app.clock.advance_millis(2 * 86_400_000);
    let me: Value = alice.get("/api/v1/me").await.json().await.unwrap();
    let held: Vec<_> = me["grants"].as_array().unwrap().iter().collect();
    assert!(
        !held
            .iter()
            .any(|g| g["role"] == "analyst" && g["source"]["grant"].is_string()),
        "{me}"
    );
    assert_eq!(
        held.iter().filter(|g| g["deny"] == "events:read").count(),
        2,
        "{me}"
    );
    assert_problem(alice.get("/api/v1/projects/shop/events").await, 403).await;

    // Someone else may lift them (signing in now, so their step-up is fresh).
    let (carol, _) = person(&app, &idp, "carol", &["owners"]).await;
    for id in &ids {
        let resp = carol.delete(&format!("/api/v1/admin/grants/{id}")).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        alice.get("/api/v1/projects/shop/events").await.status(),
        200
    );
    let entries = log(&app).await;
    let refused = entries
        .iter()
        .filter(|e| e.outcome == Outcome::Denied && e.details.contains("deny that applies to them"))
        .count();
    assert_eq!(refused, 6);
}

#[tokio::test]
async fn just_in_time_requests_for_powerful_roles_need_a_second_approval() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (bob, _) = person(&app, &idp, "bob", &["owners"]).await;
    let (dave, _) = person(&app, &idp, "dave", &[]).await;
    assert_problem(dave.get("/api/v1/admin/grants?project=shop").await, 403).await;
    for (role, needed) in [("owner", 2), ("admin", 2), ("analyst", 1)] {
        let ask = json!({"project": "shop", "role": role, "reason": "INC-9", "duration_hours": 2});
        let r: Value = dave
            .post("/api/v1/access-requests", ask)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r["approvals_needed"], needed, "{role}");
        let approve = format!(
            "/api/v1/admin/access-requests/{}/approve",
            r["id"].as_str().unwrap()
        );
        let first: Value = alice.post(&approve, json!({})).await.json().await.unwrap();
        if needed == 1 {
            assert_eq!(first["state"], "granted");
            continue;
        }
        assert_eq!(
            first["state"], "pending",
            "{role}: one approver is not enough"
        );
        let me: Value = dave.get("/api/v1/me").await.json().await.unwrap();
        let held = me["grants"].as_array().unwrap();
        assert!(!held.iter().any(|g| g["role"] == role), "{me}");
        let second: Value = bob.post(&approve, json!({})).await.json().await.unwrap();
        assert_eq!(second["state"], "granted");
    }
    assert_eq!(
        dave.get("/api/v1/admin/grants?project=shop").await.status(),
        200
    );
}

/// Signs the break-glass account in with its password and enrolls TOTP.
async fn break_glass_session(app: &TestApp) -> Browser {
    let pw = break_glass(app).await;
    let mut root = Browser::new(app);
    let body: Value = root
        .post(
            "/auth/password",
            json!({"email": "root@example.com", "password": pw}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["second_factor"], "enroll");
    root.csrf = body["csrf_token"].as_str().map(str::to_owned);
    root
}

#[tokio::test]
async fn the_break_glass_account_reads_no_data_and_always_passes_2_step_verification() {
    let (app, idp) = app(|s| s.auth.second_factor = SecondFactorPolicy::DataReaders).await;
    let mut root = break_glass_session(&app).await;
    // Holding no data role does not excuse it from 2-step verification.
    let body = assert_problem(root.get("/api/v1/admin/users").await, 401).await;
    assert_eq!(body["second_factor_required"], true);
    root.enroll(app.clock.now()).await;
    assert_eq!(root.get("/api/v1/admin/users").await.status(), 200);

    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    for role in ["analyst", "consumer", "owner"] {
        let body =
            assert_problem(grant(&alice, to_user("bg-admin", role, "shop")).await, 403).await;
        assert!(
            reason(&body).contains("break-glass account reads no data"),
            "{body}"
        );
    }
    assert_eq!(
        grant(&alice, to_user("bg-admin", "auditor", "shop"))
            .await
            .status(),
        201
    );
    // A data grant stored some other way (an old database, a hand-made row) reads nothing.
    let now = app.clock.now();
    app.store
        .create_grant(&GrantRecord {
            id: "smuggled".into(),
            subject_kind: SubjectKind::User,
            subject: "bg-admin".into(),
            effect: auditgate::access::Effect::Allow,
            role: Some("analyst".into()),
            permission: None,
            project: "*".into(),
            reason: "old".into(),
            granted_by: "cli".into(),
            created_at: now,
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
    assert_problem(root.get("/api/v1/projects/shop/events").await, 403).await;
    let me: Value = root.get("/api/v1/me").await.json().await.unwrap();
    assert!(!me.to_string().contains("events:read"), "{me}");
}

#[tokio::test]
async fn parallel_wrong_passwords_and_codes_are_evaluated_only_up_to_the_limit() {
    let (app, idp) = app(|_| {}).await;
    let pw = break_glass(&app).await;
    let login = |password: &'static str| {
        app.client
            .post(format!("{}/auth/password", app.address))
            .header("accept", "application/json")
            .json(&json!({"email": "root@example.com", "password": password}))
            .send()
    };
    let answers = join_all((0..20).map(|_| login("wrong"))).await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
    assert_problem(login(pw).await.unwrap(), 429).await;

    idp.set(|b| {
        b.subject = "erin-sub".into();
        b.email = "erin@example.com".into();
        b.groups = vec![];
    });
    let mut erin = Browser::new(&app);
    erin.sign_in().await;
    let secret = erin.enroll(app.clock.now()).await;
    let right = secret.code_at(app.clock.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let answers =
        join_all((0..60).map(|_| erin.post("/auth/2fa/verify", json!({"code": wrong})))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        55,
        "{statuses:?}"
    );
    app.clock.advance_millis(31_000);
    let next = secret.code_at(app.clock.now());
    assert_problem(
        erin.post("/auth/2fa/verify", json!({"code": next})).await,
        429,
    )
    .await;

    let entries = log(&app).await;
    let wrong_passwords = entries
        .iter()
        .filter(|e| e.action == Action::BreakGlass && e.details.contains("wrong password"))
        .count();
    assert_eq!(wrong_passwords, 5);
    let wrong_codes = entries
        .iter()
        .filter(|e| e.action == Action::SecondFactorFailed && e.details.contains("\"wrong\""))
        .count();
    assert_eq!(wrong_codes, 5);
    let lockouts = entries
        .iter()
        .filter(|e| e.action == Action::Lockout && e.details.contains("locked_until"))
        .count();
    assert!(lockouts >= 2, "each lock is logged where it is set");
}

#[tokio::test]
async fn a_burst_of_bad_sign_ins_does_not_starve_data_reads() {
    let (app, _idp): (TestApp, FakeIdp) = app(|_| {}).await;
    app.import(&json!([app.event("signup", "u1", "b1")])).await;
    let logins = join_all((0..100).map(|i| {
        app.client
            .post(format!("{}/auth/password", app.address))
            .json(&json!({"email": format!("nobody{i}@example.com"), "password": "guess"}))
            .send()
    }));
    let reads = async {
        let mut statuses = vec![];
        for _ in 0..10 {
            statuses.push(
                app.get("/api/v1/projects/shop/events")
                    .await
                    .status()
                    .as_u16(),
            );
        }
        statuses
    };
    let (logins, reads) = tokio::join!(logins, reads);
    assert!(logins.iter().all(|r| r.as_ref().unwrap().status() == 401));
    assert!(reads.iter().all(|s| *s == 200), "{reads:?}");
}

#[test]
fn permission_rules_for_tokens_cover_the_catalogue() {
    // Every permission is one a token may use or one kept for people in a session, and the
    // matrix tests above check both sides on every route.
    for p in Permission::ALL {
        if p.needs_step_up() {
            assert!(!p.personal_tokens_may(), "{p}");
        }
        if p.administers() {
            assert!(!p.service_tokens_may() && !p.personal_tokens_may(), "{p}");
        }
    }
}

#[tokio::test]
async fn a_personal_token_loses_group_access_when_the_provider_stops_confirming_it() {
    let (app, idp) = app(|_| {}).await;
    let (b, _) = person(&app, &idp, "gina", &["shop-admins"]).await;
    let token = bearer(&app, &b.personal_token("notebook", 30).await);
    let read = || token.get("/api/v1/projects/shop/events");
    assert_eq!(read().await.status(), 200);
    idp.set_groups("gina-sub", &[]);
    // Within the check interval the token keeps what it had...
    app.clock.advance_millis(4 * 60_000);
    assert_eq!(read().await.status(), 200);
    // ...then the provider is asked, with the refresh token of her session.
    app.clock.advance_millis(2 * 60_000);
    assert_problem(read().await, 403).await;
    idp.set_groups("gina-sub", &["shop-admins"]);
    app.clock.advance_millis(6 * 60_000);
    assert_eq!(read().await.status(), 200);
    // Once she signs out there is nothing to confirm with: only direct grants remain.
    assert_eq!(b.post("/auth/logout", json!({})).await.status(), 200);
    app.clock.advance_millis(6 * 60_000);
    assert_problem(read().await, 403).await;
    assert_eq!(
        token.get("/api/v1/me").await.status(),
        200,
        "the token itself still works"
    );
}

#[tokio::test]
async fn removing_a_sensitive_mark_takes_a_second_person() {
    let (app, idp) = app(|_| {}).await;
    let (alice, _) = person(&app, &idp, "alice", &["owners"]).await;
    let (bob, _) = person(&app, &idp, "bob", &["owners"]).await;
    app.import(&json!([{"event": "signup", "properties": {"distinct_id": "u1", "time": 1_700_000_000, "$insert_id": "s1", "email": "u1@example.com"}}]))
        .await;
    let url = |b: &Browser| {
        format!(
            "{}/api/v1/projects/shop/sensitive-properties/event/email",
            b.base
        )
    };
    let put = |b: &Browser| {
        b.client
            .put(url(b))
            .header("x-csrf-token", b.csrf.clone().unwrap())
            .send()
    };
    assert_eq!(put(&alice).await.unwrap().status(), 200);
    assert_eq!(email_of(&alice).await, "[redacted]");
    // Alice, who reads events, asks to remove the mark: it stays until someone else agrees.
    let asked = alice.delete(&url(&alice)).await;
    assert_eq!(asked.status(), 202);
    assert_eq!(email_of(&alice).await, "[redacted]");
    let again = assert_problem(alice.delete(&url(&alice)).await, 409).await;
    assert!(reason(&again).contains("another person"), "{again}");
    assert_eq!(email_of(&alice).await, "[redacted]");
    // Marking again withdraws the request; a new one needs a new confirmation.
    assert_eq!(put(&alice).await.unwrap().status(), 200);
    assert_eq!(alice.delete(&url(&alice)).await.status(), 202);
    let done = bob.delete(&url(&bob)).await;
    assert_eq!(done.status(), 200);
    assert_eq!(email_of(&alice).await, "u1@example.com");

    let entries = log(&app).await;
    let changes: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::PropertiesClassify)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(changes.len(), 6, "{changes:?}");
    assert_eq!(changes[1]["after"]["sensitive"], true);
    assert!(changes[1]["after"]["unmark_requested_by"].is_string());
    assert!(
        changes[2]["reason"]
            .as_str()
            .unwrap()
            .contains("second person")
    );
    assert_eq!(changes[5]["after"]["sensitive"], false);
    assert!(changes[5]["before"]["unmark_requested_by"].is_string());
}

async fn email_of(b: &Browser) -> Value {
    let page: Value = b
        .get("/api/v1/projects/shop/events")
        .await
        .json()
        .await
        .unwrap();
    page["events"][0]["properties"]["email"].clone()
}
