//! The break-glass administrator's password: argon2id with at least OWASP's parameters,
//! checked off the async workers. Failures are counted, and locks kept, by the store.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted (NIST SP 800-63B asks at least 8; an administrator gets more).
pub const MIN_LENGTH: usize = 15;

/// argon2id, m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum.
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// Hashes a new password; refuses one that is too short.
pub fn hash(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!(
            "the password must be at least {MIN_LENGTH} characters"
        ));
    }
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `stored` (constant time inside argon2).
pub fn matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Runs argon2 checks on blocking threads, a few at a time: each takes tens of
/// milliseconds and 19 MiB, so a burst of sign-ins neither starves the async workers that
/// serve data reads nor runs the machine out of memory. Callers queue for a turn.
#[derive(Debug, Clone)]
pub struct Checker {
    turns: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Checker {
    /// A checker running at most `at_once` checks in parallel.
    pub fn new(at_once: usize) -> Self {
        Self {
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once.max(1))),
        }
    }

    /// One check at a time per core the machine has, up to four.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores.min(4))
    }

    /// Whether `password` matches `stored`, or, with no `stored`, the same work against a
    /// throwaway hash (so that timing does not tell which accounts exist).
    pub async fn matches(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(_turn) = self.turns.acquire().await else {
            return false;
        };
        let (password, stored) = (password.to_owned(), stored.map(str::to_owned));
        tokio::task::spawn_blocking(move || match stored {
            Some(stored) => matches(&password, &stored),
            None => {
                let _ = matches(&password, dummy_hash());
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// An argon2id hash of a random string, checked against when no account matches.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash(&super::session::random_text()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_owasp_parameters() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(matches("correct horse battery staple", &h));
        assert!(!matches("correct horse battery stapl", &h));
        assert!(hash("short").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_run_off_the_workers_a_few_at_a_time() {
        let h = hash("correct horse battery staple").unwrap();
        let checker = Checker::new(2);
        let tries: Vec<_> = (0..6)
            .map(|i| {
                let (c, h) = (checker.clone(), h.clone());
                tokio::spawn(async move {
                    let guess = if i == 0 {
                        "correct horse battery staple"
                    } else {
                        "wrong"
                    };
                    c.matches(guess, Some(&h)).await
                })
            })
            .collect();
        let mut right = 0;
        for t in tries {
            right += usize::from(t.await.unwrap());
        }
        assert_eq!(right, 1);
        assert!(!checker.matches("anything at all", None).await);
        assert_eq!(checker.turns.available_permits(), 2);
    }
}
