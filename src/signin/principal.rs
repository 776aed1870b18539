//! How a request becomes a [`Principal`]: its session or its credentials, checked, and the
//! permission its route declares.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::caller;
use crate::access::{Access, Principal, RoleBook, Subject, SubjectKind};
use crate::audit::RequestContext;
use crate::auth::tokens::{self, ApiSecret};
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::ledger::entry::AuthMethod;
use crate::state::AppState;
use crate::store::ProjectStore;

/// The route's declared access, placed in each resource's app data by the route registry.
#[derive(Debug, Clone, Copy)]
pub struct RouteAccess(pub Access);

impl RouteAccess {
    /// The declared access of the route serving `req`.
    pub fn of(req: &HttpRequest) -> Result<Access, AppError> {
        req.app_data::<RouteAccess>().map(|r| r.0).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "route {} has no declared access",
                req.path()
            ))
        })
    }
}

impl FromRequest for RouteAccess {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Self::of(req).map(RouteAccess))
    }
}

/// `subject` on a route declaring `access`.
fn principal(subject: Subject, access: Access) -> Result<Principal, AppError> {
    crate::telemetry::record_principal(&subject.log_name());
    Principal::for_route(subject, access).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "a route without a permission asked for a principal"
        ))
    })
}

/// The principal of a record carrying a project's public ingestion token.
pub fn of_project_token(project: ProjectId, route: RouteAccess) -> Result<Principal, AppError> {
    principal(Subject::ProjectToken { project }, route.0)
}

/// The credentials in an `Authorization` header.
enum Credentials {
    Bearer(ApiSecret),
    Basic { user: String, secret: ApiSecret },
}

/// What an anonymous caller of a protected route is told.
pub const NEEDS_CREDENTIALS: &str =
    "this route needs credentials: sign in at /auth/login, or send Authorization: Bearer <token>";

fn credentials(req: &HttpRequest) -> Result<Credentials, AppError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized(NEEDS_CREDENTIALS.into()))?
        .to_str()
        .map_err(|_| AppError::Unauthorized("the Authorization header is not text".into()))?;
    let (scheme, value) = header
        .split_once(' ')
        .ok_or_else(|| AppError::Unauthorized("the Authorization header has no scheme".into()))?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credentials::Bearer(ApiSecret::from_presented(value.trim())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                AppError::Unauthorized("the Basic credentials are not valid base64 text".into())
            })?;
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        // Mixpanel's legacy form puts the secret in the user name with an empty password.
        return Ok(if password.is_empty() {
            Credentials::Bearer(ApiSecret::from_presented(user))
        } else {
            Credentials::Basic {
                user: user.to_owned(),
                secret: ApiSecret::from_presented(password),
            }
        });
    }
    Err(AppError::Unauthorized(format!(
        "unsupported authorization scheme {scheme:?}"
    )))
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let access = RouteAccess::of(&req)?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no state in app data")))?;
            if !req.headers().contains_key(AUTHORIZATION) {
                return of_session(&req, state, access).await;
            }
            match credentials(&req)? {
                Credentials::Bearer(secret) if secret.is_personal() => {
                    of_personal_token(&req, state, access, &secret).await
                }
                credentials => of_service_token(&req, state, access, credentials).await,
            }
        })
    }
}

/// Logs a refusal of an identified caller and returns it.
async fn refuse(
    state: &AppState,
    req: &HttpRequest,
    actor: crate::ledger::entry::Actor,
    e: AppError,
) -> Result<Principal, AppError> {
    state
        .audit
        .refused(&RequestContext::of(req), actor, &e.to_string())
        .await?;
    Err(e)
}

/// A person by their session cookie: a state change must prove it came from our own pages,
/// 2-step verification must be complete, and some permissions need it recent.
async fn of_session(
    req: &HttpRequest,
    state: &AppState,
    access: Access,
) -> Result<Principal, AppError> {
    let Access::Requires(permission) = access else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "a route without a permission asked for a principal"
        )));
    };
    let Some(caller) = caller::session_of(req).await? else {
        return Err(AppError::Unauthorized(NEEDS_CREDENTIALS.into()));
    };
    if let Err(e) = caller::check_csrf(req, &caller) {
        return refuse(state, req, caller.actor(), e).await;
    }
    if !caller.complete() {
        let enrolled = state
            .store
            .totp(&caller.user.id)
            .await?
            .is_some_and(|t| t.activated_at.is_some());
        let e = caller::second_factor_required(enrolled);
        return refuse(state, req, caller.actor(), e).await;
    }
    let now = state.clock.now();
    if permission.needs_step_up() && !state.auth.rules.stepped_up(&caller.session, now) {
        let e = caller::step_up_required(state.settings.auth.step_up_minutes);
        return refuse(state, req, caller.actor(), e).await;
    }
    let subject = Subject::User {
        id: caller.user.id.clone(),
        method: caller.method(),
        credential: caller.session.public_id.clone(),
        second_factor: caller.second_factor_passed(),
        grants: caller.grants.clone(),
    };
    principal(subject, access)
}

/// A person by one of their personal tokens, for the permissions such tokens may use.
async fn of_personal_token(
    req: &HttpRequest,
    state: &AppState,
    access: Access,
    secret: &ApiSecret,
) -> Result<Principal, AppError> {
    let (user, grants, token) = caller::personal_token_of(req, secret).await?;
    if let Access::Requires(permission) = access
        && !permission.personal_tokens_may()
    {
        let e = AppError::Forbidden(format!(
            "a personal token cannot use {permission}: sign in, and verify again if asked"
        ));
        let actor = caller::user_actor(&user.id, AuthMethod::PersonalToken, false);
        return refuse(state, req, actor, e).await;
    }
    let subject = Subject::User {
        id: user.id,
        method: AuthMethod::PersonalToken,
        credential: token.id,
        second_factor: false,
        grants,
    };
    principal(subject, access)
}

/// A service account (or a project's public token) by its secret, with the grants stored for
/// it; a secret that fails is an authentication failure, logged.
async fn of_service_token(
    req: &HttpRequest,
    state: &AppState,
    access: Access,
    credentials: Credentials,
) -> Result<Principal, AppError> {
    let store: &dyn ProjectStore = state.store.as_ref();
    let (secret, user) = match &credentials {
        Credentials::Bearer(secret) => (secret, None),
        Credentials::Basic { user, secret } => (secret, Some(user.as_str())),
    };
    let touch = Some(state.store.clone());
    let result = tokens::authenticate(store, secret, user, state.clock.now(), touch).await;
    if let (Ok(subject @ Subject::ServiceAccount { .. }), Access::Requires(permission)) =
        (&result, access)
        && !permission.service_tokens_may()
    {
        let e = AppError::Forbidden(format!(
            "a service account cannot use {permission}: administration is for people"
        ));
        return refuse(state, req, crate::audit::actor_of(subject), e).await;
    }
    let subject = match result {
        Ok(Subject::ServiceAccount {
            id,
            name,
            project,
            token_id,
            grants,
        }) => {
            let stored = state
                .store
                .active_grants(SubjectKind::ServiceAccount, std::slice::from_ref(&id))
                .await?;
            let lapse = state.settings.access.lapse_overdue_grants;
            // Custom roles matter only when the account holds stored grants.
            let roles = if stored.is_empty() {
                RoleBook::default()
            } else {
                caller::role_book(state).await?
            };
            let grants = grants.with_stored(&stored, &roles, state.clock.now(), lapse);
            Subject::ServiceAccount {
                id,
                name,
                project,
                token_id,
                grants,
            }
        }
        Ok(subject) => subject,
        Err(AppError::Unauthorized(reason)) => {
            state
                .audit
                .rejected(&RequestContext::of(req), &reason)
                .await?;
            return Err(AppError::Unauthorized(reason));
        }
        Err(e) => return Err(e),
    };
    principal(subject, access)
}
