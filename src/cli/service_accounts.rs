//! Service accounts: `auditgate service-account list|lock|unlock`.

use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::admin::{Administrator, people};
use crate::config::Settings;

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
    let (id, lock) = match cmd {
        ServiceAccountCommand::List => {
            let rows: Vec<_> = store
                .all_service_accounts()
                .await?
                .into_iter()
                .map(|(sa, locked)| json!({"id": sa.id, "name": sa.name, "project": sa.project_id, "locked": locked.is_some()}))
                .collect();
            let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("").to_owned();
            let text = super::table(
                &["id", "name", "project", "state"],
                rows.iter()
                    .map(|r| {
                        let state = if r["locked"] == true {
                            "locked"
                        } else {
                            "active"
                        };
                        vec![
                            field(r, "id"),
                            field(r, "name"),
                            field(r, "project"),
                            state.into(),
                        ]
                    })
                    .collect(),
                "No service accounts: each project gets one when it is created.",
            );
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        ServiceAccountCommand::Lock { id } => (id, true),
        ServiceAccountCommand::Unlock { id } => (id, false),
    };
    // People type names ("shop-service") as often as ids: the service resolves either before
    // anything is logged, so a command that fails leaves no entry saying it was done.
    let operator = Operator::start(&store, settings).await?;
    let admin = operator.admin();
    let id = people::lock_service_account(&admin, Administrator::Operator, &id, lock)
        .await?
        .id;
    print(
        as_json,
        json!({"id": id, "locked": lock}),
        &format!("{id} {}", if lock { "locked" } else { "unlocked" }),
    );
    Ok(())
}
