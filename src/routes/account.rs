//! A person's own account: who they are, their sessions and their personal tokens.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{body, form, page, wants_html};
use crate::audit::RequestContext;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::ledger::entry::{Action, Outcome};
use crate::signin::caller::Person;
use crate::signin::flows;
use crate::state::AppState;
use crate::store::{EndReason, PersonalToken, SessionRecord};

fn time(t: Option<Timestamp>) -> Value {
    t.map(|t| Value::String(t.to_rfc3339()))
        .unwrap_or(Value::Null)
}

fn session_json(s: &SessionRecord, current: Option<&str>) -> Value {
    json!({
        "id": s.public_id,
        "current": Some(s.public_id.as_str()) == current,
        "method": s.method,
        "provider": s.provider,
        "acr": s.acr,
        "amr": s.amr,
        "auth_time": time(s.auth_time),
        "second_factor_at": time(s.second_factor_at),
        "created_at": s.created_at.to_rfc3339(),
        "last_seen_at": s.last_seen_at.to_rfc3339(),
        "expires_at": s.expires_at.to_rfc3339(),
        "client_ip": s.client_ip,
        "user_agent": s.user_agent,
    })
}

fn token_json(t: &PersonalToken) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "created_at": t.created_at.to_rfc3339(),
        "expires_at": t.expires_at.to_rfc3339(),
        "revoked_at": time(t.revoked_at),
        "last_used_at": time(t.last_used_at),
    })
}

async fn me_json(person: &Person, state: &AppState) -> Result<Value, AppError> {
    let u = &person.user;
    let totp = state.store.totp(&u.id).await?;
    let notices = state.store.notices(&u.id).await?;
    let session = person.session.as_ref();
    Ok(json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "kind": u.kind.as_str(),
        "break_glass": u.is_break_glass(),
        "authentication": {
            "method": person.actor().method.as_str(),
            "second_factor": session.is_some_and(|s| s.second_factor_passed()),
            "second_factor_enrolled": totp.as_ref().is_some_and(|t| t.activated_at.is_some()),
            "second_factor_required": session.is_some_and(|s| s.needs_second_factor),
            "session": session.map(|s| session_json(&s.session, Some(&s.session.public_id))),
            "token": person.token.as_ref().map(|t| t.id.clone()),
        },
        "csrf_token": session.map(|s| s.session.csrf.clone()),
        "grants": person.grants.list(),
        "security_notices": notices.iter().map(|n| json!({"at": n.at.to_rfc3339(), "kind": n.kind, "detail": n.detail})).collect::<Vec<_>>(),
    }))
}

/// Who am I: identity, how I authenticated, my grants, and security notices.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, description = "The signed-in person"), (status = 401)), security(("bearer" = [])))]
pub async fn me(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(me_json(&person, &state).await?))
}

/// The account page: the same as `/api/v1/me`, for a browser.
#[utoipa::path(get, path = "/account", tag = "account",
    responses((status = 200, description = "The account page (or JSON)"), (status = 401)))]
pub async fn account_page(
    req: HttpRequest,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let me = me_json(&person, &state).await?;
    if !wants_html(&req) {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(me));
    }
    let notices = me["security_notices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(page(
        "Your account",
        html! {
            p id="who" { "Signed in as " strong { (person.user.email) } " (" (me["authentication"]["method"].as_str().unwrap_or("")) ")" }
            @if !notices.is_empty() {
                section id="notices" {
                    h2 { "Security notices" }
                    ul { @for n in &notices { li { (n["at"].as_str().unwrap_or("")) ": " (n["detail"].as_str().unwrap_or("")) } } }
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
            (form("/auth/logout", "logout-form", html! {}, "Sign out"))
        },
    ))
}

/// My live sessions.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "account",
    responses((status = 200, description = "Live sessions, newest first"), (status = 401)))]
pub async fn sessions(
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let list = state
        .store
        .live_sessions(&person.user.id, state.clock.now())
        .await?;
    let current = person
        .session
        .as_ref()
        .map(|s| s.session.public_id.as_str());
    Ok(HttpResponse::Ok().json(json!({
        "sessions": list.iter().map(|s| session_json(s, current)).collect::<Vec<_>>()
    })))
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
    let ended = state
        .store
        .end_session(&person.user.id, &path, EndReason::Ended, state.clock.now())
        .await?;
    if !ended {
        return Err(AppError::NotFound(format!(
            "you have no live session {}",
            *path
        )));
    }
    state
        .audit
        .account(
            &ctx,
            person.actor(),
            Action::SessionEnd,
            Outcome::Allowed,
            json!({"session": *path, "owner": person.user.id}),
        )
        .await?;
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
    responses((status = 201, description = "The token, shown once"), (status = 401), (status = 403), (status = 422)))]
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
    let mut json = token_json(&token);
    json["token"] = Value::String(secret.expose().to_owned());
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json))
}

/// My personal tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "account",
    responses((status = 200, description = "Tokens, newest first"), (status = 401)))]
pub async fn tokens(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let list = state.store.personal_tokens(&person.user.id).await?;
    Ok(HttpResponse::Ok().json(json!({"tokens": list.iter().map(token_json).collect::<Vec<_>>()})))
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
    let revoked = state
        .store
        .revoke_personal_token(&person.user.id, &path, state.clock.now())
        .await?;
    if !revoked {
        return Err(AppError::NotFound(format!(
            "you have no live token {}",
            *path
        )));
    }
    state
        .audit
        .account(
            &ctx,
            person.actor(),
            Action::TokenRevoke,
            Outcome::Allowed,
            json!({"kind": "personal", "token": *path}),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
