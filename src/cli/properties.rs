//! Sensitive properties: `auditgate property ...`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::admin::{Administrator, properties};
use crate::config::Settings;
use crate::domain::ProjectId;

#[derive(Debug, Subcommand)]
pub(super) enum PropertyCommand {
    /// A project's sensitive properties.
    List {
        /// The project.
        #[arg(long)]
        project: String,
    },
    /// Mark a property sensitive: redacted for readers without events:read_sensitive.
    Mark {
        /// The project.
        #[arg(long)]
        project: String,
        /// `event` or `profile`.
        #[arg(long, default_value = "event")]
        kind: String,
        /// The property's name.
        name: String,
    },
    /// Remove the mark.
    Unmark {
        /// The project.
        #[arg(long)]
        project: String,
        /// `event` or `profile`.
        #[arg(long, default_value = "event")]
        kind: String,
        /// The property's name.
        name: String,
    },
}

pub(super) async fn property_command(
    cmd: PropertyCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    use crate::store::PropertyKind;
    let store = open(settings).await?;
    let kind_of =
        |k: &str| PropertyKind::parse(k).with_context(|| format!("{k:?} is event or profile"));
    let (project, kind, name, mark) = match cmd {
        PropertyCommand::List { project } => {
            let project = ProjectId::parse(&project)?;
            let event = store
                .sensitive_properties(&project, PropertyKind::Event)
                .await?;
            let profile = store
                .sensitive_properties(&project, PropertyKind::Profile)
                .await?;
            let text = super::table(
                &["kind", "property"],
                event
                    .iter()
                    .map(|p| vec!["event".to_owned(), p.clone()])
                    .chain(
                        profile
                            .iter()
                            .map(|p| vec!["profile".to_owned(), p.clone()]),
                    )
                    .collect(),
                &format!(
                    "No property of {project} is marked sensitive: `auditgate property mark` marks one."
                ),
            );
            print(as_json, json!({"event": event, "profile": profile}), &text);
            return Ok(());
        }
        PropertyCommand::Mark {
            project,
            kind,
            name,
        } => (project, kind_of(&kind)?, name, true),
        PropertyCommand::Unmark {
            project,
            kind,
            name,
        } => (project, kind_of(&kind)?, name, false),
    };
    let project = ProjectId::parse(&project)?;
    let operator = Operator::start(&store, settings).await?;
    properties::classify(
        &operator.admin(),
        Administrator::Operator,
        &project,
        kind,
        &name,
        mark,
    )
    .await?;
    print(
        as_json,
        json!({"project": project, "kind": kind.as_str(), "property": name, "sensitive": mark}),
        &format!(
            "{name} is {}sensitive in {project}",
            if mark { "" } else { "not " }
        ),
    );
    Ok(())
}
