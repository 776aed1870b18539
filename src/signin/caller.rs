//! Who is calling through a browser session or a personal token, checked on every request:
//! session timeouts, disabled accounts, CSRF, 2-step verification and step-up.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::principal::{NEEDS_CREDENTIALS, RouteAccess};
use crate::access::{Access, AccountNeed, Grants, RoleBook, SubjectKind};
use crate::audit::RequestContext;
use crate::auth::oidc::ProviderTokens;
use crate::auth::session::SessionSecret;
use crate::auth::tokens::ApiSecret;
use crate::config::{SecondFactorPolicy, Settings};
use crate::error::AppError;
use crate::ledger::entry::{Actor, ActorKind, AuthMethod};
use crate::state::AppState;
use crate::store::{EndReason, PersonalToken, SessionRecord, User, UserKind};

/// How stale a session's or token's last use may be before it is written again.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The header JSON clients send the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a person holds now: the break-glass grant or what their groups carry in
/// configuration, plus the stored grants in force for them and their groups (denies included).
pub async fn grants_of(
    state: &AppState,
    user: &User,
    groups: &[String],
) -> Result<Grants, AppError> {
    let mut stored = state
        .store
        .active_grants(SubjectKind::User, std::slice::from_ref(&user.id))
        .await?;
    stored.extend(
        state
            .store
            .active_grants(SubjectKind::Group, groups)
            .await?,
    );
    let roles = if stored.is_empty() {
        RoleBook::default()
    } else {
        role_book(state).await?
    };
    Ok(crate::access::person_grants(
        &user.id,
        user.kind == UserKind::Local,
        groups,
        &stored,
        &roles,
        &state.settings.access,
        state.clock.now(),
    ))
}

/// Every grantable role as of now: the built-in ones and those administrators defined.
pub async fn role_book(state: &AppState) -> Result<RoleBook, AppError> {
    Ok(RoleBook::new(state.store.custom_roles().await?))
}

/// Whether the configured policy makes this person pass 2-step verification (the
/// break-glass account always does).
pub fn needs_second_factor(settings: &Settings, user: &User, grants: &Grants) -> bool {
    if user.kind == UserKind::Local {
        return true;
    }
    match settings.auth.second_factor {
        SecondFactorPolicy::Everyone => true,
        SecondFactorPolicy::DataReaders => grants.reads_data(),
    }
}

/// A live session and its person, as of this request.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    /// The cookie value.
    pub secret: SessionSecret,
    /// The stored session.
    pub session: SessionRecord,
    /// The person.
    pub user: User,
    /// What they hold now (groups are re-read on every request).
    pub grants: Grants,
    /// Whether the policy asks this person for 2-step verification.
    pub needs_second_factor: bool,
}

impl SessionCaller {
    /// How the person signed in.
    pub fn method(&self) -> AuthMethod {
        AuthMethod::parse(&self.session.method).unwrap_or(AuthMethod::Oidc)
    }

    /// Whether 2-step verification was passed in this session.
    pub fn second_factor_passed(&self) -> bool {
        self.session.second_factor_at.is_some()
    }

    /// Whether the session is complete: verified, or not asked to be.
    pub fn complete(&self) -> bool {
        self.second_factor_passed() || !self.needs_second_factor
    }

    /// How the log names this person.
    pub fn actor(&self) -> Actor {
        user_actor(&self.user.id, self.method(), self.second_factor_passed())
    }
}

/// How the log names a person.
pub fn user_actor(id: &str, method: AuthMethod, second_factor: bool) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: id.to_owned(),
        method,
        second_factor,
    }
}

fn state_of(req: &HttpRequest) -> Result<&web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no state in app data")))
}

/// The session the request's cookie names: `None` without a cookie, 401 (logged) when the
/// cookie names no live session or a disabled person.
pub async fn session_of(req: &HttpRequest) -> Result<Option<SessionCaller>, AppError> {
    let state = state_of(req)?;
    let rules = &state.auth.rules;
    let Some(cookie) = req.cookie(rules.session_cookie()) else {
        return Ok(None);
    };
    let secret = SessionSecret::from_cookie(cookie.value());
    let now = state.clock.now();
    let refuse = |reason: &'static str| async move {
        state
            .audit
            .rejected(&RequestContext::of(req), reason)
            .await?;
        Err::<Option<SessionCaller>, _>(AppError::Unauthorized(reason.into()))
    };
    let Some(session) = state.store.session(&secret.hash_hex()).await? else {
        return refuse("this session does not exist; sign in again").await;
    };
    if let Err(reason) = rules.check(&session, now) {
        return refuse(reason).await;
    }
    let Some((user, mut groups)) = state.store.user(&session.user_id).await? else {
        return refuse("this session's account no longer exists").await;
    };
    if user.disabled_at.is_some() {
        return refuse("this account is disabled").await;
    }
    match refresh_groups(state, &session, now).await? {
        GroupCheck::Current => {}
        GroupCheck::Updated(fresh) => groups = fresh,
        GroupCheck::Failed => {
            // Due for a check that failed: membership cannot be confirmed, so the session ends.
            state
                .store
                .end_session(&user.id, &session.public_id, EndReason::ProviderLogout, now)
                .await?;
            return refuse(
                "your groups could not be confirmed with your identity provider; sign in again",
            )
            .await;
        }
    }
    // Last use is kept to the minute: idle timeouts are minutes long, and a write on every
    // request would serialise readers behind the database's write lock.
    if now.millis() - session.last_seen_at.millis() >= TOUCH_EVERY_MS {
        state.store.touch_session(&session.id_hash, now).await?;
    }
    let grants = grants_of(state, &user, &groups).await?;
    let needs = needs_second_factor(&state.settings, &user, &grants);
    crate::telemetry::record_principal(&format!("user:{}", user.id));
    Ok(Some(SessionCaller {
        secret,
        session,
        user,
        grants,
        needs_second_factor: needs,
    }))
}

/// What confirming a session's groups with its provider found.
enum GroupCheck {
    /// Nothing to confirm, or confirmed recently: the stored groups stand.
    Current,
    /// Confirmed now: the person's groups as they are after the update.
    Updated(Vec<String>),
    /// A check was due and failed.
    Failed,
}

/// Confirms an SSO session's groups with its provider when a check is due.
async fn refresh_groups(
    state: &AppState,
    session: &SessionRecord,
    now: crate::domain::Timestamp,
) -> Result<GroupCheck, AppError> {
    let Some(provider_name) = &session.provider else {
        return Ok(GroupCheck::Current);
    };
    let Some((sealed, checked_at)) = state.store.provider_tokens(&session.public_id).await? else {
        // A session from before tokens were kept: nothing to confirm with.
        return Ok(GroupCheck::Current);
    };
    let every = state.settings.auth.group_refresh_minutes * 60_000;
    if now.millis() - checked_at.millis() < every {
        return Ok(GroupCheck::Current);
    }
    match confirm_groups(
        state,
        &session.user_id,
        &session.public_id,
        provider_name,
        &sealed,
        now,
    )
    .await?
    {
        Some(groups) => Ok(GroupCheck::Updated(groups)),
        None => Ok(GroupCheck::Failed),
    }
}

/// Asks the provider for the person's groups with one session's sealed tokens, storing what
/// it says and the renewed tokens: the person's groups after the update, or `None` when the
/// provider could not be asked or did not answer.
async fn confirm_groups(
    state: &AppState,
    user_id: &str,
    public_id: &str,
    provider_name: &str,
    sealed: &str,
    now: crate::domain::Timestamp,
) -> Result<Option<Vec<String>>, AppError> {
    let seal = &state.auth.seal;
    let (Some(tokens), Ok(provider)) = (
        ProviderTokens::open(sealed, seal, public_id),
        state.auth.providers.get(provider_name),
    ) else {
        return Ok(None);
    };
    match state
        .auth
        .providers
        .current_groups(&provider, &tokens, now)
        .await
    {
        Ok((groups, renewed)) => {
            state
                .store
                .set_identity_groups(user_id, provider_name, &groups, now)
                .await?;
            let sealed = renewed.seal(seal, public_id);
            state
                .store
                .put_provider_tokens(public_id, &sealed, now)
                .await?;
            let groups = state.store.user(user_id).await?.map(|(_, g)| g);
            Ok(Some(groups.unwrap_or_default()))
        }
        Err(e) => {
            tracing::info!(error = %e, "group refresh failed");
            Ok(None)
        }
    }
}

/// The groups a personal token may act on: as stored while a provider confirmed them within
/// `auth.group_refresh_minutes`; otherwise confirmed now with the refresh token of the
/// person's most recent live session; failing that, none, so the token keeps only grants
/// made to the person directly.
async fn token_groups(
    state: &AppState,
    user: &User,
    groups: Vec<String>,
    now: crate::domain::Timestamp,
) -> Result<Vec<String>, AppError> {
    if user.kind != UserKind::Sso {
        return Ok(groups);
    }
    let every = state.settings.auth.group_refresh_minutes * 60_000;
    if let Some(at) = state.store.groups_confirmed_at(&user.id).await?
        && now.millis() - at.millis() < every
    {
        return Ok(groups);
    }
    let Some((public_id, provider, sealed)) = state.store.latest_provider_tokens(&user.id).await?
    else {
        return Ok(vec![]);
    };
    Ok(
        confirm_groups(state, &user.id, &public_id, &provider, &sealed, now)
            .await?
            .unwrap_or_default(),
    )
}

/// Refuses a state-changing request made with a cookie unless it proves it came from this
/// service's own pages or scripts: the session's CSRF token in `X-CSRF-Token`, or a browser's
/// `Sec-Fetch-Site: same-origin` with a matching `Origin` (what our own forms send).
pub fn check_csrf(req: &HttpRequest, caller: &SessionCaller) -> Result<(), AppError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header(CSRF_HEADER)
        && bool::from(token.as_bytes().ct_eq(caller.session.csrf.as_bytes()))
    {
        return Ok(());
    }
    let state = state_of(req)?;
    let same_site = header("sec-fetch-site") == Some("same-origin");
    let origin_ok = header("origin") == Some(crate::config::origin_of(state.settings.public_url()));
    if same_site && origin_ok {
        return Ok(());
    }
    // Name the origin expected, never the one sent: this text also goes into the audit log.
    let expected = crate::config::origin_of(state.settings.public_url());
    Err(AppError::Forbidden(format!(
        "cross-site request refused: pages must come from {expected} (auth.public_url); \
         open the service there, or set auth.public_url to the address you use. Scripts send \
         the session's CSRF token in X-CSRF-Token"
    )))
}

/// A 401 that tells the client to complete 2-step verification first.
pub fn second_factor_required(enrolled: bool) -> AppError {
    let mut ext = Map::new();
    ext.insert("second_factor_required".into(), Value::Bool(true));
    ext.insert(
        "next".into(),
        json!(if enrolled {
            "/auth/2fa/verify"
        } else {
            "/auth/2fa/enroll"
        }),
    );
    AppError::Detailed {
        status: actix_web::http::StatusCode::UNAUTHORIZED,
        detail: "complete 2-step verification first".into(),
        extensions: ext,
    }
}

/// A 401 asking for a fresh 2-step verification before a sensitive action.
pub fn step_up_required(minutes: i64) -> AppError {
    let mut ext = Map::new();
    ext.insert("step_up_required".into(), Value::Bool(true));
    ext.insert("next".into(), json!("/auth/2fa/verify"));
    AppError::Detailed {
        status: actix_web::http::StatusCode::UNAUTHORIZED,
        detail: format!(
            "this action needs a 2-step verification within the last {minutes} minutes: verify again"
        ),
        extensions: ext,
    }
}

/// The person behind a personal token: 401 (logged) if it is unknown, revoked, expired, or
/// its owner is disabled.
pub async fn personal_token_of(
    req: &HttpRequest,
    secret: &ApiSecret,
) -> Result<(User, Grants, PersonalToken), AppError> {
    let state = state_of(req)?;
    let now = state.clock.now();
    let reason = match state.store.personal_token(&secret.hash_hex()).await? {
        None => "unknown token",
        Some(t) if t.revoked_at.is_some() => "this token was revoked",
        Some(t) if now >= t.expires_at => "this token has expired",
        Some(token) => match state.store.user(&token.user_id).await? {
            Some((user, _)) if user.disabled_at.is_some() => "this token's owner is disabled",
            None => "this token's owner no longer exists",
            Some((user, groups)) => {
                if token
                    .last_used_at
                    .is_none_or(|t| now.millis() - t.millis() >= TOUCH_EVERY_MS)
                {
                    state.store.touch_personal_token(&token.id, now).await?;
                }
                let groups = token_groups(state, &user, groups, now).await?;
                let grants = grants_of(state, &user, &groups).await?;
                return Ok((user, grants, token));
            }
        },
    };
    state
        .audit
        .rejected(&RequestContext::of(req), reason)
        .await?;
    Err(AppError::Unauthorized(reason.into()))
}

/// A person using one of their own account routes, at the stage the route declares.
#[derive(Debug, Clone)]
pub struct Person {
    /// The person.
    pub user: User,
    /// What they hold.
    pub grants: Grants,
    /// Their session, unless they came with a personal token.
    pub session: Option<SessionCaller>,
    /// The personal token they came with, if any.
    pub token: Option<PersonalToken>,
}

impl Person {
    /// How the log names them.
    pub fn actor(&self) -> Actor {
        match &self.session {
            Some(s) => s.actor(),
            None => user_actor(&self.user.id, AuthMethod::PersonalToken, false),
        }
    }

    /// The session, or a 401 for a route that needs one.
    pub fn session(&self) -> Result<&SessionCaller, AppError> {
        self.session
            .as_ref()
            .ok_or_else(|| AppError::Unauthorized("this needs a signed-in session".into()))
    }
}

impl FromRequest for Person {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Access::Account(need) = RouteAccess::of(&req)? else {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "route {} is not an account route",
                    req.path()
                )));
            };
            let state = state_of(&req)?;
            let ctx = RequestContext::of(&req);
            if let Some(value) = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
            {
                let secret = value
                    .strip_prefix("Bearer ")
                    .map(|t| ApiSecret::from_presented(t.trim()))
                    .filter(|s| s.is_personal() && need == AccountNeed::Verified)
                    .ok_or_else(|| {
                        AppError::Unauthorized(
                            "this route takes a signed-in session or a personal token".into(),
                        )
                    })?;
                let (user, grants, token) = personal_token_of(&req, &secret).await?;
                crate::telemetry::record_principal(&format!("user:{}", user.id));
                return Ok(Self {
                    user,
                    grants,
                    session: None,
                    token: Some(token),
                });
            }
            let Some(caller) = session_of(&req).await? else {
                return Err(AppError::Unauthorized(NEEDS_CREDENTIALS.into()));
            };
            if let Err(e) = check_csrf(&req, &caller) {
                state
                    .audit
                    .refused(&ctx, caller.actor(), &e.to_string())
                    .await?;
                return Err(e);
            }
            let refusal = match need {
                AccountNeed::Partial => None,
                _ if !caller.complete() => {
                    let enrolled = state
                        .store
                        .totp(&caller.user.id)
                        .await?
                        .is_some_and(|t| t.activated_at.is_some());
                    Some(second_factor_required(enrolled))
                }
                AccountNeed::StepUp
                    if !state
                        .auth
                        .rules
                        .stepped_up(&caller.session, state.clock.now()) =>
                {
                    Some(step_up_required(state.settings.auth.step_up_minutes))
                }
                _ => None,
            };
            if let Some(e) = refusal {
                state
                    .audit
                    .refused(&ctx, caller.actor(), &e.to_string())
                    .await?;
                return Err(e);
            }
            Ok(Self {
                user: caller.user.clone(),
                grants: caller.grants.clone(),
                session: Some(caller),
                token: None,
            })
        })
    }
}
