//! The sign-in steps as services: a provider's verified answer or the break-glass password
//! becomes a session; 2-step verification completes it (with a new session id); sign-out and
//! provider logouts end it. Every step, success or failure, is written to the audit log.

use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

use super::caller::{SessionCaller, grants_of, needs_second_factor, user_actor};
use crate::audit::RequestContext;
use crate::auth::oidc::{SignedIn, amr_proves_mfa};
use crate::auth::recovery::{self, RecoveryCode};
use crate::auth::session::{SessionSecret, new_session, random_text};
use crate::auth::tokens::ApiSecret;
use crate::auth::totp::{self, TotpCode, TotpError, TotpSecret};
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::ledger::entry::{Action, Actor, ActorKind, AuthMethod, Outcome};
use crate::state::AppState;
use crate::store::{Claim, EndReason, Factor, Notice, PersonalToken, SessionRecord, User};

/// Where a browser goes after a sign-in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Set up 2-step verification.
    Enroll,
    /// Enter a code.
    Verify,
    /// Signed in.
    Done,
}

impl Next {
    /// The page for this step.
    pub fn path(self) -> &'static str {
        match self {
            Self::Enroll => "/auth/2fa/enroll",
            Self::Verify => "/auth/2fa/verify",
            Self::Done => "/console",
        }
    }
}

/// A session just created or renewed: the cookie to set and what comes next.
#[derive(Debug)]
pub struct Started {
    /// The new cookie value.
    pub secret: SessionSecret,
    /// The stored session.
    pub session: SessionRecord,
    /// The person.
    pub user: User,
    /// The next step.
    pub next: Next,
}

fn anonymous() -> Actor {
    Actor {
        kind: ActorKind::Anonymous,
        id: String::new(),
        method: AuthMethod::None,
        second_factor: false,
    }
}

fn client(ctx: &RequestContext) -> (Option<String>, Option<String>) {
    (ctx.client_ip.clone(), ctx.user_agent.clone())
}

async fn has_totp(state: &AppState, user_id: &str) -> Result<bool, AppError> {
    Ok(state
        .store
        .totp(user_id)
        .await?
        .is_some_and(|t| t.activated_at.is_some()))
}

/// Records a failed sign-in (bad state, bad token, refused domain) and returns the error.
pub async fn sign_in_failed(
    state: &AppState,
    ctx: &RequestContext,
    provider: Option<&str>,
    reason: &str,
) -> Result<(), AppError> {
    state
        .audit
        .account(
            ctx,
            anonymous(),
            Action::SignInFailed,
            Outcome::Denied,
            json!({"provider": provider, "reason": reason}),
        )
        .await?;
    Ok(())
}

/// Turns a provider's verified answer into a session: provisions the person on first sign-in
/// (keyed by issuer and subject), refreshes their email, name and groups, refuses a disabled
/// person, and records the provider's `acr`, `amr` and `auth_time`.
pub async fn sso_signed_in(
    state: &AppState,
    signed_in: SignedIn,
    ctx: &RequestContext,
) -> Result<Started, AppError> {
    let now = state.clock.now();
    let SignedIn {
        profile,
        context,
        tokens,
    } = signed_in;
    let new_id = uuid::Uuid::new_v4().to_string();
    let (user, created) = state.store.upsert_sso_user(&profile, &new_id, now).await?;
    let provider_settings = state
        .settings
        .auth
        .providers
        .iter()
        .find(|p| p.name == context.provider);
    if user.disabled_at.is_some() {
        state
            .audit
            .account(
                ctx,
                user_actor(&user.id, AuthMethod::Oidc, false),
                Action::SignInFailed,
                Outcome::Denied,
                json!({"provider": context.provider, "reason": "account disabled"}),
            )
            .await?;
        return Err(AppError::Forbidden("this account is disabled".into()));
    }
    let provider_mfa =
        provider_settings.is_some_and(|p| p.accept_provider_mfa) && amr_proves_mfa(&context.amr);
    let second_factor_at = provider_mfa.then_some(now);
    let (secret, session) = new_session(
        &user.id,
        AuthMethod::Oidc,
        Some(&context),
        second_factor_at,
        now,
        &state.auth.rules,
        client(ctx),
    );
    state.store.create_session(&session).await?;
    let sealed = tokens.seal(&state.auth.seal, &session.public_id);
    state
        .store
        .put_provider_tokens(&session.public_id, &sealed, now)
        .await?;
    state.store.touch_user(&user.id, now).await?;
    let grants = grants_of(state, &user, &profile.groups).await?;
    let needs = needs_second_factor(&state.settings, &user, &grants);
    let next = match (provider_mfa || !needs, has_totp(state, &user.id).await?) {
        (true, _) => Next::Done,
        (false, true) => Next::Verify,
        (false, false) => Next::Enroll,
    };
    state
        .audit
        .account(
            ctx,
            user_actor(&user.id, AuthMethod::Oidc, provider_mfa),
            Action::SignIn,
            Outcome::Allowed,
            json!({
                "provider": context.provider,
                "issuer": profile.issuer,
                "provisioned": created,
                "session": session.public_id,
                "acr": context.acr,
                "amr": context.amr,
                "auth_time": context.auth_time.map(Timestamp::to_rfc3339),
                "second_factor": if provider_mfa { "provider_mfa" } else if needs { "required" } else { "not_required" },
            }),
        )
        .await?;
    Ok(Started {
        secret,
        session,
        user,
        next,
    })
}

/// The break-glass sign-in: email and password, locked after repeated failures, every
/// attempt recorded as `auth.break_glass`. 2-step verification is always required.
pub async fn password_sign_in(
    state: &AppState,
    email: &str,
    password_input: &str,
    ctx: &RequestContext,
) -> Result<Started, AppError> {
    let now = state.clock.now();
    let auth = &state.settings.auth;
    let refuse = "wrong email or password";
    let Some((user, hash, _, _)) = state.store.local_user(email).await? else {
        // Spend the same time as a real check so that timing does not reveal accounts.
        let _ = state.auth.passwords.matches(password_input, None).await;
        state
            .audit
            .account(
                ctx,
                anonymous(),
                Action::BreakGlass,
                Outcome::Denied,
                json!({"reason": "unknown account"}),
            )
            .await?;
        return Err(AppError::Unauthorized(refuse.into()));
    };
    let actor = user_actor(&user.id, AuthMethod::Password, false);
    // Counted before it is checked, so parallel guesses cannot all be checked.
    let lock_at = Timestamp::from_millis(now.millis() + auth.password_lockout_minutes * 60_000);
    let claim = state
        .store
        .claim_attempt(
            Factor::Password,
            &user.id,
            auth.password_max_failures,
            lock_at,
            now,
        )
        .await?;
    let locks_until = match claim {
        Claim::Granted { locks_until } => locks_until,
        Claim::Refused { until } => {
            let until = until.unwrap_or(lock_at);
            state
                .audit
                .account(
                    ctx,
                    actor,
                    Action::BreakGlass,
                    Outcome::Denied,
                    json!({"reason": "locked", "locked_until": until.to_rfc3339()}),
                )
                .await?;
            return Err(locked(until));
        }
    };
    let ok = state
        .auth
        .passwords
        .matches(password_input, Some(&hash))
        .await;
    if ok {
        state
            .store
            .clear_attempts(Factor::Password, &user.id)
            .await?;
    }
    if !ok || user.disabled_at.is_some() {
        let reason = if ok {
            "account disabled"
        } else {
            "wrong password"
        };
        state
            .audit
            .account(
                ctx,
                actor.clone(),
                Action::BreakGlass,
                Outcome::Denied,
                json!({"reason": reason}),
            )
            .await?;
        if let Some(until) = locks_until.filter(|_| !ok) {
            state
                .audit
                .account(
                    ctx,
                    actor,
                    Action::Lockout,
                    Outcome::Denied,
                    json!({"factor": "password", "locked_until": until.to_rfc3339()}),
                )
                .await?;
        }
        return Err(AppError::Unauthorized(refuse.into()));
    }
    let (secret, session) = new_session(
        &user.id,
        AuthMethod::Password,
        None,
        None,
        now,
        &state.auth.rules,
        client(ctx),
    );
    state.store.create_session(&session).await?;
    state.store.touch_user(&user.id, now).await?;
    let next = if has_totp(state, &user.id).await? {
        Next::Verify
    } else {
        Next::Enroll
    };
    state
        .audit
        .account(
            ctx,
            actor,
            Action::BreakGlass,
            Outcome::Allowed,
            json!({"session": session.public_id, "second_factor": "required"}),
        )
        .await?;
    Ok(Started {
        secret,
        session,
        user,
        next,
    })
}

fn locked(until: Timestamp) -> AppError {
    let mut ext = Map::new();
    ext.insert("locked_until".into(), Value::String(until.to_rfc3339()));
    AppError::Detailed {
        status: StatusCode::TOO_MANY_REQUESTS,
        detail: "too many failed attempts: locked for a while, try again later".into(),
        extensions: ext,
    }
}

/// What enrollment shows: the secret three ways.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Base32, to type into an app.
    pub secret: String,
    /// The `otpauth://` URI.
    pub uri: String,
    /// The URI as a QR code (inline SVG).
    pub qr_svg: String,
}

fn open_secret(state: &AppState, user_id: &str, sealed: &str) -> Result<TotpSecret, AppError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()
        .and_then(|b| state.auth.seal.open(&b, user_id.as_bytes()))
        .and_then(|b| <[u8; 20]>::try_from(b).ok())
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "the TOTP secret of {user_id} does not open with auth.secret_key_file"
            ))
        })?;
    Ok(TotpSecret::from_bytes(bytes))
}

/// Starts (or shows again) enrollment; 409 once 2-step verification is set up.
pub async fn enrollment(state: &AppState, user: &User) -> Result<Enrollment, AppError> {
    use base64::Engine;
    let secret = match state.store.totp(&user.id).await? {
        Some(t) if t.activated_at.is_some() => {
            return Err(AppError::Conflict(
                "2-step verification is already set up; an administrator can reset it".into(),
            ));
        }
        // Reloading the page keeps the same secret, so a scanned code still works.
        Some(t) => open_secret(state, &user.id, &t.secret_sealed)?,
        None => {
            let secret = TotpSecret::generate();
            let sealed = state.auth.seal.seal(secret.expose(), user.id.as_bytes());
            let text = base64::engine::general_purpose::STANDARD.encode(sealed);
            if !state
                .store
                .begin_totp(&user.id, &text, state.clock.now())
                .await?
            {
                return Err(AppError::Conflict(
                    "2-step verification is already set up".into(),
                ));
            }
            secret
        }
    };
    let uri = secret.otpauth_uri(&state.settings.audit.origin, &user.email);
    Ok(Enrollment {
        secret: secret.base32(),
        qr_svg: TotpSecret::qr_svg(&uri),
        uri,
    })
}

/// What a person typed at a 2-step prompt.
#[derive(Debug, Clone)]
pub enum SecondFactorInput {
    /// A six-digit code from the app.
    Code(TotpCode),
    /// A recovery code.
    Recovery(RecoveryCode),
}

/// A completed 2-step verification: the renewed cookie, and recovery codes after enrollment.
#[derive(Debug)]
pub struct Verified {
    /// The session's new cookie value (the id changes when verification completes).
    pub secret: SessionSecret,
    /// Recovery codes, shown once, after enrollment.
    pub recovery_codes: Vec<RecoveryCode>,
    /// The session's new CSRF token.
    pub csrf: String,
}

/// Confirms enrollment with a first valid code, activates it, issues ten recovery codes and
/// completes the session.
pub async fn confirm_enrollment(
    state: &AppState,
    caller: &SessionCaller,
    code: &TotpCode,
    ctx: &RequestContext,
) -> Result<Verified, AppError> {
    let record = match state.store.totp(&caller.user.id).await? {
        Some(t) if t.activated_at.is_none() => t,
        Some(_) => {
            return Err(AppError::Conflict(
                "2-step verification is already set up".into(),
            ));
        }
        None => {
            return Err(AppError::Conflict(
                "open /auth/2fa/enroll first to get a secret".into(),
            ));
        }
    };
    let locks_until = claim_code_attempt(state, caller, ctx, "enroll").await?;
    let secret = open_secret(state, &caller.user.id, &record.secret_sealed)?;
    let now = state.clock.now();
    if let Err(e) = accept_code(
        state,
        caller,
        &secret,
        code,
        record.state.last_step,
        Some(now),
    )
    .await?
    {
        return Err(code_refused(state, caller, e, locks_until, ctx, "enroll").await);
    }
    let codes = new_recovery_codes(state, &caller.user.id).await?;
    let (secret, csrf) = renew(state, caller, now).await?;
    state
        .audit
        .account(
            ctx,
            user_actor(&caller.user.id, caller.method(), true),
            Action::SecondFactorEnroll,
            Outcome::Allowed,
            json!({"factor": "totp", "recovery_codes": codes.len()}),
        )
        .await?;
    Ok(Verified {
        secret,
        recovery_codes: codes,
        csrf,
    })
}

async fn new_recovery_codes(
    state: &AppState,
    user_id: &str,
) -> Result<Vec<RecoveryCode>, AppError> {
    let (codes, hashes) = recovery::generate()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing recovery codes: {e}")))?;
    state.store.replace_recovery_codes(user_id, &hashes).await?;
    Ok(codes)
}

/// Gives the session a new id and CSRF token and marks 2-step verification passed now.
async fn renew(
    state: &AppState,
    caller: &SessionCaller,
    now: Timestamp,
) -> Result<(SessionSecret, String), AppError> {
    let secret = SessionSecret::generate();
    let csrf = random_text();
    if !state
        .store
        .rotate_session(&caller.session.id_hash, &secret.hash_hex(), &csrf, now)
        .await?
    {
        return Err(AppError::Unauthorized(
            "this session has ended; sign in again".into(),
        ));
    }
    Ok((secret, csrf))
}

/// Records a refused code (and a lockout it caused) and says why. A replayed code also
/// leaves a security notice for its owner.
async fn code_refused(
    state: &AppState,
    caller: &SessionCaller,
    error: TotpError,
    locks_until: Option<Timestamp>,
    ctx: &RequestContext,
    step: &str,
) -> AppError {
    let now = state.clock.now();
    let actor = caller.actor();
    let reason = match error {
        TotpError::Malformed => "malformed",
        TotpError::Locked { .. } => "locked",
        TotpError::Replayed => "replayed",
        TotpError::Wrong => "wrong",
    };
    if let TotpError::Replayed = error {
        let notice = Notice {
            at: now,
            kind: "totp_replay".into(),
            detail: format!(
                "a 2-step verification code that was already used was entered again from {}; if that was not you, sign out everywhere and tell your administrator",
                ctx.client_ip.as_deref().unwrap_or("an unknown address")
            ),
        };
        if let Err(e) = state.store.add_notice(&caller.user.id, &notice).await {
            return e.into();
        }
    }
    let action = if let TotpError::Locked { .. } = error {
        Action::Lockout
    } else {
        Action::SecondFactorFailed
    };
    if let Err(e) = state
        .audit
        .account(
            ctx,
            actor.clone(),
            action,
            Outcome::Denied,
            json!({"factor": "totp", "step": step, "reason": reason}),
        )
        .await
    {
        return e;
    }
    if let Some(until) = locks_until
        && !matches!(error, TotpError::Locked { .. })
        && let Err(e) = state
            .audit
            .account(
                ctx,
                actor,
                Action::Lockout,
                Outcome::Denied,
                json!({"factor": "totp", "locked_until": until.to_rfc3339()}),
            )
            .await
    {
        return e;
    }
    match error {
        TotpError::Locked { until } => locked(until),
        other => AppError::Unauthorized(other.to_string()),
    }
}

/// Counts a code attempt before it is checked: the lock it would set, or the refusal
/// (logged) while locked.
async fn claim_code_attempt(
    state: &AppState,
    caller: &SessionCaller,
    ctx: &RequestContext,
    step: &str,
) -> Result<Option<Timestamp>, AppError> {
    let now = state.clock.now();
    let policy = state.auth.totp;
    let lock_at = Timestamp::from_millis(now.millis() + policy.lockout_ms);
    match state
        .store
        .claim_attempt(
            Factor::Totp,
            &caller.user.id,
            policy.max_failures,
            lock_at,
            now,
        )
        .await?
    {
        Claim::Granted { locks_until } => Ok(locks_until),
        Claim::Refused { until } => {
            let e = TotpError::Locked {
                until: until.unwrap_or(lock_at),
            };
            Err(code_refused(state, caller, e, None, ctx, step).await)
        }
    }
}

/// Checks a code and records its step, which the store accepts only once, even from
/// parallel requests; a success clears the failure count.
async fn accept_code(
    state: &AppState,
    caller: &SessionCaller,
    secret: &TotpSecret,
    code: &TotpCode,
    last_step: Option<u64>,
    activate: Option<Timestamp>,
) -> Result<Result<(), TotpError>, AppError> {
    let step = match totp::verify(secret, code, state.clock.now(), last_step) {
        Ok(step) => step,
        Err(e) => return Ok(Err(e)),
    };
    let accepted = state
        .store
        .accept_totp_step(&caller.user.id, step, activate)
        .await?;
    Ok(if accepted {
        Ok(())
    } else {
        Err(TotpError::Replayed)
    })
}

/// Checks a code or a recovery code and completes (or steps up) the session with a new id.
pub async fn verify_second_factor(
    state: &AppState,
    caller: &SessionCaller,
    input: &SecondFactorInput,
    ctx: &RequestContext,
) -> Result<Verified, AppError> {
    let record = match state.store.totp(&caller.user.id).await? {
        Some(t) if t.activated_at.is_some() => t,
        _ => {
            return Err(AppError::Conflict(
                "2-step verification is not set up yet: enroll at /auth/2fa/enroll".into(),
            ));
        }
    };
    let now = state.clock.now();
    let locks_until = claim_code_attempt(state, caller, ctx, "verify").await?;
    let (method, remaining) = match input {
        SecondFactorInput::Code(code) => {
            let secret = open_secret(state, &caller.user.id, &record.secret_sealed)?;
            let last = record.state.last_step;
            if let Err(e) = accept_code(state, caller, &secret, code, last, None).await? {
                return Err(code_refused(state, caller, e, locks_until, ctx, "verify").await);
            }
            ("totp", None)
        }
        SecondFactorInput::Recovery(code) => {
            let unused = state.store.unused_recovery_codes(&caller.user.id).await?;
            let found = recovery::find(code, &unused);
            let used = match found {
                Some(i) => {
                    state
                        .store
                        .use_recovery_code(&caller.user.id, &unused[i], now)
                        .await?
                }
                None => false,
            };
            if !used {
                // Wrong recovery codes count towards the same lockout as wrong codes.
                let e = TotpError::Wrong;
                return Err(code_refused(state, caller, e, locks_until, ctx, "recovery").await);
            }
            state
                .store
                .clear_attempts(Factor::Totp, &caller.user.id)
                .await?;
            ("recovery_code", Some(unused.len() - 1))
        }
    };
    let (secret, csrf) = renew(state, caller, now).await?;
    state
        .audit
        .account(
            ctx,
            user_actor(&caller.user.id, caller.method(), true),
            Action::SecondFactor,
            Outcome::Allowed,
            json!({"factor": method, "recovery_codes_left": remaining}),
        )
        .await?;
    Ok(Verified {
        secret,
        recovery_codes: vec![],
        csrf,
    })
}

/// Issues a new batch of recovery codes, voiding the old one.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    caller: &SessionCaller,
    ctx: &RequestContext,
) -> Result<Vec<RecoveryCode>, AppError> {
    let codes = new_recovery_codes(state, &caller.user.id).await?;
    state
        .audit
        .account(
            ctx,
            caller.actor(),
            Action::RecoveryCodes,
            Outcome::Allowed,
            json!({"issued": codes.len(), "previous": "voided"}),
        )
        .await?;
    Ok(codes)
}

/// Ends the caller's session; returns the provider to sign out of too, if any. Unlike other
/// changes, the session ends before its entry is written: a person leaving a shared computer
/// must be signed out even while the log cannot be written (they then see the 503).
pub async fn sign_out(
    state: &AppState,
    caller: &SessionCaller,
    ctx: &RequestContext,
) -> Result<Option<String>, AppError> {
    state
        .store
        .end_session(
            &caller.user.id,
            &caller.session.public_id,
            EndReason::SignOut,
            state.clock.now(),
        )
        .await?;
    state
        .audit
        .account(
            ctx,
            caller.actor(),
            Action::SignOut,
            Outcome::Allowed,
            json!({"session": caller.session.public_id}),
        )
        .await?;
    Ok(caller.session.provider.clone())
}

/// Ends the sessions a verified back-channel logout token names.
pub async fn provider_logout(
    state: &AppState,
    provider: &str,
    logout: &crate::auth::oidc::Logout,
    ctx: &RequestContext,
) -> Result<u64, AppError> {
    let user = match &logout.subject {
        Some(sub) => state.store.user_by_identity(&logout.issuer, sub).await?,
        None => None,
    };
    let ended = state
        .store
        .end_provider_sessions(
            provider,
            logout.sid.as_deref(),
            user.as_deref(),
            state.clock.now(),
        )
        .await?;
    let actor = match &user {
        Some(id) => user_actor(id, AuthMethod::Oidc, false),
        None => anonymous(),
    };
    state
        .audit
        .account(
            ctx,
            actor,
            Action::ProviderLogout,
            Outcome::Allowed,
            json!({
                "provider": provider,
                "jti": logout.jti,
                "sessions_ended": ended.iter().map(|s| s.public_id.clone()).collect::<Vec<_>>(),
            }),
        )
        .await?;
    Ok(ended.len() as u64)
}

/// A new personal token for the caller: at most the configured lifetime, acting with the
/// owner's own (live) grants, never more.
pub async fn create_personal_token(
    state: &AppState,
    caller: &SessionCaller,
    name: &str,
    days: i64,
    ctx: &RequestContext,
) -> Result<(PersonalToken, ApiSecret), AppError> {
    let max = state.settings.auth.personal_token_max_days;
    if !(1..=max).contains(&days) {
        return Err(AppError::Unprocessable(format!(
            "expires_in_days must be between 1 and {max}"
        )));
    }
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::Unprocessable(
            "name must be 1 to 100 characters".into(),
        ));
    }
    let now = state.clock.now();
    let secret = ApiSecret::generate_personal();
    let token = PersonalToken {
        id: crate::auth::tokens::random_id(),
        user_id: caller.user.id.clone(),
        name: name.to_owned(),
        created_at: now,
        expires_at: Timestamp::from_millis(now.millis() + days * 86_400_000),
        revoked_at: None,
        last_used_at: None,
    };
    state
        .audit
        .account(
            ctx,
            caller.actor(),
            Action::TokenCreate,
            Outcome::Allowed,
            json!({"kind": "personal", "token": token.id, "name": token.name, "expires_at": token.expires_at.to_rfc3339()}),
        )
        .await?;
    state
        .store
        .create_personal_token(&token, &secret.hash_hex())
        .await?;
    Ok((token, secret))
}
