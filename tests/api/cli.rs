//! The `auditgate` binary: configuration errors, project and token commands, graceful drain.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary in `dir`, its data directory `dir/data` (created and migrated first, as
/// `serve` would have: the other commands refuse to create a database).
fn auditgate(dir: &std::path::Path) -> Command {
    if !dir.join("data/test.db").exists() {
        let out = bare(dir).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bare(dir)
}

/// The binary in `dir`, `dir/data` its data directory, nothing done beforehand.
fn bare(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditgate"));
    c.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("AUDITGATE_DATA_DIR", dir.join("data"))
        .env("AUDITGATE__DATABASE__URL", "sqlite:test.db");
    c
}

/// The entries of an exported bundle, decoded.
fn entries_of(bundle: &std::path::Path) -> Vec<auditgate::ledger::entry::Entry> {
    use base64::Engine;
    std::fs::read_to_string(bundle)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "entry")
        .map(|l| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(l["bytes"].as_str().unwrap())
                .unwrap();
            auditgate::ledger::entry::Entry::decode(&bytes).unwrap()
        })
        .collect()
}

fn run_json(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = auditgate(dir).arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn text_of(dir: &std::path::Path, args: &[&str]) -> String {
    let out = auditgate(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_command_away_from_its_data_refuses_to_start_an_empty_database_and_says_where_it_looked() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let cmd = |cwd: &std::path::Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_auditgate"));
        c.current_dir(cwd)
            .env_remove("RUST_LOG")
            .env_remove("AUDITGATE_DATA_DIR")
            .env_remove("STATE_DIRECTORY");
        c
    };
    let migrated = cmd(home.path())
        .args(["--data-dir", data.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(data.join("auditgate.db").exists());
    let created = cmd(home.path())
        .env("AUDITGATE_DATA_DIR", &data)
        .args(["project", "create", "shop"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    // From another directory, with nothing saying where the data is: refused, naming the path
    // and why it was chosen, and nothing created.
    let lost = cmd(elsewhere.path())
        .args(["project", "list"])
        .output()
        .unwrap();
    assert!(!lost.status.success());
    let said = String::from_utf8_lossy(&lost.stderr);
    assert!(
        said.contains("no database at /var/lib/auditgate/auditgate.db"),
        "{said}"
    );
    assert!(
        said.contains("not a checkout") && said.contains("--data-dir"),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    // Told where, by flag, by variable or by systemd's StateDirectory, it finds the project.
    let by_flag = [
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
        "project",
        "list",
    ];
    for mut c in [
        {
            let mut c = cmd(elsewhere.path());
            c.args(by_flag);
            c
        },
        {
            let mut c = cmd(elsewhere.path());
            c.env("AUDITGATE_DATA_DIR", &data)
                .args(["--json", "project", "list"]);
            c
        },
        {
            let mut c = cmd(elsewhere.path());
            c.env("STATE_DIRECTORY", &data)
                .args(["--json", "project", "list"]);
            c
        },
    ] {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed[0]["id"], "shop", "{listed}");
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn the_production_configuration_in_deploy_loads() {
    let dir = tempfile::tempdir().unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/auditgate.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_auditgate"))
        .current_dir(dir.path())
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .env_remove("AUDITGATE_DATA_DIR")
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As under the unit: the data in systemd's StateDirectory.
    assert!(dir.path().join("state/auditgate.db").exists());
}

#[test]
fn the_readme_sign_in_configuration_loads() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = &readme[readme.find("\n## Sign-in\n").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    assert!(example.contains("[[auth.providers]]") && example.contains("group_roles"));
    let dir = tempfile::tempdir().unwrap();
    let migrate = |toml: &str| {
        std::fs::write(dir.path().join("local.toml"), toml).unwrap();
        bare(dir.path())
            .args(["--config", "local.toml", "migrate"])
            .output()
            .unwrap()
    };
    let out = migrate(example);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It is checked, not merely read: a role that does not exist is refused by name.
    let out = migrate(&example.replace("role = \"analyst\"", "role = \"analysts\""));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("access.group_roles.role"));
}

#[test]
fn projects_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_json(dir.path(), &["project", "create", "shop"]);
    assert_eq!(created["id"], "shop");
    assert_eq!(created["ingest_token"].as_str().unwrap().len(), 32);
    assert!(created["secret"].as_str().unwrap().starts_with("ags_"));
    let text = auditgate(dir.path())
        .args(["project", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("ID") && text.lines().nth(1).unwrap().starts_with("shop"),
        "{text}"
    );
    let list = run_json(dir.path(), &["project", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let roles = auditgate(dir.path())
        .args(["role", "list"])
        .output()
        .unwrap();
    let roles = String::from_utf8_lossy(&roles.stdout);
    let analyst = roles.lines().find(|l| l.starts_with("analyst ")).unwrap();
    assert!(analyst.contains("events:read, "), "{analyst}");
    assert!(
        !roles.contains('['),
        "permissions as words, not JSON: {roles}"
    );
    // An empty list says so, rather than printing a blank line.
    for (empty, said) in [
        (
            &["grant", "list"][..],
            "No grants: `auditgate grant add` makes one.\n",
        ),
        (
            &["user", "list"],
            "No people yet: they appear when they first sign in (or `auditgate admin bootstrap`).\n",
        ),
        (
            &["request", "list"],
            "No access requests are waiting for a decision.\n",
        ),
        (
            &["subject-request", "list", "--project", "shop"],
            "No subject requests in shop: `auditgate subject-request create` makes one.\n",
        ),
        (
            &["property", "list", "--project", "shop"],
            "No property of shop is marked sensitive: `auditgate property mark` marks one.\n",
        ),
    ] {
        let out = auditgate(dir.path()).args(empty).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), said, "{empty:?}");
    }
    let token = run_json(dir.path(), &["token", "create", "--project", "shop"]);
    let id = token["id"].as_str().unwrap();
    run_json(dir.path(), &["token", "revoke", id]);
    let again = auditgate(dir.path())
        .args(["token", "revoke", id])
        .output()
        .unwrap();
    assert!(!again.status.success(), "revoking twice is an error");
    let tokens = run_json(dir.path(), &["token", "list", "--project", "shop"]);
    assert_eq!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["revoked"] == true)
            .count(),
        1
    );
    let dup = auditgate(dir.path())
        .args(["project", "create", "shop"])
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    // Every change made from the command line is in the log, with its before and after.
    let out = auditgate(dir.path())
        .args(["log", "export", "--out", "log.bundle"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actions: Vec<String> = std::fs::read_to_string(dir.path().join("log.bundle"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "entry")
        .map(|l| {
            crate::helpers::decode_entry(l["bytes"].as_str().unwrap())
                .action
                .as_str()
                .to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        ["log.init", "project.create", "token.create", "token.revoke"]
    );
    let bad = auditgate(dir.path())
        .args(["project", "create", "Not Valid"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid project id"));
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = auditgate(dir.path())
        .env("AUDITGATE__DATABASE__URL", "mysql://x")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("database.url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = auditgate(dir.path())
        .env("AUDITGATE__SERVER__MAX_BODY_BYTES", "lots")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_body_bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = auditgate(dir.path())
        .env("AUDITGATE__SERVER__BINDD", "x")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bindd"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("extra.toml"), "[ingest]\nmax_batch = 0\n").unwrap();
    let out = auditgate(dir.path())
        .args(["--config", "extra.toml", "migrate"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingest.max_batch"));
    // A value outside an enumeration is named with the values it may take, once.
    let out = auditgate(dir.path())
        .env("AUDITGATE__LOG__FORMAT", "xml")
        .arg("migrate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        r#"auditgate: configuration: `log.format` is "xml"; it must be one of: text, json"#
    );
}

#[test]
fn serve_logs_json_on_request_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = auditgate(dir.path())
        .env("AUDITGATE__LOG__FORMAT", "json")
        .env("AUDITGATE__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (port, started) = loop {
        let line = lines.next().expect("serve exited early").unwrap();
        let log: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        if let Some(port) = log["port"].as_u64() {
            break (port, log);
        }
    };
    let data = dir.path().join("data");
    assert!(
        started["data_dir"]
            .as_str()
            .unwrap()
            .starts_with(data.to_str().unwrap()),
        "{started}"
    );
    // The default public_url (port 8080) is not where this one listens: said at start-up.
    let warning: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(warning["level"], "WARN", "{warning}");
    let said = warning["message"].as_str().unwrap();
    assert!(
        said.contains(&format!("port {port}")) && said.contains("auth.public_url"),
        "{said}"
    );
    let health = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a drained shutdown exits 0");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("drained and stopped")),
        "{rest:?}"
    );
}

#[test]
fn serve_names_the_address_it_cannot_listen_on() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = auditgate(dir.path())
        .args(["serve", "--bind", &address])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen on {address} (server.bind, or --bind)"
        )),
        "{err}"
    );
}

#[test]
fn admin_bootstrap_creates_the_break_glass_account_once() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_json(
        dir.path(),
        &["admin", "bootstrap", "--email", "root@example.com"],
    );
    let password = created["password"].as_str().unwrap();
    assert!(password.len() >= 40, "a generated password is long");
    let again = auditgate(dir.path())
        .args(["admin", "bootstrap", "--email", "root@example.com"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "one account per email");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // A chosen password comes on stdin and must be long enough.
    let mut short = auditgate(dir.path())
        .args([
            "admin",
            "bootstrap",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    short.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = short.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 15"));
    // The creation is in the audit log, with the account's id and no password.
    let bundle = dir.path().join("log.bundle");
    run_json(
        dir.path(),
        &["log", "export", "--out", bundle.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(!text.contains(password));
    let entries = entries_of(&bundle);
    let change = entries
        .iter()
        .find(|e| e.action == auditgate::ledger::entry::Action::UserChange)
        .expect("an access.user_change entry");
    let details: Value = serde_json::from_str(&change.details).unwrap();
    assert_eq!(details["user"], created["id"]);
    assert_eq!(details["after"]["role"], "break_glass");
}

#[test]
fn a_lost_phone_and_a_stolen_laptop_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_json(
        dir.path(),
        &["admin", "bootstrap", "--email", "root@example.com"],
    );
    let id = created["id"].as_str().unwrap();
    // Their authenticator and a live session, as a sign-in would leave them.
    let (rt, mut db) = test_db(dir.path());
    let far = 4_000_000_000_000_i64;
    for statement in [
        "INSERT INTO totp_credentials (user_id, secret_sealed, created_at, activated_at) VALUES ($1, 'sealed', 0, 0)",
        "INSERT INTO sessions (id_hash, public_id, user_id, method, csrf, created_at, last_seen_at, expires_at) VALUES ('h1', 's1', $1, 'password', 'c', 0, 0, $2)",
    ] {
        rt.block_on(sqlx::query(statement).bind(id).bind(far).execute(&mut db))
            .unwrap();
    }
    // Resetting asks first; without a terminal it needs --yes, and nothing changes.
    let asked = auditgate(dir.path())
        .args(["user", "reset-second-factor", id])
        .output()
        .unwrap();
    assert!(!asked.status.success());
    assert!(String::from_utf8_lossy(&asked.stderr).contains("add --yes"));
    let nobody = auditgate(dir.path())
        .args(["--yes", "user", "reset-second-factor", "nobody"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("there is no person nobody"));
    let reset = run_json(dir.path(), &["--yes", "user", "reset-second-factor", id]);
    assert_eq!(
        reset,
        serde_json::json!({"reset": true, "sessions_ended": 1})
    );
    let mut count = |sql: &'static str| -> i64 {
        rt.block_on(sqlx::query_scalar(sql).bind(id).fetch_one(&mut db))
            .unwrap()
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND ended_at IS NULL"),
        0
    );
    assert_eq!(
        run_json(dir.path(), &["user", "end-sessions", id]),
        serde_json::json!({"sessions_ended": 0})
    );
    // Both are in the log, with what was there before.
    let bundle = dir.path().join("log.bundle");
    run_json(
        dir.path(),
        &["log", "export", "--out", bundle.to_str().unwrap()],
    );
    let entries = entries_of(&bundle);
    let of = |action| {
        let e = entries
            .iter()
            .rev()
            .find(|e| e.action == action)
            .expect("an entry");
        serde_json::from_str::<Value>(&e.details).unwrap()
    };
    use auditgate::ledger::entry::Action;
    assert_eq!(
        of(Action::SecondFactorReset)["before"]["second_factor"],
        true
    );
    assert_eq!(of(Action::SessionEnd)["before"]["live_sessions"], 0);
}

#[test]
fn the_access_review_from_the_command_line_is_the_apis_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["project", "create", "shop"]);
    let root = run_json(
        dir.path(),
        &["admin", "bootstrap", "--email", "root@example.com"],
    );
    let rows = run_json(dir.path(), &["access-review"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r["principal"] == root["id"] && r["role"] == "break_glass")
    );
    let csv = text_of(dir.path(), &["access-review", "--csv", "--project", "shop"]);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("principal_kind,principal,email,role")
    );
    assert_eq!(lines.count(), 2, "{csv}");
    let table = text_of(dir.path(), &["access-review"]);
    assert!(table.starts_with("PRINCIPAL"), "{table}");
    let both = auditgate(dir.path())
        .args(["--json", "access-review", "--csv"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&both.stderr).contains("choose one of --csv and --json"));
    // Each review is an audited read of the whole policy, made by the operator.
    let bundle = dir.path().join("log.bundle");
    run_json(
        dir.path(),
        &["log", "export", "--out", bundle.to_str().unwrap()],
    );
    let reviews: Vec<Value> = entries_of(&bundle)
        .iter()
        .filter(|e| e.action == auditgate::ledger::entry::Action::AuditRead)
        .map(|e| serde_json::from_str::<Value>(&e.details).unwrap())
        .filter(|d| d["report"] == "access_review")
        .collect();
    assert_eq!(reviews.len(), 3, "{reviews:?}");
    assert_eq!(reviews[1]["project"], "shop");
    assert_eq!(reviews[1]["rows"], 2);
}

#[test]
fn grants_and_people_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["project", "create", "shop"]);
    let admin = run_json(
        dir.path(),
        &["admin", "bootstrap", "--email", "root@example.com"],
    );
    let id = admin["id"].as_str().unwrap();
    let users = run_json(dir.path(), &["user", "list"]);
    assert_eq!(users[0]["id"], id);
    let g = run_json(
        dir.path(),
        &[
            "grant",
            "add",
            "--user",
            id,
            "--role",
            "auditor",
            "--project",
            "shop",
            "--reason",
            "OPS-1",
        ],
    );
    assert_eq!(g["status"], "active");
    // The only person here is the break-glass account: it is granted no data role.
    let data = auditgate(dir.path())
        .args([
            "grant",
            "add",
            "--user",
            id,
            "--role",
            "analyst",
            "--project",
            "shop",
            "--reason",
            "OPS-2",
        ])
        .output()
        .unwrap();
    assert!(!data.status.success());
    assert!(
        String::from_utf8_lossy(&data.stderr).contains("break-glass account reads no data"),
        "{}",
        String::from_utf8_lossy(&data.stderr)
    );
    assert_eq!(g["granted_by"], "cli");
    let deny = run_json(
        dir.path(),
        &[
            "grant",
            "add",
            "--group",
            "contractors",
            "--deny",
            "events:export",
            "--project",
            "*",
            "--reason",
            "policy",
        ],
    );
    assert_eq!(deny["permission"], "events:export");
    let bad = auditgate(dir.path())
        .args([
            "grant",
            "add",
            "--user",
            id,
            "--role",
            "emperor",
            "--project",
            "shop",
            "--reason",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // A near miss names what was meant.
    let typo = auditgate(dir.path())
        .args([
            "grant",
            "add",
            "--group",
            "g",
            "--role",
            "analist",
            "--project",
            "shop",
        ])
        .args(["--reason", "x"])
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr)
            .contains(r#""analist" is not a role (did you mean "analyst"?)"#),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );
    // The operator's grants pass the same checks as the API's: who, where and how long.
    for (args, says) in [
        (
            ["--user", "nobody", "--role", "auditor", "--project", "shop"],
            "there is no person",
        ),
        (
            ["--user", id, "--role", "auditor", "--project", "nope"],
            "there is no project nope",
        ),
        (
            ["--user", id, "--role", "auditor", "--project", "Shop!"],
            "invalid project id",
        ),
    ] {
        let out = auditgate(dir.path())
            .args(["grant", "add"])
            .args(args)
            .args(["--reason", "x"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let long = auditgate(dir.path())
        .args([
            "grant",
            "add",
            "--group",
            "g",
            "--role",
            "auditor",
            "--project",
            "shop",
        ])
        .args(["--reason", "x", "--expires-in-days", "5000"])
        .output()
        .unwrap();
    assert!(!long.status.success());
    assert!(String::from_utf8_lossy(&long.stderr).contains("between 1 and 3650"));
    assert_eq!(
        run_json(dir.path(), &["grant", "list", "--project", "shop"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    run_json(
        dir.path(),
        &["--yes", "grant", "revoke", g["id"].as_str().unwrap()],
    );
    let again = auditgate(dir.path())
        .args(["--yes", "grant", "revoke", g["id"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success(), "revoking twice is an error");
    // The operator can act as the second administrator on a pending grant.
    let sas = run_json(dir.path(), &["service-account", "list"]);
    let sa = sas[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        run_json(dir.path(), &["service-account", "lock", &sa])["locked"],
        true
    );
    assert_eq!(
        run_json(dir.path(), &["service-account", "list"])[0]["locked"],
        true
    );
    run_json(dir.path(), &["service-account", "unlock", &sa]);
    let not_pending = auditgate(dir.path())
        .args(["grant", "approve", deny["id"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !not_pending.status.success(),
        "only pending grants are approved"
    );
    let role = run_json(
        dir.path(),
        &[
            "role",
            "create",
            "counter",
            "--permissions",
            "events:read,profiles:read",
        ],
    );
    assert_eq!(
        role["permissions"],
        serde_json::json!(["events:read", "profiles:read"])
    );
    assert!(
        run_json(dir.path(), &["role", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "counter")
    );
    run_json(
        dir.path(),
        &[
            "grant",
            "add",
            "--group",
            "analysts",
            "--role",
            "counter",
            "--project",
            "shop",
            "--reason",
            "x",
        ],
    );
    let busy = auditgate(dir.path())
        .args(["--yes", "role", "delete", "counter"])
        .output()
        .unwrap();
    assert!(!busy.status.success(), "a role in use stays");
    run_json(
        dir.path(),
        &["property", "mark", "--project", "shop", "email"],
    );
    assert_eq!(
        run_json(dir.path(), &["property", "list", "--project", "shop"])["event"],
        serde_json::json!(["email"])
    );
    let listed = text_of(dir.path(), &["property", "list", "--project", "shop"]);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines, [vec!["KIND", "PROPERTY"], vec!["event", "email"]]);
    run_json(
        dir.path(),
        &["property", "unmark", "--project", "shop", "email"],
    );
    assert_eq!(
        run_json(dir.path(), &["property", "list", "--project", "shop"])["event"],
        serde_json::json!([])
    );
    // A pending just-in-time request (as a person's POST would leave it), approved by the operator.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite:{}", dir.path().join("data/test.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let far = 4_000_000_000_000_i64;
        sqlx::query(
            "INSERT INTO access_requests (id, requester, project, role, reason, duration_ms, approvals_needed, created_at, lapses_at, status) \
             VALUES ('r1', $1, 'shop', 'analyst', 'INC-9', 3600000, 1, 0, $2, 'pending')",
        )
        .bind(id)
        .bind(far)
        .execute(&mut db)
        .await
        .unwrap();
    });
    assert_eq!(run_json(dir.path(), &["request", "list"])[0]["id"], "r1");
    let listed = text_of(dir.path(), &["request", "list"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "REQUESTER",
            "ROLE",
            "PROJECT",
            "REASON",
            "LAPSES",
            "AT"
        ]
    );
    let row = listed.lines().nth(1).unwrap();
    assert!(
        row.starts_with("r1") && row.contains("analyst") && row.contains("INC-9"),
        "{listed}"
    );
    assert_eq!(
        run_json(dir.path(), &["request", "approve", "r1"])["state"],
        "granted"
    );
    assert!(
        run_json(dir.path(), &["request", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let grants = run_json(dir.path(), &["grant", "list", "--project", "shop"]);
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["granted_by"] == "request:r1" && g["expires_at"].is_string())
    );
    let off = run_json(dir.path(), &["user", "disable", id]);
    assert_eq!(off["disabled"], true);
    assert_eq!(run_json(dir.path(), &["user", "list"])[0]["disabled"], true);

    // The operator's grant changes are recorded in the API's shape (one service writes both).
    let bundle = dir.path().join("grants.bundle");
    run_json(
        dir.path(),
        &["log", "export", "--out", bundle.to_str().unwrap()],
    );
    let changes: Vec<Value> = entries_of(&bundle)
        .into_iter()
        .filter(|e| e.action == auditgate::ledger::entry::Action::GrantChange)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert!(changes.len() >= 4, "{changes:?}");
    for c in &changes {
        for key in [
            "effect",
            "permission",
            "review_due",
            "decided_by",
            "locked_at",
        ] {
            assert!(c["after"].get(key).is_some(), "{key} missing from {c}");
        }
    }
}

#[test]
fn subject_requests_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["project", "create", "shop"]);
    let request = |kind: &str| {
        run_json(
            dir.path(),
            &[
                "--yes",
                "subject-request",
                "create",
                "--project",
                "shop",
                "--kind",
                kind,
                "--reason",
                "DSR-1",
                "--distinct-id",
                "cust-1",
                "--distinct-id",
                "cust-2",
            ],
        )
    };
    let export = request("export");
    assert_eq!(export["status"], "PENDING");
    let cancelled = run_json(
        dir.path(),
        &[
            "subject-request",
            "cancel",
            "--project",
            "shop",
            export["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(cancelled["status"], "REVOKED");

    // Above the approval bound, an erasure waits for the operator's approval.
    let erase: Value = {
        let out = auditgate(dir.path())
            .env("AUDITGATE__PRIVACY__APPROVAL_ABOVE_SUBJECTS", "1")
            .args([
                "--json",
                "--yes",
                "subject-request",
                "create",
                "--project",
                "shop",
                "--kind",
                "erase",
                "--reason",
                "DSR-2",
                "--distinct-id",
                "cust-1",
                "--distinct-id",
                "cust-2",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(erase["needs_approval"], true);
    let id = erase["id"].as_str().unwrap();
    assert_eq!(
        run_json(dir.path(), &["subject-request", "run"])["ended"],
        0
    );
    run_json(
        dir.path(),
        &["subject-request", "approve", "--project", "shop", id],
    );
    assert_eq!(
        run_json(dir.path(), &["subject-request", "run"])["ended"],
        1
    );
    let shown = run_json(
        dir.path(),
        &["subject-request", "show", "--project", "shop", id],
    );
    assert_eq!(
        shown["status"], "NOT_FOUND",
        "nothing was stored about them"
    );
    let all = run_json(
        dir.path(),
        &["subject-request", "list", "--project", "shop"],
    );
    assert_eq!(all.as_array().unwrap().len(), 2);
    let listed = text_of(
        dir.path(),
        &["subject-request", "list", "--project", "shop"],
    );
    assert!(listed.starts_with("ID"), "{listed}");
    let row = listed.lines().find(|l| l.starts_with(id)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1..3], ["erase", "NOT_FOUND"], "{listed}");
    assert!(row.ends_with("approved"), "{row}");
    let bad = auditgate(dir.path())
        .args([
            "subject-request",
            "create",
            "--project",
            "shop",
            "--kind",
            "shred",
            "--reason",
            "x",
            "--distinct-id",
            "a",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("shred"));

    // A finished export's document, written to a file, logged before anything is read and
    // again with what was written.
    sql(
        dir.path(),
        "INSERT INTO events (project_id, event, distinct_id, time_ms, insert_id, properties, received_at) \
         VALUES ('shop', 'Viewed Pricing', 'cust-9', 1700000000000, 'x9', '{\"plan\":\"pro\"}', 1700000000000)",
    );
    // Stored as the store stores it: in a bucket the project's reads look in.
    sql(
        dir.path(),
        "INSERT INTO event_buckets (project_id, bucket, first_ms, last_ms) \
         VALUES ('shop', 0, 1700000000000, 1700000000000)",
    );
    let export = run_json(
        dir.path(),
        &[
            "subject-request",
            "create",
            "--project",
            "shop",
            "--kind",
            "export",
            "--reason",
            "DSR-3",
            "--distinct-id",
            "cust-9",
        ],
    );
    let export_id = export["id"].as_str().unwrap();
    assert_eq!(
        run_json(dir.path(), &["subject-request", "run"])["ended"],
        1
    );
    let file = dir.path().join("cust-9.json");
    let download = |id: &str| {
        auditgate(dir.path())
            .args([
                "subject-request",
                "download",
                "--project",
                "shop",
                id,
                "--output",
            ])
            .arg(&file)
            .output()
            .unwrap()
    };
    let before = log_size(dir.path());
    let out = download(export_id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let text = document.to_string();
    assert!(
        text.contains("Viewed Pricing") && text.contains(export_id),
        "{text}"
    );
    assert_eq!(log_size(dir.path()), before + 2);
    // Never over an existing file; never for a request that is not a finished export.
    let again = download(export_id);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("cust-9.json"));
    std::fs::remove_file(&file).unwrap();
    let erased = download(id);
    assert!(String::from_utf8_lossy(&erased.stderr).contains("SUCCESS"));
    assert!(!file.exists());
    assert_eq!(
        log_size(dir.path()),
        before + 2,
        "refusals log nothing here"
    );
}

/// A runtime and a connection to the test's database, for a plain `#[test]`.
fn test_db(dir: &std::path::Path) -> (tokio::runtime::Runtime, sqlx::SqliteConnection) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite:{}", dir.join("data/test.db").display());
    let db = rt.block_on(sqlx::SqliteConnection::connect(&url)).unwrap();
    (rt, db)
}

/// Runs one statement on the test's database.
fn sql(dir: &std::path::Path, statement: &'static str) {
    let (rt, mut db) = test_db(dir);
    rt.block_on(sqlx::query(statement).execute(&mut db))
        .unwrap();
}

/// Entries in the test's audit log, read straight from the database.
fn log_size(dir: &std::path::Path) -> i64 {
    let (rt, mut db) = test_db(dir);
    rt.block_on(sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries").fetch_one(&mut db))
        .unwrap()
}

#[test]
fn commands_that_cannot_be_undone_ask_first_and_unknown_names_are_refused_before_asking() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["project", "create", "shop"]);
    run_json(
        dir.path(),
        &["role", "create", "counter", "--permissions", "events:read"],
    );
    let before = log_size(dir.path());
    let said = |args: &[&str]| {
        let out = auditgate(dir.path()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // No terminal to ask on and no --yes: nothing happens, and it says how to go ahead.
    assert!(said(&["role", "delete", "counter"]).contains("add --yes"));
    let erase = [
        "subject-request",
        "create",
        "--project",
        "shop",
        "--kind",
        "erase",
        "--reason",
        "r",
        "--distinct-id",
        "cust-1",
    ];
    assert!(said(&erase).contains("add --yes"));
    assert!(said(&["keys", "rotate"]).contains("add --yes"));
    // A name that is not there is refused before anything is asked, with a suggestion.
    assert!(said(&["--yes", "role", "delete", "countr"]).contains("did you mean \"counter\""));
    assert!(said(&["--yes", "grant", "revoke", "no-such-grant"]).contains("no grant"));
    assert_eq!(
        log_size(dir.path()),
        before,
        "a refused command wrote an entry"
    );
    assert_eq!(
        run_json(dir.path(), &["role", "list"])
            .to_string()
            .matches("counter")
            .count(),
        1
    );
    // --yes goes ahead.
    run_json(dir.path(), &["--yes", "role", "delete", "counter"]);
    assert!(
        !run_json(dir.path(), &["role", "list"])
            .to_string()
            .contains("counter")
    );
}

#[test]
fn failed_commands_log_nothing_names_work_and_closed_pipes_are_quiet() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["project", "create", "shop"]);
    let before = log_size(dir.path());
    for args in [
        &["service-account", "lock", "nobody"][..],
        &["role", "delete", "ghost"][..],
    ] {
        let out = auditgate(dir.path()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(log_size(dir.path()), before, "{args:?} wrote an entry");
    }
    // The name people type works like the id, and is logged once, as done.
    let locked = run_json(dir.path(), &["service-account", "lock", "shop-service"]);
    assert_eq!(locked["locked"], true);
    assert!(locked["id"].as_str().unwrap() != "shop-service");
    assert_eq!(log_size(dir.path()), before + 1);
    assert_eq!(
        run_json(dir.path(), &["service-account", "list"])[0]["locked"],
        true
    );

    // `auditgate role list | head -1`: the reader leaves early; no panic, no failure.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // closed before the command writes a byte
    let out = auditgate(dir.path())
        .args(["role", "list"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// A gzip body of `members` members, each 1 MiB of zeros: about 1 KiB each on the wire.
pub(crate) fn gzip_bomb(members: usize) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = gz.finish().unwrap();
    member.repeat(members)
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

#[test]
fn compressed_bodies_that_expand_past_the_limit_cost_no_more_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_json(dir.path(), &["project", "create", "shop"]);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let mut child = auditgate(dir.path())
        .env("AUDITGATE__LOG__FORMAT", "json")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("serve exited early").unwrap();
        let log: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(port) = log["port"].as_u64() {
            break port;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let before = peak_rss_mib(child.id());
    // Eight at once, each 256 KiB on the wire and 256 MiB decompressed.
    let bomb = gzip_bomb(256);
    let answers: Vec<_> = (0..8)
        .map(|_| {
            let (bomb, secret) = (bomb.clone(), secret.clone());
            std::thread::spawn(move || {
                let resp = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap()
                    .post(format!("http://127.0.0.1:{port}/import?project_id=shop"))
                    .bearer_auth(secret)
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(bomb)
                    .send()
                    .unwrap();
                (resp.status().as_u16(), resp.text().unwrap())
            })
        })
        .collect();
    for a in answers {
        let (status, body) = a.join().unwrap();
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("once decompressed"), "{body}");
    }
    let peak = peak_rss_mib(child.id());
    eprintln!("peak memory {peak} MiB, {before} MiB before");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        peak < 300,
        "peak memory {peak} MiB (from {before} MiB) under eight 256 MiB gzip bodies"
    );
}

/// `auditgate --json doctor` in `dir` (its data in `dir/data`): the exit code and each check's
/// result, finding and fix by name.
fn doctor(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, Value) {
    let out = bare(dir)
        .envs(env.iter().copied())
        .args(args)
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let said: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let mut by_name = serde_json::Map::new();
    for c in said["checks"].as_array().unwrap() {
        by_name.insert(c["check"].as_str().unwrap().to_owned(), c.clone());
    }
    assert_eq!(said["ok"], out.status.code() == Some(0), "{said}");
    (out.status.code().unwrap(), Value::Object(by_name))
}

/// Serves once in `dir` until ready, then stops: what a first start leaves behind.
fn serve_once(dir: &std::path::Path) {
    let mut child = auditgate(dir)
        .env("AUDITGATE__LOG__FORMAT", "json")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| serde_json::from_str::<Value>(&l).ok()?["port"].as_u64())
        .expect("serve exited early");
    // Keep reading: a closed pipe would fail its next log line.
    std::thread::spawn(move || lines.for_each(drop));
    // Answering means its signal handlers are in place for a drained stop.
    let ready = reqwest::blocking::get(format!("http://127.0.0.1:{port}/readyz")).unwrap();
    assert_eq!(ready.status(), 200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// An identity provider's discovery document at a loopback address, answering `n` requests.
fn discovery(n: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let body = serde_json::json!({"issuer": issuer}).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            use std::io::{Read, Write};
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    issuer
}

#[tokio::test]
async fn doctor_says_whether_postgres_keeps_its_statistics() {
    let Some(db) =
        crate::helpers::fresh_db(crate::helpers::Backend::Postgres, "doctor_stats").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [("AUDITGATE__DATABASE__URL", db.url.as_str())];
    let out = bare(dir.path()).envs(env).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, checks) = doctor(dir.path(), &env, &[]);
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let on: String = sqlx::query("SHOW autovacuum")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    let said = &checks["database statistics"];
    if on == "on" {
        assert_eq!(said["result"], "ok", "{checks:#}");
    } else {
        assert_eq!(said["result"], "warn", "{checks:#}");
        assert!(said["fix"].as_str().unwrap().contains("ANALYZE"), "{said}");
    }
}

#[test]
fn doctor_passes_a_healthy_set_up_and_names_each_broken_part_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    run_json(path, &["project", "create", "shop"]);
    serve_once(path);
    let issuer = discovery(1);
    let providers = |issuer: &str| {
        let file = path.join(format!("providers-{}.toml", issuer.len()));
        std::fs::write(
            &file,
            format!("[[auth.providers]]\nname = \"corp\"\nissuer = \"{issuer}\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\n"),
        )
        .unwrap();
        file.to_str().unwrap().to_owned()
    };
    let healthy_config = providers(&issuer);
    // Backups of a directory apart from the keys: checked, and fine.
    let mut config = std::fs::read_to_string(&healthy_config).unwrap();
    config.push_str("[database]\nbackup_dirs = [\"backups\"]\n");
    std::fs::write(&healthy_config, config).unwrap();
    let (code, checks) = doctor(path, &[], &["--config", &healthy_config]);
    assert_eq!(code, 0, "{checks:#}");
    assert!(
        checks.get("database statistics").is_none(),
        "SQLite keeps its own: {checks:#}"
    );
    assert!(
        checks["key backups"]["found"]
            .as_str()
            .unwrap()
            .ends_with("/data/backups"),
        "{checks:#}"
    );
    for name in [
        "configuration",
        "data directory",
        "database",
        "signing key",
        "pseudonym key",
        "secrets key",
        "key backups",
        "audit log",
        "public_url",
        "TLS",
        "provider corp",
    ] {
        assert_eq!(checks[name]["result"], "ok", "{name}: {checks:#}");
    }
    assert!(
        checks["audit log"]["found"]
            .as_str()
            .unwrap()
            .contains("all signed")
    );

    // Each broken part fails its own check, with a fix, and the exit code says so.
    let failed = |env: &[(&str, &str)], args: &[&str], name: &str, fix: &str| {
        let (code, checks) = doctor(path, env, args);
        assert_eq!(code, 1, "{name}: {checks:#}");
        assert_eq!(checks[name]["result"], "fail", "{name}: {checks:#}");
        let said = checks[name]["fix"].as_str().unwrap_or_default();
        assert!(said.contains(fix), "{name}: {said}");
        checks
    };
    let bad = failed(
        &[("AUDITGATE__LOG__FORMAT", "xml")],
        &[],
        "configuration",
        "",
    );
    assert!(
        bad["configuration"]["found"]
            .as_str()
            .unwrap()
            .contains("log.format")
    );
    let elsewhere = path.join("nowhere");
    let lost = failed(
        &[],
        &["--data-dir", elsewhere.to_str().unwrap()],
        "data directory",
        "--data-dir",
    );
    assert_eq!(lost["database"]["result"], "fail");
    assert!(!elsewhere.exists(), "doctor created the data directory");
    let down = [(
        "AUDITGATE__DATABASE__URL",
        "postgres://127.0.0.1:1/auditgate",
    )];
    failed(&down, &[], "database", "database.url");
    let key = path.join("data/pseudonym.key");
    let mode = |m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(0o644);
    failed(&[], &[], "pseudonym key", "chmod 600");
    mode(0o600);
    let signing = path.join("data/audit-signing.key");
    let kept = path.join("kept.key");
    std::fs::rename(&signing, &kept).unwrap();
    failed(&[], &[], "signing key", "restore the key file");
    // Another key in its place: the log's checkpoints are not its own.
    let other = tempfile::tempdir().unwrap();
    run_json(other.path(), &["project", "create", "shop"]);
    std::fs::copy(other.path().join("data/audit-signing.key"), &signing).unwrap();
    let foreign = failed(&[], &[], "audit log", "restore the key");
    assert!(
        foreign["audit log"]["found"]
            .as_str()
            .unwrap()
            .contains("not signed by")
    );
    std::fs::rename(&kept, &signing).unwrap();
    failed(
        &[("AUDITGATE__SERVER__BIND", "127.0.0.1:9000")],
        &[],
        "public_url",
        "auth.public_url",
    );
    let tls = [
        ("AUDITGATE__SERVER__TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("AUDITGATE__SERVER__TLS_KEY_FILE", "/nonexistent/key.pem"),
    ];
    failed(&tls, &[], "TLS", "PEM");
    // Backups of the data directory itself would carry the keys with the database.
    let whole = path.join("whole.toml");
    std::fs::write(&whole, "[database]\nbackup_dirs = [\".\"]\n").unwrap();
    let carried = failed(
        &[],
        &["--config", whole.to_str().unwrap()],
        "key backups",
        "move the key files out",
    );
    assert!(
        carried["key backups"]["found"]
            .as_str()
            .unwrap()
            .contains("audit-signing.key is inside"),
        "{carried:#}"
    );
    let unreachable = providers("http://127.0.0.1:1");
    failed(&[], &["--config", &unreachable], "provider corp", "issuer");

    // Doctor changed nothing: the set-up is as healthy as before.
    let (code, checks) = doctor(path, &[], &[]);
    assert_eq!(code, 0, "{checks:#}");
}

#[test]
fn lists_are_tables_with_headers_empty_ones_say_so_and_shells_get_completions() {
    let dir = tempfile::tempdir().unwrap();
    let text = |args: &[&str]| {
        let out = auditgate(dir.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(text(&["project", "list"]).starts_with("No projects yet"));
    assert!(text(&["user", "list"]).starts_with("No people yet"));
    run_json(
        dir.path(),
        &["project", "create", "shop", "--name", "The Shop"],
    );
    run_json(dir.path(), &["project", "create", "bank"]);
    let listed = text(&["project", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("RETENTION"),
        "{listed}"
    );
    // Columns line up: each row's second column starts where its header does.
    let at = lines[0].find("NAME").unwrap();
    let shop = lines.iter().find(|l| l.starts_with("shop")).unwrap();
    assert_eq!(&shop[at..at + 8], "The Shop", "{listed}");
    let roles = text(&["role", "list"]);
    assert!(roles.lines().next().unwrap().starts_with("ROLE"));
    assert!(
        !roles.contains('['),
        "permissions as words, not JSON: {roles}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = text(&["completions", shell]);
        assert!(
            script.contains("subject-request") && script.contains("doctor"),
            "{shell}"
        );
    }
}

#[test]
fn a_project_is_configured_deleted_and_restored_from_the_command_line_as_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["project", "create", "shop"]);
    // Without changes it shows the settings; with them it changes only those given.
    let shown = run_json(dir.path(), &["project", "settings", "shop"]);
    assert_eq!(shown["retention_days"], 1825);
    let changed = run_json(
        dir.path(),
        &[
            "project",
            "settings",
            "shop",
            "--retention-days",
            "30",
            "--allowed-origin",
            "https://shop.example",
        ],
    );
    assert_eq!(changed["retention_days"], 30);
    assert_eq!(
        changed["allowed_origins"],
        serde_json::json!(["https://shop.example"])
    );
    assert_eq!(changed["consent_required"], false);
    // The API's rules hold here too, and a refusal changes nothing.
    let refused = auditgate(dir.path())
        .args(["project", "settings", "shop", "--retention-days", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("between 1 and 36500"));
    let text = text_of(dir.path(), &["project", "settings", "shop"]);
    assert!(
        text.contains("30 days") && text.contains("https://shop.example"),
        "{text}"
    );
    // Deleting asks first; a project that is not there is named before anything is asked.
    let asked = auditgate(dir.path())
        .args(["project", "delete", "shop"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&asked.stderr).contains("add --yes"));
    let missing = auditgate(dir.path())
        .args(["--yes", "project", "delete", "nowhere"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("project nowhere does not exist"));
    let deleted = run_json(dir.path(), &["--yes", "project", "delete", "shop"]);
    assert!(deleted["restorable_until"].is_string(), "{deleted}");
    let again = auditgate(dir.path())
        .args(["--yes", "project", "delete", "shop"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let restored = run_json(dir.path(), &["project", "restore", "shop"]);
    assert!(restored.get("deleted_at").is_none(), "{restored}");
    let not_deleted = auditgate(dir.path())
        .args(["project", "restore", "shop"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&not_deleted.stderr).contains("is not deleted"));
    // Each change is in the log once, as the operator's, in the API's shape.
    let bundle = dir.path().join("log.bundle");
    run_json(
        dir.path(),
        &["log", "export", "--out", bundle.to_str().unwrap()],
    );
    use auditgate::ledger::entry::{Action, AuthMethod};
    let entries = entries_of(&bundle);
    let of = |action| -> Vec<&auditgate::ledger::entry::Entry> {
        entries.iter().filter(|e| e.action == action).collect()
    };
    let (update, delete, restore) = (
        of(Action::ProjectUpdate),
        of(Action::ProjectDelete),
        of(Action::ProjectRestore),
    );
    assert_eq!((update.len(), delete.len(), restore.len()), (1, 1, 1));
    for e in [update[0], delete[0], restore[0]] {
        assert_eq!(e.actor.method, AuthMethod::Cli);
        assert_eq!(e.project.as_deref(), Some("shop"));
    }
    let details: Value = serde_json::from_str(&update[0].details).unwrap();
    assert_eq!(details["before"]["retention_days"], 1825);
    assert_eq!(details["after"]["retention_days"], 30);
    let details: Value = serde_json::from_str(&delete[0].details).unwrap();
    assert!(details["after"]["deleted_at"].is_string());
}
