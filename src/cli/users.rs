//! People: `auditgate user ...`.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{open, print};
use crate::audit::AuditLog;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::ledger::entry::Action;

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// List people.
    List,
    /// Disable a person: their sessions end and their personal tokens stop.
    Disable {
        /// The person's id.
        id: String,
    },
    /// Re-enable a person.
    Enable {
        /// The person's id.
        id: String,
    },
}

pub(super) async fn user_command(
    cmd: UserCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let clock = SystemClock;
    let (id, disable) = match cmd {
        UserCommand::List => {
            let users = store.users().await?;
            let rows: Vec<_> = users
                .iter()
                .map(|u| json!({"id": u.id, "email": u.email, "kind": u.kind.as_str(), "disabled": u.disabled_at.is_some()}))
                .collect();
            let text = users
                .iter()
                .map(|u| {
                    format!(
                        "{}  {}  {}{}",
                        u.id,
                        u.email,
                        u.kind.as_str(),
                        if u.disabled_at.is_some() {
                            "  disabled"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        UserCommand::Disable { id } => (id, true),
        UserCommand::Enable { id } => (id, false),
    };
    let (user, _) = store
        .user(&id)
        .await?
        .with_context(|| format!("no person {id}"))?;
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    log.record_cli(
        Action::UserChange,
        None,
        0,
        json!({"user": id, "before": {"disabled": user.disabled_at.is_some()}, "after": {"disabled": disable}}),
    )
    .await?;
    let now = clock.now();
    store.set_user_disabled(&id, disable.then_some(now)).await?;
    if disable {
        store
            .end_user_sessions(&id, crate::store::EndReason::Disabled, now)
            .await?;
        store.revoke_personal_tokens(&id, now).await?;
    }
    print(
        as_json,
        json!({"id": id, "disabled": disable}),
        &format!("{id} {}", if disable { "disabled" } else { "enabled" }),
    );
    Ok(())
}
