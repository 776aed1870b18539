//! The `auditgate` binary: everything lives in the library.

/// The service allocates and frees many small strings per event (JSON in, rows out) on
/// several threads at once; glibc's allocator spent about a quarter of an ingestion's CPU time
/// on that (perf, 2026-12-07), mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
