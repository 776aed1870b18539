//! Custom roles: `auditgate role ...`.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{open, print};
use crate::access::{GrantStatus, Permission};
use crate::audit::AuditLog;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::ledger::entry::Action;

#[derive(Debug, Subcommand)]
pub(super) enum RoleCommand {
    /// Every grantable role and its permissions.
    List,
    /// Define a role from the permission catalogue.
    Create {
        /// Its name.
        name: String,
        /// Its permissions, e.g. events:read,profiles:read.
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a custom role no live grant uses.
    Delete {
        /// Its name.
        name: String,
    },
}

pub(super) async fn role_command(
    cmd: RoleCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let clock = SystemClock;
    match cmd {
        RoleCommand::List => {
            let custom = store.custom_roles().await?;
            let rows: Vec<_> = crate::access::BUILTIN
                .iter()
                .map(|r| json!({"name": r.name, "permissions": r.permissions, "builtin": true}))
                .chain(custom.iter().map(
                    |r| json!({"name": r.name, "permissions": r.permissions, "builtin": false}),
                ))
                .collect();
            let text = rows
                .iter()
                .map(|r| format!("{}  {}", r["name"].as_str().unwrap_or(""), r["permissions"]))
                .collect::<Vec<_>>()
                .join("\n");
            print(as_json, json!(rows), &text);
        }
        RoleCommand::Create {
            name,
            permissions,
            description,
        } => {
            anyhow::ensure!(
                crate::access::Role::builtin(&name).is_none()
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '_'
                        || c == '-'),
                "{name:?} must be a-z, 0-9, '_' or '-' and not a built-in role"
            );
            let mut perms = Vec::new();
            for p in &permissions {
                perms.push(
                    Permission::parse(p).with_context(|| format!("{p:?} is not a permission"))?,
                );
            }
            anyhow::ensure!(!perms.is_empty(), "a role needs --permissions");
            let role = crate::access::CustomRole {
                name,
                permissions: perms,
                description,
            };
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            log.record_cli(
                Action::RoleChange,
                None,
                0,
                json!({"role": role.name, "before": null, "after": {"permissions": role.permissions}}),
            )
            .await?;
            store.create_role(&role, "cli", clock.now()).await?;
            print(
                as_json,
                json!({"name": role.name, "permissions": role.permissions}),
                &format!("role {} created", role.name),
            );
        }
        RoleCommand::Delete { name } => {
            // Checked before anything is logged: the log records only what happens.
            let defined = store.custom_roles().await?.iter().any(|r| r.name == name);
            anyhow::ensure!(defined, "no custom role {name}");
            let in_use = store.grants(None).await?.iter().any(|g| {
                g.role.as_deref() == Some(name.as_str())
                    && matches!(g.status, GrantStatus::Active | GrantStatus::Pending)
            });
            anyhow::ensure!(!in_use, "role {name} is in use by a live grant");
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            log.record_cli(
                Action::RoleChange,
                None,
                0,
                json!({"role": name, "before": "defined", "after": null}),
            )
            .await?;
            anyhow::ensure!(
                store.delete_role(&name, clock.now()).await?,
                "no custom role {name}"
            );
            print(
                as_json,
                json!({"name": name, "deleted": true}),
                &format!("role {name} deleted"),
            );
        }
    }
    Ok(())
}
