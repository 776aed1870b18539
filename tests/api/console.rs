//! The console's pages over HTTP: each shows only what its viewer's API calls would allow
//! (links included, walked for every built-in role), reads as the API does (audit entries
//! too), and every problem a browser meets is a page with the same status.

use std::collections::BTreeSet;

use auditgate::clock::Clock;
use auditgate::config::GroupRoleSettings;
use auditgate::domain::BUILTIN;
use auditgate::ledger::entry::{Action, Outcome};
use serde_json::json;

use crate::grants::{app, grant, log, person, to_user};
use crate::signin::Browser;

/// A page as a browser asks for it.
pub(crate) async fn page(b: &Browser, path: &str) -> (u16, String) {
    let r = b
        .client
        .get(format!("{}{path}", b.base))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r.text().await.unwrap();
    if path.starts_with("/console") || status >= 400 {
        assert!(ct.starts_with("text/html"), "{path}: {status} {ct}");
    }
    (status, body)
}

/// The local links of a page (`href="/..."`), without fragments.
fn links(html: &str) -> BTreeSet<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|h| h.starts_with('/') && !h.starts_with("//"))
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

#[tokio::test]
async fn the_auditor_reads_the_log_an_entry_and_a_subject_report_in_pages() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (auditor, auditor_id) = person(&app, &idp, "abe", &[]).await;
    let (consumer, consumer_id) = person(&app, &idp, "cora", &[]).await;
    assert_eq!(
        grant(&owner, to_user(&auditor_id, "auditor", "shop"))
            .await
            .status(),
        201
    );
    assert_eq!(
        grant(&owner, to_user(&consumer_id, "consumer", "shop"))
            .await
            .status(),
        201
    );
    app.import(&json!([app.event("Buy", "cust-p", "p1")])).await;
    app.get("/api/v1/projects/shop/events?distinct_id=cust-p")
        .await;
    app.settle().await;

    // Home: the auditor sees the audit cards; the consumer does not.
    let (status, home) = page(&auditor, "/console").await;
    assert_eq!(status, 200);
    assert!(home.contains("id=\"card-audit\""), "{home}");
    assert!(home.contains("id=\"card-subject-report\""));
    assert!(home.contains("/assets/console.css"));
    let (_, home) = page(&consumer, "/console").await;
    assert!(!home.contains("card-audit") && !home.contains("/console/audit"));

    // The log viewer: the auditor of shop lands on shop's entries, newest first.
    let (status, log_page) = page(&auditor, "/console/audit").await;
    assert_eq!(status, 200, "{log_page}");
    assert!(log_page.contains("<td>events.query</td>"), "{log_page}");
    assert!(log_page.contains("id=\"public-key\""));
    assert!(log_page.contains("id=\"checkpoint\""));
    assert!(log_page.contains("/api/v1/audit/export?project=shop"));
    assert!(!log_page.contains("cust-p"), "no end-user id in clear");
    let (_, filtered) = page(&auditor, "/console/audit?project=shop&action=events.ingest").await;
    assert!(filtered.contains("events.ingest") && !filtered.contains("<td>events.query</td>"));
    // An entry: every field, its details, its proof.
    let entry_link = links(&log_page)
        .into_iter()
        .find(|l| l.starts_with("/console/audit/entries/"))
        .unwrap();
    let (status, entry) = page(&auditor, &entry_link).await;
    assert_eq!(status, 200, "{entry}");
    assert!(entry.contains("id=\"entry-fields\"") && entry.contains("id=\"proof\""));
    // Entry 0 (log.init) has no project: only whole-log auditors read it.
    let (status, refused) = page(&auditor, "/console/audit/entries/0").await;
    assert_eq!(status, 403);
    assert!(refused.contains("audit:read"), "{refused}");
    let (status, _) = page(&owner, "/console/audit/entries/0").await;
    assert_eq!(status, 200);
    assert_eq!(page(&auditor, "/console/audit/entries/x9").await.0, 404);

    // The subject report, as a form: the same answer and entry as the API.
    let (status, form) = page(&auditor, "/console/audit/subject-report").await;
    assert_eq!(status, 200);
    assert!(form.contains("id=\"report-form\""));
    let (status, answer) = submit(
        &auditor,
        "/console/audit/subject-report",
        &[("project", "shop"), ("distinct_id", "cust-p")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("data-standing=\"named\""), "{answer}");
    assert!(answer.contains("events.query"));
    assert!(answer.contains("action=\"/api/v1/audit/subject-report/bundle\""));

    // The consumer is refused every audit page, each as a page naming what is missing.
    for path in ["/console/audit", "/console/audit/subject-report"] {
        let (status, body) = page(&consumer, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("id=\"missing-permission\""), "{path}: {body}");
    }

    // Each page read is logged as its API read is.
    let entries = log(&app).await;
    let reads: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::AuditRead && e.actor.id == auditor_id)
        .collect();
    assert!(
        reads
            .iter()
            .any(|e| e.details.contains("events.ingest") && e.outcome == Outcome::Allowed)
    );
    assert!(reads.iter().any(|e| e.details.contains("\"seq\"")));
    assert!(reads.iter().any(|e| e.outcome == Outcome::Denied));
    assert!(
        entries
            .iter()
            .any(|e| e.action == Action::AuditSubjectReport
                && e.actor.id == auditor_id
                && e.subjects.len() == 1)
    );
    assert!(
        entries
            .iter()
            .filter(|e| e.actor.id == consumer_id)
            .any(|e| e.outcome == Outcome::Denied)
    );
}

#[tokio::test]
async fn a_browser_meets_every_problem_as_a_page_with_the_same_status() {
    let (app, idp) = app(|_| {}).await;
    let anonymous = Browser::new(&app);
    let (status, body) = page(&anonymous, "/console").await;
    assert_eq!(status, 401);
    assert!(body.contains("/auth/login"), "{body}");
    let (status, body) = page(&anonymous, "/no/such/page").await;
    assert_eq!(status, 404);
    assert!(body.contains("class=\"problem\""));
    // Scripts still get problem+json from the same routes.
    let r = anonymous.get("/no/such/page").await;
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // A wrong password: the sign-in form again, open, saying why, with the same 401.
    let r = anonymous
        .client
        .post(format!("{}/auth/password", anonymous.base))
        .header("accept", "text/html")
        .form(&[("email", "root@example.com"), ("password", "not it")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("id=\"password-form\"")
            && text.contains("<details open")
            && text.contains("id=\"problem-detail\""),
        "{text}"
    );
    let r = anonymous
        .client
        .post(format!("{}/auth/password", anonymous.base))
        .form(&[("email", "root@example.com"), ("password", "not it")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // A cross-site form post is refused with a page that says where pages must come from.
    let (b, _) = person(&app, &idp, "olga", &["owners"]).await;
    let r = b
        .client
        .post(format!("{}/console/audit/subject-report", b.base))
        .header("accept", "text/html")
        .header("origin", "https://evil.example")
        .form(&[("project", "shop"), ("distinct_id", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("cross-site request refused"), "{text}");
    // Too many attempts: the page says how long to wait, and Retry-After stays.
    let (limited, _) = crate::grants::app(|s| {
        s.server.rate_limit.public_per_second = 1;
        s.server.rate_limit.public_burst = 1;
    })
    .await;
    let anonymous = Browser::new(&limited);
    let mut last = None;
    for _ in 0..10 {
        let r = anonymous
            .client
            .get(format!("{}/api/v1/audit/checkpoint", anonymous.base))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("the sign-in page is rate limited");
    let wait = r.headers()["retry-after"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!("Please wait {wait} seconds")),
        "{text}"
    );
    // Pages load no inline script: the policy allows our own files only.
    let r = anonymous.get("/assets/console.css").await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
}

/// Walks the console from home, two links deep, failing on any link that leads to a
/// refusal; answers every path seen.
pub(crate) async fn walk(b: &Browser, who: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut frontier = vec!["/console".to_owned()];
    for _depth in 0..3 {
        let mut next = Vec::new();
        for path in frontier {
            if !seen.insert(path.clone()) || path.starts_with("/auth/") {
                continue;
            }
            let (status, body) = page(b, &path).await;
            // Refused (401, 403) or broken (5xx) never; a 404 only for a person who has
            // events and no profile.
            assert!(
                status < 400 || (status == 404 && path.contains("/profiles/")),
                "{who}: the link {path} answers {status}: {body}"
            );
            if path.starts_with("/console") {
                next.extend(
                    links(&body)
                        .into_iter()
                        .filter(|l| !l.starts_with("/assets/")),
                );
            }
        }
        frontier = next;
    }
    seen
}

#[tokio::test]
async fn every_builtin_role_sees_only_links_its_api_calls_allow() {
    let mappings: Vec<GroupRoleSettings> = BUILTIN
        .iter()
        .map(|r| GroupRoleSettings {
            group: format!("role-{}", r.name),
            role: r.name.into(),
            project: "shop".into(),
            review_by: None,
        })
        .collect();
    let (app, idp) = app(|s| s.access.group_roles.extend(mappings)).await;
    // One sensitive value, so each page can be held to what the same role's API call shows.
    let secret = "walk-secret@example.com";
    let mut buy = app.event("Buy", "cust-w", "w1");
    buy["properties"]["email"] = json!(secret);
    app.import(&json!([buy, app.event("Buy", "cust-x", "x1")]))
        .await;
    let (setter, _) = person(&app, &idp, "setter", &["role-owner"]).await;
    let r = setter
        .client
        .put(format!(
            "{}/api/v1/projects/shop/sensitive-properties/event/email",
            app.address
        ))
        .header("x-csrf-token", setter.csrf.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.post_form(
        "/engage",
        &json!([{"$token": app.token(), "$distinct_id": "cust-w", "$set": {"tier": "gold"}}]),
    )
    .await;
    app.settle().await;
    for role in BUILTIN {
        let group = format!("role-{}", role.name);
        let (b, _) = person(&app, &idp, role.name, &[group.as_str()]).await;
        let seen = walk(&b, role.name).await;
        // What a page shows, the role's API call shows too, and no more.
        if seen.contains("/console/projects/shop/events") {
            let (_, shown) = page(&b, "/console/projects/shop/events").await;
            let api = b
                .get("/api/v1/projects/shop/events")
                .await
                .text()
                .await
                .unwrap();
            for value in ["cust-w", "cust-x", secret] {
                assert_eq!(
                    shown.contains(value),
                    api.contains(value),
                    "{}: {value}",
                    role.name
                );
            }
            let sensitive = role
                .permissions
                .contains(&auditgate::domain::Permission::EventsReadSensitive);
            assert_eq!(shown.contains(secret), sensitive, "{}", role.name);
            assert_eq!(
                shown.contains("class=\"redacted\""),
                !sensitive,
                "{}",
                role.name
            );
        }
        if seen.contains("/console/audit") {
            let filter = "action=events.ingest&project=shop";
            let (_, shown) = page(&b, &format!("/console/audit?{filter}")).await;
            let api: serde_json::Value = b
                .get(&format!("/api/v1/audit/entries?{filter}"))
                .await
                .json()
                .await
                .unwrap();
            let from_api: BTreeSet<String> = api["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| format!("/console/audit/entries/{}", e["seq"]))
                .collect();
            let on_page: BTreeSet<String> = links(&shown)
                .into_iter()
                .filter(|l| l.starts_with("/console/audit/entries/"))
                .collect();
            assert!(!from_api.is_empty());
            assert_eq!(on_page, from_api, "{}", role.name);
        }
        let reads_audit = role
            .permissions
            .contains(&auditgate::domain::Permission::AuditRead);
        assert_eq!(
            seen.contains("/console/audit"),
            reads_audit,
            "{}: {seen:?}",
            role.name
        );
        assert_eq!(
            seen.contains("/console/admin/grants"),
            role.permissions
                .contains(&auditgate::domain::Permission::RolesAssign),
            "{}",
            role.name
        );
        assert!(seen.contains("/console/access"), "{}", role.name);
        assert_eq!(
            seen.contains("/console/projects/shop/events"),
            role.permissions
                .contains(&auditgate::domain::Permission::EventsRead),
            "{}",
            role.name
        );
        let administers = role
            .permissions
            .contains(&auditgate::domain::Permission::ProjectAdmin);
        assert_eq!(
            seen.contains("/console/admin/projects"),
            administers,
            "{}",
            role.name
        );
        assert_eq!(
            seen.contains("/console/projects/shop/settings"),
            administers,
            "{}",
            role.name
        );
        // Held on one project only: nothing that needs a right on every project.
        for global in ["/console/admin/roles", "/console/admin/service-accounts"] {
            assert!(!seen.contains(global), "{}: {global}", role.name);
        }
        assert_eq!(
            seen.contains("/console/audit/subject-report"),
            role.permissions
                .contains(&auditgate::domain::Permission::AuditInvestigate),
            "{}",
            role.name
        );
    }
}

#[tokio::test]
async fn employees_explore_events_and_profiles_with_sensitive_values_redacted() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (analyst, analyst_id) = person(&app, &idp, "ana", &[]).await;
    let (consumer, consumer_id) = person(&app, &idp, "cora", &[]).await;
    for (id, role) in [(&analyst_id, "analyst"), (&consumer_id, "consumer")] {
        assert_eq!(grant(&owner, to_user(id, role, "shop")).await.status(), 201);
    }
    let t = app.now_secs();
    app.import(&json!([
        {"event": "Signup", "properties": {"distinct_id": "cust e/1", "time": t - 3 * 86_400, "$insert_id": "e1", "email": "secret-mail@example.com", "plan": "pro"}},
        {"event": "Buy", "properties": {"distinct_id": "cust e/1", "time": t - 86_400, "$insert_id": "e2", "plan": "pro"}},
        {"event": "Buy", "properties": {"distinct_id": "cust-f", "time": t - 60, "$insert_id": "e3", "plan": "free"}},
    ]))
    .await;
    app.post_form(
        "/engage",
        &json!([{"$token": app.token(), "$distinct_id": "cust e/1", "$set": {"$email": "profile-secret@example.com", "tier": "gold"}}]),
    )
    .await;
    for (kind, name) in [("event", "email"), ("profile", "$email")] {
        let r = owner
            .client
            .put(format!(
                "{}/api/v1/projects/shop/sensitive-properties/{kind}/{}",
                app.address,
                name.replace('$', "%24")
            ))
            .header("x-csrf-token", owner.csrf.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{kind} {name}");
    }

    // The explorer: a chart of counts by day, the events, the sensitive value redacted.
    let (_, home) = page(&analyst, "/console").await;
    assert!(home.contains("/console/projects/shop/events"), "{home}");
    let (status, body) = page(&analyst, "/console/projects/shop/events").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("id=\"counts-by-day\"") && body.contains("<rect"),
        "{body}"
    );
    assert!(body.contains("3 events by day"), "{body}");
    assert!(body.contains("[redacted]") && !body.contains("secret-mail"));
    assert!(body.contains(">pro<") && body.contains(">free<"));
    // Filters, and a person's profile through the link the table gives.
    let (_, buys) = page(
        &analyst,
        "/console/projects/shop/events?event=Buy&distinct_id=&from=&to=",
    )
    .await;
    assert!(
        buys.contains("2 events by day") && !buys.contains(">Signup<"),
        "{buys}"
    );
    let profile_link = links(&body)
        .into_iter()
        .find(|l| l.contains("/profiles/"))
        .unwrap();
    assert_eq!(profile_link, "/console/projects/shop/profiles/cust%20e%2F1");
    let (status, profile) = page(&analyst, &profile_link).await;
    assert_eq!(status, 200, "{profile}");
    assert!(profile.contains("gold") && profile.contains("[redacted]"));
    assert!(!profile.contains("profile-secret"));
    // A consumer reads events but not profiles: no profile links, and the profile is refused.
    let (_, seen_by_consumer) = page(&consumer, "/console/projects/shop/events").await;
    assert!(!seen_by_consumer.contains("/profiles/"));
    assert_eq!(page(&consumer, &profile_link).await.0, 403);
    assert_eq!(page(&analyst, "/console/projects/bank/events").await.0, 403);
    let (status, bad) = page(&analyst, "/console/projects/shop/events?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(bad.contains("from"), "{bad}");

    // Each view is logged exactly as its API read: a query, a count by day, a profile read.
    let entries = log(&app).await;
    let by = |a: Action| {
        entries
            .iter()
            .filter(|e| e.action == a && e.actor.id == analyst_id)
            .collect::<Vec<_>>()
    };
    let queries = by(Action::EventsQuery);
    assert!(queries.len() >= 2);
    assert!(
        queries
            .iter()
            .any(|e| e.details.contains("\"sensitive_redacted\":[\"email\"]"))
    );
    assert!(
        by(Action::EventsCount)
            .iter()
            .any(|e| e.details.contains("\"group_by\":\"day\""))
    );
    let profiles = by(Action::ProfilesRead);
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].subjects.len(), 1);
    assert!(entries.iter().all(|e| !e.details.contains("cust e/1")));
}

/// A form post from a page, following the 303 back: the status and the page it lands on.
pub(crate) async fn submit(b: &Browser, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = b
        .client
        .post(format!("{}{path}", b.base))
        .header("accept", "text/html")
        .header("origin", b.base.trim_end_matches('/'))
        .header("sec-fetch-site", "same-origin")
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 303 {
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        return (status, page(b, &to).await.1);
    }
    (status, r.text().await.unwrap())
}

/// The id in the first `data-{attr}="..."` of a table.
pub(crate) fn first_id(html: &str, table: &str, attr: &str) -> Option<String> {
    let t = html.split(&format!("id=\"{table}\"")).nth(1)?;
    let rest = t.split(&format!("data-{attr}=\"")).nth(1)?;
    rest.split('"').next().map(str::to_owned)
}

#[tokio::test]
async fn admins_grant_and_approve_and_people_ask_for_access_in_pages() {
    let (app, idp) = app(|_| {}).await;
    let (olga, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (oscar, _) = person(&app, &idp, "oscar", &["owners"]).await;
    let (emma, emma_id) = person(&app, &idp, "emma", &[]).await;
    let (_, nina_id) = person(&app, &idp, "nina", &[]).await;

    // An owner grants a powerful role: it waits for another administrator.
    let (status, grants_page) = submit(
        &olga,
        "/console/admin/grants",
        &[
            ("subject_kind", "user"),
            ("subject", &nina_id),
            ("role", "admin"),
            ("project", "shop"),
            ("reason", "TICKET-9"),
            ("expires_in_days", ""),
        ],
    )
    .await;
    assert_eq!(status, 303, "{grants_page}");
    let grant_id = first_id(&grants_page, "pending-grants", "grant").expect("pending");
    // The granter sees why they cannot approve it; the other owner approves it.
    assert!(grants_page.contains("You granted it: another administrator must approve it"));
    let (status, refused) = submit(
        &olga,
        "/console/admin/grants/decision",
        &[("id", &grant_id), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let (_, seen_by_oscar) = page(&oscar, "/console/admin/grants").await;
    assert!(seen_by_oscar.contains("data-decision=\"approve\""));
    let (status, after) = submit(
        &oscar,
        "/console/admin/grants/decision",
        &[("id", &grant_id), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(after.contains("id=\"queue-empty\""), "{after}");

    // An employee asks for access; an owner approves it; the role works at once.
    let (_, access) = page(&emma, "/console/access").await;
    assert!(access.contains("id=\"no-requests\""));
    assert_eq!(page(&emma, "/console/projects/shop/events").await.0, 403);
    let (status, asked) = submit(
        &emma,
        "/console/access",
        &[
            ("project", "shop"),
            ("role", "analyst"),
            ("reason", "INC-7"),
            ("duration_hours", "4"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{asked}");
    assert!(
        asked.contains("<td class=\"state\">pending</td>"),
        "{asked}"
    );
    let (_, queue) = page(&olga, "/console/admin/grants").await;
    let request_id = first_id(&queue, "pending-requests", "request").expect("the request");
    let (status, _) = submit(
        &olga,
        "/console/admin/access-requests/decision",
        &[("id", &request_id), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, asked) = page(&emma, "/console/access").await;
    assert!(
        asked.contains("<td class=\"state\">granted</td>"),
        "{asked}"
    );
    assert_eq!(page(&emma, "/console/projects/shop/events").await.0, 200);
    // Her own requests cannot be approved by her, and she sees no administration.
    let (_, home) = page(&emma, "/console").await;
    assert!(!home.contains("/console/admin/grants"));
    assert_eq!(page(&emma, "/console/admin/grants").await.0, 403);
    // Bad forms are clear errors.
    let (status, _) = submit(
        &emma,
        "/console/access",
        &[
            ("project", "shop"),
            ("role", "analyst"),
            ("reason", "x"),
            ("duration_hours", "soon"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = submit(
        &olga,
        "/console/admin/grants/decision",
        &[("id", &grant_id), ("decision", "maybe")],
    )
    .await;
    assert_eq!(status, 422);

    // Every change went through the admin services: logged with before and after.
    let entries = log(&app).await;
    let changes: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::GrantChange && e.outcome == Outcome::Allowed)
        .collect();
    assert!(
        changes.len() >= 3,
        "create, approve, and the request's grant"
    );
    assert!(changes.iter().all(|e| e.details.contains("\"before\"")));
    assert!(
        entries
            .iter()
            .any(|e| e.action == Action::AccessRequest && e.actor.id == emma_id)
    );
    assert!(
        entries
            .iter()
            .any(|e| e.action == Action::GrantChange && e.outcome == Outcome::Denied)
    );
}

/// Reloads a page until `done` holds for it (a job finishing in the background).
async fn until(b: &Browser, path: &str, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..300 {
        let (_, body) = page(b, path).await;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{path} never got there");
}

#[tokio::test]
async fn data_protection_officers_erase_export_and_approve_in_pages() {
    let (app, idp) = app(|s| s.privacy.approval_above_subjects = 1).await;
    let (owner, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (dora, dora_id) = person(&app, &idp, "dora", &[]).await;
    let (dana, dana_id) = person(&app, &idp, "dana", &[]).await;
    for id in [&dora_id, &dana_id] {
        assert_eq!(
            grant(&owner, to_user(id, "data_protection_officer", "shop"))
                .await
                .status(),
            201
        );
    }
    for (who, id) in [("cust-a", "a1"), ("cust-b", "b1"), ("cust-c", "c1")] {
        app.import(&json!([app.event("Buy", who, id)])).await;
    }
    let deletions = "/console/projects/shop/subject-requests/deletions";
    let exports = "/console/projects/shop/subject-requests/exports";
    let (_, home) = page(&dora, "/console").await;
    assert!(home.contains(deletions) && home.contains(exports), "{home}");

    // One person: erased at once; the page follows it to SUCCESS.
    let (status, listed) = submit(
        &dora,
        deletions,
        &[
            ("kind", "erase"),
            ("property", ""),
            ("distinct_ids", "cust-a\n"),
            ("reason", "DSR-1"),
            ("compliance_type", "GDPR"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{listed}");
    until(&dora, deletions, |b| {
        b.contains("<td class=\"state\">SUCCESS</td>")
    })
    .await;
    assert!(!listed.contains("cust-a"), "ids are not shown back");

    // Two people: waits for a second person, who approves it from the page.
    let (_, listed) = submit(
        &dora,
        deletions,
        &[
            ("kind", "erase"),
            ("distinct_ids", "cust-b\ncust-c"),
            ("reason", "DSR-2"),
        ],
    )
    .await;
    assert!(listed.contains("waits for a second person"), "{listed}");
    assert!(listed.contains("Yours: another person approves it."));
    // The row that waits (requests made at the same instant may list in either order).
    let id = listed
        .split("data-request=\"")
        .skip(1)
        .find(|row| {
            row.split("</tr>")
                .next()
                .unwrap()
                .contains("waits for a second person")
        })
        .and_then(|row| row.split('"').next())
        .unwrap()
        .to_owned();
    let (status, _) = submit(
        &dora,
        &format!("{deletions}/decision"),
        &[("id", &id), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 403);
    let (_, seen_by_dana) = page(&dana, deletions).await;
    assert!(seen_by_dana.contains("data-decision=\"approve\""));
    let (status, body) = submit(
        &dana,
        &format!("{deletions}/decision"),
        &[("id", &id), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let done = until(&dana, deletions, |b| {
        !b.contains(">PENDING") && !b.contains(">STARTED") && !b.contains(">STAGING")
    })
    .await;
    assert!(!done.contains("waits for a second person"), "{done}");
    let events: serde_json::Value = app
        .get("/api/v1/projects/shop/events")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"], json!([]), "all three erased");

    // An export: finished, with a download link that serves the document.
    app.import(&json!([app.event("Buy", "cust-d", "d1")])).await;
    let (status, _) = submit(
        &dora,
        exports,
        &[("distinct_ids", "cust-d"), ("reason", "DSR-3")],
    )
    .await;
    assert_eq!(status, 303);
    let listed = until(&dora, exports, |b| b.contains(">Download<")).await;
    let download = links(&listed)
        .into_iter()
        .find(|l| l.ends_with("/download"))
        .unwrap();
    let doc: serde_json::Value = dora.get(&download).await.json().await.unwrap();
    assert!(doc.to_string().contains("cust-d"), "{doc}");

    // Bad forms and outsiders.
    let (status, _) = submit(
        &dora,
        deletions,
        &[("kind", "shred"), ("distinct_ids", "x"), ("reason", "r")],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = submit(
        &dora,
        deletions,
        &[("distinct_ids", "\u{7}"), ("reason", "r")],
    )
    .await;
    assert_eq!(status, 422);
    let (outsider, _) = person(&app, &idp, "otto", &[]).await;
    let (status, body) = submit(&outsider, deletions, &[("nonsense", "1")]).await;
    assert_eq!(status, 403, "refused before the form is judged: {body}");

    // The requests went through the privacy services: each logged, naming pseudonyms only.
    let entries = log(&app).await;
    assert!(
        entries
            .iter()
            .filter(|e| e.action == Action::SubjectsErase)
            .count()
            >= 2
    );
    assert!(entries.iter().all(|e| !e.details.contains("cust-")));
}

#[tokio::test]
async fn people_end_their_sessions_and_make_and_revoke_tokens_in_the_account_page() {
    let (app, idp) = app(|s| s.auth.step_up_minutes = 5).await;
    idp.set(|b| {
        b.subject = "pia-sub".into();
        b.email = "pia@example.com".into();
        b.groups = vec![];
    });
    let mut laptop = Browser::new(&app);
    laptop.sign_in().await;
    let secret = laptop.enroll(app.clock.now()).await;
    let mut phone = Browser::new(&app);
    phone.sign_in().await;
    app.clock.advance_millis(30_000);
    let code = secret.code_at(app.clock.now());
    assert_eq!(phone.verify(json!({"code": code})).await.status(), 200);
    let (status, account) = page(&laptop, "/account").await;
    assert_eq!(status, 200);
    assert!(account.contains("id=\"nav\""), "the console's shell");
    let others: Vec<&str> = account
        .split("data-session=\"")
        .skip(1)
        .filter(|row| !row.split("</tr>").next().unwrap().contains("this one"))
        .filter_map(|row| row.split('"').next())
        .collect();
    assert_eq!(others.len(), 1, "{account}");
    let (status, _) = submit(&laptop, "/account/sessions/end", &[("id", others[0])]).await;
    assert_eq!(status, 303);
    assert_eq!(
        page(&phone, "/account").await.0,
        401,
        "the phone's session ended"
    );

    // A token: made with a fresh code, its secret shown once, usable, then revoked.
    let (status, made) = submit(
        &laptop,
        "/account/tokens",
        &[("name", "laptop-cli"), ("expires_in_days", "7")],
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let secret = made
        .split("id=\"token-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    let me = app
        .client
        .get(format!("{}/api/v1/me", app.address))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let (_, account) = page(&laptop, "/account").await;
    assert!(!account.contains(&secret), "shown once only");
    let token_id = first_id(&account, "tokens", "token").unwrap();
    let (status, _) = submit(&laptop, "/account/tokens/revoke", &[("id", &token_id)]).await;
    assert_eq!(status, 303);
    let me = app
        .client
        .get(format!("{}/api/v1/me", app.address))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);

    // Later, a new token needs a fresh code: the page says so and links to the prompt.
    app.clock.advance_millis(6 * 60_000);
    let (status, prompt) = submit(
        &laptop,
        "/account/tokens",
        &[("name", "later"), ("expires_in_days", "7")],
    )
    .await;
    assert_eq!(status, 401, "{prompt}");
    assert!(prompt.contains("id=\"step-up\"") && prompt.contains("/auth/2fa/verify"));
    let (status, _) = submit(&laptop, "/account/tokens/revoke", &[("id", "nope")]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn administrators_disable_people_and_reset_their_second_factor_in_pages() {
    let (app, idp) = app(|_| {}).await;
    let (olga, olga_id) = person(&app, &idp, "olga", &["owners"]).await;
    let (pete, pete_id) = person(&app, &idp, "pete", &[]).await;
    let (status, people) = page(&olga, "/console/admin/people").await;
    assert_eq!(status, 200, "{people}");
    assert!(people.contains("pete@example.com"));
    assert!(people.contains("access-review?format=csv"));
    let own_row = people
        .split(&format!("data-person=\"{olga_id}\""))
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        !own_row.contains("data-decision"),
        "no buttons on one's own row"
    );
    // The review link works for the viewer (it needs audit:read on every project).
    let review = olga
        .client
        .get(format!(
            "{}/api/v1/admin/access-review?format=csv",
            olga.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status(), 200);

    let (status, _) = submit(
        &olga,
        "/console/admin/people/decision",
        &[("id", &pete_id), ("decision", "disable")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(page(&pete, "/console").await.0, 401, "disabled: signed out");
    let (_, people) = page(&olga, "/console/admin/people").await;
    let row = people
        .split(&format!("data-person=\"{pete_id}\""))
        .nth(1)
        .unwrap();
    assert!(row.starts_with('>') && row.contains("<td class=\"state\">disabled</td>"));
    for decision in ["enable", "reset_second_factor", "end_sessions"] {
        let (status, body) = submit(
            &olga,
            "/console/admin/people/decision",
            &[("id", &pete_id), ("decision", decision)],
        )
        .await;
        assert_eq!(status, 303, "{decision}: {body}");
    }
    let (status, _) = submit(
        &olga,
        "/console/admin/people/decision",
        &[("id", &pete_id), ("decision", "promote")],
    )
    .await;
    assert_eq!(status, 422);
    // Someone without users:admin is refused before the form is read, and sees no link.
    let (status, _) = submit(&pete, "/console/admin/people/decision", &[("x", "y")]).await;
    assert!(status == 401 || status == 403, "{status}");
    let entries = log(&app).await;
    for a in [
        Action::UserChange,
        Action::SecondFactorReset,
        Action::SessionEnd,
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e.action == a && e.actor.id == olga_id && e.outcome == Outcome::Allowed),
            "{a:?}"
        );
    }
}

#[tokio::test]
async fn sensitive_properties_are_marked_and_unmarked_by_two_people_in_pages() {
    let (app, idp) = app(|_| {}).await;
    let (olga, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (oscar, _) = person(&app, &idp, "oscar", &["owners"]).await;
    let (ana, ana_id) = person(&app, &idp, "ana", &[]).await;
    assert_eq!(
        grant(&olga, to_user(&ana_id, "analyst", "shop"))
            .await
            .status(),
        201
    );
    let path = "/console/projects/shop/sensitive-properties";
    let (_, home) = page(&olga, "/console").await;
    assert!(home.contains(path), "{home}");
    let (status, listed) = submit(
        &olga,
        path,
        &[("kind", "event"), ("name", "email"), ("sensitive", "true")],
    )
    .await;
    assert_eq!(status, 303, "{listed}");
    assert!(listed.contains("<code>email</code>"));
    // Taking it off: asked by one, still marked; confirmed by another, gone.
    let unmark = [("kind", "event"), ("name", "email"), ("sensitive", "false")];
    let (_, asked) = submit(&olga, path, &unmark).await;
    assert!(asked.contains("Removal asked by"), "{asked}");
    let (status, _) = submit(&olga, path, &unmark).await;
    assert_eq!(status, 409, "the asker cannot confirm");
    let (status, after) = submit(&oscar, path, &unmark).await;
    assert_eq!(status, 303);
    assert!(!after.contains("<code>email</code>"), "{after}");
    // An analyst may not classify, and sees no link; a bad kind is a 422.
    assert_eq!(page(&ana, path).await.0, 403);
    let (status, _) = submit(&ana, path, &[("x", "y")]).await;
    assert_eq!(status, 403);
    let (status, _) = submit(
        &olga,
        path,
        &[("kind", "column"), ("name", "x"), ("sensitive", "true")],
    )
    .await;
    assert_eq!(status, 422);
    let entries = log(&app).await;
    assert!(
        entries
            .iter()
            .filter(|e| e.action == Action::PropertiesClassify && e.outcome == Outcome::Allowed)
            .count()
            >= 3
    );
}

#[tokio::test]
async fn officers_read_and_record_opt_outs_and_consent_in_pages() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (dora, dora_id) = person(&app, &idp, "dora", &[]).await;
    let (ana, ana_id) = person(&app, &idp, "ana", &[]).await;
    for (id, role) in [(&dora_id, "data_protection_officer"), (&ana_id, "analyst")] {
        assert_eq!(grant(&owner, to_user(id, role, "shop")).await.status(), 201);
    }
    let path = "/console/projects/shop/preferences";
    let (_, home) = page(&dora, "/console").await;
    assert!(home.contains(path));
    assert_eq!(page(&dora, path).await.0, 200);
    let (status, shown) = submit(
        &dora,
        path,
        &[("distinct_id", "cust-p"), ("change", "read")],
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("data-opted-out=\"false\"") && shown.contains("No consent recorded"));
    let (_, shown) = submit(
        &dora,
        path,
        &[("distinct_id", "cust-p"), ("change", "opt_out")],
    )
    .await;
    assert!(shown.contains("data-opted-out=\"true\""), "{shown}");
    let (_, shown) = submit(
        &dora,
        path,
        &[("distinct_id", "cust-p"), ("change", "consent")],
    )
    .await;
    assert!(
        shown.contains("Consent given") && shown.contains("(console)"),
        "{shown}"
    );
    // What the page recorded is what the API reads, and an opted-out person's events are dropped.
    let r = app.import(&json!([app.event("Buy", "cust-p", "p1")])).await;
    assert_eq!(r.status(), 200);
    let stored: serde_json::Value = app
        .get("/api/v1/projects/shop/events?distinct_id=cust-p")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["events"], json!([]), "opted out: not stored");
    let (status, _) = submit(
        &dora,
        path,
        &[("distinct_id", "cust-p"), ("change", "forget")],
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(page(&ana, path).await.0, 403);
    let (status, _) = submit(&ana, path, &[("x", "y")]).await;
    assert_eq!(status, 403, "refused before the form is read");
    let entries = log(&app).await;
    let consent: Vec<_> = entries
        .iter()
        .filter(|e| {
            matches!(e.action, Action::SubjectsConsent | Action::SubjectsOptOut)
                && e.actor.id == dora_id
                && e.outcome == Outcome::Allowed
        })
        .collect();
    assert!(consent.len() >= 3 && consent.iter().all(|e| e.subjects.len() == 1));
    assert!(entries.iter().any(|e| e.action == Action::SubjectsOptOut));
    assert!(entries.iter().all(|e| !e.details.contains("cust-p")));
}
