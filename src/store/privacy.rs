//! Stored data-subject requests, opt-outs, consent, and the project lifecycle (settings, soft
//! delete, purge). People in opt-outs and consent are stored only under keyed lookups.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type,
};

use super::cache::{OPT_OUTS_KEPT, OptOuts};
use super::events::{adjust_counts, count_deltas, in_buckets};
use super::sql::{Backend, SqlStore, portable_impl};
use super::{GroupProfile, StoreError, StoreResult};
use crate::domain::profile::{GroupRef, names, unname};
use crate::domain::subject_request::{ComplianceType, JobState, RequestKind, SubjectRequest};
use crate::domain::{AllowedOrigins, DistinctId, ProjectId, Timestamp};
use crate::ledger::merkle::Hash;

/// What one erasure step changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Affected {
    /// Events deleted or rewritten.
    pub events: u64,
    /// Profiles deleted or rewritten.
    pub profiles: u64,
    /// Group profiles that name the person (see [`crate::domain::profile::names`]), or named them before the step.
    pub groups: u64,
}

impl std::ops::AddAssign for Affected {
    fn add_assign(&mut self, o: Self) {
        self.events += o.events;
        self.profiles += o.profiles;
        self.groups += o.groups;
    }
}

/// One recorded consent or withdrawal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// Given (true) or withdrawn (false).
    pub given: bool,
    /// Where it came from (`api:<actor>`, a banner's name...).
    pub source: String,
    /// When it was recorded.
    pub at: Timestamp,
}

/// A project's changeable settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    /// Days events are kept.
    pub retention_days: i64,
    /// Whether events need consent.
    pub consent_required: bool,
    /// The consent marker property.
    pub consent_property: String,
    /// The browser origins events are accepted from.
    pub allowed_origins: AllowedOrigins,
    /// Whether `ip=1` keeps the client's address in `$ip`.
    pub record_client_ip: bool,
}

/// Subject requests, opt-outs, consent and the project lifecycle.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Stores a new request and the distinct_ids it names.
    async fn create_subject_request(
        &self,
        r: &SubjectRequest,
        ids: &[DistinctId],
    ) -> StoreResult<()>;
    /// One request of a project.
    async fn subject_request(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> StoreResult<Option<SubjectRequest>>;
    /// A project's requests, newest first.
    async fn subject_requests(&self, project: &ProjectId) -> StoreResult<Vec<SubjectRequest>>;
    /// How many requests there are of each kind in each state, every project together.
    async fn subject_request_states(&self) -> StoreResult<Vec<(String, String, i64)>>;
    /// The distinct_ids a request still holds (none once an erasure is done).
    async fn subject_request_ids(&self, id: &str) -> StoreResult<Vec<String>>;
    /// Requests not yet over, oldest first.
    async fn open_subject_requests(&self) -> StoreResult<Vec<SubjectRequest>>;
    /// Moves a request to `to` if it is in one of `from`; false if it was not.
    async fn move_subject_request(
        &self,
        id: &str,
        from: &[JobState],
        to: JobState,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Records a second approval of a pending request that needs one; false otherwise.
    async fn approve_subject_request(&self, id: &str, by: &str, at: Timestamp)
    -> StoreResult<bool>;
    /// Ends a started (or staging) request with its counts.
    async fn finish_subject_request(
        &self,
        id: &str,
        state: JobState,
        affected: Affected,
        error: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Forgets the distinct_ids a request named.
    async fn drop_subject_request_ids(&self, id: &str) -> StoreResult<()>;
    /// How many events and profiles these people have in a project.
    async fn count_subject_data(
        &self,
        project: &ProjectId,
        ids: &[String],
    ) -> StoreResult<Affected>;
    /// The group profiles in a project whose properties name any of these people.
    async fn groups_naming(
        &self,
        project: &ProjectId,
        ids: &[String],
    ) -> StoreResult<Vec<GroupProfile>>;
    /// Deletes one person's events and profile, their id from every request of the project,
    /// and their mentions in group profiles.
    async fn erase_subject(&self, project: &ProjectId, distinct_id: &str) -> StoreResult<Affected>;
    /// Deletes one property from one person's events and profile.
    async fn erase_subject_property(
        &self,
        project: &ProjectId,
        distinct_id: &str,
        property: &str,
    ) -> StoreResult<Affected>;
    /// Moves one person's events to `new_id` without the `drop` properties, deletes their
    /// profile, removes their id from every request of the project and their mentions in
    /// group profiles.
    async fn anonymize_subject(
        &self,
        project: &ProjectId,
        distinct_id: &str,
        new_id: &str,
        drop: &[String],
    ) -> StoreResult<Affected>;
    /// Makes sure erased rows leave no copy behind in the database's files.
    async fn after_erasure(&self) -> StoreResult<()>;

    /// Records an opt-out; false if the person had already opted out.
    async fn set_opt_out(
        &self,
        project: &ProjectId,
        lookup: &Hash,
        source: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Removes an opt-out; false if there was none.
    async fn clear_opt_out(&self, project: &ProjectId, lookup: &Hash) -> StoreResult<bool>;
    /// The opt-out of one person: its source and time.
    async fn opt_out(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Option<(String, Timestamp)>>;
    /// Which of `lookups` have opted out.
    async fn opted_out(&self, project: &ProjectId, lookups: &[Hash]) -> StoreResult<Vec<Hash>>;
    /// Appends consent given or withdrawn to a person's history.
    async fn record_consent(
        &self,
        project: &ProjectId,
        lookup: &Hash,
        record: &ConsentRecord,
    ) -> StoreResult<()>;
    /// A person's consent history, oldest first.
    async fn consent_history(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Vec<ConsentRecord>>;
    /// Each of `lookups` with a recorded consent, and whether it is currently given.
    async fn consent_states(
        &self,
        project: &ProjectId,
        lookups: &[Hash],
    ) -> StoreResult<Vec<(Hash, bool)>>;

    /// Changes a project's settings; false if there is no such project.
    async fn update_project_settings(
        &self,
        id: &ProjectId,
        settings: &ProjectSettings,
    ) -> StoreResult<bool>;
    /// Soft-deletes (Some) or restores (None) a project that was not purged; false if nothing
    /// changed.
    async fn set_project_deleted(&self, id: &ProjectId, at: Option<Timestamp>)
    -> StoreResult<bool>;
    /// Hard-deletes what remains of a soft-deleted project once its events are gone: profiles,
    /// opt-outs, consent, pseudonym salts, requests' ids; revokes its tokens and marks it purged.
    async fn purge_project(&self, id: &ProjectId, at: Timestamp) -> StoreResult<()>;
}

const REQUEST_COLUMNS: &str = "id, project_id, kind, compliance_type, state, requested_by, reason, \
     subject_count, property, drop_properties, needs_approval, approved_by, approved_at, created_at, \
     updated_at, completed_at, events_affected, profiles_affected, error";

/// Rows read or rewritten per statement when one person's events are changed.
const REWRITE_CHUNK: i64 = 500;
/// Binds per IN list.
const IN_CHUNK: usize = 500;

fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Other(anyhow::anyhow!("stored {what} {value:?} is not known"))
}

fn request_from_row<DB>(r: &DB::Row) -> StoreResult<SubjectRequest>
where
    DB: sqlx::Database,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let text = |c: &str| -> StoreResult<String> { Ok(r.try_get(c)?) };
    let time = |c: &str| -> StoreResult<Option<Timestamp>> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(Timestamp::from_millis))
    };
    let count = |c: &str| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(c)?.max(0) as u64) };
    let kind = text("kind")?;
    let compliance = text("compliance_type")?;
    let state = text("state")?;
    let drop: Vec<String> =
        serde_json::from_str(&text("drop_properties")?).map_err(|e| StoreError::Other(e.into()))?;
    Ok(SubjectRequest {
        id: text("id")?,
        project: ProjectId::parse(&text("project_id")?).map_err(|e| StoreError::Other(e.into()))?,
        kind: RequestKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        compliance_type: ComplianceType::parse(&compliance)
            .ok_or_else(|| bad("compliance type", &compliance))?,
        state: JobState::parse(&state).ok_or_else(|| bad("state", &state))?,
        requested_by: text("requested_by")?,
        reason: text("reason")?,
        subject_count: count("subject_count")?,
        property: r.try_get("property")?,
        drop_properties: drop,
        needs_approval: r.try_get::<i64, _>("needs_approval")? != 0,
        approved_by: r.try_get("approved_by")?,
        approved_at: time("approved_at")?,
        created_at: time("created_at")?.unwrap_or(Timestamp::from_millis(0)),
        updated_at: time("updated_at")?.unwrap_or(Timestamp::from_millis(0)),
        completed_at: time("completed_at")?,
        events_affected: count("events_affected")?,
        profiles_affected: count("profiles_affected")?,
        error: r.try_get("error")?,
    })
}

fn json_map(text: &str) -> StoreResult<Map<String, Value>> {
    match serde_json::from_str(text).map_err(|e| StoreError::Other(e.into()))? {
        Value::Object(m) => Ok(m),
        _ => Err(StoreError::Other(anyhow::anyhow!(
            "stored properties are not an object"
        ))),
    }
}

fn to_hash(bytes: Vec<u8>) -> StoreResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Other(anyhow::anyhow!("a stored lookup is not 32 bytes")))
}

portable_impl!(PrivacyStore {
    async fn create_subject_request(
        &self,
        r: &SubjectRequest,
        ids: &[DistinctId],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO subject_requests ({REQUEST_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        )))
        .bind(r.id.clone())
        .bind(r.project.as_str().to_owned())
        .bind(r.kind.as_str().to_owned())
        .bind(r.compliance_type.as_str().to_owned())
        .bind(r.state.as_str().to_owned())
        .bind(r.requested_by.clone())
        .bind(r.reason.clone())
        .bind(r.subject_count as i64)
        .bind(r.property.clone())
        .bind(serde_json::to_string(&r.drop_properties).expect("strings serialize"))
        .bind(i64::from(r.needs_approval))
        .bind(r.approved_by.clone())
        .bind(r.approved_at.map(Timestamp::millis))
        .bind(r.created_at.millis())
        .bind(r.updated_at.millis())
        .bind(r.completed_at.map(Timestamp::millis))
        .bind(r.events_affected as i64)
        .bind(r.profiles_affected as i64)
        .bind(r.error.clone())
        .execute(&mut *tx)
        .await?;
        for (chunk_no, chunk) in ids.chunks(IN_CHUNK).enumerate() {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO subject_request_ids (request_id, position, project_id, distinct_id) ",
            );
            qb.push_values(chunk.iter().enumerate(), |mut row, (i, d)| {
                row.push_bind(r.id.clone())
                    .push_bind((chunk_no * IN_CHUNK + i) as i64)
                    .push_bind(r.project.as_str().to_owned())
                    .push_bind(d.as_str().to_owned());
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn subject_request(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> StoreResult<Option<SubjectRequest>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM subject_requests WHERE project_id = $1 AND id = $2"
        )))
        .bind(project.as_str().to_owned())
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(request_from_row::<DB>).transpose()
    }

    async fn subject_request_states(&self) -> StoreResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, state, COUNT(*) AS n FROM subject_requests GROUP BY kind, state",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    async fn subject_requests(&self, project: &ProjectId) -> StoreResult<Vec<SubjectRequest>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM subject_requests WHERE project_id = $1 ORDER BY created_at DESC, id"
        )))
        .bind(project.as_str().to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from_row::<DB>).collect()
    }

    async fn subject_request_ids(&self, id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT distinct_id FROM subject_request_ids WHERE request_id = $1 ORDER BY position",
        )
        .bind(id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("distinct_id")?)).collect()
    }

    async fn open_subject_requests(&self) -> StoreResult<Vec<SubjectRequest>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM subject_requests \
             WHERE state IN ('PENDING', 'STAGING', 'STARTED') ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from_row::<DB>).collect()
    }

    async fn move_subject_request(
        &self,
        id: &str,
        from: &[JobState],
        to: JobState,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let mut qb: QueryBuilder<DB> = QueryBuilder::new("UPDATE subject_requests SET state = ");
        qb.push_bind(to.as_str().to_owned())
            .push(", updated_at = ")
            .push_bind(at.millis());
        if to.is_final() {
            qb.push(", completed_at = ").push_bind(at.millis());
        }
        qb.push(" WHERE id = ").push_bind(id.to_owned());
        qb.push(" AND state IN (");
        let mut list = qb.separated(", ");
        for s in from {
            list.push_bind(s.as_str().to_owned());
        }
        qb.push(")");
        let r = qb.build().execute(&self.pool).await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn approve_subject_request(
        &self,
        id: &str,
        by: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE subject_requests SET approved_by = $1, approved_at = $2, updated_at = $2 \
             WHERE id = $3 AND state = 'PENDING' AND needs_approval = 1 AND approved_by IS NULL",
        )
        .bind(by.to_owned())
        .bind(at.millis())
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn finish_subject_request(
        &self,
        id: &str,
        state: JobState,
        affected: Affected,
        error: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE subject_requests SET state = $1, events_affected = $2, profiles_affected = $3, \
             error = $4, updated_at = $5, completed_at = $5 WHERE id = $6",
        )
        .bind(state.as_str().to_owned())
        .bind(affected.events as i64)
        .bind(affected.profiles as i64)
        .bind(error.map(str::to_owned))
        .bind(at.millis())
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn drop_subject_request_ids(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM subject_request_ids WHERE request_id = $1")
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_subject_data(
        &self,
        project: &ProjectId,
        ids: &[String],
    ) -> StoreResult<Affected> {
        let mut out = Affected::default();
        for chunk in ids.chunks(IN_CHUNK) {
            for (table, slot) in [("events", 0), ("profiles", 1)] {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE project_id = "
                ));
                qb.push_bind(project.as_str().to_owned())
                    .push(" AND distinct_id IN (");
                let mut list = qb.separated(", ");
                for d in chunk {
                    list.push_bind(d.clone());
                }
                qb.push(")");
                let n: i64 = qb.build().fetch_one(&self.pool).await?.try_get("n")?;
                if slot == 0 {
                    out.events += n.max(0) as u64;
                } else {
                    out.profiles += n.max(0) as u64;
                }
            }
        }
        out.groups = self.groups_naming(project, ids).await?.len() as u64;
        Ok(out)
    }

    async fn groups_naming(&self, project: &ProjectId, ids: &[String]) -> StoreResult<Vec<GroupProfile>> {
        let mut found: BTreeMap<(String, String), GroupProfile> = BTreeMap::new();
        for chunk in ids.chunks(MENTION_CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "SELECT group_key, group_id, properties, updated_at FROM group_profiles WHERE project_id = ",
            );
            qb.push_bind(project.as_str().to_owned()).push(" AND (");
            push_mentions(&mut qb, chunk);
            qb.push(")");
            for row in qb.build().fetch_all(&self.reads).await? {
                let properties = json_map(&row.try_get::<String, _>("properties")?)?;
                if !chunk.iter().any(|id| properties.values().any(|v| names(v, id))) {
                    continue;
                }
                let group = GroupRef {
                    key: row.try_get("group_key")?,
                    id: row.try_get("group_id")?,
                };
                found.insert(
                    (group.key.clone(), group.id.clone()),
                    GroupProfile {
                        group,
                        properties,
                        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
                    },
                );
            }
        }
        Ok(found.into_values().collect())
    }

    async fn erase_subject(&self, project: &ProjectId, distinct_id: &str) -> StoreResult<Affected> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM events WHERE project_id = $1 AND {} AND distinct_id = $2 \
             RETURNING event, time_ms",
            in_buckets::<DB>()
        )))
        .bind(project.as_str().to_owned())
        .bind(distinct_id.to_owned())
        .fetch_all(&mut *tx)
        .await?;
        adjust_counts(&mut *tx, project, count_deltas(&gone, -1)?).await?;
        let profiles = forget_person(&mut *tx, project, distinct_id).await?;
        let groups = unname_in_groups(&mut *tx, project, distinct_id).await?;
        tx.commit().await?;
        Ok(Affected {
            events: gone.len() as u64,
            profiles,
            groups,
        })
    }

    async fn erase_subject_property(
        &self,
        project: &ProjectId,
        distinct_id: &str,
        property: &str,
    ) -> StoreResult<Affected> {
        let names = [property.to_owned()];
        let mut tx = self.begin_write().await?;
        let events = rewrite_events(&mut *tx, project, distinct_id, None, &names).await?;
        let profiles = strip_profile(&mut *tx, project, distinct_id, &names).await?;
        tx.commit().await?;
        Ok(Affected {
            events,
            profiles,
            groups: 0,
        })
    }

    async fn anonymize_subject(
        &self,
        project: &ProjectId,
        distinct_id: &str,
        new_id: &str,
        drop: &[String],
    ) -> StoreResult<Affected> {
        let mut tx = self.begin_write().await?;
        let events = rewrite_events(&mut *tx, project, distinct_id, Some(new_id), drop).await?;
        let profiles = forget_person(&mut *tx, project, distinct_id).await?;
        let groups = unname_in_groups(&mut *tx, project, distinct_id).await?;
        tx.commit().await?;
        Ok(Affected {
            events,
            profiles,
            groups,
        })
    }

    async fn after_erasure(&self) -> StoreResult<()> {
        self.checkpoint_wal(None).await.map(|_| ())
    }

    async fn set_opt_out(
        &self,
        project: &ProjectId,
        lookup: &Hash,
        source: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query(
            "INSERT INTO opt_outs (project_id, lookup, source, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, lookup) DO NOTHING",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .bind(source.to_owned())
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn clear_opt_out(&self, project: &ProjectId, lookup: &Hash) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query("DELETE FROM opt_outs WHERE project_id = $1 AND lookup = $2")
            .bind(project.as_str().to_owned())
            .bind(lookup.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn opt_out(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Option<(String, Timestamp)>> {
        let row = sqlx::query(
            "SELECT source, created_at FROM opt_outs WHERE project_id = $1 AND lookup = $2",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("source")?,
                Timestamp::from_millis(r.try_get("created_at")?),
            ))
        })
        .transpose()
    }

    async fn opted_out(&self, project: &ProjectId, lookups: &[Hash]) -> StoreResult<Vec<Hash>> {
        // Every batch asks, and most projects have few opt-outs: all of a project's, kept like
        // the other per-request reads, spare each batch a round trip to the database.
        if self.cache.keeps() {
            let fetch = async {
                let rows = sqlx::query(
                    "SELECT lookup FROM opt_outs WHERE project_id = $1 LIMIT $2",
                )
                .bind(project.as_str().to_owned())
                .bind(OPT_OUTS_KEPT as i64 + 1)
                .fetch_all(&self.pool)
                .await?;
                if rows.len() > OPT_OUTS_KEPT {
                    return Ok(OptOuts::TooMany);
                }
                let all = rows
                    .iter()
                    .map(|r| to_hash(r.try_get("lookup")?))
                    .collect::<StoreResult<_>>()?;
                Ok(OptOuts::All(std::sync::Arc::new(all)))
            };
            let kept = self
                .cache
                .through(&self.cache.opt_outs, project.as_str().to_owned(), fetch)
                .await?;
            if let OptOuts::All(all) = kept {
                return Ok(lookups.iter().filter(|l| all.contains(*l)).copied().collect());
            }
        }
        let mut out = Vec::new();
        for chunk in lookups.chunks(IN_CHUNK) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("SELECT lookup FROM opt_outs WHERE project_id = ");
            qb.push_bind(project.as_str().to_owned())
                .push(" AND lookup IN (");
            let mut list = qb.separated(", ");
            for l in chunk {
                list.push_bind(l.to_vec());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&self.pool).await? {
                out.push(to_hash(row.try_get("lookup")?)?);
            }
        }
        Ok(out)
    }

    async fn record_consent(
        &self,
        project: &ProjectId,
        lookup: &Hash,
        record: &ConsentRecord,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consents (project_id, lookup, given, source, recorded_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .bind(i64::from(record.given))
        .bind(record.source.clone())
        .bind(record.at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consent_history(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> StoreResult<Vec<ConsentRecord>> {
        let rows = sqlx::query(
            "SELECT given, source, recorded_at FROM consents WHERE project_id = $1 AND lookup = $2 ORDER BY id",
        )
        .bind(project.as_str().to_owned())
        .bind(lookup.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentRecord {
                    given: r.try_get::<i64, _>("given")? != 0,
                    source: r.try_get("source")?,
                    at: Timestamp::from_millis(r.try_get("recorded_at")?),
                })
            })
            .collect()
    }

    async fn consent_states(
        &self,
        project: &ProjectId,
        lookups: &[Hash],
    ) -> StoreResult<Vec<(Hash, bool)>> {
        let mut latest: std::collections::HashMap<Hash, bool> = Default::default();
        for chunk in lookups.chunks(IN_CHUNK) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("SELECT lookup, given FROM consents WHERE project_id = ");
            qb.push_bind(project.as_str().to_owned())
                .push(" AND lookup IN (");
            let mut list = qb.separated(", ");
            for l in chunk {
                list.push_bind(l.to_vec());
            }
            qb.push(") ORDER BY id");
            for row in qb.build().fetch_all(&self.pool).await? {
                let given = row.try_get::<i64, _>("given")? != 0;
                latest.insert(to_hash(row.try_get("lookup")?)?, given);
            }
        }
        Ok(latest.into_iter().collect())
    }

    async fn update_project_settings(
        &self,
        id: &ProjectId,
        s: &ProjectSettings,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let r = sqlx::query(
            "UPDATE projects SET retention_days = $1, consent_required = $2, consent_property = $3, \
             allowed_origins = $5, record_client_ip = $6 WHERE id = $4 AND purged_at IS NULL",
        )
        .bind(s.retention_days)
        .bind(i64::from(s.consent_required))
        .bind(s.consent_property.clone())
        .bind(id.as_str().to_owned())
        .bind(s.allowed_origins.to_stored())
        .bind(i64::from(s.record_client_ip))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn set_project_deleted(
        &self,
        id: &ProjectId,
        at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let _stale = self.cache.invalidate_on_return();
        let sql = if at.is_some() {
            "UPDATE projects SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL"
        } else {
            "UPDATE projects SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NOT NULL AND purged_at IS NULL"
        };
        let r = sqlx::query(sql)
            .bind(at.map(Timestamp::millis))
            .bind(id.as_str().to_owned())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn purge_project(&self, id: &ProjectId, at: Timestamp) -> StoreResult<()> {
        let _stale = self.cache.invalidate_on_return();
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM events WHERE project_id = $1",
            "DELETE FROM event_buckets WHERE project_id = $1",
            "DELETE FROM event_counts WHERE project_id = $1",
            "DELETE FROM profiles WHERE project_id = $1",
            "DELETE FROM group_profiles WHERE project_id = $1",
            "DELETE FROM identity_links WHERE project_id = $1",
            "DELETE FROM opt_outs WHERE project_id = $1",
            "DELETE FROM consents WHERE project_id = $1",
            "DELETE FROM subject_request_ids WHERE project_id = $1",
            "DELETE FROM subject_keys WHERE project_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND service_account_id IN \
             (SELECT id FROM service_accounts WHERE project_id = $2)",
        )
        .bind(at.millis())
        .bind(id.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE projects SET purged_at = $1 WHERE id = $2")
            .bind(at.millis())
            .bind(id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
});

/// People per query when looking for mentions in group profiles.
const MENTION_CHUNK: usize = 50;

/// `properties LIKE ... OR ...` over the ids' JSON text: finds every group profile that may
/// name one of them (and some that do not: the caller checks each with [`names`]), without
/// parsing every profile of the project in the service.
fn push_mentions<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, ids: &[String])
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        // As the id appears inside the stored JSON text, then with LIKE's own wildcards
        // escaped.
        let json = Value::String(id.clone()).to_string();
        let inner = &json[1..json.len() - 1];
        let pattern = inner
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push("properties LIKE ")
            .push_bind(format!("%{pattern}%"))
            .push(" ESCAPE '\\'");
    }
}

/// Takes one person's mentions out of the project's group profiles on `conn` (in a
/// transaction); returns how many group profiles changed.
async fn unname_in_groups<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    distinct_id: &str,
) -> StoreResult<u64>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let mut qb: QueryBuilder<DB> = QueryBuilder::new(
        "SELECT group_key, group_id, properties FROM group_profiles WHERE project_id = ",
    );
    qb.push_bind(project.as_str().to_owned()).push(" AND (");
    push_mentions(&mut qb, &[distinct_id.to_owned()]);
    qb.push(")");
    let rows = qb.build().fetch_all(&mut *conn).await?;
    let mut changed = 0;
    for row in rows {
        let mut props = json_map(&row.try_get::<String, _>("properties")?)?;
        if !unname(&mut props, distinct_id) {
            continue;
        }
        sqlx::query(
            "UPDATE group_profiles SET properties = $1 WHERE project_id = $2 AND group_key = $3 AND group_id = $4",
        )
        .bind(Value::Object(props).to_string())
        .bind(project.as_str().to_owned())
        .bind(row.try_get::<String, _>("group_key")?)
        .bind(row.try_get::<String, _>("group_id")?)
        .execute(&mut *conn)
        .await?;
        changed += 1;
    }
    Ok(changed)
}

/// Rewrites one person's events chunk by chunk on `conn` (in a transaction): drops `drop` properties and, if
/// `new_id` is given, moves them to it. Returns how many events changed.
async fn rewrite_events<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    distinct_id: &str,
    new_id: Option<&str>,
    drop: &[String],
) -> StoreResult<u64>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let mut changed = 0;
    let mut after = i64::MIN;
    loop {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, properties FROM events WHERE project_id = $1 AND {} \
             AND distinct_id = $2 AND id > $3 ORDER BY id LIMIT $4",
            in_buckets::<DB>()
        )))
        .bind(project.as_str().to_owned())
        .bind(distinct_id.to_owned())
        .bind(after)
        .bind(REWRITE_CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id")?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let mut props = json_map(&row.try_get::<String, _>("properties")?)?;
            let before = props.len();
            props.retain(|k, _| !drop.contains(k));
            if props.len() == before && new_id.is_none() {
                continue;
            }
            sqlx::query(
                "UPDATE events SET properties = $1, distinct_id = $2 WHERE id = $3 AND project_id = $4",
            )
            .bind(Value::Object(props).to_string())
            .bind(new_id.unwrap_or(distinct_id).to_owned())
            .bind(id)
            .bind(project.as_str().to_owned())
            .execute(&mut *conn)
            .await?;
            changed += 1;
        }
        if (rows.len() as i64) < REWRITE_CHUNK {
            break;
        }
    }
    Ok(changed)
}

/// Deletes what is kept about one person besides their events, inside `tx`: their profile,
/// the requests' record of their id, and which ids were theirs (that is about them too), on
/// `conn` (in a transaction);
/// returns how many profiles went.
async fn forget_person<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    distinct_id: &str,
) -> StoreResult<u64>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    let mut profiles = 0;
    for sql in [
        "DELETE FROM profiles WHERE project_id = $1 AND distinct_id = $2",
        "DELETE FROM subject_request_ids WHERE project_id = $1 AND distinct_id = $2",
        "DELETE FROM identity_links WHERE project_id = $1 AND (alias = $2 OR canonical = $2)",
    ] {
        let r = sqlx::query(sql)
            .bind(project.as_str().to_owned())
            .bind(distinct_id.to_owned())
            .execute(&mut *conn)
            .await?;
        if sql.starts_with("DELETE FROM profiles ") {
            profiles = DB::rows_affected(&r);
        }
    }
    Ok(profiles)
}

/// Drops properties from one person's profile on `conn` (in a transaction); 1 if it changed, else 0.
async fn strip_profile<DB>(
    conn: &mut DB::Connection,
    project: &ProjectId,
    distinct_id: &str,
    drop: &[String],
) -> StoreResult<u64>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
{
    let row =
        sqlx::query("SELECT properties FROM profiles WHERE project_id = $1 AND distinct_id = $2")
            .bind(project.as_str().to_owned())
            .bind(distinct_id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(0) };
    let mut props = json_map(&row.try_get::<String, _>("properties")?)?;
    let before = props.len();
    props.retain(|k, _| !drop.contains(k));
    if props.len() == before {
        return Ok(0);
    }
    sqlx::query("UPDATE profiles SET properties = $1 WHERE project_id = $2 AND distinct_id = $3")
        .bind(Value::Object(props).to_string())
        .bind(project.as_str().to_owned())
        .bind(distinct_id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(1)
}
