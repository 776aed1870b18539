//! The read API: events, counts and profiles, for service accounts with a bearer token.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Principal, authorize, perm};
use crate::domain::{DistinctId, ProjectId, Timestamp};
use crate::error::AppError;
use crate::events::{self, Cursor, EventPage, EventQuery, MAX_PAGE};
use crate::state::AppState;
use crate::store::CountGroup;

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

fn project(path: &str) -> Result<ProjectId, AppError> {
    ProjectId::parse(path).map_err(|e| AppError::BadRequest(e.0))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/events", tag = "read",
    params(("project" = String, Path, description = "Project id"), Filters, Paging),
    responses((status = 200, body = EventPage), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn events(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    filters: web::Query<Filters>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, AppError> {
    let project = project(&path)?;
    let auth = authorize::<perm::EventsRead>(&principal, &project)?;
    let q = filters.parse()?;
    let limit = paging.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let after = paging.cursor.as_deref().map(Cursor::parse).transpose()?;
    let page = events::query(&state.store, &auth, &q, after, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// How to group a count.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Grouping {
    /// `event` or `day`; absent for one total.
    group_by: Option<String>,
}

/// One group's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountRow {
    /// The event name or the day (YYYY-MM-DD), or `total`.
    key: String,
    /// How many events.
    count: i64,
}

/// A grouped count.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountResponse {
    /// `event`, `day` or `total`.
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
    principal: Principal,
    path: web::Path<String>,
    filters: web::Query<Filters>,
    grouping: web::Query<Grouping>,
) -> Result<HttpResponse, AppError> {
    let project = project(&path)?;
    let auth = authorize::<perm::EventsRead>(&principal, &project)?;
    let (group, name) = match grouping.group_by.as_deref() {
        None => (CountGroup::Total, "total"),
        Some("event") => (CountGroup::Event, "event"),
        Some("day") => (CountGroup::Day, "day"),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "group_by must be event or day, not {other:?}"
            )));
        }
    };
    let rows = events::count(&state.store, &auth, &filters.parse()?, group).await?;
    let total = rows.iter().map(|(_, n)| n).sum();
    let counts = rows
        .into_iter()
        .map(|(key, count)| CountRow { key, count })
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
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (project_path, distinct_path) = path.into_inner();
    let project = project(&project_path)?;
    let auth = authorize::<perm::ProfilesRead>(&principal, &project)?;
    let distinct_id = DistinctId::parse(&distinct_path).map_err(|e| AppError::BadRequest(e.0))?;
    let p = events::profile(&state.store, &auth, &distinct_id).await?;
    Ok(HttpResponse::Ok().json(ProfileView {
        distinct_id: p.distinct_id,
        properties: p.properties,
        updated_at: p.updated_at.to_rfc3339(),
    }))
}
