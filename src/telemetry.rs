//! Logging: readable lines by default, JSON on request, and one line per request that names
//! its route pattern but never its path or query string, which can carry an end user's id.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides `default_level`. Safe to call twice.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person watching; a file or a journal gets plain text.
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What a request's span is given when the route is not one of ours (its path is not logged).
const NO_ROUTE: &str = "(no route)";

/// When a request arrived, for its duration.
#[derive(Clone, Copy)]
struct Arrived(Instant);

/// The span and the closing line of every request: method, route pattern, request id, the
/// principal once authenticated, status and duration. No path, query or error text for 4xx:
/// those echo what the caller sent, end-user ids included.
pub struct RequestLine;

impl RootSpanBuilder for RequestLine {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| NO_ROUTE.to_owned());
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        request.extensions_mut().insert(Arrived(Instant::now()));
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            request_id = %id,
            principal = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, arrived, failure) = match outcome {
            Ok(response) => (
                response.status(),
                response.request().extensions().get::<Arrived>().copied(),
                response.response().error().map(|e| e.to_string()),
            ),
            Err(e) => (
                e.as_response_error().status_code(),
                None,
                Some(e.to_string()),
            ),
        };
        // Microseconds are noise in a log line.
        let ms = arrived.map_or(0.0, |a| (a.0.elapsed().as_secs_f64() * 1e6).round() / 1e3);
        let status = status.as_u16();
        if status >= 500 {
            let failure = failure.unwrap_or_default();
            tracing::error!(parent: &span, status, duration_ms = ms, error = %failure, "request failed");
        } else {
            tracing::info!(parent: &span, status, duration_ms = ms, "request");
        }
    }
}

/// Names the authenticated caller on the current request's line.
pub fn record_principal(name: &str) {
    Span::current().record("principal", name);
}
