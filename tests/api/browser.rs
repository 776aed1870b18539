//! The request shapes Mixpanel's SDKs send besides the Python SDK's (trailing slashes, `GET
//! data=`, the image pixel, flags in the query string), CORS for pages on a project's allowed
//! origins, and the client's address kept only where a project opts in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::grants::{app, log, person};
use crate::helpers::{TestApp, assert_mixpanel_refusal, assert_problem, spawn_app};
use auditgate::ledger::entry::{Action, Outcome};

const SHOP: &str = "https://shop.example";
const EVIL: &str = "https://evil.example";

fn tracked(app: &TestApp, name: &str, who: &str) -> Value {
    json!({"event": name, "properties": {"token": app.token(), "distinct_id": who, "time": app.now_secs()}})
}

fn b64(v: &Value) -> String {
    STANDARD.encode(v.to_string())
}

async fn names(app: &TestApp) -> Vec<String> {
    let mut n: Vec<String> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

/// A request as a page's SDK sends it: flags in the query, `data=` in a form body.
async fn from_page(
    app: &TestApp,
    origin: Option<&str>,
    path: &str,
    data: &Value,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!(
            "{}{path}?verbose=1&ip=1&_=1733400000000",
            app.address
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("data", b64(data))]).unwrap());
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

pub(crate) async fn allow(app: &TestApp, origins: &[&str], record_client_ip: bool) {
    let p = app
        .store
        .project(&auditgate::domain::ProjectId::parse("shop").unwrap())
        .await
        .unwrap()
        .unwrap();
    let settings = auditgate::store::ProjectSettings {
        retention_days: p.retention_days,
        consent_required: p.consent_required,
        consent_property: p.consent_property,
        allowed_origins: auditgate::domain::AllowedOrigins::parse_list(
            &origins.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
        )
        .unwrap(),
        record_client_ip,
    };
    assert!(
        app.store
            .update_project_settings(&p.id, &settings)
            .await
            .unwrap()
    );
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_shape_the_sdks_send_is_stored_and_answered_as_mixpanel_does() {
    let app = spawn_app().await;
    // The browser SDK: a trailing slash, flags in the query string, base64 data in a form.
    let r = from_page(
        &app,
        None,
        "/track/",
        &json!([tracked(&app, "slash", "u1")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": 1, "error": null})
    );
    // The Node SDK: GET with data= in the query, verbose=0 and ip=0: a bare 1.
    let q = serde_urlencoded::to_string([
        ("data", b64(&tracked(&app, "get", "u1"))),
        ("ip", "0".into()),
        ("verbose", "0".into()),
    ])
    .unwrap();
    let r = app.get_anonymous(&format!("/track?{q}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1");
    // The same with verbose=1 in the query string.
    let q = serde_urlencoded::to_string([
        ("data", b64(&tracked(&app, "get-verbose", "u1"))),
        ("verbose", "1".into()),
    ])
    .unwrap();
    let r = app.get_anonymous(&format!("/track/?{q}")).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": 1, "error": null})
    );
    // The image pixel: a 1×1 GIF.
    let q = serde_urlencoded::to_string([
        ("data", b64(&tracked(&app, "pixel", "u1"))),
        ("img", "1".into()),
    ])
    .unwrap();
    let r = app.get_anonymous(&format!("/track?{q}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("image/gif"));
    let gif = r.bytes().await.unwrap();
    assert!(gif.starts_with(b"GIF89a") && gif.len() == 43, "{gif:?}");
    // Profiles by GET, with and without the slash.
    let u = json!({"$token": app.token(), "$distinct_id": "u1", "$set": {"plan": "pro"}});
    let q = serde_urlencoded::to_string([("data", b64(&u))]).unwrap();
    assert_eq!(
        app.get_anonymous(&format!("/engage/?{q}"))
            .await
            .text()
            .await
            .unwrap(),
        "1"
    );
    let profile: Value = app
        .get("/api/v1/projects/shop/profiles/u1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["properties"]["plan"], "pro", "{profile}");
    // Import by GET (the Node SDK's single import), with the service account.
    let old = json!({"event": "imported", "properties": {"distinct_id": "u1", "time": app.now_secs() - 86_400, "$insert_id": "imp-1"}});
    let q = serde_urlencoded::to_string([("data", b64(&old)), ("verbose", "1".into())]).unwrap();
    let r = app
        .client
        .get(format!("{}/import/?{q}", app.address))
        .basic_auth(&app.project.service_account.name, Some(app.secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(
        names(&app).await,
        ["get", "get-verbose", "imported", "pixel", "slash"]
    );

    // No data anywhere: a problem, nothing stored.
    assert_problem(app.get_anonymous("/track?verbose=1").await, 400).await;
    // A failure after verbose=1 comes in Mixpanel's shape, with its HTTP status.
    let bad = json!({"event": "", "properties": {"token": app.token(), "distinct_id": "u1"}});
    let batch = json!([bad, tracked(&app, "beside-a-bad-one", "u1")]);
    let q = serde_urlencoded::to_string([("data", b64(&batch)), ("verbose", "1".into())]).unwrap();
    let error = assert_mixpanel_refusal(app.get_anonymous(&format!("/track?{q}")).await, 400).await;
    assert!(error.contains("1 of 2 records failed"), "{error}");

    // Each accepted request is one ingestion entry, whatever its shape.
    app.settle().await;
    let ingests = log(&app)
        .await
        .into_iter()
        .filter(|e| e.action == Action::EventsIngest && e.outcome == Outcome::Allowed)
        .count();
    assert_eq!(ingests, 6);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

/// The mobile SDKs' requests, as their public sources build them: mixpanel-swift (iOS, and
/// React Native and Flutter on iOS) posts JSON bodies to `/track/`, `/engage/` and `/groups/`
/// with `ip` in the query, gzipping event batches when asked; mixpanel-android (and React Native
/// and Flutter on Android) posts `data=<JSON>` forms, the whole form gzipped when asked. Both
/// read a bare `1` as success.
#[tokio::test]
async fn the_mobile_sdks_request_shapes_are_stored_and_answered_with_1() {
    let app = spawn_app().await;
    let t = app.token().to_owned();
    let post = |path: &str, content_type: &str, gzipped: bool, body: Vec<u8>| {
        let mut req = app
            .client
            .post(format!("{}{path}?ip=1", app.address))
            .header("content-type", content_type);
        if gzipped {
            req = req.header("content-encoding", "gzip");
        }
        req.body(body).send()
    };
    let ios_events = json!([tracked(&app, "ios", "m1"), tracked(&app, "ios-2", "m1")]);
    let ios_people = json!([{"$token": t, "$distinct_id": "m1", "$set": {"os": "iOS"}}]);
    let ios_groups =
        json!([{"$token": t, "$group_key": "company", "$group_id": "acme", "$set": {"os": "iOS"}}]);
    let android_events = json!([tracked(&app, "android", "m2")]);
    let android_people = json!([{"$token": t, "$distinct_id": "m2", "$set": {"os": "Android"}}]);
    let form = |v: &Value| {
        serde_urlencoded::to_string([("data", v.to_string())])
            .unwrap()
            .into_bytes()
    };
    let json_type = "application/json";
    let form_type = "application/x-www-form-urlencoded; charset=utf-8";
    for (path, content_type, gzipped, body) in [
        (
            "/track/",
            json_type,
            true,
            gzip(ios_events.to_string().as_bytes()),
        ),
        (
            "/engage/",
            json_type,
            false,
            ios_people.to_string().into_bytes(),
        ),
        (
            "/groups/",
            json_type,
            false,
            ios_groups.to_string().into_bytes(),
        ),
        ("/track/", form_type, true, gzip(&form(&android_events))),
        ("/engage/", form_type, false, form(&android_people)),
    ] {
        let r = post(path, content_type, gzipped, body).await.unwrap();
        assert_eq!(r.status(), 200, "{path} {content_type}");
        assert_eq!(r.text().await.unwrap(), "1", "{path} {content_type}");
    }
    assert_eq!(names(&app).await, ["android", "ios", "ios-2"]);
    for (who, os) in [("m1", "iOS"), ("m2", "Android")] {
        let p: Value = app
            .get(&format!("/api/v1/projects/shop/profiles/{who}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(p["properties"]["os"], os, "{p}");
    }
    let g: Value = app
        .get("/api/v1/projects/shop/groups/company/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["properties"]["os"], "iOS");
    // A bad record is refused with a 4xx (which those SDKs count as a failure) and its good
    // neighbour is stored.
    let bad = json!([{"event": "", "properties": {"token": t, "distinct_id": "m1"}}, tracked(&app, "ios-3", "m1")]);
    let r = post("/track/", json_type, false, bad.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(names(&app).await, ["android", "ios", "ios-2", "ios-3"]);
}

#[tokio::test]
async fn pages_send_only_from_the_origins_their_project_lists() {
    let app = spawn_app().await;
    // By default no origin is listed: a page's events are refused, readably for no one.
    let r = from_page(
        &app,
        Some(SHOP),
        "/track/",
        &json!([tracked(&app, "a", "u1")]),
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let error = assert_mixpanel_refusal(r, 401).await;
    assert!(
        error.contains("https://shop.example is not in project shop's allowed_origins"),
        "{error}"
    );
    let preflight = |origin: &'static str, headers: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/track/?verbose=1", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", headers)
            .send()
    };
    assert_problem(preflight(SHOP, "content-type").await.unwrap(), 403).await;

    allow(&app, &[SHOP], false).await;
    let r = preflight(SHOP, "Content-Type").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert!(
        header(&r, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_problem(preflight(EVIL, "content-type").await.unwrap(), 403).await;
    assert_problem(preflight(SHOP, "x-api-key").await.unwrap(), 400).await;
    assert_problem(preflight("null", "content-type").await.unwrap(), 403).await;

    let r = from_page(
        &app,
        Some(SHOP),
        "/track/",
        &json!([tracked(&app, "from-shop", "u1")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert!(r.headers().get_all("vary").iter().any(|v| v == "Origin"));
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no cookies on ingestion"
    );
    let r = from_page(
        &app,
        Some(EVIL),
        "/track/",
        &json!([tracked(&app, "from-evil", "u1")]),
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_mixpanel_refusal(r, 401).await;
    let u = json!({"$token": app.token(), "$distinct_id": "u1", "$set": {"plan": "pro"}});
    let r = from_page(&app, Some(SHOP), "/engage/", &u).await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP));
    // A request without Origin (a server SDK) is not a page's: the token alone decides.
    let r = from_page(
        &app,
        None,
        "/track",
        &json!([tracked(&app, "from-server", "u1")]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    // Problems a page's SDK must read to retry carry the headers too.
    let batch = json!([tracked(&app, "", "u1"), tracked(&app, "good", "u1")]);
    let r = from_page(&app, Some(SHOP), "/track/", &batch).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP));

    // Flags and decide: nothing to decide, readable by the project's pages.
    let r = app
        .client
        .get(format!(
            "{}/flags/?token={}&context=%7B%7D",
            app.address,
            app.token()
        ))
        .header("origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"flags": {}}));
    let r = app
        .client
        .get(format!(
            "{}/decide?verbose=1&token={}",
            app.address,
            app.token()
        ))
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(r.json::<Value>().await.unwrap()["feature_flags"], json!([]));
    // CORS stays off the rest of the API.
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/projects/shop/events", app.address),
        )
        .header("origin", SHOP)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    // "*" only where the project opts in; then any page may send.
    allow(&app, &["*"], false).await;
    let r = from_page(
        &app,
        Some(EVIL),
        "/track/",
        &json!([tracked(&app, "anywhere", "u1")]),
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some(EVIL));
    assert_eq!(
        names(&app).await,
        ["anywhere", "from-server", "from-shop", "good"]
    );

    // Refusals are logged with the origin as the reason.
    app.settle().await;
    let reasons: Vec<String> = log(&app)
        .await
        .into_iter()
        .filter(|e| e.action == Action::AuthRejected)
        .map(|e| e.details)
        .collect();
    assert!(
        reasons
            .iter()
            .any(|d| d.contains("https://evil.example is not in project shop's allowed_origins")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn administrators_list_origins_and_opt_into_client_addresses_and_both_are_logged() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = person(&app, &idp, "olga", &["owners"]).await;
    let patch = |body: Value| {
        owner
            .client
            .patch(format!("{}/api/v1/projects/shop", owner.base))
            .header("x-csrf-token", owner.csrf.clone().unwrap())
            .json(&body)
            .send()
    };
    for bad in [
        json!({"allowed_origins": ["https://shop.example/app"]}),
        json!({"allowed_origins": ["*", SHOP]}),
        json!({"allowed_origins": ["shop.example"]}),
        json!({"record_client_ip": "yes"}),
    ] {
        let r = patch(bad.clone()).await.unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 422),
            "{bad}: {}",
            r.status()
        );
    }
    let r = patch(json!({"allowed_origins": ["https://SHOP.example:443", "http://localhost:3000"], "record_client_ip": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(
        view["allowed_origins"],
        json!(["http://localhost:3000", SHOP])
    );
    assert_eq!(view["record_client_ip"], true);
    app.settle().await;
    let change = log(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == Action::ProjectUpdate && e.outcome == Outcome::Allowed)
        .unwrap();
    let details: Value = serde_json::from_str(&change.details).unwrap();
    assert_eq!(details["before"]["allowed_origins"], json!([]));
    assert_eq!(details["before"]["record_client_ip"], false);
    assert_eq!(
        details["after"]["allowed_origins"],
        json!(["http://localhost:3000", SHOP])
    );
    assert_eq!(details["after"]["record_client_ip"], true);
    // Someone without project:admin is refused (and logged) whatever the body says.
    let (nobody, _) = person(&app, &idp, "nora", &[]).await;
    let r = nobody
        .client
        .patch(format!("{}/api/v1/projects/shop", nobody.base))
        .header("x-csrf-token", nobody.csrf.clone().unwrap())
        .json(&json!({"record_client_ip": "yes"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
    let denied = log(&app)
        .await
        .into_iter()
        .filter(|e| e.action == Action::ProjectUpdate && e.outcome == Outcome::Denied)
        .count();
    assert_eq!(denied, 1);
}

#[tokio::test]
async fn the_client_address_is_kept_only_where_the_project_opts_in_and_the_sdk_asks() {
    let app = spawn_app().await;
    let ip_of = |events: &[Value], name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .map(|e| e["properties"].get("$ip").cloned())
            .unwrap()
    };
    // ip=1, but the project has not opted in: no address.
    from_page(
        &app,
        None,
        "/track",
        &json!([tracked(&app, "default", "u1")]),
    )
    .await;
    allow(&app, &[], true).await;
    // Opted in and ip=1: the address the request came from.
    from_page(&app, None, "/track", &json!([tracked(&app, "asked", "u1")])).await;
    // Opted in, ip=0: none.
    let r = app
        .post_form_with(
            "/track?ip=0",
            &[(
                "data",
                json!([tracked(&app, "not-asked", "u1")]).to_string(),
            )],
        )
        .await;
    assert_eq!(r.status(), 200);
    // An address the event carries is kept as sent.
    let mut own = tracked(&app, "own", "u1");
    own["properties"]["$ip"] = json!("203.0.113.9");
    from_page(&app, None, "/track", &json!([own])).await;
    let events = app.all_events().await;
    assert_eq!(ip_of(&events, "default"), None);
    assert_eq!(ip_of(&events, "asked"), Some(json!("127.0.0.1")));
    assert_eq!(ip_of(&events, "not-asked"), None);
    assert_eq!(ip_of(&events, "own"), Some(json!("203.0.113.9")));
}

#[tokio::test]
async fn group_profiles_take_the_groups_operations_and_are_read_under_profiles_read() {
    let app = spawn_app().await;
    let t = app.token().to_owned();
    let acme = |op: &str, arg: Value| json!({"$token": t, "$group_key": "company", "$group_id": "acme", op: arg});
    let batch = json!([
        acme("$set", json!({"plan": "pro", "seats": 10, "tags": ["x"]})),
        acme("$set_once", json!({"plan": "free", "founded": 1999})),
        acme("$union", json!({"tags": ["x", "y"]})),
        acme("$remove", json!({"tags": "x"})),
        acme("$unset", json!(["seats"])),
        {"$token": t, "$group_key": "company", "$group_id": 42, "$set": {"n": 1}},
    ]);
    let r = from_page(&app, None, "/groups/", &batch).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": 1, "error": null})
    );
    let g: Value = app
        .get("/api/v1/projects/shop/groups/company/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        g["properties"],
        json!({"plan": "pro", "founded": 1999, "tags": ["y"]}),
        "{g}"
    );
    assert_eq!(
        (g["group_key"].as_str(), g["group_id"].as_str()),
        (Some("company"), Some("acme"))
    );
    let n: Value = app
        .get("/api/v1/projects/shop/groups/company/42")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(n["properties"]["n"], 1);

    // Groups take no $add or $append; a missing key or id is named; the rest are stored.
    let batch = json!([
        acme("$add", json!({"seats": 1})),
        {"$token": t, "$group_id": "acme", "$set": {"a": 1}},
        {"$token": t, "$group_key": "company", "$group_id": "", "$set": {"a": 1}},
        acme("$set", json!({"region": "eu"})),
    ]);
    let body = assert_problem(app.post_form_plain("/groups", &batch).await, 400).await;
    let fields: Vec<&str> = body["failed_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["$add", "$group_key", "$group_id"]);
    let g: Value = app
        .get("/api/v1/projects/shop/groups/company/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["properties"]["region"], "eu");
    // Unknown tokens are refused like the other routes.
    let stray =
        json!({"$token": "nope", "$group_key": "company", "$group_id": "acme", "$set": {"a": 1}});
    assert_problem(app.post_form_plain("/groups", &stray).await, 401).await;

    // $delete removes it; reading it then is a logged 404; another project never sees it.
    app.post_form("/groups", &acme("$delete", json!(""))).await;
    assert_problem(
        app.get("/api/v1/projects/shop/groups/company/acme").await,
        404,
    )
    .await;
    let too_long = "x".repeat(256);
    assert_problem(
        app.get(&format!("/api/v1/projects/shop/groups/company/{too_long}"))
            .await,
        400,
    )
    .await;
    app.other_project("bank").await;
    assert_problem(
        app.get_anonymous("/api/v1/projects/shop/groups/company/42")
            .await,
        401,
    )
    .await;

    // Logged as profile updates and reads, by group key; the group's id never appears.
    app.settle().await;
    let entries = log(&app).await;
    let updates: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::ProfilesUpdate)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert!(
        updates
            .iter()
            .all(|d| d["endpoint"] == "groups" && d["group_keys"] == json!(["company"]))
    );
    let reads: Vec<Value> = entries
        .iter()
        .filter(|e| e.action == Action::ProfilesRead)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(reads.iter().filter(|d| d["found"] == false).count(), 1);
    assert!(
        entries.iter().all(|e| !e.details.contains("acme")),
        "group ids stay out of the log"
    );
}

/// The names of the events read by one of a person's ids.
async fn events_named_by(app: &TestApp, who: &str) -> Vec<String> {
    let page: Value = app
        .get(&format!(
            "/api/v1/projects/shop/events?distinct_id={who}&limit=100"
        ))
        .await
        .json()
        .await
        .unwrap();
    let mut n: Vec<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn a_merge_links_ids_only_from_a_service_account() {
    let app = spawn_app().await;
    let t = app.now_secs() - 60;
    let paid = json!([{"event": "Paid", "properties": {"distinct_id": "cust-v", "time": t, "$insert_id": "p1"}}]);
    assert_eq!(app.import(&paid).await.status(), 200);
    // A page holding the public token asks to make its id one of cust-v's.
    let merge = |who: &str, insert_id: &str| {
        json!({"event": "$merge", "properties": {"token": app.token(), "distinct_id": who,
            "$distinct_ids": ["cust-v", who], "time": t + 1, "$insert_id": insert_id}})
    };
    let r = from_page(&app, None, "/track/", &json!([merge("page-id", "m1")])).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], 1);
    // Kept as an event, linking nothing: page-id does not read cust-v's events.
    assert_eq!(events_named_by(&app, "page-id").await, ["$merge"]);
    assert_eq!(events_named_by(&app, "cust-v").await, ["Paid"]);
    let entries = log(&app).await;
    let tracked = entries
        .iter()
        .rev()
        .find(|e| e.action == Action::EventsIngest)
        .unwrap();
    let details: Value = serde_json::from_str(&tracked.details).unwrap();
    assert_eq!(details["identity_links_asked"], 0, "{details}");

    // The same merge from a service account (/import) links the ids.
    assert_eq!(
        app.import(&json!([merge("srv-id", "m2")])).await.status(),
        200
    );
    assert_eq!(events_named_by(&app, "srv-id").await, ["$merge", "Paid"]);
}
