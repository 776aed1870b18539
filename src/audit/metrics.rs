//! The audit log's signals for operators, exposed at `/metrics` (names documented in the
//! README): what was appended, how commits went, and how fresh the signed head is.

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::ledger::entry::{Action, Outcome};

/// The appender's counters and gauges; clones share their values.
#[derive(Clone)]
pub struct LogMetrics {
    /// Entries committed, by action and outcome: sign-ins and their failures, 2-step
    /// verification, lockouts, subject-request jobs, retention sweeps, every access.
    entries: IntCounterVec,
    /// Commits (each a group of entries).
    pub commits: IntCounter,
    /// Entries per commit.
    pub group_size: Histogram,
    /// Seconds from a group's start to its commit.
    pub commit_seconds: Histogram,
    /// Commits that failed or timed out (their requests failed closed).
    pub commit_failures: IntCounter,
    /// Requests answered 503 because their entry was not durably written in time.
    pub fail_closed: IntCounter,
    /// Entries in the log after the last commit.
    pub tree_size: IntGauge,
    /// When the last checkpoint was signed (Unix seconds).
    pub last_checkpoint: Gauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .namespace("auditgate")
        .subsystem("audit")
}

impl Default for LogMetrics {
    fn default() -> Self {
        let counter = |name, help| IntCounter::with_opts(opts(name, help)).expect("valid");
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let o = opts(name, help);
            let h = HistogramOpts::from(o).buckets(buckets);
            Histogram::with_opts(h).expect("valid")
        };
        Self {
            entries: IntCounterVec::new(
                opts(
                    "entries_total",
                    "Audit entries committed, by action and outcome.",
                ),
                &["action", "outcome"],
            )
            .expect("valid"),
            commits: counter("commits_total", "Commits of groups of audit entries."),
            group_size: histogram(
                "commit_group_size",
                "Audit entries per commit.",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0,
                ],
            ),
            commit_seconds: histogram(
                "commit_duration_seconds",
                "Time to commit a group of audit entries (on SQLite with the events that ride with them).",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            commit_failures: counter(
                "commit_failures_total",
                "Commits of audit entries that failed or timed out.",
            ),
            fail_closed: counter(
                "fail_closed_total",
                "Requests refused (503) because their audit entry could not be written in time.",
            ),
            tree_size: IntGauge::with_opts(opts("tree_size", "Entries in the audit log."))
                .expect("valid"),
            last_checkpoint: Gauge::with_opts(opts(
                "last_checkpoint_timestamp_seconds",
                "When the last checkpoint was signed, in Unix seconds.",
            ))
            .expect("valid"),
        }
    }
}

impl LogMetrics {
    /// Counts one committed entry.
    pub fn committed(&self, action: Action, outcome: Outcome) {
        self.entries
            .with_label_values(&[action.as_str(), outcome.as_str()])
            .inc();
    }

    /// Adds every series to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.entries.clone()))?;
        registry.register(Box::new(self.commits.clone()))?;
        registry.register(Box::new(self.group_size.clone()))?;
        registry.register(Box::new(self.commit_seconds.clone()))?;
        registry.register(Box::new(self.commit_failures.clone()))?;
        registry.register(Box::new(self.fail_closed.clone()))?;
        registry.register(Box::new(self.tree_size.clone()))?;
        registry.register(Box::new(self.last_checkpoint.clone()))?;
        Ok(())
    }
}
