//! Grants: `auditgate grant add|list|revoke|approve|reject`.

use clap::Subcommand;
use serde_json::json;

use super::{Operator, open, print};
use crate::access::GrantStatus;
use crate::admin::Administrator;
use crate::admin::grants::{self, grant_json};
use crate::admin::review;
use crate::config::Settings;
use crate::store::SharedStore;

#[derive(Debug, Subcommand)]
pub(super) enum GrantCommand {
    /// Grant a role (or deny a permission). The operator's grants start active: this is how
    /// the first owners and sensitive-data readers are named.
    Add {
        /// A person's id (see `auditgate user list`).
        #[arg(long, group = "who")]
        user: Option<String>,
        /// An identity-provider group.
        #[arg(long, group = "who")]
        group: Option<String>,
        /// A service account's id.
        #[arg(long, group = "who")]
        service_account: Option<String>,
        /// The role to allow.
        #[arg(long, group = "what")]
        role: Option<String>,
        /// Or the permission to deny.
        #[arg(long, group = "what")]
        deny: Option<String>,
        /// A project id, or `*`.
        #[arg(long)]
        project: String,
        /// Why (a ticket reference).
        #[arg(long)]
        reason: String,
        /// Days until it lapses.
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// List grants.
    List {
        /// Only this project's (and every project's).
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a grant by id.
    Revoke {
        /// The grant's id.
        id: String,
    },
    /// Approve a pending grant (the operator as the second administrator).
    Approve {
        /// The grant's id.
        id: String,
    },
    /// Reject a pending grant.
    Reject {
        /// The grant's id.
        id: String,
    },
}

pub(super) async fn grant_command(
    cmd: GrantCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    match cmd {
        GrantCommand::Add {
            user,
            group,
            service_account,
            role,
            deny,
            project,
            reason,
            expires_in_days,
        } => {
            let (subject_kind, subject) = match (user, group, service_account) {
                (Some(u), _, _) => ("user", u),
                (_, Some(g), _) => ("group", g),
                (_, _, Some(s)) => ("service_account", s),
                _ => anyhow::bail!("name who: --user, --group or --service-account"),
            };
            anyhow::ensure!(
                role.is_some() || deny.is_some(),
                "name what: --role or --deny"
            );
            let new = grants::NewGrant::parse(
                subject_kind,
                subject,
                role,
                deny,
                project,
                reason,
                expires_in_days,
            )?;
            let operator = Operator::start(&store, settings).await?;
            let admin = operator.admin();
            let g = grants::create(&admin, Administrator::Operator, new).await?;
            print(as_json, grant_json(&g), &format!("grant {} created", g.id));
        }
        GrantCommand::List { project } => {
            // A read: no audit log to start (nor its keys to lock).
            let grants = store.grants(project.as_deref()).await?;
            let text = super::table(
                &["id", "to", "role", "project", "status"],
                grants
                    .iter()
                    .map(|g| {
                        let role = g.role.clone().unwrap_or_else(|| {
                            format!("deny {}", g.permission.map(|p| p.as_str()).unwrap_or(""))
                        });
                        vec![
                            g.id.clone(),
                            format!("{}:{}", g.subject_kind.as_str(), g.subject),
                            role,
                            g.project.clone(),
                            g.status.as_str().to_owned(),
                        ]
                    })
                    .collect(),
                "No grants: `auditgate grant add` makes one.",
            );
            print(
                as_json,
                json!(grants.iter().map(grant_json).collect::<Vec<_>>()),
                &text,
            );
        }
        GrantCommand::Revoke { id } => {
            if !store.grants(None).await?.iter().any(|g| g.id == id) {
                anyhow::bail!("no grant {id} (`auditgate grant list` shows them)");
            }
            super::confirm(&format!("Revoking grant {id}"))?;
            change_grant(&store, settings, &id, GrantStatus::Revoked, as_json).await?;
        }
        GrantCommand::Approve { id } => {
            change_grant(&store, settings, &id, GrantStatus::Active, as_json).await?;
        }
        GrantCommand::Reject { id } => {
            change_grant(&store, settings, &id, GrantStatus::Rejected, as_json).await?;
        }
    }
    Ok(())
}

/// Revokes a live grant, or approves or rejects a pending one, as the operator.
pub(super) async fn change_grant(
    store: &SharedStore,
    settings: &Settings,
    id: &str,
    to: GrantStatus,
    as_json: bool,
) -> anyhow::Result<()> {
    let operator = Operator::start(store, settings).await?;
    let admin = operator.admin();
    grants::decide(&admin, Administrator::Operator, id, to).await?;
    print(
        as_json,
        json!({"id": id, "status": to}),
        &format!("grant {id} is now {}", to.as_str()),
    );
    Ok(())
}

/// `auditgate access-review`: the same review as `GET /api/v1/admin/access-review`.
pub(super) async fn access_review(
    project: Option<&str>,
    csv: bool,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!(csv && as_json), "choose one of --csv and --json");
    let project = project.map(crate::domain::ProjectId::parse).transpose()?;
    let store = open(settings).await?;
    let operator = Operator::start(&store, settings).await?;
    let admin = operator.admin();
    let review = review::access_review(&admin, Administrator::Operator, project.as_ref()).await?;
    if csv {
        use std::io::Write;
        std::io::stdout().write_all(&review::csv(&review)?)?;
        return Ok(());
    }
    let rows = serde_json::to_value(&review)?["rows"].take();
    let text = super::table(
        &[
            "principal",
            "email",
            "holds",
            "project",
            "via",
            "expires",
            "last used",
            "state",
        ],
        rows.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                let holds = match s("role").as_str() {
                    "" => format!("deny {}", s("denied")),
                    role => role.to_owned(),
                };
                let state = if r["disabled"] == true {
                    "disabled"
                } else if r["review_overdue"] == true {
                    "review overdue"
                } else {
                    "active"
                };
                vec![
                    s("principal"),
                    s("email"),
                    holds,
                    s("project"),
                    s("via"),
                    s("expires_at"),
                    s("last_used_at"),
                    state.to_owned(),
                ]
            })
            .collect(),
        "Nobody holds anything yet: `auditgate grant add` gives a role.",
    );
    print(as_json, rows, &text);
    Ok(())
}
