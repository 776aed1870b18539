//! CORS for the routes browsers' SDKs call (`/track`, `/engage`, `/groups`, `/decide`,
//! `/flags`) and nowhere else: each project lists the web origins it accepts events from
//! (`allowed_origins`), and a response names the page's origin only when the project the
//! records belong to lists it.
//!
//! mixpanel-browser sends its requests with `withCredentials`, so a readable answer must name
//! the origin (never `*`) and allow credentials. That grants nothing here: these routes
//! authenticate by the project token in each record and never read or set a cookie.

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::domain::Origin;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::Project;

/// Request headers a page's SDK may send: the form's type, a compressed body, the flags
/// request's token and trace context.
const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "authorization",
    "traceparent",
    "x-requested-with",
];

/// How long a browser may reuse a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The page a browser request comes from: absent for server SDKs and image pixels, or
/// unreadable (`null`, sandboxed frames, files), which no project accepts.
pub fn page_origin(req: &HttpRequest) -> Option<Result<Origin, String>> {
    let raw = req.headers().get(header::ORIGIN)?;
    let raw = raw.to_str().unwrap_or("(not text)");
    Some(Origin::parse(raw).map_err(|_| raw.chars().take(100).collect()))
}

/// Why `project` refuses a request from `origin`, if it does.
pub fn refusal(project: &Project, origin: &Option<Result<Origin, String>>) -> Option<String> {
    match origin {
        None => None,
        Some(Ok(o)) if project.allowed_origins.allows(o) => None,
        Some(Ok(o)) => Some(format!(
            "the page's origin {o} is not in project {}'s allowed_origins",
            project.id
        )),
        Some(Err(raw)) => Some(format!(
            "the page's origin {raw:?} is not a web origin any project can allow"
        )),
    }
}

/// Marks the request's origin as accepted, so its answer carries the CORS headers.
pub fn accept(req: &HttpRequest, origin: &Option<Result<Origin, String>>) {
    if let Some(Ok(o)) = origin {
        req.extensions_mut().insert(Accepted(o.clone()));
    }
}

/// An origin a project accepted for this request.
#[derive(Debug, Clone)]
struct Accepted(Origin);

/// Adds the CORS headers to an answer (success or problem) whose origin a project accepted.
pub async fn expose(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut res = next.call(req).await?.map_into_boxed_body();
    let mut accepted = res.request().extensions().get::<Accepted>().cloned();
    // Refused before any handler looked at a project (too many requests, a body too large, the
    // log unavailable): the page's SDK must read these to wait or shrink its batch rather than
    // drop it. They hold nothing but the refusal, so any page may read them, and checking the
    // origin against the projects here would cost a query per refusal, when refusing is meant
    // to be cheap.
    let retryable = matches!(res.status().as_u16(), 413 | 429 | 503);
    if accepted.is_none()
        && retryable
        && let Some(Ok(origin)) = page_origin(res.request())
    {
        accepted = Some(Accepted(origin));
    }
    let headers = res.headers_mut();
    // Answers differ by origin: caches must not hand one page's answer to another.
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(Accepted(origin)) = accepted {
        allow(headers, &origin);
    }
    Ok(res)
}

fn allow(headers: &mut header::HeaderMap, origin: &Origin) {
    if let Ok(v) = HeaderValue::from_str(origin.as_str()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// Whether some live project accepts `origin`: the one named by a `token` in the query string
/// (the flags request carries one), else any.
async fn accepted_anywhere(
    state: &AppState,
    req: &HttpRequest,
    origin: &Origin,
) -> Result<bool, AppError> {
    let token = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.0.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v));
    if let Some(token) = token {
        return Ok(state
            .store
            .project_by_ingest_token(&token)
            .await?
            .is_some_and(|p| p.is_live() && p.allowed_origins.allows(origin)));
    }
    Ok(state
        .store
        .list_projects()
        .await?
        .iter()
        .any(|p| p.is_live() && p.allowed_origins.allows(origin)))
}

/// Answers a browser's preflight for one of the SDK routes.
#[utoipa::path(method(options), path = "/track", tag = "ingest",
    responses((status = 204, description = "The origin may send: `Access-Control-Allow-*` name it"), (status = 403, description = "No project accepts this origin")))]
pub async fn preflight(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let origin = match page_origin(&req) {
        Some(Ok(o)) => o,
        Some(Err(raw)) => {
            return Err(AppError::Forbidden(format!(
                "the page's origin {raw:?} is not a web origin any project can allow"
            )));
        }
        None => {
            return Err(AppError::BadRequest(
                "a preflight names its page in the Origin header".into(),
            ));
        }
    };
    let method = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(method, "GET" | "POST") {
        return Err(AppError::BadRequest(format!(
            "these routes take GET and POST, not {method:?}"
        )));
    }
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(other) = asked
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .find(|h| !h.is_empty() && !ALLOWED_HEADERS.contains(&h.as_str()))
    {
        return Err(AppError::BadRequest(format!(
            "the request header {other:?} is not accepted here; send only: {}",
            ALLOWED_HEADERS.join(", ")
        )));
    }
    if !accepted_anywhere(&state, &req, &origin).await? {
        return Err(AppError::Forbidden(format!(
            "no project lists {origin} in its allowed_origins"
        )));
    }
    let mut res = HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            ALLOWED_HEADERS.join(", "),
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
        .finish();
    allow(res.headers_mut(), &origin);
    Ok(res)
}

/// What older SDKs ask before they start (`/decide`): no flags, surveys or notifications, so
/// they stop asking and track as usual.
#[utoipa::path(get, path = "/decide", tag = "ingest",
    responses((status = 200, description = "No feature flags, surveys, notifications or automatic events", body = Object)))]
pub async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    expose_if_accepted(&req, &state).await?;
    Ok(HttpResponse::Ok().json(json!({
        "config": {"enable_collect_everything": false},
        "notifications": [],
        "surveys": [],
        "feature_flags": [],
        "featureFlags": {},
        "automatic_events": false,
        "integrations": [],
    })))
}

/// Feature flags (`/flags`, mixpanel-browser's flags module): none.
#[utoipa::path(get, path = "/flags", tag = "ingest",
    responses((status = 200, description = "`{\"flags\": {}}`: no feature flags", body = Object)))]
pub async fn flags(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    expose_if_accepted(&req, &state).await?;
    Ok(HttpResponse::Ok().json(json!({"flags": {}})))
}

async fn expose_if_accepted(req: &HttpRequest, state: &AppState) -> Result<(), AppError> {
    let origin = page_origin(req);
    if let Some(Ok(o)) = &origin
        && accepted_anywhere(state, req, o).await?
    {
        accept(req, &origin);
    }
    Ok(())
}
