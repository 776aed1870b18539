//! The read API: events, counts and profiles, for service accounts with a bearer token.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::access::{self, Permission, Principal, perm};
use crate::audit::RequestContext;
use crate::domain::{DistinctId, ProjectId, Timestamp};
use crate::error::AppError;
use crate::events::profile::GroupRef;
use crate::events::{self, Cursor, EventPage, EventQuery, MAX_PAGE};
use crate::ledger::entry::Action;
use crate::ledger::merkle::Hash;
use crate::routes::extract::ProjectPath;
use crate::state::AppState;
use crate::store::{CountGroup, PropertyKind};

/// Filters shared by event reads and counts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filters {
    /// Only this end user.
    distinct_id: Option<String>,
    /// Only events with this name.
    event: Option<String>,
    /// From this time, inclusive: RFC 3339 or epoch milliseconds.
    from: Option<String>,
    /// To this time, exclusive: RFC 3339 or epoch milliseconds.
    to: Option<String>,
}

impl Filters {
    fn parse(&self) -> Result<EventQuery, AppError> {
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(Timestamp::parse)
                .transpose()
                .map_err(|e| AppError::BadRequest(format!("{name}: {e}")))
        };
        let q = EventQuery {
            distinct_id: self
                .distinct_id
                .as_deref()
                .map(DistinctId::parse)
                .transpose()
                .map_err(|e| AppError::BadRequest(format!("distinct_id: {e}")))?,
            merged: Vec::new(),
            event: self.event.clone(),
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
        };
        if let (Some(f), Some(t)) = (q.from, q.to)
            && f > t
        {
            return Err(AppError::BadRequest("from is after to".into()));
        }
        Ok(q)
    }
}

/// Paging for event reads.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Events per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// What the log records of a read's filters: never the end user's id, only its pseudonym.
async fn filter_record(
    state: &AppState,
    project: &ProjectId,
    q: &EventQuery,
) -> Result<(Value, Vec<Hash>), AppError> {
    // Everyone whose events the read covered: the asked id and the ids merged into it.
    let people: Vec<DistinctId> = q.distinct_id.iter().chain(&q.merged).cloned().collect();
    let subjects = state.audit.pseudonyms(project, &people).await?;
    let details = json!({
        "event": q.event,
        "from": q.from.map(|t| t.millis()),
        "to": q.to.map(|t| t.millis()),
        "distinct_id": q.distinct_id.is_some().then_some("pseudonymised in subjects"),
        "merged_ids": q.distinct_id.is_some().then_some(q.merged.len()),
    });
    Ok((details, subjects))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/events", tag = "read",
    params(("project" = String, Path, description = "Project id"), Filters, Paging),
    responses((status = 200, body = EventPage), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn events(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    filters: web::Query<Filters>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize::<perm::EventsRead>(&ctx, &principal, &project, Action::EventsQuery)
        .await?;
    let q = events::with_merged_ids(&state.store, &auth, filters.parse()?).await?;
    let limit = paging.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let after = paging.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut page = events::query(&state.store, &auth, &q, after, limit).await?;
    let sensitive = state
        .store
        .sensitive_properties(&project, PropertyKind::Event)
        .await?;
    let reveal = access::holds(&principal, Permission::EventsReadSensitive, &project);
    let (mut returned, mut redacted) = (BTreeSet::new(), BTreeSet::new());
    for e in &mut page.events {
        events::redact(
            &mut e.properties,
            &sensitive,
            reveal,
            &mut returned,
            &mut redacted,
        );
    }
    let (mut details, subjects) = filter_record(&state, &project, &q).await?;
    details["sensitive_returned"] = json!(returned);
    details["sensitive_redacted"] = json!(redacted);
    details["limit"] = json!(limit);
    details["page_after_cursor"] = json!(after.is_some());
    let n = page.events.len() as u64;
    state
        .audit
        .record(&ctx, &auth, Action::EventsQuery, n, details, subjects)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// How to group a count.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Grouping {
    /// `event`, `day` or `event_day`; absent for one total.
    group_by: Option<String>,
}

/// One group's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountRow {
    /// The event name, the day (YYYY-MM-DD), both as `YYYY-MM-DD/<event>`, or `total`.
    key: String,
    /// The day, when grouped by event and day.
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<String>,
    /// The event name, when grouped by event and day.
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    /// How many events.
    count: i64,
}

/// A grouped count.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountResponse {
    /// `event`, `day`, `event_day` or `total`.
    group_by: &'static str,
    /// One row per group.
    counts: Vec<CountRow>,
    /// The sum over all groups.
    total: i64,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/events/count", tag = "read",
    params(("project" = String, Path, description = "Project id"), Filters, Grouping),
    responses((status = 200, body = CountResponse), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn count(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    filters: web::Query<Filters>,
    grouping: web::Query<Grouping>,
) -> Result<HttpResponse, AppError> {
    let auth = state
        .audit
        .authorize::<perm::EventsRead>(&ctx, &principal, &project, Action::EventsCount)
        .await?;
    let (group, name) = match grouping.group_by.as_deref() {
        None => (CountGroup::Total, "total"),
        Some("event") => (CountGroup::Event, "event"),
        Some("day") => (CountGroup::Day, "day"),
        Some("event_day") => (CountGroup::EventDay, "event_day"),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "group_by must be event, day or event_day, not {other:?}"
            )));
        }
    };
    let q = events::with_merged_ids(&state.store, &auth, filters.parse()?).await?;
    let rows = events::count(&state.store, &auth, &q, group).await?;
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    let (mut details, subjects) = filter_record(&state, &project, &q).await?;
    details["group_by"] = json!(name);
    state
        .audit
        .record(
            &ctx,
            &auth,
            Action::EventsCount,
            total.max(0) as u64,
            details,
            subjects,
        )
        .await?;
    let counts = rows
        .into_iter()
        .map(|(key, count)| {
            let (day, event) = match group {
                CountGroup::EventDay => key
                    .split_once('/')
                    .map(|(d, e)| (Some(d.to_owned()), Some(e.to_owned())))
                    .unwrap_or_default(),
                _ => (None, None),
            };
            CountRow {
                key,
                day,
                event,
                count,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(CountResponse {
        group_by: name,
        counts,
        total,
    }))
}

/// Hides a profile's sensitive properties from a reader who may not see them; returns the
/// sensitive names returned and redacted, for the log.
async fn redact_profile(
    state: &AppState,
    principal: &Principal,
    project: &ProjectId,
    properties: &mut Map<String, Value>,
) -> Result<(BTreeSet<String>, BTreeSet<String>), AppError> {
    let sensitive = state
        .store
        .sensitive_properties(project, PropertyKind::Profile)
        .await?;
    let reveal = access::holds(principal, Permission::EventsReadSensitive, project);
    let (mut returned, mut redacted) = (BTreeSet::new(), BTreeSet::new());
    events::redact(properties, &sensitive, reveal, &mut returned, &mut redacted);
    Ok((returned, redacted))
}

/// A person's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// The end user.
    distinct_id: String,
    /// The properties.
    #[schema(value_type = Object)]
    properties: Map<String, Value>,
    /// When it last changed, RFC 3339.
    updated_at: String,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/profiles/{distinct_id}", tag = "read",
    params(("project" = String, Path, description = "Project id"), ("distinct_id" = String, Path, description = "The end user")),
    responses((status = 200, body = ProfileView), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn profile(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (_, distinct_path) = path.into_inner();
    let auth = state
        .audit
        .authorize::<perm::ProfilesRead>(&ctx, &principal, &project, Action::ProfilesRead)
        .await?;
    let distinct_id = DistinctId::parse(&distinct_path).map_err(|e| AppError::BadRequest(e.0))?;
    let Some(mut p) = events::profile(&state.store, &auth, &distinct_id).await? else {
        // Whether someone has a profile is itself something learnt about them: logged too.
        let subject = state.audit.pseudonym(&project, &distinct_id).await?;
        state
            .audit
            .record(
                &ctx,
                &auth,
                Action::ProfilesRead,
                0,
                json!({"found": false}),
                vec![subject],
            )
            .await?;
        return Err(AppError::NotFound("no profile for that distinct_id".into()));
    };
    let (returned, redacted) =
        redact_profile(&state, &principal, &project, &mut p.properties).await?;
    // Asked by an id merged into another person's: both are named.
    let mut people = vec![distinct_id.clone()];
    people.extend(
        DistinctId::parse(&p.distinct_id)
            .ok()
            .filter(|d| *d != distinct_id),
    );
    let subjects = state.audit.pseudonyms(&project, &people).await?;
    let details = json!({
        "found": true,
        "properties": p.properties.len(),
        "sensitive_returned": returned,
        "sensitive_redacted": redacted,
    });
    state
        .audit
        .record(&ctx, &auth, Action::ProfilesRead, 1, details, subjects)
        .await?;
    Ok(HttpResponse::Ok().json(ProfileView {
        distinct_id: p.distinct_id,
        properties: p.properties,
        updated_at: p.updated_at.to_rfc3339(),
    }))
}

/// A group's profile (group analytics).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// The group key, such as `company`.
    group_key: String,
    /// The group's id under that key.
    group_id: String,
    /// The properties.
    #[schema(value_type = Object)]
    properties: Map<String, Value>,
    /// When it last changed, RFC 3339.
    updated_at: String,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/groups/{group_key}/{group_id}", tag = "read",
    params(("project" = String, Path, description = "Project id"), ("group_key" = String, Path, description = "The group key, such as `company`"), ("group_id" = String, Path, description = "The group's id")),
    responses((status = 200, body = GroupView), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn group(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (_, key, id) = path.into_inner();
    let auth = state
        .audit
        .authorize::<perm::ProfilesRead>(&ctx, &principal, &project, Action::ProfilesRead)
        .await?;
    for (name, v) in [("group_key", &key), ("group_id", &id)] {
        if v.is_empty() || v.len() > crate::domain::MAX_NAME_LEN {
            return Err(AppError::BadRequest(format!(
                "{name} must be 1 to {} bytes",
                crate::domain::MAX_NAME_LEN
            )));
        }
    }
    let group = GroupRef { key, id };
    let found = events::group_profile(&state.store, &auth, &group).await?;
    // The group key is logged; the id, which may name a customer, is not.
    let Some(mut g) = found else {
        let details = json!({"group_key": group.key, "found": false});
        state
            .audit
            .record(&ctx, &auth, Action::ProfilesRead, 0, details, vec![])
            .await?;
        return Err(AppError::NotFound("no profile for that group".into()));
    };
    let (returned, redacted) =
        redact_profile(&state, &principal, &project, &mut g.properties).await?;
    let details = json!({
        "group_key": group.key,
        "found": true,
        "properties": g.properties.len(),
        "sensitive_returned": returned,
        "sensitive_redacted": redacted,
    });
    state
        .audit
        .record(&ctx, &auth, Action::ProfilesRead, 1, details, vec![])
        .await?;
    Ok(HttpResponse::Ok().json(GroupView {
        group_key: g.group.key,
        group_id: g.group.id,
        properties: g.properties,
        updated_at: g.updated_at.to_rfc3339(),
    }))
}
