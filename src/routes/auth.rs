//! Sign-in routes: SSO, the break-glass password, 2-step verification, sign-out and the
//! provider's back-channel logout. Each answers a page to browsers and JSON to scripts.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, PreEscaped, html};
use serde::{Deserialize, Serialize};

use super::pages::{body, form, local_path, page, see_other, wants_html};
use crate::audit::RequestContext;
use crate::auth::oidc::{OidcError, PreLogin};
use crate::auth::recovery::RecoveryCode;
use crate::auth::session::SessionSecret;
use crate::auth::totp::TotpCode;
use crate::error::AppError;
use crate::signin::caller::Person;
use crate::signin::flows::{self, Next, SecondFactorInput, Started};
use crate::state::AppState;

/// `GET /auth/login` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginParams {
    /// The provider to sign in with; without it, the list of providers.
    provider: Option<String>,
    /// A local path to return to afterwards.
    return_to: Option<String>,
}

/// A way to sign in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderLink {
    /// The provider's name in configuration.
    name: String,
    /// What the sign-in page calls it.
    display_name: String,
    /// Where a browser starts signing in with it.
    login_url: String,
}

/// What `GET /auth/login` answers a script: the providers, or where to send the browser.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    /// Without `provider`: the ways to sign in.
    Providers {
        /// Each configured provider.
        providers: Vec<ProviderLink>,
        /// Where the break-glass administrator signs in with a password.
        break_glass: String,
    },
    /// With `provider`: the provider's authorization URL (the sealed sign-in cookie is set).
    Redirect {
        /// Where to send the browser.
        authorization_url: String,
    },
}

/// A first factor passed: the session made, and what it still needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    /// The person's id.
    user: String,
    /// The session's id (its secret is in the cookie).
    session: String,
    /// The token state-changing requests with this session send in `X-CSRF-Token`.
    csrf_token: String,
    /// `enroll`, `verify` or `done`.
    second_factor: &'static str,
    /// Where to go next.
    next: String,
}

/// The secret to add to an authenticator app.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Enrollment {
    /// The secret, base32.
    secret: String,
    /// The `otpauth://` URI an app can import.
    otpauth_uri: String,
    /// The URI as a QR code (SVG).
    qr_svg: String,
    /// The session's CSRF token.
    csrf_token: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// Ten codes; each works once instead of an authenticator code.
    recovery_codes: Vec<String>,
    /// The session's new CSRF token, when setting up 2-step verification renewed the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// What 2-step verification asks of this session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyPrompt {
    /// Whether the person has set it up (if not, `/auth/2fa/enroll` first).
    enrolled: bool,
    /// The session's CSRF token.
    csrf_token: String,
}

/// 2-step verification passed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verified {
    /// Always true.
    second_factor: bool,
    /// The renewed session's CSRF token.
    csrf_token: String,
}

/// Signed out here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    /// Always true.
    signed_out: bool,
    /// Where to sign out at the provider too, when it publishes one.
    end_session_url: Option<String>,
}

/// A provider's back-channel logout, done.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderLoggedOut {
    /// How many sessions it ended.
    sessions_ended: u64,
}

fn oidc_error(e: OidcError) -> AppError {
    match e {
        OidcError::UnknownProvider(_) => AppError::NotFound(e.to_string()),
        OidcError::Unreachable(_) => AppError::Unavailable(e.to_string()),
        OidcError::State(_) => AppError::BadRequest(e.to_string()),
        OidcError::NotAllowed(_) => AppError::Forbidden(e.to_string()),
        _ => AppError::Unauthorized(e.to_string()),
    }
}

fn with_session(
    state: &AppState,
    mut resp: HttpResponse,
    secret: &SessionSecret,
) -> Result<HttpResponse, AppError> {
    let rules = &state.auth.rules;
    let cookie = rules.cookie(
        rules.session_cookie(),
        secret.expose().to_owned(),
        rules.max_ms,
    );
    resp.add_cookie(&cookie)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("setting the cookie: {e}")))?;
    Ok(resp)
}

/// Starts a sign-in at a provider (a redirect), or lists the ways to sign in.
#[utoipa::path(get, path = "/auth/login", tag = "sign-in", params(LoginParams),
    responses((status = 302, description = "To the provider, with a sealed sign-in cookie"), (status = 200, description = "The sign-in page; for scripts the providers, or with `provider` the authorization URL", content((String = "text/html"), (LoginAnswer = "application/json"))), (status = 404), (status = 503)))]
pub async fn login(
    req: HttpRequest,
    params: web::Query<LoginParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let return_to = local_path(params.return_to.as_deref());
    let Some(name) = params.provider.as_deref() else {
        let providers = state.auth.providers.names();
        if !wants_html(&req) {
            return Ok(HttpResponse::Ok().json(LoginAnswer::Providers {
                providers: providers
                    .iter()
                    .map(|(n, d)| ProviderLink {
                        name: n.to_string(),
                        display_name: d.to_string(),
                        login_url: format!("/auth/login?provider={n}"),
                    })
                    .collect(),
                break_glass: "/auth/password".into(),
            }));
        }
        return Ok(page("Sign in", sign_in_markup(&state, None)));
    };
    let provider = state.auth.providers.get(name).map_err(oidc_error)?;
    let now = state.clock.now();
    let lifetime = state.settings.auth.pre_login_minutes * 60_000;
    let (url, pre) = state
        .auth
        .providers
        .begin(&provider, &return_to, now, lifetime)
        .await
        .map_err(oidc_error)?;
    let rules = &state.auth.rules;
    let cookie = rules.cookie(rules.login_cookie(), pre.seal(&state.auth.seal), lifetime);
    let mut resp = if wants_html(&req) {
        HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    } else {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(LoginAnswer::Redirect {
                authorization_url: url.to_string(),
            })
    };
    resp.add_cookie(&cookie)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("setting the cookie: {e}")))?;
    Ok(resp)
}

/// `GET /auth/callback` parameters, as the provider sends them.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    code: Option<String>,
    /// The state sent at the start.
    state: Option<String>,
    /// An error code from the provider.
    error: Option<String>,
    /// The provider's explanation.
    error_description: Option<String>,
}

/// Where the provider sends the browser back: checks state, exchanges the code with the PKCE
/// verifier, verifies the ID token, and starts a (partial) session.
#[utoipa::path(get, path = "/auth/callback", tag = "sign-in", params(CallbackParams),
    responses((status = 303, description = "Signed in: on to 2-step verification"), (status = 200, description = "Signed in (for scripts)", body = SignedIn), (status = 400), (status = 401), (status = 403), (status = 503)))]
pub async fn callback(
    req: HttpRequest,
    ctx: RequestContext,
    params: web::Query<CallbackParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let rules = &state.auth.rules;
    let now = state.clock.now();
    let pre = req
        .cookie(rules.login_cookie())
        .ok_or(OidcError::State("no sign-in cookie"))
        .and_then(|c| PreLogin::open(c.value(), &state.auth.seal, now));
    let pre = match pre {
        Ok(pre) => pre,
        Err(e) => {
            flows::sign_in_failed(&state, &ctx, None, &e.to_string()).await?;
            return Err(oidc_error(e));
        }
    };
    let provider_name = pre.provider.clone();
    let fail = |e: OidcError| {
        let state = state.clone();
        let ctx = ctx.clone();
        let name = provider_name.clone();
        async move {
            flows::sign_in_failed(&state, &ctx, Some(&name), &e.to_string()).await?;
            Err::<HttpResponse, _>(oidc_error(e))
        }
    };
    if let Some(error) = &params.error {
        let text = format!(
            "{error}: {}",
            params.error_description.as_deref().unwrap_or("")
        );
        return fail(OidcError::Provider(text)).await;
    }
    if let Err(e) = pre.check_state(params.state.as_deref().unwrap_or("")) {
        return fail(e).await;
    }
    let Some(code) = params.code.as_deref() else {
        return fail(OidcError::Exchange("no code in the callback".into())).await;
    };
    let provider = match state.auth.providers.get(&pre.provider) {
        Ok(p) => p,
        Err(e) => return fail(e).await,
    };
    let signed_in = match state
        .auth
        .providers
        .finish(&provider, &pre, code, now)
        .await
    {
        Ok(s) => s,
        Err(e) => return fail(e).await,
    };
    let started = flows::sso_signed_in(&state, signed_in, &ctx).await?;
    let mut resp = started_response(&req, &state, &started, &pre.return_to)?;
    resp.add_removal_cookie(&rules.removal(rules.login_cookie()))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("clearing the cookie: {e}")))?;
    Ok(resp)
}

fn started_response(
    req: &HttpRequest,
    state: &AppState,
    started: &Started,
    return_to: &str,
) -> Result<HttpResponse, AppError> {
    let next = match started.next {
        Next::Done => return_to.to_owned(),
        other => other.path().to_owned(),
    };
    let resp = if wants_html(req) {
        see_other(&next)
    } else {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(SignedIn {
                user: started.user.id.clone(),
                session: started.session.public_id.clone(),
                csrf_token: started.session.csrf.clone(),
                second_factor: match started.next {
                    Next::Enroll => "enroll",
                    Next::Verify => "verify",
                    Next::Done => "done",
                },
                next,
            })
    };
    with_session(state, resp, &started.secret)
}

/// The break-glass sign-in form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordForm {
    /// The administrator's email.
    email: String,
    /// The password.
    password: String,
}

/// Break-glass sign-in with a password; 2-step verification follows, always.
#[utoipa::path(post, path = "/auth/password", tag = "sign-in", request_body = PasswordForm,
    responses((status = 303, description = "On to 2-step verification"), (status = 200, description = "A session still to pass 2-step verification (for scripts)", body = SignedIn), (status = 401), (status = 429)))]
pub async fn password(
    req: HttpRequest,
    ctx: RequestContext,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let f: PasswordForm = body(&req, &bytes)?;
    let started = match flows::password_sign_in(&state, &f.email, &f.password, &ctx).await {
        Ok(started) => started,
        // In a page: the form again, saying why (never which of the two was wrong).
        Err(AppError::Unauthorized(why)) if wants_html(&req) => {
            return Ok(super::pages::page_with_status(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                sign_in_markup(&state, Some(&why)),
            ));
        }
        Err(e) => return Err(e),
    };
    started_response(&req, &state, &started, "/account")
}

/// The sign-in choices: each provider, and the break-glass password form (open, saying why,
/// when a password was just refused).
fn sign_in_markup(state: &AppState, refused: Option<&str>) -> Markup {
    let providers = state.auth.providers.names();
    html! {
        ul {
            @for (n, d) in &providers {
                li { a href={ "/auth/login?provider=" (n) } { "Sign in with " (d) } }
            }
        }
        details open[refused.is_some()] {
            summary { "Break-glass administrator" }
            @if let Some(why) = refused {
                div class="problem" role="alert" { p id="problem-detail" { (why) } }
            }
            (form("/auth/password", "password-form", html! {
                label { "Email " input type="email" name="email" autocomplete="username" required; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
            }, "Sign in"))
        }
    }
}

/// Shows the secret to enroll in an authenticator app: QR code, `otpauth://` URI and text.
#[utoipa::path(get, path = "/auth/2fa/enroll", tag = "sign-in",
    responses((status = 200, description = "The secret to add to an authenticator app", content((String = "text/html"), (Enrollment = "application/json"))), (status = 401), (status = 409, description = "Already set up")))]
pub async fn enroll_page(
    req: HttpRequest,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let session = person.session()?;
    let e = match flows::enrollment(&state, &person.user).await {
        Err(AppError::Conflict(_)) if wants_html(&req) => return Ok(see_other("/auth/2fa/verify")),
        other => other?,
    };
    if !wants_html(&req) {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Enrollment {
                secret: e.secret,
                otpauth_uri: e.uri,
                qr_svg: e.qr_svg,
                csrf_token: session.session.csrf.clone(),
            }));
    }
    Ok(page(
        "Set up 2-step verification",
        html! {
            p { "Scan this code with an authenticator app, then enter the six-digit code it shows." }
            figure id="qr" { (PreEscaped(&e.qr_svg)) }
            p { "Or type this secret: " code id="secret" { (e.secret) } }
            p { small { "URI: " code id="otpauth-uri" { (e.uri) } } }
            (form("/auth/2fa/enroll", "enroll-form", html! {
                label { "Code " input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required; }
            }, "Turn on"))
        },
    ))
}

/// A six-digit code.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CodeForm {
    /// The code the app shows.
    code: String,
}

/// Confirms enrollment with a first valid code; returns ten recovery codes, shown once.
#[utoipa::path(post, path = "/auth/2fa/enroll", tag = "sign-in", request_body = CodeForm,
    responses((status = 200, description = "On: the recovery codes, shown once", content((String = "text/html"), (RecoveryCodes = "application/json"))), (status = 400), (status = 401), (status = 409), (status = 422), (status = 429)))]
pub async fn enroll_confirm(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let f: CodeForm = body(&req, &bytes)?;
    let code = TotpCode::parse(&f.code).map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let done = flows::confirm_enrollment(&state, caller, &code, &ctx).await?;
    let codes: Vec<&str> = done.recovery_codes.iter().map(|c| c.expose()).collect();
    let resp = if wants_html(&req) {
        page(
            "2-step verification is on",
            html! {
                p { "Keep these recovery codes somewhere safe. Each works once; they are not shown again." }
                ul id="recovery-codes" { @for c in &codes { li { code { (c) } } } }
                p { a href="/console" { "Continue" } }
            },
        )
    } else {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(RecoveryCodes {
                recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
                csrf_token: Some(done.csrf.clone()),
            })
    };
    with_session(&state, resp, &done.secret)
}

/// The 2-step verification prompt.
#[utoipa::path(get, path = "/auth/2fa/verify", tag = "sign-in",
    responses((status = 200, description = "The prompt", content((String = "text/html"), (VerifyPrompt = "application/json"))), (status = 401)))]
pub async fn verify_page(
    req: HttpRequest,
    person: Person,
    q: web::Query<NextParam>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let enrolled = state
        .store
        .totp(&person.user.id)
        .await?
        .is_some_and(|t| t.activated_at.is_some());
    if !wants_html(&req) {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(VerifyPrompt {
                enrolled,
                csrf_token: caller.session.csrf.clone(),
            }));
    }
    if !enrolled {
        return Ok(see_other("/auth/2fa/enroll"));
    }
    Ok(page(
        "2-step verification",
        verify_markup(local_next(q.next.as_deref()), None),
    ))
}

/// A code or a recovery code.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyForm {
    /// A six-digit code from the app.
    #[serde(default)]
    code: Option<String>,
    /// One of the recovery codes.
    #[serde(default)]
    recovery_code: Option<String>,
    /// For a page: the local page to go back to once verified (a step-up asked inline).
    #[serde(default)]
    next: Option<String>,
}

/// `next` if it is a page of this service (never another site, never the sign-in routes).
fn local_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| !n.starts_with("/auth/") && local_path(Some(n)) == *n)
}

/// Where the verification prompt returns to.
#[derive(Debug, Deserialize)]
pub struct NextParam {
    /// A local page.
    next: Option<String>,
}

/// The code prompt and the recovery-code prompt, each returning to `next`; `refused` says
/// why the last code was not taken.
fn verify_markup(next: Option<&str>, refused: Option<&str>) -> Markup {
    let back = html! { @if let Some(n) = next { input type="hidden" name="next" value=(n); } };
    html! {
        @if let Some(why) = refused {
            div class="problem" role="alert" { p id="problem-detail" { (why) } p { "Please try again with the code your app shows now." } }
        }
        (form("/auth/2fa/verify", "verify-form", html! {
            (back)
            label { "Code " input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}"; }
        }, "Verify"))
        details {
            summary { "Use a recovery code" }
            (form("/auth/2fa/verify", "recovery-form", html! {
                (back)
                label { "Recovery code " input type="text" name="recovery_code" autocomplete="off"; }
            }, "Verify"))
        }
    }
}

/// Completes 2-step verification (or a step-up): the session id changes.
#[utoipa::path(post, path = "/auth/2fa/verify", tag = "sign-in", request_body = VerifyForm,
    responses((status = 303, description = "Verified: on to the account"), (status = 200, description = "Verified (for scripts)", body = Verified), (status = 401), (status = 409), (status = 422), (status = 429)))]
pub async fn verify(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let f: VerifyForm = body(&req, &bytes)?;
    let input = match (
        f.code.as_deref().filter(|c| !c.is_empty()),
        f.recovery_code.as_deref().filter(|c| !c.is_empty()),
    ) {
        (Some(code), None) => SecondFactorInput::Code(
            TotpCode::parse(code).map_err(|e| AppError::Unprocessable(e.to_string()))?,
        ),
        (None, Some(rc)) => SecondFactorInput::Recovery(RecoveryCode::from_input(rc)),
        _ => {
            return Err(AppError::Unprocessable(
                "send exactly one of code and recovery_code".into(),
            ));
        }
    };
    let next = local_next(f.next.as_deref());
    let done = match flows::verify_second_factor(&state, caller, &input, &ctx).await {
        Ok(done) => done,
        // A wrong code in a page: the prompt again, saying so, still returning to `next`.
        Err(e) if wants_html(&req) && matches!(e, AppError::Unauthorized(_)) => {
            return Ok(super::pages::page_with_status(
                StatusCode::UNAUTHORIZED,
                "That code did not work",
                verify_markup(next, Some(&e.to_string())),
            ));
        }
        Err(e) => return Err(e),
    };
    let resp = if wants_html(&req) {
        see_other(next.unwrap_or("/account"))
    } else {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Verified {
                second_factor: true,
                csrf_token: done.csrf.clone(),
            })
    };
    with_session(&state, resp, &done.secret)
}

/// Issues a new batch of ten recovery codes, voiding the old ones (needs a recent step-up).
#[utoipa::path(post, path = "/auth/2fa/recovery-codes", tag = "sign-in",
    responses((status = 200, description = "The new codes, shown once", body = RecoveryCodes), (status = 401)))]
pub async fn recovery_codes(
    ctx: RequestContext,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let codes = flows::regenerate_recovery_codes(&state, caller, &ctx).await?;
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(RecoveryCodes {
            recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
            csrf_token: None,
        }))
}

/// Signs out here, then (for SSO sessions) at the provider when it publishes an
/// `end_session_endpoint`.
#[utoipa::path(post, path = "/auth/logout", tag = "sign-in",
    responses((status = 303, description = "To the provider's sign-out, or the sign-in page"), (status = 200, description = "Signed out (for scripts)", body = SignedOut), (status = 401), (status = 403)))]
pub async fn logout(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let caller = person.session()?;
    let provider = flows::sign_out(&state, caller, &ctx).await?;
    let end_session = match provider {
        Some(name) => match state.auth.providers.get(&name) {
            Ok(p) => {
                state
                    .auth
                    .providers
                    .end_session_url(&p, state.clock.now())
                    .await
            }
            Err(_) => None,
        },
        None => None,
    };
    let mut resp = if wants_html(&req) {
        see_other(end_session.as_deref().unwrap_or("/auth/login"))
    } else {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(SignedOut {
                signed_out: true,
                end_session_url: end_session,
            })
    };
    let rules = &state.auth.rules;
    resp.add_removal_cookie(&rules.removal(rules.session_cookie()))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("clearing the cookie: {e}")))?;
    Ok(resp)
}

/// A back-channel logout request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LogoutTokenForm {
    /// The provider's signed logout token.
    logout_token: String,
}

/// OpenID Connect Back-Channel Logout 1.0: the provider ends a person's sessions here.
#[utoipa::path(post, path = "/auth/backchannel-logout/{provider}", tag = "sign-in",
    params(("provider" = String, Path, description = "The provider's name")), request_body = LogoutTokenForm,
    responses((status = 200, description = "The sessions named are ended", body = ProviderLoggedOut), (status = 400), (status = 404)))]
pub async fn backchannel_logout(
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let provider = state.auth.providers.get(&path).map_err(oidc_error)?;
    let f: LogoutTokenForm = body(&req, &bytes)?;
    let logout = match state
        .auth
        .providers
        .verify_logout_token(&provider, &f.logout_token, state.clock.now())
        .await
    {
        Ok(l) => l,
        Err(OidcError::Unreachable(e)) => return Err(AppError::Unavailable(e)),
        Err(e) => {
            flows::sign_in_failed(&state, &ctx, Some(&path), &e.to_string()).await?;
            return Err(AppError::BadRequest(e.to_string()));
        }
    };
    let ended = flows::provider_logout(&state, &path, &logout, &ctx).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ProviderLoggedOut {
            sessions_ended: ended,
        }))
}
