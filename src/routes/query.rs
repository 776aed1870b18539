//! The read API: events, counts and profiles, for service accounts with a bearer token.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Principal, perm};
use crate::audit::RequestContext;
use crate::domain::{DistinctId, Timestamp};
use crate::error::AppError;
use crate::events::profile::GroupRef;
use crate::events::reads::{self, Reader};
use crate::events::{self, Cursor, EventPage, EventQuery};
use crate::ledger::entry::Action;
use crate::routes::extract::ProjectPath;
use crate::state::AppState;
use crate::store::CountGroup;

/// Filters shared by event reads and counts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filters {
    /// Only this end user.
    pub distinct_id: Option<String>,
    /// Only events with this name.
    pub event: Option<String>,
    /// From this time, inclusive: RFC 3339 or epoch milliseconds.
    pub from: Option<String>,
    /// To this time, exclusive: RFC 3339 or epoch milliseconds.
    pub to: Option<String>,
}

impl Filters {
    /// The same with empty fields as absent: a form sends every field, filled or not.
    pub fn without_empty(self) -> Self {
        let some = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Self {
            distinct_id: some(self.distinct_id),
            event: some(self.event),
            from: some(self.from),
            to: some(self.to),
        }
    }

    /// The query these filters ask for; a 400 naming the first bad one.
    pub fn parse(&self) -> Result<EventQuery, AppError> {
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
    let after = paging.cursor.as_deref().map(Cursor::parse).transpose()?;
    let reader = Reader {
        audit: &state.audit,
        store: &state.store,
        ctx: &ctx,
        principal: &principal,
    };
    let limit = paging.limit.unwrap_or(100);
    let page = reads::events_page(&reader, &project, filters.parse()?, after, limit).await?;
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
    let reader = Reader {
        audit: &state.audit,
        store: &state.store,
        ctx: &ctx,
        principal: &principal,
    };
    let rows = reads::counts(&reader, &project, filters.parse()?, group, name).await?;
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
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
    let reader = Reader {
        audit: &state.audit,
        store: &state.store,
        ctx: &ctx,
        principal: &principal,
    };
    let p = reads::profile(&reader, &project, &distinct_path).await?;
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
        reads::redact_profile(&state.store, &principal, &project, &mut g.properties).await?;
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
