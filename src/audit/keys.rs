//! The checkpoint signing key and the pseudonym secret: files the service creates on first
//! start (mode 0600) and never stores in the database.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::{DistinctId, ProjectId};
use crate::ledger::merkle::Hash;
use crate::ledger::note::SignerKey;

/// Writes a new secret file readable only by its owner; refuses to overwrite.
pub(crate) fn create_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    b
}

/// Reads the signing key, or creates one named `origin` if the file does not exist.
pub fn load_or_create_signer(path: &Path, origin: &str) -> anyhow::Result<SignerKey> {
    if !path.exists() {
        let key = SignerKey::from_seed(origin, random32())?;
        create_secret_file(path, &format!("{}\n", key.to_private_text()))?;
        return Ok(key);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = SignerKey::parse(text.trim())
        .with_context(|| format!("{} holds no signing key", path.display()))?;
    anyhow::ensure!(
        key.name() == origin,
        "the signing key in {} is named {:?} but audit.origin is {origin:?}",
        path.display(),
        key.name()
    );
    Ok(key)
}

/// A lock on `<key file>.lock`: held shared by every process that signs or appends with the
/// key (the service, CLI commands), and exclusively by `keys rotate`, so a rotation never
/// leaves a running service signing with a retired key. Released when dropped or the process
/// ends, however it ends.
#[derive(Debug)]
pub struct KeyFileLock(#[allow(dead_code)] std::fs::File);

/// Takes the key file's lock, shared or exclusive, without waiting.
pub fn lock_key_file(path: &Path, exclusive: bool) -> anyhow::Result<KeyFileLock> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = path.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let taken = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match taken {
        Ok(()) => Ok(KeyFileLock(file)),
        Err(std::fs::TryLockError::WouldBlock) if exclusive => anyhow::bail!(
            "the signing key {} is in use by a running auditgate service or command \
             (it holds {}): stop every service using this key, then rotate",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the signing key {} is being rotated (auditgate keys rotate holds {}): start again once it is done",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
}

/// Generates the next signing key under the same name.
pub fn next_signer(current: &SignerKey) -> anyhow::Result<SignerKey> {
    Ok(SignerKey::from_seed(current.name(), random32())?)
}

/// Puts `next` in `path`, keeping the previous key beside it as `<path>.retired-<keyid>`.
pub fn replace_signer_file(
    path: &Path,
    previous: &SignerKey,
    next: &SignerKey,
) -> anyhow::Result<()> {
    let staged = path.with_extension("next");
    let _ = std::fs::remove_file(&staged);
    create_secret_file(&staged, &format!("{}\n", next.to_private_text()))?;
    let retired = format!(
        "{}.retired-{:08x}",
        path.display(),
        previous.verifier().id()
    );
    std::fs::rename(path, &retired).with_context(|| format!("keeping the old key as {retired}"))?;
    std::fs::rename(&staged, path)
        .with_context(|| format!("installing the new key at {}", path.display()))?;
    Ok(())
}

/// The deployment secret behind pseudonyms. Debug never shows it.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

const LOOKUP_LABEL: &[u8] = b"auditgate/v1/subject-lookup\n";
const PSEUDONYM_LABEL: &[u8] = b"auditgate/v1/pseudonym\n";

impl PseudonymKey {
    /// Reads the secret (64 hex digits), or creates it if the file does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            let key = random32();
            create_secret_file(path, &format!("{}\n", hex::encode(key)))?;
            return Ok(Self(key));
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        raw.map(Self)
            .with_context(|| format!("{} must hold 64 hex digits", path.display()))
    }

    /// A key from raw bytes (tests and tools).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Hash {
        let mut m =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(label);
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Where a person's salt is filed: keyed, so the table alone does not list who is in it.
    pub fn lookup(&self, project: &ProjectId, person: &DistinctId) -> Hash {
        self.mac(
            LOOKUP_LABEL,
            &[project.as_str().as_bytes(), person.as_str().as_bytes()],
        )
    }

    /// The pseudonym written into the log: needs both this secret and the person's salt.
    pub fn pseudonym(&self, salt: &[u8], project: &ProjectId, person: &DistinctId) -> Hash {
        self.mac(
            PSEUDONYM_LABEL,
            &[
                salt,
                project.as_str().as_bytes(),
                person.as_str().as_bytes(),
            ],
        )
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

impl PartialEq for PseudonymKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_created_once_owner_only_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.key");
        let a = load_or_create_signer(&path, "example.com/log").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = load_or_create_signer(&path, "example.com/log").unwrap();
        assert_eq!(a.verifier(), b.verifier());
        assert!(load_or_create_signer(&path, "other.example/log").is_err());

        let p = dir.path().join("pseudonym.key");
        let k = PseudonymKey::load_or_create(&p).unwrap();
        assert_eq!(k, PseudonymKey::load_or_create(&p).unwrap());
        assert_eq!(format!("{k:?}"), "PseudonymKey(<redacted>)");
    }

    #[test]
    fn pseudonyms_depend_on_secret_salt_project_and_person() {
        let k = PseudonymKey::from_bytes([1; 32]);
        let (shop, bank) = (
            ProjectId::parse("shop").unwrap(),
            ProjectId::parse("bank").unwrap(),
        );
        let alice = DistinctId::parse("alice").unwrap();
        let p = k.pseudonym(b"salt", &shop, &alice);
        assert_eq!(p, k.pseudonym(b"salt", &shop, &alice));
        assert_ne!(
            p,
            k.pseudonym(b"other", &shop, &alice),
            "a new salt unlinks the person"
        );
        assert_ne!(p, k.pseudonym(b"salt", &bank, &alice));
        assert_ne!(
            p,
            PseudonymKey::from_bytes([2; 32]).pseudonym(b"salt", &shop, &alice)
        );
        assert_ne!(k.lookup(&shop, &alice), p);
    }
}
