//! Recovery codes for 2-step verification: ten single-use codes, shown once, stored only as
//! argon2id hashes (OWASP's parameters: 19 MiB, 2 passes, 1 lane).

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Codes per batch.
pub const BATCH: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789x";

/// One recovery code in clear, as shown once: `xxxx-xxxx-xxxx` (60 random bits). Debug hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// The code, to show its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Normalises what a person typed (case, spaces and dashes do not matter).
    pub fn from_input(input: &str) -> Self {
        let raw: String = input
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let groups: Vec<&str> = raw
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        Self(groups.join("-"))
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// A new batch: the codes to show once, and the hashes to store (replacing any earlier batch).
pub fn generate() -> Result<(Vec<RecoveryCode>, Vec<String>), argon2::password_hash::Error> {
    let mut codes = Vec::with_capacity(BATCH);
    let mut hashes = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let mut bytes = [0u8; 12];
        rand::fill(&mut bytes);
        let chars: String = bytes
            .iter()
            .map(|b| ALPHABET[(b & 31) as usize] as char)
            .collect();
        let code = RecoveryCode::from_input(&chars);
        hashes.push(
            Argon2::default()
                .hash_password(code.0.as_bytes())?
                .to_string(),
        );
        codes.push(code);
    }
    Ok((codes, hashes))
}

/// Which stored, unused hash `input` matches, if any. The caller marks it used (single use).
pub fn find(input: &RecoveryCode, unused: &[String]) -> Option<usize> {
    unused.iter().position(|h| {
        PasswordHash::new(h).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(input.0.as_bytes(), &parsed)
                .is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_hashed_with_argon2id_and_match_once_typed_loosely() {
        let (codes, hashes) = generate().unwrap();
        assert_eq!((codes.len(), hashes.len()), (BATCH, BATCH));
        assert!(
            hashes
                .iter()
                .all(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"))
        );
        assert!(
            hashes
                .iter()
                .all(|h| !codes.iter().any(|c| h.contains(c.expose())))
        );
        let distinct: std::collections::HashSet<_> =
            codes.iter().map(|c| c.expose().to_owned()).collect();
        assert_eq!(distinct.len(), BATCH);
        let typed = RecoveryCode::from_input(&codes[3].expose().to_uppercase().replace('-', " "));
        assert_eq!(find(&typed, &hashes), Some(3));
        // Single use: once the caller removes it, the same code finds nothing.
        let mut unused = hashes.clone();
        unused.remove(3);
        assert_eq!(find(&typed, &unused), None);
        assert_eq!(
            find(&RecoveryCode::from_input("abcd-efgh-jkmn"), &hashes),
            None
        );
        assert_eq!(format!("{:?}", codes[0]), "RecoveryCode(<redacted>)");
    }
}
