//! docs/audit-log-format.md's worked example, recomputed: every value the document shows must
//! come out of the code exactly, and its bundle must verify.
//! `AUDITGATE_PRINT_EXAMPLE=1 cargo test --test format_doc -- --nocapture` prints the values.

use auditgate::ledger::bundle::{FORMAT, Line, Scope, verify_text};
use auditgate::ledger::chain::{Draft, Head, seal};
use auditgate::ledger::checkpoint::Checkpoint;
use auditgate::ledger::entry::{Action, Actor, ActorKind, AuthMethod, Outcome};
use auditgate::ledger::merkle::MerkleTree;
use auditgate::ledger::note::SignerKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const ORIGIN: &str = "example.com/audit-log";

fn drafts() -> Vec<(Draft, [u8; 16], i64, u64)> {
    let system = Actor {
        kind: ActorKind::System,
        id: String::new(),
        method: AuthMethod::Internal,
        second_factor: false,
    };
    let service = Actor {
        kind: ActorKind::ServiceAccount,
        id: "shop-service".into(),
        method: AuthMethod::ApiToken,
        second_factor: false,
    };
    let base = |actor: Actor, action, outcome, project: Option<&str>, details: &str| Draft {
        project: project.map(str::to_owned),
        actor,
        action,
        outcome,
        records: 0,
        client_ip: None,
        user_agent: None,
        request_id: None,
        subjects: vec![],
        details: details.into(),
    };
    let init = base(
        system,
        Action::LogInit,
        Outcome::Allowed,
        None,
        r#"{"origin":"example.com/audit-log"}"#,
    );
    let mut read = base(
        service.clone(),
        Action::EventsQuery,
        Outcome::Allowed,
        Some("shop"),
        r#"{"event":"Buy"}"#,
    );
    read.records = 2;
    read.client_ip = Some("192.0.2.7".into());
    read.user_agent = Some("curl/8.5.0".into());
    read.request_id = Some("req-1".into());
    read.subjects = vec![[0xaa; 32]];
    let denied = base(
        service,
        Action::EventsQuery,
        Outcome::Denied,
        Some("bank"),
        r#"{"missing_permission":"events:read"}"#,
    );
    vec![
        (init, [0x11; 16], 1_700_000_000_000, 0),
        (read, [0x22; 16], 1_700_000_000_123, 0),
        (denied, [0x33; 16], 1_700_000_000_456, 0),
    ]
}

#[test]
fn the_worked_example_in_the_format_document_is_what_the_code_computes() {
    let key = SignerKey::from_seed(ORIGIN, core::array::from_fn(|i| i as u8)).unwrap();
    let mut head = Head::default();
    let sealed: Vec<_> = drafts()
        .into_iter()
        .map(|(d, salt, t, ps)| seal(&mut head, d, salt, t, ps))
        .collect();
    let tree = MerkleTree::from_leaves(sealed.iter().map(|s| s.leaf).collect());
    let root = tree.root(3).unwrap();
    assert_eq!(root, head.range.root());
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: 3,
        root,
    };
    let note = checkpoint.sign(&[&key]).unwrap();
    let proof = tree.inclusion_proof(1, 3).unwrap();
    let mut lines = vec![
        Line::Header {
            format: FORMAT.into(),
            origin: ORIGIN.into(),
            scope: Scope::Log,
            project: None,
            subject: None,
            from: 0,
            to: 3,
        },
        Line::Key {
            vkey: key.verifier().to_string(),
        },
    ];
    for s in &sealed {
        lines.push(Line::Entry {
            seq: s.entry.seq,
            bytes: STANDARD.encode(&s.bytes),
            proof: None,
        });
    }
    lines.push(Line::Checkpoint { note: note.clone() });
    let bundle: String = lines.iter().map(|l| format!("{}\n", l.to_json())).collect();
    verify_text(&bundle, vec![key.verifier()], None).unwrap();

    let mut values = vec![
        ("verifier key", key.verifier().to_string()),
        ("entry 1 bytes", hex::encode(&sealed[1].bytes)),
        ("root", hex::encode(root)),
        ("root b64", STANDARD.encode(root)),
        (
            "proof 1",
            proof.iter().map(hex::encode).collect::<Vec<_>>().join("\n"),
        ),
    ];
    for s in &sealed {
        values.push(("leaf", hex::encode(s.leaf)));
        values.push(("link", hex::encode(s.link)));
    }
    for line in note.lines() {
        values.push(("note line", line.to_owned()));
    }
    for line in bundle.lines() {
        values.push(("bundle line", line.to_owned()));
    }
    if std::env::var("AUDITGATE_PRINT_EXAMPLE").is_ok() {
        for (what, v) in &values {
            println!("== {what}\n{v}");
        }
    }
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/audit-log-format.md"
    ))
    .unwrap();
    // The document wraps long hex at 64 characters; compare without line breaks in hex blocks.
    let flat: String = doc
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    let unwrapped = flat.replace('\n', "");
    for (what, v) in &values {
        let found = flat.contains(v.as_str()) || unwrapped.contains(&v.replace('\n', ""));
        assert!(found, "docs/audit-log-format.md lacks the {what}: {v}");
    }
}
