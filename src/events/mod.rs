//! The event data service: store and read events and profiles, only with a capability.

pub mod identity;
pub mod metrics;
pub mod mixpanel;
pub mod reads;
pub use crate::domain::profile;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::access::{Authorized, perm};
use crate::audit::{AuditLog, RequestContext};
use crate::domain::{DistinctId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::{
    CountGroup, EventCursor, EventFilter, EventRider, GroupProfile, InsertOutcome, NewEvent,
    Profile, SharedStore, StoredEvent,
};
use profile::{GroupRef, GroupUpdate, ProfileUpdate};

/// Largest page of events one query returns.
pub const MAX_PAGE: u32 = 1000;

/// Refuses projects that do not exist or were soft-deleted, as if they never existed.
async fn live_project<P: crate::access::Requirement>(
    store: &SharedStore,
    auth: &Authorized<P>,
) -> Result<(), AppError> {
    crate::projects::live(store.as_ref(), auth.project())
        .await
        .map(drop)
}

/// Records an ingestion batch in the log (`EventsIngest`, with the route's `details`), then
/// stores its events in the authorized project, with the identity links they ask for
/// ([`identity::links_of`]) in the events' transaction; fails closed. Where the store writes them together (SQLite's one write lock), the events go
/// in the entry's own transaction: one turn at the lock, and never an event without its entry.
/// Elsewhere the entry is committed first. `None` when there were no events to store.
pub async fn ingest(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::EventsIngest>,
    details: Value,
    (events, links): (&[NewEvent], &[identity::Link]),
    now: Timestamp,
) -> Result<Option<InsertOutcome>, AppError> {
    live_project(store, auth).await?;
    let (action, records) = (Action::EventsIngest, events.len() as u64);
    if !events.is_empty() && store.events_ride_with_entries() {
        let rider = EventRider::new(auth.project(), events, links, now);
        let (_, stored) = audit
            .record_with_events(ctx, auth, action, records, details, rider)
            .await?;
        return Ok(Some(stored?));
    }
    audit
        .record(ctx, auth, action, records, details, vec![])
        .await?;
    if events.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        store
            .insert_events(auth.project(), events, links, now)
            .await?,
    ))
}

/// Adds to a query for one person the other ids merged into theirs, so their events before
/// and after signing in are read together, whichever id was asked for.
pub async fn with_merged_ids(
    store: &SharedStore,
    auth: &Authorized<perm::EventsRead>,
    mut q: EventQuery,
) -> Result<EventQuery, AppError> {
    if let Some(d) = &q.distinct_id {
        q.merged = store
            .identity_cluster(auth.project(), d)
            .await?
            .into_iter()
            .filter(|id| id != d)
            .collect();
    }
    Ok(q)
}

/// Applies profile updates in the authorized project.
pub async fn update_profiles(
    store: &SharedStore,
    auth: &Authorized<perm::EventsIngest>,
    updates: &[ProfileUpdate],
    now: Timestamp,
) -> Result<u64, AppError> {
    live_project(store, auth).await?;
    Ok(store
        .apply_profile_updates(auth.project(), updates, now)
        .await?)
}

/// Which events a reader asks for, before the project is bound by authorization.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this person.
    pub distinct_id: Option<DistinctId>,
    /// The person's other ids, merged into theirs ([`with_merged_ids`] fills it in).
    pub merged: Vec<DistinctId>,
    /// Only this event name.
    pub event: Option<String>,
    /// From this time (inclusive).
    pub from: Option<Timestamp>,
    /// To this time (exclusive).
    pub to: Option<Timestamp>,
}

impl EventQuery {
    fn bind<P: crate::access::Requirement>(&self, auth: &Authorized<P>) -> EventFilter {
        EventFilter {
            project: auth.project().clone(),
            distinct_ids: self
                .distinct_id
                .iter()
                .chain(&self.merged)
                .cloned()
                .collect(),
            event: self.event.clone(),
            from: self.from,
            to: self.to,
        }
    }
}

/// An opaque position between pages: base64url of `time.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub EventCursor);

impl Cursor {
    /// Reads a cursor a client sent back.
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let bad = || AppError::BadRequest("cursor is not one this service issued".into());
        let text = URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let (t, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self(EventCursor {
            time: Timestamp::from_millis(t.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        }))
    }

    /// The text sent to the client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.0.time.millis(), self.0.id))
    }
}

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event name.
    pub event: String,
    /// The end user.
    pub distinct_id: String,
    /// When it happened, RFC 3339.
    pub time: String,
    /// When it happened, epoch milliseconds.
    pub time_ms: i64,
    /// The deduplication key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_id: Option<String>,
    /// The properties.
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
}

impl From<StoredEvent> for EventView {
    fn from(e: StoredEvent) -> Self {
        Self {
            event: e.event,
            distinct_id: e.distinct_id,
            time: e.time.to_rfc3339(),
            time_ms: e.time.millis(),
            insert_id: e.insert_id,
            properties: e.properties,
        }
    }
}

/// One page of events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<EventView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Reads one page of events in the authorized project.
pub async fn query(
    store: &SharedStore,
    auth: &Authorized<perm::EventsRead>,
    q: &EventQuery,
    after: Option<Cursor>,
    limit: u32,
) -> Result<EventPage, AppError> {
    live_project(store, auth).await?;
    let limit = limit.clamp(1, MAX_PAGE);
    // One extra row tells whether another page follows.
    let mut rows = store
        .query_events(&q.bind(auth), after.map(|c| c.0), limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last().map(|e| {
                Cursor(EventCursor {
                    time: e.time,
                    id: e.id,
                })
                .encode()
            })
        })
        .flatten();
    Ok(EventPage {
        events: rows.into_iter().map(EventView::from).collect(),
        next_cursor,
    })
}

/// The value shown in place of a sensitive property's.
pub const REDACTED: &str = "[redacted]";

/// Redacts the `sensitive` properties present in `properties` unless `reveal`; adds each one
/// present to `returned` (revealed) or `redacted`, for the audit entry.
pub fn redact(
    properties: &mut Map<String, Value>,
    sensitive: &[String],
    reveal: bool,
    returned: &mut std::collections::BTreeSet<String>,
    redacted: &mut std::collections::BTreeSet<String>,
) {
    for name in sensitive {
        if let Some(value) = properties.get_mut(name) {
            if reveal {
                returned.insert(name.clone());
            } else {
                *value = Value::String(REDACTED.into());
                redacted.insert(name.clone());
            }
        }
    }
}

/// Counts events in the authorized project.
pub async fn count(
    store: &SharedStore,
    auth: &Authorized<perm::EventsRead>,
    q: &EventQuery,
    group: CountGroup,
) -> Result<Vec<(String, i64)>, AppError> {
    live_project(store, auth).await?;
    Ok(store.count_events(&q.bind(auth), group).await?)
}

/// Reads one person's profile in the authorized project.
pub async fn profile(
    store: &SharedStore,
    auth: &Authorized<perm::ProfilesRead>,
    distinct_id: &DistinctId,
) -> Result<Option<Profile>, AppError> {
    live_project(store, auth).await?;
    // A merged person's profile is kept under the id they were known by when it was set:
    // the asked id's own, else their canonical id's.
    if let Some(p) = store.profile(auth.project(), distinct_id).await? {
        return Ok(Some(p));
    }
    let ids = store.identity_cluster(auth.project(), distinct_id).await?;
    match ids.first() {
        Some(root) if root != distinct_id => Ok(store.profile(auth.project(), root).await?),
        _ => Ok(None),
    }
}

/// Applies group profile updates in the authorized project.
pub async fn update_groups(
    store: &SharedStore,
    auth: &Authorized<perm::EventsIngest>,
    updates: &[GroupUpdate],
    now: Timestamp,
) -> Result<u64, AppError> {
    live_project(store, auth).await?;
    Ok(store
        .apply_group_updates(auth.project(), updates, now)
        .await?)
}

/// One group's profile in the authorized project.
pub async fn group_profile(
    store: &SharedStore,
    auth: &Authorized<perm::ProfilesRead>,
    group: &GroupRef,
) -> Result<Option<GroupProfile>, AppError> {
    live_project(store, auth).await?;
    Ok(store.group_profile(auth.project(), group).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor(EventCursor {
            time: Timestamp::from_millis(1_700_000_000_000),
            id: 42,
        });
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        assert!(Cursor::parse("not-a-cursor!").is_err());
        assert!(Cursor::parse(&URL_SAFE_NO_PAD.encode("1.x")).is_err());
    }
}
