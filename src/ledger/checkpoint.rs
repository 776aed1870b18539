//! C2SP `tlog-checkpoint` bodies: origin, tree size and root hash, with no extension lines.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::merkle::Hash;
use super::note::{self, Note, NoteError, SignerKey, VerifierKey};

/// A tree head: which log, how many entries, and the root that commits to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, also its key name.
    pub origin: String,
    /// Entries in the tree.
    pub size: u64,
    /// The RFC 6962 root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint body, refusing extension lines (nobody attests them).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::Format(format!("checkpoint: {m}"));
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("must end in a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad("must be exactly origin, size and root hash lines"));
        };
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = size
            .parse()
            .ok()
            .filter(|_| size_ok)
            .ok_or_else(|| bad("size is not a decimal without leading zeros"))?;
        let raw = STANDARD
            .decode(root)
            .map_err(|_| bad("root hash is not base64"))?;
        let root: Hash = raw
            .try_into()
            .map_err(|_| bad("root hash is not 32 bytes"))?;
        let cp = Self {
            origin: origin.to_owned(),
            size,
            root,
        };
        if cp.to_text() != text {
            return Err(bad("not in canonical form"));
        }
        Ok(cp)
    }

    /// The signed note of this checkpoint.
    pub fn sign(&self, keys: &[&SignerKey]) -> Result<String, NoteError> {
        note::sign(&self.to_text(), keys)
    }
}

/// A checkpoint with the keys that verified its signatures.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint<'k> {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Trusted keys whose signatures verified.
    pub signed_by: Vec<&'k VerifierKey>,
}

/// Parses a signed checkpoint and checks its signatures against trusted keys.
pub fn open<'k>(
    signed_note: &str,
    trusted: &'k [VerifierKey],
) -> Result<SignedCheckpoint<'k>, NoteError> {
    let note = Note::parse(signed_note)?;
    let signed_by = note.verify(trusted)?;
    let checkpoint = Checkpoint::parse(&note.text)?;
    Ok(SignedCheckpoint {
        checkpoint,
        signed_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_sign_parse_and_refuse_extensions() {
        let key = SignerKey::from_seed("example.com/log", [4; 32]).unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 12,
            root: [7; 32],
        };
        let signed = cp.sign(&[&key]).unwrap();
        let trusted = [key.verifier()];
        assert_eq!(open(&signed, &trusted).unwrap().checkpoint, cp);
        assert!(
            Checkpoint::parse(
                "example.com/log\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\nextra\n"
            )
            .is_err()
        );
        assert!(
            Checkpoint::parse(
                "example.com/log\n012\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
            )
            .is_err()
        );
        let other = SignerKey::from_seed("example.com/log", [5; 32]).unwrap();
        assert!(open(&cp.sign(&[&other]).unwrap(), &trusted).is_err());
    }
}
