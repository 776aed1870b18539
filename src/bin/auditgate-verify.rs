//! The stand-alone offline verifier: builds from the ledger alone (`--no-default-features`).

use clap::Parser;

fn main() {
    let args = auditgate::verify_cli::VerifyArgs::parse();
    std::process::exit(auditgate::verify_cli::run(&args));
}
