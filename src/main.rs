//! The `auditgate` binary: everything lives in the library.

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match auditgate::cli::run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("auditgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
