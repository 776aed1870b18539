//! The official Mixpanel Python SDK, pointed at auditgate and otherwise unchanged.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, TestApp, fresh_db, spawn_app, spawn_with, test_settings};

/// The interpreter with the `mixpanel` package, or `None` (after saying why) when missing.
fn python_with_sdk() -> Option<String> {
    let python = std::env::var("AUDITGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import mixpanel"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("AUDITGATE_REQUIRE_SDK").is_ok() {
        panic!("AUDITGATE_REQUIRE_SDK is set but {python} cannot import mixpanel");
    }
    eprintln!(
        "SKIPPED mixpanel SDK test: {python} cannot import mixpanel (pip install mixpanel==5.4.1, or set AUDITGATE_TEST_PYTHON)"
    );
    None
}

#[tokio::test]
async fn the_official_python_sdk_works_unchanged() {
    let Some(python) = python_with_sdk() else {
        return;
    };
    let app = spawn_app().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/mixpanel_sdk.py");
    let args = [
        script.to_owned(),
        app.address.clone(),
        app.token().to_owned(),
        app.project.service_account.name.clone(),
        app.secret().to_owned(),
        "shop".to_owned(),
    ];
    let out = tokio::process::Command::new(python)
        .args(&args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "SDK script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let events = app.all_events().await;
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        &names[..2],
        ["Older Purchase", "Old Purchase"],
        "time order"
    );
    let mut recent = names[2..].to_vec();
    recent.sort();
    assert_eq!(recent, ["$merge", "Opened App", "Signed Up"]);
    let signed_up = events.iter().find(|e| e["event"] == "Signed Up").unwrap();
    assert_eq!(signed_up["distinct_id"], "sdk-user");
    assert_eq!(signed_up["properties"]["plan"], "pro");
    assert_eq!(signed_up["properties"]["mp_lib"], "python");
    assert_eq!(events[1]["properties"]["amount"], 12);
    let profile: Value = app
        .get("/api/v1/projects/shop/profiles/sdk-user")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["properties"]["$email"], "sdk@example.com");
    let p = &profile["properties"];
    assert!(p.get("age").is_none(), "people_unset removed it");
    assert_eq!(p["plan"], "pro", "set_once kept the first value");
    assert_eq!(p["first_seen"], "2026-01-01");
    assert_eq!(p["logins"], 2);
    assert_eq!(p["pages"], serde_json::json!(["home"]));
    assert_eq!(p["tags"], serde_json::json!(["b"]));
    assert_eq!(
        p["$transactions"],
        serde_json::json!([{"$amount": 4.25}]),
        "clear_charges removed the earlier charges"
    );
    let group: Value = app
        .get("/api/v1/projects/shop/groups/company/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        group["properties"],
        serde_json::json!({"$name": "Acme", "tier": "silver", "founded": 1999, "regions": ["eu"]})
    );
    let gone = app.get("/api/v1/projects/shop/groups/company/gone").await;
    assert_eq!(gone.status(), 404, "group_delete removed it");
    // merge made sdk-old-id one of sdk-user's ids: either reads the person's every event.
    assert_eq!(names_of(&app, "sdk-old-id").await.len(), events.len());
    assert_eq!(names_of(&app, "sdk-user").await.len(), events.len());
    assert_eq!(
        app.get("/api/v1/projects/shop/profiles/gone-user")
            .await
            .status(),
        404,
        "people_delete removed it"
    );
}

/// The folder with the JavaScript SDKs (`npm ci` there), or `None` (after saying why).
pub fn js_sdks(test: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/node");
    let node = Command::new("node").arg("--version").output().is_ok();
    let modules = dir.join("node_modules/mixpanel").exists();
    if node && modules {
        return Some(dir);
    }
    if std::env::var("AUDITGATE_REQUIRE_SDK").is_ok() {
        panic!(
            "{test}: AUDITGATE_REQUIRE_SDK is set but node or tests/sdk/node/node_modules is missing"
        );
    }
    eprintln!(
        "SKIPPED {test}: needs Node and `npm ci` in tests/sdk/node (node: {node}, node_modules: {modules})"
    );
    None
}

/// The app speaking HTTPS itself (`server.tls_cert_file`), with a certificate made for this
/// test; the app's client trusts it. Returns the certificate's PEM file for other clients.
pub async fn spawn_tls() -> (TestApp, std::path::PathBuf) {
    let db = fresh_db(Backend::Sqlite, "tls").await.unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_file = db.dir.path().join("cert.pem");
    let key_file = db.dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let mut settings = test_settings(&db);
    settings.server.tls_cert_file = Some(cert_file.display().to_string());
    settings.server.tls_key_file = Some(key_file.display().to_string());
    let mut app = spawn_with(settings, db).await;
    app.address = app.address.replace("http://", "https://");
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    app.client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    (app, cert_file)
}

#[tokio::test]
async fn the_official_node_sdk_works_unchanged_over_tls() {
    let Some(dir) = js_sdks("the_official_node_sdk_works_unchanged_over_tls") else {
        return;
    };
    let (app, cert) = spawn_tls().await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("node_sdk.mjs"))
        .args([
            app.address.as_str(),
            app.token(),
            app.project.service_account.name.as_str(),
            app.secret(),
            "shop",
        ])
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "node SDK failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let events = app.all_events().await;
    let mut names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "$create_alias",
            "Batched",
            "Batched",
            "Batched",
            "Batched verbose",
            "Browsed",
            "Imported",
            "Imported batch",
            "Imported batch",
            "Opened",
            "Signed Up",
        ]
    );
    // alias made node-device one more id of node-user: either id reads all their events.
    assert_eq!(names_of(&app, "node-device").await.len(), events.len());
    assert_eq!(names_of(&app, "node-user").await.len(), events.len());
    let signed_up = events.iter().find(|e| e["event"] == "Signed Up").unwrap();
    assert_eq!(signed_up["properties"]["mp_lib"], "node");
    assert_eq!(signed_up["properties"]["plan"], "pro");
    let profile: Value = app
        .get("/api/v1/projects/shop/profiles/node-user")
        .await
        .json()
        .await
        .unwrap();
    let p = &profile["properties"];
    assert_eq!(p["$email"], "node@example.com");
    assert_eq!(p["plan"], "pro", "set_once kept the first value");
    assert_eq!(p["logins"], 2);
    assert_eq!(p["pages"], serde_json::json!(["home"]));
    assert_eq!(p["tags"], serde_json::json!(["b"]));
    assert_eq!(p["$transactions"][0]["$amount"], 9.5);
    assert_eq!(p["verbose"], true);
    assert!(p.get("first_seen").is_none(), "unset removed it");
    let gone = app.get("/api/v1/projects/shop/profiles/node-gone").await;
    assert_eq!(gone.status(), 404, "delete_user removed it");
    let group: Value = app
        .get("/api/v1/projects/shop/groups/company/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        group["properties"],
        serde_json::json!({"$name": "Acme", "tier": "gold", "regions": ["eu"]})
    );
    let gone = app.get("/api/v1/projects/shop/groups/company/gone").await;
    assert_eq!(gone.status(), 404, "delete_group removed it");
}

/// Whether Chromium is here to drive pages (else the test says so and skips).
fn chromium_ready(test: &str) -> bool {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if std::path::Path::new(&path).exists() {
        return true;
    }
    if std::env::var("AUDITGATE_REQUIRE_BROWSER").is_ok() {
        panic!("{test}: AUDITGATE_REQUIRE_BROWSER is set but {path} is missing");
    }
    eprintln!("SKIPPED {test}: needs Chromium at {path} (apt-get install chromium)");
    false
}

#[tokio::test]
async fn the_official_browser_sdk_works_unchanged_from_another_origin() {
    let test = "the_official_browser_sdk_works_unchanged_from_another_origin";
    let Some(dir) = js_sdks(test) else {
        return;
    };
    if !chromium_ready(test) {
        return;
    }
    let app = spawn_app().await;
    let page_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    crate::browser::allow(&app, &[page_origin.as_str()], false).await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("browser_sdk.mjs"))
        .env("APP", &app.address)
        .env("TOKEN", app.token())
        .env("PAGE_PORT", page_port.to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser SDK failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for (call, answer) in seen["results"].as_object().unwrap() {
        if call.ends_with("_id") {
            continue;
        }
        assert!(
            *answer == 1 || answer["status"] == 1,
            "{call} answered {answer}"
        );
    }
    let responses = seen["responses"].as_array().unwrap();
    let posts = |path: &str| {
        responses
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == path)
            .count()
    };
    assert!(
        posts("/track/") >= 8 && posts("/engage/") >= 3 && posts("/groups/") >= 2,
        "{seen}"
    );
    assert!(
        responses.iter().any(|r| r["img"] == true),
        "the pixel was sent: {seen}"
    );

    let events = app.all_events().await;
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    for (name, n) in [
        ("Viewed Pricing", 1),
        ("Signed In", 1),
        ("Invited Teammate", 1),
        ("Viewed Home", 1),
        ("$create_alias", 1),
        ("Bought", 1),
        ("Pixel Seen", 1),
        ("Batched", 5),
        ("$identify", 4),
    ] {
        assert_eq!(count(name), n, "{name} in {events:?}");
    }
    // The SDK's anonymous ids and the ids they identified as are one person each.
    let alice_anonymous = seen["results"]["alice_anonymous_id"].as_str().unwrap();
    for id in [alice_anonymous, "alice@example.com"] {
        let names = names_of(&app, id).await;
        for name in [
            "Viewed Pricing",
            "Signed In",
            "Invited Teammate",
            "$identify",
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} read by {id}: {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n == "Bought"),
            "bob's event read as alice's"
        );
    }
    let bob_anonymous = seen["results"]["bob_anonymous_id"].as_str().unwrap();
    for id in [bob_anonymous, "bob@example.com"] {
        let names = names_of(&app, id).await;
        for name in ["Viewed Home", "$create_alias", "Bought"] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} read by {id}: {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n == "Signed In"),
            "alice's event read as bob's"
        );
    }
    let invited = events
        .iter()
        .find(|e| e["event"] == "Invited Teammate")
        .unwrap();
    assert_eq!(invited["distinct_id"], "alice@example.com");
    assert_eq!(
        invited["properties"]["company"],
        serde_json::json!(["acme"])
    );
    assert_eq!(invited["properties"]["mp_lib"], "web");
    let alice: Value = app
        .get("/api/v1/projects/shop/profiles/alice@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alice["properties"]["$email"], "alice@example.com");
    assert_eq!(alice["properties"]["logins"], 2);
    assert_eq!(alice["properties"]["company"], serde_json::json!(["acme"]));
    let dave: Value = app
        .get("/api/v1/projects/shop/profiles/dave@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dave["properties"]["plan"], "team");
    let acme: Value = app
        .get("/api/v1/projects/shop/groups/company/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acme["properties"]["tier"], "gold");
    assert_eq!(acme["properties"]["founded"], 1999);
}

/// The names of the events the API returns for `id` (and the ids merged with it).
async fn names_of(app: &TestApp, id: &str) -> Vec<String> {
    let encoded: String = id
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let page: Value = app
        .get(&format!(
            "/api/v1/projects/shop/events?distinct_id={encoded}&limit=1000"
        ))
        .await
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}
