//! The `auditgate` command line: serve, migrate, and manage projects and tokens.

mod doctor;
mod grants;
mod keys;
mod project;
mod properties;
mod requests;
mod roles;
mod service_accounts;
mod subjects;
mod users;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::json;

use crate::audit::AuditLog;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::startup::Application;
use crate::store::{self, SharedStore};
use crate::telemetry;
use crate::verify_cli::{self, VerifyArgs};
use grants::GrantCommand;
use keys::{KeysCommand, LogCommand};
use project::{ProjectCommand, TokenCommand};
use properties::PropertyCommand;
use requests::RequestCommand;
use roles::RoleCommand;
use service_accounts::ServiceAccountCommand;
use subjects::SubjectRequestCommand;
use users::{AdminCommand, UserCommand};

/// An audited gate in front of a product-analytics event store.
#[derive(Debug, Parser)]
#[command(name = "auditgate", version, about)]
pub struct Cli {
    /// A configuration file layered over config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database and key files are (default: data/ in a checkout, else
    /// /var/lib/auditgate).
    #[arg(long, global = true, value_name = "DIR", env = "AUDITGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Go ahead with a command that cannot be undone without asking (needed where there is no
    /// terminal to ask on).
    #[arg(long, short = 'y', global = true)]
    yes: bool,
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
    /// Check the configuration, key files, database, audit log, public_url, TLS and identity
    /// providers; print each finding with a fix; exit 1 if any check fails. Changes nothing.
    Doctor,
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
    /// People: list, disable, re-enable, reset 2-step verification, end sessions.
    #[command(subcommand)]
    User(UserCommand),
    /// Who can do what on which project, through which grant or group, and when they last
    /// signed in (the access review; logged as an audit read).
    AccessReview {
        /// Only access on this project (grants on every project included).
        #[arg(long)]
        project: Option<String>,
        /// CSV with a header line, for a spreadsheet.
        #[arg(long)]
        csv: bool,
    },
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
    /// Print a shell completion script, e.g. `auditgate completions bash >
    /// /etc/bash_completion.d/auditgate`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Verify an exported bundle offline (needs no configuration, network or database).
    Verify {
        /// The bundle and what it is checked against.
        #[command(flatten)]
        source: verify_cli::Bundle,
        /// Once it verifies, print the entries decoded (a table, or JSON lines with --json).
        #[arg(long)]
        show: bool,
        /// Which entries --show prints.
        #[command(flatten)]
        select: verify_cli::Selection,
    },
}

/// Parses the command line and runs the command.
pub async fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let offline = match &cli.command {
        Command::Verify {
            source,
            show,
            select,
        } => Some((source, *show, select)),
        Command::Log(LogCommand::Show { source, select }) => Some((source, true, select)),
        _ => None,
    };
    if let Some((source, show, select)) = offline {
        let args = VerifyArgs {
            source: source.clone(),
            json: cli.json,
            show,
            select: select.clone(),
        };
        return Ok(std::process::ExitCode::from(verify_cli::run(&args) as u8));
    }
    if let Command::Completions { shell } = &cli.command {
        let mut command = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut command, "auditgate", &mut script);
        print(
            false,
            serde_json::Value::Null,
            String::from_utf8_lossy(&script).trim_end(),
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if let Command::Doctor = &cli.command {
        // A configuration that does not load is the first finding, not an early exit.
        let loaded = Settings::load(cli.config.as_deref(), cli.data_dir.as_deref());
        let healthy = doctor::run(loaded, cli.json).await;
        return Ok(std::process::ExitCode::from(if healthy { 0 } else { 1 }));
    }
    let _ = ASSUME_YES.set(cli.yes);
    let mut settings = Settings::load(cli.config.as_deref(), cli.data_dir.as_deref())?;
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
                data_dir = %settings.data.as_ref().map(|d| d.describe()).unwrap_or_default(),
                "auditgate listening"
            );
            let listening = std::net::SocketAddr::new(
                settings
                    .server
                    .bind
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.ip())
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                app.port(),
            );
            if let Some(warning) =
                crate::config::public_url_mismatch(settings.public_url(), listening)
            {
                tracing::warn!("{warning}");
            }
            app.run_until_stopped().await?;
            tracing::info!("drained and stopped");
        }
        Command::Migrate => {
            create(&settings).await?;
            print(cli.json, json!({"migrated": true}), "migrations applied");
        }
        Command::Project(cmd) => project::project_command(cmd, &settings, cli.json).await?,
        Command::Token(cmd) => project::token_command(cmd, &settings, cli.json).await?,
        Command::Admin(cmd) => users::admin_command(cmd, &settings, cli.json).await?,
        Command::Keys(cmd) => keys::keys_command(cmd, &settings, cli.json).await?,
        Command::Log(cmd) => keys::log_command(cmd, &settings, cli.json).await?,
        Command::Grant(cmd) => grants::grant_command(cmd, &settings, cli.json).await?,
        Command::User(cmd) => users::user_command(cmd, &settings, cli.json).await?,
        Command::AccessReview { project, csv } => {
            grants::access_review(project.as_deref(), csv, &settings, cli.json).await?
        }
        Command::ServiceAccount(cmd) => {
            service_accounts::service_account_command(cmd, &settings, cli.json).await?
        }
        Command::Role(cmd) => roles::role_command(cmd, &settings, cli.json).await?,
        Command::Request(cmd) => requests::request_command(cmd, &settings, cli.json).await?,
        Command::Property(cmd) => properties::property_command(cmd, &settings, cli.json).await?,
        Command::SubjectRequest(cmd) => subjects::subject_command(cmd, &settings, cli.json).await?,
        Command::Verify { .. } | Command::Doctor | Command::Completions { .. } => {
            unreachable!("handled before configuration is loaded")
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `--yes`: set once, before any command runs.
static ASSUME_YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Asks before `action`, which cannot be undone: `--yes` goes ahead, a terminal is asked, and
/// anything else stops with nothing changed.
pub(crate) fn confirm(action: &str) -> anyhow::Result<()> {
    ask(&format!("{action} cannot be undone"))
}

/// Asks before doing what `warning` says: `--yes` goes ahead, a terminal is asked, and
/// anything else stops with nothing changed.
pub(crate) fn ask(warning: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if ASSUME_YES.get().copied().unwrap_or(false) {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{warning}: add --yes to go ahead (there is no terminal to ask on)");
    }
    eprint!("{warning}. Go ahead? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => anyhow::bail!("stopped: nothing was changed"),
    }
}

/// What the operator's administration commands act with: the store, the audit log started
/// on it, and the system clock.
pub(crate) struct Operator {
    store: SharedStore,
    log: AuditLog,
    clock: SystemClock,
    access: crate::config::AccessSettings,
    project_grace_days: i64,
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
            project_grace_days: settings.retention.project_grace_days,
        })
    }

    /// The administration services, as the operator.
    pub(crate) fn admin(&self) -> crate::admin::Admin<'_> {
        crate::admin::Admin {
            store: &self.store,
            audit: &self.log,
            clock: &self.clock,
            access: &self.access,
            project_grace_days: self.project_grace_days,
        }
    }
}

/// The database, migrated; a SQLite file that is not there yet is an error naming where it
/// was looked for (only `serve`, `migrate` and `admin bootstrap` create one), so a command run
/// from the wrong directory cannot answer from a new, empty database.
pub(crate) async fn open(settings: &Settings) -> anyhow::Result<SharedStore> {
    if let Some(file) = settings.sqlite_file()
        && !file.exists()
    {
        let dir = settings
            .data
            .as_ref()
            .map(|d| format!("\nThe data directory is {}.", d.describe()))
            .unwrap_or_default();
        anyhow::bail!(
            "no database at {}.{dir}\nPoint --data-dir (or AUDITGATE_DATA_DIR) at the directory \
             holding auditgate.db, or create one there with `auditgate migrate`.",
            file.display()
        );
    }
    create(settings).await
}

/// The database, created and migrated if need be.
pub(crate) async fn create(settings: &Settings) -> anyhow::Result<SharedStore> {
    let store = store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

/// Rows under a header, columns aligned, or `empty` (a sentence) when there are none.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, empty: &str) -> String {
    if rows.is_empty() {
        return empty.to_owned();
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    for row in rows {
        t.add_row(row);
    }
    t.lines()
        .map(|l| l.trim().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn print(as_json: bool, value: serde_json::Value, text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = if as_json {
        writeln!(out, "{value}")
    } else if text.is_empty() {
        // An empty list says so, rather than printing a blank line.
        writeln!(out, "Nothing to list.")
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
