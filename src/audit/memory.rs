//! What the signer signed, remembered outside the database: the last checkpoint it signed,
//! in a file beside the signing key, written before the checkpoint is published. Whoever
//! controls the database but not this file cannot get the service to sign a history that
//! does not extend it: no rewritten entry, no restored old backup, no deleted file that
//! would start a second log under the same key.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::proofs;
use crate::ledger::chain::Head;
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::merkle::verify_consistency;
use crate::ledger::note::Note;
use crate::store::Store;

/// Why the database's tree could not be shown to extend the remembered checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum NotExtended {
    /// It does not: history was rewritten, removed or replaced. Final.
    #[error("{0}")]
    Diverged(String),
    /// The database could not answer the check now.
    #[error("the signed history could not be checked: {0:#}")]
    Unavailable(anyhow::Error),
}

/// The last checkpoint signed with a key, and where it is kept.
#[derive(Debug, Clone)]
pub struct SignedMemory {
    path: PathBuf,
    last: Option<Checkpoint>,
}

impl SignedMemory {
    /// The memory kept beside `key_file` (`<key file>.checkpoint`), empty if there is none.
    pub fn load(key_file: &Path) -> anyhow::Result<Self> {
        let path = key_file.with_extension("checkpoint");
        let last = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let note = Note::parse(&text)
                    .with_context(|| format!("{} holds no signed checkpoint", path.display()))?;
                Some(Checkpoint::parse(&note.text)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { path, last })
    }

    /// The last checkpoint remembered.
    pub fn last(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    /// Remembers a checkpoint about to be published: written to a temporary file, flushed to
    /// disk, then renamed over the old one, so the file is always one whole checkpoint.
    pub fn remember(&mut self, checkpoint: &Checkpoint, note: &str) -> anyhow::Result<()> {
        if self
            .last
            .as_ref()
            .is_some_and(|l| l.size >= checkpoint.size)
        {
            return Ok(());
        }
        // One staging file per process: services sharing a key (two writers on PostgreSQL)
        // each rename a whole file of their own.
        let staged = self
            .path
            .with_extension(format!("checkpoint.next-{}", std::process::id()));
        let mut f = std::fs::File::create(&staged)
            .with_context(|| format!("writing {}", staged.display()))?;
        f.write_all(note.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&staged, &self.path)
            .with_context(|| format!("installing {}", self.path.display()))?;
        self.last = Some(checkpoint.clone());
        Ok(())
    }

    /// Fails unless the tree at `head` extends the remembered checkpoint: same root at the
    /// same size, or a consistency proof from the remembered size that verifies against both
    /// roots (its hashes come from the database, but the remembered root binds them).
    pub async fn check(&self, store: &dyn Store, head: &Head) -> Result<(), NotExtended> {
        let Some(last) = &self.last else {
            return Ok(());
        };
        let size = head.size();
        let root = head.range.root();
        if size < last.size {
            return Err(NotExtended::Diverged(format!(
                "the database's log has {size} entries but this service signed a checkpoint of {} \
                 ({}): an old backup was restored, files were deleted or replaced, or history was \
                 removed; refusing to sign",
                last.size,
                self.path.display()
            )));
        }
        let extends = if size == last.size {
            root == last.root
        } else {
            let proof = proofs::consistency_proof(store, last.size, size)
                .await
                .map_err(NotExtended::Unavailable)?;
            verify_consistency(last.size, size, &proof, &last.root, &root).is_ok()
        };
        if extends {
            Ok(())
        } else {
            Err(NotExtended::Diverged(format!(
                "the database's log of {size} entries does not extend the checkpoint of {} this \
                 service signed: history was rewritten or an old backup restored; refusing to sign",
                last.size
            )))
        }
    }
}
