//! `auditgate-verify`: the stand-alone offline verifier, run as a user would.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_auditgate-verify"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_verifier_reports_and_exits_0_1_or_2() {
    let app = spawn_app().await;
    app.import(&json!([app.event("Buy", "u1", "i1")])).await;
    app.get("/api/v1/projects/shop/events").await;
    app.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.checkpoint");
    std::fs::write(
        &saved,
        app.get_anonymous("/api/v1/audit/checkpoint")
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let (bundle, _) = app.export_log().await;
    let good = dir.path().join("log.bundle");
    std::fs::write(&good, &bundle).unwrap();
    let key = app.verifier_key().to_string();
    let key_file = dir.path().join("log.vkey");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let (g, s, kf) = (
        good.to_str().unwrap(),
        saved.to_str().unwrap(),
        key_file.to_str().unwrap(),
    );

    let (code, out) = verify(&[g, "--key", &key, "--checkpoint", s]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: entries 0..3"), "{out}");
    assert!(out.contains("consistent with your saved checkpoint of 3 entries"));
    let (code, out) = verify(&[g, "--key", kf, "--json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["report"]["entries"], 3);

    // One changed character in an entry: exit 1 naming the entry.
    let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
    let at = lines.iter().position(|l| l.contains("\"seq\":1,")).unwrap();
    // Edit the base64 in place, as someone with a text editor would.
    let pos = lines[at].find("\"bytes\":\"").unwrap() + 9 + 40;
    let flipped = if lines[at].as_bytes()[pos] == b'A' {
        "B"
    } else {
        "A"
    };
    lines[at].replace_range(pos..pos + 1, flipped);
    let bad = dir.path().join("bad.bundle");
    std::fs::write(
        &bad,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (code, out) = verify(&[bad.to_str().unwrap(), "--key", &key, "--json"]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["seq"] == 1 || report["seq"] == 2, "{report}");

    // Unusable input: exit 2.
    let (code, _) = verify(&["/no/such/file", "--key", &key]);
    assert_eq!(code, 2);
    let (code, out) = verify(&[g, "--key", "not-a-key"]);
    assert_eq!(code, 2, "{out}");
    let cut = dir.path().join("cut.bundle");
    std::fs::write(&cut, &bundle[..bundle.len() - 1]).unwrap();
    assert_eq!(
        verify(&[cut.to_str().unwrap(), "--key", &key]).0,
        2,
        "a file cut mid-line"
    );
    // An unknown format, and a saved checkpoint that is not one: exit 2, as the format
    // document says.
    let other = dir.path().join("other.bundle");
    std::fs::write(
        &other,
        bundle.replacen("auditgate-bundle/v1", "auditgate-bundle/v9", 1),
    )
    .unwrap();
    assert_eq!(
        verify(&[other.to_str().unwrap(), "--key", &key]).0,
        2,
        "unknown format"
    );
    let junk = dir.path().join("junk.checkpoint");
    std::fs::write(&junk, "not a checkpoint\n").unwrap();
    assert_eq!(
        verify(&[g, "--key", &key, "--checkpoint", junk.to_str().unwrap()]).0,
        2,
        "a saved checkpoint that is not one"
    );
}
