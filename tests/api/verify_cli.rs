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

/// `bundle` with one character of entry `seq`'s base64 changed, as someone with a text editor
/// would, written to `dir/bad.bundle`.
fn with_a_changed_character(bundle: &str, seq: u64, dir: &std::path::Path) -> std::path::PathBuf {
    let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("\"seq\":{seq},")))
        .unwrap();
    let pos = lines[at].find("\"bytes\":\"").unwrap() + 9 + 40;
    let flipped = if lines[at].as_bytes()[pos] == b'A' {
        "B"
    } else {
        "A"
    };
    lines[at].replace_range(pos..pos + 1, flipped);
    let bad = dir.join("bad.bundle");
    std::fs::write(
        &bad,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    bad
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
    let bad = with_a_changed_character(&bundle, 1, dir.path());
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

#[tokio::test]
async fn a_verified_bundle_is_shown_decoded_and_a_failing_one_shows_nothing() {
    let app = spawn_app().await;
    app.import(&json!([app.event("Buy", "u1", "i1")])).await;
    app.get("/api/v1/projects/shop/events/count").await;
    app.get("/api/v1/projects/shop/events?distinct_id=u1").await;
    app.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let (bundle, entries) = app.export_log().await;
    let good = dir.path().join("log.bundle");
    std::fs::write(&good, &bundle).unwrap();
    let (g, key) = (good.to_str().unwrap(), app.verifier_key().to_string());

    // JSON lines: every entry, decoded, then the report.
    let (code, out) = verify(&[g, "--key", &key, "--show", "--json"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (report, shown) = lines.split_last().unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(shown.len(), entries.len());
    for (json, entry) in shown.iter().zip(&entries) {
        assert_eq!(json["seq"], entry.seq);
        assert_eq!(json["action"], entry.action.as_str());
        assert_eq!(json["actor_id"], entry.actor.id);
        assert_eq!(json["prev"], hex::encode(entry.prev));
        assert_eq!(json["time_ms"], entry.time_ms);
        let details: Value = serde_json::from_str(&entry.details).unwrap();
        assert_eq!(json["details"], details);
    }
    let query = shown
        .iter()
        .find(|e| e["action"] == "events.query")
        .unwrap();
    assert_eq!(query["actor_kind"], "service_account");
    assert_eq!(query["project"], "shop");
    assert!(query["time"].as_str().unwrap().ends_with('Z'), "{query}");
    let subjects = query["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        subjects[0].as_str().unwrap().len(),
        64,
        "a pseudonym, never the id"
    );
    assert!(!out.contains("\"u1\""), "no end-user id in clear");

    // Filters, and the table.
    let (code, out) = verify(&[
        g,
        "--key",
        &key,
        "--show",
        "--json",
        "--action",
        "events.query",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "one entry and the report: {out}");
    let actor = query["actor_id"].as_str().unwrap();
    let (_, out) = verify(&[g, "--key", &key, "--show", "--json", "--actor", actor]);
    let by_actor = out.lines().count() - 1;
    let expected = entries.iter().filter(|e| e.actor.id == actor).count();
    assert_eq!(by_actor, expected);
    assert!(by_actor >= 3, "{out}");
    let (code, out) = verify(&[g, "--key", &key, "--show"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("seq "), "{out}");
    assert!(
        out.contains("events.ingest") && out.contains("OK: entries"),
        "{out}"
    );
    let (code, _) = verify(&[g, "--key", &key, "--show", "--action", "events.peek"]);
    assert_eq!(code, 2, "an action the format does not have");
    let (code, _) = verify(&[g, "--key", &key, "--action", "events.query"]);
    assert_eq!(code, 2, "a filter without --show");

    // A bundle that fails verification shows no entry at all.
    let bad = with_a_changed_character(&bundle, 2, dir.path());
    let (code, out) = verify(&[bad.to_str().unwrap(), "--key", &key, "--show", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "the failure only: {out}");

    // The server's CLI shows the same, with no configuration at all.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_auditgate"))
        .current_dir(empty.path())
        .args([
            "--json",
            "log",
            "show",
            g,
            "--key",
            &key,
            "--action",
            "events.query",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first, *query);
}
