//! The audit log's entries, tree hashes, head, checkpoints and salts: the portable SQL.

use std::collections::HashMap;

use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type,
};

use super::sql::*;
use super::*;
use crate::ledger::chain::{Sealed, seal};
use crate::ledger::merkle::{CompactRange, Node};

/// Stores perfect-subtree hashes; one already stored with the same hash is skipped.
pub(super) async fn insert_nodes<DB>(conn: &mut DB::Connection, nodes: &[Node]) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    for chunk in nodes.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO audit_nodes (level, idx, hash) ");
        qb.push_values(chunk, |mut row, n| {
            row.push_bind(i64::from(n.level))
                .push_bind(n.index as i64)
                .push_bind(n.hash.to_vec());
        });
        qb.push(" ON CONFLICT (level, idx) DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Indexes which entries name which pseudonym (`audit_subjects`); a row already there is
/// skipped, so indexing an entry twice (the start-up backfill meeting a fresh append) is harmless.
pub(super) async fn insert_subject_rows<DB>(
    conn: &mut DB::Connection,
    rows: &[(Hash, u64)],
) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO audit_subjects (subject, seq) ");
        qb.push_values(chunk, |mut row, (subject, seq)| {
            row.push_bind(subject.to_vec()).push_bind(*seq as i64);
        });
        qb.push(" ON CONFLICT (subject, seq) DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores new salts; one already stored with another value (made by another process at the
/// same moment) fails the transaction, since entries were sealed with the salt given.
pub(super) async fn store_subject_keys<DB>(
    conn: &mut DB::Connection,
    keys: &[NewSubjectKey],
    now: Timestamp,
) -> StoreResult<()>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut stored = 0;
    for chunk in keys.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<DB> =
            QueryBuilder::new("INSERT INTO subject_keys (project_id, lookup, salt, created_at) ");
        qb.push_values(chunk, |mut row, k| {
            row.push_bind(k.project.clone())
                .push_bind(k.lookup.to_vec())
                .push_bind(k.salt.to_vec())
                .push_bind(now.millis());
        });
        qb.push(" ON CONFLICT (project_id, lookup) DO NOTHING");
        stored += DB::rows_affected(&qb.build().execute(&mut *conn).await?);
    }
    if stored < keys.len() as u64 {
        for k in keys {
            let salt: Vec<u8> =
                sqlx::query("SELECT salt FROM subject_keys WHERE project_id = $1 AND lookup = $2")
                    .bind(k.project.clone())
                    .bind(k.lookup.to_vec())
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
            if salt != k.salt {
                return Err(StoreError::Conflict(
                    "a person's salt was made by another process at the same time".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A group's entries sealed onto a head, with the rows they add besides themselves.
struct SealedGroup {
    sealed: Vec<Sealed>,
    /// The perfect subtrees the entries complete.
    nodes: Vec<Node>,
    /// Which entry names which pseudonym.
    named: Vec<(Hash, u64)>,
}

/// Seals `drafts` onto `head` in order, numbering each project's entries from
/// `next_project_seq` (which holds every project the drafts name).
fn seal_group(
    head: &mut Head,
    drafts: impl IntoIterator<Item = Draft>,
    salts: &[[u8; 16]],
    now: Timestamp,
    next_project_seq: &mut HashMap<String, u64>,
) -> SealedGroup {
    let sealed: Vec<Sealed> = drafts
        .into_iter()
        .zip(salts)
        .map(|(draft, salt)| {
            let project_seq = match &draft.project {
                Some(p) => {
                    let n = next_project_seq
                        .get_mut(p)
                        .expect("looked up by the caller");
                    *n += 1;
                    *n - 1
                }
                None => 0,
            };
            seal(head, draft, *salt, now.millis(), project_seq)
        })
        .collect();
    let nodes = sealed
        .iter()
        .flat_map(|s| s.nodes.iter().copied())
        .collect();
    let named = sealed
        .iter()
        .flat_map(|s| s.entry.subjects.iter().map(|h| (*h, s.entry.seq)))
        .collect();
    SealedGroup {
        sealed,
        nodes,
        named,
    }
}

/// A sealed audit group, ready to be written by [`Backend::write_group`].
pub struct GroupWrite<'a> {
    /// The head the group was sealed on: the write fails if it is not the stored one.
    pub base: &'a Head,
    /// The head after the group.
    pub head: &'a Head,
    /// The entries.
    pub sealed: &'a [Sealed],
    /// The perfect subtrees they complete.
    pub nodes: &'a [Node],
    /// Which entry names which pseudonym.
    pub named: &'a [(Hash, u64)],
    /// Salts first used by the entries.
    pub keys: &'a [NewSubjectKey],
    /// The previous commit's signed checkpoint, if not stored yet.
    pub checkpoint: Option<&'a (u64, String)>,
    /// When.
    pub now: Timestamp,
}

impl<DB: Database> SqlStore<DB> {
    /// Seals and writes a group on the head this process last wrote, in one statement, for
    /// a backend that can: `None` when it cannot, when the head is not known (the first
    /// commit), when a project's next `project_seq` is not, or when another writer moved the
    /// head (nothing was written then; the caller reads the head under its lock instead).
    async fn append_at_once(
        &self,
        drafts: &[Draft],
        salts: &[[u8; 16]],
        now: Timestamp,
        checkpoint: Option<&(u64, String)>,
        subject_keys: &[NewSubjectKey],
    ) -> StoreResult<Option<Appended>>
    where
        DB: Backend,
    {
        if !DB::WRITES_GROUP_AT_ONCE {
            return Ok(None);
        }
        let Some(base) = self.last_head.lock().expect("not poisoned").clone() else {
            return Ok(None);
        };
        let mut next_project_seq: HashMap<String, u64> = Default::default();
        {
            let known = self.project_seqs.lock().expect("not poisoned");
            if known.0 != base.size() {
                return Ok(None);
            }
            for project in drafts.iter().filter_map(|d| d.project.as_ref()) {
                match known.1.get(project) {
                    Some(n) => next_project_seq.insert(project.clone(), *n),
                    None => return Ok(None),
                };
            }
        }
        let mut head = base.clone();
        let SealedGroup {
            sealed,
            nodes,
            named,
        } = seal_group(
            &mut head,
            drafts.iter().cloned(),
            salts,
            now,
            &mut next_project_seq,
        );
        let group = GroupWrite {
            base: &base,
            head: &head,
            sealed: &sealed,
            nodes: &nodes,
            named: &named,
            keys: subject_keys,
            checkpoint,
            now,
        };
        let written = DB::write_group(&self.audit, &group).await;
        if !matches!(written, Ok(true)) {
            *self.last_head.lock().expect("not poisoned") = None;
            return written.map(|_| None);
        }
        self.remember_tail(&base, &head, next_project_seq);
        Ok(Some(Appended {
            seqs: sealed.iter().map(|s| s.entry.seq).collect(),
            head,
            base,
        }))
    }

    /// Keeps the head just written, and each project's next `project_seq` with it.
    fn remember_tail(&self, base: &Head, head: &Head, next_project_seq: HashMap<String, u64>) {
        let mut known = self.project_seqs.lock().expect("not poisoned");
        if known.0 != base.size() {
            known.1.clear();
        }
        known.0 = head.size();
        known.1.extend(next_project_seq);
        *self.last_head.lock().expect("not poisoned") = Some(head.clone());
    }
}

pub(super) fn hash_of(bytes: Vec<u8>) -> StoreResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a stored hash is not 32 bytes").into())
}

portable_impl!(AuditStore {
    fn events_ride_with_entries(&self) -> bool {
        self.gate.is_some()
    }

    async fn append_audit_with_events(
        &self,
        drafts: Vec<Draft>,
        salts: Vec<[u8; 16]>,
        now: Timestamp,
        checkpoint: Option<&(u64, String)>,
        subject_keys: &[NewSubjectKey],
        riders: Vec<Option<EventRider>>,
    ) -> StoreResult<(Appended, RiderOutcomes)> {
        let riding: Vec<(usize, &super::batches::ReadyBatch)> = riders
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, &r.as_ref()?.0)))
            .collect();
        if riding.is_empty()
            && let Some(appended) = self
                .append_at_once(&drafts, &salts, now, checkpoint, subject_keys)
                .await?
        {
            return Ok((appended, riders.iter().map(|_| None).collect()));
        }
        let mut tx = self.begin_audit_write().await?;
        store_subject_keys(&mut *tx, subject_keys, now).await?;
        if let Some((size, note)) = checkpoint {
            sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING")
                .bind(*size as i64)
                .bind(note.clone())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
        }
        // Writing the head row first takes its lock (a row lock in PostgreSQL, the write lock
        // in SQLite) before anything is read, so appenders serialize on it.
        let row = sqlx::query("UPDATE audit_head SET size = size WHERE id = 1 RETURNING size, last_link, peaks, last_time")
            .fetch_one(&mut *tx)
            .await?;
        let mut head = head_from_row::<DB>(&row)?;
        let base = head.clone();
        let mut next_project_seq: HashMap<String, u64> = Default::default();
        {
            let known = self.project_seqs.lock().expect("not poisoned");
            if known.0 == base.size() {
                for project in drafts.iter().filter_map(|d| d.project.as_ref()) {
                    if let Some(n) = known.1.get(project) {
                        next_project_seq.insert(project.clone(), *n);
                    }
                }
            }
        }
        for project in drafts.iter().filter_map(|d| d.project.clone()) {
            if next_project_seq.contains_key(&project) {
                continue;
            }
            let max: Option<i64> =
                sqlx::query("SELECT MAX(project_seq) FROM audit_entries WHERE project_id = $1")
                    .bind(project.clone())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
            next_project_seq.insert(project, max.map_or(0, |m| m as u64 + 1));
        }
        let SealedGroup {
            sealed,
            nodes,
            named,
        } = seal_group(&mut head, drafts, &salts, now, &mut next_project_seq);
        for chunk in sealed.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO audit_entries (seq, project_id, project_seq, time_ms, action, leaf_hash, link, bytes) ",
            );
            qb.push_values(chunk, |mut row, s| {
                row.push_bind(s.entry.seq as i64)
                    .push_bind(s.entry.project.clone())
                    .push_bind(s.entry.project_seq as i64)
                    .push_bind(s.entry.time_ms)
                    .push_bind(s.entry.action.as_str().to_owned())
                    .push_bind(s.leaf.to_vec())
                    .push_bind(s.link.to_vec())
                    .push_bind(s.bytes.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        insert_nodes(&mut *tx, &nodes).await?;
        insert_subject_rows(&mut *tx, &named).await?;
        // After the entries, in their transaction: no event is stored without its entry.
        let mut outcomes: RiderOutcomes = riders.iter().map(|_| None).collect();
        if !riding.is_empty() {
            let batches: Vec<_> = riding.iter().map(|(_, b)| *b).collect();
            let written = super::batches::Batches::<DB>::write_all(
                &mut tx,
                &batches,
                self.events_per_bucket,
            )
            .await?;
            for ((i, _), outcome) in riding.iter().zip(written) {
                outcomes[*i] = Some(outcome);
            }
        }
        sqlx::query("UPDATE audit_head SET size = $1, last_link = $2, peaks = $3, last_time = $4 WHERE id = 1")
            .bind(head.size() as i64)
            .bind(head.last_link.to_vec())
            .bind(head.range.peaks().concat())
            .bind(head.last_time)
            .execute(&mut *tx)
            .await?;
        self.check_file()?;
        tx.commit().await?;
        self.remember_tail(&base, &head, next_project_seq);
        let appended = Appended {
            seqs: sealed.iter().map(|s| s.entry.seq).collect(),
            head,
            base,
        };
        Ok((appended, outcomes))
    }

    async fn audit_head(&self) -> StoreResult<Head> {
        let row =
            sqlx::query("SELECT size, last_link, peaks, last_time FROM audit_head WHERE id = 1")
                .fetch_one(&self.audit)
                .await?;
        head_from_row::<DB>(&row)
    }

    async fn insert_checkpoint(&self, size: u64, note: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING")
            .bind(size as i64)
            .bind(note.to_owned())
            .bind(at.millis())
            .execute(&self.audit)
            .await?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> StoreResult<Option<(u64, String)>> {
        let row =
            sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .transpose()
    }

    async fn checkpoint_at_most(&self, size: u64) -> StoreResult<Option<(u64, String)>> {
        let row = sqlx::query(
            "SELECT size, note FROM audit_checkpoints WHERE size <= $1 ORDER BY size DESC LIMIT 1",
        )
        .bind(size.min(i64::MAX as u64) as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .transpose()
    }

    async fn checkpoints(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, String)>> {
        let rows = sqlx::query("SELECT size, note FROM audit_checkpoints WHERE size >= $1 AND size <= $2 ORDER BY size")
            .bind(from as i64)
            .bind(to.min(i64::MAX as u64) as i64)
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .collect()
    }

    async fn audit_entries(&self, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>> {
        let rows = sqlx::query(
            "SELECT seq, bytes FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
        )
        .bind(from as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(stored_entry::<DB>).collect()
    }

    async fn project_audit_entries(
        &self,
        project: &ProjectId,
        from: u64,
        to: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, StoredEntry)>> {
        // Paged by the project's own numbering, which its index orders.
        let rows = sqlx::query(
            "SELECT project_seq, seq, bytes FROM audit_entries \
             WHERE project_id = $1 AND project_seq >= $2 AND seq < $3 ORDER BY project_seq LIMIT $4",
        )
        .bind(project.as_str().to_owned())
        .bind(from.min(i64::MAX as u64) as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)? as u64,
                    StoredEntry {
                        seq: r.try_get::<i64, _>(1)? as u64,
                        bytes: r.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    // Read once, at start-up, to fill in a tree kept before interior hashes were: a large
    // log may take longer than a read's time limit, and nothing else waits on it.
    async fn audit_leaves(&self, size: u64) -> StoreResult<Vec<Hash>> {
        let rows = sqlx::query("SELECT leaf_hash FROM audit_entries WHERE seq < $1 ORDER BY seq")
            .bind(size.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| hash_of(r.try_get(0)?)).collect()
    }

    async fn audit_nodes(&self, ids: &[(u32, u64)]) -> StoreResult<HashMap<(u32, u64), Hash>> {
        let mut out = HashMap::with_capacity(ids.len());
        let (leaves, inner): (Vec<_>, Vec<_>) = ids.iter().partition(|(level, _)| *level == 0);
        for chunk in leaves.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("SELECT seq, leaf_hash FROM audit_entries WHERE seq IN (");
            let mut list = qb.separated(", ");
            for (_, index) in chunk {
                list.push_bind(*index as i64);
            }
            qb.push(")");
            for r in qb.build().fetch_all(&self.reads).await? {
                out.insert((0, r.try_get::<i64, _>(0)? as u64), hash_of(r.try_get(1)?)?);
            }
        }
        for chunk in inner.chunks(INSERT_CHUNK / 2) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("SELECT level, idx, hash FROM audit_nodes WHERE ");
            for (i, (level, index)) in chunk.iter().enumerate() {
                qb.push(if i == 0 { "(level = " } else { " OR (level = " });
                qb.push_bind(i64::from(*level));
                qb.push(" AND idx = ");
                qb.push_bind(*index as i64);
                qb.push(")");
            }
            for r in qb.build().fetch_all(&self.reads).await? {
                let key = (
                    r.try_get::<i64, _>(0)? as u32,
                    r.try_get::<i64, _>(1)? as u64,
                );
                out.insert(key, hash_of(r.try_get(2)?)?);
            }
        }
        Ok(out)
    }

    async fn audit_node_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_nodes")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    async fn insert_audit_nodes(&self, nodes: &[Node]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_nodes(&mut *tx, nodes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entries_with_action(&self, action: &str) -> StoreResult<Vec<StoredEntry>> {
        let rows =
            sqlx::query("SELECT seq, bytes FROM audit_entries WHERE action = $1 ORDER BY seq")
                .bind(action.to_owned())
                .fetch_all(&self.reads)
                .await?;
        rows.iter().map(stored_entry::<DB>).collect()
    }

    async fn audit_entries_page(
        &self,
        filter: &EntryFilter,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredEntry>> {
        // Conditions on the log's own columns, each bound in the order it is written.
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut sql = String::from("SELECT seq, bytes FROM audit_entries WHERE 1 = 1");
        let mut args: Vec<Arg> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, arg: Arg| {
            args.push(arg);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        let before = before.map(|b| b.min(i64::MAX as u64) as i64);
        if let Some(p) = &filter.project {
            cond(&mut sql, " AND project_id = ?", Arg::Text(p.clone()));
        }
        if let Some(a) = &filter.action {
            cond(&mut sql, " AND action = ?", Arg::Text(a.clone()));
        }
        if let Some(ms) = filter.from_ms {
            cond(&mut sql, " AND time_ms >= ?", Arg::Int(ms));
        }
        if let Some(ms) = filter.to_ms {
            cond(&mut sql, " AND time_ms < ?", Arg::Int(ms));
        }
        if let Some(b) = before {
            cond(&mut sql, " AND seq < ?", Arg::Int(b));
        }
        match (&filter.project, before) {
            // A project's entries come newest first from its (project_id, project_seq) index,
            // which orders them as seq does; a cursor from the same project starts the index
            // range at once (another cursor only costs a longer walk, never an entry).
            (Some(p), Some(b)) => {
                cond(
                    &mut sql,
                    " AND project_seq < COALESCE((SELECT c.project_seq FROM audit_entries c \
                     WHERE c.seq = ?",
                    Arg::Int(b),
                );
                cond(
                    &mut sql,
                    " AND c.project_id = ?), 9223372036854775807)",
                    Arg::Text(p.clone()),
                );
                sql.push_str(" ORDER BY project_seq DESC");
            }
            (Some(_), None) => sql.push_str(" ORDER BY project_seq DESC"),
            (None, _) => sql.push_str(" ORDER BY seq DESC"),
        }
        sql.push_str(&format!(" LIMIT {limit}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            q = match arg {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&self.reads).await?;
        rows.iter().map(stored_entry::<DB>).collect()
    }

    async fn checkpoint_covering(&self, seq: u64) -> StoreResult<Option<(u64, String)>> {
        let row = sqlx::query(
            "SELECT size, note FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT 1",
        )
        .bind(seq.min(i64::MAX as u64) as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
            .transpose()
    }

    async fn add_audit_key(&self, vkey: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("INSERT INTO audit_keys (vkey, created_at) VALUES ($1, $2) ON CONFLICT (vkey) DO NOTHING")
            .bind(vkey.to_owned())
            .bind(at.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn audit_keys(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT vkey FROM audit_keys ORDER BY created_at, vkey")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn forget_subject(
        &self,
        project: &ProjectId,
        lookup: &Hash,
        at: Timestamp,
    ) -> StoreResult<Option<Vec<u8>>> {
        let _stale = self.cache.invalidate_on_return();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "DELETE FROM subject_keys WHERE project_id = $1 AND lookup = $2 RETURNING salt",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO erased_subjects (project_id, lookup, erased_at) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, lookup) DO NOTHING",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn subject_erased_at(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query(
            "SELECT erased_at FROM erased_subjects WHERE project_id = $1 AND lookup = $2",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .fetch_optional(&self.reads)
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .map(Timestamp::from_millis))
    }

    async fn entries_naming(
        &self,
        subject: &Hash,
        seqs: std::ops::Range<u64>,
        newest_first: bool,
        limit: u32,
    ) -> StoreResult<Vec<StoredEntry>> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT e.seq, e.bytes FROM audit_subjects s JOIN audit_entries e ON e.seq = s.seq \
             WHERE s.subject = $1 AND s.seq >= $2 AND s.seq < $3 ORDER BY s.seq {order} LIMIT {limit}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(subject.to_vec())
            .bind(seqs.start.min(i64::MAX as u64) as i64)
            .bind(seqs.end.min(i64::MAX as u64) as i64)
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(stored_entry::<DB>).collect()
    }

    async fn index_subjects_backlog(&self, batch: u64) -> StoreResult<u64> {
        let row = sqlx::query("SELECT next, upto FROM audit_subjects_backfill WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(0) };
        let (next, upto) = (
            row.try_get::<i64, _>(0)? as u64,
            row.try_get::<i64, _>(1)? as u64,
        );
        if next >= upto {
            return Ok(0);
        }
        let end = upto.min(next + batch);
        let mut named = Vec::new();
        for e in self.audit_entries(next, end).await? {
            let view = crate::ledger::entry::EntryView::parse(&e.bytes)
                .map_err(|err| anyhow::anyhow!("stored entry {} is unreadable: {err}", e.seq))?;
            for s in view.subjects.chunks_exact(32) {
                named.push((hash_of(s.to_vec())?, e.seq));
            }
        }
        let mut tx = self.begin_write().await?;
        insert_subject_rows(&mut *tx, &named).await?;
        sqlx::query("UPDATE audit_subjects_backfill SET next = $1 WHERE id = 1")
            .bind(end as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(upto - end)
    }

    async fn subject_salt(&self, project: &str, lookup: &Hash) -> StoreResult<Option<Vec<u8>>> {
        let fetch = async {
            let row =
                sqlx::query("SELECT salt FROM subject_keys WHERE project_id = $1 AND lookup = $2")
                    .bind(project.to_owned())
                    .bind(lookup.to_vec())
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        };
        self.cache
            .through_some(&self.cache.salts, (project.to_owned(), *lookup), fetch)
            .await
    }
});

pub(super) fn head_from_row<DB>(r: &DB::Row) -> StoreResult<Head>
where
    DB: Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let size = r.try_get::<i64, _>(0)? as u64;
    let peaks: Vec<u8> = r.try_get(2)?;
    let peaks = peaks
        .chunks(32)
        .map(|c| hash_of(c.to_vec()))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Head {
        last_link: hash_of(r.try_get(1)?)?,
        range: CompactRange::from_parts(size, peaks).map_err(|e| StoreError::Other(e.into()))?,
        last_time: r.try_get(3)?,
    })
}

/// A `(seq, bytes)` row as an entry.
fn stored_entry<DB>(r: &DB::Row) -> StoreResult<StoredEntry>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    Ok(StoredEntry {
        seq: r.try_get::<i64, _>(0)? as u64,
        bytes: r.try_get(1)?,
    })
}
