//! Building export bundles from the store (the format is `ledger::bundle`).

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::proofs;
use crate::domain::ProjectId;
use crate::ledger::bundle::{FORMAT, Line, Scope};
use crate::ledger::entry::{Action, Entry, Outcome, chain_link};
use crate::store::Store;

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
        .checkpoints(0, cap)
        .await?
        .pop()
        .with_context(|| format!("no checkpoint at or below {cap} entries"))?;
    Ok(size)
}

/// Every entry in `[from, to)`, where `to` is the largest checkpoint size not above the `to`
/// asked for. `every` thins the checkpoints to one per that many entries (the final one and
/// every key hand-over are always kept); `None` keeps them all.
pub async fn export_log(
    store: &dyn Store,
    origin: &str,
    from: u64,
    to: Option<u64>,
    every: Option<u64>,
) -> anyhow::Result<Vec<Line>> {
    let to = signed_size(store, to).await?;
    anyhow::ensure!(
        from < to,
        "nothing to export: from {from} is not below the last signed size {to}"
    );
    let mut lines = vec![Line::Header {
        format: FORMAT.into(),
        origin: origin.into(),
        scope: Scope::Log,
        project: None,
        from,
        to,
    }];
    lines.extend(key_lines(store).await?);
    lines.extend(handover_lines(store).await?);
    if from > 0 {
        let peaks = proofs::peaks(store, from).await?;
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
    let mut checkpoints: BTreeMap<u64, String> = BTreeMap::new();
    let mut last_kept = from;
    for (size, note) in store.checkpoints(from + 1, to).await? {
        let hand_over = note.matches('\u{2014}').count() > 1;
        if every.is_none_or(|n| size >= last_kept + n) || size == to || hand_over {
            last_kept = size;
            checkpoints.insert(size, note);
        }
    }
    for e in store.audit_entries(from, to).await? {
        let size = e.seq + 1;
        lines.push(Line::Entry {
            seq: e.seq,
            bytes: b64(&e.bytes),
            proof: None,
        });
        if let Some(note) = checkpoints.get(&size) {
            lines.push(Line::Checkpoint { note: note.clone() });
        }
    }
    Ok(lines)
}

/// One project's entries in the tree of size `size`, each with an inclusion proof, so that
/// the project's auditor sees nothing of other projects. The tree's last entry must be the
/// project's own (the export's entry, which closes its commit group): that is what proves no
/// later entry of the project was left out.
pub async fn export_project(
    store: &dyn Store,
    origin: &str,
    project: &ProjectId,
    size: u64,
) -> anyhow::Result<Vec<Line>> {
    let note = store
        .checkpoints(size, size)
        .await?
        .pop()
        .with_context(|| format!("no checkpoint of exactly {size} entries"))?
        .1;
    let mut lines = vec![Line::Header {
        format: FORMAT.into(),
        origin: origin.into(),
        scope: Scope::Project,
        project: Some(project.to_string()),
        from: 0,
        to: size,
    }];
    lines.extend(key_lines(store).await?);
    lines.extend(handover_lines(store).await?);
    lines.push(Line::Checkpoint { note });
    let entries = store.project_audit_entries(project, size).await?;
    anyhow::ensure!(
        entries.last().is_some_and(|e| e.seq + 1 == size),
        "entry {} is not an entry of project {project}: a project bundle ends at the project's own entry",
        size.saturating_sub(1)
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    let proofs = proofs::inclusion_proofs(store, &seqs, size).await?;
    for (e, proof) in entries.into_iter().zip(proofs) {
        lines.push(Line::Entry {
            seq: e.seq,
            bytes: b64(&e.bytes),
            proof: Some(proof.iter().map(|h| b64(h)).collect()),
        });
    }
    Ok(lines)
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
