//! `auditgate-verify` (and `auditgate verify`): checks an exported bundle offline, with no
//! configuration, network or database. Exit status 0: everything holds; 1: something does
//! not (the first bad entry and why); 2: the input cannot be used.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::ledger::bundle::{BundleError, Report, Verifier};
use crate::ledger::note::VerifierKey;

/// Verify an auditgate audit-log bundle offline.
#[derive(Debug, Parser)]
#[command(name = "auditgate-verify", version)]
pub struct VerifyArgs {
    /// The bundle file (`auditgate log export` or `GET /api/v1/audit/export`).
    pub bundle: PathBuf,
    /// The log's public key (`name+keyid+base64`, as `auditgate keys show` prints it), or a file holding it.
    #[arg(long)]
    pub key: String,
    /// A signed checkpoint saved earlier (e.g. from GET /api/v1/audit/checkpoint): the bundle
    /// must extend it, which exposes truncation and rewritten history.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Bundles larger than this get a progress bar on a terminal.
const PROGRESS_BYTES: u64 = 4 << 20;

fn read_key(arg: &str) -> Result<VerifierKey, BundleError> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg)
            .map_err(|e| BundleError::Unusable(format!("--key {arg}: {e}")))?
    } else {
        arg.to_owned()
    };
    VerifierKey::parse(text.trim()).map_err(|e| BundleError::Unusable(format!("--key: {e}")))
}

/// Verifies the bundle named in `args`.
pub fn verify(args: &VerifyArgs) -> Result<Report, BundleError> {
    let key = read_key(&args.key)?;
    let saved = args
        .checkpoint
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| BundleError::Unusable(format!("--checkpoint {}: {e}", p.display())))
        })
        .transpose()?;
    let file = std::fs::File::open(&args.bundle)
        .map_err(|e| BundleError::Unusable(format!("{}: {e}", args.bundle.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = (size > PROGRESS_BYTES && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .expect("a valid template"),
        );
        bar
    });
    let mut verifier = Verifier::new(vec![key], saved.as_deref())?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(64 << 20)
            .read_until(b'\n', &mut line)
            .map_err(|e| BundleError::Unusable(format!("reading the bundle: {e}")))?;
        if n == 0 {
            break;
        }
        let Some(body) = line.strip_suffix(b"\n") else {
            return Err(BundleError::Unusable(
                "the last line has no newline: the file is cut short".into(),
            ));
        };
        let text = std::str::from_utf8(body)
            .map_err(|_| BundleError::Unusable("the bundle is not UTF-8".into()))?;
        verifier.feed(text)?;
        if let Some(bar) = &bar {
            bar.inc(n as u64);
            if verifier.entries_checked() % 10_000 == 0 {
                bar.set_message(format!("{} entries", verifier.entries_checked()));
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    verifier.finish()
}

/// Runs the command and returns the process exit status.
pub fn run(args: &VerifyArgs) -> i32 {
    match verify(args) {
        Ok(report) => {
            if args.json {
                println!("{}", json!({"ok": true, "report": report}));
            } else {
                let what = match &report.project {
                    Some(p) => format!(
                        "{} entries of project {p}, each proven included in",
                        report.entries
                    ),
                    None => format!(
                        "entries {}..{} ({}), chained and hashed into",
                        report.from, report.to, report.entries
                    ),
                };
                println!(
                    "OK: {what} {} signed checkpoint(s) of {}",
                    report.checkpoints, report.origin
                );
                println!("  tree size {} root {}", report.to, report.root);
                if let Some(s) = report.saved_checkpoint {
                    println!("  consistent with your saved checkpoint of {s} entries");
                }
            }
            0
        }
        Err(e) => {
            let (code, seq, line) = match &e {
                BundleError::Invalid { seq, line, .. } => (1, *seq, Some(*line)),
                BundleError::Unusable(_) => (2, None, None),
            };
            if args.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": e.to_string(), "seq": seq, "line": line})
                );
            } else if code == 1 {
                println!("FAILED: {e}");
            } else {
                println!("CANNOT VERIFY: {e}");
            }
            code
        }
    }
}
