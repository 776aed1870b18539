//! Server-side sessions. The cookie carries 256 random bits; the database keeps only their
//! SHA-256, so a copy of the database opens no session. Time is passed in.

use std::fmt;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::AuthSettings;
use crate::domain::Timestamp;
use crate::ledger::entry::AuthMethod;
use crate::store::SessionRecord;

/// A session's cookie value: redacted in Debug.
#[derive(Clone)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// 256 fresh random bits.
    pub fn generate() -> Self {
        Self(random_text())
    }

    /// The value a browser sent.
    pub fn from_cookie(value: &str) -> Self {
        Self(value.to_owned())
    }

    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps.
    pub fn hash_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// 256 random bits as URL-safe text.
pub fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How long sessions live and how recent a step-up must be, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// Idle timeout.
    pub idle_ms: i64,
    /// Absolute lifetime.
    pub max_ms: i64,
    /// How long a 2-step verification counts for sensitive actions.
    pub step_up_ms: i64,
    /// Whether cookies get `Secure` and the `__Host-` prefix.
    pub tls: bool,
}

impl SessionRules {
    /// The rules the configuration sets.
    pub fn from_settings(auth: &AuthSettings, tls: bool) -> Self {
        Self {
            idle_ms: auth.session_idle_minutes * 60_000,
            max_ms: auth.session_max_hours * 3_600_000,
            step_up_ms: auth.step_up_minutes * 60_000,
            tls,
        }
    }

    /// The session cookie's name.
    pub fn session_cookie(&self) -> &'static str {
        if self.tls {
            "__Host-auditgate_session"
        } else {
            "auditgate_session"
        }
    }

    /// The short-lived sign-in cookie's name (state, nonce and PKCE verifier, sealed).
    pub fn login_cookie(&self) -> &'static str {
        if self.tls {
            "__Host-auditgate_login"
        } else {
            "auditgate_login"
        }
    }

    /// A cookie as every auditgate cookie is set: HttpOnly, SameSite=Lax, Path=/, and Secure
    /// over TLS (which the `__Host-` prefix requires).
    pub fn cookie(&self, name: &'static str, value: String, max_age_ms: i64) -> Cookie<'static> {
        let mut c = Cookie::new(name, value);
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_path("/");
        c.set_secure(self.tls);
        c.set_max_age(CookieDuration::milliseconds(max_age_ms));
        c
    }

    /// A cookie that clears `name` in the browser.
    pub fn removal(&self, name: &'static str) -> Cookie<'static> {
        let mut c = self.cookie(name, String::new(), 0);
        c.make_removal();
        c
    }

    /// Why `session` cannot be used at `now`, if it cannot.
    pub fn check(&self, session: &SessionRecord, now: Timestamp) -> Result<(), &'static str> {
        if session.ended_at.is_some() {
            return Err("this session has ended; sign in again");
        }
        if now >= session.expires_at {
            return Err("this session has reached its maximum lifetime; sign in again");
        }
        if now.millis() - session.last_seen_at.millis() >= self.idle_ms {
            return Err("this session was idle too long; sign in again");
        }
        Ok(())
    }

    /// Whether the session passed 2-step verification recently enough for a sensitive action.
    pub fn stepped_up(&self, session: &SessionRecord, now: Timestamp) -> bool {
        session
            .second_factor_at
            .is_some_and(|at| now.millis() - at.millis() < self.step_up_ms)
    }
}

/// What the identity provider said about the sign-in, kept on the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderContext {
    /// The provider's name in configuration.
    pub provider: String,
    /// The provider's session id, for back-channel logout.
    pub sid: Option<String>,
    /// Authentication context class.
    pub acr: Option<String>,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// When the provider authenticated the person.
    pub auth_time: Option<Timestamp>,
}

/// A new session for `user_id`, and the secret for its cookie.
pub fn new_session(
    user_id: &str,
    method: AuthMethod,
    provider: Option<&ProviderContext>,
    second_factor_at: Option<Timestamp>,
    now: Timestamp,
    rules: &SessionRules,
    client: (Option<String>, Option<String>),
) -> (SessionSecret, SessionRecord) {
    let secret = SessionSecret::generate();
    let record = SessionRecord {
        id_hash: secret.hash_hex(),
        public_id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
        user_id: user_id.to_owned(),
        method: method.as_str().to_owned(),
        provider: provider.map(|p| p.provider.clone()),
        idp_sid: provider.and_then(|p| p.sid.clone()),
        acr: provider.and_then(|p| p.acr.clone()),
        amr: provider.map(|p| p.amr.clone()).unwrap_or_default(),
        auth_time: provider.and_then(|p| p.auth_time),
        csrf: random_text(),
        second_factor_at,
        created_at: now,
        last_seen_at: now,
        expires_at: Timestamp::from_millis(now.millis() + rules.max_ms),
        ended_at: None,
        client_ip: client.0,
        user_agent: client.1,
    };
    (secret, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SessionRules {
        SessionRules {
            idle_ms: 30 * 60_000,
            max_ms: 12 * 3_600_000,
            step_up_ms: 10 * 60_000,
            tls: true,
        }
    }

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + minutes * 60_000)
    }

    #[test]
    fn idle_and_absolute_timeouts_end_a_session() {
        let r = rules();
        let (_, mut s) = new_session("u", AuthMethod::Oidc, None, None, at(0), &r, (None, None));
        assert!(r.check(&s, at(29)).is_ok());
        assert!(r.check(&s, at(30)).unwrap_err().contains("idle"));
        // Kept busy, it still ends after 12 hours.
        s.last_seen_at = at(12 * 60 - 1);
        assert!(r.check(&s, at(12 * 60 - 1)).is_ok());
        assert!(r.check(&s, at(12 * 60)).unwrap_err().contains("maximum"));
        s.ended_at = Some(at(1));
        assert!(r.check(&s, at(2)).unwrap_err().contains("ended"));
    }

    #[test]
    fn step_up_lasts_ten_minutes() {
        let r = rules();
        let (_, s) = new_session(
            "u",
            AuthMethod::Oidc,
            None,
            Some(at(0)),
            at(0),
            &r,
            (None, None),
        );
        assert!(r.stepped_up(&s, at(9)));
        assert!(!r.stepped_up(&s, at(10)));
        let (_, partial) = new_session("u", AuthMethod::Oidc, None, None, at(0), &r, (None, None));
        assert!(!r.stepped_up(&partial, at(0)));
    }

    #[test]
    fn cookies_are_host_only_and_secure_over_tls() {
        let r = rules();
        let c = r.cookie(r.session_cookie(), "v".into(), 1000);
        let text = c.to_string();
        assert!(text.starts_with("__Host-auditgate_session=v"), "{text}");
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"));
        let plain = SessionRules { tls: false, ..r };
        let text = plain
            .cookie(plain.session_cookie(), "v".into(), 1000)
            .to_string();
        assert!(text.starts_with("auditgate_session=v") && !text.contains("Secure"));
    }

    #[test]
    fn secrets_hash_and_hide() {
        let s = SessionSecret::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(s.expose()).unwrap().len(), 32);
        assert_eq!(s.hash_hex().len(), 64);
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}
