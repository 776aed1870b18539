//! The audit log's keys and exports: `auditgate keys ...` and `auditgate log ...`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{open, print};
use crate::audit::{self, AuditLog};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::ledger::bundle::Line;
use crate::ledger::entry::Action;

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Print the public key that verifies checkpoints (Go sumdb/note verifier-key form).
    Show,
    /// Replace the signing key: the hand-over is logged and its checkpoint signed by both keys.
    /// Stop the service first, and start it again afterwards.
    Rotate,
}

/// Runs a keys command.
pub(super) async fn keys_command(
    cmd: KeysCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    match cmd {
        KeysCommand::Show => {
            let key = audit::keys::load_or_create_signer(
                &settings.audit.signing_key_file,
                &settings.audit.origin,
            )?;
            let v = key.verifier();
            print(
                as_json,
                json!({"origin": settings.audit.origin, "vkey": v.to_string(), "key_id": format!("{:08x}", v.id())}),
                &v.to_string(),
            );
        }
        KeysCommand::Rotate => {
            let path = &settings.audit.signing_key_file;
            anyhow::ensure!(
                path.exists(),
                "no signing key at {} to rotate",
                path.display()
            );
            super::confirm(
                "Rotating the signing key (auditors must then trust the new key for what follows)",
            )?;
            // Held until the new key is in place: no service may sign meanwhile, and none may
            // be running with the old key afterwards.
            let _lock = audit::keys::lock_key_file(path, true)?;
            let old = audit::keys::load_or_create_signer(path, &settings.audit.origin)?;
            let new = audit::keys::next_signer(&old)?;
            let store = open(settings).await?;
            let pseudonyms =
                audit::keys::PseudonymKey::load_or_create(&settings.audit.pseudonym_key_file)?;
            let both = vec![old.clone(), new.clone()];
            let log = AuditLog::start_with(
                store.clone(),
                Arc::new(clock),
                &settings.audit,
                both,
                pseudonyms,
            )
            .await?;
            let (old_v, new_v) = (old.verifier().to_string(), new.verifier().to_string());
            let seq = log
                .record_cli(
                    Action::KeyRotate,
                    None,
                    0,
                    json!({"old": old_v, "new": new_v}),
                )
                .await?;
            log.wait_signed(seq, std::time::Duration::from_secs(10))
                .await?;
            audit::keys::replace_signer_file(path, &old, &new)?;
            print(
                as_json,
                json!({"old": old_v, "new": new_v, "entry": seq}),
                &format!(
                    "signing key rotated (entry {seq}, signed by both keys)\n  old: {old_v}\n  new: {new_v}\nRestart the service so it signs with the new key."
                ),
            );
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(super) enum LogCommand {
    /// Write a self-contained bundle that `auditgate verify` checks offline.
    Export {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only this project's entries, each with an inclusion proof.
        #[arg(long)]
        project: Option<String>,
        /// The first sequence number (whole-log export).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop at the last signed size not above this.
        #[arg(long)]
        to: Option<u64>,
        /// Include every checkpoint, not one per 1000 entries (plus the last and key hand-overs).
        #[arg(long)]
        all_checkpoints: bool,
    },
    /// Verify an exported bundle offline, then print its entries decoded: a table, or one JSON
    /// object a line with --json (as `auditgate-verify --show`; needs no configuration).
    Show {
        /// The bundle and what it is checked against.
        #[command(flatten)]
        source: crate::verify_cli::Bundle,
        /// Which entries to print.
        #[command(flatten)]
        select: crate::verify_cli::Selection,
    },
}

/// Runs a log command.
pub(super) async fn log_command(
    cmd: LogCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    match cmd {
        LogCommand::Export {
            all_checkpoints,
            out,
            project,
            from,
            to,
        } => {
            let store = open(settings).await?;
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            let origin = &settings.audit.origin;
            let scope = if project.is_some() { "project" } else { "log" };
            let details =
                json!({"scope": scope, "from": from, "to": to, "file": out.display().to_string()});
            let mut bundle = match project {
                Some(p) => {
                    // Logged first: the entry closes its commit group and ends the bundle,
                    // which proves that no entry of the project is missing.
                    let p = ProjectId::parse(&p)?;
                    let seq = log
                        .record_cli(Action::AuditExport, Some(&p), 0, details)
                        .await?;
                    log.wait_signed(seq, std::time::Duration::from_secs(10))
                        .await?;
                    audit::export::Export::project(store.clone(), origin, &p, seq + 1).await?
                }
                None => {
                    let bundle = audit::export::Export::log(
                        store.clone(),
                        origin,
                        from,
                        to,
                        (!all_checkpoints).then_some(1000),
                    )
                    .await?;
                    let entries = bundle.log_entries().unwrap_or(0);
                    log.record_cli(Action::AuditExport, None, entries, details)
                        .await?;
                    bundle
                }
            };
            // Written a chunk at a time: memory stays flat whatever the log's size.
            let (mut entries, mut lines) = (0u64, 0usize);
            let write = async {
                use std::io::Write;
                let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
                while let Some(chunk) = bundle.next_lines().await? {
                    entries += chunk
                        .iter()
                        .filter(|l| matches!(l, Line::Entry { .. }))
                        .count() as u64;
                    lines += chunk.len();
                    file.write_all(audit::export::to_text(&chunk).as_bytes())?;
                }
                file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                anyhow::Ok(())
            };
            write
                .await
                .with_context(|| format!("writing {}", out.display()))?;
            print(
                as_json,
                json!({"out": out.display().to_string(), "entries": entries, "lines": lines}),
                &format!(
                    "wrote {entries} entries to {}\nverify with: auditgate-verify {} --key '{}'",
                    out.display(),
                    out.display(),
                    log.verifier_key()
                ),
            );
        }
        LogCommand::Show { .. } => unreachable!("handled before configuration is loaded"),
    }
    Ok(())
}
