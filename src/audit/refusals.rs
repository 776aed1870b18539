//! Repeated anonymous refusals, counted instead of logged one by one: the first refusal of a
//! client address for a reason is logged at once; the repeats within the next minute become
//! one summary entry (how many, first and last time). Refusals stay visible in the log, but
//! a client sending bad tokens cannot make it grow faster than one entry per minute and
//! reason, whatever its rate.

use std::collections::HashMap;
use std::sync::Mutex;

/// How long repeats are gathered into one summary.
pub const WINDOW_MS: i64 = 60_000;
/// Most (address, reason) pairs tracked; beyond, repeats from new addresses are counted
/// under no address.
const MAX_KEYS: usize = 10_000;

/// Where a refusal came from and why.
pub type Key = (Option<String>, String);

#[derive(Debug, Clone)]
struct Window {
    opened_ms: i64,
    repeats: u64,
    first_repeat_ms: i64,
    last_repeat_ms: i64,
}

/// Repeats gathered for one (address, reason) over a window that has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The client address, or `None` for addresses counted together.
    pub client_ip: Option<String>,
    /// The reason given.
    pub reason: String,
    /// Refusals after the one logged at the window's start.
    pub repeats: u64,
    /// When the first and last of them happened (ms since the epoch).
    pub first_ms: i64,
    /// When the last of them happened.
    pub last_ms: i64,
}

/// The open windows.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<HashMap<Key, Window>>);

impl Refusals {
    /// Notes a refusal at `now_ms`: true if it opens a window (log it now), false if it is a
    /// repeat (counted for the window's summary).
    pub fn note(&self, key: Key, now_ms: i64) -> bool {
        let mut open = self.0.lock().expect("not poisoned");
        let key = if open.len() >= MAX_KEYS && !open.contains_key(&key) {
            (None, key.1)
        } else {
            key
        };
        match open.get_mut(&key) {
            Some(w) if now_ms < w.opened_ms + WINDOW_MS => {
                if w.repeats == 0 {
                    w.first_repeat_ms = now_ms;
                }
                w.repeats += 1;
                w.last_repeat_ms = now_ms;
                false
            }
            // A window that ended unflushed, or none: this one is logged and opens a new one.
            _ => {
                open.insert(
                    key,
                    Window {
                        opened_ms: now_ms,
                        repeats: 0,
                        first_repeat_ms: now_ms,
                        last_repeat_ms: now_ms,
                    },
                );
                true
            }
        }
    }

    /// Closes the windows that ended by `now_ms` (all of them with `all`), returning the
    /// summaries of those that had repeats.
    pub fn due(&self, now_ms: i64, all: bool) -> Vec<Summary> {
        let mut open = self.0.lock().expect("not poisoned");
        let ended: Vec<Key> = open
            .iter()
            .filter(|(_, w)| all || now_ms >= w.opened_ms + WINDOW_MS)
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| {
                let w = open.remove(&k)?;
                (w.repeats > 0).then_some(Summary {
                    client_ip: k.0,
                    reason: k.1,
                    repeats: w.repeats,
                    first_ms: w.first_repeat_ms,
                    last_ms: w.last_repeat_ms,
                })
            })
            .collect()
    }

    /// Puts summaries back (their entry could not be written): counted again next time.
    pub fn restore(&self, summaries: Vec<Summary>, now_ms: i64) {
        let mut open = self.0.lock().expect("not poisoned");
        for s in summaries {
            let w = open.entry((s.client_ip, s.reason)).or_insert(Window {
                opened_ms: now_ms - WINDOW_MS,
                repeats: 0,
                first_repeat_ms: s.first_ms,
                last_repeat_ms: s.last_ms,
            });
            w.repeats += s.repeats;
            w.first_repeat_ms = w.first_repeat_ms.min(s.first_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_repeats_are_summarised_per_address_and_reason() {
        let r = Refusals::default();
        let key = |ip: &str, why: &str| (Some(ip.to_owned()), why.to_owned());
        assert!(r.note(key("1.1.1.1", "bad token"), 0));
        assert!(r.note(key("2.2.2.2", "bad token"), 5), "another address");
        assert!(r.note(key("1.1.1.1", "revoked"), 5), "another reason");
        for t in 1..1000 {
            assert!(!r.note(key("1.1.1.1", "bad token"), t * 10));
        }
        assert!(r.due(59_999, false).is_empty(), "the window is still open");
        let due = r.due(60_000, false);
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0],
            Summary {
                client_ip: Some("1.1.1.1".into()),
                reason: "bad token".into(),
                repeats: 999,
                first_ms: 10,
                last_ms: 9990,
            }
        );
        assert!(r.note(key("1.1.1.1", "bad token"), 60_001), "a new window");
        assert!(r.due(i64::MAX, true).is_empty(), "no repeats, no summary");
    }
}
