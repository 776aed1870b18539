//! Projects and their service tokens: `auditgate project ...` and `auditgate token ...`.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::admin::Administrator;
use crate::admin::projects::{self as admin_projects, SettingsChange};
use crate::admin::tokens as admin_tokens;
use crate::audit::AuditLog;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::ledger::entry::Action;
use crate::projects::{self, ProjectView};

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
    /// Show a project's settings, or change those given.
    Settings {
        /// The project.
        id: String,
        /// Days events are kept (1 to 36500).
        #[arg(long)]
        retention_days: Option<i64>,
        /// Whether events need the person's consent.
        #[arg(long)]
        consent_required: Option<bool>,
        /// The event property that carries consent.
        #[arg(long)]
        consent_property: Option<String>,
        /// A web origin browsers may send events from (repeat it; `*` for any). Replaces
        /// the list; `--no-origins` empties it.
        #[arg(long = "allowed-origin", conflicts_with = "no_origins")]
        allowed_origins: Vec<String>,
        /// Empties the list of allowed origins.
        #[arg(long)]
        no_origins: bool,
        /// Keep the client's address in `$ip` when an SDK sends `ip=1`.
        #[arg(long)]
        record_client_ip: Option<bool>,
    },
    /// Delete a project: unreachable at once, restorable during `retention.project_grace_days`,
    /// then purged with its events.
    Delete {
        /// The project.
        id: String,
    },
    /// Restore a deleted project within its grace period.
    Restore {
        /// The project.
        id: String,
    },
}

/// A project's settings, as the CLI shows them.
fn settings_text(v: &ProjectView) -> String {
    let origins = if v.allowed_origins.is_empty() {
        "none".to_owned()
    } else {
        v.allowed_origins.join(", ")
    };
    let mut text = format!(
        "project {id} ({name})\n  retention:        {days} days\n  consent required: {consent} (property {prop})\n  allowed origins:  {origins}\n  record client ip: {ip}",
        id = v.id,
        name = v.name,
        days = v.retention_days,
        consent = v.consent_required,
        prop = v.consent_property,
        ip = v.record_client_ip,
    );
    if let (Some(at), Some(until)) = (&v.deleted_at, &v.restorable_until) {
        text.push_str(&format!(
            "\n  deleted:          {at}, restorable until {until}"
        ));
    }
    text
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
        ProjectCommand::Settings {
            id,
            retention_days,
            consent_required,
            consent_property,
            allowed_origins,
            no_origins,
            record_client_ip,
        } => {
            let id = ProjectId::parse(&id)?;
            let store = open(settings).await?;
            let operator = Operator::start(&store, settings).await?;
            let admin = operator.admin();
            let change = SettingsChange {
                retention_days,
                consent_required,
                consent_property,
                allowed_origins: (no_origins || !allowed_origins.is_empty())
                    .then_some(allowed_origins),
                record_client_ip,
            };
            let unchanged = change.retention_days.is_none()
                && change.consent_required.is_none()
                && change.consent_property.is_none()
                && change.allowed_origins.is_none()
                && change.record_client_ip.is_none();
            let view = if unchanged {
                ProjectView::of(
                    &crate::projects::live(store.as_ref(), &id).await?,
                    settings.retention.project_grace_days,
                )
            } else {
                admin_projects::update_settings(&admin, Administrator::Operator, &id, Ok(change))
                    .await?
            };
            print(as_json, json!(view), &settings_text(&view));
        }
        ProjectCommand::Delete { id } => {
            let id = ProjectId::parse(&id)?;
            let store = open(settings).await?;
            // Checked before asking: a confirmation for nothing helps no one.
            crate::projects::live(store.as_ref(), &id).await?;
            super::confirm(&format!(
                "Deleting project {id} (and, after the grace period, its events)"
            ))?;
            let operator = Operator::start(&store, settings).await?;
            let view =
                admin_projects::delete(&operator.admin(), Administrator::Operator, &id).await?;
            let until = view.restorable_until.clone().unwrap_or_default();
            print(
                as_json,
                json!(view),
                &format!(
                    "project {id} deleted; `auditgate project restore {id}` brings it back until {until}"
                ),
            );
        }
        ProjectCommand::Restore { id } => {
            let id = ProjectId::parse(&id)?;
            let store = open(settings).await?;
            let operator = Operator::start(&store, settings).await?;
            let view =
                admin_projects::restore(&operator.admin(), Administrator::Operator, &id).await?;
            print(as_json, json!(view), &format!("project {id} restored"));
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
    match cmd {
        TokenCommand::Create { project } => {
            let store = open(settings).await?;
            let project = ProjectId::parse(&project)?;
            let account = store
                .service_accounts(&project)
                .await?
                .into_iter()
                .next()
                .with_context(|| format!("no project {project} with a service account"))?;
            let operator = Operator::start(&store, settings).await?;
            let (_, id, secret) =
                admin_tokens::create(&operator.admin(), Administrator::Operator, &account.id)
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
            let operator = Operator::start(&store, settings).await?;
            let admin = operator.admin();
            let account = admin_tokens::owner_of(&admin, &id).await?;
            admin_tokens::revoke(&admin, Administrator::Operator, &account.id, &id).await?;
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
