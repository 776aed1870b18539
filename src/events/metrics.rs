//! Ingestion's signals for operators, exposed at `/metrics`: events by what became of them.

use prometheus::{IntCounterVec, Opts, Registry};

/// What became of an ingested event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Stored.
    Stored,
    /// Already stored under its `$insert_id`.
    Duplicate,
    /// Its person opted out of tracking.
    OptedOut,
    /// The project requires consent and the event did not carry it.
    NoConsent,
    /// Refused as invalid (the sender is told which and why).
    Invalid,
}

impl Fate {
    fn label(self) -> &'static str {
        match self {
            Fate::Stored => "stored",
            Fate::Duplicate => "duplicate",
            Fate::OptedOut => "opted_out",
            Fate::NoConsent => "no_consent",
            Fate::Invalid => "invalid",
        }
    }
}

/// `auditgate_ingest_events_total{outcome}`; clones share their values.
#[derive(Clone)]
pub struct IngestMetrics {
    events: IntCounterVec,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        let opts = Opts::new("events_total", "Ingested events by what became of them.")
            .namespace("auditgate")
            .subsystem("ingest");
        Self {
            events: IntCounterVec::new(opts, &["outcome"]).expect("valid"),
        }
    }
}

impl IngestMetrics {
    /// Counts `n` events that met `fate`.
    pub fn add(&self, fate: Fate, n: usize) {
        if n > 0 {
            self.events
                .with_label_values(&[fate.label()])
                .inc_by(n as u64);
        }
    }

    /// Adds the series to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.events.clone()))
    }
}
