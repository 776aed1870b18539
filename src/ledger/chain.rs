//! Sealing: turning what happened into the next entry of the chain and leaf of the tree.

use super::entry::{
    Action, Actor, Entry, MAX_FIELD, Outcome, bound_details, bound_text, chain_link,
};
use super::merkle::{CompactRange, Hash, Node, leaf_hash};

/// What happened, before the log gives it a place: everything of an entry but its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The project concerned, if any.
    pub project: Option<String>,
    /// Who acted.
    pub actor: Actor,
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// Records read, written or deleted.
    pub records: u64,
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// Pseudonyms of the end users concerned.
    pub subjects: Vec<Hash>,
    /// A JSON object with the particulars.
    pub details: String,
}

/// The end of the log: what the next entry chains onto.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// The chain link of the last entry (zeros for an empty log).
    pub last_link: Hash,
    /// The Merkle peaks of all entries so far.
    pub range: CompactRange,
    /// The last entry's time; the next one is never earlier.
    pub last_time: i64,
}

impl Head {
    /// Entries in the log.
    pub fn size(&self) -> u64 {
        self.range.size()
    }
}

/// An entry with its bytes and hashes, ready to store.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The entry.
    pub entry: Entry,
    /// Its canonical bytes.
    pub bytes: Vec<u8>,
    /// Its RFC 6962 leaf hash.
    pub leaf: Hash,
    /// Its chain link.
    pub link: Hash,
    /// The perfect subtrees its leaf completes, for stores that keep them.
    pub nodes: Vec<Node>,
}

/// Places `draft` at the end of the log described by `head`, and advances `head`.
///
/// The time is `now_ms`, or the previous entry's if the clock went back, so that times never
/// decrease along the chain. Every text field is bounded here ([`bound_text`],
/// [`bound_details`]), the one way into the log, so every entry sealed is one the verifier
/// accepts, whatever a client sent.
pub fn seal(
    head: &mut Head,
    draft: Draft,
    salt: [u8; 16],
    now_ms: i64,
    project_seq: u64,
) -> Sealed {
    let entry = Entry {
        seq: head.size(),
        time_ms: now_ms.max(head.last_time),
        prev: head.last_link,
        salt,
        project_seq: if draft.project.is_some() {
            project_seq
        } else {
            0
        },
        project: draft.project.map(|p| bound_text(p, MAX_FIELD)),
        actor: Actor {
            id: bound_text(draft.actor.id, MAX_FIELD),
            ..draft.actor
        },
        action: draft.action,
        outcome: draft.outcome,
        records: draft.records,
        client_ip: draft.client_ip.map(|t| bound_text(t, MAX_FIELD)),
        user_agent: draft.user_agent.map(|t| bound_text(t, MAX_FIELD)),
        request_id: draft.request_id.map(|t| bound_text(t, MAX_FIELD)),
        subjects: draft.subjects,
        details: bound_details(draft.details),
    };
    let bytes = entry.encode();
    let leaf = leaf_hash(&bytes);
    let link = chain_link(&bytes);
    let mut nodes = Vec::new();
    head.range.push_with(leaf, |n| nodes.push(n));
    head.last_link = link;
    head.last_time = entry.time_ms;
    Sealed {
        entry,
        bytes,
        leaf,
        link,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{ActorKind, AuthMethod};
    use sha2::Digest;

    pub(crate) fn draft(project: Option<&str>) -> Draft {
        Draft {
            project: project.map(str::to_owned),
            actor: Actor {
                kind: ActorKind::System,
                id: String::new(),
                method: AuthMethod::Internal,
                second_factor: false,
            },
            action: Action::LogInit,
            outcome: Outcome::Allowed,
            records: 0,
            client_ip: None,
            user_agent: None,
            request_id: None,
            subjects: vec![],
            details: "{}".into(),
        }
    }

    /// Text of `len` bytes mixing one-, two-, three- and four-byte characters.
    fn text(len: usize, seed: u32) -> String {
        let alphabet = ['a', 'é', '€', '😀', '"', '\\', '\n'];
        let mut out = String::new();
        let mut i = seed as usize;
        while out.len() < len {
            out.push(alphabet[i % alphabet.len()]);
            i = i.wrapping_mul(31).wrapping_add(7);
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever a draft holds, the sealed entry decodes and a bundle of it verifies.
        #[test]
        fn every_sealed_entry_round_trips_through_the_verifier(
            lens in proptest::collection::vec(
                proptest::prop_oneof![0usize..64, 4080usize..4110, 5000usize..70_000],
                6,
            ),
            details_len in proptest::prop_oneof![
                0usize..64,
                (crate::ledger::entry::MAX_DETAILS - 8)..(crate::ledger::entry::MAX_DETAILS + 8),
                (2usize << 20)..(2usize << 20) + 4,
            ],
            seed in 0u32..1000,
        ) {
            use crate::ledger::bundle::{FORMAT, Line, Scope, verify_text};
            use crate::ledger::checkpoint::Checkpoint;
            use crate::ledger::note::SignerKey;
            use base64::Engine;
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

            let mut d = draft(Some(&text(lens[0], seed)));
            d.actor.id = text(lens[1], seed + 1);
            d.client_ip = Some(text(lens[2], seed + 2));
            d.user_agent = Some(text(lens[3], seed + 3));
            d.request_id = Some(text(lens[4], seed + 4));
            d.details = serde_json::json!({"reason": text(details_len, seed + 5)}).to_string();
            let mut head = Head::default();
            let sealed = seal(&mut head, d, [seed as u8; 16], 1_700_000_000_000, 0);
            let decoded = Entry::decode(&sealed.bytes).expect("a sealed entry decodes");
            proptest::prop_assert_eq!(&decoded, &sealed.entry);
            let details: serde_json::Value = serde_json::from_str(&decoded.details).unwrap();
            proptest::prop_assert!(details.is_object());

            let key = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
            let note = Checkpoint { origin: "example.com/log".into(), size: 1, root: head.range.root() }
                .sign(&[&key])
                .unwrap();
            let bundle = [
                Line::Header { format: FORMAT.into(), origin: "example.com/log".into(), scope: Scope::Log, project: None, subject: None, from: 0, to: 1 },
                Line::Key { vkey: key.verifier().to_string() },
                Line::Entry { seq: 0, bytes: b64(&sealed.bytes), proof: None },
                Line::Checkpoint { note },
            ]
            .iter()
            .map(|l| format!("{}\n", l.to_json()))
            .collect::<String>();
            proptest::prop_assert!(verify_text(&bundle, vec![key.verifier()], None).is_ok());
        }
    }

    #[test]
    fn long_text_is_cut_with_its_length_and_hash() {
        let long = "€".repeat(2000); // 6000 bytes
        let cut = bound_text(long.clone(), MAX_FIELD);
        assert!(cut.len() <= MAX_FIELD);
        assert!(cut.starts_with("€€€"));
        assert!(cut.ends_with(&format!(
            "[cut: 6000 bytes, sha256 {}]",
            hex::encode(sha2::Sha256::digest(long.as_bytes()))
        )));
        assert_eq!(bound_text("short".into(), MAX_FIELD), "short");
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(2 << 20));
        let summary: serde_json::Value = serde_json::from_str(&bound_details(huge)).unwrap();
        assert_eq!(summary["cut"]["bytes"], (2 << 20) + 8);
        assert_eq!(
            summary["cut"]["prefix"].as_str().unwrap().len(),
            crate::ledger::entry::DETAILS_PREFIX
        );
    }

    #[test]
    fn sealing_chains_entries_and_never_goes_back_in_time() {
        let mut head = Head::default();
        let a = seal(&mut head, draft(Some("shop")), [1; 16], 1000, 0);
        let b = seal(&mut head, draft(None), [2; 16], 900, 7);
        assert_eq!((a.entry.seq, b.entry.seq), (0, 1));
        assert_eq!(a.entry.prev, [0; 32]);
        assert_eq!(b.entry.prev, a.link);
        assert_eq!(
            b.entry.time_ms, 1000,
            "the clock went back; the entry keeps the last time"
        );
        assert_eq!(b.entry.project_seq, 0, "no project, no project sequence");
        assert_eq!(head.size(), 2);
        assert_eq!(head.last_link, b.link);
    }
}
