//! A short-lived memo of the few rows nearly every request reads again (a service account's
//! token, grants and custom roles, a project by id or by ingest token, its sensitive
//! properties and its opt-outs, a person's salt).
//!
//! Why it is safe: every write this process makes to those tables calls
//! [`ReadCache::invalidate`] after it commits, and a value fetched before that call is never
//! served after it (each value carries the generation it was fetched under). Another process
//! sharing the database (the CLI, a second instance) is seen within `database.cache_ttl_ms`:
//! the bound on how long a token revoked or a grant removed from elsewhere can still be used.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash as StdHash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::{Project, PropertyKind, StoreResult, TokenRecord};
use crate::clock::{SharedClock, SystemClock};
use crate::domain::{CustomRole, GrantRecord, SubjectKind};
use crate::ledger::merkle::Hash;

/// Values kept per kind at most: past it a kind starts over, so callers choosing keys (token
/// hashes, project ids) cannot grow memory without bound.
const MAX_VALUES: usize = 10_000;

/// One kind of value, by key, each with when (milliseconds) and under which generation it
/// was fetched.
pub(super) struct Memo<K, V> {
    slots: Mutex<HashMap<K, (V, i64, u64)>>,
}

impl<K: Eq + StdHash, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, generation: u64, now: i64, ttl: Duration) -> Option<V> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (value, at, fetched_under) = slots.get(key)?;
        // A clock set back counts as expired, never as younger.
        let age = u64::try_from(now - at).ok()?;
        (*fetched_under == generation && u128::from(age) < ttl.as_millis()).then(|| value.clone())
    }

    fn put(&self, key: K, value: V, generation: u64, now: i64) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_VALUES {
            slots.clear();
        }
        slots.insert(key, (value, now, generation));
    }
}

/// The memo of one store (see the module's documentation).
pub struct ReadCache {
    ttl: Duration,
    /// The service's clock once it is given one (tests move it instead of waiting).
    clock: RwLock<SharedClock>,
    generation: AtomicU64,
    pub(super) tokens: Memo<Vec<u8>, TokenRecord>,
    pub(super) grants: Memo<(SubjectKind, Vec<String>), Vec<GrantRecord>>,
    pub(super) roles: Memo<(), Vec<CustomRole>>,
    pub(super) projects: Memo<String, Project>,
    /// Projects by their public ingest token: every `/track`, `/engage` and `/groups` batch
    /// names one.
    pub(super) by_ingest_token: Memo<String, Project>,
    pub(super) sensitive: Memo<(String, PropertyKind), Vec<String>>,
    pub(super) salts: Memo<(String, Hash), Vec<u8>>,
    /// Every ingestion batch is screened against its project's opt-outs.
    pub(super) opt_outs: Memo<String, OptOuts>,
}

/// Most opt-outs of one project kept in the memo: past it, each batch asks the database for
/// its own people, as it would without a memo.
pub const OPT_OUTS_KEPT: usize = 1000;

/// A project's opt-outs, as the memo keeps them.
#[derive(Clone)]
pub(super) enum OptOuts {
    /// All of them: at most [`OPT_OUTS_KEPT`].
    All(Arc<std::collections::HashSet<Hash>>),
    /// More than that: not kept.
    TooMany,
}

impl ReadCache {
    /// A memo keeping values for `ttl`; zero keeps none.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            clock: RwLock::new(Arc::new(SystemClock)),
            generation: AtomicU64::new(0),
            tokens: Memo::new(),
            grants: Memo::new(),
            roles: Memo::new(),
            projects: Memo::new(),
            by_ingest_token: Memo::new(),
            sensitive: Memo::new(),
            salts: Memo::new(),
            opt_outs: Memo::new(),
        }
    }

    /// The memo `settings` ask for.
    pub fn of(settings: &crate::config::DatabaseSettings) -> Self {
        Self::new(Duration::from_millis(settings.cache_ttl_ms))
    }

    /// Measures values' age on `clock` from now on.
    pub fn use_clock(&self, clock: SharedClock) {
        *self.clock.write().unwrap_or_else(|p| p.into_inner()) = clock;
    }

    fn now(&self) -> i64 {
        self.clock
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .now()
            .millis()
    }

    /// Whether values are kept at all (a zero TTL keeps none).
    pub(super) fn keeps(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Forgets everything fetched so far.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets everything fetched so far once the guard is dropped: each write to a table this
    /// memoises holds one for its whole call, so the forgetting follows its commit (or its
    /// failure, or its cancellation) and a read racing the write cannot keep the old rows.
    pub fn invalidate_on_return(&self) -> Invalidate<'_> {
        Invalidate(self)
    }

    /// The value of `key`, fetched by `fetch` unless a fresh one is kept.
    pub(super) async fn through<K, V, F>(
        &self,
        memo: &Memo<K, V>,
        key: K,
        fetch: F,
    ) -> StoreResult<V>
    where
        K: Eq + StdHash,
        V: Clone,
        F: Future<Output = StoreResult<V>>,
    {
        self.through_some(memo, key, async { fetch.await.map(Some) })
            .await
            .map(|v| v.expect("a fetch that always finds a value"))
    }

    /// Like [`Self::through`] for a lookup that may find nothing: only what was found is kept,
    /// so nobody can fill the memo with keys that match nothing.
    pub(super) async fn through_some<K, V, F>(
        &self,
        memo: &Memo<K, V>,
        key: K,
        fetch: F,
    ) -> StoreResult<Option<V>>
    where
        K: Eq + StdHash,
        V: Clone,
        F: Future<Output = StoreResult<Option<V>>>,
    {
        if self.ttl.is_zero() {
            return fetch.await;
        }
        // Read before fetching: a write committed meanwhile bumps it, and the value is not kept.
        let generation = self.generation.load(Ordering::Acquire);
        let now = self.now();
        if let Some(v) = memo.get(&key, generation, now, self.ttl) {
            return Ok(Some(v));
        }
        let found = fetch.await?;
        if let Some(v) = &found {
            memo.put(key, v.clone(), generation, now);
        }
        Ok(found)
    }
}

/// See [`ReadCache::invalidate_on_return`].
pub struct Invalidate<'a>(&'a ReadCache);

impl Drop for Invalidate<'_> {
    fn drop(&mut self) {
        self.0.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::Timestamp;
    use std::sync::atomic::AtomicUsize;

    /// A lookup that counts how often it really runs (an async fn runs only when awaited).
    async fn fetcher(calls: &AtomicUsize, value: u32) -> StoreResult<Option<u32>> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(value))
    }

    #[tokio::test]
    async fn keeps_values_until_a_write_and_never_serves_one_fetched_before_it() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let memo: Memo<u8, u32> = Memo::new();
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let v = cache.through_some(&memo, 1, fetcher(&calls, 7)).await;
            assert_eq!(v.unwrap(), Some(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        cache.invalidate();
        let v = cache.through_some(&memo, 1, fetcher(&calls, 8)).await;
        assert_eq!(v.unwrap(), Some(8));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // A fetch that began before a write finished is not kept past it.
        let generation = cache.generation.load(Ordering::Acquire);
        cache.invalidate();
        memo.put(2, 9, generation, cache.now());
        let current = cache.generation.load(Ordering::Acquire);
        assert_eq!(memo.get(&2, current, cache.now(), cache.ttl), None);
        memo.put(2, 9, current, cache.now());
        assert_eq!(memo.get(&2, current, cache.now(), cache.ttl), Some(9));
    }

    #[tokio::test]
    async fn values_age_on_the_given_clock_and_a_clock_set_back_expires_them() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let cache = ReadCache::new(Duration::from_millis(1000));
        cache.use_clock(Arc::new(clock.clone()));
        let memo: Memo<u8, u32> = Memo::new();
        let calls = AtomicUsize::new(0);
        cache
            .through_some(&memo, 1, fetcher(&calls, 1))
            .await
            .unwrap();
        clock.advance_millis(999);
        cache
            .through_some(&memo, 1, fetcher(&calls, 1))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "still fresh at 999 ms");
        clock.advance_millis(1);
        cache
            .through_some(&memo, 1, fetcher(&calls, 1))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "stale at 1000 ms");
        let back = ManualClock::new(Timestamp::from_millis(0));
        cache.use_clock(Arc::new(back));
        cache
            .through_some(&memo, 1, fetcher(&calls, 1))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "a clock set back expires");
    }

    #[tokio::test]
    async fn keeps_nothing_not_found_and_nothing_with_a_zero_ttl() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let memo: Memo<u8, u32> = Memo::new();
        let calls = AtomicUsize::new(0);
        for _ in 0..2 {
            let v = cache
                .through_some(&memo, 1, async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(None)
                })
                .await;
            assert_eq!(v.unwrap(), None);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(memo.slots.lock().unwrap().len(), 0);

        let off = ReadCache::new(Duration::ZERO);
        for _ in 0..2 {
            off.through_some(&memo, 1, fetcher(&calls, 1))
                .await
                .unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_full_memo_starts_over() {
        let memo: Memo<usize, u32> = Memo::new();
        for k in 0..=MAX_VALUES {
            memo.put(k, 1, 0, 0);
        }
        assert_eq!(memo.slots.lock().unwrap().len(), 1);
    }
}
