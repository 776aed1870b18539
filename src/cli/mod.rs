//! The `auditgate` command line: serve, migrate, and manage projects and tokens.

mod grants;
mod properties;
mod requests;
mod roles;
mod service_accounts;
mod subjects;
mod users;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

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
use grants::GrantCommand;
use properties::PropertyCommand;
use requests::RequestCommand;
use roles::RoleCommand;
use service_accounts::ServiceAccountCommand;
use subjects::SubjectRequestCommand;
use users::UserCommand;

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
        Command::Grant(cmd) => grants::grant_command(cmd, &settings, cli.json).await?,
        Command::User(cmd) => users::user_command(cmd, &settings, cli.json).await?,
        Command::ServiceAccount(cmd) => {
            service_accounts::service_account_command(cmd, &settings, cli.json).await?
        }
        Command::Role(cmd) => roles::role_command(cmd, &settings, cli.json).await?,
        Command::Request(cmd) => requests::request_command(cmd, &settings, cli.json).await?,
        Command::Property(cmd) => properties::property_command(cmd, &settings, cli.json).await?,
        Command::SubjectRequest(cmd) => subjects::subject_command(cmd, &settings, cli.json).await?,
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

/// What the operator's administration commands act with: the store, the audit log started
/// on it, and the system clock.
pub(crate) struct Operator {
    store: SharedStore,
    log: AuditLog,
    clock: SystemClock,
    access: crate::config::AccessSettings,
}

impl Operator {
    /// Starts the audit log on `store`.
    pub(crate) async fn start(store: &SharedStore, settings: &Settings) -> anyhow::Result<Self> {
        let log = AuditLog::start(store.clone(), Arc::new(SystemClock), &settings.audit).await?;
        Ok(Self {
            store: store.clone(),
            log,
            clock: SystemClock,
            access: settings.access.clone(),
        })
    }

    /// The administration services, as the operator.
    pub(crate) fn admin(&self) -> crate::admin::Admin<'_> {
        crate::admin::Admin {
            store: &self.store,
            audit: &self.log,
            clock: &self.clock,
            access: &self.access,
        }
    }
}

pub(crate) async fn open(settings: &Settings) -> anyhow::Result<SharedStore> {
    let store = store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

pub(crate) fn print(as_json: bool, value: serde_json::Value, text: &str) {
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
