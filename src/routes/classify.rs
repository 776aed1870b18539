//! Marking event and profile properties as sensitive (`properties:classify`). Reading them
//! is a separate permission (`events:read_sensitive`) that no built-in reading role carries.

use actix_web::{HttpResponse, web};

use crate::access::{Principal, perm};
use crate::admin::Administrator;
use crate::admin::properties::{self, Step};
use crate::audit::RequestContext;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::routes::extract::ProjectPath;
use crate::state::AppState;
use crate::store::PropertyKind;

fn parse(kind: &str) -> Result<PropertyKind, AppError> {
    PropertyKind::parse(kind)
        .ok_or_else(|| AppError::NotFound(format!("{kind:?} is not event or profile")))
}

/// The project's sensitive properties.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sensitive-properties", tag = "access",
    params(("project" = String, Path, description = "The project")),
    responses((status = 200, description = "Sensitive event and profile properties", body = SensitiveProperties), (status = 401), (status = 403)))]
pub async fn list(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize::<perm::PropertiesClassify>(
            &ctx,
            &principal,
            &project,
            Action::PropertiesClassify,
        )
        .await?;
    let event = state
        .store
        .sensitive_properties(&project, PropertyKind::Event)
        .await?;
    let profile = state
        .store
        .sensitive_properties(&project, PropertyKind::Profile)
        .await?;
    Ok(HttpResponse::Ok().json(SensitiveProperties { event, profile }))
}

/// A project's sensitive properties: their values are redacted for readers without
/// `events:read_sensitive`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SensitiveProperties {
    /// Event properties.
    event: Vec<String>,
    /// Profile properties.
    profile: Vec<String>,
}

async fn change(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
    sensitive: bool,
) -> Result<HttpResponse, AppError> {
    let (_, kind, name) = path.into_inner();
    let kind = parse(&kind)?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let admin = super::grants::admin(&state);
    let (step, after) = properties::classify(&admin, by, &project, kind, &name, sensitive).await?;
    Ok(match step {
        Step::Ask => HttpResponse::Accepted().json(UnmarkAsked {
            kind: kind.as_str(),
            property: name,
            sensitive: true,
            unmark_requested_by: after["unmark_requested_by"].as_str().map(str::to_owned),
            next: "a second person with properties:classify removes the mark with the same request",
        }),
        _ => HttpResponse::Ok().json(Classified {
            kind: kind.as_str(),
            property: name,
            sensitive: after["sensitive"].as_bool().unwrap_or(sensitive),
        }),
    })
}

/// A property's classification after a change.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Classified {
    /// `event` or `profile`.
    kind: &'static str,
    /// The property.
    property: String,
    /// Whether its values are now redacted for readers without `events:read_sensitive`.
    sensitive: bool,
}

/// Taking a mark off, asked: still sensitive until a second person confirms.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UnmarkAsked {
    /// `event` or `profile`.
    kind: &'static str,
    /// The property.
    property: String,
    /// Still true.
    sensitive: bool,
    /// Who asked.
    unmark_requested_by: Option<String>,
    /// What happens next.
    next: &'static str,
}

/// Marks a property sensitive: its values are redacted for readers without
/// `events:read_sensitive`.
#[utoipa::path(put, path = "/api/v1/projects/{project}/sensitive-properties/{kind}/{name}", tag = "access",
    params(("project" = String, Path, description = "The project"), ("kind" = String, Path, description = "event or profile"), ("name" = String, Path, description = "The property")),
    responses((status = 200, body = Classified, description = "Sensitive"), (status = 401), (status = 403), (status = 404)))]
pub async fn mark(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    change(ctx, principal, ProjectPath(project), path, state, true).await
}

/// Asks to remove a property's sensitive mark (202), or confirms another person's request
/// and removes it (200): unmarking takes two people.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/sensitive-properties/{kind}/{name}", tag = "access",
    params(("project" = String, Path, description = "The project"), ("kind" = String, Path, description = "event or profile"), ("name" = String, Path, description = "The property")),
    responses((status = 200, body = Classified, description = "No longer sensitive"), (status = 202, body = UnmarkAsked, description = "Asked: a second person must confirm"), (status = 401), (status = 403), (status = 404), (status = 409, description = "Asked already by this person")))]
pub async fn unmark(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    change(ctx, principal, ProjectPath(project), path, state, false).await
}
