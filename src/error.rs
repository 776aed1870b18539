//! The one place where errors become `application/problem+json` responses (RFC 9457).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value};

use crate::store::StoreError;

/// Every error a request can end in; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or invalid credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist, or the caller may not know it does (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is stored (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Well-formed, but the content cannot be processed (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A dependency (the database, the audit log) cannot serve now (503).
    #[error("{0}")]
    Unavailable(String),
    /// The request did not arrive in time (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// Too many requests from one client (429), with the seconds to wait.
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// A problem with extra members, such as an ingestion batch's failed records.
    #[error("{detail}")]
    Detailed {
        /// The HTTP status.
        status: StatusCode,
        /// The human-readable explanation.
        detail: String,
        /// Extension members added to the problem object.
        extensions: Map<String, Value>,
    },
    /// A bug or an unexpected failure (500); the detail is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::domain::ParseError> for AppError {
    /// A value that parsed as JSON but is not acceptable: 422.
    fn from(e: crate::domain::ParseError) -> Self {
        Self::Unprocessable(e.0)
    }
}

impl AppError {
    fn title(status: StatusCode) -> &'static str {
        status.canonical_reason().unwrap_or("Error")
    }

    /// What the client is told: the message, except for internal errors, which are logged.
    fn public_detail(&self) -> String {
        match self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The answer Mixpanel gives a client that asked `verbose=1`, which its SDKs read:
    /// `{"status": 0, "error": why}`, with this error's HTTP status and headers (Retry-After).
    pub fn mixpanel_verbose(&self) -> HttpResponse {
        let body = serde_json::json!({"status": 0, "error": self.public_detail()});
        let mut resp = HttpResponse::build(self.status_code());
        if let Some(wait) = self.retry_after() {
            resp.insert_header(("Retry-After", wait.to_string()));
        }
        let mut resp = resp.json(body);
        resp.extensions_mut().insert(MixpanelAnswer);
        resp
    }

    /// Seconds to wait before trying again, where waiting helps: the rate limit's, or 5 for
    /// every 503 (the database or the log, both passing conditions).
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests(_, wait) => Some(*wait),
            _ if self.status_code() == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Detailed { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = self.public_detail();
        let mut body = Map::new();
        body.insert("type".into(), "about:blank".into());
        body.insert("title".into(), Self::title(status).into());
        body.insert("status".into(), status.as_u16().into());
        body.insert("detail".into(), detail.clone().into());
        // Mixpanel's SDKs read `error` when `status` is not 1; a problem always carries it.
        body.insert("error".into(), detail.into());
        if let Self::Detailed { extensions, .. } = self {
            for (k, v) in extensions {
                body.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let mut resp = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            resp.insert_header(("WWW-Authenticate", "Bearer realm=\"auditgate\""));
        }
        if let Some(wait) = self.retry_after() {
            resp.insert_header(("Retry-After", wait.to_string()));
        }
        if let Self::TooManyRequests(_, wait) = self {
            body.insert("retry_after".into(), (*wait).into());
        }
        resp.content_type(PROBLEM_JSON)
            .body(Value::Object(body).to_string())
    }
}

/// Marks an error answer given in Mixpanel's own shape on purpose (`verbose=1`), which is
/// therefore not rewritten into a problem on its way out.
#[derive(Debug, Clone, Copy)]
pub struct MixpanelAnswer;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl From<crate::access::Denied> for AppError {
    fn from(e: crate::access::Denied) -> Self {
        match e {
            crate::access::Denied::Policy(reason) => Self::Forbidden(reason),
            bug @ crate::access::Denied::Undeclared { .. } => Self::Internal(bug.into()),
        }
    }
}

/// Why an audit entry could not be written: the request must fail closed. (The appender in
/// `audit/` raises it; it is defined here so every conversion to an answer is in this file.)
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditUnavailable(pub String);

impl From<AuditUnavailable> for AppError {
    fn from(e: AuditUnavailable) -> Self {
        AppError::Unavailable(format!("{e}; nothing was returned or changed"))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => {
                Self::Unavailable(format!("the database is unavailable: {msg}"))
            }
            StoreError::Conflict(msg) => Self::Conflict(msg),
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

/// Turns actix's own extractor errors (bad JSON, query strings, paths, sizes) into problems.
pub fn from_actix(err: actix_web::Error) -> actix_web::Error {
    let status = err.as_response_error().status_code();
    let detail = err.to_string();
    let app = match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(detail),
        StatusCode::NOT_FOUND => AppError::NotFound(detail),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::Detailed {
            status,
            detail,
            extensions: Map::new(),
        },
        s if s.is_client_error() => AppError::BadRequest(detail),
        _ => AppError::Internal(anyhow::anyhow!(detail)),
    };
    app.into()
}
