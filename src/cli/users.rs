//! People: `auditgate user ...`.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::admin::{Administrator, people};
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
    /// Reset a person's 2-step verification (a lost phone): they set it up again at their
    /// next sign-in, and their sessions end.
    ResetSecondFactor {
        /// The person's id.
        id: String,
    },
    /// End every session of a person (their personal tokens keep working).
    EndSessions {
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
    let (id, disable) = match cmd {
        UserCommand::List => {
            // A read: no audit log to start (nor its keys to lock).
            let users = store.users().await?;
            let rows: Vec<_> = users
                .iter()
                .map(|u| json!({"id": u.id, "email": u.email, "kind": u.kind.as_str(), "disabled": u.disabled_at.is_some()}))
                .collect();
            let text = super::table(
                &["id", "email", "kind", "state"],
                users
                    .iter()
                    .map(|u| {
                        let state = if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        };
                        vec![
                            u.id.clone(),
                            u.email.clone(),
                            u.kind.as_str().to_owned(),
                            state.to_owned(),
                        ]
                    })
                    .collect(),
                "No people yet: they appear when they first sign in (or `auditgate admin bootstrap`).",
            );
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        UserCommand::Disable { id } => (id, true),
        UserCommand::Enable { id } => (id, false),
        UserCommand::ResetSecondFactor { id } => {
            let operator = Operator::start(&store, settings).await?;
            let admin = operator.admin();
            // Checked before asking: a confirmation for nobody helps no one.
            admin
                .store
                .user(&id)
                .await?
                .with_context(|| format!("there is no person {id} (see `auditgate user list`)"))?;
            super::confirm(&format!("Resetting {id}'s 2-step verification"))?;
            let done = people::reset_second_factor(&admin, Administrator::Operator, &id).await?;
            print(
                as_json,
                json!(done),
                &format!(
                    "{id} sets up 2-step verification again at their next sign-in; {} sessions ended",
                    done.sessions_ended
                ),
            );
            return Ok(());
        }
        UserCommand::EndSessions { id } => {
            let operator = Operator::start(&store, settings).await?;
            let done =
                people::end_sessions(&operator.admin(), Administrator::Operator, &id).await?;
            print(
                as_json,
                json!(done),
                &format!("{} sessions of {id} ended", done.sessions_ended),
            );
            return Ok(());
        }
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

#[derive(Debug, Subcommand)]
pub(super) enum AdminCommand {
    /// Create the break-glass administrator: for first set-up and for when the identity
    /// provider is down. Signs in at /auth/login with a password, then 2-step verification.
    Bootstrap {
        /// The administrator's email (their sign-in name).
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs an admin command.
pub(super) async fn admin_command(
    cmd: AdminCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    match cmd {
        AdminCommand::Bootstrap {
            email,
            password_stdin,
        } => {
            let email = email.trim().to_owned();
            anyhow::ensure!(
                email.contains('@') && email.len() <= 254,
                "{email:?} is not an email address"
            );
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (crate::auth::session::random_text(), true)
            };
            let hash = crate::auth::password::hash(&password).map_err(|e| anyhow::anyhow!(e))?;
            let store = super::create(settings).await?;
            let user = crate::store::User {
                id: uuid::Uuid::new_v4().to_string(),
                email: email.clone(),
                name: Some("break-glass administrator".into()),
                kind: crate::store::UserKind::Local,
                created_at: clock.now(),
                last_signin_at: None,
                disabled_at: None,
            };
            store.create_local_user(&user, &hash).await?;
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            let details = json!({
                "user": user.id,
                "kind": "break_glass",
                "before": null,
                "after": {"kind": "local", "role": crate::access::BREAK_GLASS.name, "second_factor": "required"},
            });
            log.record_cli(Action::UserChange, None, 0, details).await?;
            let mut text = format!(
                "break-glass administrator {email} created (id {}).\nSign in at /auth/login; 2-step verification is set up at the first sign-in.",
                user.id
            );
            if generated {
                text.push_str(&format!(
                    "\n  password: {password}\nThe password is shown only now."
                ));
            }
            print(
                as_json,
                json!({"id": user.id, "email": email, "password": generated.then_some(password)}),
                &text,
            );
        }
    }
    Ok(())
}
