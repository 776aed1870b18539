//! Encryption at rest for secrets the database must hold but must not be able to read (TOTP
//! secrets): ChaCha20-Poly1305 under a key kept in a file outside the database, each ciphertext
//! bound to the row it belongs to.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Version byte at the front of every sealed value, for future key or cipher changes.
const VERSION: u8 = 1;

/// The sealing key. Debug never shows it.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// Reads the key (64 hex digits), or creates it (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        if !path.exists() {
            let mut key = [0u8; 32];
            rand::fill(&mut key);
            crate::audit::keys::create_secret_file(path, &format!("{}\n", hex::encode(key)))?;
            return Ok(Self(key));
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .with_context(|| format!("{} must hold 64 hex digits", path.display()))
    }

    /// A key from its 32 bytes (read from the key file).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// Encrypts `secret` for the row identified by `bound_to` (e.g. the person's id).
    pub fn seal(&self, secret: &[u8], bound_to: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce);
        let cipher = ChaCha20Poly1305::new(&Key::from(self.0));
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: bound_to,
                },
            )
            .expect("encryption of a short secret cannot fail");
        let mut out = vec![VERSION];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value sealed for `bound_to`; `None` if it was altered, moved to another row,
    /// or sealed under another key.
    pub fn open(&self, sealed: &[u8], bound_to: &[u8]) -> Option<Vec<u8>> {
        let [VERSION, rest @ ..] = sealed else {
            return None;
        };
        if rest.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(12);
        let cipher = ChaCha20Poly1305::new(&Key::from(self.0));
        let nonce = Nonce::try_from(nonce).ok()?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: bound_to,
                },
            )
            .ok()
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let key = SealKey::from_bytes([7; 32]);
        let sealed = key.seal(b"totp secret 20 bytes", b"person-1");
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "no plaintext at rest"
        );
        assert_eq!(
            key.open(&sealed, b"person-1").as_deref(),
            Some(&b"totp secret 20 bytes"[..])
        );
        assert_eq!(key.open(&sealed, b"person-2"), None, "moved to another row");
        assert_eq!(
            SealKey::from_bytes([8; 32]).open(&sealed, b"person-1"),
            None,
            "another key"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&altered, b"person-1"), None);
        assert_ne!(
            key.seal(b"x", b"p"),
            key.seal(b"x", b"p"),
            "a fresh nonce each time"
        );
        assert_eq!(format!("{key:?}"), "SealKey(<redacted>)");
    }
}
