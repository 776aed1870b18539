//! The `auditgate` command line: serve, migrate, and manage projects and tokens.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::startup::Application;
use crate::store::{self, SharedStore};
use crate::{projects, telemetry};

/// An audited gate in front of a product-analytics event store.
#[derive(Debug, Parser)]
#[command(name = "auditgate", version, about)]
pub struct Cli {
    /// A configuration file layered over config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Listen here instead of server.bind.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage service-account API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project; prints its ingestion token and service-account secret once.
    Create {
        /// The project id: a-z, 0-9 and '-'.
        id: String,
        /// A display name (defaults to the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// List projects.
    List,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create another API token for a project's service account; prints the secret once.
    Create {
        /// The project.
        #[arg(long)]
        project: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token id (not the secret).
        id: String,
    },
    /// List a project's tokens.
    List {
        /// The project.
        #[arg(long)]
        project: String,
    },
}

/// Parses the command line and runs the command.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(settings.log.format, &settings.log.level);
    let clock = SystemClock;
    match cli.command {
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                settings.server.bind = bind;
                settings.validate()?;
            }
            let app = Application::build(settings.clone(), Arc::new(clock)).await?;
            tracing::info!(
                port = app.port(),
                backend = app.store().backend(),
                "auditgate listening"
            );
            app.run_until_stopped().await?;
            tracing::info!("drained and stopped");
        }
        Command::Migrate => {
            open(&settings).await?;
            print(cli.json, json!({"migrated": true}), "migrations applied");
        }
        Command::Project(ProjectCommand::Create { id, name }) => {
            let store = open(&settings).await?;
            let id = ProjectId::parse(&id)?;
            let created = projects::create(store.as_ref(), &clock, id, name).await?;
            print(
                cli.json,
                json!({
                    "id": created.project.id,
                    "name": created.project.name,
                    "ingest_token": created.project.ingest_token,
                    "service_account": created.service_account.name,
                    "token_id": created.token_id,
                    "secret": created.secret.expose(),
                    "retention_days": created.project.retention_days,
                }),
                &format!(
                    "project {id} created\n  id:                     {id}\n  ingestion token:        {tok}\n  service account:        {sa}\n  token id:               {tid}\n  service-account secret: {secret}\n\nThe secret is shown only now; it authenticates /import (HTTP Basic) and the read API (Bearer).",
                    id = created.project.id,
                    tok = created.project.ingest_token,
                    sa = created.service_account.name,
                    tid = created.token_id,
                    secret = created.secret.expose(),
                ),
            );
        }
        Command::Project(ProjectCommand::List) => {
            let store = open(&settings).await?;
            let list = store.list_projects().await?;
            let rows: Vec<_> = list
                .iter()
                .map(|p| json!({"id": p.id, "name": p.name, "retention_days": p.retention_days, "created_at": p.created_at.to_rfc3339(), "deleted": p.deleted_at.is_some()}))
                .collect();
            let text = list
                .iter()
                .map(|p| {
                    format!(
                        "{:<24} {:<24} retention {} days{}",
                        p.id,
                        p.name,
                        p.retention_days,
                        if p.deleted_at.is_some() {
                            " (deleted)"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(
                cli.json,
                json!(rows),
                if text.is_empty() {
                    "no projects"
                } else {
                    &text
                },
            );
        }
        Command::Token(TokenCommand::Create { project }) => {
            let store = open(&settings).await?;
            let project = ProjectId::parse(&project)?;
            store
                .project(&project)
                .await?
                .with_context(|| format!("no project {project}"))?;
            let (id, secret) = projects::create_token(store.as_ref(), &clock, &project).await?;
            print(
                cli.json,
                json!({"id": id, "project": project, "secret": secret.expose()}),
                &format!(
                    "token {id} created for {project}\n  secret: {}\nThe secret is shown only now.",
                    secret.expose()
                ),
            );
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let store = open(&settings).await?;
            if !store.revoke_token(&id, clock.now()).await? {
                anyhow::bail!("no live token with id {id}");
            }
            print(
                cli.json,
                json!({"id": id, "revoked": true}),
                &format!("token {id} revoked"),
            );
        }
        Command::Token(TokenCommand::List { project }) => {
            let store = open(&settings).await?;
            let tokens = store.tokens(&ProjectId::parse(&project)?).await?;
            let rows: Vec<_> = tokens
                .iter()
                .map(|t| json!({"id": t.id, "service_account": t.service_account.name, "created_at": t.created_at.to_rfc3339(), "revoked": t.revoked_at.is_some()}))
                .collect();
            let text = tokens
                .iter()
                .map(|t| {
                    format!(
                        "{}  {}  created {}{}",
                        t.id,
                        t.service_account.name,
                        t.created_at.to_rfc3339(),
                        if t.revoked_at.is_some() {
                            "  revoked"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(cli.json, json!(rows), &text);
        }
    }
    Ok(())
}

async fn open(settings: &Settings) -> anyhow::Result<SharedStore> {
    let store = store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

fn print(as_json: bool, value: serde_json::Value, text: &str) {
    if as_json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}
