//! The `auditgate` command line: serve, migrate, and manage projects and tokens.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::access::{GrantStatus, Permission};
use crate::admin::grants::{self, grant_json};
use crate::admin::{Admin, Administrator};
use crate::audit::{self, AuditLog};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::ledger::bundle::Line;
use crate::ledger::entry::Action;
use crate::startup::Application;
use crate::store::{self, SharedStore};
use crate::verify_cli::{self, VerifyArgs};
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
    /// The audit log's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// People who sign in.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Grants of roles (and denials of permissions), as the server's operator.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// People: list, disable, re-enable.
    #[command(subcommand)]
    User(UserCommand),
    /// Service accounts: list, lock, unlock.
    #[command(subcommand)]
    ServiceAccount(ServiceAccountCommand),
    /// Custom roles: list, create, delete.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Sensitive properties of a project: list, mark, unmark.
    #[command(subcommand)]
    Property(PropertyCommand),
    /// Just-in-time access requests: list pending, approve, reject.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Data-subject requests (export, erase, erase a property, anonymise) as jobs.
    #[command(subcommand)]
    SubjectRequest(SubjectRequestCommand),
    /// The audit log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Verify an exported bundle offline (needs no configuration, network or database).
    Verify {
        /// The bundle file.
        bundle: PathBuf,
        /// The log's public key, or a file holding it.
        #[arg(long)]
        key: String,
        /// A signed checkpoint saved earlier.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
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

#[derive(Debug, Subcommand)]
enum GrantCommand {
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

#[derive(Debug, Subcommand)]
enum RequestCommand {
    /// Pending requests.
    List,
    /// Approve one (the operator counts as one approver).
    Approve {
        /// The request's id.
        id: String,
    },
    /// Reject one.
    Reject {
        /// The request's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
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

#[derive(Debug, Subcommand)]
enum SubjectRequestCommand {
    /// Make a request; a running service (or `subject-request run`) carries it out.
    Create {
        /// The project.
        #[arg(long)]
        project: String,
        /// `export`, `erase`, `erase_property` or `anonymize`.
        #[arg(long)]
        kind: String,
        /// A ticket reference.
        #[arg(long)]
        reason: String,
        /// A distinct_id (repeat for more, up to 2000).
        #[arg(long = "distinct-id", required = true)]
        distinct_ids: Vec<String>,
        /// `GDPR` or `CCPA`.
        #[arg(long, default_value = "GDPR")]
        compliance_type: String,
        /// `erase_property`: the property to delete.
        #[arg(long)]
        property: Option<String>,
        /// `anonymize`: a property to drop (repeat for more).
        #[arg(long = "drop")]
        drop_properties: Vec<String>,
    },
    /// A project's requests, newest first.
    List {
        /// The project.
        #[arg(long)]
        project: String,
    },
    /// One request.
    Show {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
    },
    /// Cancel a request that has not started.
    Cancel {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
    },
    /// Give a large erasure its second approval, as the operator.
    Approve {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
    },
    /// Run every open request now, in this process.
    Run,
}

#[derive(Debug, Subcommand)]
enum PropertyCommand {
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

#[derive(Debug, Subcommand)]
enum ServiceAccountCommand {
    /// List service accounts.
    List,
    /// Lock one: its tokens stop working at the next request.
    Lock {
        /// The service account's id.
        id: String,
    },
    /// Unlock one.
    Unlock {
        /// The service account's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
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

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print the public key that verifies checkpoints (Go sumdb/note verifier-key form).
    Show,
    /// Replace the signing key: the hand-over is logged and its checkpoint signed by both keys.
    /// Stop the service first, and start it again afterwards.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Write a self-contained bundle that `auditgate verify` checks offline.
    Export {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only this project's entries, each with an inclusion proof.
        #[arg(long)]
        project: Option<String>,
        /// The first sequence number (whole-log export).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop at the last signed size not above this.
        #[arg(long)]
        to: Option<u64>,
        /// Include every checkpoint, not one per 1000 entries (plus the last and key hand-overs).
        #[arg(long)]
        all_checkpoints: bool,
    },
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
pub async fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if let Command::Verify {
        bundle,
        key,
        checkpoint,
    } = &cli.command
    {
        let args = VerifyArgs {
            bundle: bundle.clone(),
            key: key.clone(),
            checkpoint: checkpoint.clone(),
            json: cli.json,
        };
        return Ok(std::process::ExitCode::from(verify_cli::run(&args) as u8));
    }
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
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            log.record_cli(
                Action::TokenCreate,
                Some(&project),
                0,
                json!({"token_id": id}),
            )
            .await?;
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
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            let details =
                json!({"token_id": id, "before": {"revoked": false}, "after": {"revoked": true}});
            log.record_cli(Action::TokenRevoke, None, 0, details)
                .await?;
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
        Command::Admin(AdminCommand::Bootstrap {
            email,
            password_stdin,
        }) => {
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
            let store = open(&settings).await?;
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
                cli.json,
                json!({"id": user.id, "email": email, "password": generated.then_some(password)}),
                &text,
            );
        }
        Command::Grant(cmd) => grant_command(cmd, &settings, cli.json).await?,
        Command::User(cmd) => user_command(cmd, &settings, cli.json).await?,
        Command::ServiceAccount(cmd) => service_account_command(cmd, &settings, cli.json).await?,
        Command::Role(cmd) => role_command(cmd, &settings, cli.json).await?,
        Command::Request(cmd) => request_command(cmd, &settings, cli.json).await?,
        Command::Property(cmd) => property_command(cmd, &settings, cli.json).await?,
        Command::SubjectRequest(cmd) => subject_command(cmd, &settings, cli.json).await?,
        Command::Keys(KeysCommand::Show) => {
            let key = audit::keys::load_or_create_signer(
                &settings.audit.signing_key_file,
                &settings.audit.origin,
            )?;
            let v = key.verifier();
            print(
                cli.json,
                json!({"origin": settings.audit.origin, "vkey": v.to_string(), "key_id": format!("{:08x}", v.id())}),
                &v.to_string(),
            );
        }
        Command::Keys(KeysCommand::Rotate) => {
            let path = &settings.audit.signing_key_file;
            anyhow::ensure!(
                path.exists(),
                "no signing key at {} to rotate",
                path.display()
            );
            // Held until the new key is in place: no service may sign meanwhile, and none may
            // be running with the old key afterwards.
            let _lock = audit::keys::lock_key_file(path, true)?;
            let old = audit::keys::load_or_create_signer(path, &settings.audit.origin)?;
            let new = audit::keys::next_signer(&old)?;
            let store = open(&settings).await?;
            let pseudonyms =
                audit::keys::PseudonymKey::load_or_create(&settings.audit.pseudonym_key_file)?;
            let both = vec![old.clone(), new.clone()];
            let log = AuditLog::start_with(
                store.clone(),
                Arc::new(clock),
                &settings.audit,
                both,
                pseudonyms,
            )
            .await?;
            let (old_v, new_v) = (old.verifier().to_string(), new.verifier().to_string());
            let seq = log
                .record_cli(
                    Action::KeyRotate,
                    None,
                    0,
                    json!({"old": old_v, "new": new_v}),
                )
                .await?;
            log.wait_signed(seq, std::time::Duration::from_secs(10))
                .await?;
            audit::keys::replace_signer_file(path, &old, &new)?;
            print(
                cli.json,
                json!({"old": old_v, "new": new_v, "entry": seq}),
                &format!(
                    "signing key rotated (entry {seq}, signed by both keys)\n  old: {old_v}\n  new: {new_v}\nRestart the service so it signs with the new key."
                ),
            );
        }
        Command::Log(LogCommand::Export {
            all_checkpoints,
            out,
            project,
            from,
            to,
        }) => {
            let store = open(&settings).await?;
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            let origin = &settings.audit.origin;
            let scope = if project.is_some() { "project" } else { "log" };
            let details =
                json!({"scope": scope, "from": from, "to": to, "file": out.display().to_string()});
            let mut bundle = match project {
                Some(p) => {
                    // Logged first: the entry closes its commit group and ends the bundle,
                    // which proves that no entry of the project is missing.
                    let p = ProjectId::parse(&p)?;
                    let seq = log
                        .record_cli(Action::AuditExport, Some(&p), 0, details)
                        .await?;
                    log.wait_signed(seq, std::time::Duration::from_secs(10))
                        .await?;
                    audit::export::Export::project(store.clone(), origin, &p, seq + 1).await?
                }
                None => {
                    let bundle = audit::export::Export::log(
                        store.clone(),
                        origin,
                        from,
                        to,
                        (!all_checkpoints).then_some(1000),
                    )
                    .await?;
                    let entries = bundle.log_entries().unwrap_or(0);
                    log.record_cli(Action::AuditExport, None, entries, details)
                        .await?;
                    bundle
                }
            };
            // Written a chunk at a time: memory stays flat whatever the log's size.
            let (mut entries, mut lines) = (0u64, 0usize);
            let write = async {
                use std::io::Write;
                let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
                while let Some(chunk) = bundle.next_lines().await? {
                    entries += chunk
                        .iter()
                        .filter(|l| matches!(l, Line::Entry { .. }))
                        .count() as u64;
                    lines += chunk.len();
                    file.write_all(audit::export::to_text(&chunk).as_bytes())?;
                }
                file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                anyhow::Ok(())
            };
            write
                .await
                .with_context(|| format!("writing {}", out.display()))?;
            print(
                cli.json,
                json!({"out": out.display().to_string(), "entries": entries, "lines": lines}),
                &format!(
                    "wrote {entries} entries to {}\nverify with: auditgate-verify {} --key '{}'",
                    out.display(),
                    out.display(),
                    log.verifier_key()
                ),
            );
        }
        Command::Verify { .. } => unreachable!("handled before configuration is loaded"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn grant_command(
    cmd: GrantCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let clock = SystemClock;
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
            let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
            let admin = Admin {
                store: &store,
                audit: &log,
                clock: &clock,
                access: &settings.access,
            };
            let g = grants::create(&admin, Administrator::Operator, new).await?;
            print(as_json, grant_json(&g), &format!("grant {} created", g.id));
        }
        GrantCommand::List { project } => {
            let grants = store.grants(project.as_deref()).await?;
            let text = grants
                .iter()
                .map(|g| {
                    format!(
                        "{}  {}:{}  {}  on {}  {}",
                        g.id,
                        g.subject_kind.as_str(),
                        g.subject,
                        g.role.clone().unwrap_or_else(|| format!(
                            "deny {}",
                            g.permission.map(|p| p.as_str()).unwrap_or("")
                        )),
                        g.project,
                        g.status.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(
                as_json,
                json!(grants.iter().map(grant_json).collect::<Vec<_>>()),
                &text,
            );
        }
        GrantCommand::Revoke { id } => {
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
async fn change_grant(
    store: &SharedStore,
    settings: &Settings,
    id: &str,
    to: GrantStatus,
    as_json: bool,
) -> anyhow::Result<()> {
    let clock = SystemClock;
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    let admin = Admin {
        store,
        audit: &log,
        clock: &clock,
        access: &settings.access,
    };
    grants::decide(&admin, Administrator::Operator, id, to).await?;
    print(
        as_json,
        json!({"id": id, "status": to}),
        &format!("grant {id} is now {}", to.as_str()),
    );
    Ok(())
}

async fn service_account_command(
    cmd: ServiceAccountCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let clock = SystemClock;
    let (id, lock) = match cmd {
        ServiceAccountCommand::List => {
            let mut rows = Vec::new();
            for p in store.list_projects().await? {
                for sa in store.service_accounts(&p.id).await? {
                    let locked = store.service_account_locked(&sa.id).await?;
                    rows.push(json!({"id": sa.id, "name": sa.name, "project": sa.project_id, "locked": locked.is_some()}));
                }
            }
            let text = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}  {}  {}{}",
                        r["id"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        r["project"].as_str().unwrap_or(""),
                        if r["locked"] == true { "  locked" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        ServiceAccountCommand::Lock { id } => (id, true),
        ServiceAccountCommand::Unlock { id } => (id, false),
    };
    // People type names ("shop-service") as often as ids; resolve either before anything is
    // logged, so a command that fails leaves no entry saying it was done.
    let mut matches = Vec::new();
    for p in store.list_projects().await? {
        matches.extend(
            store
                .service_accounts(&p.id)
                .await?
                .into_iter()
                .filter(|sa| sa.id == id || sa.name == id),
        );
    }
    let id = match &matches[..] {
        [sa] => sa.id.clone(),
        [] => anyhow::bail!(
            "no service account with the id or name {id:?} (auditgate service-account list shows them)"
        ),
        several => anyhow::bail!(
            "{id:?} names {} service accounts; use one of their ids: {}",
            several.len(),
            several
                .iter()
                .map(|sa| sa.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let before = store.service_account_locked(&id).await?.is_some();
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    log.record_cli(
        Action::UserChange,
        None,
        0,
        json!({"service_account": id, "before": {"locked": before}, "after": {"locked": lock}}),
    )
    .await?;
    anyhow::ensure!(
        store
            .lock_service_account(&id, lock.then(|| clock.now()))
            .await?,
        "no service account {id}"
    );
    print(
        as_json,
        json!({"id": id, "locked": lock}),
        &format!("{id} {}", if lock { "locked" } else { "unlocked" }),
    );
    Ok(())
}

async fn request_command(
    cmd: RequestCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    use crate::access::RequestStatus;
    let store = open(settings).await?;
    let clock = SystemClock;
    let now = clock.now();
    let (id, approve) = match cmd {
        RequestCommand::List => {
            let pending: Vec<_> = store
                .requests(None)
                .await?
                .into_iter()
                .filter(|r| r.state_at(now) == "pending")
                .collect();
            let rows: Vec<_> = pending
                .iter()
                .map(|r| json!({"id": r.id, "requester": r.requester, "project": r.project, "role": r.role, "reason": r.reason, "lapses_at": r.lapses_at.to_rfc3339()}))
                .collect();
            let text = pending
                .iter()
                .map(|r| {
                    format!(
                        "{}  {} asks {} on {}: {}",
                        r.id, r.requester, r.role, r.project, r.reason
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(as_json, json!(rows), &text);
            return Ok(());
        }
        RequestCommand::Approve { id } => (id, true),
        RequestCommand::Reject { id } => (id, false),
    };
    let (request, approvals) = store
        .request(&id)
        .await?
        .with_context(|| format!("no access request {id}"))?;
    anyhow::ensure!(
        request.state_at(now) == "pending",
        "the request is {}",
        request.state_at(now)
    );
    anyhow::ensure!(
        !approvals.iter().any(|a| a == "cli"),
        "the operator already approved it"
    );
    let granted = approve && approvals.len() as u32 + 1 >= request.approvals_needed;
    let grant = granted.then(|| request.to_grant(uuid::Uuid::new_v4().to_string(), "cli", now));
    let state = match (approve, granted) {
        (false, _) => "rejected",
        (true, true) => "granted",
        (true, false) => "pending",
    };
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    let project = ProjectId::parse(&request.project).ok();
    log.record_cli(
        Action::AccessRequest,
        project.as_ref(),
        0,
        json!({"request": id, "before": {"state": "pending", "approvals": approvals}, "after": {"state": state, "grant_id": grant.as_ref().map(|g| g.id.clone())}}),
    )
    .await?;
    if approve {
        store.approve_request(&id, "cli", now).await?;
    }
    if !approve || granted {
        let status = if approve {
            RequestStatus::Granted
        } else {
            RequestStatus::Rejected
        };
        store
            .close_request(&id, status, grant.as_ref(), now)
            .await?;
    }
    print(
        as_json,
        json!({"id": id, "state": state}),
        &format!("request {id} is {state}"),
    );
    Ok(())
}

async fn role_command(cmd: RoleCommand, settings: &Settings, as_json: bool) -> anyhow::Result<()> {
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

fn request_json(r: &crate::privacy::subjects::SubjectRequest) -> serde_json::Value {
    json!({
        "id": r.id, "project": r.project, "kind": r.kind.as_str(),
        "compliance_type": r.compliance_type.as_str(), "status": r.state.as_str(),
        "requested_by": r.requested_by, "reason": r.reason, "subject_count": r.subject_count,
        "needs_approval": r.needs_approval, "approved_by": r.approved_by,
        "events": r.events_affected, "profiles": r.profiles_affected, "error": r.error,
        "created_at": r.created_at.to_rfc3339(),
        "completed_at": r.completed_at.map(|t| t.to_rfc3339()),
    })
}

fn request_line(r: &crate::privacy::subjects::SubjectRequest) -> String {
    format!(
        "{}  {:<14} {:<9} {} people, {} events, {} profiles  by {}  ({}){}",
        r.id,
        r.kind.as_str(),
        r.state.as_str(),
        r.subject_count,
        r.events_affected,
        r.profiles_affected,
        r.requested_by,
        r.reason,
        if r.needs_approval && r.approved_by.is_none() {
            "  awaiting approval"
        } else {
            ""
        }
    )
}

async fn subject_command(
    cmd: SubjectRequestCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    use crate::privacy::subjects::{self, ComplianceType, JobState, NewRequest, RequestKind};
    let store = open(settings).await?;
    let clock: crate::clock::SharedClock = Arc::new(SystemClock);
    let find = |project: &ProjectId, id: &str| {
        let (store, project, id) = (store.clone(), project.clone(), id.to_owned());
        async move {
            store
                .subject_request(&project, &id)
                .await?
                .with_context(|| format!("no request {id} in {project}"))
        }
    };
    match cmd {
        SubjectRequestCommand::List { project } => {
            let project = ProjectId::parse(&project)?;
            let all = store.subject_requests(&project).await?;
            let text = all.iter().map(request_line).collect::<Vec<_>>().join("\n");
            print(
                as_json,
                json!(all.iter().map(request_json).collect::<Vec<_>>()),
                &text,
            );
        }
        SubjectRequestCommand::Show { project, id } => {
            let r = find(&ProjectId::parse(&project)?, &id).await?;
            print(as_json, request_json(&r), &request_line(&r));
        }
        SubjectRequestCommand::Create {
            project,
            kind,
            reason,
            distinct_ids,
            compliance_type,
            property,
            drop_properties,
        } => {
            let project = ProjectId::parse(&project)?;
            match store.project(&project).await? {
                Some(p) if p.is_live() => {}
                _ => anyhow::bail!("no project {project}"),
            }
            let new = NewRequest {
                kind: RequestKind::parse(&kind).with_context(|| {
                    format!("{kind:?} is not export, erase, erase_property or anonymize")
                })?,
                compliance_type: ComplianceType::parse(&compliance_type.to_ascii_uppercase())
                    .with_context(|| format!("{compliance_type:?} is not GDPR or CCPA"))?,
                reason,
                distinct_ids: distinct_ids
                    .iter()
                    .map(|d| crate::domain::DistinctId::parse(d))
                    .collect::<Result<_, _>>()?,
                property,
                drop_properties,
            };
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            let p = subjects::prepare(
                &store,
                &log,
                &project,
                "system:cli".into(),
                new,
                &settings.privacy,
                clock.now(),
            )
            .await?;
            log.record_cli_about(
                Action::SubjectsRequest,
                Some(&project),
                0,
                p.details,
                p.subjects,
            )
            .await?;
            store.create_subject_request(&p.request, &p.people).await?;
            print(as_json, request_json(&p.request), &request_line(&p.request));
        }
        SubjectRequestCommand::Cancel { project, id } => {
            let project = ProjectId::parse(&project)?;
            let r = find(&project, &id).await?;
            anyhow::ensure!(
                JobState::CANCELLABLE.contains(&r.state),
                "request {id} is {}: only PENDING or STAGING requests can be cancelled",
                r.state.as_str()
            );
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            log.record_cli(
                Action::SubjectsRequest,
                Some(&project),
                0,
                json!({"change": "cancel", "request_id": id, "state_before": r.state.as_str()}),
            )
            .await?;
            anyhow::ensure!(
                store
                    .move_subject_request(
                        &id,
                        &JobState::CANCELLABLE,
                        JobState::Revoked,
                        clock.now()
                    )
                    .await?,
                "request {id} started meanwhile"
            );
            if r.kind.erases() {
                store.drop_subject_request_ids(&id).await?;
            }
            let r = find(&project, &id).await?;
            print(as_json, request_json(&r), &request_line(&r));
        }
        SubjectRequestCommand::Approve { project, id } => {
            let project = ProjectId::parse(&project)?;
            let r = find(&project, &id).await?;
            anyhow::ensure!(
                r.needs_approval && r.approved_by.is_none() && r.state == JobState::Pending,
                "request {id} awaits no approval"
            );
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            log.record_cli(
                Action::SubjectsRequest,
                Some(&project),
                0,
                json!({"change": "approve", "request_id": id, "requested_by": r.requested_by}),
            )
            .await?;
            store
                .approve_subject_request(&id, "system:cli", clock.now())
                .await?;
            let r = find(&project, &id).await?;
            print(as_json, request_json(&r), &request_line(&r));
        }
        SubjectRequestCommand::Run => {
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            let n = subjects::run_open(&store, &log, &clock, true).await?;
            print(as_json, json!({"ended": n}), &format!("{n} requests ended"));
        }
    }
    Ok(())
}

async fn property_command(
    cmd: PropertyCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    use crate::store::PropertyKind;
    let store = open(settings).await?;
    let clock = SystemClock;
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
            let text = format!(
                "event: {}\nprofile: {}",
                event.join(", "),
                profile.join(", ")
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
    store
        .project(&project)
        .await?
        .with_context(|| format!("no project {project}"))?;
    let before = store
        .sensitive_properties(&project, kind)
        .await?
        .contains(&name);
    let log = AuditLog::start(store.clone(), Arc::new(clock), &settings.audit).await?;
    log.record_cli(
        Action::PropertiesClassify,
        Some(&project),
        0,
        json!({"kind": kind.as_str(), "property": name, "before": {"sensitive": before}, "after": {"sensitive": mark}}),
    )
    .await?;
    if mark {
        store
            .classify(&project, kind, &name, "cli", clock.now())
            .await?;
    } else {
        store.declassify(&project, kind, &name).await?;
    }
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

async fn user_command(cmd: UserCommand, settings: &Settings, as_json: bool) -> anyhow::Result<()> {
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

async fn open(settings: &Settings) -> anyhow::Result<SharedStore> {
    let store = store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

fn print(as_json: bool, value: serde_json::Value, text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = if as_json {
        writeln!(out, "{value}")
    } else {
        writeln!(out, "{text}")
    };
    // A reader that stopped early (`| head -1`) is not an error of ours: the command has
    // done its work, so leave quietly instead of panicking on the closed pipe.
    match written.and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("auditgate: writing the answer failed: {e}");
            std::process::exit(1);
        }
    }
}
