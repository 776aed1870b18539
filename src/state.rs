//! What every handler shares.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::auth::AuthServices;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::events::mixpanel::TimeRules;
use crate::store::SharedStore;

/// The service's shared state, built once at start-up.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: SharedStore,
    /// The time.
    pub clock: SharedClock,
    /// The validated configuration.
    pub settings: Settings,
    /// Metrics exposed at `/metrics`.
    pub metrics: prometheus::Registry,
    /// Ingested events by what became of them (registered in `metrics`).
    pub ingested: crate::events::metrics::IngestMetrics,
    /// Subject requests by kind and state, read when `/metrics` is (registered in `metrics`).
    pub subject_requests: prometheus::IntGaugeVec,
    /// The audit log every data access is written to first.
    pub audit: AuditLog,
    /// Sign-in: providers, sealing key, session rules.
    pub auth: Arc<AuthServices>,
    /// Wakes the subject-request worker when a request may run.
    pub jobs: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// The rules ingested records' times are judged by, as of now.
    pub fn time_rules(&self) -> TimeRules {
        TimeRules {
            now: self.clock.now(),
            max_future_ms: self.settings.ingest.max_future_secs * 1000,
        }
    }
}
