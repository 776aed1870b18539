//! Custom roles: `auditgate role ...`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Operator, open, print};
use crate::admin::{Administrator, roles};
use crate::config::Settings;

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
            // A table for people: the permissions as words, not a JSON array.
            let text = super::table(
                &["role", "kind", "permissions"],
                rows.iter()
                    .map(|r| {
                        let permissions: Vec<&str> = r["permissions"]
                            .as_array()
                            .map(|ps| ps.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        let kind = if r["builtin"] == true {
                            "built-in"
                        } else {
                            "custom"
                        };
                        vec![
                            r["name"].as_str().unwrap_or("").to_owned(),
                            kind.to_owned(),
                            permissions.join(", "),
                        ]
                    })
                    .collect(),
                "",
            );
            print(as_json, json!(rows), &text);
        }
        RoleCommand::Create {
            name,
            permissions,
            description,
        } => {
            let operator = Operator::start(&store, settings).await?;
            let admin = operator.admin();
            let role = roles::create(
                &admin,
                Administrator::Operator,
                name,
                &permissions,
                description,
            )
            .await?;
            print(
                as_json,
                json!({"name": role.name, "permissions": role.permissions}),
                &format!("role {} created", role.name),
            );
        }
        RoleCommand::Delete { name } => {
            let custom = store.custom_roles().await?;
            if !custom.iter().any(|r| r.name == name) {
                let names = custom.iter().map(|r| r.name.as_str());
                anyhow::bail!(
                    "no custom role {name}{}",
                    crate::domain::did_you_mean(&name, names)
                );
            }
            super::confirm(&format!("Deleting role {name}"))?;
            // Checked before anything is logged: the log records only what happens.
            let operator = Operator::start(&store, settings).await?;
            let admin = operator.admin();
            roles::delete(&admin, Administrator::Operator, &name).await?;
            print(
                as_json,
                json!({"name": name, "deleted": true}),
                &format!("role {name} deleted"),
            );
        }
    }
    Ok(())
}
