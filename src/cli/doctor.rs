//! `auditgate doctor`: what would stop the service, or sign-in, from working, each with a fix.
//! Reads only: it creates no database, no key and no entry.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::audit;
use crate::config::{ConfigError, Settings};
use crate::store;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works, but deserves a look.
    Warn,
    /// Will not work as configured.
    Fail,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found.
    pub found: String,
    /// What to do about it, when something is to be done.
    pub fix: Option<String>,
}

fn check(name: &str, verdict: Verdict, found: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        name: name.to_owned(),
        verdict,
        found: found.into(),
        fix,
    }
}

/// Runs every check on `loaded` (the configuration, or why it did not load), prints them, and
/// answers whether none failed.
pub async fn run(loaded: Result<Settings, ConfigError>, as_json: bool) -> bool {
    let checks = match loaded {
        Err(e) => vec![check(
            "configuration",
            Verdict::Fail,
            e.to_string(),
            Some("correct the key named (config/default.toml documents each)".into()),
        )],
        Ok(settings) => checks(&settings).await,
    };
    print(&checks, as_json);
    checks.iter().all(|c| c.verdict != Verdict::Fail)
}

/// Every check, in the order a reader fixes them.
pub async fn checks(settings: &Settings) -> Vec<Check> {
    let mut out = vec![check("configuration", Verdict::Ok, "loaded", None)];
    out.push(data_dir(settings));
    let (database, store) = database(settings).await;
    out.push(database);
    let mut log_size = None;
    if let Some(store) = &store {
        log_size = store.audit_head().await.ok().map(|h| h.size());
    }
    // A missing key is made at first start; but where there is a log, the key that made it is
    // the only one that can extend it (signing) or find its people (pseudonyms).
    let in_use = log_size.is_some_and(|n| n > 0);
    for (name, path, needed) in [
        ("signing key", &settings.audit.signing_key_file, in_use),
        ("pseudonym key", &settings.audit.pseudonym_key_file, in_use),
        ("secrets key", &settings.auth.secret_key_file, false),
    ] {
        out.push(key_file(name, path, needed));
    }
    out.push(key_backups(settings));
    if let Some(store) = &store {
        out.push(audit_log(settings, store).await);
        out.extend(statistics(store).await);
    }
    out.push(public_url(settings));
    out.push(tls(settings));
    out.extend(providers(settings).await);
    out
}

fn data_dir(settings: &Settings) -> Check {
    let Some(dir) = &settings.data else {
        return check("data directory", Verdict::Warn, "not settled", None);
    };
    if dir.path.is_dir() {
        check("data directory", Verdict::Ok, dir.describe(), None)
    } else {
        check(
            "data directory",
            Verdict::Fail,
            format!("{} does not exist", dir.describe()),
            Some(
                "point --data-dir (or AUDITGATE_DATA_DIR) at the service's data, or run \
                 `auditgate migrate` to start a new one there"
                    .into(),
            ),
        )
    }
}

fn key_file(name: &str, path: &Path, needed: bool) -> Check {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && needed => {
            return check(
                name,
                Verdict::Fail,
                format!("{shown} does not exist, but the database holds a log made with one"),
                Some(
                    "restore the key file from where it is kept apart from the database's \
                     backups, or point --data-dir at the service's data"
                        .into(),
                ),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check(
                name,
                Verdict::Warn,
                format!("{shown} does not exist yet"),
                Some(
                    "`auditgate serve` makes it at first start; if the service has run before, \
                     this is not its data directory"
                        .into(),
                ),
            );
        }
        Err(e) => return check(name, Verdict::Fail, format!("{shown}: {e}"), None),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return check(
                name,
                Verdict::Fail,
                format!("{shown} is readable by others (mode {mode:o})"),
                Some(format!("chmod 600 {shown}")),
            );
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    check(name, Verdict::Ok, format!("{shown}, mode 600"), None)
}

/// `path` as it will be reached: through any links, or as an absolute path where it does not
/// exist yet.
fn resolved(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned())
}

/// Whoever holds a backup that carries the signing key can extend the log in the service's
/// name, so the keys must not ride along with the database's backups.
fn key_backups(settings: &Settings) -> Check {
    const NAME: &str = "key backups";
    let dirs = &settings.database.backup_dirs;
    if dirs.is_empty() {
        return check(
            NAME,
            Verdict::Ok,
            "not checked: no backup directories configured (database.backup_dirs)",
            None,
        );
    }
    let keys = [
        &settings.audit.signing_key_file,
        &settings.audit.pseudonym_key_file,
        &settings.auth.secret_key_file,
    ];
    let inside: Vec<String> = keys
        .iter()
        .filter_map(|key| {
            let at = resolved(key);
            let dir = dirs.iter().find(|d| at.starts_with(resolved(d)))?;
            Some(format!("{} is inside {}", key.display(), dir.display()))
        })
        .collect();
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    if inside.is_empty() {
        check(
            NAME,
            Verdict::Ok,
            format!("no key file inside {}", shown.join(", ")),
            None,
        )
    } else {
        check(
            NAME,
            Verdict::Fail,
            inside.join("; "),
            Some(
                "move the key files out of the backed-up directories (audit.signing_key_file, \
                 audit.pseudonym_key_file and auth.secret_key_file take absolute paths) and \
                 back them up apart, somewhere the database's backups never go"
                    .into(),
            ),
        )
    }
}

async fn database(settings: &Settings) -> (Check, Option<store::SharedStore>) {
    const NAME: &str = "database";
    if let Some(file) = settings.sqlite_file()
        && !file.exists()
    {
        let fix = "run `auditgate migrate` to create it, or point --data-dir at the service's data";
        let found = format!("no SQLite file at {}", file.display());
        return (check(NAME, Verdict::Fail, found, Some(fix.into())), None);
    }
    let store = match store::connect(&settings.database).await {
        Ok(s) => s,
        Err(e) => {
            let fix = "check database.url and that the database server is up";
            return (
                check(NAME, Verdict::Fail, e.to_string(), Some(fix.into())),
                None,
            );
        }
    };
    if let Err(e) = store.ping().await {
        return (check(NAME, Verdict::Fail, e.to_string(), None), None);
    }
    let backend = store.backend();
    let verdict = match store.pending_migrations().await {
        Ok(0) => check(
            NAME,
            Verdict::Ok,
            format!("{backend}, reachable, migrated"),
            None,
        ),
        Ok(n) => check(
            NAME,
            Verdict::Warn,
            format!("{backend}, reachable, {n} migrations to apply"),
            Some("`auditgate migrate`, or the next start applies them".into()),
        ),
        Err(e) => check(
            NAME,
            Verdict::Fail,
            format!("{backend}, reachable, but no auditgate tables: {e}"),
            Some("`auditgate migrate` creates them".into()),
        ),
    };
    let usable = verdict.verdict != Verdict::Fail;
    (verdict, usable.then_some(store))
}

/// PostgreSQL plans from statistics that autovacuum keeps: without them, queries planned for
/// the table's size when last analysed scan it whole (a page of the audit log took 877 ms at
/// a million entries instead of 1.3 ms in the benchmark).
async fn statistics(store: &store::SharedStore) -> Option<Check> {
    const NAME: &str = "database statistics";
    Some(match store.autovacuum().await {
        Ok(None) => return None,
        Ok(Some(true)) => check(NAME, Verdict::Ok, "autovacuum on", None),
        Ok(Some(false)) => check(
            NAME,
            Verdict::Warn,
            "autovacuum is off: the planner's statistics go stale as the tables grow, and reads slow down by orders of magnitude",
            Some("set autovacuum = on in postgresql.conf, or run ANALYZE after every large load (deploy/README.md)".into()),
        ),
        Err(e) => check(NAME, Verdict::Warn, e.to_string(), None),
    })
}

async fn audit_log(settings: &Settings, store: &store::SharedStore) -> Check {
    const NAME: &str = "audit log";
    let path = &settings.audit.signing_key_file;
    if !path.exists() {
        return check(NAME, Verdict::Warn, "not checked: no signing key", None);
    }
    let signer = match audit::keys::load_or_create_signer(path, &settings.audit.origin) {
        Ok(k) => k,
        Err(e) => return check(NAME, Verdict::Fail, format!("{e:#}"), None),
    };
    match audit::inspect(store, &settings.audit, &signer).await {
        Ok(state) => {
            let covered = match state.checkpoint {
                Some(n) if n == state.size => "all signed".to_owned(),
                Some(n) => {
                    format!("checkpoint at {n}; the service's next commit or start signs the rest")
                }
                None if state.size == 0 => "empty".to_owned(),
                None => {
                    "no checkpoint yet; the service's next commit or start signs one".to_owned()
                }
            };
            let verdict = if state.checkpoint == Some(state.size) || state.size == 0 {
                Verdict::Ok
            } else {
                Verdict::Warn
            };
            check(
                NAME,
                verdict,
                format!(
                    "{} entries, {covered}, key {}",
                    state.size,
                    signer.verifier()
                ),
                None,
            )
        }
        Err(e) => check(
            NAME,
            Verdict::Fail,
            format!("{e:#}"),
            Some(
                "the service will refuse to start on this database with this key: restore the \
                 key that signed this log, or the database that goes with this key"
                    .into(),
            ),
        ),
    }
}

fn public_url(settings: &Settings) -> Check {
    const NAME: &str = "public_url";
    let url = settings.public_url();
    let Ok(bind) = settings.server.bind.parse() else {
        return check(NAME, Verdict::Fail, "server.bind is not an address", None);
    };
    match crate::config::public_url_mismatch(url, bind) {
        None => check(
            NAME,
            Verdict::Ok,
            format!("{url}, listening on {}", settings.server.bind),
            None,
        ),
        Some(why) => check(
            NAME,
            Verdict::Fail,
            why,
            Some(format!(
                "set auth.public_url to http://{bind} (or where browsers reach it), or \
                 listen on its port (server.bind)"
            )),
        ),
    }
}

fn tls(settings: &Settings) -> Check {
    const NAME: &str = "TLS";
    match crate::startup::tls_config(&settings.server) {
        Ok(Some(_)) => check(
            NAME,
            Verdict::Ok,
            "certificate and key load and match",
            None,
        ),
        Ok(None) if settings.public_url().starts_with("https://") => check(
            NAME,
            Verdict::Ok,
            "off here; public_url is https://, so a proxy terminates TLS",
            None,
        ),
        Ok(None) => check(NAME, Verdict::Ok, "off", None),
        Err(e) => check(
            NAME,
            Verdict::Fail,
            format!("{e:#}"),
            Some("server.tls_cert_file and tls_key_file must name readable PEM files".into()),
        ),
    }
}

async fn providers(settings: &Settings) -> Vec<Check> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build();
    let mut out = Vec::new();
    for p in &settings.auth.providers {
        let name = format!("provider {}", p.name);
        let url = format!(
            "{}/.well-known/openid-configuration",
            p.issuer.trim_end_matches('/')
        );
        let fetched = match &client {
            Ok(c) => match c.get(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    r.json::<Value>().await.map_err(|e| e.to_string())
                }
                Ok(r) => Err(format!("answered {}", r.status())),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        out.push(match fetched {
            Ok(doc) if doc["issuer"].as_str() == Some(p.issuer.as_str()) => check(
                &name,
                Verdict::Ok,
                format!("{url}: discovery document found"),
                None,
            ),
            Ok(doc) => check(
                &name,
                Verdict::Fail,
                format!("{url} names issuer {}, not {}", doc["issuer"], p.issuer),
                Some("set the provider's issuer exactly as its discovery document has it".into()),
            ),
            Err(e) => check(
                &name,
                Verdict::Fail,
                format!("{url}: {e}"),
                Some("check the provider's issuer and that this machine can reach it".into()),
            ),
        });
    }
    out
}

fn print(checks: &[Check], as_json: bool) {
    if as_json {
        let list: Vec<Value> = checks
            .iter()
            .map(|c| json!({"check": c.name, "result": c.verdict.as_str().to_lowercase(), "found": c.found, "fix": c.fix}))
            .collect();
        let ok = checks.iter().all(|c| c.verdict != Verdict::Fail);
        super::print(true, json!({"ok": ok, "checks": list}), "");
        return;
    }
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for c in checks {
        text.push_str(&format!(
            "{:<4}  {:<width$}  {}\n",
            c.verdict.as_str(),
            c.name,
            c.found
        ));
        if let Some(fix) = &c.fix {
            text.push_str(&format!("{:<4}  {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    super::print(false, Value::Null, text.trim_end());
}
