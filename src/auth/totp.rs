//! 2-step verification with TOTP (RFC 6238): the checks, as pure functions of the secret, the
//! code, the last accepted step and the time. Storage, counting and pages come with sign-in.
//!
//! Parameters every authenticator app accepts: HMAC-SHA-1, 6 digits, 30-second steps, one step
//! of clock skew each way. A time step is accepted once per person. After
//! [`TotpPolicy::max_failures`] consecutive failures (5 by default, far under NIST SP 800-63B's
//! cap of 100), verification locks for [`TotpPolicy::lockout_ms`] (15 minutes by default).

use std::fmt;

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Totp};

use crate::domain::Timestamp;

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;

/// A code as a person typed it: exactly six digits once spaces are removed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl TotpCode {
    /// Accepts `123456` or `123 456`.
    pub fn parse(input: &str) -> Result<Self, TotpError> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(TotpError::Malformed)
        }
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode(******)")
    }
}

/// A person's 160-bit TOTP secret. Debug never shows it.
#[derive(Clone)]
pub struct TotpSecret([u8; 20]);

impl TotpSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut b = [0u8; 20];
        rand::fill(&mut b);
        Self(b)
    }

    /// A secret from its bytes (as stored, once decrypted).
    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The bytes, to encrypt and store.
    pub fn expose(&self) -> &[u8; 20] {
        &self.0
    }

    fn totp(&self) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(1)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0)
            .build()
            .expect("a 160-bit secret with RFC 6238 parameters is valid")
    }

    /// The `otpauth://` URI authenticator apps scan, naming the service and the person.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(1)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0)
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .and_then(|t| t.to_url())
            .unwrap_or_default()
    }

    /// The secret in base32, for typing into an app by hand.
    pub fn base32(&self) -> String {
        totp_rs::Secret::new(Box::new(self.0)).to_base32()
    }

    /// A QR code of `uri` as an inline SVG image.
    pub fn qr_svg(uri: &str) -> String {
        qrcode::QrCode::new(uri.as_bytes())
            .map(|code| {
                code.render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(200, 200)
                    .build()
            })
            .unwrap_or_default()
    }

    /// The code for the step containing `time` (what an authenticator app shows).
    pub fn code_at(&self, time: Timestamp) -> String {
        self.totp().generate(secs(time)).to_string()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

fn secs(t: Timestamp) -> u64 {
    (t.millis().max(0) / 1000) as u64
}

/// How strict verification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpPolicy {
    /// Consecutive failures that lock verification.
    pub max_failures: u32,
    /// How long a lock lasts, in milliseconds.
    pub lockout_ms: i64,
}

impl Default for TotpPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout_ms: 15 * 60 * 1000,
        }
    }
}

pub use crate::domain::TotpState;

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not six digits.
    #[error("a code is six digits")]
    Malformed,
    /// Verification is locked after too many failures.
    #[error("2-step verification is locked after repeated failures; try again later")]
    Locked {
        /// Until when.
        until: Timestamp,
    },
    /// The code was already used (a replay).
    #[error("this code was already used")]
    Replayed,
    /// The code is wrong (or too old).
    #[error("the code is not valid")]
    Wrong,
}

/// Checks `code` at `now` against the steps around it: the step it matches, unless it is
/// no later than `last_step` (a replay). Failures are counted, and locks kept, by the store,
/// atomically, before this is called; the store also refuses a step a parallel request
/// accepted meanwhile.
pub fn verify(
    secret: &TotpSecret,
    code: &TotpCode,
    now: Timestamp,
    last_step: Option<u64>,
) -> Result<u64, TotpError> {
    let totp = secret.totp();
    let origin = secs(now) / STEP_SECS;
    // Compare every candidate step in constant time rather than stopping at the first match.
    let mut matched = None;
    for step in origin.saturating_sub(1)..=origin + 1 {
        let expected = totp.generate(step * STEP_SECS).to_string();
        if bool::from(expected.as_bytes().ct_eq(code.0.as_bytes())) {
            matched = Some(step);
        }
    }
    match matched {
        Some(step) if last_step.is_some_and(|last| step <= last) => Err(TotpError::Replayed),
        Some(step) => Ok(step),
        None => Err(TotpError::Wrong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: (time, SHA-1, SHA-256, SHA-512) with 8 digits and the RFC's seeds.
    const APPENDIX_B: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let seed = |n: usize| {
            b"1234567890"
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect::<Vec<u8>>()
        };
        let totp = |alg, seed: Vec<u8>| {
            Builder::new()
                .with_algorithm(alg)
                .with_digits(8)
                .with_step_duration(30)
                .with_secret(seed)
                .build()
                .unwrap()
        };
        let (sha1, sha256, sha512) = (
            totp(Algorithm::SHA1, seed(20)),
            totp(Algorithm::SHA256, seed(32)),
            totp(Algorithm::SHA512, seed(64)),
        );
        for (t, a, b, c) in APPENDIX_B {
            assert_eq!(sha1.generate(t).to_string(), a, "SHA-1 at {t}");
            assert_eq!(sha256.generate(t).to_string(), b, "SHA-256 at {t}");
            assert_eq!(sha512.generate(t).to_string(), c, "SHA-512 at {t}");
        }
    }

    const T: i64 = 1_700_000_010_000; // 10 s into a step

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_fresh_code_passes_once_and_its_replay_is_refused() {
        let s = TotpSecret::generate();
        let code = TotpCode::parse(&s.code_at(at(T))).unwrap();
        let step = verify(&s, &code, at(T), None).unwrap();
        assert_eq!(
            verify(&s, &code, at(T + 5_000), Some(step)),
            Err(TotpError::Replayed)
        );
        let next = TotpCode::parse(&s.code_at(at(T + 30_000))).unwrap();
        assert_eq!(verify(&s, &next, at(T + 30_000), Some(step)), Ok(step + 1));
    }

    #[test]
    fn one_step_of_skew_each_way_and_no_more() {
        let s = TotpSecret::generate();
        for (offset, ok) in [
            (-30_000, true),
            (30_000, true),
            (-60_000, false),
            (60_000, false),
        ] {
            let code = TotpCode::parse(&s.code_at(at(T + offset))).unwrap();
            assert_eq!(
                verify(&s, &code, at(T), None).is_ok(),
                ok,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn codes_and_secrets_are_typed() {
        assert!(TotpCode::parse("123 456").is_ok());
        for bad in ["12345", "1234567", "12a456", ""] {
            assert_eq!(TotpCode::parse(bad), Err(TotpError::Malformed));
        }
        assert_eq!(
            format!("{:?}", TotpCode::parse("123456").unwrap()),
            "TotpCode(******)"
        );
        assert_eq!(
            format!("{:?}", TotpSecret::generate()),
            "TotpSecret(<redacted>)"
        );
    }
}
