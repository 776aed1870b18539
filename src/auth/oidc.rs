//! Sign-in through OpenID Connect providers (the `openidconnect` crate): authorization code
//! flow with PKCE S256, `state` and `nonce` sealed in a short-lived cookie, ID tokens checked
//! for signature (RS256, ES256 or EdDSA only), issuer, audience, expiry, issue time and nonce,
//! missing claims read from userinfo, and OpenID Connect Back-Channel Logout tokens.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreClient, CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, IdToken, IssuerUrl, JsonWebKey, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, SubjectIdentifier, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;

use super::seal::SealKey;
use super::session::ProviderContext;
use crate::config::{ProviderSettings, Settings};
use crate::domain::Timestamp;
use crate::store::SsoProfile;

/// The signature algorithms an ID token or logout token may use; never `none` or HS*.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 3] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EdDsa,
];
/// How far an `iat` may lie in the future (clock skew between us and the provider).
const MAX_SKEW_MS: i64 = 5 * 60_000;
/// Re-fetching keys for an unknown key id happens at most this often per provider (ms).
const MIN_REFRESH_MS: i64 = 10_000;
/// Label binding the sealed sign-in cookie to its purpose.
const PRE_LOGIN_AAD: &[u8] = b"auditgate/v1/pre-login";
/// The event a back-channel logout token must carry.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a sign-in through a provider failed; the text is safe to show and to audit.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// No provider by that name.
    #[error("no identity provider is called {0:?}")]
    UnknownProvider(String),
    /// The provider's discovery document or keys could not be had.
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The sign-in cookie is missing, expired, forged, or does not match `state`.
    #[error("this sign-in was not started here or has expired: {0}")]
    State(&'static str),
    /// The provider sent the browser back with an error.
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    /// Exchanging the code failed.
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(String),
    /// The ID token did not verify.
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    /// The userinfo endpoint failed.
    #[error("the userinfo endpoint failed: {0}")]
    UserInfo(String),
    /// The person may not sign in here.
    #[error("{0}")]
    NotAllowed(String),
    /// A back-channel logout token did not verify.
    #[error("the logout token is not valid: {0}")]
    LogoutToken(String),
}

/// Claims beyond the standard ones (groups, `sid`, or a custom email claim), kept whole so
/// the claim names can be configured.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl AdditionalClaims for ExtraClaims {}

impl ExtraClaims {
    fn string(&self, name: &str) -> Option<String> {
        self.rest
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn strings(&self, name: &str) -> Option<Vec<String>> {
        match self.rest.get(name)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            Value::String(one) => Some(vec![one.clone()]),
            _ => None,
        }
    }
}

type ExtraIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What the sealed sign-in cookie carries between `/auth/login` and `/auth/callback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreLogin {
    /// The provider's name.
    pub provider: String,
    state: String,
    nonce: String,
    verifier: String,
    /// Where to go afterwards (a local path).
    pub return_to: String,
    expires_ms: i64,
}

impl PreLogin {
    /// The cookie value: sealed, so the browser can neither read nor alter it.
    pub fn seal(&self, key: &SealKey) -> String {
        let json = serde_json::to_vec(self).expect("serializable");
        URL_SAFE_NO_PAD.encode(key.seal(&json, PRE_LOGIN_AAD))
    }

    /// Opens a cookie value, refusing forged or expired ones.
    pub fn open(value: &str, key: &SealKey, now: Timestamp) -> Result<Self, OidcError> {
        let sealed = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| OidcError::State("the sign-in cookie is malformed"))?;
        let json = key
            .open(&sealed, PRE_LOGIN_AAD)
            .ok_or(OidcError::State("the sign-in cookie was not made here"))?;
        let pre: Self = serde_json::from_slice(&json)
            .map_err(|_| OidcError::State("the sign-in cookie is malformed"))?;
        if now.millis() >= pre.expires_ms {
            return Err(OidcError::State("the sign-in took too long"));
        }
        Ok(pre)
    }

    /// Checks the `state` the provider sent back, in constant time.
    pub fn check_state(&self, state: &str) -> Result<(), OidcError> {
        if bool::from(self.state.as_bytes().ct_eq(state.as_bytes())) {
            Ok(())
        } else {
            Err(OidcError::State("state does not match"))
        }
    }
}

/// A verified sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who, as stored.
    pub profile: SsoProfile,
    /// How the provider authenticated them.
    pub context: ProviderContext,
    /// The provider's tokens, to confirm group membership later.
    pub tokens: ProviderTokens,
}

/// The provider's tokens for one session: kept sealed, redacted in Debug.
#[derive(Clone, Serialize, Deserialize)]
pub struct ProviderTokens {
    /// The subject they belong to.
    pub subject: String,
    access: String,
    refresh: Option<String>,
    expires_ms: Option<i64>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderTokens(<redacted>)")
    }
}

/// Label binding sealed provider tokens to their purpose and session.
const TOKENS_AAD: &str = "auditgate/v1/provider-tokens/";

impl ProviderTokens {
    /// Sealed for storage, bound to the session's public id.
    pub fn seal(&self, key: &SealKey, session: &str) -> String {
        let json = serde_json::to_vec(self).expect("serializable");
        URL_SAFE_NO_PAD.encode(key.seal(&json, format!("{TOKENS_AAD}{session}").as_bytes()))
    }

    /// Opens what `seal` made for the same session.
    pub fn open(sealed: &str, key: &SealKey, session: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let json = key.open(&bytes, format!("{TOKENS_AAD}{session}").as_bytes())?;
        serde_json::from_slice(&json).ok()
    }
}

/// A verified back-channel logout: end the sessions it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    /// The issuer.
    pub issuer: String,
    /// The subject, if named.
    pub subject: Option<String>,
    /// The provider session, if named.
    pub sid: Option<String>,
    /// The token's id.
    pub jti: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

/// One configured provider and what was discovered about it.
pub struct Provider {
    settings: ProviderSettings,
    secret: ClientSecret,
    redirect: RedirectUrl,
    discovered: RwLock<Option<(Arc<ProviderMetadataWithLogout>, Timestamp)>>,
}

/// The configured identity providers.
pub struct Providers {
    list: Vec<Arc<Provider>>,
    http: reqwest::Client,
}

impl Providers {
    /// Reads each provider's client secret from its environment variable or file.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let redirect = RedirectUrl::new(format!("{}/auth/callback", settings.public_url()))?;
        let mut list = Vec::new();
        for p in &settings.auth.providers {
            let secret = match (&p.client_secret_env, &p.client_secret_file) {
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "provider {:?}: environment variable {var} is not set",
                        p.name
                    )
                })?,
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| {
                        anyhow::anyhow!("provider {:?}: reading {}: {e}", p.name, file.display())
                    })?
                    .trim()
                    .to_owned(),
                (None, None) => anyhow::bail!("provider {:?} has no client secret", p.name),
            };
            list.push(Arc::new(Provider {
                settings: p.clone(),
                secret: ClientSecret::new(secret),
                redirect: redirect.clone(),
                discovered: RwLock::new(None),
            }));
        }
        // Following redirects would let a provider's answer send us anywhere (SSRF).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { list, http })
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Provider>, OidcError> {
        self.list
            .iter()
            .find(|p| p.settings.name == name)
            .cloned()
            .ok_or_else(|| OidcError::UnknownProvider(name.to_owned()))
    }

    /// Every provider as (name, display name).
    pub fn names(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .map(|p| {
                let s = &p.settings;
                (
                    s.name.clone(),
                    s.display_name.clone().unwrap_or_else(|| s.name.clone()),
                )
            })
            .collect()
    }

    /// Starts a sign-in: the provider's authorization URL and the sealed cookie's contents.
    pub async fn begin(
        &self,
        provider: &Provider,
        return_to: &str,
        now: Timestamp,
        lifetime_ms: i64,
    ) -> Result<(String, PreLogin), OidcError> {
        let meta = self.metadata(provider, false, now).await?;
        let client = CoreClient::from_provider_metadata(
            (*meta).clone(),
            ClientId::new(provider.settings.client_id.clone()),
            Some(provider.secret.clone()),
        )
        .set_redirect_uri(provider.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &provider.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        // Ask for how the person authenticated, so sessions and the log can record it; only
        // from providers that announce the `claims` parameter, since others may refuse it.
        if meta.claims_parameter_supported() == Some(true) {
            request = request.add_extra_param(
                "claims",
                r#"{"id_token":{"acr":null,"amr":null,"auth_time":{"essential":true}}}"#,
            );
        }
        let (url, state, nonce) = request.url();
        let pre = PreLogin {
            provider: provider.settings.name.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            return_to: return_to.to_owned(),
            expires_ms: now.millis() + lifetime_ms,
        };
        Ok((url.to_string(), pre))
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier), verifies the ID token,
    /// reads userinfo for claims the token lacks, and applies the allowed email domains.
    pub async fn finish(
        &self,
        provider: &Provider,
        pre: &PreLogin,
        code: &str,
        now: Timestamp,
    ) -> Result<SignedIn, OidcError> {
        let meta = self.metadata(provider, false, now).await?;
        let client = CoreClient::from_provider_metadata(
            (*meta).clone(),
            ClientId::new(provider.settings.client_id.clone()),
            Some(provider.secret.clone()),
        )
        .set_redirect_uri(provider.redirect.clone());
        let http = |req| call(self.http.clone(), req);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pre.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| OidcError::Exchange(describe(&e)))?;
        let raw = response
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the token response has no ID token".into()))?
            .to_string();
        let token: ExtraIdToken = raw
            .parse()
            .map_err(|e: serde_json::Error| OidcError::IdToken(e.to_string()))?;
        let nonce = Nonce::new(pre.nonce.clone());
        let claims = match self.verify_id_token(provider, &meta, &token, &nonce, now) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // An unknown key id: the provider may have rotated its keys.
                let fresh = self.metadata(provider, true, now).await?;
                self.verify_id_token(provider, &fresh, &token, &nonce, now)
            }
            other => other,
        }
        .map_err(|e| OidcError::IdToken(e.to_string()))?;
        let settings = &provider.settings;
        let extra = claims.additional_claims();
        let subject = claims.subject().as_str().to_owned();
        let mut email = if settings.email_claim == "email" {
            claims.email().map(|e| e.as_str().to_owned())
        } else {
            extra.string(&settings.email_claim)
        };
        let mut email_verified = claims.email_verified();
        let mut name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned());
        let mut groups = extra.strings(&settings.groups_claim);
        let context = ProviderContext {
            provider: settings.name.clone(),
            sid: extra.string("sid"),
            acr: claims.auth_context_ref().map(|a| a.as_str().to_owned()),
            amr: claims
                .auth_method_refs()
                .map(|v| v.iter().map(|a| a.as_str().to_owned()).collect())
                .unwrap_or_default(),
            auth_time: claims
                .auth_time()
                .map(|t| Timestamp::from_millis(t.timestamp_millis())),
        };
        if (email.is_none() || groups.is_none() || name.is_none())
            && meta.userinfo_endpoint().is_some()
        {
            let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> = client
                .user_info(
                    AccessToken::new(response.access_token().secret().clone()),
                    Some(SubjectIdentifier::new(subject.clone())),
                )
                .map_err(|e| OidcError::UserInfo(e.to_string()))?
                .request_async(&http)
                .await
                .map_err(|e| OidcError::UserInfo(describe(&e)))?;
            let more = info.additional_claims();
            if email.is_none() {
                email = if settings.email_claim == "email" {
                    info.email().map(|e| e.as_str().to_owned())
                } else {
                    more.string(&settings.email_claim)
                };
                email_verified = info.email_verified();
            }
            if groups.is_none() {
                groups = more.strings(&settings.groups_claim);
            }
            if name.is_none() {
                name = info
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned());
            }
        }
        let email = email.ok_or_else(|| {
            OidcError::NotAllowed(format!(
                "the provider sent no {:?} claim",
                settings.email_claim
            ))
        })?;
        if !settings.allowed_email_domains.is_empty() {
            let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
            let allowed = domain.is_some_and(|d| {
                settings
                    .allowed_email_domains
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&d))
            });
            // An unverified address proves nothing about its domain.
            if !allowed || email_verified == Some(false) {
                return Err(OidcError::NotAllowed(
                    "this email domain may not sign in here".into(),
                ));
            }
        }
        let tokens = ProviderTokens {
            subject: subject.clone(),
            access: response.access_token().secret().clone(),
            refresh: response.refresh_token().map(|t| t.secret().clone()),
            expires_ms: response
                .expires_in()
                .map(|d| now.millis() + d.as_millis() as i64),
        };
        Ok(SignedIn {
            tokens,
            profile: SsoProfile {
                provider: settings.name.clone(),
                issuer: settings.issuer.clone(),
                subject,
                email,
                name,
                groups: groups.unwrap_or_default(),
            },
            context,
        })
    }

    fn verify_id_token<'t>(
        &self,
        provider: &Provider,
        meta: &ProviderMetadataWithLogout,
        token: &'t ExtraIdToken,
        nonce: &Nonce,
        now: Timestamp,
    ) -> Result<
        &'t openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>,
        ClaimsVerificationError,
    > {
        let now_utc = chrono::DateTime::from_timestamp_millis(now.millis()).unwrap_or_default();
        let verifier = openidconnect::IdTokenVerifier::<CoreJsonWebKey>::new_public_client(
            ClientId::new(provider.settings.client_id.clone()),
            meta.issuer().clone(),
            meta.jwks().clone(),
        )
        .set_allowed_algs(ALLOWED_ALGS)
        .set_time_fn(move || now_utc)
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp_millis() - now.millis() > MAX_SKEW_MS {
                Err("issued in the future".to_owned())
            } else {
                Ok(())
            }
        });
        token.claims(&verifier, nonce)
    }

    /// Asks the provider for the person's groups now, renewing the access token with the
    /// refresh token when it has expired. Fails when neither works: the caller ends the session.
    pub async fn current_groups(
        &self,
        provider: &Provider,
        tokens: &ProviderTokens,
        now: Timestamp,
    ) -> Result<(Vec<String>, ProviderTokens), OidcError> {
        let meta = self.metadata(provider, false, now).await?;
        let client = CoreClient::from_provider_metadata(
            (*meta).clone(),
            ClientId::new(provider.settings.client_id.clone()),
            Some(provider.secret.clone()),
        )
        .set_redirect_uri(provider.redirect.clone());
        let http = |req| call(self.http.clone(), req);
        let mut tokens = tokens.clone();
        if tokens.expires_ms.is_some_and(|e| now.millis() >= e) {
            let refresh = tokens.refresh.clone().ok_or_else(|| {
                OidcError::UserInfo("the access token expired and there is no refresh token".into())
            })?;
            let response = client
                .exchange_refresh_token(&openidconnect::RefreshToken::new(refresh))
                .map_err(|e| OidcError::Exchange(e.to_string()))?
                .request_async(&http)
                .await
                .map_err(|e| OidcError::Exchange(describe(&e)))?;
            tokens.access = response.access_token().secret().clone();
            if let Some(r) = response.refresh_token() {
                tokens.refresh = Some(r.secret().clone());
            }
            tokens.expires_ms = response
                .expires_in()
                .map(|d| now.millis() + d.as_millis() as i64);
        }
        let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> = client
            .user_info(
                AccessToken::new(tokens.access.clone()),
                Some(SubjectIdentifier::new(tokens.subject.clone())),
            )
            .map_err(|e| OidcError::UserInfo(e.to_string()))?
            .request_async(&http)
            .await
            .map_err(|e| OidcError::UserInfo(describe(&e)))?;
        let groups = info
            .additional_claims()
            .strings(&provider.settings.groups_claim)
            .unwrap_or_default();
        Ok((groups, tokens))
    }

    /// The URL to send a browser to after signing out here, if the provider publishes one.
    pub async fn end_session_url(&self, provider: &Provider, now: Timestamp) -> Option<String> {
        let meta = self.metadata(provider, false, now).await.ok()?;
        meta.additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| {
                let mut url = u.url().clone();
                url.query_pairs_mut()
                    .append_pair("client_id", &provider.settings.client_id);
                url.to_string()
            })
    }

    /// Verifies a Back-Channel Logout token (OpenID Connect Back-Channel Logout 1.0, 2.6).
    pub async fn verify_logout_token(
        &self,
        provider: &Provider,
        token: &str,
        now: Timestamp,
    ) -> Result<Logout, OidcError> {
        let meta = self.metadata(provider, false, now).await?;
        match verify_logout(provider, &meta, token, now) {
            Err(LogoutFailure::NoKey) => {
                let fresh = self.metadata(provider, true, now).await?;
                verify_logout(provider, &fresh, token, now)
            }
            other => other,
        }
        .map_err(|e| OidcError::LogoutToken(e.to_string()))
    }

    async fn metadata(
        &self,
        provider: &Provider,
        refresh: bool,
        now: Timestamp,
    ) -> Result<Arc<ProviderMetadataWithLogout>, OidcError> {
        let fresh_enough = |at: &Timestamp| !refresh || now.millis() - at.millis() < MIN_REFRESH_MS;
        if let Some((meta, at)) = provider.discovered.read().await.as_ref()
            && fresh_enough(at)
        {
            return Ok(meta.clone());
        }
        let mut slot = provider.discovered.write().await;
        if let Some((meta, at)) = slot.as_ref()
            && fresh_enough(at)
        {
            return Ok(meta.clone());
        }
        let issuer = IssuerUrl::new(provider.settings.issuer.clone())
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        let http = |req| call(self.http.clone(), req);
        let meta = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .map_err(|e| OidcError::Unreachable(describe(&e)))?;
        let meta = Arc::new(meta);
        *slot = Some((meta.clone(), now));
        Ok(meta)
    }
}

#[derive(Debug, thiserror::Error)]
enum LogoutFailure {
    #[error("no key matches the token's key id")]
    NoKey,
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> LogoutFailure {
    LogoutFailure::Invalid(msg.into())
}

/// Checks a logout token's signature with the provider's keys, then its claims.
fn verify_logout(
    provider: &Provider,
    meta: &ProviderMetadataWithLogout,
    token: &str,
    now: Timestamp,
) -> Result<Logout, LogoutFailure> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a signed JWT"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the header is not JSON"))?;
    let alg: CoreJwsSigningAlgorithm =
        serde_json::from_value(header["alg"].clone()).map_err(|_| invalid("unknown algorithm"))?;
    if !ALLOWED_ALGS.contains(&alg) {
        return Err(invalid(format!("algorithm {alg:?} is not allowed")));
    }
    if let Some(typ) = header["typ"].as_str()
        && !typ.eq_ignore_ascii_case("logout+jwt")
        && !typ.eq_ignore_ascii_case("JWT")
    {
        return Err(invalid(format!("type {typ:?} is not a logout token")));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| invalid("the signature is not base64url"))?;
    let kid = header["kid"].as_str();
    let keys: Vec<&CoreJsonWebKey> = meta
        .jwks()
        .keys()
        .iter()
        .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
        .collect();
    if keys.is_empty() {
        return Err(LogoutFailure::NoKey);
    }
    let message = format!("{h}.{p}");
    if !keys.iter().any(|k| {
        k.verify_signature(&alg, message.as_bytes(), &signature)
            .is_ok()
    }) {
        return Err(invalid("the signature does not verify"));
    }
    let claims: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the payload is not a JSON object"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(meta.issuer().as_str()) {
        return Err(invalid("wrong issuer"));
    }
    let client_id = provider.settings.client_id.as_str();
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid("wrong audience"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("no iat"))?;
    if iat * 1000 - now.millis() > MAX_SKEW_MS {
        return Err(invalid("issued in the future"));
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp * 1000 <= now.millis()
    {
        return Err(invalid("expired"));
    }
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|e| e.contains_key(LOGOUT_EVENT));
    if !has_event {
        return Err(invalid("no back-channel logout event"));
    }
    // A nonce would make it look like an ID token; the spec forbids one.
    if claims.contains_key("nonce") {
        return Err(invalid("a logout token must not carry a nonce"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no jti"))?
        .to_owned();
    let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
    let sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
    if subject.is_none() && sid.is_none() {
        return Err(invalid("neither sub nor sid"));
    }
    Ok(Logout {
        issuer: meta.issuer().as_str().to_owned(),
        subject,
        sid,
        jti,
    })
}

/// Sends one request for the `openidconnect` crate through reqwest.
async fn call(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    builder
        .body(body.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

/// An error and its causes on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Which provider-reported methods count as multi-factor (RFC 8176).
pub fn amr_proves_mfa(amr: &[String]) -> bool {
    let set: HashSet<&str> = amr.iter().map(String::as_str).collect();
    set.contains("mfa")
}
