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

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or did not match the expected shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value has the right type but is not acceptable.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key, as in the TOML file.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Settings {
    /// Loads the layered configuration from the working directory and the environment.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
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
        let settings: Settings = builder.build()?.try_deserialize()?;
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
        if self.ingest.max_future_secs < 0 {
            return invalid("ingest.max_future_secs", "must not be negative".into());
        }
        Ok(())
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
    }
}
