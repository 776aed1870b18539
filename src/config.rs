//! Configuration: `config/default.toml`, then `config/<environment>.toml`, then an explicit
//! file, then `AUDITGATE__SECTION__KEY` variables; validated once, naming any bad key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything the service can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where a relative SQLite path and the key files live (see [`DataDir`]); settled by
    /// [`Settings::load`].
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The data directory [`Settings::load`] chose, and why.
    #[serde(skip)]
    pub data: Option<DataDir>,
    /// The HTTP listener.
    pub server: ServerSettings,
    /// Logging.
    pub log: LogSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// Ingestion limits.
    pub ingest: IngestSettings,
    /// The audit log.
    pub audit: AuditSettings,
    /// Sign-in: providers, sessions, 2-step verification, tokens.
    pub auth: AuthSettings,
    /// Roles granted through identity-provider groups.
    pub access: AccessSettings,
    /// Deleting events past each project's retention window.
    pub retention: RetentionSettings,
    /// Data-subject rights.
    pub privacy: PrivacySettings,
}

/// The retention sweeper.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Seconds between sweeps (the first runs at start-up); 0 turns the sweeper off.
    pub sweep_interval_secs: u64,
    /// Events deleted per statement, so a sweep never holds the database for long.
    pub batch: u32,
    /// Days a deleted project can still be restored before the sweeper purges it.
    pub project_grace_days: i64,
}

/// Data-subject requests, opt-outs and consent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// Whether this process runs subject-request jobs (several processes may; each job is
    /// claimed by one state change).
    pub run_jobs: bool,
    /// Seconds between looks for jobs left over (new ones start at once).
    pub job_poll_secs: u64,
    /// Erasures naming more distinct_ids than this need a second person's approval.
    pub approval_above_subjects: u64,
    /// Erasures touching more events than this need a second person's approval.
    pub approval_above_events: u64,
    /// An event or profile property that, set to `true`, opts its distinct_id out.
    pub opt_out_property: String,
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on; port 0 picks a free one.
    pub bind: String,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Largest accepted request body, in bytes, after decompression.
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive (else 408).
    pub body_read_secs: u64,
    /// Bodies of 1 MiB or more read and handled at once (others wait, then 503).
    pub max_large_bodies: usize,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// Per-client-address limits on the public and sign-in routes.
    pub rate_limit: RateLimitSettings,
    /// A PEM certificate chain: with `tls_key_file`, the service speaks HTTPS itself, for
    /// deployments without a proxy in front.
    #[serde(default)]
    pub tls_cert_file: Option<String>,
    /// The PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<String>,
}

/// Requests each client address may make, refused with 429 and Retry-After beyond.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Public routes (proofs, checkpoint, readiness, `/track`, `/engage`): per second.
    pub public_per_second: u32,
    /// Public routes: how many may come at once.
    pub public_burst: u32,
    /// Sign-in routes (password, callback, 2-step codes, logout tokens): per minute.
    pub signin_per_minute: u32,
    /// Sign-in routes: how many may come at once.
    pub signin_burst: u32,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Text or JSON.
    pub format: LogFormat,
    /// The default tracing filter.
    pub level: String,
}

/// The database connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite:<path>` or `postgres://...`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// Milliseconds to wait for a connection before failing.
    pub acquire_timeout_ms: u64,
    /// Milliseconds an event or profile read may run before it is stopped (503).
    pub read_timeout_ms: u64,
    /// Milliseconds a SQLite write waits for another writer's lock: longer than the longest
    /// commit, so concurrent writers wait their turn instead of failing.
    pub busy_timeout_ms: u64,
    /// Connections kept for the audit appender alone, so reads can never starve it.
    pub audit_connections: u32,
    /// SQLite: bytes the write-ahead log is truncated to after each checkpoint.
    pub wal_limit_bytes: u64,
    /// SQLite: seconds between the service's own full WAL checkpoints.
    pub wal_checkpoint_secs: u64,
    /// SQLite: page cache of each connection that writes, in MiB.
    pub sqlite_cache_mib: u64,
    /// About how many events share an arrival bucket of the events' indexes (at least 1).
    pub events_per_bucket: u64,
    /// Milliseconds a token, grants, project or salt read once is used again without reading
    /// it (0: never); changes made by this process apply at once, by others after this long.
    pub cache_ttl_ms: u64,
    /// Directories the database's backups copy (relative: inside the data directory);
    /// `auditgate doctor` fails where a key file lies inside one.
    #[serde(default)]
    pub backup_dirs: Vec<PathBuf>,
}

/// Ingestion limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Records per request.
    pub max_batch: usize,
    /// Seconds into the future an event's time may be.
    pub max_future_secs: i64,
}

/// The audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// The origin line of checkpoints and the signing key's name.
    pub origin: String,
    /// Where the signing key lives.
    pub signing_key_file: PathBuf,
    /// Where the pseudonym secret lives.
    pub pseudonym_key_file: PathBuf,
    /// How long a request waits for its entry to be committed.
    pub write_timeout_ms: u64,
    /// Most entries per commit group.
    pub max_group: usize,
}

/// Who must pass 2-step verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorPolicy {
    /// Every person, whatever their roles.
    Everyone,
    /// Only people whose roles can read event or profile data.
    DataReaders,
}

/// Sign-in, sessions and tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The address browsers reach the service at; redirect URIs and cookie security follow it.
    pub public_url: String,
    /// Plain-HTTP cookies for a `public_url` that is not on loopback. Never in production.
    pub allow_insecure_http: bool,
    /// Who must pass 2-step verification.
    pub second_factor: SecondFactorPolicy,
    /// Minutes without a request after which a session ends.
    pub session_idle_minutes: i64,
    /// Hours after which a session ends whatever its use.
    pub session_max_hours: i64,
    /// Minutes a 2-step verification counts for sensitive actions.
    pub step_up_minutes: i64,
    /// Minutes a browser has to come back from the provider.
    pub pre_login_minutes: i64,
    /// Minutes between checks of an SSO session's groups with its provider.
    #[serde(default = "five")]
    pub group_refresh_minutes: i64,
    /// Longest life of a personal token.
    pub personal_token_max_days: i64,
    /// Consecutive wrong codes that lock 2-step verification.
    pub totp_max_failures: u32,
    /// Minutes 2-step verification stays locked.
    pub totp_lockout_minutes: i64,
    /// Consecutive wrong break-glass passwords that lock the account.
    pub password_max_failures: u32,
    /// Minutes the break-glass account stays locked.
    pub password_lockout_minutes: i64,
    /// The key sealing TOTP secrets and sign-in cookies (generated on first start, mode 0600).
    pub secret_key_file: PathBuf,
    /// OpenID Connect identity providers.
    #[serde(default)]
    pub providers: Vec<ProviderSettings>,
}

/// One OpenID Connect identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// A short name used in URLs (`/auth/login?provider=`).
    pub name: String,
    /// What the sign-in page calls it.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The issuer URL; discovery is read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// This service's client id at the provider.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes beyond `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim carrying the email address.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// The claim carrying group names.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// If set, only these email domains may sign in.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Accept the provider's own multi-factor authentication when its `amr` says `mfa`.
    #[serde(default)]
    pub accept_provider_mfa: bool,
}

fn five() -> i64 {
    5
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

fn default_email_claim() -> String {
    "email".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// Roles that identity-provider groups carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSettings {
    /// Group-to-role mappings.
    #[serde(default)]
    pub group_roles: Vec<GroupRoleSettings>,
    /// Grants of owner, or of roles with `roles:assign` or `keys:rotate`, wait for a second
    /// administrator's approval.
    #[serde(default = "yes")]
    pub powerful_grants_need_approval: bool,
    /// Longest just-in-time access, in days.
    #[serde(default = "fourteen")]
    pub request_max_days: i64,
    /// Minutes after which an unanswered access request lapses.
    #[serde(default = "sixty")]
    pub request_lapse_minutes: i64,
    /// Approvals an access request for a role needs (1 for roles not listed).
    #[serde(default)]
    pub request_approvals: std::collections::BTreeMap<String, u32>,
    /// Every new grant is due for review this many days after its last review.
    #[serde(default = "half_year")]
    pub review_every_days: i64,
    /// Grants overdue for review stop working until reviewed.
    #[serde(default)]
    pub lapse_overdue_grants: bool,
}

fn half_year() -> i64 {
    182
}

fn fourteen() -> i64 {
    14
}

fn sixty() -> i64 {
    60
}

fn yes() -> bool {
    true
}

/// Members of `group` hold `role` on `project` (`*` for every project).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRoleSettings {
    /// The group name as the provider sends it.
    pub group: String,
    /// A built-in role name.
    pub role: String,
    /// A project id, or `*`.
    pub project: String,
    /// When this mapping must next be reviewed (RFC 3339); the access review flags it after,
    /// and with `lapse_overdue_grants` it stops working.
    #[serde(default)]
    pub review_by: Option<String>,
}

/// The scheme, host and port of a URL (what browsers send as `Origin`).
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Why browsers will not sign in when `public_url` names this machine on another port than
/// the one listened on (`--bind` elsewhere, say): sign-in redirects to `public_url`, and a
/// form from any other origin is refused as cross-site. `None` when nothing says so (a
/// `public_url` on another host is a proxy's business).
pub fn public_url_mismatch(public_url: &str, listening: SocketAddr) -> Option<String> {
    let url = url::Url::parse(public_url).ok()?;
    let host = url.host_str()?;
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    let this_machine = loopback || host == listening.ip().to_string();
    let port = url.port_or_known_default()?;
    (this_machine && port != listening.port()).then(|| {
        format!(
            "auth.public_url is {public_url} but the service listens on port {}: sign-in \
             redirects to {public_url}, and a browser at any other address (localhost and \
             127.0.0.1 are different ones) is refused as cross-site at 2-step verification. \
             Set auth.public_url (AUDITGATE__AUTH__PUBLIC_URL) to the address browsers use.",
            listening.port()
        )
    })
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or did not match the expected shape.
    #[error("configuration: {0}")]
    Load(String),
    /// A value has the right type but is not acceptable.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key, as in the TOML file.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The values an enumerated key accepts, for the message when it gets another.
fn accepted(type_name: &str) -> Option<&'static str> {
    match type_name {
        "LogFormat" => Some("text, json"),
        "SecondFactorPolicy" => Some("everyone, data_readers"),
        _ => None,
    }
}

impl From<config::ConfigError> for ConfigError {
    /// Says what a person can fix, in the configuration's words rather than Rust's; the
    /// message is the whole error (no source to repeat it).
    fn from(e: config::ConfigError) -> Self {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("enum ")
            && let Some((type_name, rest)) = rest.split_once(" does not have variant constructor ")
            && let Some((value, key)) = rest.split_once(" for key ")
            && let Some(values) = accepted(type_name)
        {
            return Self::Load(format!("{key} is {value:?}; it must be one of: {values}"));
        }
        Self::Load(text)
    }
}

/// Why the data directory is where it is, for messages that say where they looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirSource {
    /// `--data-dir` or `AUDITGATE_DATA_DIR`.
    Flag,
    /// `data_dir` in the configuration.
    Config,
    /// `data/` beside `config/`: run from a checkout.
    Checkout,
    /// systemd's `StateDirectory=` (`$STATE_DIRECTORY`).
    Systemd,
    /// The installed default, `/var/lib/auditgate`.
    Installed,
}

/// The directory holding the SQLite file and the key files when their paths are relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The directory, absolute.
    pub path: PathBuf,
    /// How it was chosen.
    pub source: DataDirSource,
}

/// Where an installed service keeps its data (and a systemd unit's `StateDirectory`).
pub const INSTALLED_DATA_DIR: &str = "/var/lib/auditgate";

impl DataDir {
    /// The first of: the flag, the configuration, `data/` beside a checkout's `config/`,
    /// systemd's state directory, `/var/lib/auditgate`.
    pub fn choose(
        flag: Option<&Path>,
        configured: Option<&Path>,
        checkout: Option<&Path>,
        state_directory: Option<&str>,
    ) -> Self {
        let (path, source) = if let Some(p) = flag {
            (p.to_owned(), DataDirSource::Flag)
        } else if let Some(p) = configured {
            (p.to_owned(), DataDirSource::Config)
        } else if let Some(root) = checkout {
            (root.join("data"), DataDirSource::Checkout)
        } else if let Some(dirs) = state_directory.filter(|d| !d.is_empty()) {
            // systemd lists one path per StateDirectory=, colon-separated; ours is the first.
            let first = dirs.split(':').next().unwrap_or(dirs);
            (PathBuf::from(first), DataDirSource::Systemd)
        } else {
            (PathBuf::from(INSTALLED_DATA_DIR), DataDirSource::Installed)
        };
        let path = std::path::absolute(&path).unwrap_or(path);
        Self { path, source }
    }

    /// The directory and why, as a message names it.
    pub fn describe(&self) -> String {
        let why = match self.source {
            DataDirSource::Flag => "from --data-dir or AUDITGATE_DATA_DIR",
            DataDirSource::Config => "from data_dir in the configuration",
            DataDirSource::Checkout => "data/ beside config/, as in a checkout",
            DataDirSource::Systemd => "systemd's StateDirectory",
            DataDirSource::Installed => {
                "the installed default; no config/ here, so this is not a checkout"
            }
        };
        format!("{} ({why})", self.path.display())
    }

    /// `path` if absolute, else inside the data directory.
    fn place(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.path.join(path)
        }
    }

    /// A `sqlite:` URL with a relative file moved into the data directory; anything else as is.
    fn place_url(&self, url: &str) -> String {
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return url.to_owned();
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (file, query) = match rest.split_once('?') {
            Some((f, q)) => (f, Some(q)),
            None => (rest, None),
        };
        if file.is_empty() || file == ":memory:" || Path::new(file).is_absolute() {
            return url.to_owned();
        }
        let placed = self.place(Path::new(file));
        match query {
            Some(q) => format!("sqlite:{}?{q}", placed.display()),
            None => format!("sqlite:{}", placed.display()),
        }
    }
}

impl Settings {
    /// Moves every relative data path (the SQLite file, the key files) into `dir`.
    pub fn place_data(&mut self, dir: DataDir) {
        self.database.url = dir.place_url(&self.database.url);
        self.audit.signing_key_file = dir.place(&self.audit.signing_key_file);
        self.audit.pseudonym_key_file = dir.place(&self.audit.pseudonym_key_file);
        self.auth.secret_key_file = dir.place(&self.auth.secret_key_file);
        self.database.backup_dirs = self
            .database
            .backup_dirs
            .iter()
            .map(|d| dir.place(d))
            .collect();
        self.data_dir = Some(dir.path.clone());
        self.data = Some(dir);
    }

    /// The SQLite file the database URL names, if it names one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let rest = self.database.url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let file = rest.split('?').next().unwrap_or(rest);
        (!file.is_empty() && file != ":memory:").then(|| PathBuf::from(file))
    }

    /// Loads the layered configuration from the working directory and the environment, and
    /// places relative data paths in the data directory (`data_dir` overrides the choice).
    pub fn load(
        explicit_file: Option<&Path>,
        data_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let environment =
            std::env::var("AUDITGATE_ENVIRONMENT").unwrap_or_else(|_| "local".to_owned());
        let base = Path::new("config");
        let mut builder = config::Config::builder();
        builder = if base.join("default.toml").exists() {
            builder.add_source(config::File::from(base.join("default.toml")))
        } else {
            builder.add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        };
        builder = builder.add_source(
            config::File::from(base.join(format!("{environment}.toml"))).required(false),
        );
        if let Some(file) = explicit_file {
            builder = builder.add_source(config::File::from(PathBuf::from(file)).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("AUDITGATE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        let checkout = base
            .join("default.toml")
            .exists()
            .then(|| std::env::current_dir().ok())
            .flatten();
        let dir = DataDir::choose(
            data_dir,
            settings.data_dir.as_deref(),
            checkout.as_deref(),
            std::env::var("STATE_DIRECTORY").ok().as_deref(),
        );
        settings.place_data(dir);
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults alone, for tests and tools that build settings in code.
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the compiled-in defaults are valid")
    }

    /// Checks values that have the right type but may still be unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return invalid(
                "server.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080",
                    self.server.bind
                ),
            );
        }
        if let Err(e) = crate::domain::TrustedProxies::parse(&self.server.trusted_proxies) {
            return invalid("server.trusted_proxies", e.0);
        }
        let r = &self.server.rate_limit;
        if [
            r.public_per_second,
            r.public_burst,
            r.signin_per_minute,
            r.signin_burst,
        ]
        .contains(&0)
        {
            return invalid("server.rate_limit", "every limit must be at least 1".into());
        }
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            return invalid(
                "server.tls_cert_file",
                "set both tls_cert_file and tls_key_file, or neither".into(),
            );
        }
        if self.server.body_read_secs == 0 || self.server.max_large_bodies == 0 {
            return invalid(
                "server.body_read_secs",
                "body_read_secs and max_large_bodies must be at least 1".into(),
            );
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024".into());
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return invalid(
                "database.url",
                format!("{url:?} must start with sqlite: or postgres://"),
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1".into());
        }
        if self.database.audit_connections == 0 {
            return invalid("database.audit_connections", "must be at least 1".into());
        }
        if self.database.read_timeout_ms == 0 {
            return invalid("database.read_timeout_ms", "must be at least 1".into());
        }
        if !(1..=i64::MAX as u64).contains(&self.database.events_per_bucket) {
            return invalid(
                "database.events_per_bucket",
                "must be from 1 to 2^63 - 1".into(),
            );
        }
        if !(1..=2000).contains(&self.ingest.max_batch) {
            return invalid("ingest.max_batch", "must be between 1 and 2000".into());
        }
        let origin = &self.audit.origin;
        if origin.is_empty() || origin.chars().any(|c| c.is_whitespace() || c == '+') {
            return invalid(
                "audit.origin",
                format!("{origin:?} must be non-empty, without spaces or '+'"),
            );
        }
        if self.audit.write_timeout_ms == 0 {
            return invalid("audit.write_timeout_ms", "must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.audit.max_group) {
            return invalid("audit.max_group", "must be between 1 and 10000".into());
        }
        let auth = &self.auth;
        let public = auth.public_url.trim_end_matches('/');
        let Some(rest) = public
            .strip_prefix("https://")
            .or_else(|| public.strip_prefix("http://"))
        else {
            return invalid(
                "auth.public_url",
                format!("{public:?} must start with http:// or https://"),
            );
        };
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let loopback = matches!(host, "127.0.0.1" | "localhost") || rest.starts_with("[::1]");
        if public.starts_with("http://") && !loopback && !auth.allow_insecure_http {
            return invalid(
                "auth.public_url",
                format!(
                    "{public:?} is plain HTTP on a host other than loopback: cookies would travel in clear \
                     (set auth.allow_insecure_http = true only for development)"
                ),
            );
        }
        for (key, value) in [
            ("auth.session_idle_minutes", auth.session_idle_minutes),
            ("auth.session_max_hours", auth.session_max_hours),
            ("auth.step_up_minutes", auth.step_up_minutes),
            ("auth.pre_login_minutes", auth.pre_login_minutes),
            ("auth.totp_lockout_minutes", auth.totp_lockout_minutes),
            (
                "auth.password_lockout_minutes",
                auth.password_lockout_minutes,
            ),
        ] {
            if value <= 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if !(1..=90).contains(&auth.personal_token_max_days) {
            return invalid(
                "auth.personal_token_max_days",
                "must be between 1 and 90".into(),
            );
        }
        if !(1..=100).contains(&auth.totp_max_failures) {
            // NIST SP 800-63B allows at most 100 consecutive failures.
            return invalid("auth.totp_max_failures", "must be between 1 and 100".into());
        }
        if !(1..=100).contains(&auth.password_max_failures) {
            return invalid(
                "auth.password_max_failures",
                "must be between 1 and 100".into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &auth.providers {
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return invalid(
                    "auth.providers.name",
                    format!("{:?} must be letters, digits, '-' or '_'", p.name),
                );
            }
            if !names.insert(p.name.clone()) {
                return invalid("auth.providers.name", format!("{:?} is used twice", p.name));
            }
            if !(p.issuer.starts_with("https://")
                || p.issuer.starts_with("http://127.0.0.1")
                || p.issuer.starts_with("http://localhost"))
            {
                return invalid(
                    "auth.providers.issuer",
                    format!(
                        "{:?} must be an https:// URL (plain HTTP only on loopback)",
                        p.issuer
                    ),
                );
            }
            if p.client_secret_env.is_some() == p.client_secret_file.is_some() {
                return invalid(
                    "auth.providers.client_secret_env",
                    format!(
                        "provider {:?} needs exactly one of client_secret_env and client_secret_file",
                        p.name
                    ),
                );
            }
        }
        for m in &self.access.group_roles {
            if crate::domain::Role::builtin(&m.role).is_none() {
                return invalid(
                    "access.group_roles.role",
                    format!("{:?} is not a built-in role", m.role),
                );
            }
            if let Some(by) = &m.review_by
                && crate::domain::Timestamp::parse(by).is_err()
            {
                return invalid(
                    "access.group_roles.review_by",
                    format!("{by:?} is not an RFC 3339 time"),
                );
            }
            if m.project != "*" && crate::domain::ProjectId::parse(&m.project).is_err() {
                return invalid(
                    "access.group_roles.project",
                    format!("{:?} is not a project id or *", m.project),
                );
            }
        }
        if !(1..=100_000).contains(&self.retention.batch) {
            return invalid("retention.batch", "must be between 1 and 100000".into());
        }
        if self.retention.project_grace_days < 0 {
            return invalid(
                "retention.project_grace_days",
                "must not be negative".into(),
            );
        }
        if self.privacy.job_poll_secs == 0 {
            return invalid("privacy.job_poll_secs", "must be at least 1".into());
        }
        if self.privacy.opt_out_property.is_empty() {
            return invalid("privacy.opt_out_property", "must not be empty".into());
        }
        if self.ingest.max_future_secs < 0 {
            return invalid("ingest.max_future_secs", "must not be negative".into());
        }
        Ok(())
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.auth.public_url.trim_end_matches('/')
    }

    /// Whether browsers reach the service over TLS (cookies then get `Secure` and `__Host-`):
    /// its public URL says so, or it speaks HTTPS itself.
    pub fn is_tls(&self) -> bool {
        self.auth.public_url.starts_with("https://") || self.server.tls_cert_file.is_some()
    }

    /// The listen address (validated in `validate`).
    pub fn bind_addr(&self) -> SocketAddr {
        self.server.bind.parse().expect("validated at load")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_on_this_machine_but_another_port_is_named() {
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(public_url_mismatch("http://127.0.0.1:8080", at("127.0.0.1:8080")).is_none());
        let said = public_url_mismatch("http://127.0.0.1:8080", at("127.0.0.1:9000")).unwrap();
        assert!(
            said.contains("port 9000") && said.contains("auth.public_url"),
            "{said}"
        );
        assert!(public_url_mismatch("http://localhost:8080/", at("0.0.0.0:9000")).is_some());
        // Behind a proxy the public address is elsewhere: nothing to say.
        assert!(public_url_mismatch("https://gate.example", at("127.0.0.1:8080")).is_none());
        assert!(public_url_mismatch("not a url", at("127.0.0.1:8080")).is_none());
    }

    #[test]
    fn the_data_directory_is_chosen_in_order_and_holds_every_relative_path() {
        let (flag, conf, root) = (Path::new("/f"), Path::new("/c"), Path::new("/repo"));
        let pick = |f, c, r, s| DataDir::choose(f, c, r, s);
        assert_eq!(
            pick(Some(flag), Some(conf), Some(root), Some("/s")).path,
            flag
        );
        assert_eq!(
            pick(None, Some(conf), Some(root), Some("/s")).source,
            DataDirSource::Config
        );
        assert_eq!(
            pick(None, None, Some(root), Some("/s")).path,
            Path::new("/repo/data")
        );
        let systemd = pick(None, None, None, Some("/var/lib/auditgate:/var/lib/other"));
        assert_eq!(systemd.path, Path::new("/var/lib/auditgate"));
        assert_eq!(systemd.source, DataDirSource::Systemd);
        let installed = pick(None, None, None, Some(""));
        assert_eq!(installed.path, Path::new(INSTALLED_DATA_DIR));
        assert!(installed.describe().contains("not a checkout"));
        // A relative flag is taken from the working directory, once.
        assert!(
            pick(Some(Path::new("rel")), None, None, None)
                .path
                .is_absolute()
        );

        let mut s = Settings::defaults();
        s.place_data(pick(Some(flag), None, None, None));
        assert_eq!(s.database.url, "sqlite:/f/auditgate.db");
        assert_eq!(s.sqlite_file(), Some(PathBuf::from("/f/auditgate.db")));
        assert_eq!(s.audit.signing_key_file, Path::new("/f/audit-signing.key"));
        assert_eq!(s.audit.pseudonym_key_file, Path::new("/f/pseudonym.key"));
        assert_eq!(s.auth.secret_key_file, Path::new("/f/secrets.key"));
        let dir = pick(Some(flag), None, None, None);
        for (url, placed) in [
            ("sqlite:/abs/x.db", "sqlite:/abs/x.db"),
            ("sqlite://rel/x.db?mode=rwc", "sqlite:/f/rel/x.db?mode=rwc"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://db/auditgate", "postgres://db/auditgate"),
        ] {
            assert_eq!(dir.place_url(url), placed);
        }
    }

    #[test]
    fn origins_drop_the_path() {
        assert_eq!(
            origin_of("https://a.example:8443/x/y"),
            "https://a.example:8443"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::defaults();
        s.validate().unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert!(s.database.url.starts_with("sqlite:"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut s = Settings::defaults();
        s.database.url = "mysql://x".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
        let mut s = Settings::defaults();
        s.server.bind = "nowhere".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("server.bind")
        );
        for n in [0, u64::MAX] {
            let mut s = Settings::defaults();
            s.database.events_per_bucket = n;
            assert!(
                s.validate()
                    .unwrap_err()
                    .to_string()
                    .contains("database.events_per_bucket")
            );
        }
    }
}
