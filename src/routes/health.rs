//! Liveness, readiness and metrics for operators.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, TextEncoder};

use crate::error::AppError;
use crate::state::AppState;

/// `/healthz`: the process answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// `/readyz`: what was checked.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`.
    status: &'static str,
    /// The backend: `sqlite` or `postgres`.
    database: &'static str,
    /// `ok`: the audit log's last write succeeded, or a probe write did.
    audit_log: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "The database answers and the audit log's last write succeeded", body = Readiness),
    (status = 503, description = "The database does not answer or the audit log cannot be written", content_type = "application/problem+json"),
))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let timeout = Duration::from_millis(state.settings.database.acquire_timeout_ms);
    let checks = async {
        state.store.ping().await?;
        state.audit.probe_writable().await.map_err(|e| {
            crate::store::StoreError::Unavailable(format!("{e}; data requests fail closed"))
        })
    };
    match tokio::time::timeout(timeout, checks).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: state.store.backend(),
            audit_log: "ok",
        })),
        Ok(Err(e)) => Err(AppError::Unavailable(format!("not ready: {e}"))),
        Err(_) => Err(AppError::Unavailable(
            "the database did not answer in time".into(),
        )),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content((String = "text/plain")))))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    // Jobs by state are read now, from a small table; if the database does not answer in a
    // moment, the last values stand and the rest is still served.
    let timeout = Duration::from_millis(state.settings.database.acquire_timeout_ms);
    if let Ok(Ok(states)) =
        tokio::time::timeout(timeout, state.store.subject_request_states()).await
    {
        state.subject_requests.reset();
        for (kind, job_state, n) in states {
            state
                .subject_requests
                .with_label_values(&[kind.as_str(), job_state.as_str()])
                .set(n);
        }
    }
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    encoder
        .encode(&state.metrics.gather(), &mut buf)
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(buf))
}
