//! Events, profiles and their per-day counts: the portable SQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder,
    Row, Type,
};

use super::sql::*;
use super::*;
use crate::domain::profile::{MAX_IDS_PER_PERSON, ProfileOp};

pub(super) const DAY_MS: i64 = 86_400_000;

/// Counts of the events matching `filter`, read from the events.
fn scan_query<DB: Backend>(filter: &EventFilter, group: CountGroup) -> QueryBuilder<DB>
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let (day, event, group_by) = count_keys(group, "time_ms / 86400000");
    let mut qb = QueryBuilder::new(format!(
        "SELECT {day} AS d, {event} AS e, COUNT(*) AS n FROM events"
    ));
    push_filter(&mut qb, filter, Buckets::All);
    qb.push(group_by);
    qb
}

/// Counts of whole days `[first_day, end_day)`, read from the per-day counts.
pub(super) fn rollup_query<DB: Database>(
    filter: &EventFilter,
    group: CountGroup,
    first_day: Option<i64>,
    end_day: Option<i64>,
) -> QueryBuilder<DB>
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let (day, event, group_by) = count_keys(group, "day");
    let mut qb = QueryBuilder::new(format!(
        "SELECT {day} AS d, {event} AS e, CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n \
         FROM event_counts WHERE project_id = "
    ));
    qb.push_bind(filter.project.as_str().to_owned());
    if let Some(e) = &filter.event {
        qb.push(" AND event = ").push_bind(e.clone());
    }
    if let Some(d) = first_day {
        qb.push(" AND day >= ").push_bind(d);
    }
    if let Some(d) = end_day {
        qb.push(" AND day < ").push_bind(d);
    }
    qb.push(group_by);
    qb
}

/// The day and event columns a count selects (constants where it does not group by them),
/// and its GROUP BY clause.
pub(super) fn count_keys(
    group: CountGroup,
    day: &'static str,
) -> (&'static str, &'static str, String) {
    let (d, e) = match group {
        CountGroup::Total => ("CAST(0 AS BIGINT)", "''"),
        CountGroup::Event => ("CAST(0 AS BIGINT)", "event"),
        CountGroup::Day => (day, "''"),
        CountGroup::EventDay => (day, "event"),
    };
    // PostgreSQL refuses constants in GROUP BY: group by the real columns only.
    let by: Vec<&str> = [d, e]
        .into_iter()
        .filter(|c| *c == day || *c == "event")
        .collect();
    let clause = if by.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", by.join(", "))
    };
    (d, e, clause)
}

/// Adds one (d, e, n) row of a count to `totals` under its key.
pub(super) fn add_count<R: Row>(
    group: CountGroup,
    row: &R,
    totals: &mut BTreeMap<String, i64>,
) -> StoreResult<()>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    let day: i64 = row.try_get(0)?;
    let event: String = row.try_get(1)?;
    let n: i64 = row.try_get(2)?;
    let key = match group {
        CountGroup::Total => "total".to_owned(),
        CountGroup::Event => event,
        CountGroup::Day => day_key(day),
        CountGroup::EventDay => format!("{}/{event}", day_key(day)),
    };
    *totals.entry(key).or_default() += n;
    Ok(())
}

/// Moves the per-day counts by `deltas` ((day, event) -> change), in key order so that
/// concurrent writers lock rows in the same order; rows that reach zero are removed.
pub(super) async fn adjust_counts<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    deltas: BTreeMap<(i64, String), i64>,
) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let changes: Vec<_> = deltas.into_iter().filter(|(_, n)| *n != 0).collect();
    for chunk in changes.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO event_counts (project_id, day, event, n) ");
        qb.push_values(chunk, |mut row, ((day, event), n)| {
            row.push_bind(project.as_str().to_owned())
                .push_bind(*day)
                .push_bind(event.clone())
                .push_bind(*n);
        });
        qb.push(
            " ON CONFLICT (project_id, day, event) DO UPDATE SET n = event_counts.n + excluded.n",
        );
        qb.build().execute(&mut *conn).await?;
    }
    if changes.iter().any(|(_, n)| *n < 0) {
        sqlx::query("DELETE FROM event_counts WHERE project_id = $1 AND n <= 0")
            .bind(project.as_str().to_owned())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The per-day count changes of events (event, time_ms) returned by an INSERT or DELETE.
pub(super) fn count_deltas<R: Row>(
    rows: &[R],
    sign: i64,
) -> StoreResult<BTreeMap<(i64, String), i64>>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    for<'s> &'s str: ColumnIndex<R>,
{
    let mut deltas = BTreeMap::new();
    for r in rows {
        let event: String = r.try_get("event")?;
        let time: i64 = r.try_get("time_ms")?;
        *deltas.entry((time.div_euclid(DAY_MS), event)).or_default() += sign;
    }
    Ok(deltas)
}

pub(super) fn day_key(day: i64) -> String {
    Timestamp::from_millis(day * 86_400_000).to_rfc3339()[..10].to_owned()
}

/// The most buckets one statement reads a page of (SQLite allows 500 terms in a compound SELECT).
const BUCKETS_PER_STATEMENT: usize = 200;

/// Where a statement on the events looks: every bucket the project has events in (a seek each),
/// or one.
#[derive(Clone, Copy)]
enum Buckets {
    All,
    One(i64),
}

/// The events of project `$1` in every bucket it has events in, for static SQL: where the
/// events' indexes begin with (project, bucket), a statement without it would scan the project.
pub(super) fn in_buckets<DB: Backend>() -> &'static str {
    if DB::BUCKETED {
        "bucket IN (SELECT bucket FROM event_buckets WHERE project_id = $1)"
    } else {
        "TRUE"
    }
}

/// Appends the WHERE clause of the buckets that may hold events matching `f`: the project's
/// whose times overlap `f`'s range.
fn push_bucket_filter<DB: Database>(qb: &mut QueryBuilder<DB>, f: &EventFilter)
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    qb.push(" WHERE project_id = ")
        .push_bind(f.project.as_str().to_owned());
    if let Some(t) = f.from {
        qb.push(" AND last_ms >= ").push_bind(t.millis());
    }
    if let Some(t) = f.to {
        qb.push(" AND first_ms < ").push_bind(t.millis());
    }
}

/// Appends the WHERE clause shared by event reads and counts.
fn push_filter<DB: Backend>(qb: &mut QueryBuilder<DB>, f: &EventFilter, at: Buckets)
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    qb.push(" WHERE project_id = ")
        .push_bind(f.project.as_str().to_owned());
    match at {
        Buckets::All if !DB::BUCKETED => {}
        Buckets::All => {
            qb.push(" AND bucket IN (SELECT bucket FROM event_buckets");
            push_bucket_filter(qb, f);
            qb.push(")");
        }
        Buckets::One(b) => {
            qb.push(" AND bucket = ").push_bind(b);
        }
    }
    match &f.distinct_ids[..] {
        [] => {}
        [d] => {
            qb.push(" AND distinct_id = ")
                .push_bind(d.as_str().to_owned());
        }
        ids => {
            qb.push(" AND distinct_id IN (");
            let mut list = qb.separated(", ");
            for d in ids {
                list.push_bind(d.as_str().to_owned());
            }
            qb.push(")");
        }
    }
    if let Some(e) = &f.event {
        qb.push(" AND event = ").push_bind(e.clone());
    }
    if let Some(t) = f.from {
        qb.push(" AND time_ms >= ").push_bind(t.millis());
    }
    if let Some(t) = f.to {
        qb.push(" AND time_ms < ").push_bind(t.millis());
    }
}

impl<DB: Database> SqlStore<DB> {
    /// Runs a count query (rows of day, event, count) and adds its rows to `totals`.
    async fn add_counts(
        &self,
        mut query: QueryBuilder<DB>,
        group: CountGroup,
        totals: &mut BTreeMap<String, i64>,
    ) -> StoreResult<()>
    where
        DB: Backend,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
        for<'q> i64: Decode<'q, DB> + Type<DB>,
        for<'q> String: Decode<'q, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        for r in query.build().fetch_all(&self.reads).await? {
            add_count(group, &r, totals)?;
        }
        Ok(())
    }
}

pub(super) fn event_from_row<DB>(r: &DB::Row) -> StoreResult<StoredEvent>
where
    DB: Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let properties: String = r.try_get("properties")?;
    Ok(StoredEvent {
        id: r.try_get("id")?,
        event: r.try_get("event")?,
        distinct_id: r.try_get("distinct_id")?,
        time: Timestamp::from_millis(r.try_get("time_ms")?),
        insert_id: r.try_get("insert_id")?,
        properties: json_object(&properties)?,
    })
}

portable_impl!(EventStore {
    async fn count_events_before(
        &self,
        project: &ProjectId,
        cutoff: Timestamp,
    ) -> StoreResult<u64> {
        let row =
            sqlx::query(AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM events WHERE project_id = $1 AND {} AND time_ms < $2",
                in_buckets::<DB>()
            )))
            .bind(project.as_str().to_owned())
            .bind(cutoff.millis())
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n.max(0) as u64)
    }

    async fn delete_events_before(
        &self,
        project: &ProjectId,
        cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // In no particular order: ordered by time, every round would sort all that is due.
        let gone = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE project_id = $1 \
             AND {} AND time_ms < $2 LIMIT $3) RETURNING event, time_ms",
            in_buckets::<DB>()
        )))
        .bind(project.as_str().to_owned())
        .bind(cutoff.millis())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        adjust_counts(&mut *tx, project, count_deltas(&gone, -1)?).await?;
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    async fn insert_events(
        &self,
        project: &ProjectId,
        events: &[NewEvent],
        links: &[IdentityLink],
        received_at: Timestamp,
    ) -> StoreResult<InsertOutcome> {
        let batch = super::batches::ReadyBatch::of(project, events, links, received_at);
        match &self.gate {
            // One write lock (SQLite): batches share its turns and their commits.
            Some(gate) => {
                super::batches::Batches::<DB>::submit(
                    self.pool.clone(),
                    Some(gate.clone()),
                    self.batches.clone(),
                    batch,
                    self.events_per_bucket,
                )
                .await
            }
            // Concurrent writers (PostgreSQL): groups of one project's batches, side by side.
            None => match DB::insert_batch(self, batch) {
                Ok(at_once) => at_once.await,
                Err(batch) => {
                    super::batches::Batches::<DB>::alone(&self.pool, &batch, self.events_per_bucket)
                        .await
                }
            },
        }
    }

    async fn query_events(
        &self,
        filter: &EventFilter,
        after: Option<EventCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        const COLUMNS: &str = "SELECT id, event, distinct_id, time_ms, insert_id, properties FROM events";
        let page = |qb: &mut QueryBuilder<DB>, at: Buckets| {
            push_filter(qb, filter, at);
            if let Some(c) = after {
                qb.push(" AND (time_ms > ")
                    .push_bind(c.time.millis())
                    .push(" OR (time_ms = ")
                    .push_bind(c.time.millis())
                    .push(" AND id > ")
                    .push_bind(c.id)
                    .push("))");
            }
            qb.push(" ORDER BY time_ms, id LIMIT ")
                .push_bind(i64::from(limit));
        };
        if !DB::BUCKETED || !filter.distinct_ids.is_empty() {
            // A person's events are few: found in every bucket at once and sorted.
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(COLUMNS);
            page(&mut qb, Buckets::All);
            let rows = qb.build().fetch_all(&self.reads).await?;
            return rows.iter().map(event_from_row::<DB>).collect();
        }
        // A time range may hold millions: the first page of each bucket, read in index order
        // from the index alone, then the first of those, so no page sorts more than a page per
        // bucket, and only the page's own rows are read from the table.
        let mut which = QueryBuilder::new("SELECT bucket FROM event_buckets");
        push_bucket_filter(&mut which, filter);
        let buckets: Vec<i64> = which
            .push(" ORDER BY bucket")
            .build_query_scalar()
            .fetch_all(&self.reads)
            .await?;
        // SQLite refuses a compound SELECT of more than 500 terms: a statement per so many
        // buckets, their pages merged here.
        let mut found = Vec::new();
        for group in buckets.chunks(BUCKETS_PER_STATEMENT) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(COLUMNS);
            qb.push(" WHERE id IN (SELECT id FROM (");
            for (i, b) in group.iter().enumerate() {
                if i > 0 {
                    qb.push(" UNION ALL ");
                }
                qb.push("SELECT * FROM (SELECT time_ms, id FROM events");
                page(&mut qb, Buckets::One(*b));
                qb.push(format!(") AS b{i}"));
            }
            qb.push(") AS firsts ORDER BY time_ms, id LIMIT ")
                .push_bind(i64::from(limit))
                .push(")");
            for r in qb.build().fetch_all(&self.reads).await? {
                found.push(event_from_row::<DB>(&r)?);
            }
        }
        found.sort_by_key(|e| (e.time, e.id));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn count_events(
        &self,
        filter: &EventFilter,
        group: CountGroup,
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut totals = BTreeMap::new();
        // Whole UTC days inside [from, to) come from the per-day counts; the ragged ends, and
        // one person's events (indexed by person), are counted from the events themselves.
        let first_day = filter.from.map(|t| -(-t.millis()).div_euclid(DAY_MS));
        let end_day = filter.to.map(|t| t.millis() / DAY_MS);
        let whole_days =
            filter.distinct_ids.is_empty() && first_day.zip(end_day).is_none_or(|(a, b)| a < b);
        if !whole_days {
            self.add_counts(scan_query(filter, group), group, &mut totals)
                .await?;
        } else {
            let whole = rollup_query(filter, group, first_day, end_day);
            self.add_counts(whole, group, &mut totals).await?;
            if let (Some(from), Some(day)) = (filter.from, first_day)
                && from.millis() < day * DAY_MS
            {
                let mut head = filter.clone();
                head.to = Some(Timestamp::from_millis(day * DAY_MS));
                self.add_counts(scan_query(&head, group), group, &mut totals)
                    .await?;
            }
            if let (Some(to), Some(day)) = (filter.to, end_day)
                && to.millis() > day * DAY_MS
            {
                let mut tail = filter.clone();
                tail.from = Some(Timestamp::from_millis(day * DAY_MS));
                self.add_counts(scan_query(&tail, group), group, &mut totals)
                    .await?;
            }
        }
        Ok(totals.into_iter().collect())
    }

    async fn profile(
        &self,
        project: &ProjectId,
        distinct_id: &DistinctId,
    ) -> StoreResult<Option<Profile>> {
        let row = sqlx::query(
            "SELECT distinct_id, properties, updated_at FROM profiles WHERE project_id = $1 AND distinct_id = $2",
        )
        .bind(project.as_str().to_owned())
        .bind(distinct_id.as_str().to_owned())
        .fetch_optional(&self.reads)
        .await?;
        row.map(|r| {
            let properties: String = r.try_get("properties")?;
            Ok(Profile {
                distinct_id: r.try_get("distinct_id")?,
                properties: json_object(&properties)?,
                updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
            })
        })
        .transpose()
    }

    async fn apply_profile_updates(
        &self,
        project: &ProjectId,
        updates: &[ProfileUpdate],
        at: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        for u in updates {
            let key = [u.distinct_id.as_str().to_owned()];
            apply_op::<DB>(&mut tx, &PEOPLE, project, &key, &u.op, at).await?;
        }
        tx.commit().await?;
        Ok(updates.len() as u64)
    }

    async fn group_profile(
        &self,
        project: &ProjectId,
        group: &GroupRef,
    ) -> StoreResult<Option<GroupProfile>> {
        let row = sqlx::query(
            "SELECT properties, updated_at FROM group_profiles \
             WHERE project_id = $1 AND group_key = $2 AND group_id = $3",
        )
        .bind(project.as_str().to_owned())
        .bind(group.key.clone())
        .bind(group.id.clone())
        .fetch_optional(&self.reads)
        .await?;
        row.map(|r| {
            let properties: String = r.try_get("properties")?;
            Ok(GroupProfile {
                group: group.clone(),
                properties: json_object(&properties)?,
                updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
            })
        })
        .transpose()
    }

    async fn identity_cluster(
        &self,
        project: &ProjectId,
        id: &DistinctId,
    ) -> StoreResult<Vec<DistinctId>> {
        // One round trip: the id it was merged into (or itself), then every id merged into that.
        let rows = sqlx::query(
            "WITH root AS (SELECT COALESCE((SELECT canonical FROM identity_links \
                 WHERE project_id = $1 AND alias = $2), $2) AS id) \
             SELECT 0 AS k, id FROM root \
             UNION ALL SELECT 1, alias FROM identity_links \
                 WHERE project_id = $1 AND canonical = (SELECT id FROM root) \
             ORDER BY 1, 2",
        )
        .bind(project.as_str().to_owned())
        .bind(id.as_str().to_owned())
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                let d: String = r.try_get(1)?;
                DistinctId::parse(&d)
                    .map_err(|e| StoreError::Other(anyhow::anyhow!("a stored id {d:?}: {}", e.0)))
            })
            .collect()
    }

    async fn apply_group_updates(
        &self,
        project: &ProjectId,
        updates: &[GroupUpdate],
        at: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        for u in updates {
            let key = [u.group.key.clone(), u.group.id.clone()];
            apply_op::<DB>(&mut tx, &GROUPS, project, &key, &u.op, at).await?;
        }
        tx.commit().await?;
        Ok(updates.len() as u64)
    }
});

/// A table of profiles and the columns that name one, after the project.
struct ProfileTable {
    table: &'static str,
    keys: &'static [&'static str],
}

const PEOPLE: ProfileTable = ProfileTable {
    table: "profiles",
    keys: &["distinct_id"],
};

const GROUPS: ProfileTable = ProfileTable {
    table: "group_profiles",
    keys: &["group_key", "group_id"],
};

/// Applies one operation to the profile `key` names: read, change, write back (or delete).
/// Ids per `IN (...)` list: well under both backends' limits on bound parameters.
const IDS_PER_LOOKUP: usize = 1000;

/// `SELECT <columns> FROM identity_links` of one project where `column` is one of `ids`. Run
/// it unprepared (`persistent(false)`): PostgreSQL plans an unnamed statement for its values
/// each time, whereas a prepared one may keep the plan made while the table was empty, a
/// sequential scan, which took 90 ms a batch once the table held thousands of links.
fn links_where<DB: sqlx::Database>(
    columns: &str,
    project: &str,
    column: &str,
    ids: &[String],
) -> QueryBuilder<DB>
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "SELECT {columns} FROM identity_links WHERE project_id = "
    ));
    qb.push_bind(project.to_owned())
        .push(format!(" AND {column} IN ("));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    qb.push(")");
    qb
}

/// The `(alias, person)` rows a batch's links make, in order, against what is stored
/// (`root_of`: the person each named id is an alias of; `size`: how many aliases each named id
/// or person has) and what the batch has made so far; both are updated with what it makes, so
/// the next batch of a group sees them.
pub(super) fn links_to_make(
    links: &[IdentityLink],
    root_of: &mut HashMap<String, String>,
    size: &mut HashMap<String, usize>,
) -> Vec<(String, String)> {
    let mut made: Vec<(String, String)> = Vec::new();
    for link in links {
        let alias = link.alias.as_str();
        if root_of.contains_key(alias) || size.get(alias).is_some_and(|n| *n > 0) {
            continue;
        }
        let root = root_of
            .get(link.canonical.as_str())
            .cloned()
            .unwrap_or_else(|| link.canonical.as_str().to_owned());
        let ids = size.entry(root.clone()).or_default();
        if root == alias || *ids + 1 >= MAX_IDS_PER_PERSON {
            continue;
        }
        *ids += 1;
        root_of.insert(alias.to_owned(), root.clone());
        made.push((alias.to_owned(), root));
    }
    made
}

/// Makes each link's alias one more id of its canonical id's person, on `conn` (in a
/// transaction), in order: unless the alias is someone's already (as an alias or with ids of
/// its own: two people are never joined), would be its own person's alias, or the person has
/// `MAX_IDS_PER_PERSON` ids. What the links' ids are now is read in two queries for the whole
/// batch, however many links it asks for; returns how many links were made.
pub(super) async fn link_in<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    links: &[IdentityLink],
    at: Timestamp,
) -> StoreResult<u64>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    if links.is_empty() {
        return Ok(0);
    }
    let pid = project.as_str().to_owned();
    let named: BTreeSet<String> = links
        .iter()
        .flat_map(|l| [l.alias.as_str().to_owned(), l.canonical.as_str().to_owned()])
        .collect();
    // Which person each id named is an alias of, then how many aliases each id named (or its
    // person) has.
    let mut root_of: HashMap<String, String> = HashMap::new();
    let named: Vec<String> = named.into_iter().collect();
    for chunk in named.chunks(IDS_PER_LOOKUP) {
        let mut qb = links_where::<DB>("alias, canonical", &pid, "alias", chunk);
        for row in qb.build().persistent(false).fetch_all(&mut *conn).await? {
            root_of.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let persons: BTreeSet<String> = named.iter().chain(root_of.values()).cloned().collect();
    let persons: Vec<String> = persons.into_iter().collect();
    let mut size: HashMap<String, usize> = HashMap::new();
    for chunk in persons.chunks(IDS_PER_LOOKUP) {
        let mut qb = links_where::<DB>("canonical, COUNT(*)", &pid, "canonical", chunk);
        qb.push(" GROUP BY canonical");
        for row in qb.build().persistent(false).fetch_all(&mut *conn).await? {
            let n: i64 = row.try_get(1)?;
            size.insert(row.try_get(0)?, n.max(0) as usize);
        }
    }
    let made = links_to_make(links, &mut root_of, &mut size);
    let mut linked = 0;
    for chunk in made.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> = QueryBuilder::new(
            "INSERT INTO identity_links (project_id, alias, canonical, created_at) ",
        );
        qb.push_values(chunk, |mut row, (alias, root)| {
            row.push_bind(pid.clone())
                .push_bind(alias.clone())
                .push_bind(root.clone())
                .push_bind(at.millis());
        });
        qb.push(" ON CONFLICT (project_id, alias) DO NOTHING");
        linked += DB::rows_affected(&qb.build().execute(&mut *conn).await?);
    }
    Ok(linked)
}

async fn apply_op<DB>(
    conn: &mut DB::Connection,
    t: &ProfileTable,
    project: &ProjectId,
    key: &[String],
    op: &ProfileOp,
    at: Timestamp,
) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let (table, cols) = (t.table, t.keys);
    let matches: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!(" AND {c} = ${}", i + 2))
        .collect();
    let matches = matches.concat();
    let bind_key = |q: sqlx::query::Query<'static, DB, DB::Arguments>| {
        key.iter().fold(q, |q, k| q.bind(k.clone()))
    };
    let select = format!("SELECT properties FROM {table} WHERE project_id = $1{matches}");
    let current: Option<String> =
        bind_key(sqlx::query(AssertSqlSafe(select)).bind(project.as_str().to_owned()))
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    let current = current.as_deref().map(json_object).transpose()?;
    match op.apply(current) {
        Some(props) => {
            let n = cols.len();
            let values: Vec<String> = (2..=n + 3).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {table} (project_id, {keys}, properties, updated_at) VALUES ($1, {values}) \
                 ON CONFLICT (project_id, {keys}) DO UPDATE SET properties = excluded.properties, updated_at = excluded.updated_at",
                keys = cols.join(", "),
                values = values.join(", "),
            );
            bind_key(sqlx::query(AssertSqlSafe(insert)).bind(project.as_str().to_owned()))
                .bind(Value::Object(props).to_string())
                .bind(at.millis())
                .execute(&mut *conn)
                .await?;
        }
        None => {
            let delete = format!("DELETE FROM {table} WHERE project_id = $1{matches}");
            bind_key(sqlx::query(AssertSqlSafe(delete)).bind(project.as_str().to_owned()))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
