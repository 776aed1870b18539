//! Projects and their service tokens: `auditgate project ...` and `auditgate token ...`.

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
use crate::projects;

#[derive(Debug, Subcommand)]
pub(super) enum ProjectCommand {
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

/// Runs a project command.
pub(super) async fn project_command(
    cmd: ProjectCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    match cmd {
        ProjectCommand::Create { id, name } => {
            let store = open(settings).await?;
            let id = ProjectId::parse(&id)?;
            let created = projects::create(store.as_ref(), &clock, id, name).await?;
            let p = &created.project;
            let after = json!({"id": p.id, "name": p.name, "retention_days": p.retention_days, "service_account": created.service_account.name, "token_id": created.token_id});
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            log.record_cli(
                Action::ProjectCreate,
                Some(&p.id),
                0,
                json!({"before": null, "after": after}),
            )
            .await?;
            print(
                as_json,
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
        ProjectCommand::List => {
            let store = open(settings).await?;
            let list = store.list_projects().await?;
            let rows: Vec<_> = list
                .iter()
                .map(|p| json!({"id": p.id, "name": p.name, "retention_days": p.retention_days, "created_at": p.created_at.to_rfc3339(), "deleted": p.deleted_at.is_some()}))
                .collect();
            let text = super::table(
                &["id", "name", "retention", "state"],
                list.iter()
                    .map(|p| {
                        let state = if p.deleted_at.is_some() {
                            "deleted"
                        } else {
                            "live"
                        };
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            format!("{} days", p.retention_days),
                            state.to_owned(),
                        ]
                    })
                    .collect(),
                "No projects yet: `auditgate project create <id>` makes one.",
            );
            print(
                as_json,
                json!(rows),
                if text.is_empty() {
                    "no projects"
                } else {
                    &text
                },
            );
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
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

/// Runs a token command.
pub(super) async fn token_command(
    cmd: TokenCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    match cmd {
        TokenCommand::Create { project } => {
            let store = open(settings).await?;
            let project = ProjectId::parse(&project)?;
            store
                .project(&project)
                .await?
                .with_context(|| format!("no project {project}"))?;
            let (id, secret) = projects::create_token(store.as_ref(), &clock, &project).await?;
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            log.record_cli(
                Action::TokenCreate,
                Some(&project),
                0,
                json!({"token_id": id}),
            )
            .await?;
            print(
                as_json,
                json!({"id": id, "project": project, "secret": secret.expose()}),
                &format!(
                    "token {id} created for {project}\n  secret: {}\nThe secret is shown only now.",
                    secret.expose()
                ),
            );
        }
        TokenCommand::Revoke { id } => {
            let store = open(settings).await?;
            if !store.revoke_token(&id, clock.now()).await? {
                anyhow::bail!("no live token with id {id}");
            }
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            let details =
                json!({"token_id": id, "before": {"revoked": false}, "after": {"revoked": true}});
            log.record_cli(Action::TokenRevoke, None, 0, details)
                .await?;
            print(
                as_json,
                json!({"id": id, "revoked": true}),
                &format!("token {id} revoked"),
            );
        }
        TokenCommand::List { project } => {
            let store = open(settings).await?;
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
            print(as_json, json!(rows), &text);
        }
    }
    Ok(())
}
