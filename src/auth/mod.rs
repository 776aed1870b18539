//! Authentication: service-account API tokens, SSO sign-in through OpenID Connect, the
//! break-glass password, 2-step verification, sessions and personal tokens.

pub mod oidc;
pub mod password;
pub mod recovery;
pub mod seal;
pub mod session;
pub mod tokens;
pub mod totp;

use crate::config::Settings;

/// What sign-in needs at run time, built once at start-up.
pub struct AuthServices {
    /// The identity providers.
    pub providers: oidc::Providers,
    /// Seals TOTP secrets and the sign-in cookie.
    pub seal: seal::SealKey,
    /// Session lifetimes and cookie security.
    pub rules: session::SessionRules,
    /// Lockout after wrong codes.
    pub totp: totp::TotpPolicy,
    /// Runs password checks off the async workers, a few at a time.
    pub passwords: password::Checker,
}

impl AuthServices {
    /// Reads the sealing key (creating it on first start) and the providers' secrets.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let auth = &settings.auth;
        Ok(Self {
            providers: oidc::Providers::from_settings(settings)?,
            seal: seal::SealKey::load_or_create(&auth.secret_key_file)?,
            rules: session::SessionRules::from_settings(auth, settings.is_tls()),
            totp: totp::TotpPolicy {
                max_failures: auth.totp_max_failures,
                lockout_ms: auth.totp_lockout_minutes * 60_000,
            },
            passwords: password::Checker::for_this_machine(),
        })
    }
}
