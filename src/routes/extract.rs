//! The project named in a route's path, parsed once for every project route.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest};

use crate::domain::ProjectId;
use crate::error::AppError;

/// The `{project}` segment of the path, as a valid project id.
#[derive(Debug, Clone)]
pub struct ProjectPath(pub ProjectId);

impl ProjectPath {
    /// The project in `req`'s path; the one answer every project route gives a malformed id.
    pub fn of(req: &HttpRequest) -> Result<Self, AppError> {
        let raw = req.match_info().get("project").ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "route {} has no {{project}} segment",
                req.path()
            ))
        })?;
        ProjectId::parse(raw)
            .map(Self)
            .map_err(|e| AppError::BadRequest(format!("the project in the path: {e}")))
    }
}

impl FromRequest for ProjectPath {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Self::of(req))
    }
}

/// Wraps every route: where the path has a `{project}`, a malformed id is answered before
/// any credential is looked up or anything is read, the same way on every route.
pub async fn project_in_path(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.match_info().get("project").is_some()
        && let Err(e) = ProjectPath::of(req.request())
    {
        return Ok(req.error_response(e));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
