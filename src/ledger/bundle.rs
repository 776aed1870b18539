//! The export bundle: one JSON object per line, and its streaming, offline verification.
//!
//! Every bundle starts with `header`, `key`+ and `handover`* (one per signing-key rotation of
//! the log, so an auditor holding any one of the log's keys can follow the others). A
//! whole-log bundle then has [`prefix` when it starts past entry 0] and the entries in sequence
//! order, with a `checkpoint` line after the entry that completes each signed tree size; it
//! ends with a checkpoint. A project bundle has one `checkpoint`, then that project's entries,
//! each with an inclusion proof to it; the last of them is the checkpoint's last leaf, which
//! proves that no later entry of the project was left out.
//! `docs/audit-log-format.md` specifies every line and check.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Checkpoint};
use super::entry::{Action, EntryView, Outcome, chain_link};
use super::merkle::{CompactRange, Hash, leaf_hash, verify_inclusion};
use super::note::VerifierKey;

/// The `format` of the header line.
pub const FORMAT: &str = "auditgate-bundle/v1";

/// What a bundle covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every entry in `[from, to)`.
    Log,
    /// One project's entries below `to`, each with an inclusion proof.
    Project,
    /// The entries below `to` that name one person (one pseudonym of one project), each with
    /// an inclusion proof: a subject report.
    Subject,
}

/// One line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Line {
    /// The first line.
    Header {
        /// Always [`FORMAT`].
        format: String,
        /// The log's origin.
        origin: String,
        /// What the bundle covers.
        scope: Scope,
        /// The project, for a project or subject bundle.
        project: Option<String>,
        /// Subject bundles only: the hex pseudonym every entry names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// The first sequence number covered.
        from: u64,
        /// One past the last sequence number covered: the size of the final checkpoint.
        to: u64,
    },
    /// A public key that signed checkpoints, in verifier-key text form.
    Key {
        /// `name+keyid+base64`.
        vkey: String,
    },
    /// A signing-key rotation: the `keys.rotate` entry naming the old and the new key, and the
    /// first checkpoint covering it, signed by both, with the entry's inclusion proof in it.
    Handover {
        /// The rotation entry's sequence number.
        seq: u64,
        /// Its base64 canonical bytes.
        bytes: String,
        /// Its inclusion proof in the hand-over checkpoint.
        proof: Vec<String>,
        /// The hand-over checkpoint, signed by the old and the new key.
        note: String,
    },
    /// The tree before `from`: its Merkle peaks, last chain link and last time.
    Prefix {
        /// Equal to the header's `from`.
        size: u64,
        /// Base64 peaks, largest subtree first.
        peaks: Vec<String>,
        /// Base64 chain link of entry `size - 1`.
        last_link: String,
        /// Time of entry `size - 1`.
        last_time: i64,
    },
    /// An entry's canonical bytes.
    Entry {
        /// Its sequence number.
        seq: u64,
        /// Base64 canonical bytes.
        bytes: String,
        /// Project bundles only: the inclusion proof to the checkpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<Vec<String>>,
    },
    /// A signed checkpoint note.
    Checkpoint {
        /// The whole signed note.
        note: String,
    },
}

impl Line {
    /// The line as written in a bundle, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("lines serialize")
    }
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The input cannot be checked at all (exit status 2).
    #[error("unusable input: {0}")]
    Unusable(String),
    /// Something does not hold (exit status 1).
    #[error("line {line}{}: {reason}", seq.map(|s| format!(", entry {s}")).unwrap_or_default())]
    Invalid {
        /// The 1-based line number.
        line: usize,
        /// The first bad sequence number, when one is concerned.
        seq: Option<u64>,
        /// What does not hold.
        reason: String,
    },
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The log's origin.
    pub origin: String,
    /// What the bundle covers.
    pub scope: Scope,
    /// The project, for a project or subject bundle.
    pub project: Option<String>,
    /// The hex pseudonym, for a subject bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// First sequence number covered.
    pub from: u64,
    /// One past the last sequence number covered.
    pub to: u64,
    /// Entries checked.
    pub entries: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Base64 root hash of the final checkpoint.
    pub root: String,
    /// The size of the saved checkpoint that was shown consistent, if one was given.
    pub saved_checkpoint: Option<u64>,
}

/// A hash in lowercase hex (the only spelling a canonical line has).
fn hex_hash(s: &str) -> Option<Hash> {
    let h: Hash = hex::decode(s).ok()?.try_into().ok()?;
    (hex::encode(h) == s).then_some(h)
}

fn b64_hash(s: &str) -> Option<Hash> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

enum Stage {
    Header,
    Keys,
    Body,
    Done,
}

/// A key the verifier accepts, and the checkpoint sizes it may sign: from the hand-over that
/// introduced it (0 for the log's first key) to the hand-over that retired it, both included.
#[derive(Debug, Clone)]
struct Window {
    key: VerifierKey,
    from: u64,
    to: u64,
}

/// A verified `handover` line.
#[derive(Debug, Clone)]
struct Handover {
    seq: u64,
    leaf: Hash,
    old: VerifierKey,
    new: VerifierKey,
    size: u64,
}

/// Checks a bundle line by line against the auditor's trusted keys (and a checkpoint they
/// saved earlier), consuming exactly what it verifies.
pub struct Verifier {
    trusted: Vec<VerifierKey>,
    /// The keys accepted for checkpoints: the trusted ones and those joined to them by
    /// hand-overs, each with its window; set once the key and hand-over lines are read.
    windows: Vec<Window>,
    saved_note: Option<String>,
    saved: Option<Checkpoint>,
    saved_checked: bool,
    stage: Stage,
    line: usize,
    header: Option<(String, Scope, Option<String>, u64, u64)>,
    /// A subject bundle's pseudonym.
    subject: Option<Hash>,
    keys: Vec<VerifierKey>,
    handovers: Vec<Handover>,
    range: CompactRange,
    next: u64,
    last_link: Hash,
    last_time: i64,
    last_seq: Option<u64>,
    project_seqs: HashMap<String, u64>,
    checkpoint: Option<Checkpoint>,
    checkpoints: u64,
    /// Reused for each entry's decoded bytes.
    buf: Vec<u8>,
    entries: u64,
    ended_on_checkpoint: bool,
}

impl Verifier {
    /// A verifier trusting `trusted`; `saved`, if given, is a signed checkpoint kept earlier
    /// (checked once the bundle's hand-overs tell which keys signed when).
    pub fn new(trusted: Vec<VerifierKey>, saved: Option<&str>) -> Result<Self, BundleError> {
        if trusted.is_empty() {
            return Err(BundleError::Unusable("no trusted key".into()));
        }
        if let Some(note) = saved {
            crate::ledger::note::Note::parse(note)
                .and_then(|n| Checkpoint::parse(&n.text).map(|_| ()))
                .map_err(|e| BundleError::Unusable(format!("the saved checkpoint: {e}")))?;
        }
        Ok(Self {
            trusted,
            windows: Vec::new(),
            saved_note: saved.map(str::to_owned),
            saved: None,
            saved_checked: false,
            stage: Stage::Header,
            line: 0,
            header: None,
            subject: None,
            keys: Vec::new(),
            handovers: Vec::new(),
            range: CompactRange::new(),
            next: 0,
            last_link: [0; 32],
            last_time: i64::MIN,
            last_seq: None,
            project_seqs: HashMap::new(),
            checkpoint: None,
            checkpoints: 0,
            buf: Vec::new(),
            entries: 0,
            ended_on_checkpoint: false,
        })
    }

    /// Entries checked so far.
    pub fn entries_checked(&self) -> u64 {
        self.entries
    }

    fn invalid(&self, seq: Option<u64>, reason: impl Into<String>) -> BundleError {
        BundleError::Invalid {
            line: self.line,
            seq,
            reason: reason.into(),
        }
    }

    /// Checks the next line (without its newline).
    pub fn feed(&mut self, text: &str) -> Result<(), BundleError> {
        self.line += 1;
        if matches!(self.stage, Stage::Done) {
            return Err(self.invalid(None, "a line after the bundle's last checkpoint"));
        }
        if matches!(self.stage, Stage::Body)
            && let Some((seq, b64)) = fast_entry(text)
        {
            self.ended_on_checkpoint = false;
            return self.entry_line(seq, b64, None);
        }
        let line = self.parse_line(text)?;
        self.ended_on_checkpoint = false;
        self.dispatch(line)
    }

    /// Parses a line that is not a plain entry, requiring its canonical form.
    fn parse_line(&self, text: &str) -> Result<Line, BundleError> {
        let line: Line = match serde_json::from_str(text) {
            Ok(l) => l,
            Err(e) if self.line == 1 => {
                return Err(BundleError::Unusable(format!(
                    "line 1 is not a bundle header: {e}"
                )));
            }
            Err(e) => return Err(self.invalid(None, format!("not a bundle line: {e}"))),
        };
        // Exactly the bytes that are verified: no other spacing, key order or escapes.
        if line.to_json() != text {
            return Err(self.invalid(
                None,
                "the line is not in canonical form (altered or padded)",
            ));
        }
        Ok(line)
    }

    /// The next line's check, after it was parsed.
    fn dispatch(&mut self, line: Line) -> Result<(), BundleError> {
        match (&self.stage, line) {
            (
                Stage::Header,
                Line::Header {
                    format,
                    origin,
                    scope,
                    project,
                    subject,
                    from,
                    to,
                },
            ) => {
                if format != FORMAT {
                    return Err(BundleError::Unusable(format!(
                        "unknown bundle format {format:?}"
                    )));
                }
                let subject = match subject.as_deref().map(hex_hash) {
                    Some(Some(h)) => Some(h),
                    Some(None) => {
                        return Err(self.invalid(None, "the header's subject is not 64 hex digits"));
                    }
                    None => None,
                };
                let proved = scope != Scope::Log;
                if proved != project.is_some()
                    || (scope == Scope::Subject) != subject.is_some()
                    || from > to
                    || (proved && from != 0)
                {
                    return Err(self.invalid(
                        None,
                        "the header's scope, project and range do not fit together",
                    ));
                }
                self.next = from;
                self.subject = subject;
                self.header = Some((origin, scope, project, from, to));
                self.stage = Stage::Keys;
                Ok(())
            }
            (Stage::Header, _) => Err(BundleError::Unusable(
                "the first line must be the header".into(),
            )),
            (Stage::Keys, Line::Key { vkey }) => {
                if !self.handovers.is_empty() {
                    return Err(self.invalid(None, "key lines come before hand-over lines"));
                }
                let key = VerifierKey::parse(&vkey)
                    .map_err(|e| self.invalid(None, format!("key: {e}")))?;
                if self.keys.contains(&key) {
                    return Err(self.invalid(None, "a key appears twice"));
                }
                self.keys.push(key);
                Ok(())
            }
            (
                Stage::Keys,
                Line::Handover {
                    seq,
                    bytes,
                    proof,
                    note,
                },
            ) => self.handover(seq, &bytes, &proof, &note),
            (Stage::Keys, line) => {
                self.resolve_keys()?;
                self.stage = Stage::Body;
                self.body(line)
            }
            (Stage::Body, line) => self.body(line),
            (Stage::Done, _) => unreachable!("checked above"),
        }
    }

    fn body(&mut self, line: Line) -> Result<(), BundleError> {
        let (origin, scope, _, from, to) = self.header.clone().expect("after the header");
        match (scope, line) {
            (
                Scope::Log,
                Line::Prefix {
                    size,
                    peaks,
                    last_link,
                    last_time,
                },
            ) => {
                if size != from || from == 0 || self.entries > 0 || self.range.size() != 0 {
                    return Err(self.invalid(
                        None,
                        "a prefix must come first and cover exactly the entries before `from`",
                    ));
                }
                let peaks = peaks
                    .iter()
                    .map(|p| b64_hash(p))
                    .collect::<Option<Vec<_>>>();
                let peaks = peaks
                    .ok_or_else(|| self.invalid(None, "a prefix peak is not a base64 hash"))?;
                self.range = CompactRange::from_parts(size, peaks)
                    .map_err(|e| self.invalid(None, e.to_string()))?;
                self.last_link =
                    b64_hash(&last_link).ok_or_else(|| self.invalid(None, "bad prefix link"))?;
                self.last_time = last_time;
                self.check_saved_here()
            }
            (_, Line::Entry { seq, bytes, proof }) => self.entry_line(seq, &bytes, proof),
            (Scope::Log, Line::Checkpoint { note }) => {
                let cp = self.checkpoint(&note, &origin)?;
                let repeated = self.checkpoint.as_ref().is_some_and(|c| c.size >= cp.size);
                let have = self.range.size();
                if cp.size > have && !repeated && have >= from {
                    return Err(self.invalid(
                        Some(have),
                        format!(
                            "a checkpoint of {} entries follows only {have}: entries are missing",
                            cp.size
                        ),
                    ));
                }
                if cp.size != have || repeated || have < from {
                    return Err(self.invalid(
                        Some(cp.size.min(have)),
                        format!("a checkpoint of {} entries follows {have}: entries were added or moved", cp.size),
                    ));
                }
                if cp.root != self.range.root() {
                    return Err(self.invalid(
                        cp.size.checked_sub(1),
                        "the checkpoint's root does not match the entries (history rewritten)",
                    ));
                }
                self.checkpoints += 1;
                self.ended_on_checkpoint = true;
                self.checkpoint = Some(cp);
                if self.range.size() == to {
                    self.stage = Stage::Done;
                }
                Ok(())
            }
            (Scope::Project | Scope::Subject, Line::Checkpoint { note }) => {
                if self.checkpoint.is_some() {
                    return Err(self.invalid(
                        None,
                        "a project or subject bundle has exactly one checkpoint",
                    ));
                }
                let cp = self.checkpoint(&note, &origin)?;
                if cp.size != to {
                    return Err(
                        self.invalid(None, "the checkpoint's size is not the header's `to`")
                    );
                }
                self.checkpoints = 1;
                self.checkpoint = Some(cp);
                Ok(())
            }
            (_, other) => Err(self.invalid(
                None,
                format!("a {} line does not belong here", kind(&other)),
            )),
        }
    }

    /// Checks one entry line (the hot path: no copies beyond decoding the base64).
    fn entry_line(
        &mut self,
        seq: u64,
        b64: &str,
        proof: Option<Vec<String>>,
    ) -> Result<(), BundleError> {
        let (scope, from, to) = match &self.header {
            Some((_, scope, _, from, to)) => (*scope, *from, *to),
            None => return Err(BundleError::Unusable("an entry before the header".into())),
        };
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.clear();
        STANDARD
            .decode_vec(b64, &mut bytes)
            .map_err(|_| self.invalid(Some(seq), "entry bytes are not base64"))?;
        let entry = EntryView::parse(&bytes).map_err(|e| self.invalid(Some(seq), e.to_string()))?;
        if entry.seq != seq {
            return Err(self.invalid(
                Some(seq),
                format!("the entry's own sequence number is {}", entry.seq),
            ));
        }
        match scope {
            Scope::Log => {
                // The tree holds every entry before the next one: from the prefix when the
                // bundle starts past entry 0, then from the entries themselves.
                if self.range.size() != self.next {
                    return Err(self.invalid(
                        Some(seq),
                        "a bundle starting past entry 0 needs a prefix line first",
                    ));
                }
                if proof.is_some() {
                    return Err(self.invalid(Some(seq), "whole-log entries carry no proof"));
                }
                if seq != self.next {
                    return Err(self.invalid(
                        Some(self.next),
                        format!(
                            "expected entry {} but found {seq} (removed, inserted or reordered)",
                            self.next
                        ),
                    ));
                }
                if seq >= to {
                    return Err(self.invalid(Some(seq), "entry beyond the header's range"));
                }
                if entry.prev != self.last_link {
                    return Err(self.invalid(
                        Some(seq),
                        "its previous-entry hash does not match the chain",
                    ));
                }
                if entry.time_ms < self.last_time {
                    return Err(
                        self.invalid(Some(seq), "its time is earlier than the entry before it")
                    );
                }
                self.project_order(&entry, from == 0)?;
                let leaf = leaf_hash(&bytes);
                self.range.push(leaf);
                self.next += 1;
                self.check_rotation(&entry, &leaf)?;
            }
            Scope::Project | Scope::Subject => {
                let cp = self
                    .checkpoint
                    .clone()
                    .ok_or_else(|| self.invalid(Some(seq), "entries before the checkpoint"))?;
                if self.last_seq.is_some_and(|last| seq <= last) {
                    return Err(self.invalid(Some(seq), "entries out of order or repeated"));
                }
                if entry.project != self.header.as_ref().and_then(|h| h.2.as_deref()) {
                    return Err(self.invalid(Some(seq), "an entry of another project"));
                }
                if self.last_seq.is_some_and(|last| last + 1 == seq) && entry.prev != self.last_link
                {
                    return Err(self.invalid(
                        Some(seq),
                        "its previous-entry hash does not match the entry before it",
                    ));
                }
                if entry.time_ms < self.last_time {
                    return Err(
                        self.invalid(Some(seq), "its time is earlier than the entry before it")
                    );
                }
                match self.subject {
                    // A person's entries are not consecutive in their project: only that each
                    // names them is checked here.
                    Some(subject) => {
                        if !entry.subjects.chunks_exact(32).any(|s| s == subject) {
                            return Err(
                                self.invalid(Some(seq), "an entry that does not name the subject")
                            );
                        }
                    }
                    None => self.project_order(&entry, true)?,
                }
                let proof = proof.ok_or_else(|| {
                    self.invalid(Some(seq), "a project entry needs an inclusion proof")
                })?;
                let proof = proof
                    .iter()
                    .map(|p| b64_hash(p))
                    .collect::<Option<Vec<_>>>();
                let proof = proof.ok_or_else(|| {
                    self.invalid(Some(seq), "a proof hash is not base64 of 32 bytes")
                })?;
                verify_inclusion(&leaf_hash(&bytes), seq, cp.size, &proof, &cp.root)
                    .map_err(|e| self.invalid(Some(seq), format!("inclusion proof: {e}")))?;
                self.last_seq = Some(seq);
            }
        }
        self.last_link = chain_link(&bytes);
        self.last_time = entry.time_ms;
        self.entries += 1;
        self.buf = bytes;
        if scope == Scope::Log {
            self.check_saved_here()
        } else {
            Ok(())
        }
    }

    /// Checks one `handover` line: a `keys.rotate` entry naming two of the bundle's keys,
    /// included in a checkpoint that both of them signed.
    fn handover(
        &mut self,
        seq: u64,
        b64: &str,
        proof: &[String],
        note: &str,
    ) -> Result<(), BundleError> {
        let origin = self
            .header
            .as_ref()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| self.invalid(Some(seq), "hand-over: entry bytes are not base64"))?;
        let entry = EntryView::parse(&bytes)
            .map_err(|e| self.invalid(Some(seq), format!("hand-over: {e}")))?;
        if entry.seq != seq
            || entry.action != Action::KeyRotate
            || entry.outcome != Outcome::Allowed
        {
            return Err(self.invalid(
                Some(seq),
                "hand-over: not the allowed keys.rotate entry it claims to be",
            ));
        }
        let (old, new) = rotation_keys(&entry).ok_or_else(|| {
            self.invalid(
                Some(seq),
                "hand-over: the entry must name the old and the new key",
            )
        })?;
        if !self.keys.contains(&old) || !self.keys.contains(&new) || old == new {
            return Err(self.invalid(
                Some(seq),
                "hand-over: the old and the new key must be two of the bundle's keys",
            ));
        }
        let pair = [old.clone(), new.clone()];
        let opened = checkpoint::open(note, &pair)
            .map_err(|e| self.invalid(Some(seq), format!("hand-over checkpoint: {e}")))?;
        if opened.signed_by.len() != 2 {
            return Err(self.invalid(
                Some(seq),
                "hand-over checkpoint: it must be signed by both the old and the new key",
            ));
        }
        let cp = opened.checkpoint;
        if cp.origin != origin || cp.size <= seq {
            return Err(self.invalid(
                Some(seq),
                "hand-over checkpoint: of another log, or not covering the entry",
            ));
        }
        let proof = proof
            .iter()
            .map(|p| b64_hash(p))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                self.invalid(
                    Some(seq),
                    "hand-over: a proof hash is not base64 of 32 bytes",
                )
            })?;
        let leaf = leaf_hash(&bytes);
        verify_inclusion(&leaf, seq, cp.size, &proof, &cp.root)
            .map_err(|e| self.invalid(Some(seq), format!("hand-over inclusion proof: {e}")))?;
        if let Some(last) = self.handovers.last()
            && last.size >= cp.size
        {
            return Err(self.invalid(Some(seq), "hand-overs must come in the order they happened"));
        }
        if self
            .handovers
            .iter()
            .any(|h| h.old == old || h.new == new || h.new == old && h.old == new)
        {
            return Err(self.invalid(Some(seq), "hand-over: a key is retired or introduced twice"));
        }
        self.handovers.push(Handover {
            seq,
            leaf,
            old,
            new,
            size: cp.size,
        });
        Ok(())
    }

    /// After the key and hand-over lines: the keys accepted for checkpoints are the trusted
    /// ones and every key joined to one of them by hand-overs, each valid from the hand-over
    /// that introduced it to the one that retired it.
    fn resolve_keys(&mut self) -> Result<(), BundleError> {
        if !self.trusted.iter().any(|k| self.keys.contains(k)) {
            return Err(self.invalid(
                None,
                "the bundle's keys do not include the trusted key (a replaced key?)",
            ));
        }
        let mut accepted: Vec<VerifierKey> = self.trusted.clone();
        loop {
            let before = accepted.len();
            for h in &self.handovers {
                match (accepted.contains(&h.old), accepted.contains(&h.new)) {
                    (true, false) => accepted.push(h.new.clone()),
                    (false, true) => accepted.push(h.old.clone()),
                    _ => {}
                }
            }
            if accepted.len() == before {
                break;
            }
        }
        self.windows = accepted
            .into_iter()
            .map(|key| Window {
                from: self
                    .handovers
                    .iter()
                    .find(|h| h.new == key)
                    .map_or(0, |h| h.size),
                to: self
                    .handovers
                    .iter()
                    .find(|h| h.old == key)
                    .map_or(u64::MAX, |h| h.size),
                key,
            })
            .collect();
        if let Some(note) = self.saved_note.take() {
            let saved = self
                .open_checkpoint(&note)
                .map_err(|e| BundleError::Unusable(format!("the saved checkpoint: {e}")))?;
            self.saved = Some(saved);
        }
        Ok(())
    }

    /// A checkpoint signed by an accepted key within that key's window.
    fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, String> {
        let keys: Vec<VerifierKey> = self.windows.iter().map(|w| w.key.clone()).collect();
        let opened = checkpoint::open(note, &keys).map_err(|e| e.to_string())?;
        let size = opened.checkpoint.size;
        let valid = opened.signed_by.iter().any(|k| {
            self.windows
                .iter()
                .any(|w| &w.key == *k && w.from <= size && size <= w.to)
        });
        if !valid {
            return Err(format!(
                "no key valid at tree size {size} signed it (a retired key, or one not yet handed over to)"
            ));
        }
        Ok(opened.checkpoint)
    }

    /// Opens a checkpoint line of the bundle.
    fn checkpoint(&mut self, note: &str, origin: &str) -> Result<Checkpoint, BundleError> {
        let cp = self
            .open_checkpoint(note)
            .map_err(|e| self.invalid(None, format!("checkpoint: {e}")))?;
        if cp.origin != origin {
            return Err(self.invalid(None, "a checkpoint of another log"));
        }
        Ok(cp)
    }

    /// A `keys.rotate` entry in the bundle must be the one its hand-over line names.
    fn check_rotation(&self, entry: &EntryView<'_>, leaf: &Hash) -> Result<(), BundleError> {
        if entry.action != Action::KeyRotate || entry.outcome != Outcome::Allowed {
            return Ok(());
        }
        if !self
            .handovers
            .iter()
            .any(|h| h.seq == entry.seq && &h.leaf == leaf)
        {
            return Err(self.invalid(Some(entry.seq), "a key rotation without its hand-over line"));
        }
        Ok(())
    }

    /// Per-project sequence numbers must run on without gaps (from 0 when the export starts at 0).
    fn project_order(
        &mut self,
        entry: &EntryView<'_>,
        from_start: bool,
    ) -> Result<(), BundleError> {
        let Some(p) = entry.project else {
            return Ok(());
        };
        let expected = match self.project_seqs.get(p) {
            Some(last) => Some(last + 1),
            None if from_start => Some(0),
            None => None,
        };
        if expected.is_some_and(|e| e != entry.project_seq) {
            return Err(self.invalid(
                Some(entry.seq),
                format!(
                    "project entry number {} where {} was expected (a project entry is missing)",
                    entry.project_seq,
                    expected.unwrap_or(0)
                ),
            ));
        }
        match self.project_seqs.get_mut(p) {
            Some(last) => *last = entry.project_seq,
            None => {
                self.project_seqs.insert(p.to_owned(), entry.project_seq);
            }
        }
        Ok(())
    }

    fn check_saved_here(&mut self) -> Result<(), BundleError> {
        if let Some(saved) = &self.saved
            && saved.size == self.range.size()
            && saved.size > 0
        {
            if saved.root != self.range.root() {
                return Err(self.invalid(
                    saved.size.checked_sub(1),
                    "the entries do not match the checkpoint you saved (history rewritten)",
                ));
            }
            self.saved_checked = true;
        }
        Ok(())
    }

    /// Ends verification: the bundle must be complete.
    pub fn finish(self) -> Result<Report, BundleError> {
        let (origin, scope, project, from, to) = self
            .header
            .clone()
            .ok_or_else(|| BundleError::Unusable("empty input".into()))?;
        let cp = self
            .checkpoint
            .clone()
            .ok_or_else(|| self.invalid(None, "the bundle has no checkpoint"))?;
        if scope == Scope::Log && (!self.ended_on_checkpoint || cp.size != to || self.next != to) {
            return Err(self.invalid(
                Some(self.next),
                "the bundle ends before its last checkpoint (truncated)",
            ));
        }
        // The project's last entry must be the checkpoint's last leaf: with project_seq
        // running from 0 without gaps, that proves no entry of the project is missing.
        // A subject bundle ends at the report's own entry, which names the person: the
        // checkpoint is the log as it stood when the report was made.
        if scope != Scope::Log && self.last_seq.map(|s| s + 1) != Some(to) {
            let whose = if scope == Scope::Project {
                "project"
            } else {
                "subject"
            };
            return Err(self.invalid(
                self.last_seq.map(|s| s + 1),
                format!(
                    "the {whose}'s entries end before entry {} of the checkpoint's {to}: later entries of the {whose} were removed",
                    to.saturating_sub(1),
                ),
            ));
        }
        let mut saved_checkpoint = None;
        if let Some(saved) = &self.saved {
            if saved.size > cp.size {
                return Err(self.invalid(
                    Some(cp.size),
                    format!("the log now ends at {} entries but you saved a checkpoint of {}: truncated or rewritten", cp.size, saved.size),
                ));
            }
            if scope != Scope::Log && saved.size == cp.size {
                if saved.root != cp.root {
                    return Err(self.invalid(
                        None,
                        "the checkpoint differs from the one you saved at the same size (fork)",
                    ));
                }
            } else if saved.size > 0 && !self.saved_checked {
                return Err(BundleError::Unusable(format!(
                    "the saved checkpoint ({} entries) lies outside what this bundle covers; export from entry 0",
                    saved.size
                )));
            }
            saved_checkpoint = Some(saved.size);
        }
        Ok(Report {
            origin,
            scope,
            project,
            subject: self.subject.map(hex::encode),
            from,
            to,
            entries: self.entries,
            checkpoints: self.checkpoints,
            root: STANDARD.encode(cp.root),
            saved_checkpoint,
        })
    }
}

/// Reads `{"type":"entry","seq":N,"bytes":"B"}` without a JSON parser. Anything else, or any
/// deviation from exactly this form, returns `None` and takes the general path.
fn fast_entry(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix(r#"{"type":"entry","seq":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (seq, rest) = rest.split_at(digits);
    if seq.is_empty() || (seq.len() > 1 && seq.starts_with('0')) {
        return None;
    }
    let bytes = rest.strip_prefix(r#","bytes":""#)?.strip_suffix(r#""}"#)?;
    // Base64 decoding later refuses anything but canonical base64, quotes included.
    Some((seq.parse().ok()?, bytes))
}

/// The old and the new key a `keys.rotate` entry names in its details.
fn rotation_keys(entry: &EntryView<'_>) -> Option<(VerifierKey, VerifierKey)> {
    let details: serde_json::Value = serde_json::from_str(entry.details).ok()?;
    let key = |name: &str| {
        details[name]
            .as_str()
            .and_then(|k| VerifierKey::parse(k).ok())
    };
    Some((key("old")?, key("new")?))
}

fn kind(line: &Line) -> &'static str {
    match line {
        Line::Header { .. } => "header",
        Line::Key { .. } => "key",
        Line::Handover { .. } => "handover",
        Line::Prefix { .. } => "prefix",
        Line::Entry { .. } => "entry",
        Line::Checkpoint { .. } => "checkpoint",
    }
}

/// Verifies a whole bundle held in memory.
pub fn verify_text(
    bundle: &str,
    trusted: Vec<VerifierKey>,
    saved: Option<&str>,
) -> Result<Report, BundleError> {
    let mut v = Verifier::new(trusted, saved)?;
    if !bundle.ends_with('\n') && !bundle.is_empty() {
        return Err(BundleError::Unusable(
            "the bundle does not end with a newline (cut short?)".into(),
        ));
    }
    for line in bundle.lines() {
        v.feed(line)?;
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_entry_path_agrees_with_the_general_one() {
        let line = Line::Entry {
            seq: 42,
            bytes: "AQID+/8=".into(),
            proof: None,
        };
        assert_eq!(fast_entry(&line.to_json()), Some((42, "AQID+/8=")));
        for odd in [
            r#"{"type":"entry","seq":042,"bytes":"AQID"}"#,
            r#"{"type":"entry","seq":42,"bytes":"AQID"} "#,
            r#"{"type":"entry","seq":42,"bytes":"AQID","proof":[]}"#,
            r#"{"type":"entry", "seq":42,"bytes":"AQID"}"#,
        ] {
            assert_eq!(fast_entry(odd), None, "{odd}");
        }
    }
}
