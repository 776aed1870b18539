//! Event batches committed together. Where the database has one write lock (SQLite),
//! concurrent batches share one transaction, each in a savepoint of its own, and one commit:
//! the commit's fixed cost (a flush to disk, the lock's hand-over) is paid once per group
//! instead of once per batch, while a batch that fails is rolled back alone. PostgreSQL's
//! groups are one project's batches in one statement (`postgres.rs`), several groups at a time:
//! behind one group at a time its writers lost a third to a half of their throughput in the
//! benchmark; a group the database refuses is written again batch by batch.

use std::collections::VecDeque;
use std::sync::Arc;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Type};
use tokio::sync::oneshot;

use super::events::{adjust_counts, count_deltas, link_in};
use super::sql::*;
use super::*;
use crate::domain::profile::IdentityLink;

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values; 7 per event).
const INSERT_CHUNK: usize = 1000;
/// A group stops growing at this many events (a group of event batches here, a group of audit
/// entries whose events ride with them in the appender): one transaction never holds the write
/// lock for long, and the first batch in it never waits for many behind it.
pub const GROUP_EVENTS: usize = 10_000;

/// Per-day count changes, by (day, event name).
type Deltas = std::collections::BTreeMap<(i64, String), i64>;
/// A project's changes in a group: its count deltas and the span of its events' times.
type Changes = (ProjectId, Deltas, Option<(i64, i64)>);

/// An event as its row is written, serialised by the caller before any lock is taken.
pub(super) struct EventRow {
    pub(super) event: String,
    pub(super) distinct_id: String,
    pub(super) time_ms: i64,
    pub(super) insert_id: Option<String>,
    pub(super) properties: String,
}

/// One batch, ready for the database.
pub struct ReadyBatch {
    pub(super) project: ProjectId,
    pub(super) rows: Vec<EventRow>,
    pub(super) links: Vec<IdentityLink>,
    pub(super) received_at: Timestamp,
}

impl ReadyBatch {
    /// The first and last time of its events (none when it has none).
    fn span(&self) -> Option<(i64, i64)> {
        let times = self.rows.iter().map(|e| e.time_ms);
        times.clone().min().zip(times.max())
    }

    /// The batch's rows, serialised here, in the caller's task, outside any lock.
    pub(super) fn of(
        project: &ProjectId,
        events: &[NewEvent],
        links: &[IdentityLink],
        received_at: Timestamp,
    ) -> Self {
        let rows = events
            .iter()
            .map(|e| EventRow {
                event: e.event.clone(),
                distinct_id: e.distinct_id.as_str().to_owned(),
                time_ms: e.time.millis(),
                insert_id: e.insert_id.clone(),
                properties: serde_json::to_string(&e.properties).expect("a JSON map serializes"),
            })
            .collect();
        Self {
            project: project.clone(),
            rows,
            links: links.to_vec(),
            received_at,
        }
    }
}

/// A group's write under way: each batch's outcome, in order.
pub(super) type GroupWritten<'g> =
    futures_util::future::BoxFuture<'g, Vec<StoreResult<InsertOutcome>>>;

struct Job {
    batch: ReadyBatch,
    done: oneshot::Sender<StoreResult<InsertOutcome>>,
}

/// Batches waiting for the next group, and the turns to write one.
pub struct BatchQueue {
    waiting: std::sync::Mutex<VecDeque<Job>>,
    /// One where the database has one write lock; more where writers run side by side, so a
    /// group's statement is not the only one the database is working on.
    turns: tokio::sync::Semaphore,
    /// Whether a group holds one project's batches only (its statement names one project).
    one_project: bool,
}

impl Default for BatchQueue {
    fn default() -> Self {
        Self::new(1, false)
    }
}

impl BatchQueue {
    /// A queue whose groups are written by at most `writers` leaders at a time.
    pub fn new(writers: usize, one_project: bool) -> Self {
        Self {
            waiting: Default::default(),
            turns: tokio::sync::Semaphore::new(writers.max(1)),
            one_project,
        }
    }

    /// The next group: the oldest batches (of the oldest one's project, where groups hold one),
    /// up to [`GROUP_EVENTS`] events (at least one). Batches of other projects keep their place.
    fn next_group(&self) -> Vec<Job> {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        let project = waiting.front().map(|j| j.batch.project.clone());
        let (mut group, mut passed) = (Vec::new(), Vec::new());
        let mut events = 0;
        while let Some(job) = waiting.pop_front() {
            if self.one_project && Some(&job.batch.project) != project.as_ref() {
                passed.push(job);
                continue;
            }
            let n = job.batch.rows.len();
            if !group.is_empty() && events + n > GROUP_EVENTS {
                waiting.push_front(job);
                break;
            }
            events += n;
            group.push(job);
        }
        for job in passed.into_iter().rev() {
            waiting.push_front(job);
        }
        group
    }

    /// Stores `batch` in a group written by `write` (each batch's outcome, in order), in a task
    /// of its own: a caller that goes away (its client hung up) must not undo the others' batches.
    pub(super) async fn submit<W>(
        self: &Arc<Self>,
        batch: ReadyBatch,
        write: W,
    ) -> StoreResult<InsertOutcome>
    where
        W: for<'g> Fn(&'g [&'g ReadyBatch]) -> GroupWritten<'g> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        // Queued before its leader starts: a leader that finds the queue empty stops.
        self.waiting
            .lock()
            .expect("not poisoned")
            .push_back(Job { batch, done });
        tokio::spawn(self.clone().lead(write));
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the batch's write was abandoned; send it again".into(),
            ))
        })
    }

    /// Writes groups until none is waiting, when it is this leader's turn. Every batch queued
    /// has a leader started after it, so none is left behind.
    async fn lead<W>(self: Arc<Self>, write: W)
    where
        W: for<'g> Fn(&'g [&'g ReadyBatch]) -> GroupWritten<'g>,
    {
        let Ok(_turn) = self.turns.acquire().await else {
            return;
        };
        loop {
            let group = self.next_group();
            if group.is_empty() {
                return;
            }
            let batches: Vec<&ReadyBatch> = group.iter().map(|j| &j.batch).collect();
            let outcomes = write(&batches).await;
            drop(batches);
            for (job, outcome) in group.into_iter().zip(outcomes) {
                // A caller that went away no longer wants its answer; its batch is stored.
                let _ = job.done.send(outcome);
            }
        }
    }
}

/// The same failure for every batch of a group.
fn shared(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
        StoreError::Other(e) => StoreError::Other(anyhow::anyhow!("{e:#}")),
    }
}

/// Notes that project `$1` has events in bucket `$2` at times `$3..=$4`.
pub(super) const NOTE_BUCKET: &str = "INSERT INTO event_buckets (project_id, bucket, first_ms, last_ms) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, bucket) DO UPDATE SET \
     first_ms = CASE WHEN excluded.first_ms < event_buckets.first_ms \
         THEN excluded.first_ms ELSE event_buckets.first_ms END, \
     last_ms = CASE WHEN excluded.last_ms > event_buckets.last_ms \
         THEN excluded.last_ms ELSE event_buckets.last_ms END";

/// The batch SQL, over either backend; the bounds sqlx needs are stated once, here.
pub(super) struct Batches<DB>(std::marker::PhantomData<DB>);

impl<DB> Batches<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// Stores `batch` in the next group commit, and answers what it stored. `per_bucket` is
    /// about how many events share an arrival bucket (`database.events_per_bucket`).
    pub(super) async fn submit(
        pool: Pool<DB>,
        gate: Option<Arc<WriteGate>>,
        queue: Arc<BatchQueue>,
        batch: ReadyBatch,
        per_bucket: i64,
    ) -> StoreResult<InsertOutcome> {
        queue
            .submit(batch, move |batches| {
                let (pool, gate) = (pool.clone(), gate.clone());
                Box::pin(async move {
                    Self::commit_group(&pool, gate.as_deref(), batches, per_bucket).await
                })
            })
            .await
    }

    /// Stores `batch` in a transaction of its own, statement by statement, for a backend whose
    /// writers run side by side and that has no [`Backend::insert_batch`] of its own.
    pub(super) async fn alone(
        pool: &Pool<DB>,
        batch: &ReadyBatch,
        per_bucket: i64,
    ) -> StoreResult<InsertOutcome> {
        let mut tx = begin_write_with(pool, None).await?;
        let bucket = Self::bucket_now(&mut tx, per_bucket).await?;
        let (outcome, deltas) = Self::insert_rows(&mut tx, batch, bucket).await?;
        Self::note_bucket(&mut tx, &batch.project, bucket, batch.span()).await?;
        // Last: every batch of a day updates the same count rows, and on PostgreSQL their row
        // locks are held until the commit, so concurrent batches wait on them as little as possible.
        adjust_counts(&mut *tx, &batch.project, deltas).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// One transaction for the group, a savepoint per batch; each batch's outcome, in order.
    async fn commit_group(
        pool: &Pool<DB>,
        gate: Option<&WriteGate>,
        batches: &[&ReadyBatch],
        per_bucket: i64,
    ) -> Vec<StoreResult<InsertOutcome>> {
        let all_fail = |e: StoreError| batches.iter().map(|_| Err(shared(&e))).collect();
        let mut tx = match begin_write_with(pool, gate).await {
            Ok(tx) => tx,
            Err(e) => return all_fail(e),
        };
        let outcomes = match Self::write_all(&mut tx, batches, per_bucket).await {
            Ok(outcomes) => outcomes,
            Err(e) => return all_fail(e),
        };
        match tx.commit().await {
            Ok(()) => outcomes,
            Err(e) => all_fail(e.into()),
        }
    }

    /// Writes `batches` in the caller's transaction, a savepoint each, with their count changes
    /// and bucket spans; each batch's outcome, in order. The outer error leaves the transaction
    /// in no known state: the caller must not commit it.
    pub(super) async fn write_all(
        conn: &mut DB::Connection,
        batches: &[&ReadyBatch],
        per_bucket: i64,
    ) -> StoreResult<Vec<StoreResult<InsertOutcome>>> {
        let mut outcomes = Vec::with_capacity(batches.len());
        // One bucket for the group: its batches are one transaction.
        let bucket = Self::bucket_now(conn, per_bucket).await?;
        // The stored batches' count changes and span of times, merged: a day's rows and the
        // bucket's are updated once per group, not once per batch.
        let mut counts: std::collections::BTreeMap<String, Changes> = Default::default();
        for batch in batches {
            match Self::in_savepoint(conn, batch, bucket).await? {
                Ok((outcome, deltas)) => {
                    let project = &batch.project;
                    let (_, merged, span) = counts
                        .entry(project.as_str().to_owned())
                        .or_insert_with(|| (project.clone(), Deltas::new(), None));
                    for (key, n) in deltas {
                        *merged.entry(key).or_default() += n;
                    }
                    *span = match (*span, batch.span()) {
                        (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                        (one, other) => one.or(other),
                    };
                    outcomes.push(Ok(outcome));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        for (project, deltas, span) in counts.into_values() {
            adjust_counts(&mut *conn, &project, deltas).await?;
            Self::note_bucket(conn, &project, bucket, span).await?;
        }
        Ok(outcomes)
    }

    /// The batch in a savepoint: kept if it succeeds, undone alone if it fails. The outer error is
    /// the savepoint's own failure.
    async fn in_savepoint(
        conn: &mut DB::Connection,
        batch: &ReadyBatch,
        bucket: i64,
    ) -> StoreResult<StoreResult<(InsertOutcome, Deltas)>> {
        conn.execute("SAVEPOINT batch").await?;
        match Self::insert_rows(conn, batch, bucket).await {
            Ok(outcome) => {
                conn.execute("RELEASE SAVEPOINT batch").await?;
                Ok(Ok(outcome))
            }
            Err(e) => {
                conn.execute("ROLLBACK TO SAVEPOINT batch").await?;
                conn.execute("RELEASE SAVEPOINT batch").await?;
                Ok(Err(e))
            }
        }
    }

    /// The arrival bucket new events go to: the newest stored event's (0022_event_buckets.sql),
    /// or 0 where the indexes have none.
    async fn bucket_now(conn: &mut DB::Connection, per_bucket: i64) -> StoreResult<i64> {
        if !DB::BUCKETED {
            return Ok(0);
        }
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) / $1 FROM events")
                .bind(per_bucket)
                .fetch_one(&mut *conn)
                .await?,
        )
    }

    /// Notes that `project` has events in `bucket` over `span` (first, last time), if any.
    async fn note_bucket(
        conn: &mut DB::Connection,
        project: &ProjectId,
        bucket: i64,
        span: Option<(i64, i64)>,
    ) -> StoreResult<()> {
        if let Some((first, last)) = span {
            sqlx::query(NOTE_BUCKET)
                .bind(project.as_str().to_owned())
                .bind(bucket)
                .bind(first)
                .bind(last)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The batch's events, in `bucket`, and its identity links; its per-day count changes, for
    /// the caller to apply.
    async fn insert_rows(
        conn: &mut DB::Connection,
        batch: &ReadyBatch,
        bucket: i64,
    ) -> StoreResult<(InsertOutcome, Deltas)> {
        let mut inserted = 0;
        let mut deltas = Deltas::new();
        for chunk in batch.rows.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO events (project_id, event, distinct_id, time_ms, insert_id, properties, received_at, bucket) ",
            );
            qb.push_values(chunk, |mut row, e| {
                row.push_bind(batch.project.as_str().to_owned())
                    .push_bind(e.event.clone())
                    .push_bind(e.distinct_id.clone())
                    .push_bind(e.time_ms)
                    .push_bind(e.insert_id.clone())
                    .push_bind(e.properties.clone())
                    .push_bind(batch.received_at.millis())
                    .push_bind(bucket);
            });
            // Only the rows actually inserted come back: duplicates are not counted.
            qb.push(" ON CONFLICT (project_id, insert_id) DO NOTHING RETURNING event, time_ms");
            let done = qb.build().fetch_all(&mut *conn).await?;
            inserted += done.len() as u64;
            for (key, n) in count_deltas(&done, 1)? {
                *deltas.entry(key).or_default() += n;
            }
        }
        // In the same savepoint: a batch's events are never kept without its links.
        let linked = link_in::<DB>(conn, &batch.project, &batch.links, batch.received_at).await?;
        let outcome = InsertOutcome {
            inserted,
            duplicates: batch.rows.len() as u64 - inserted,
            linked,
        };
        Ok((outcome, deltas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(queue: &BatchQueue, project: &str, events: usize) {
        let rows = (0..events)
            .map(|i| EventRow {
                event: "view".into(),
                distinct_id: "p1".into(),
                time_ms: i as i64,
                insert_id: None,
                properties: "{}".into(),
            })
            .collect();
        let batch = ReadyBatch {
            project: ProjectId::parse(project).unwrap(),
            rows,
            links: vec![],
            received_at: Timestamp::from_millis(0),
        };
        let (done, _) = oneshot::channel();
        queue.waiting.lock().unwrap().push_back(Job { batch, done });
    }

    fn taken(group: Vec<Job>) -> Vec<(String, usize)> {
        group
            .iter()
            .map(|j| (j.batch.project.as_str().to_owned(), j.batch.rows.len()))
            .collect()
    }

    #[test]
    fn a_group_is_the_oldest_batches_up_to_its_bound() {
        let queue = BatchQueue::new(1, false);
        for (project, n) in [("a", 4000), ("b", 4000), ("a", 3000), ("a", 1)] {
            queued(&queue, project, n);
        }
        // Projects mix where one transaction can hold them (SQLite); the third would pass
        // GROUP_EVENTS, so it and the one behind it wait for the next group, in order.
        assert_eq!(
            taken(queue.next_group()),
            [("a".into(), 4000), ("b".into(), 4000)]
        );
        assert_eq!(
            taken(queue.next_group()),
            [("a".into(), 3000), ("a".into(), 1)]
        );
        assert!(queue.next_group().is_empty());
        // A batch larger than the bound is a group of its own.
        queued(&queue, "a", GROUP_EVENTS + 1);
        queued(&queue, "a", 1);
        assert_eq!(taken(queue.next_group()), [("a".into(), GROUP_EVENTS + 1)]);
    }

    #[test]
    fn a_one_project_group_leaves_other_projects_in_their_place() {
        let queue = BatchQueue::new(4, true);
        for (project, n) in [("a", 50), ("b", 51), ("a", 52), ("c", 53), ("b", 54)] {
            queued(&queue, project, n);
        }
        assert_eq!(
            taken(queue.next_group()),
            [("a".into(), 50), ("a".into(), 52)]
        );
        assert_eq!(
            taken(queue.next_group()),
            [("b".into(), 51), ("b".into(), 54)]
        );
        assert_eq!(taken(queue.next_group()), [("c".into(), 53)]);
        assert!(queue.next_group().is_empty());
    }
}
