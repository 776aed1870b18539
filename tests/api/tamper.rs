//! The tamper suite: every way of altering an exported log that the verifier must catch.

use auditgate::ledger::bundle::{BundleError, Line, verify_text};
use auditgate::ledger::chain::{Draft, Head, seal};
use auditgate::ledger::checkpoint::Checkpoint;
use auditgate::ledger::entry::Entry;
use auditgate::ledger::note::{Note, SignerKey, VerifierKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// An app whose log has entries of two projects, committed one by one (one checkpoint each).
async fn busy_app() -> TestApp {
    let app = spawn_app().await;
    app.other_project("bank").await;
    for i in 0..4 {
        app.import(&json!([app.event(
            "Buy",
            &format!("u{i}"),
            &format!("i{i}")
        )]))
        .await;
        app.get(&format!("/api/v1/projects/shop/events?distinct_id=u{i}"))
            .await;
        app.get("/api/v1/projects/bank/events").await; // denied: an entry of project bank
    }
    app.settle().await;
    app
}

fn lines(bundle: &str) -> Vec<String> {
    bundle.lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn parse(line: &str) -> Line {
    serde_json::from_str(line).unwrap()
}

fn entry_line(lines: &[String], seq: u64) -> usize {
    lines
        .iter()
        .position(|l| matches!(parse(l), Line::Entry { seq: s, .. } if s == seq))
        .unwrap()
}

fn assert_invalid(result: Result<impl std::fmt::Debug, BundleError>, seqs: &[u64], what: &str) {
    match result {
        Err(BundleError::Invalid { seq, .. })
            if seqs.is_empty() || seq.is_some_and(|s| seqs.contains(&s)) => {}
        other => panic!("{what}: expected a failure at entry {seqs:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_untouched_export_verifies() {
    let app = busy_app().await;
    let (bundle, entries) = app.export_log().await;
    let report = verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
    assert_eq!(report.entries, entries.len() as u64);
    assert!(report.checkpoints > 5);
}

#[tokio::test]
async fn a_changed_byte_in_any_field_of_any_entry_is_caught() {
    let app = busy_app().await;
    let (bundle, entries) = app.export_log().await;
    let key = app.verifier_key();
    let original = lines(&bundle);
    let mut checked = 0;
    assert!(
        entries
            .iter()
            .any(|e| !e.subjects.is_empty() && e.client_ip.is_some() && e.project.is_some())
    );
    for e in &entries {
        let at = entry_line(&original, e.seq);
        let bytes = e.encode();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            let mut ls = original.clone();
            ls[at] = Line::Entry {
                seq: e.seq,
                bytes: STANDARD.encode(&changed),
                proof: None,
            }
            .to_json();
            // Caught at the entry itself, or at the next link or checkpoint that commits to it.
            assert_invalid(
                verify_text(&join(&ls), vec![key.clone()], None),
                &[e.seq, e.seq + 1],
                &format!("entry {} byte {i}", e.seq),
            );
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked} single-byte changes checked");
}

#[tokio::test]
async fn deleted_inserted_swapped_and_duplicated_entries_are_caught() {
    let app = busy_app().await;
    let (bundle, entries) = app.export_log().await;
    let key = vec![app.verifier_key()];
    let original = lines(&bundle);

    let mut deleted = original.clone();
    deleted.remove(entry_line(&original, 3));
    assert_invalid(
        verify_text(&join(&deleted), key.clone(), None),
        &[3],
        "deleted",
    );

    let mut swapped = original.clone();
    let (a, b) = (entry_line(&original, 3), entry_line(&original, 4));
    swapped.swap(a, b);
    assert_invalid(
        verify_text(&join(&swapped), key.clone(), None),
        &[3],
        "swapped",
    );

    let mut duplicated = original.clone();
    let at = entry_line(&original, 5);
    duplicated.insert(at + 1, original[at].clone());
    assert_invalid(
        verify_text(&join(&duplicated), key.clone(), None),
        &[6],
        "duplicated sequence number",
    );

    // An insider inserts an entry and re-chains everything after it, but cannot sign.
    let mut head = Head::default();
    let mut forged: Vec<Entry> = Vec::new();
    for e in &entries {
        if e.seq == 3 {
            let mut fake = draft_of(e);
            fake.details = r#"{"note":"nothing to see"}"#.into();
            forged.push(seal(&mut head, fake, [0; 16], e.time_ms, 99).entry);
        }
        forged.push(seal(&mut head, draft_of(e), e.salt, e.time_ms, e.project_seq).entry);
    }
    let mut inserted: Vec<String> = original
        .iter()
        .filter(|l| !matches!(parse(l), Line::Entry { .. } | Line::Checkpoint { .. }))
        .cloned()
        .collect();
    let checkpoints: Vec<String> = original
        .iter()
        .filter(|l| matches!(parse(l), Line::Checkpoint { .. }))
        .cloned()
        .collect();
    for e in &forged {
        inserted.push(
            Line::Entry {
                seq: e.seq,
                bytes: STANDARD.encode(e.encode()),
                proof: None,
            }
            .to_json(),
        );
    }
    inserted.extend(checkpoints);
    let result = verify_text(&join(&inserted), key.clone(), None);
    assert!(
        matches!(result, Err(BundleError::Invalid { .. })),
        "inserted entry: {result:?}"
    );
}

fn draft_of(e: &Entry) -> Draft {
    Draft {
        project: e.project.clone(),
        actor: e.actor.clone(),
        action: e.action,
        outcome: e.outcome,
        records: e.records,
        client_ip: e.client_ip.clone(),
        user_agent: e.user_agent.clone(),
        request_id: e.request_id.clone(),
        subjects: e.subjects.clone(),
        details: e.details.clone(),
    }
}

#[tokio::test]
async fn a_truncated_tail_is_caught_with_a_saved_checkpoint() {
    let app = busy_app().await;
    let saved = app
        .get_anonymous("/api/v1/audit/checkpoint")
        .await
        .text()
        .await
        .unwrap();
    let (bundle, _) = app.export_log().await;
    let key = vec![app.verifier_key()];
    verify_text(&bundle, key.clone(), Some(&saved)).unwrap();

    // Cut after the fifth checkpoint and rewrite the header to match.
    let original = lines(&bundle);
    let cut = original
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(parse(l), Line::Checkpoint { .. }))
        .nth(4)
        .unwrap()
        .0;
    let size = match parse(&original[cut]) {
        Line::Checkpoint { note } => {
            Checkpoint::parse(&Note::parse(&note).unwrap().text)
                .unwrap()
                .size
        }
        _ => unreachable!(),
    };
    let mut truncated = original[..=cut].to_vec();
    truncated[0] = original[0].replace(
        &format!("\"to\":{}", lines_to(&original[0])),
        &format!("\"to\":{size}"),
    );
    // Without the saved checkpoint a truncation is undetectable (docs/threat-model.md says so)...
    verify_text(&join(&truncated), key.clone(), None).unwrap();
    // ...with it, it is caught.
    assert_invalid(
        verify_text(&join(&truncated), key.clone(), Some(&saved)),
        &[],
        "truncated tail",
    );
    // And simply cutting lines off the end is caught even without one.
    let cut_short = join(&original[..original.len() - 2]);
    assert_invalid(verify_text(&cut_short, key, None), &[], "cut short");
}

fn lines_to(header: &str) -> u64 {
    match parse(header) {
        Line::Header { to, .. } => to,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn foreign_signatures_and_replaced_keys_are_caught() {
    let app = busy_app().await;
    let (bundle, _) = app.export_log().await;
    let key = vec![app.verifier_key()];
    let original = lines(&bundle);
    let attacker = SignerKey::from_seed(&app.origin, [66; 32]).unwrap();
    let resign = |line: &str| match parse(line) {
        Line::Checkpoint { note } => {
            let cp = Checkpoint::parse(&Note::parse(&note).unwrap().text).unwrap();
            Line::Checkpoint {
                note: cp.sign(&[&attacker]).unwrap(),
            }
            .to_json()
        }
        _ => line.to_owned(),
    };

    let mut one = original.clone();
    let at = one
        .iter()
        .rposition(|l| matches!(parse(l), Line::Checkpoint { .. }))
        .unwrap();
    one[at] = resign(&one[at]);
    assert_invalid(
        verify_text(&join(&one), key.clone(), None),
        &[],
        "checkpoint signed by another key",
    );

    let mut replaced: Vec<String> = original.iter().map(|l| resign(l)).collect();
    let key_line = replaced
        .iter()
        .position(|l| matches!(parse(l), Line::Key { .. }))
        .unwrap();
    replaced[key_line] = Line::Key {
        vkey: attacker.verifier().to_string(),
    }
    .to_json();
    assert_invalid(
        verify_text(&join(&replaced), key.clone(), None),
        &[],
        "replaced public key",
    );
    // The attacker's own key, of course, accepts the attacker's bundle: which key to trust is
    // the auditor's, never the bundle's.
    verify_text(&join(&replaced), vec![attacker.verifier()], None).unwrap();
    let wrong: VerifierKey = SignerKey::from_seed("someone.else/log", [1; 32])
        .unwrap()
        .verifier();
    assert!(verify_text(&bundle, vec![wrong], None).is_err());
}

#[tokio::test]
async fn project_bundles_catch_forged_proofs_and_missing_entries() {
    let app = busy_app().await;
    let bundle = app.export_project("shop").await;
    let key = vec![app.verifier_key()];
    let report = verify_text(&bundle, key.clone(), None).unwrap();
    assert_eq!(
        report.entries, 9,
        "4 ingestion batches, 4 reads of shop and the export itself"
    );
    assert!(!bundle.contains("\"bank\""), "nothing of the other project");

    let original = lines(&bundle);
    let at = original
        .iter()
        .position(|l| matches!(parse(l), Line::Entry { .. }))
        .unwrap()
        + 2;
    let mut forged = original.clone();
    if let Line::Entry {
        seq,
        bytes,
        proof: Some(mut proof),
    } = parse(&forged[at])
    {
        let mut h = STANDARD.decode(&proof[0]).unwrap();
        h[7] ^= 0x80;
        proof[0] = STANDARD.encode(h);
        forged[at] = Line::Entry {
            seq,
            bytes,
            proof: Some(proof),
        }
        .to_json();
        assert_invalid(
            verify_text(&join(&forged), key.clone(), None),
            &[seq],
            "forged inclusion proof",
        );
    } else {
        panic!("a project entry has a proof");
    }

    let mut missing = original.clone();
    let removed_seq = match parse(&missing.remove(at)) {
        Line::Entry { seq, .. } => seq,
        _ => unreachable!(),
    };
    let result = verify_text(&join(&missing), key.clone(), None);
    assert!(
        matches!(result, Err(BundleError::Invalid { seq: Some(s), .. }) if s > removed_seq),
        "{result:?}"
    );

    // Dropping the project's newest entries leaves a bundle whose every remaining entry and
    // proof is genuine: only the commitment of the checkpoint's last leaf exposes it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("project.bundle");
    let vkey = key[0].to_string();
    std::fs::write(&file, join(&original)).unwrap();
    crate::processes::agrees(&file, &vkey, 0, "the project bundle");
    for drop in 1..=3 {
        let cut = &original[..original.len() - drop];
        std::fs::write(&file, join(cut)).unwrap();
        crate::processes::agrees(&file, &vkey, 1, "a project bundle without its tail");
        let result = verify_text(&join(cut), key.clone(), None);
        assert!(
            matches!(&result, Err(BundleError::Invalid { reason, .. }) if reason.contains("later entries of the project were removed")),
            "dropping the last {drop}: {result:?}"
        );
    }
}

#[tokio::test]
async fn trailing_unknown_padded_or_repeated_lines_are_refused() {
    let app = busy_app().await;
    let (bundle, _) = app.export_log().await;
    let key = vec![app.verifier_key()];
    let original = lines(&bundle);
    let mut trailing = original.clone();
    trailing.push(original[original.len() - 1].clone());
    assert_invalid(
        verify_text(&join(&trailing), key.clone(), None),
        &[],
        "trailing line",
    );

    let mut unknown = original.clone();
    unknown[2] = unknown[2].replacen('{', r#"{"extra":1,"#, 1);
    assert_invalid(
        verify_text(&join(&unknown), key.clone(), None),
        &[],
        "unknown field",
    );

    let mut padded = original.clone();
    padded[2] = padded[2].replacen(':', ": ", 1);
    assert_invalid(
        verify_text(&join(&padded), key.clone(), None),
        &[],
        "non-canonical spacing",
    );

    let mut repeated_key = original.clone();
    repeated_key.insert(1, original[1].clone());
    assert_invalid(
        verify_text(&join(&repeated_key), key.clone(), None),
        &[],
        "repeated key line",
    );

    assert!(matches!(
        verify_text("not json\n", key.clone(), None),
        Err(BundleError::Unusable(_))
    ));
    assert!(matches!(
        verify_text("", key, None),
        Err(BundleError::Unusable(_))
    ));
}
