//! A person's own account: who they are, their sessions and their personal tokens.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pages::{body, form, wants_html};
use crate::audit::RequestContext;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::signin::caller::Person;
use crate::signin::{account, flows};
use crate::state::AppState;
use crate::store::{PersonalToken, SessionRecord};

fn time(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

/// One of a person's sessions (never its cookie or CSRF token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// An id to name it by (`DELETE /api/v1/sessions/{id}`).
    id: String,
    /// Whether it is the session making this request.
    current: bool,
    /// How the person signed in: `sso`, `password`, ...
    method: String,
    /// The identity provider, for SSO sessions.
    provider: Option<String>,
    /// The provider's authentication context class.
    acr: Option<String>,
    /// The provider's authentication methods.
    amr: Vec<String>,
    /// When the provider authenticated the person (RFC 3339).
    auth_time: Option<String>,
    /// The last 2-step verification in this session.
    second_factor_at: Option<String>,
    /// When it began.
    created_at: String,
    /// Its last request.
    last_seen_at: String,
    /// When it ends at the latest.
    expires_at: String,
    /// The client's address at sign-in.
    client_ip: Option<String>,
    /// The browser at sign-in.
    user_agent: Option<String>,
}

impl SessionView {
    fn of(s: &SessionRecord, current: Option<&str>) -> Self {
        Self {
            id: s.public_id.clone(),
            current: Some(s.public_id.as_str()) == current,
            method: s.method.clone(),
            provider: s.provider.clone(),
            acr: s.acr.clone(),
            amr: s.amr.clone(),
            auth_time: time(s.auth_time),
            second_factor_at: time(s.second_factor_at),
            created_at: s.created_at.to_rfc3339(),
            last_seen_at: s.last_seen_at.to_rfc3339(),
            expires_at: s.expires_at.to_rfc3339(),
            client_ip: s.client_ip.clone(),
            user_agent: s.user_agent.clone(),
        }
    }
}

/// A person's live sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Newest first.
    sessions: Vec<SessionView>,
}

/// A personal token (its secret only once, when it is made).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Its id.
    id: String,
    /// What its owner called it.
    name: String,
    /// When it was made (RFC 3339).
    created_at: String,
    /// When it stops working.
    expires_at: String,
    /// When it was revoked.
    revoked_at: Option<String>,
    /// When it was last used.
    last_used_at: Option<String>,
    /// The secret to send as `Authorization: Bearer ...`: in the answer that makes it, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl TokenView {
    fn of(t: &PersonalToken) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.to_rfc3339(),
            revoked_at: time(t.revoked_at),
            last_used_at: time(t.last_used_at),
            token: None,
        }
    }
}

/// A person's personal tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// Newest first.
    tokens: Vec<TokenView>,
}

/// A role or a denied permission a person holds, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeldView {
    /// The role, for an allow.
    role: Option<String>,
    /// The permission taken away, for a deny.
    deny: Option<String>,
    /// A project's id, or `*` for every project.
    project: String,
    /// Where it comes from: `{"group": name}`, `{"grant": id}`, `"break_glass"` or `"service_account"`.
    #[schema(value_type = Object)]
    source: Value,
    /// When it lapses on its own.
    expires_at: Option<String>,
}

/// How the caller authenticated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Authentication {
    /// `sso`, `password`, `personal_token`, ...
    method: String,
    /// Whether this session passed 2-step verification.
    second_factor: bool,
    /// Whether the person has set up 2-step verification.
    second_factor_enrolled: bool,
    /// Whether this session still has to pass it.
    second_factor_required: bool,
    /// The session, when signed in with one.
    session: Option<SessionView>,
    /// The personal token's id, when one was sent.
    token: Option<String>,
}

/// A security notice about the person's own account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeView {
    /// When (RFC 3339).
    at: String,
    /// A stable kind, such as `totp_replay`.
    kind: String,
    /// What happened, in words.
    detail: String,
}

/// Who the caller is, how they authenticated and what they hold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// Their id.
    id: String,
    /// Their email.
    email: String,
    /// Their name.
    name: Option<String>,
    /// `person` or `service_account`.
    kind: String,
    /// Whether this is the break-glass administrator.
    break_glass: bool,
    /// How this request was authenticated.
    authentication: Authentication,
    /// The token state-changing requests with this session send in `X-CSRF-Token`.
    csrf_token: Option<String>,
    /// Roles and denials held now.
    grants: Vec<HeldView>,
    /// Things that happened to the account they should know about.
    security_notices: Vec<NoticeView>,
}

async fn who_am_i(person: &Person, state: &AppState) -> Result<Me, AppError> {
    let u = &person.user;
    let standing = account::standing(state, person).await?;
    let session = person.session.as_ref();
    Ok(Me {
        id: u.id.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        kind: u.kind.as_str().to_owned(),
        break_glass: u.is_break_glass(),
        authentication: Authentication {
            method: person.actor().method.as_str().to_owned(),
            second_factor: session.is_some_and(|s| s.second_factor_passed()),
            second_factor_enrolled: standing.second_factor_enrolled,
            second_factor_required: session.is_some_and(|s| s.needs_second_factor),
            session: session.map(|s| SessionView::of(&s.session, Some(&s.session.public_id))),
            token: person.token.as_ref().map(|t| t.id.clone()),
        },
        csrf_token: session.map(|s| s.session.csrf.clone()),
        grants: person
            .grants
            .list()
            .iter()
            .map(|g| HeldView {
                role: g.role.clone(),
                deny: g.deny.map(|p| p.as_str().to_owned()),
                project: g.project.clone(),
                source: serde_json::to_value(&g.source).unwrap_or(Value::Null),
                expires_at: g.expires_at.clone(),
            })
            .collect(),
        security_notices: standing
            .notices
            .iter()
            .map(|n| NoticeView {
                at: n.at.to_rfc3339(),
                kind: n.kind.clone(),
                detail: n.detail.clone(),
            })
            .collect(),
    })
}

/// Who am I: identity, how I authenticated, my grants, and security notices.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, description = "The signed-in person", body = Me), (status = 401)), security(("bearer" = [])))]
pub async fn me(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(who_am_i(&person, &state).await?))
}

/// The account page: the same as `/api/v1/me`, for a browser.
#[utoipa::path(get, path = "/account", tag = "account",
    responses((status = 200, description = "The account page, or with `Accept: application/json` the same as `/api/v1/me`", content((String = "text/html"), (Me = "application/json"))), (status = 401)))]
pub async fn account_page(
    req: HttpRequest,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let me = who_am_i(&person, &state).await?;
    if !wants_html(&req) {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(me));
    }
    account_markup(&state, &person, &me, None).await
}

/// The account page: who, notices, roles, sessions (end one), personal tokens (make one with a
/// fresh code, revoke one); `new_secret` is a token just made, shown this once.
async fn account_markup(
    state: &AppState,
    person: &Person,
    me: &Me,
    new_secret: Option<&str>,
) -> Result<HttpResponse, AppError> {
    let sessions = account::sessions(state, person).await?;
    let current = person
        .session
        .as_ref()
        .map(|s| s.session.public_id.as_str());
    let tokens = account::tokens(state, person).await?;
    let nav = super::console::nav_of(state, &super::console::person_subject(person)).await?;
    Ok(super::pages::console_page(
        &nav,
        "Your account",
        html! {
            p id="who" { "Signed in as " strong { (person.user.email) } " (" (me.authentication.method) ")" }
            @if !me.security_notices.is_empty() {
                section id="notices" {
                    h2 { "Security notices" }
                    ul { @for n in &me.security_notices { li { (n.at) ": " (n.detail) } } }
                }
            }
            h2 { "Access" }
            ul id="grants" {
                @for g in person.grants.list() {
                    li {
                        @if let Some(role) = &g.role { (role) } @else { "denied " (g.deny.map(|p| p.as_str()).unwrap_or("")) }
                        " on " (g.project)
                    }
                }
            }
            h2 { "Sessions" }
            div class="table-wrap" {
                table id="sessions" {
                    thead { tr { th { "since (UTC)" } th { "last seen" } th { "how" } th { "from" } th { "" } } }
                    tbody {
                        @for s in &sessions {
                            tr data-session=(s.public_id) {
                                td { (s.created_at.to_rfc3339()) }
                                td { (s.last_seen_at.to_rfc3339()) }
                                td { (s.method) }
                                td { (s.client_ip.as_deref().unwrap_or("—")) " " (s.user_agent.as_deref().unwrap_or("")) }
                                td {
                                    @if Some(s.public_id.as_str()) == current {
                                        "this one"
                                    } @else {
                                        form method="post" action="/account/sessions/end" class="inline" {
                                            input type="hidden" name="id" value=(s.public_id);
                                            button type="submit" { "End" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Personal tokens" }
            @if let Some(secret) = new_secret {
                div class="problem" id="new-token" role="status" {
                    p { "Your new token, shown only now:" }
                    pre id="token-secret" { (secret) }
                    button type="button" class="copy" data-copy="token-secret" { "Copy" }
                }
            }
            @if !tokens.is_empty() {
                div class="table-wrap" {
                    table id="tokens" {
                        thead { tr { th { "name" } th { "made" } th { "expires" } th { "last used" } th { "" } } }
                        tbody {
                            @for t in &tokens {
                                tr data-token=(t.id) {
                                    td { (t.name) }
                                    td { (t.created_at.to_rfc3339()) }
                                    td { (t.expires_at.to_rfc3339()) }
                                    td { (t.last_used_at.map(Timestamp::to_rfc3339).unwrap_or_else(|| "never".into())) }
                                    td {
                                        @if let Some(r) = t.revoked_at { "revoked " (r.to_rfc3339()) } @else {
                                            form method="post" action="/account/tokens/revoke" class="inline" {
                                                input type="hidden" name="id" value=(t.id);
                                                button type="submit" { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form class="stack" method="post" action="/account/tokens" id="token-form" {
                label { "A name for a new token" input type="text" name="name" required; }
                label { "Days until it expires" input type="number" name="expires_in_days" value="30" min="1" required; }
                button type="submit" { "Make a token" }
            }
            p class="muted" { "Making a token needs a 2-step verification within the last few minutes." }
            (form("/auth/logout", "logout-form", html! {}, "Sign out"))
        },
    ))
}

/// What the session and token forms send.
#[derive(Debug, Deserialize)]
struct IdForm {
    id: String,
}

/// Ends one of my sessions, from the account page.
#[utoipa::path(post, path = "/account/sessions/end", tag = "account",
    responses((status = 303, description = "Back to the account page"), (status = 401), (status = 403), (status = 404)))]
pub async fn end_session_form(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let f: IdForm = body(&req, &bytes)?;
    account::end_session(&state, &ctx, &person, &f.id).await?;
    Ok(super::pages::see_other("/account"))
}

/// Revokes one of my personal tokens, from the account page.
#[utoipa::path(post, path = "/account/tokens/revoke", tag = "account",
    responses((status = 303, description = "Back to the account page"), (status = 401), (status = 404)))]
pub async fn revoke_token_form(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let f: IdForm = body(&req, &bytes)?;
    account::revoke_token(&state, &ctx, &person, &f.id).await?;
    Ok(super::pages::see_other("/account"))
}

/// What the token form sends.
#[derive(Debug, Deserialize)]
struct TokenForm {
    name: String,
    expires_in_days: String,
}

/// Makes a personal token from the account page (a fresh code needed) and shows its secret
/// once, on the page itself: never in a URL.
#[utoipa::path(post, path = "/account/tokens", tag = "account",
    responses((status = 200, description = "The account page with the new token", content((String = "text/html"))), (status = 401), (status = 422)))]
pub async fn create_token_form(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let f: TokenForm = body(&req, &bytes)?;
    crate::domain::FreeText::parse("name", &f.name)?;
    let days = f.expires_in_days.trim().parse().map_err(|_| {
        AppError::Unprocessable("expires_in_days must be a whole number of days".into())
    })?;
    let (_, secret) = flows::create_personal_token(&state, caller, &f.name, days, &ctx).await?;
    let me = who_am_i(&person, &state).await?;
    account_markup(&state, &person, &me, Some(secret.expose())).await
}

/// My live sessions.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "account",
    responses((status = 200, description = "Live sessions, newest first", body = SessionList), (status = 401)))]
pub async fn sessions(
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let list = account::sessions(&state, &person).await?;
    let current = person
        .session
        .as_ref()
        .map(|s| s.session.public_id.as_str());
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: list.iter().map(|s| SessionView::of(s, current)).collect(),
    }))
}

/// Ends one of my sessions.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "account",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 204, description = "Ended"), (status = 401), (status = 403), (status = 404)))]
pub async fn end_session(
    ctx: RequestContext,
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    account::end_session(&state, &ctx, &person, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new personal token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewTokenForm {
    /// What it is for.
    name: String,
    /// Days until it expires (at most `auth.personal_token_max_days`, 90 by default).
    expires_in_days: i64,
}

/// Creates a personal token (needs a 2-step verification within the last few minutes).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "account", request_body = NewTokenForm,
    responses((status = 201, description = "The token, its secret shown once", body = TokenView), (status = 401), (status = 403), (status = 422)))]
pub async fn create_token(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let f: NewTokenForm = body(&req, &bytes)?;
    crate::domain::FreeText::parse("name", &f.name)?;
    let (token, secret) =
        flows::create_personal_token(&state, caller, &f.name, f.expires_in_days, &ctx).await?;
    let mut view = TokenView::of(&token);
    view.token = Some(secret.expose().to_owned());
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(view))
}

/// My personal tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "account",
    responses((status = 200, description = "Tokens, newest first", body = TokenList), (status = 401)))]
pub async fn tokens(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let list = account::tokens(&state, &person).await?;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: list.iter().map(TokenView::of).collect(),
    }))
}

/// Revokes one of my personal tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "account",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked"), (status = 401), (status = 404)))]
pub async fn revoke_token(
    ctx: RequestContext,
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    account::revoke_token(&state, &ctx, &person, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}
