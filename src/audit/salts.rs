//! Salts of people seen for the first time. A person's first audited read used to store
//! their salt in a transaction and commit of its own; now the salt waits here and is written
//! in the transaction of the next commit group, which is the one that carries (or precedes)
//! every entry whose pseudonym was made with it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::ProjectId;
use crate::ledger::merkle::Hash;
use crate::store::NewSubjectKey;

/// Locks a person's salt is looked up and made under: enough that first reads of different
/// people rarely wait for each other (one lock for all had serialised them, each holding it
/// across a database read).
const STRIPES: usize = 64;

/// Salts made but not yet committed, by (project, keyed lookup).
pub struct NewSalts {
    pending: Mutex<HashMap<(String, Hash), [u8; 32]>>,
    making: Vec<tokio::sync::Mutex<()>>,
}

impl Default for NewSalts {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            making: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl NewSalts {
    /// Held while a person's salt is found or made, so that two first reads of them agree.
    pub(super) fn making(&self, lookup: &Hash) -> &tokio::sync::Mutex<()> {
        &self.making[usize::from(lookup[0]) % STRIPES]
    }

    /// The salt made for this person, if it is not committed yet.
    pub fn get(&self, project: &ProjectId, lookup: &Hash) -> Option<[u8; 32]> {
        self.lock()
            .get(&(project.as_str().to_owned(), *lookup))
            .copied()
    }

    /// Keeps a new salt until it is committed.
    pub fn insert(&self, project: &ProjectId, lookup: Hash, salt: [u8; 32]) {
        self.lock()
            .insert((project.as_str().to_owned(), lookup), salt);
    }

    /// Forgets a salt (its person was erased, or another process stored theirs first).
    pub fn remove(&self, project: &str, lookup: &Hash) {
        self.lock().remove(&(project.to_owned(), *lookup));
    }

    /// Every salt waiting, to be written with the next commit group.
    pub fn waiting(&self) -> Vec<NewSubjectKey> {
        self.lock()
            .iter()
            .map(|((project, lookup), salt)| NewSubjectKey {
                project: project.clone(),
                lookup: *lookup,
                salt: *salt,
            })
            .collect()
    }

    /// Drops the salts a commit stored: from now on they are read from the database.
    pub fn committed(&self, keys: &[NewSubjectKey]) {
        let mut pending = self.lock();
        for k in keys {
            pending.remove(&(k.project.clone(), k.lookup));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Hash), [u8; 32]>> {
        self.pending.lock().expect("not poisoned")
    }
}
