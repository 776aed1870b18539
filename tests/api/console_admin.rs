//! The console's administration pages beyond grants and people: custom roles, grant locks
//! and reviews, service accounts and their tokens, project settings with soft delete and
//! restore, and the step-up code asked for inline. Each page shows what the API answers and
//! each form goes through the API's service, audit entries included.

use auditgate::clock::Clock;
use auditgate::ledger::entry::{Action, Outcome};
use serde_json::{Value, json};

use crate::console::{first_id, page, submit, walk};
use crate::grants::{app, log, person};
use crate::signin::Browser;

/// The row of a table whose `data-{attr}` is `id`.
fn row<'a>(html: &'a str, attr: &str, id: &str) -> &'a str {
    html.split(&format!("data-{attr}=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no row {id}: {html}"))
        .split("</tr>")
        .next()
        .unwrap()
}

#[tokio::test]
async fn administrators_define_roles_lock_and_review_grants_in_pages() {
    let (app, idp) = app(|_| {}).await;
    app.import(&json!([app.event("Buy", "cust-r", "r1")])).await;
    let (olga, olga_id) = person(&app, &idp, "olga", &["owners"]).await;
    let (emma, emma_id) = person(&app, &idp, "emma", &[]).await;

    let (status, roles) = page(&olga, "/console/admin/roles").await;
    assert_eq!(status, 200, "{roles}");
    assert!(roles.contains("id=\"builtin-roles\"") && roles.contains("id=\"no-custom-roles\""));
    // A role from the catalogue's checkboxes.
    let (status, roles) = submit(
        &olga,
        "/console/admin/roles",
        &[
            ("name", "support-reader"),
            ("description", "Support reads events"),
            ("permission events:read", "on"),
            ("permission profiles:read", "on"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{roles}");
    let custom = row(&roles, "role", "support-reader");
    assert!(custom.contains("events:read, profiles:read"), "{custom}");
    // The page shows what the API answers.
    let api: Value = olga.get("/api/v1/admin/roles").await.json().await.unwrap();
    let from_api = api["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "support-reader")
        .unwrap();
    assert_eq!(
        from_api["permissions"],
        json!(["events:read", "profiles:read"])
    );
    // No permission, or a built-in name: clear errors, nothing defined.
    let (status, _) = submit(
        &olga,
        "/console/admin/roles",
        &[("name", "empty"), ("description", "nothing")],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = submit(
        &olga,
        "/console/admin/roles",
        &[
            ("name", "owner"),
            ("description", "x"),
            ("permission events:read", "on"),
        ],
    )
    .await;
    assert_eq!(status, 422);

    // Granted to an employee, locked (it stops at once), unlocked, reviewed.
    let (status, grants) = submit(
        &olga,
        "/console/admin/grants",
        &[
            ("subject_kind", "user"),
            ("subject", &emma_id),
            ("role", "support-reader"),
            ("project", "shop"),
            ("reason", "SUP-1"),
            ("expires_in_days", "30"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{grants}");
    let grant_id = first_id(&grants, "grants", "grant").expect("the grant");
    assert_eq!(page(&emma, "/console/projects/shop/events").await.0, 200);
    let (status, grants) = submit(
        &olga,
        "/console/admin/grants/decision",
        &[("id", &grant_id), ("decision", "lock")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(row(&grants, "grant", &grant_id).contains("active (locked)"));
    assert_eq!(page(&emma, "/console/projects/shop/events").await.0, 403);
    let (status, grants) = submit(
        &olga,
        "/console/admin/grants/decision",
        &[("id", &grant_id), ("decision", "unlock")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(!row(&grants, "grant", &grant_id).contains("(locked)"));
    assert_eq!(page(&emma, "/console/projects/shop/events").await.0, 200);
    let (status, _) = submit(
        &olga,
        "/console/admin/grants/review",
        &[("id", &grant_id), ("note", "still on the support rota")],
    )
    .await;
    assert_eq!(status, 303);
    let (status, _) = submit(
        &olga,
        "/console/admin/grants/review",
        &[("id", &grant_id), ("note", "")],
    )
    .await;
    assert_eq!(status, 422, "a review says why");

    // A role in use cannot go; once its grant is revoked it can.
    let (status, _) = submit(
        &olga,
        "/console/admin/roles/delete",
        &[("name", "support-reader")],
    )
    .await;
    assert_eq!(status, 409);
    submit(
        &olga,
        "/console/admin/grants/decision",
        &[("id", &grant_id), ("decision", "revoke")],
    )
    .await;
    let (status, roles) = submit(
        &olga,
        "/console/admin/roles/delete",
        &[("name", "support-reader")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(roles.contains("id=\"no-custom-roles\""));

    // An employee sees no roles page and cannot post to it.
    assert_eq!(page(&emma, "/console/admin/roles").await.0, 403);
    let (status, _) = submit(
        &emma,
        "/console/admin/roles",
        &[
            ("name", "mine"),
            ("description", "x"),
            ("permission audit:read", "on"),
        ],
    )
    .await;
    assert!(status == 401 || status == 403, "{status}");

    let entries = log(&app).await;
    let by_olga = |a: Action| {
        entries
            .iter()
            .filter(|e| e.action == a && e.actor.id == olga_id && e.outcome == Outcome::Allowed)
            .count()
    };
    assert_eq!(by_olga(Action::RoleChange), 2, "defined, removed");
    assert!(entries.iter().any(|e| e.action == Action::GrantChange
        && e.details.contains("\"locked\":true")
        && e.actor.id == olga_id));
    assert!(
        entries
            .iter()
            .any(|e| e.action == Action::GrantChange && e.details.contains("support rota"))
    );
    assert!(entries.iter().any(|e| e.action == Action::RoleChange
        && e.outcome == Outcome::Denied
        && e.actor.id == emma_id));
}

/// Posts to `/import` as `name` with `secret`.
async fn import_as(b: &Browser, name: &str, secret: &str, event: &Value) -> u16 {
    b.client
        .post(format!("{}/import", b.base))
        .basic_auth(name, Some(secret))
        .json(&json!([event]))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn administrators_lock_service_accounts_and_make_and_revoke_tokens_in_pages() {
    let (app, idp) = app(|_| {}).await;
    let (olga, olga_id) = person(&app, &idp, "olga", &["owners"]).await;
    let (pete, _) = person(&app, &idp, "pete", &["shop-admins"]).await;
    let account = app.project.service_account.clone();
    let anon = Browser::new(&app);
    let event = app.event("Buy", "cust-s", "s1");

    let (status, accounts) = page(&olga, "/console/admin/service-accounts").await;
    assert_eq!(status, 200, "{accounts}");
    assert!(accounts.contains(&format!("data-account=\"{}\"", account.id)));
    // A token made in the page: its secret shown once, and it works.
    let (status, made) = submit(
        &olga,
        "/console/admin/service-accounts/tokens",
        &[("id", &account.id)],
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let secret = made
        .split("<pre id=\"token-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(import_as(&anon, &account.name, &secret, &event).await, 200);
    let (_, again) = page(&olga, "/console/admin/service-accounts").await;
    assert!(!again.contains(&secret), "the secret is shown only once");
    // The page lists what the API lists.
    let api: Value = olga
        .get(&format!(
            "/api/v1/admin/service-accounts/{}/tokens",
            account.id
        ))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = api["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "the project's first token and this one");
    for id in &ids {
        assert!(again.contains(&format!("data-token=\"{id}\"")));
    }
    let new_id = ids
        .iter()
        .find(|id| made.contains(&format!("(id <code>{id}</code>)")))
        .unwrap()
        .to_string();

    // Locked: every token stops; unlocked: they work again.
    let (status, locked) = submit(
        &olga,
        "/console/admin/service-accounts/decision",
        &[("id", &account.id), ("decision", "lock")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(locked.contains("Locked since"));
    assert_eq!(import_as(&anon, &account.name, &secret, &event).await, 401);
    submit(
        &olga,
        "/console/admin/service-accounts/decision",
        &[("id", &account.id), ("decision", "unlock")],
    )
    .await;
    assert_eq!(import_as(&anon, &account.name, &secret, &event).await, 200);
    // Revoked: that token alone stops.
    let (status, revoked) = submit(
        &olga,
        "/console/admin/service-accounts/decision",
        &[
            ("id", &account.id),
            ("decision", "revoke"),
            ("token", &new_id),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(row(&revoked, "token", &new_id).contains("revoked"));
    assert_eq!(import_as(&anon, &account.name, &secret, &event).await, 401);
    assert_eq!(app.import(&json!([event])).await.status(), 200);
    // The API: made (201, secret once), revoked, twice is a conflict, unknown is 404.
    let made: Value = {
        let r = olga
            .post(
                &format!("/api/v1/admin/service-accounts/{}/tokens", account.name),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    };
    let id = made["id"].as_str().unwrap();
    assert!(made["secret"].as_str().unwrap().len() > 20);
    let path = format!("/api/v1/admin/service-accounts/{}/tokens/{id}", account.id);
    assert_eq!(olga.delete(&path).await.status(), 200);
    assert_eq!(olga.delete(&path).await.status(), 409);
    let unknown = format!("/api/v1/admin/service-accounts/{}/tokens/nope", account.id);
    assert_eq!(olga.delete(&unknown).await.status(), 404);
    assert_eq!(
        olga.get("/api/v1/admin/service-accounts/nobody/tokens")
            .await
            .status(),
        404
    );
    let (status, _) = submit(
        &olga,
        "/console/admin/service-accounts/decision",
        &[("id", &account.id), ("decision", "delete")],
    )
    .await;
    assert_eq!(status, 422);

    // A project administrator without users:admin everywhere sees no such page.
    assert_eq!(page(&pete, "/console/admin/service-accounts").await.0, 403);
    let (status, _) = submit(
        &pete,
        "/console/admin/service-accounts/tokens",
        &[("id", &account.id)],
    )
    .await;
    assert_eq!(status, 403);

    let entries = log(&app).await;
    let of = |a: Action| {
        entries
            .iter()
            .filter(|e| e.action == a && e.actor.id == olga_id && e.outcome == Outcome::Allowed)
            .collect::<Vec<_>>()
    };
    assert_eq!(of(Action::TokenCreate).len(), 2, "page and API");
    assert_eq!(of(Action::TokenRevoke).len(), 2, "page and API");
    assert!(
        of(Action::TokenCreate)
            .iter()
            .all(|e| e.project.as_deref() == Some("shop") && !e.details.contains(&secret))
    );
    assert_eq!(
        of(Action::UserChange)
            .iter()
            .filter(|e| e.details.contains(&account.id))
            .count(),
        2,
        "locked, unlocked"
    );
}

#[tokio::test]
async fn project_settings_are_changed_and_projects_deleted_and_restored_in_pages() {
    let (app, idp) = app(|_| {}).await;
    app.import(&json!([app.event("Buy", "cust-p", "p1")])).await;
    let (olga, olga_id) = person(&app, &idp, "olga", &["owners"]).await;
    let (emma, _) = person(&app, &idp, "emma", &[]).await;

    let (status, projects) = page(&olga, "/console/admin/projects").await;
    assert_eq!(status, 200, "{projects}");
    assert!(row(&projects, "project", "shop").contains("/console/projects/shop/settings"));
    let (status, settings) = page(&olga, "/console/projects/shop/settings").await;
    assert_eq!(status, 200, "{settings}");
    let (status, _) = submit(
        &olga,
        "/console/projects/shop/settings",
        &[
            ("retention_days", "30"),
            ("consent_property", "agreed"),
            (
                "allowed_origins",
                "https://shop.example\r\nhttps://www.shop.example\r\n",
            ),
            ("record_client_ip", "on"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    // The page and the API read the same settings.
    let api: Value = olga
        .get("/api/v1/projects/shop")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["retention_days"], 30);
    assert_eq!(api["consent_required"], false);
    assert_eq!(api["consent_property"], "agreed");
    assert_eq!(
        api["allowed_origins"],
        json!(["https://shop.example", "https://www.shop.example"])
    );
    assert_eq!(api["record_client_ip"], true);
    let (_, settings) = page(&olga, "/console/projects/shop/settings").await;
    assert!(settings.contains("value=\"30\"") && settings.contains("https://www.shop.example"));
    for bad in [
        [
            ("retention_days", "0"),
            ("consent_property", "c"),
            ("allowed_origins", ""),
        ],
        [
            ("retention_days", "soon"),
            ("consent_property", "c"),
            ("allowed_origins", ""),
        ],
        [
            ("retention_days", "30"),
            ("consent_property", "c"),
            ("allowed_origins", "not an origin"),
        ],
    ] {
        let (status, body) = submit(&olga, "/console/projects/shop/settings", &bad).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
    }
    assert_eq!(
        olga.get("/api/v1/projects/shop")
            .await
            .json::<Value>()
            .await
            .unwrap()["retention_days"],
        30,
        "a refused form changes nothing"
    );

    // Deleting asks for the id; then the project is gone from every page but this one.
    let (status, _) = submit(
        &olga,
        "/console/projects/shop/delete",
        &[("confirm", "shoe")],
    )
    .await;
    assert_eq!(status, 422);
    let (status, projects) = submit(
        &olga,
        "/console/projects/shop/delete",
        &[("confirm", "shop")],
    )
    .await;
    assert_eq!(status, 303);
    let deleted = row(&projects, "project", "shop");
    assert!(deleted.contains("restorable until") && deleted.contains("data-decision=\"restore\""));
    let (_, home) = page(&olga, "/console").await;
    assert!(!home.contains("/console/projects/shop/"), "{home}");
    assert_eq!(page(&olga, "/console/projects/shop/events").await.0, 404);
    assert_eq!(page(&olga, "/console/projects/shop/settings").await.0, 404);
    let (status, settings) = submit(&olga, "/console/projects/shop/restore", &[]).await;
    assert_eq!(status, 303);
    assert!(settings.contains("id=\"settings-form\""));
    assert_eq!(page(&olga, "/console/projects/shop/events").await.0, 200);
    let (status, _) = submit(&olga, "/console/projects/shop/restore", &[]).await;
    assert_eq!(status, 409, "not deleted");

    // Someone without project:admin gets neither the page nor the change.
    assert_eq!(page(&emma, "/console/admin/projects").await.0, 403);
    assert_eq!(page(&emma, "/console/projects/shop/settings").await.0, 403);
    let (status, _) = submit(
        &emma,
        "/console/projects/shop/delete",
        &[("confirm", "shop")],
    )
    .await;
    assert_eq!(status, 403);

    let entries = log(&app).await;
    for a in [
        Action::ProjectUpdate,
        Action::ProjectDelete,
        Action::ProjectRestore,
    ] {
        let e = entries
            .iter()
            .find(|e| e.action == a && e.actor.id == olga_id && e.outcome == Outcome::Allowed)
            .unwrap_or_else(|| panic!("{a:?}"));
        assert!(e.details.contains("\"before\"") && e.details.contains("\"after\""));
    }
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == Action::ProjectUpdate && e.outcome == Outcome::Allowed)
            .count(),
        1,
        "refused forms wrote no change"
    );
}

#[tokio::test]
async fn a_lapsed_step_up_asks_for_the_code_inline_and_returns_to_the_page() {
    let (app, idp) = app(|_| {}).await;
    idp.set(|b| {
        b.subject = "olga-sub".into();
        b.email = "olga@example.com".into();
        b.groups = vec!["owners".into()];
    });
    let mut olga = Browser::new(&app);
    olga.sign_in().await;
    let totp = olga.enroll(app.clock.now()).await;
    let (_, nina_id) = person(&app, &idp, "nina", &[]).await;
    app.clock.advance_millis(11 * 60_000);

    // A page that needs a fresh code asks for it in place, to come back to it.
    let (status, asked) = page(&olga, "/console/admin/grants").await;
    assert_eq!(status, 401);
    assert!(asked.contains("id=\"step-up-form\""), "{asked}");
    assert!(asked.contains("name=\"next\" value=\"/console/admin/grants\""));
    // So does a form posted from a page: back to that page (its Referer).
    let grant_form = [
        ("subject_kind", "user"),
        ("subject", nina_id.as_str()),
        ("role", "analyst"),
        ("project", "shop"),
        ("reason", "T-2"),
        ("expires_in_days", ""),
    ];
    let r = olga
        .client
        .post(format!("{}/console/admin/grants", olga.base))
        .header("accept", "text/html")
        .header("origin", olga.base.trim_end_matches('/'))
        .header("sec-fetch-site", "same-origin")
        .header(
            "referer",
            format!(
                "{}/console/admin/grants?x=1",
                olga.base.trim_end_matches('/')
            ),
        )
        .form(&grant_form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let asked = r.text().await.unwrap();
    assert!(
        asked.contains("name=\"next\" value=\"/console/admin/grants?x=1\""),
        "{asked}"
    );
    assert!(asked.contains("/auth/2fa/verify?next=%2Fconsole%2Fadmin%2Fgrants%3Fx%3D1"));
    let (_, prompt) = page(&olga, "/auth/2fa/verify?next=%2Fconsole%2Fadmin%2Fgrants").await;
    assert!(prompt.contains("name=\"next\" value=\"/console/admin/grants\""));
    // A wrong code: the prompt again, saying so, still returning to the page.
    let (status, again) = submit(
        &olga,
        "/auth/2fa/verify",
        &[("code", "000000"), ("next", "/console/admin/grants")],
    )
    .await;
    assert_eq!(status, 401);
    assert!(again.contains("That code did not work"), "{again}");
    assert!(
        again.contains("name=\"next\" value=\"/console/admin/grants\""),
        "{again}"
    );
    assert!(again.contains("id=\"verify-form\""));
    let code = totp.code_at(app.clock.now());
    let r = olga
        .client
        .post(format!("{}/auth/2fa/verify", olga.base))
        .header("accept", "text/html")
        .header("origin", olga.base.trim_end_matches('/'))
        .header("sec-fetch-site", "same-origin")
        .form(&[("code", code.as_str()), ("next", "/console/admin/grants")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/admin/grants");
    let (status, done) = submit(&olga, "/console/admin/grants", &grant_form).await;
    assert_eq!(status, 303, "{done}");

    // `next` only ever leads to a page of this service.
    app.clock.advance_millis(11 * 60_000);
    for next in [
        "//evil.example/x",
        "https://evil.example/",
        "/auth/logout",
        "/a\\b",
    ] {
        let code = totp.code_at(app.clock.now());
        let r = olga
            .client
            .post(format!("{}/auth/2fa/verify", olga.base))
            .header("accept", "text/html")
            .header("origin", olga.base.trim_end_matches('/'))
            .header("sec-fetch-site", "same-origin")
            .form(&[("code", code.as_str()), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next}");
        assert_eq!(r.headers()["location"], "/account", "{next}");
        app.clock.advance_millis(31_000);
    }
    let entries = log(&app).await;
    assert!(
        entries
            .iter()
            .filter(|e| e.action == Action::SecondFactor && e.outcome == Outcome::Allowed)
            .count()
            >= 5
    );
}

#[tokio::test]
async fn an_owner_of_every_project_walks_every_admin_page_without_a_refusal() {
    let (app, idp) = app(|_| {}).await;
    app.other_project("bank").await;
    let (olga, _) = person(&app, &idp, "olga", &["owners"]).await;
    let seen = walk(&olga, "owner").await;
    for path in [
        "/console/admin/roles",
        "/console/admin/service-accounts",
        "/console/admin/projects",
        "/console/admin/people",
        "/console/admin/grants",
        "/console/projects/shop/settings",
        "/console/projects/bank/settings",
    ] {
        assert!(seen.contains(path), "{path}: {seen:?}");
    }
}
