//! The official Mixpanel Python SDK, pointed at auditgate and otherwise unchanged.

use std::process::Command;

use serde_json::Value;

use crate::helpers::spawn_app;

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
        names,
        ["Older Purchase", "Old Purchase", "Signed Up"],
        "time order"
    );
    let signed_up = &events[2];
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
    assert!(
        profile["properties"].get("age").is_none(),
        "people_unset removed it"
    );
    assert_eq!(
        app.get("/api/v1/projects/shop/profiles/gone-user")
            .await
            .status(),
        404,
        "people_delete removed it"
    );
}
