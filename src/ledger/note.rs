//! C2SP signed notes with Ed25519 keys, and keys in the Go `sumdb/note` text forms:
//! `name+keyid+base64(0x01 || public key)` to verify, `PRIVATE+KEY+name+keyid+base64(0x01 || seed)` to sign.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signed-note signature type byte of Ed25519.
const ED25519: u8 = 0x01;
/// The em dash that starts every signature line.
const DASH: &str = "\u{2014} ";

/// Why a key or note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key's text form is malformed.
    #[error("malformed key: {0}")]
    Key(String),
    /// A note's text is malformed.
    #[error("malformed note: {0}")]
    Format(String),
    /// A signature from a known key did not verify.
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    /// No known key signed the note.
    #[error("no trusted key signed the note")]
    Unsigned,
}

/// `SHA-256(name || 0x0A || type || public key)[:4]`, big-endian, as signed-note defines it.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', sig_type]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A public key that verifies note signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `name+keyid+base64(0x01 || key)`, checking that the id matches the key.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key("expected name+keyid+key".into()));
        };
        if !valid_name(name) {
            return Err(NoteError::Key(format!("invalid key name {name:?}")));
        }
        let id = parse_id(id)?;
        let raw = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Key("the key is not base64".into()))?;
        let [ED25519, pk @ ..] = raw.as_slice() else {
            return Err(NoteError::Key(
                "only Ed25519 (type 0x01) keys are supported".into(),
            ));
        };
        let pk: [u8; 32] = pk
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 key is 32 bytes".into()))?;
        let key = VerifyingKey::from_bytes(&pk)
            .map_err(|_| NoteError::Key("not an Ed25519 point".into()))?;
        if key_id(name, ED25519, &pk) != id {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        Signature::from_slice(sig).is_ok_and(|s| self.key.verify_strict(msg, &s).is_ok())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

fn parse_id(id: &str) -> Result<u32, NoteError> {
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::Key("the key id must be 8 hex digits".into()));
    }
    u32::from_str_radix(id, 16).map_err(|_| NoteError::Key("bad key id".into()))
}

/// A private key that signs notes. Its Debug output never shows the key.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl SignerKey {
    /// The key for a 32-byte Ed25519 seed under `name`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key(format!("invalid key name {name:?}")));
        }
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, ED25519, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+name+keyid+base64(0x01 || seed)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::Key("a signer key starts with PRIVATE+KEY+".into()))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key("expected PRIVATE+KEY+name+keyid+key".into()));
        };
        let id = parse_id(id)?;
        let raw = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Key("the key is not base64".into()))?;
        let [ED25519, seed @ ..] = raw.as_slice() else {
            return Err(NoteError::Key(
                "only Ed25519 (type 0x01) keys are supported".into(),
            ));
        };
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 seed is 32 bytes".into()))?;
        let key = Self::from_seed(name, seed)?;
        if key.id != id {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        Ok(key)
    }

    /// The text form, to store in a file readable only by the service.
    pub fn to_private_text(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            STANDARD.encode(raw)
        )
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A raw Ed25519 signature over `msg`.
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}+{:08x}, <redacted>)", self.name, self.id)
    }
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

/// A parsed signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Its signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

/// Most signature lines a note may carry.
pub const MAX_SIGNATURES: usize = 100;

impl Note {
    /// Parses a signed note: text, a blank line, then one or more signature lines.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::Format(m.to_owned());
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad("control characters other than newline"));
        }
        if !note.ends_with('\n') {
            return Err(bad("a note ends with a newline"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let text = &note[..=split];
        let sigs = &note[split + 2..];
        let mut signatures = Vec::new();
        for line in sigs.strip_suffix('\n').unwrap_or(sigs).split('\n') {
            let rest = line
                .strip_prefix(DASH)
                .ok_or_else(|| bad("a signature line starts with an em dash and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line is name and signature"))?;
            if !valid_name(name) {
                return Err(bad("invalid key name in a signature line"));
            }
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("a signature is too short"));
            }
            let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            signatures.push(NoteSignature {
                name: name.to_owned(),
                id,
                signature: raw[4..].to_vec(),
            });
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(bad("too many signatures"));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Checks the signatures against trusted keys: unknown ones are ignored, a known one that
    /// fails rejects the note, and at least one known one must verify. Returns the keys that did.
    pub fn verify<'k>(
        &self,
        trusted: &'k [VerifierKey],
    ) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut ok = Vec::new();
        for sig in &self.signatures {
            let Some(key) = trusted
                .iter()
                .find(|k| k.name == sig.name && k.id == sig.id)
            else {
                continue;
            };
            if !key.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature(format!(
                    "{}+{:08x}",
                    key.name, key.id
                )));
            }
            if !ok.contains(&key) {
                ok.push(key);
            }
        }
        if ok.is_empty() {
            Err(NoteError::Unsigned)
        } else {
            Ok(ok)
        }
    }
}

/// Signs `text` (which must end in a newline) with each key, in order.
pub fn sign(text: &str, keys: &[&SignerKey]) -> Result<String, NoteError> {
    if !text.ends_with('\n') || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Format(
            "note text must end in a newline and hold no control characters".into(),
        ));
    }
    let mut out = format!("{text}\n");
    for key in keys {
        let mut raw = key.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&key.sign_raw(text.as_bytes()));
        out.push_str(&format!("{DASH}{} {}\n", key.name, STANDARD.encode(raw)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_ids_are_checked() {
        let k = SignerKey::from_seed("example.com/log", [7; 32]).unwrap();
        let v = VerifierKey::parse(&k.verifier().to_string()).unwrap();
        assert_eq!(v, k.verifier());
        let again = SignerKey::parse(&k.to_private_text()).unwrap();
        assert_eq!(again.verifier(), k.verifier());
        assert!(!format!("{k:?}").contains(&k.to_private_text()[20..]));
        let text = k.verifier().to_string();
        let wrong_id = text.replacen(&format!("+{:08x}+", k.id), "+00000000+", 1);
        assert!(VerifierKey::parse(&wrong_id).is_err());
        assert!(SignerKey::from_seed("bad name", [1; 32]).is_err());
    }

    #[test]
    fn notes_verify_only_with_known_good_signatures() {
        let a = SignerKey::from_seed("a.example", [1; 32]).unwrap();
        let b = SignerKey::from_seed("b.example", [2; 32]).unwrap();
        let signed = sign("hello\nworld\n", &[&a, &b]).unwrap();
        let note = Note::parse(&signed).unwrap();
        assert_eq!(note.text, "hello\nworld\n");
        assert_eq!(note.verify(&[a.verifier()]).unwrap().len(), 1);
        assert_eq!(note.verify(&[a.verifier(), b.verifier()]).unwrap().len(), 2);
        let c = SignerKey::from_seed("c.example", [3; 32]).unwrap();
        assert_eq!(note.verify(&[c.verifier()]), Err(NoteError::Unsigned));
        let tampered = Note::parse(&signed.replacen("world", "w0rld", 1)).unwrap();
        assert!(matches!(
            tampered.verify(&[a.verifier()]),
            Err(NoteError::BadSignature(_))
        ));
        assert!(Note::parse("no signatures\n").is_err());
        assert!(Note::parse("text\n\nnot a signature\n").is_err());
    }
}
