//! `auditgate-verify` (and `auditgate verify`): checks an exported bundle offline, with no
//! configuration, network or database. Exit status 0: everything holds; 1: something does
//! not (the first bad entry and why); 2: the input cannot be used.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::ledger::bundle::{BundleError, Report, Verifier};
use crate::ledger::entry::{Action, Entry};
use crate::ledger::note::VerifierKey;
use crate::ledger::show;

/// Verify an auditgate audit-log bundle offline.
#[derive(Debug, Parser)]
#[command(name = "auditgate-verify", version)]
pub struct VerifyArgs {
    /// The bundle and what it is checked against.
    #[command(flatten)]
    pub source: Bundle,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Once the bundle verifies, print its entries decoded: a table, or one JSON object a
    /// line with --json (then the report). Nothing is printed from a bundle that fails.
    #[arg(long)]
    pub show: bool,
    /// Which entries --show prints.
    #[command(flatten)]
    pub select: Selection,
}

/// A bundle and what it is checked against (shared with the server's `verify` and `log show`).
#[derive(Debug, Clone, clap::Args)]
pub struct Bundle {
    /// The bundle file (`auditgate log export` or `GET /api/v1/audit/export`).
    pub bundle: PathBuf,
    /// The log's public key (`name+keyid+base64`, as `auditgate keys show` prints it), or a file holding it.
    #[arg(long)]
    pub key: String,
    /// A signed checkpoint saved earlier (e.g. from GET /api/v1/audit/checkpoint): the bundle
    /// must extend it, which exposes truncation and rewritten history.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
}

/// Which entries are shown.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selection {
    /// Only entries of this action, such as `events.query` (with --show).
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries of this actor id: a person's id, a service account's name (with --show).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only entries naming this pseudonym (64 hex digits, as a subject report shows it), to
    /// check a subject report against the project's own bundle (with --show).
    #[arg(long, value_name = "HEX")]
    pub subject: Option<String>,
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
    let key = read_key(&args.source.key)?;
    let saved = args
        .source
        .checkpoint
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| BundleError::Unusable(format!("--checkpoint {}: {e}", p.display())))
        })
        .transpose()?;
    let mut verifier = Verifier::new(vec![key], saved.as_deref())?;
    each_line(args, true, |text| {
        verifier.feed(text).map(|_| verifier.entries_checked())
    })?;
    verifier.finish()
}

/// Feeds each line of the bundle to `f`, which answers how many entries it has seen (for the
/// progress bar on a terminal, when `progress`).
fn each_line(
    args: &VerifyArgs,
    progress: bool,
    mut f: impl FnMut(&str) -> Result<u64, BundleError>,
) -> Result<(), BundleError> {
    let file = std::fs::File::open(&args.source.bundle)
        .map_err(|e| BundleError::Unusable(format!("{}: {e}", args.source.bundle.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = (progress && size > PROGRESS_BYTES && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .expect("a valid template"),
        );
        bar
    });
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
        let seen = f(text)?;
        if let Some(bar) = &bar {
            bar.inc(n as u64);
            if seen % 10_000 == 0 {
                bar.set_message(format!("{seen} entries"));
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// What `--action` and `--subject` name, checked before the bundle is read.
struct Wanted {
    action: Option<Action>,
    subject: Option<[u8; 32]>,
}

fn wanted(args: &VerifyArgs) -> Result<Wanted, BundleError> {
    let s = &args.select;
    if !args.show && (s.action.is_some() || s.actor.is_some() || s.subject.is_some()) {
        return Err(BundleError::Unusable(
            "--action, --actor and --subject choose what --show prints: add --show".into(),
        ));
    }
    let subject = s
        .subject
        .as_deref()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    BundleError::Unusable(format!("--subject {h:?} is not 64 hex digits"))
                })
        })
        .transpose()?;
    let action = s
        .action
        .as_deref()
        .map(|a| {
            Action::parse(a).ok_or_else(|| {
                BundleError::Unusable(format!("--action {a:?} is not an action of the format"))
            })
        })
        .transpose()?;
    Ok(Wanted { action, subject })
}

/// Prints the entries of a bundle that verified, those `--action`, `--actor` and
/// `--subject` select.
fn show_entries(args: &VerifyArgs, w: Wanted) -> Result<(), BundleError> {
    let wanted = |e: &Entry| {
        w.action.is_none_or(|a| e.action == a)
            && args.select.actor.as_ref().is_none_or(|x| &e.actor.id == x)
            && w.subject.is_none_or(|s| e.subjects.contains(&s))
    };
    if !args.json {
        println!("{}", show::TABLE_HEADER);
    }
    let mut shown = 0;
    each_line(args, false, |text| {
        if let Some(e) = show::entry_of_line(text)?
            && wanted(&e)
        {
            shown += 1;
            if args.json {
                println!("{}", show::entry_json(&e));
            } else {
                println!("{}", show::table_row(&e));
            }
        }
        Ok(shown)
    })
}

/// Runs the command and returns the process exit status.
pub fn run(args: &VerifyArgs) -> i32 {
    let verified = wanted(args).and_then(|w| {
        let report = verify(args)?;
        if args.show {
            show_entries(args, w)?;
        }
        Ok(report)
    });
    match verified {
        Ok(report) => {
            if args.json {
                println!("{}", json!({"ok": true, "report": report}));
            } else {
                let what = match (&report.subject, &report.project) {
                    (Some(s), Some(p)) => format!(
                        "{} entries of project {p} naming subject {s}, each proven included in",
                        report.entries
                    ),
                    (None, Some(p)) => format!(
                        "{} entries of project {p}, each proven included in",
                        report.entries
                    ),
                    (_, None) => format!(
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
