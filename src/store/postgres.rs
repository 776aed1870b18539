//! The PostgreSQL backend, for production.

use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{Pool, Postgres};

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use sqlx::Row;

use super::InsertOutcome;
use super::audit_log::GroupWrite;
use super::batches::ReadyBatch;
use super::cache::ReadCache;
use super::events::links_to_make;
use super::sql::{Backend, Pools, SqlStore};
use super::{StoreError, StoreResult};
use crate::config::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Backend for Postgres {
    const NAME: &'static str = "postgres";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    const BEGIN_WRITE: &'static str = "BEGIN";

    // Dead tuples are reclaimed by (auto)vacuum; see docs/privacy.md.
    const TRUNCATE_WAL: Option<&'static str> = None;

    const WRITES_GROUP_AT_ONCE: bool = true;

    fn insert_batch(
        store: &SqlStore<Postgres>,
        batch: ReadyBatch,
    ) -> Result<BoxFuture<'_, StoreResult<InsertOutcome>>, ReadyBatch> {
        Ok(Box::pin(insert_batch(store, batch)))
    }

    fn write_group<'a>(
        pool: &'a Pool<Postgres>,
        g: &'a GroupWrite<'a>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let (mut e_seq, mut e_project, mut e_project_seq, mut e_time) =
                (vec![], vec![], vec![], vec![]);
            let (mut e_action, mut e_leaf, mut e_link, mut e_bytes) =
                (vec![], vec![], vec![], vec![]);
            for s in g.sealed {
                e_seq.push(s.entry.seq as i64);
                e_project.push(s.entry.project.clone());
                e_project_seq.push(s.entry.project_seq as i64);
                e_time.push(s.entry.time_ms);
                e_action.push(s.entry.action.as_str());
                e_leaf.push(s.leaf.as_slice());
                e_link.push(s.link.as_slice());
                e_bytes.push(s.bytes.as_slice());
            }
            let written = sqlx::query(WRITE_GROUP)
                .bind(g.head.size() as i64)
                .bind(g.head.last_link.as_slice())
                .bind(g.head.range.peaks().concat())
                .bind(g.head.last_time)
                .bind(g.base.size() as i64)
                .bind(g.base.last_link.as_slice())
                .bind(g.now.millis())
                .bind(
                    g.keys
                        .iter()
                        .map(|k| k.project.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    g.keys
                        .iter()
                        .map(|k| k.lookup.as_slice())
                        .collect::<Vec<_>>(),
                )
                .bind(g.keys.iter().map(|k| k.salt.as_slice()).collect::<Vec<_>>())
                .bind(g.checkpoint.iter().map(|c| c.0 as i64).collect::<Vec<_>>())
                .bind(
                    g.checkpoint
                        .iter()
                        .map(|c| c.1.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(e_seq)
                .bind(e_project)
                .bind(e_project_seq)
                .bind(e_time)
                .bind(e_action)
                .bind(e_leaf)
                .bind(e_link)
                .bind(e_bytes)
                .bind(
                    g.nodes
                        .iter()
                        .map(|n| i64::from(n.level))
                        .collect::<Vec<_>>(),
                )
                .bind(g.nodes.iter().map(|n| n.index as i64).collect::<Vec<_>>())
                .bind(
                    g.nodes
                        .iter()
                        .map(|n| n.hash.as_slice())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    g.named
                        .iter()
                        .map(|(h, _)| h.as_slice())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    g.named
                        .iter()
                        .map(|(_, seq)| *seq as i64)
                        .collect::<Vec<_>>(),
                )
                .bind(g.keys.len() as i64)
                .execute(pool)
                .await;
            match written {
                Ok(_) => Ok(true),
                // The guard below (the head moved, or a salt was already made with another
                // value), or an entry's place taken: nothing was written.
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("22012") || e.is_unique_violation() =>
                {
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Groups of event batches written at a time. A batch of a browser's 50 events cost
/// PostgreSQL about twice a plain insert of its rows (a links lookup planned per batch, a
/// statement and a commit per batch); grouped, the batches waiting together share one of each.
/// Not one: a group's statement runs on one core and waits for its commit's flush. Two made
/// bigger groups but no faster ingestion than four in the benchmark (a browser an event:
/// 18.0-18.7k events/s against 20.1-20.6k; /import the same); eight made groups of one again.
pub(super) const EVENT_WRITERS: u32 = 4;

/// Stores one batch in a group with the batches of its project waiting beside it.
async fn insert_batch(store: &SqlStore<Postgres>, batch: ReadyBatch) -> StoreResult<InsertOutcome> {
    let pool = store.ingest.clone();
    let outcome = store
        .batches
        .submit(batch, move |batches| {
            let pool = pool.clone();
            Box::pin(async move { write_group_of_batches(&pool, batches).await })
        })
        .await?;
    refresh_link_statistics(store, outcome.linked);
    Ok(outcome)
}

/// Writes a group of one project's batches as one statement; where the database refuses it,
/// each batch alone, so that a batch it refuses does not fail the others. A database that
/// cannot be reached fails them all at once, not once per batch after as many waits.
async fn write_group_of_batches(
    pool: &Pool<Postgres>,
    batches: &[&ReadyBatch],
) -> Vec<StoreResult<InsertOutcome>> {
    match insert_group(pool, batches).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(StoreError::Unavailable(why)) => batches
            .iter()
            .map(|_| Err(StoreError::Unavailable(why.clone())))
            .collect(),
        Err(e) if batches.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::debug!(error = %e, batches = batches.len(), "a group of event batches was refused; writing each alone");
            let mut outcomes = Vec::with_capacity(batches.len());
            for batch in batches {
                outcomes.push(
                    insert_group(pool, &[batch])
                        .await
                        .map(|mut one| one.remove(0)),
                );
            }
            outcomes
        }
    }
}

/// Stores a group of one project's batches, in order, in its own transaction: what their
/// links' ids are now (one prepared lookup: see `LINKS_NOW` on its plan), then their events,
/// per-day counts and links in one statement. Each batch's
/// outcome, in order: a `$insert_id` new to the store is counted for the first batch of the
/// group that has it, a link for the batch that asked for it.
async fn insert_group(
    pool: &Pool<Postgres>,
    batches: &[&ReadyBatch],
) -> StoreResult<Vec<InsertOutcome>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let project = first.project.as_str();
    let (mut root_of, mut size) = (HashMap::new(), HashMap::new());
    let named: BTreeSet<&str> = batches
        .iter()
        .flat_map(|b| &b.links)
        .flat_map(|l| [l.alias.as_str(), l.canonical.as_str()])
        .collect();
    if !named.is_empty() {
        let rows = sqlx::query(LINKS_NOW)
            .bind(project)
            .bind(named.into_iter().collect::<Vec<_>>())
            .fetch_all(pool)
            .await?;
        for r in rows {
            let id: String = r.try_get(0)?;
            match r.try_get::<Option<String>, _>(1)? {
                Some(root) => {
                    root_of.insert(id, root);
                }
                None => {
                    size.insert(id, r.try_get::<i64, _>(2)?.max(0) as usize);
                }
            }
        }
    }
    // Each batch's links against what is stored and what the batches before it in the group make.
    let made: Vec<Vec<(String, String)>> = batches
        .iter()
        .map(|b| links_to_make(&b.links, &mut root_of, &mut size))
        .collect();
    // Column by column, built before the statement's await: nothing borrowed lazily is held
    // across it.
    let (mut received, mut event, mut who, mut time, mut insert_id, mut properties) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for b in batches {
        for e in &b.rows {
            received.push(b.received_at.millis());
            event.push(e.event.as_str());
            who.push(e.distinct_id.as_str());
            time.push(e.time_ms);
            insert_id.push(e.insert_id.as_deref());
            properties.push(e.properties.as_str());
        }
    }
    let (mut alias, mut root, mut linked_at) = (vec![], vec![], vec![]);
    for (b, made) in batches.iter().zip(&made) {
        for (a, r) in made {
            alias.push(a.as_str());
            root.push(r.as_str());
            linked_at.push(b.received_at.millis());
        }
    }
    let written = sqlx::query(INSERT_BATCHES)
        .bind(project)
        .bind(received)
        .bind(event)
        .bind(who)
        .bind(time)
        .bind(insert_id)
        .bind(properties)
        .bind(alias)
        .bind(root)
        .bind(linked_at)
        .fetch_all(pool)
        .await?;
    // Which batch each new `$insert_id` and each link is counted for. Events without an
    // `$insert_id` are never duplicates: each is new.
    let mut outcomes: Vec<InsertOutcome> = batches
        .iter()
        .map(|b| InsertOutcome {
            inserted: b.rows.iter().filter(|e| e.insert_id.is_none()).count() as u64,
            duplicates: 0,
            linked: 0,
        })
        .collect();
    let mut event_of: HashMap<&str, usize> = HashMap::new();
    for (i, b) in batches.iter().enumerate() {
        for id in b.rows.iter().filter_map(|e| e.insert_id.as_deref()) {
            event_of.entry(id).or_insert(i);
        }
    }
    let link_of: HashMap<&str, usize> = made
        .iter()
        .enumerate()
        .flat_map(|(i, made)| made.iter().map(move |(alias, _)| (alias.as_str(), i)))
        .collect();
    for row in written {
        let is_event: bool = row.try_get(0)?;
        let id: &str = row.try_get(1)?;
        let found = if is_event {
            event_of.get(id)
        } else {
            link_of.get(id)
        };
        let Some(&i) = found else {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the database answered an id the group did not send"
            )));
        };
        if is_event {
            outcomes[i].inserted += 1;
        } else {
            outcomes[i].linked += 1;
        }
    }
    for (outcome, b) in outcomes.iter_mut().zip(batches) {
        outcome.duplicates = (b.rows.len() as u64).saturating_sub(outcome.inserted);
    }
    Ok(outcomes)
}

/// A table that grows from nothing in a burst (a new project's first browsers) is planned from
/// statistics taken while it was nearly empty, as a scan of every link of the project per
/// batch (49 ms a batch at 40,000 links, against under 1 ms), until autovacuum looks, up to a
/// minute later: this process refreshes them itself each time it has made as many links again
/// as the table had at the last refresh, or 1,000 more.
fn refresh_link_statistics(store: &SqlStore<Postgres>, linked: u64) {
    let made = store.links_made.fetch_add(linked, Ordering::Relaxed) + linked;
    let due = store.links_analyzed.load(Ordering::Relaxed);
    if linked > 0
        && made >= due
        && store
            .links_analyzed
            .compare_exchange(
                due,
                (2 * made).max(made + 1000),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        let pool = store.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("ANALYZE identity_links").execute(&pool).await {
                tracing::debug!(error = %e, "refreshing identity_links' statistics failed");
            }
        });
    }
}

/// The person each named id is an alias of (`id, person, NULL`), and how many aliases each
/// named id or its person has (`id, NULL, n`). Both as `= ANY(array)`, which the index answers:
/// `IN (SELECT unnest(...))` was planned as a scan of every link of the project (10 ms at
/// 40,000 links against 0.4 ms).
///
/// Prepared: planning it cost more than running it (0.48 ms a lookup of four ids unprepared,
/// 0.14 ms prepared, at 200,000 links). Planned once per connection: left to choose, PostgreSQL
/// planned it again for three calls in four (each plan about 0.18 ms: 1,256 plans in 1,650
/// calls, 231 ms, of a browser benchmark's 6 seconds), so the writers' connections force a
/// generic plan (`connect`). A prepared plan is kept until the table's statistics
/// change, and one made while the table was nearly empty is a sequential scan (63 ms a lookup
/// once it has grown to 200,000 links unanalysed); `refresh_link_statistics` analyses it
/// whenever this process has doubled the links it made (from 1,000), which makes PostgreSQL
/// plan it again, so a scan is only ever kept over the table's first few thousand links.
const LINKS_NOW: &str = "
WITH roots AS (
    SELECT alias, canonical FROM identity_links
    WHERE project_id = $1 AND alias = ANY($2::text[])
)
SELECT alias, canonical, 0::bigint FROM roots
UNION ALL
SELECT canonical, NULL, count(*) FROM identity_links
WHERE project_id = $1 AND canonical = ANY($2::text[] || ARRAY(SELECT canonical FROM roots))
GROUP BY canonical";

/// A group's events, their per-day counts (in the order every other writer of counts takes
/// their row locks: by day, then by name's bytes) and its links; answers the `$insert_id` of
/// each new event that has one (`true`) and the alias of each new link (`false`). A duplicate
/// `$insert_id`, stored already or earlier in the group, is skipped and not counted.
const INSERT_BATCHES: &str = "
WITH inserted AS (
    INSERT INTO events (project_id, event, distinct_id, time_ms, insert_id, properties, received_at)
    SELECT $1, e.event, e.distinct_id, e.time_ms, e.insert_id, e.properties, e.received_at
    FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
        AS e(received_at, event, distinct_id, time_ms, insert_id, properties)
    ON CONFLICT (project_id, insert_id) DO NOTHING
    RETURNING event, time_ms, insert_id
), counted AS (
    INSERT INTO event_counts (project_id, day, event, n)
    SELECT $1, d.day, d.event, count(*)
    FROM (SELECT (time_ms - ((time_ms % 86400000) + 86400000) % 86400000) / 86400000 AS day,
            event
          FROM inserted) AS d
    GROUP BY d.day, d.event
    ORDER BY d.day, d.event COLLATE \"C\"
    ON CONFLICT (project_id, day, event) DO UPDATE SET n = event_counts.n + excluded.n
), linked AS (
    INSERT INTO identity_links (project_id, alias, canonical, created_at)
    SELECT $1, l.alias, l.canonical, l.created_at
    FROM UNNEST($8::text[], $9::text[], $10::bigint[]) AS l(alias, canonical, created_at)
    ON CONFLICT (project_id, alias) DO NOTHING
    RETURNING alias
)
SELECT true, insert_id FROM inserted WHERE insert_id IS NOT NULL
UNION ALL
SELECT false, alias FROM linked";

/// One audit group, as one statement (so one transaction): the head moves only if it is still
/// where the group was sealed, and every table the slow path writes row by row is filled from
/// arrays. Data-modifying CTEs always run to completion, and the final division by zero when
/// the head had moved or a salt was not stored as given undoes all of them.
const WRITE_GROUP: &str = "
WITH head AS (
    UPDATE audit_head SET size = $1, last_link = $2, peaks = $3, last_time = $4
    WHERE id = 1 AND size = $5 AND last_link = $6
    RETURNING 1
), keys AS (
    INSERT INTO subject_keys (project_id, lookup, salt, created_at)
    SELECT k.project_id, k.lookup, k.salt, $7
    FROM UNNEST($8::text[], $9::bytea[], $10::bytea[]) AS k(project_id, lookup, salt)
    ON CONFLICT (project_id, lookup) DO UPDATE SET salt = EXCLUDED.salt
        WHERE subject_keys.salt = EXCLUDED.salt
    RETURNING 1
), checkpoint AS (
    INSERT INTO audit_checkpoints (size, note, created_at)
    SELECT c.size, c.note, $7 FROM UNNEST($11::bigint[], $12::text[]) AS c(size, note)
    ON CONFLICT (size) DO NOTHING
), entries AS (
    INSERT INTO audit_entries (seq, project_id, project_seq, time_ms, action, leaf_hash, link, bytes)
    SELECT * FROM UNNEST($13::bigint[], $14::text[], $15::bigint[], $16::bigint[], $17::text[],
        $18::bytea[], $19::bytea[], $20::bytea[])
), nodes AS (
    INSERT INTO audit_nodes (level, idx, hash)
    SELECT * FROM UNNEST($21::bigint[], $22::bigint[], $23::bytea[])
    ON CONFLICT (level, idx) DO NOTHING
), subjects AS (
    INSERT INTO audit_subjects (subject, seq)
    SELECT * FROM UNNEST($24::bytea[], $25::bigint[])
    ON CONFLICT (subject, seq) DO NOTHING
)
SELECT 1 / ((SELECT count(*) FROM head) = 1 AND (SELECT count(*) FROM keys) = $26)::int";

/// Connects to the PostgreSQL database named by a `postgres://` URL.
pub async fn connect(settings: &DatabaseSettings) -> StoreResult<SqlStore<Postgres>> {
    let options = PgConnectOptions::from_str(&settings.url)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("database.url: {e}")))?;
    let pool = |size: u32, options: PgConnectOptions| {
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .connect_with(options)
    };
    let timed = options
        .clone()
        .options([("statement_timeout", settings.read_timeout_ms.to_string())]);
    // The event writers' statements have the same shape every time (arrays): planned once
    // for each connection, not again for every group (see `LINKS_NOW`).
    let planned_once = options
        .clone()
        .options([("plan_cache_mode", "force_generic_plan")]);
    let pools = Pools {
        general: pool(settings.max_connections, options.clone()).await?,
        reads: pool(settings.max_connections, timed).await?,
        audit: pool(settings.audit_connections, options).await?,
    };
    let writers = pool(EVENT_WRITERS, planned_once).await?;
    Ok(SqlStore::new(pools, None, ReadCache::of(settings)).with_event_writers(writers))
}
