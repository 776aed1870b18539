//! People: `auditgate user ...`.

use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::admin::{Administrator, people};
use crate::clock::SystemClock;
use crate::config::Settings;

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
    let _clock = SystemClock;
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
    let operator = Operator::start(&store, settings).await?;
    let admin = operator.admin();
    people::set_disabled(&admin, Administrator::Operator, &id, disable).await?;
    print(
        as_json,
        json!({"id": id, "disabled": disable}),
        &format!("{id} {}", if disable { "disabled" } else { "enabled" }),
    );
    Ok(())
}
