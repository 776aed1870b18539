//! The break-glass administrator's password: argon2id with at least OWASP's parameters,
//! and a lock after repeated failures (time passed in).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Timestamp;

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

/// What a password attempt leaves behind: the failures to store and the lock, if any.
pub fn after_attempt(
    ok: bool,
    failures: u32,
    max_failures: u32,
    lockout_ms: i64,
    now: Timestamp,
) -> (u32, Option<Timestamp>) {
    if ok {
        return (0, None);
    }
    let failures = failures + 1;
    if failures >= max_failures {
        (0, Some(Timestamp::from_millis(now.millis() + lockout_ms)))
    } else {
        (failures, None)
    }
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

    #[test]
    fn repeated_failures_lock() {
        let now = Timestamp::from_millis(1_000);
        let (f, lock) = after_attempt(false, 3, 5, 60_000, now);
        assert_eq!((f, lock), (4, None));
        let (f, lock) = after_attempt(false, 4, 5, 60_000, now);
        assert_eq!((f, lock), (0, Some(Timestamp::from_millis(61_000))));
        assert_eq!(after_attempt(true, 4, 5, 60_000, now), (0, None));
    }
}
