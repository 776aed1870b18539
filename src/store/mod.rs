//! All SQL lives here: one family of store traits, implemented once over sqlx for both
//! SQLite (`sqlite.rs`) and PostgreSQL (`postgres.rs`); the portable queries are in `sql.rs`.

mod audit_log;
mod batches;
pub mod cache;
mod credentials;
mod events;
mod grants;
mod people;
pub mod postgres;
mod privacy;
mod projects;
mod sessions;
mod sql;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::config::DatabaseSettings;
use crate::domain::profile::{GroupRef, GroupUpdate, IdentityLink, ProfileUpdate};
use crate::domain::{AllowedOrigins, DistinctId, ProjectId, Timestamp};
use crate::ledger::chain::{Draft, Head};
use crate::ledger::merkle::Hash;

pub use batches::GROUP_EVENTS;
pub use credentials::{CredentialStore, PersonalToken, TotpRecord};
pub use grants::{ClassificationStore, GrantStore, PropertyKind, RequestStore, RoleStore};
pub use people::{Claim, Factor, Notice, PeopleStore, PersonOverview, SsoProfile, User, UserKind};
pub use privacy::{Affected, ConsentRecord, PrivacyStore, ProjectSettings};
pub use sessions::{EndReason, SessionRecord, SessionStore};
pub use sql::{Pools, SqlStore};

/// Why a store call failed, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or a connection could not be had in time.
    #[error("{0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (the thing already exists).
    #[error("{0}")]
    Conflict(String),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| ran_out_of_time(&c)) => {
                Self::Unavailable(
                    "the query ran longer than database.read_timeout_ms allows and was stopped; \
                     ask for a shorter time range or a narrower filter"
                        .into(),
                )
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| unavailable(&c)) => {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Other(e.into()),
        }
    }
}

/// Whether a statement was stopped by its time limit: PostgreSQL's `query_canceled` under
/// `statement_timeout`, SQLite's INTERRUPT from the progress handler of a timed read.
fn ran_out_of_time(code: &str) -> bool {
    code == "57014" || code.parse::<u32>().is_ok_and(|n| n & 0xff == 9)
}

/// Whether a database error code means "not now" rather than "never": the database is
/// down, starting, shutting down, out of space or connections, locked, or cancelled a
/// statement. Such failures are a 503 with Retry-After, never a 500.
fn unavailable(code: &str) -> bool {
    if code.len() == 5 {
        // PostgreSQL's SQLSTATE: connection exceptions (08), insufficient resources (53),
        // operator intervention (57: shutdown, cannot connect now, query cancelled),
        // serialization failures and deadlocks (40001, 40P01), and a database not accepting
        // connections now (55000, `ALLOW_CONNECTIONS false`).
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57")
            || matches!(code, "40001" | "40P01" | "55000");
    }
    // SQLite's result codes, primary code in the low byte: BUSY, LOCKED, READONLY, IOERR,
    // FULL, CANTOPEN.
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A project: the unit of data ownership and access.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The slug.
    pub id: ProjectId,
    /// A display name.
    pub name: String,
    /// The public token SDKs put in every record (Mixpanel's "project token").
    pub ingest_token: String,
    /// Days events are kept.
    pub retention_days: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was soft-deleted, if it was.
    pub deleted_at: Option<Timestamp>,
    /// Whether events are stored only with consent (a marker property or a recorded consent).
    pub consent_required: bool,
    /// The event property that marks consent given on the client.
    pub consent_property: String,
    /// When the sweeper hard-deleted it after its grace period.
    pub purged_at: Option<Timestamp>,
    /// The browser origins it accepts events from.
    pub allowed_origins: AllowedOrigins,
    /// Whether the client's address is kept in `$ip` when an SDK sends `ip=1`.
    pub record_client_ip: bool,
}

impl Project {
    /// Whether it serves requests: not soft-deleted (nor purged).
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

/// A machine identity that belongs to one project.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccount {
    /// A random id.
    pub id: String,
    /// The project it acts in.
    pub project_id: ProjectId,
    /// The unique user name used in HTTP Basic authentication.
    pub name: String,
}

/// A token to create: only the hash of its secret is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// A random id, shown to people so they can revoke it.
    pub id: String,
    /// The owner.
    pub service_account_id: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A project to create with its first service account and token, in one transaction.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// The project row.
    pub project: Project,
    /// Its service account.
    pub service_account: ServiceAccount,
    /// That account's first token.
    pub token: NewToken,
}

/// A stored token, as seen when authenticating with it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The token's id.
    pub id: String,
    /// Its owner.
    pub service_account: ServiceAccount,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When its service account was locked, if it is.
    pub locked_at: Option<Timestamp>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// An event ready to be stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event name.
    pub event: String,
    /// The end user.
    pub distinct_id: DistinctId,
    /// When it happened.
    pub time: Timestamp,
    /// Mixpanel's `$insert_id`, the per-project deduplication key.
    pub insert_id: Option<String>,
    /// The remaining properties, as a JSON object.
    pub properties: Map<String, Value>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The store's sequence, used for keyset pagination.
    pub id: i64,
    /// The event name.
    pub event: String,
    /// The end user.
    pub distinct_id: String,
    /// When it happened.
    pub time: Timestamp,
    /// The deduplication key, if one was sent.
    pub insert_id: Option<String>,
    /// The properties.
    pub properties: Map<String, Value>,
}

/// How many of a batch were stored and how many were already there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// New rows.
    pub inserted: u64,
    /// Rows skipped because their `$insert_id` was already stored.
    pub duplicates: u64,
    /// Identity links made (see [`EventStore::insert_events`]).
    pub linked: u64,
}

/// An ingestion batch's events, to be written in the same transaction as its audit entry
/// ([`AuditStore::append_audit_with_events`]), their rows already serialised.
pub struct EventRider(batches::ReadyBatch);

impl EventRider {
    /// `events` for `project`, with the identity links they ask for, serialised here (in the
    /// caller's task, not the appender's).
    pub fn new(
        project: &ProjectId,
        events: &[NewEvent],
        links: &[IdentityLink],
        received_at: Timestamp,
    ) -> Self {
        Self(batches::ReadyBatch::of(project, events, links, received_at))
    }

    /// How many events it carries.
    pub fn len(&self) -> usize {
        self.0.rows.len()
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.0.rows.is_empty()
    }
}

impl std::fmt::Debug for EventRider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Events hold personal data; a rider is only ever shown by its size.
        write!(
            f,
            "EventRider({} events for {})",
            self.0.rows.len(),
            self.0.project
        )
    }
}

/// Each rider's outcome, paired with the drafts: `None` where a draft had none.
pub type RiderOutcomes = Vec<Option<StoreResult<InsertOutcome>>>;

/// A position in the (time, id) order, after which a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    /// The last event's time.
    pub time: Timestamp,
    /// The last event's id.
    pub id: i64,
}

/// Which events to read.
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// Only this project.
    pub project: ProjectId,
    /// Only these end users' events (one person's merged ids); empty for everyone's.
    pub distinct_ids: Vec<DistinctId>,
    /// Only events with this name.
    pub event: Option<String>,
    /// Events at or after this time.
    pub from: Option<Timestamp>,
    /// Events strictly before this time.
    pub to: Option<Timestamp>,
}

/// How to group a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountGroup {
    /// One total.
    Total,
    /// By event name.
    Event,
    /// By UTC day.
    Day,
    /// By UTC day and event name: keys are `YYYY-MM-DD/<event name>`.
    EventDay,
}

/// A person's profile (Mixpanel's "user profile" or "people" record).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The end user.
    pub distinct_id: String,
    /// The properties.
    pub properties: Map<String, Value>,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A group's profile (Mixpanel's group analytics).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupProfile {
    /// The group.
    pub group: GroupRef,
    /// The properties.
    pub properties: Map<String, Value>,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// Projects, service accounts and their tokens.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates a project, its service account and first token; `Conflict` if the id is taken.
    async fn create_project(&self, new: &NewProject) -> StoreResult<()>;
    /// Every project, oldest first, soft-deleted ones included.
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    /// One project by id.
    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;
    /// The project whose public ingestion token this is.
    async fn project_by_ingest_token(&self, token: &str) -> StoreResult<Option<Project>>;
    /// The service accounts of a project.
    async fn service_accounts(&self, project: &ProjectId) -> StoreResult<Vec<ServiceAccount>>;
    /// Every service account, by project and name, each with when it was locked if it is.
    async fn all_service_accounts(&self) -> StoreResult<Vec<(ServiceAccount, Option<Timestamp>)>>;
    /// Stores a new token.
    async fn create_token(&self, token: &NewToken) -> StoreResult<()>;
    /// Revokes a token; false if there is no such live token.
    async fn revoke_token(&self, id: &str, at: Timestamp) -> StoreResult<bool>;
    /// Records a token's use.
    async fn touch_token(&self, id: &str, at: Timestamp) -> StoreResult<()>;
    /// The token whose secret hashes to `hash`.
    async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>>;
    /// All tokens of a project, revoked ones included.
    async fn tokens(&self, project: &ProjectId) -> StoreResult<Vec<TokenRecord>>;
}

/// Events and profiles.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// How many of a project's events happened before `cutoff`.
    async fn count_events_before(&self, project: &ProjectId, cutoff: Timestamp)
    -> StoreResult<u64>;
    /// Deletes up to `limit` of a project's events from before `cutoff`, oldest first.
    async fn delete_events_before(
        &self,
        project: &ProjectId,
        cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;
    /// Stores events, skipping those whose `$insert_id` the project already has, and in the
    /// same transaction makes each link's alias one more id of its canonical id's person, in
    /// order, where the alias is nobody's yet, has no ids of its own, and the person has room.
    async fn insert_events(
        &self,
        project: &ProjectId,
        events: &[NewEvent],
        links: &[IdentityLink],
        received_at: Timestamp,
    ) -> StoreResult<InsertOutcome>;
    /// A page of events in (time, id) order, starting after `after`.
    async fn query_events(
        &self,
        filter: &EventFilter,
        after: Option<EventCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// Counts events, grouped; keys are event names, `YYYY-MM-DD` days, both, or `total`.
    /// Without a `distinct_id` whole days are read from per-day counts, so the cost grows
    /// with the days and names asked for, not with the events.
    async fn count_events(
        &self,
        filter: &EventFilter,
        group: CountGroup,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// One person's profile.
    async fn profile(
        &self,
        project: &ProjectId,
        distinct_id: &DistinctId,
    ) -> StoreResult<Option<Profile>>;
    /// Applies profile updates in order, in one transaction; returns how many were applied.
    async fn apply_profile_updates(
        &self,
        project: &ProjectId,
        updates: &[ProfileUpdate],
        at: Timestamp,
    ) -> StoreResult<u64>;
    /// One group's profile.
    async fn group_profile(
        &self,
        project: &ProjectId,
        group: &GroupRef,
    ) -> StoreResult<Option<GroupProfile>>;
    /// Applies group profile updates in order, in one transaction; returns how many.
    async fn apply_group_updates(
        &self,
        project: &ProjectId,
        updates: &[GroupUpdate],
        at: Timestamp,
    ) -> StoreResult<u64>;
    /// Every id of the person `id` belongs to: the canonical id first, then its aliases.
    async fn identity_cluster(
        &self,
        project: &ProjectId,
        id: &DistinctId,
    ) -> StoreResult<Vec<DistinctId>>;
}

/// What an append committed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The sequence number of each draft, in order.
    pub seqs: Vec<u64>,
    /// The log's head after the append.
    pub head: Head,
    /// The head the append built on, as the database held it.
    pub base: Head,
}

/// A person's salt, made when they were first named in the log, stored with a commit group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubjectKey {
    /// The project.
    pub project: String,
    /// The keyed lookup of the person in the project.
    pub lookup: Hash,
    /// The salt of their pseudonym.
    pub salt: [u8; 32],
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its position.
    pub seq: u64,
    /// Its canonical bytes.
    pub bytes: Vec<u8>,
}

/// What the log's own columns can select entries by (the rest of an entry is in its bytes).
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only this project's entries.
    pub project: Option<String>,
    /// Only this action's (its wire name).
    pub action: Option<String>,
    /// From this time, inclusive, in milliseconds.
    pub from_ms: Option<i64>,
    /// To this time, exclusive, in milliseconds.
    pub to_ms: Option<i64>,
}

/// The audit log's tables. Nothing here updates or deletes an entry or a checkpoint.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Seals `drafts` onto the log in one transaction that holds the head row, so concurrent
    /// appenders (even in other processes) never fork the chain. `salts` pairs with `drafts`.
    /// `checkpoint`, the signed checkpoint of an earlier commit, and `subject_keys`, the salts
    /// of people first named by these entries (or by entries still to come), are stored in
    /// the same transaction. A salt already stored with another value is a Conflict.
    async fn append_audit(
        &self,
        drafts: Vec<Draft>,
        salts: Vec<[u8; 16]>,
        now: Timestamp,
        checkpoint: Option<&(u64, String)>,
        subject_keys: &[NewSubjectKey],
    ) -> StoreResult<Appended> {
        let (appended, _) = self
            .append_audit_with_events(drafts, salts, now, checkpoint, subject_keys, vec![])
            .await?;
        Ok(appended)
    }
    /// Whether ingested events are best written in their audit entry's transaction: where the
    /// database has one write lock (SQLite), a batch then takes one turn at it instead of two.
    fn events_ride_with_entries(&self) -> bool;
    /// As [`AuditStore::append_audit`], and in the same transaction, after the entries, the
    /// events of each draft that has a rider (paired with `drafts`), each batch in a savepoint
    /// of its own: a batch that fails is undone alone (its entry stays, as when the entry is
    /// written first), and no event is ever stored without its entry.
    async fn append_audit_with_events(
        &self,
        drafts: Vec<Draft>,
        salts: Vec<[u8; 16]>,
        now: Timestamp,
        checkpoint: Option<&(u64, String)>,
        subject_keys: &[NewSubjectKey],
        riders: Vec<Option<EventRider>>,
    ) -> StoreResult<(Appended, RiderOutcomes)>;
    /// The current head.
    async fn audit_head(&self) -> StoreResult<Head>;
    /// The largest checkpoint whose size is at most `size`.
    async fn checkpoint_at_most(&self, size: u64) -> StoreResult<Option<(u64, String)>>;
    /// Stores a signed checkpoint (a second one for the same size is ignored).
    async fn insert_checkpoint(&self, size: u64, note: &str, at: Timestamp) -> StoreResult<()>;
    /// The checkpoint with the largest size.
    async fn latest_checkpoint(&self) -> StoreResult<Option<(u64, String)>>;
    /// Checkpoints with sizes in `[from, to]`, smallest first.
    async fn checkpoints(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, String)>>;
    /// Entries with `from <= seq < to`, in order.
    async fn audit_entries(&self, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>>;
    /// Up to `limit` of one project's entries from its `from`th on with `seq < to`, in
    /// order, each with its number within the project.
    async fn project_audit_entries(
        &self,
        project: &ProjectId,
        from: u64,
        to: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, StoredEntry)>>;
    /// Leaf hashes of entries `[0, size)`.
    async fn audit_leaves(&self, size: u64) -> StoreResult<Vec<Hash>>;
    /// Perfect-subtree hashes by `(level, index)` (level 0 from the entries' leaf hashes);
    /// hashes not stored are absent from the answer.
    async fn audit_nodes(
        &self,
        ids: &[(u32, u64)],
    ) -> StoreResult<std::collections::HashMap<(u32, u64), Hash>>;
    /// How many interior hashes are stored.
    async fn audit_node_count(&self) -> StoreResult<u64>;
    /// Stores interior hashes (filling in a log written before they were kept).
    async fn insert_audit_nodes(&self, nodes: &[crate::ledger::merkle::Node]) -> StoreResult<()>;
    /// Every entry recording `action`, in order (key rotations, for hand-over lines).
    async fn audit_entries_with_action(&self, action: &str) -> StoreResult<Vec<StoredEntry>>;
    /// Entries newest first, each older than `before` when given, that `filter` selects: at
    /// most `limit`.
    async fn audit_entries_page(
        &self,
        filter: &EntryFilter,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredEntry>>;
    /// The smallest checkpoint covering entry `seq` (of size above `seq`).
    async fn checkpoint_covering(&self, seq: u64) -> StoreResult<Option<(u64, String)>>;
    /// Records a public key that signs checkpoints.
    async fn add_audit_key(&self, vkey: &str, at: Timestamp) -> StoreResult<()>;
    /// Every public key that ever signed checkpoints, oldest first.
    async fn audit_keys(&self) -> StoreResult<Vec<String>>;
    /// Deletes a person's salt, returning it: their entries can then be linked to no one.
    /// Their keyed lookup is kept as erased at `at`, so a report on them can say why it finds
    /// nothing.
    async fn forget_subject(
        &self,
        project: &ProjectId,
        lookup: &Hash,
        at: Timestamp,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// When this person's salt was deleted by an erasure, if it was.
    async fn subject_erased_at(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Option<Timestamp>>;
    /// Up to `limit` entries with `seq` in `seqs` whose subjects include `subject`, by
    /// sequence number (newest first when asked).
    async fn entries_naming(
        &self,
        subject: &Hash,
        seqs: std::ops::Range<u64>,
        newest_first: bool,
        limit: u32,
    ) -> StoreResult<Vec<StoredEntry>>;
    /// Indexes the subjects of up to `batch` entries written before the index existed;
    /// answers how many are left.
    async fn index_subjects_backlog(&self, batch: u64) -> StoreResult<u64>;
    /// The stored salt for a person's pseudonym, if they have one.
    async fn subject_salt(&self, project: &str, lookup: &Hash) -> StoreResult<Option<Vec<u8>>>;
}

/// The whole store, as the service holds it.
#[async_trait]
pub trait Store:
    ProjectStore
    + EventStore
    + AuditStore
    + PeopleStore
    + SessionStore
    + CredentialStore
    + GrantStore
    + ClassificationStore
    + RequestStore
    + RoleStore
    + PrivacyStore
{
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Runs the pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// How many of this build's migrations the database has not had (an error if it has none).
    async fn pending_migrations(&self) -> StoreResult<usize>;
    /// Checks the database answers (and, for a file, that it is still the file opened).
    async fn ping(&self) -> StoreResult<()>;
    /// Makes one small durable write: whether the database takes writes now.
    async fn probe_write(&self, at: Timestamp) -> StoreResult<()>;
    /// PostgreSQL: whether autovacuum keeps the planner's statistics (None elsewhere).
    async fn autovacuum(&self) -> StoreResult<Option<bool>>;
    /// SQLite: checkpoints the write-ahead log fully and truncates it, unless readers keep it
    /// busy for more than a moment (then false). Other backends: nothing to do (true).
    async fn truncate_wal(&self) -> StoreResult<bool>;
    /// SQLite: the write-ahead log's size in bytes now (None elsewhere).
    fn wal_bytes(&self) -> Option<u64>;
    /// Ages memoised reads (see [`cache`]) on the service's clock rather than the system's.
    fn use_clock(&self, clock: crate::clock::SharedClock);
    /// Closes every connection; later calls fail as if the database were gone.
    async fn close(&self);
}

/// The store shared by the service.
pub type SharedStore = Arc<dyn Store>;

/// Opens the database named by `settings.url` (creating a SQLite file and its folder).
pub async fn connect(settings: &DatabaseSettings) -> StoreResult<SharedStore> {
    if settings.url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::connect(settings).await?))
    } else {
        Ok(Arc::new(postgres::connect(settings).await?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(dir: &str) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        let root = env!("CARGO_MANIFEST_DIR");
        let sqlite = names(&format!("{root}/migrations/sqlite"));
        let postgres = names(&format!("{root}/migrations/postgres"));
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite, postgres,
            "migrations/sqlite and migrations/postgres differ"
        );
    }
}
