//! The one appender: it serialises the chain, commits entries in groups (many concurrent
//! requests share one transaction and one checkpoint), and answers each request only after
//! its entry is durably committed, or with an error within a bounded time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::memory::{NotExtended, SignedMemory};
use super::salts::NewSalts;
use crate::clock::SharedClock;
use crate::ledger::chain::{Draft, Head};
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::entry::{Action, Outcome};
use crate::ledger::merkle::Hash;
use crate::ledger::note::SignerKey;
use crate::store::{EventRider, GROUP_EVENTS, InsertOutcome, SharedStore, StoreError, StoreResult};

pub use crate::error::AuditUnavailable;

/// How long a signed checkpoint waits for the next group to ride along with before it is
/// stored in a transaction of its own (readers of the newest checkpoints poll every 5 ms).
const CHECKPOINT_PATIENCE: Duration = Duration::from_millis(2);

/// While more entries wait behind a commit, its checkpoint is signed only if the last one is
/// this old: signing means remembering it on disk first (a write, an fsync and a rename,
/// 0.5 to 2.6 ms here), which under load cost the appender more than its commits. The next
/// commit's checkpoint covers the skipped one's entries, and a commit with nothing behind it
/// (or an export's, which needs its exact size) is always signed.
const SIGN_EVERY: Duration = Duration::from_millis(10);

/// An entry's sequence number and, if it carried events, what storing them did.
type Committed = (u64, Option<StoreResult<InsertOutcome>>);

struct Pending {
    draft: Draft,
    rider: Option<EventRider>,
    reply: oneshot::Sender<Result<Committed, AuditUnavailable>>,
}

impl Pending {
    fn events(&self) -> usize {
        self.rider.as_ref().map_or(0, EventRider::len)
    }
}

/// A handle to the appender task; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    sender: mpsc::Sender<Pending>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
    /// Requests whose entry could not be written in time (they fail closed).
    fail_closed: prometheus::IntCounter,
}

/// What the appender task needs.
pub struct AppenderConfig {
    /// The database.
    pub store: SharedStore,
    /// The time.
    pub clock: SharedClock,
    /// Sign every checkpoint (two keys only while handing over from one to the next).
    pub signers: Vec<SignerKey>,
    /// The checkpoint origin line.
    pub origin: String,
    /// How long a request waits for its entry.
    pub timeout: Duration,
    /// Most entries per group.
    pub max_group: usize,
    /// The last checkpoint signed, kept beside the key: every commit must extend it.
    pub memory: SignedMemory,
    /// Salts of people first named by entries, written with the next group.
    pub new_salts: Arc<NewSalts>,
    /// What `/metrics` shows of the commits.
    pub metrics: super::metrics::LogMetrics,
}

impl Appender {
    /// Starts the appender task on the current runtime.
    pub fn start(config: AppenderConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.max_group * 4);
        let healthy = Arc::new(AtomicBool::new(true));
        let timeout = config.timeout;
        let fail_closed = config.metrics.fail_closed.clone();
        tokio::spawn(run(config, receiver, healthy.clone()));
        Self {
            sender,
            timeout,
            healthy,
            fail_closed,
        }
    }

    /// Appends one entry and returns its sequence number once it is durably committed.
    pub async fn append(&self, draft: Draft) -> Result<u64, AuditUnavailable> {
        Ok(self.send(draft, None).await?.0)
    }

    /// Appends one entry and stores `rider`'s events in the same transaction (where the store
    /// writes them together, [`crate::store::AuditStore::events_ride_with_entries`]); returns
    /// the entry's sequence number once both are committed, and what storing the events did.
    /// An answer that does not come in time fails closed like any other, though the commit
    /// may still land: a client sending again is deduplicated by `$insert_id`.
    pub async fn append_with_events(
        &self,
        draft: Draft,
        rider: EventRider,
    ) -> Result<(u64, StoreResult<InsertOutcome>), AuditUnavailable> {
        let (seq, stored) = self.send(draft, Some(rider)).await?;
        let stored =
            stored.unwrap_or_else(|| Err(anyhow::anyhow!("the events were not written").into()));
        Ok((seq, stored))
    }

    async fn send(
        &self,
        draft: Draft,
        rider: Option<EventRider>,
    ) -> Result<Committed, AuditUnavailable> {
        let (reply, answer) = oneshot::channel();
        let wait = async {
            self.sender
                .send(Pending {
                    draft,
                    rider,
                    reply,
                })
                .await
                .map_err(|_| AuditUnavailable("the appender has stopped".into()))?;
            answer
                .await
                .map_err(|_| AuditUnavailable("the appender dropped the entry".into()))?
        };
        let result = match tokio::time::timeout(self.timeout, wait).await {
            Ok(result) => result,
            Err(_) => {
                self.healthy.store(false, Ordering::SeqCst);
                Err(AuditUnavailable(format!(
                    "no commit within {} ms",
                    self.timeout.as_millis()
                )))
            }
        };
        if result.is_err() {
            self.fail_closed.inc();
        }
        result
    }

    /// False after the last append failed or timed out, until one succeeds.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// Records that the database took a write again (a readiness probe), before the next
    /// append confirms it.
    pub fn mark_healthy(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }
}

async fn run(
    mut config: AppenderConfig,
    mut receiver: mpsc::Receiver<Pending>,
    healthy: Arc<AtomicBool>,
) {
    // Set once the database's tree stops extending what was signed: from then on nothing is
    // appended or signed until an operator has looked (and restarted the service).
    let mut refused: Option<String> = None;
    // The signed checkpoint of the last commit, not yet stored. Under load it rides along in
    // the next group's transaction; when nothing comes within CHECKPOINT_PATIENCE it is
    // stored alone. Either way
    // only this task writes, so commits never wait on each other's locks.
    let mut carried: Option<(u64, String)> = None;
    // The entry that would have made the last group carry too many events: the next group's first.
    let mut held: Option<Pending> = None;
    // The head of this task's last commit, shown to extend the signed memory by construction
    // or by proof: a group sealed onto it extends the memory too, signed or not.
    let mut extends: Option<(u64, Hash)> = config.memory.last().map(|c| (c.size, c.root));
    // A commit whose checkpoint was skipped under load (SIGN_EVERY), to sign once nothing waits.
    let mut unsigned: Option<Head> = None;
    let mut last_signed = Instant::now();
    loop {
        if held.is_none()
            && receiver.is_empty()
            && let Some(head) = unsigned.take()
        {
            carried = sign(&mut config, &head).or(carried);
            last_signed = Instant::now();
        }
        let first = if let Some(p) = held.take() {
            p
        } else if carried.is_some() {
            // A commit under load is followed by another within a moment: the checkpoint then
            // rides along in its transaction instead of costing a commit of its own.
            match tokio::time::timeout(CHECKPOINT_PATIENCE, receiver.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    store_checkpoint(&config, &mut carried).await;
                    return;
                }
                Err(_) => {
                    store_checkpoint(&config, &mut carried).await;
                    continue;
                }
            }
        } else {
            match receiver.recv().await {
                Some(p) => p,
                None => return,
            }
        };
        let (mut group, next) = gather(first, &mut receiver, config.max_group);
        held = next;
        // A request that already gave up has answered 503 and returned nothing: do not log
        // an access that did not happen.
        group.retain(|p| !p.reply.is_closed());
        if group.is_empty() {
            continue;
        }
        let exact = group.iter().any(|p| ends_group(&p.draft));
        let mut drafts = Vec::with_capacity(group.len());
        let mut riders = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for p in group {
            drafts.push(p.draft);
            riders.push(p.rider);
            replies.push(p.reply);
        }
        if let Some(reason) = &refused {
            for reply in replies {
                let _ = reply.send(Err(AuditUnavailable(reason.clone())));
            }
            continue;
        }
        let salts = drafts
            .iter()
            .map(|_| {
                let mut s = [0u8; 16];
                rand::fill(&mut s);
                s
            })
            .collect();
        let now = config.clock.now();
        // Taken after the group's entries arrived: every salt they were sealed with is here
        // or already stored.
        let subject_keys = config.new_salts.waiting();
        let kinds: Vec<(Action, Outcome)> = drafts.iter().map(|d| (d.action, d.outcome)).collect();
        let append = config.store.append_audit_with_events(
            drafts,
            salts,
            now,
            carried.as_ref(),
            &subject_keys,
            riders,
        );
        let started = std::time::Instant::now();
        let entries = replies.len();
        match tokio::time::timeout(config.timeout, append).await {
            Ok(Ok((appended, stored))) => {
                let m = &config.metrics;
                m.commit_seconds.observe(started.elapsed().as_secs_f64());
                m.commits.inc();
                for (action, outcome) in kinds {
                    m.committed(action, outcome);
                }
                m.group_size.observe(entries as f64);
                m.tree_size.set(appended.head.size() as i64);
                // The group was sealed onto the database's head: if that head is this task's
                // last commit (or the checkpoint last signed), the new tree extends the signed
                // one by construction; otherwise (another writer, or someone else's hand) a
                // consistency proof must show it.
                let built_on_ours = extends.is_none_or(|(size, root)| {
                    appended.base.size() == size && appended.base.range.root() == root
                });
                if !built_on_ours
                    && let Err(e) = config
                        .memory
                        .check(config.store.as_ref(), &appended.head)
                        .await
                {
                    let reason = e.to_string();
                    tracing::error!(%reason, "the commit cannot be signed");
                    healthy.store(false, Ordering::SeqCst);
                    config.metrics.commit_failures.inc();
                    for reply in replies {
                        let _ = reply.send(Err(AuditUnavailable(reason.clone())));
                    }
                    // A database that cannot answer now may later; a diverged history never.
                    if matches!(e, NotExtended::Diverged(_)) {
                        refused = Some(reason);
                    }
                    continue;
                }
                config.new_salts.committed(&subject_keys);
                healthy.store(true, Ordering::SeqCst);
                for ((reply, seq), stored) in replies.into_iter().zip(&appended.seqs).zip(stored) {
                    let _ = reply.send(Ok((*seq, stored)));
                }
                extends = Some((appended.head.size(), appended.head.range.root()));
                // The carried checkpoint was stored in this commit.
                carried = None;
                let waiting = held.is_some() || !receiver.is_empty();
                if sign_now(exact, waiting, last_signed.elapsed()) {
                    carried = sign(&mut config, &appended.head);
                    last_signed = Instant::now();
                    unsigned = None;
                } else {
                    unsigned = Some(appended.head);
                }
            }
            failure => {
                if let Ok(Err(StoreError::Conflict(_))) = &failure {
                    // Another process stored a salt for someone this one had just made one
                    // for: from now on the stored one is used.
                    forget_conflicting(&config, &subject_keys).await;
                }
                healthy.store(false, Ordering::SeqCst);
                config.metrics.commit_failures.inc();
                let reason = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no commit within {} ms", config.timeout.as_millis()),
                };
                tracing::error!(%reason, entries = replies.len(), "audit append failed; requests fail closed");
                for reply in replies {
                    let _ = reply.send(Err(AuditUnavailable(reason.clone())));
                }
            }
        }
    }
}

/// A commit group: `first`, then the entries already waiting, up to `max_group` of them and
/// [`GROUP_EVENTS`] riding events (a first entry with more rides alone), and the entry that
/// would have passed the bound, to start the next group.
fn gather(
    first: Pending,
    receiver: &mut mpsc::Receiver<Pending>,
    max_group: usize,
) -> (Vec<Pending>, Option<Pending>) {
    let mut events = first.events();
    let mut group = vec![first];
    while group.len() < max_group && !ends_group(&group[group.len() - 1].draft) {
        match receiver.try_recv() {
            Ok(p) if events > 0 && events + p.events() > GROUP_EVENTS => return (group, Some(p)),
            Ok(p) => {
                events += p.events();
                group.push(p);
            }
            Err(_) => break,
        }
    }
    (group, None)
}

/// Whether a commit's checkpoint is signed at once: always for an export's (`exact`: its
/// bundle needs a checkpoint of exactly its size) and when nothing waits behind it; under
/// load, once every [`SIGN_EVERY`].
fn sign_now(exact: bool, waiting: bool, since_last: Duration) -> bool {
    exact || !waiting || since_last >= SIGN_EVERY
}

/// Signs the checkpoint of a committed `head` and remembers it; the note to publish, or none
/// if it could not be remembered (the next commit, or the next start, signs the tail).
/// Signed only after the commit, so every checkpoint describes a committed prefix of the one
/// chain: no two can ever be inconsistent.
fn sign(config: &mut AppenderConfig, head: &Head) -> Option<(u64, String)> {
    let checkpoint = Checkpoint {
        origin: config.origin.clone(),
        size: head.size(),
        root: head.range.root(),
    };
    let signers: Vec<&SignerKey> = config.signers.iter().collect();
    let note = checkpoint
        .sign(&signers)
        .map_err(|e| tracing::error!(error = %e, "signing a checkpoint failed"))
        .ok()?;
    // Remembered before it is published; if it cannot be, it is not published.
    config
        .memory
        .remember(&checkpoint, &note)
        .map_err(|e| tracing::error!(error = %e, "remembering a checkpoint failed"))
        .ok()?;
    let at = config.clock.now().millis() as f64 / 1000.0;
    config.metrics.last_checkpoint.set(at);
    Some((checkpoint.size, note))
}

async fn forget_conflicting(config: &AppenderConfig, keys: &[crate::store::NewSubjectKey]) {
    for k in keys {
        if let Ok(Some(stored)) = config.store.subject_salt(&k.project, &k.lookup).await
            && stored != k.salt
        {
            config.new_salts.remove(&k.project, &k.lookup);
        }
    }
}

/// A project export's own entry ends its commit group, so a checkpoint is signed at exactly
/// its size: the project bundle then ends at the tree's last leaf, which proves it complete.
/// A subject report's entry likewise, so its bundle ends at the report.
fn ends_group(draft: &Draft) -> bool {
    matches!(
        draft.action,
        Action::AuditExport | Action::AuditSubjectReport
    ) && draft.outcome == Outcome::Allowed
        && draft.project.is_some()
}

async fn store_checkpoint(config: &AppenderConfig, carried: &mut Option<(u64, String)>) {
    if let Some((size, note)) = carried.take() {
        let stored = tokio::time::timeout(
            config.timeout,
            config
                .store
                .insert_checkpoint(size, &note, config.clock.now()),
        )
        .await;
        if !matches!(stored, Ok(Ok(()))) {
            // Not lost: the next start signs any unsigned tail, and the next commit signs anew.
            tracing::error!(size, "storing a checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DistinctId, ProjectId, Timestamp};
    use crate::store::NewEvent;

    fn pending(events: usize) -> Pending {
        let project = ProjectId::parse("shop").unwrap();
        let event = NewEvent {
            event: "view".into(),
            distinct_id: DistinctId::parse("p1").unwrap(),
            time: Timestamp::from_millis(0),
            insert_id: None,
            properties: Default::default(),
        };
        let rider = (events > 0).then(|| {
            EventRider::new(
                &project,
                &vec![event; events],
                &[],
                Timestamp::from_millis(0),
            )
        });
        let draft = crate::audit::system_draft(Action::EventsIngest, serde_json::json!({}));
        let (reply, _) = oneshot::channel();
        Pending {
            draft,
            rider,
            reply,
        }
    }

    /// The sizes of the groups `waiting` is committed in.
    fn groups(waiting: &[usize], max_group: usize) -> Vec<Vec<usize>> {
        let (sender, mut receiver) = mpsc::channel(64);
        for n in waiting {
            sender.try_send(pending(*n)).unwrap();
        }
        let mut out = Vec::new();
        let mut held = None;
        while let Some(first) = held.take().or_else(|| receiver.try_recv().ok()) {
            let (group, next) = gather(first, &mut receiver, max_group);
            out.push(group.iter().map(Pending::events).collect());
            held = next;
        }
        out
    }

    #[test]
    fn under_load_checkpoints_are_signed_once_every_interval_and_always_when_idle() {
        let soon = SIGN_EVERY / 2;
        assert!(!sign_now(false, true, soon), "skipped while more wait");
        assert!(sign_now(false, true, SIGN_EVERY), "due");
        assert!(sign_now(false, false, soon), "nothing waits");
        assert!(sign_now(true, true, Duration::ZERO), "an export's size");
    }

    #[test]
    fn a_group_carries_at_most_its_bound_of_events_and_the_next_entry_starts_the_next() {
        assert_eq!(
            groups(&[6_000, 0, 4_000, 1, 0, 9_999, 12_000, 5], 1000),
            vec![
                vec![6_000, 0, 4_000],
                vec![1, 0, 9_999],
                vec![12_000],
                vec![5],
            ]
        );
        // Entries without events are bounded by the group size alone.
        assert_eq!(groups(&[0; 5], 2), vec![vec![0, 0], vec![0, 0], vec![0]]);
    }
}
