//! Service accounts: `auditgate service-account list|lock|unlock`.

use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use super::{open, print};
use crate::audit::AuditLog;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::ledger::entry::Action;

#[derive(Debug, Subcommand)]
pub(super) enum ServiceAccountCommand {
    /// List service accounts.
    List,
    /// Lock one: its tokens stop working at the next request.
    Lock {
        /// The service account's id.
        id: String,
    },
    /// Unlock one.
    Unlock {
        /// The service account's id.
        id: String,
    },
}

pub(super) async fn service_account_command(
    cmd: ServiceAccountCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let clock = SystemClock;
    let (id, lock) = match cmd {
        ServiceAccountCommand::List => {
            let mut rows = Vec::new();
            for p in store.list_projects().await? {
                for sa in store.service_accounts(&p.id).await? {
                    let locked = store.service_account_locked(&sa.id).await?;
                    rows.push(json!({"id": sa.id, "name": sa.name, "project": sa.project_id, "locked": locked.is_some()}));
                }
            }
            let text = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}  {}  {}{}",
                        r["id"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        r["project"].as_str().unwrap_or(""),
                        if r["locked"] == true { "  locked" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        ServiceAccountCommand::Lock { id } => (id, true),
        ServiceAccountCommand::Unlock { id } => (id, false),
    };
    // People type names ("shop-service") as often as ids; resolve either before anything is
    // logged, so a command that fails leaves no entry saying it was done.
    let mut matches = Vec::new();
    for p in store.list_projects().await? {
        matches.extend(
            store
                .service_accounts(&p.id)
                .await?
                .into_iter()
                .filter(|sa| sa.id == id || sa.name == id),
        );
    }
    let id = match &matches[..] {
        [sa] => sa.id.clone(),
        [] => anyhow::bail!(
            "no service account with the id or name {id:?} (auditgate service-account list shows them)"
        ),
        several => anyhow::bail!(
            "{id:?} names {} service accounts; use one of their ids: {}",
            several.len(),
            several
                .iter()
                .map(|sa| sa.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let before = store.service_account_locked(&id).await?.is_some();
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    log.record_cli(
        Action::UserChange,
        None,
        0,
        json!({"service_account": id, "before": {"locked": before}, "after": {"locked": lock}}),
    )
    .await?;
    anyhow::ensure!(
        store
            .lock_service_account(&id, lock.then(|| clock.now()))
            .await?,
        "no service account {id}"
    );
    print(
        as_json,
        json!({"id": id, "locked": lock}),
        &format!("{id} {}", if lock { "locked" } else { "unlocked" }),
    );
    Ok(())
}
