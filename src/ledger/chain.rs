//! Sealing: turning what happened into the next entry of the chain and leaf of the tree.

use super::entry::{Action, Actor, Entry, Outcome, chain_link};
use super::merkle::{CompactRange, Hash, leaf_hash};

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
}

/// Places `draft` at the end of the log described by `head`, and advances `head`.
///
/// The time is `now_ms`, or the previous entry's if the clock went back, so that times never
/// decrease along the chain.
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
        project: draft.project,
        actor: draft.actor,
        action: draft.action,
        outcome: draft.outcome,
        records: draft.records,
        client_ip: draft.client_ip,
        user_agent: draft.user_agent,
        request_id: draft.request_id,
        subjects: draft.subjects,
        details: draft.details,
    };
    let bytes = entry.encode();
    let leaf = leaf_hash(&bytes);
    let link = chain_link(&bytes);
    head.range.push(leaf);
    head.last_link = link;
    head.last_time = entry.time_ms;
    Sealed {
        entry,
        bytes,
        leaf,
        link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{ActorKind, AuthMethod};

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
