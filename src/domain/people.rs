//! What the store keeps about people that the sign-in services interpret.

use super::Timestamp;

/// What is remembered per person between attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TotpState {
    /// The last time step accepted; it and earlier steps are never accepted again.
    pub last_step: Option<u64>,
    /// Consecutive failures.
    pub failures: u32,
    /// Locked until this time, if locked.
    pub locked_until: Option<Timestamp>,
}
