//! Just-in-time access requests: `auditgate request ...`.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{open, print};
use crate::audit::AuditLog;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::ledger::entry::Action;

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
    use crate::access::RequestStatus;
    let store = open(settings).await?;
    let clock = SystemClock;
    let now = clock.now();
    let (id, approve) = match cmd {
        RequestCommand::List => {
            let pending: Vec<_> = store
                .requests(None)
                .await?
                .into_iter()
                .filter(|r| r.state_at(now) == "pending")
                .collect();
            let rows: Vec<_> = pending
                .iter()
                .map(|r| json!({"id": r.id, "requester": r.requester, "project": r.project, "role": r.role, "reason": r.reason, "lapses_at": r.lapses_at.to_rfc3339()}))
                .collect();
            let text = pending
                .iter()
                .map(|r| {
                    format!(
                        "{}  {} asks {} on {}: {}",
                        r.id, r.requester, r.role, r.project, r.reason
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        RequestCommand::Approve { id } => (id, true),
        RequestCommand::Reject { id } => (id, false),
    };
    let (request, approvals) = store
        .request(&id)
        .await?
        .with_context(|| format!("no access request {id}"))?;
    anyhow::ensure!(
        request.state_at(now) == "pending",
        "the request is {}",
        request.state_at(now)
    );
    anyhow::ensure!(
        !approvals.iter().any(|a| a == "cli"),
        "the operator already approved it"
    );
    let granted = approve && approvals.len() as u32 + 1 >= request.approvals_needed;
    let grant = granted.then(|| request.to_grant(uuid::Uuid::new_v4().to_string(), "cli", now));
    let state = match (approve, granted) {
        (false, _) => "rejected",
        (true, true) => "granted",
        (true, false) => "pending",
    };
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    let project = ProjectId::parse(&request.project).ok();
    log.record_cli(
        Action::AccessRequest,
        project.as_ref(),
        0,
        json!({"request": id, "before": {"state": "pending", "approvals": approvals}, "after": {"state": state, "grant_id": grant.as_ref().map(|g| g.id.clone())}}),
    )
    .await?;
    if approve {
        store.approve_request(&id, "cli", now).await?;
    }
    if !approve || granted {
        let status = if approve {
            RequestStatus::Granted
        } else {
            RequestStatus::Rejected
        };
        store
            .close_request(&id, status, grant.as_ref(), now)
            .await?;
    }
    print(
        as_json,
        json!({"id": id, "state": state}),
        &format!("request {id} is {state}"),
    );
    Ok(())
}
