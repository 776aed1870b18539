//! Just-in-time access requests: `auditgate request ...`.

use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::admin::{Administrator, requests};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub(super) enum RequestCommand {
    /// Pending requests.
    List,
    /// Approve one (the operator counts as one approver).
    Approve {
        /// The request's id.
        id: String,
    },
    /// Reject one.
    Reject {
        /// The request's id.
        id: String,
    },
}

pub(super) async fn request_command(
    cmd: RequestCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let (id, approve) = match cmd {
        RequestCommand::List => {
            // A read: no audit log to start (nor its keys to lock).
            let pending =
                requests::still_pending(store.requests(None).await?, None, SystemClock.now());
            let rows: Vec<_> = pending
                .iter()
                .map(|r| json!({"id": r.id, "requester": r.requester, "project": r.project, "role": r.role, "reason": r.reason, "lapses_at": r.lapses_at.to_rfc3339()}))
                .collect();
            let text = super::table(
                &["id", "requester", "role", "project", "reason", "lapses at"],
                pending
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.requester.clone(),
                            r.role.clone(),
                            r.project.clone(),
                            r.reason.clone(),
                            r.lapses_at.to_rfc3339(),
                        ]
                    })
                    .collect(),
                "No access requests are waiting for a decision.",
            );
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        RequestCommand::Approve { id } => (id, true),
        RequestCommand::Reject { id } => (id, false),
    };
    let operator = Operator::start(&store, settings).await?;
    let after = requests::decide(&operator.admin(), Administrator::Operator, &id, approve).await?;
    let state = after["state"].as_str().unwrap_or_default().to_owned();
    print(
        as_json,
        json!({"id": id, "state": state}),
        &format!("request {id} is {state}"),
    );
    Ok(())
}
