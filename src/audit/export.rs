//! Building export bundles from the store (the format is `ledger::bundle`).

use std::collections::BTreeMap;

use actix_web::web::Bytes;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::Stream;

use super::proofs;
use crate::domain::ProjectId;
use crate::ledger::bundle::{FORMAT, Line, Scope};
use crate::ledger::entry::{Action, Entry, Outcome, chain_link};
use crate::ledger::merkle::Hash;
use crate::store::{SharedStore, Store};

fn b64(h: &[u8]) -> String {
    STANDARD.encode(h)
}

async fn key_lines(store: &dyn Store) -> anyhow::Result<Vec<Line>> {
    Ok(store
        .audit_keys()
        .await?
        .into_iter()
        .map(|vkey| Line::Key { vkey })
        .collect())
}

/// A `handover` line for every signing-key rotation in the log, so that an auditor holding any
/// one of the log's keys can follow the others, whatever part of the log the bundle covers.
async fn handover_lines(store: &dyn Store) -> anyhow::Result<Vec<Line>> {
    let mut found = Vec::new();
    for e in store
        .audit_entries_with_action(Action::KeyRotate.as_str())
        .await?
    {
        if Entry::decode(&e.bytes)?.outcome != Outcome::Allowed {
            continue;
        }
        let (size, note) = store
            .checkpoint_covering(e.seq)
            .await?
            .with_context(|| format!("no checkpoint covers the key rotation at entry {}", e.seq))?;
        found.push((e, size, note));
    }
    let mut lines = Vec::with_capacity(found.len());
    for (e, size, note) in found {
        let proof = proofs::inclusion_proofs(store, &[e.seq], size)
            .await?
            .remove(0);
        lines.push(Line::Handover {
            seq: e.seq,
            bytes: b64(&e.bytes),
            proof: proof.iter().map(|h| b64(h)).collect(),
            note,
        });
    }
    Ok(lines)
}

/// The largest signed size, optionally capped at `to`.
async fn signed_size(store: &dyn Store, to: Option<u64>) -> anyhow::Result<u64> {
    let (latest, _) = store
        .latest_checkpoint()
        .await?
        .context("the log has no checkpoint yet")?;
    let cap = to.unwrap_or(latest).min(latest);
    let (size, _) = store
        .checkpoint_at_most(cap)
        .await?
        .with_context(|| format!("no checkpoint at or below {cap} entries"))?;
    Ok(size)
}

/// The opening lines of a bundle whose entries carry proofs (project or subject): header,
/// keys, hand-overs and the checkpoint of exactly `size`, whose last entry `closes` accepts.
async fn proved_opening(
    store: &dyn Store,
    origin: &str,
    project: &ProjectId,
    subject: Option<&Hash>,
    size: u64,
    closes: impl FnOnce(&Entry) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Line>> {
    let note = store
        .checkpoints(size, size)
        .await?
        .pop()
        .with_context(|| format!("no checkpoint of exactly {size} entries"))?
        .1;
    let last = store
        .audit_entries(size.saturating_sub(1), size)
        .await?
        .pop()
        .map(|e| Entry::decode(&e.bytes))
        .transpose()?
        .context("the bundle's last entry is missing")?;
    closes(&last)?;
    let mut lines = vec![Line::Header {
        format: FORMAT.into(),
        origin: origin.into(),
        scope: if subject.is_some() {
            Scope::Subject
        } else {
            Scope::Project
        },
        project: Some(project.to_string()),
        subject: subject.map(hex::encode),
        from: 0,
        to: size,
    }];
    lines.extend(key_lines(store).await?);
    lines.extend(handover_lines(store).await?);
    lines.push(Line::Checkpoint { note });
    Ok(lines)
}

/// Entries read, proved and written per step: an export's memory does not grow with the log.
const CHUNK: u64 = 2000;

/// A bundle being exported: its opening lines first, then its entries a chunk at a time.
pub struct Export {
    store: SharedStore,
    opening: Option<Vec<Line>>,
    scope: Part,
    next: u64,
    to: u64,
}

enum Part {
    /// Entries `[next, to)` of the whole log, with the checkpoints kept (one per `every`
    /// entries, the last and every key hand-over; all of them without `every`).
    Log { every: Option<u64>, last_kept: u64 },
    /// One project's entries below `to`, each with an inclusion proof in the tree of `to`,
    /// from the project's `next_in_project`th entry on.
    Project {
        project: ProjectId,
        next_in_project: u64,
    },
    /// The entries naming one pseudonym below `to`, each with an inclusion proof (`next` is
    /// where the next chunk's index range starts).
    Subject { subject: Hash },
}

impl Export {
    /// Every entry in `[from, to)`, where `to` is the largest checkpoint size not above the
    /// `to` asked for. `every` thins the checkpoints to one per that many entries (the final
    /// one and every key hand-over are always kept); `None` keeps them all.
    pub async fn log(
        store: SharedStore,
        origin: &str,
        from: u64,
        to: Option<u64>,
        every: Option<u64>,
    ) -> anyhow::Result<Self> {
        let to = signed_size(store.as_ref(), to).await?;
        anyhow::ensure!(
            from < to,
            "nothing to export: from {from} is not below the last signed size {to}"
        );
        let mut lines = vec![Line::Header {
            format: FORMAT.into(),
            origin: origin.into(),
            scope: Scope::Log,
            project: None,
            subject: None,
            from,
            to,
        }];
        lines.extend(key_lines(store.as_ref()).await?);
        lines.extend(handover_lines(store.as_ref()).await?);
        if from > 0 {
            let peaks = proofs::peaks(store.as_ref(), from).await?;
            let last = store
                .audit_entries(from - 1, from)
                .await?
                .pop()
                .context("the entry before `from` is missing")?;
            let entry = Entry::decode(&last.bytes)?;
            lines.push(Line::Prefix {
                size: from,
                peaks: peaks.iter().map(|p| b64(p)).collect(),
                last_link: b64(&chain_link(&last.bytes)),
                last_time: entry.time_ms,
            });
        }
        Ok(Self {
            store,
            opening: Some(lines),
            scope: Part::Log {
                every,
                last_kept: from,
            },
            next: from,
            to,
        })
    }

    /// One project's entries in the tree of size `size`, each with an inclusion proof, so
    /// that the project's auditor sees nothing of other projects. The tree's last entry must
    /// be the project's own (the export's entry, which closes its commit group): that is
    /// what proves no later entry of the project was left out.
    pub async fn project(
        store: SharedStore,
        origin: &str,
        project: &ProjectId,
        size: u64,
    ) -> anyhow::Result<Self> {
        let lines = proved_opening(store.as_ref(), origin, project, None, size, |last| {
            anyhow::ensure!(
                last.project.as_deref() == Some(project.as_str()),
                "entry {} is not an entry of project {project}: a project bundle ends at the project's own entry",
                last.seq
            );
            Ok(())
        })
        .await?;
        Ok(Self {
            store,
            opening: Some(lines),
            scope: Part::Project {
                project: project.clone(),
                next_in_project: 0,
            },
            next: 0,
            to: size,
        })
    }

    /// The entries naming `subject` (a pseudonym in `project`) in the tree of size `size`,
    /// each with an inclusion proof. The tree's last entry must name them too (the report's
    /// own entry, which closes its commit group), so the checkpoint is the log as it stood
    /// when the report was made.
    pub async fn subject(
        store: SharedStore,
        origin: &str,
        project: &ProjectId,
        subject: &Hash,
        size: u64,
    ) -> anyhow::Result<Self> {
        let lines = proved_opening(store.as_ref(), origin, project, Some(subject), size, |last| {
            anyhow::ensure!(
                last.subjects.contains(subject),
                "entry {} does not name the subject: a subject bundle ends at the report's own entry",
                last.seq
            );
            Ok(())
        })
        .await?;
        Ok(Self {
            store,
            opening: Some(lines),
            scope: Part::Subject { subject: *subject },
            next: 0,
            to: size,
        })
    }

    /// How many entries a whole-log export holds (known before it is written).
    pub fn log_entries(&self) -> Option<u64> {
        match self.scope {
            Part::Log { .. } => Some(self.to - self.next),
            Part::Project { .. } | Part::Subject { .. } => None,
        }
    }

    /// The next lines of the bundle, or `None` once it is complete.
    pub async fn next_lines(&mut self) -> anyhow::Result<Option<Vec<Line>>> {
        if let Some(opening) = self.opening.take() {
            return Ok(Some(opening));
        }
        if self.next >= self.to {
            return Ok(None);
        }
        let end = self.to.min(self.next.saturating_add(CHUNK));
        let store = self.store.as_ref();
        let mut lines = Vec::new();
        match &mut self.scope {
            Part::Log { every, last_kept } => {
                let mut checkpoints = BTreeMap::new();
                for (size, note) in store.checkpoints(self.next + 1, end).await? {
                    let hand_over = note.matches('\u{2014}').count() > 1;
                    if every.is_none_or(|n| size >= *last_kept + n) || size == self.to || hand_over
                    {
                        *last_kept = size;
                        checkpoints.insert(size, note);
                    }
                }
                for e in store.audit_entries(self.next, end).await? {
                    lines.push(Line::Entry {
                        seq: e.seq,
                        bytes: b64(&e.bytes),
                        proof: None,
                    });
                    if let Some(note) = checkpoints.remove(&(e.seq + 1)) {
                        lines.push(Line::Checkpoint { note });
                    }
                }
                self.next = end;
            }
            Part::Project {
                project,
                next_in_project,
            } => {
                let entries = store
                    .project_audit_entries(project, *next_in_project, self.to, CHUNK as u32)
                    .await?;
                let seqs: Vec<u64> = entries.iter().map(|(_, e)| e.seq).collect();
                let proofs = proofs::inclusion_proofs(store, &seqs, self.to).await?;
                for ((_, e), proof) in entries.iter().zip(proofs) {
                    lines.push(Line::Entry {
                        seq: e.seq,
                        bytes: b64(&e.bytes),
                        proof: Some(proof.iter().map(|h| b64(h)).collect()),
                    });
                }
                match entries.last() {
                    Some((n, _)) if entries.len() as u64 == CHUNK => *next_in_project = n + 1,
                    _ => self.next = self.to,
                }
            }
            Part::Subject { subject } => {
                let entries = store
                    .entries_naming(subject, self.next..self.to, false, CHUNK as u32)
                    .await?;
                let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
                let proofs = proofs::inclusion_proofs(store, &seqs, self.to).await?;
                for (e, proof) in entries.iter().zip(proofs) {
                    lines.push(Line::Entry {
                        seq: e.seq,
                        bytes: b64(&e.bytes),
                        proof: Some(proof.iter().map(|h| b64(h)).collect()),
                    });
                }
                self.next = match entries.last() {
                    Some(e) if entries.len() as u64 == CHUNK => e.seq + 1,
                    _ => self.to,
                };
            }
        }
        Ok(Some(lines))
    }

    /// The whole bundle's lines (for small logs and tests).
    pub async fn collect(mut self) -> anyhow::Result<Vec<Line>> {
        let mut all = Vec::new();
        while let Some(lines) = self.next_lines().await? {
            all.extend(lines);
        }
        Ok(all)
    }

    /// The bundle's bytes, a chunk at a time. A failure mid-way ends the stream with an
    /// error, so the reader gets a bundle that does not verify, never a short one that does.
    pub fn stream(self) -> impl Stream<Item = anyhow::Result<Bytes>> {
        futures_util::stream::unfold(Some(self), |export| async move {
            let mut export = export?;
            match export.next_lines().await {
                Ok(Some(lines)) => Some((Ok(Bytes::from(to_text(&lines))), Some(export))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

/// Lines joined into the bundle's bytes.
pub fn to_text(lines: &[Line]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_json());
        out.push('\n');
    }
    out
}
