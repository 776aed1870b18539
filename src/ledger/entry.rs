//! Audit entries and their canonical bytes: the exact input of every hash in the log.
//!
//! Layout (all integers big-endian; `str` is a u32 length then UTF-8; `opt` is 0x00, or 0x01
//! then the value), as `docs/audit-log-format.md` specifies:
//!
//! ```text
//! u8 version (1) | u64 seq | i64 time_ms | [32] prev | [16] salt | opt str project |
//! u64 project_seq | str actor_kind | str actor_id | str auth_method | u8 second_factor |
//! str action | str outcome | u64 records | opt str client_ip | opt str user_agent |
//! opt str request_id | u32 n, n x [32] subjects | str details
//! ```

use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The only entry version this code reads and writes.
pub const ENTRY_VERSION: u8 = 1;
/// Label of the chain-link hash, distinct from RFC 6962's 0x00 and 0x01 prefixes.
pub const CHAIN_LABEL: &[u8] = b"auditgate/v1/chain\n";
/// Longest text field other than `details`.
pub const MAX_FIELD: usize = 4096;
/// Longest `details` JSON.
pub const MAX_DETAILS: usize = 1 << 20;
/// How much of an over-long `details` object its summary keeps.
pub const DETAILS_PREFIX: usize = 64 << 10;

/// `text` if it fits in `max` bytes; otherwise its longest prefix (on a character boundary)
/// followed by `…[cut: N bytes, sha256 H]`, N its length and H its SHA-256 in hex, all within
/// `max`. Text a client controls reaches the log only through this, so no entry can exceed
/// what the verifier accepts.
pub fn bound_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let marker = format!(
        "\u{2026}[cut: {} bytes, sha256 {}]",
        text.len(),
        hex::encode(Sha256::digest(text.as_bytes()))
    );
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + marker.len());
    out.push_str(&text[..end]);
    out.push_str(&marker);
    out
}

/// `details` if it fits in [`MAX_DETAILS`]; otherwise a JSON object summarising it:
/// `{"cut":{"bytes":N,"sha256":H,"prefix":P}}` with P its first [`DETAILS_PREFIX`] bytes.
pub fn bound_details(details: String) -> String {
    if details.len() <= MAX_DETAILS {
        return details;
    }
    let mut end = DETAILS_PREFIX;
    while !details.is_char_boundary(end) {
        end -= 1;
    }
    serde_json::json!({"cut": {
        "bytes": details.len(),
        "sha256": hex::encode(Sha256::digest(details.as_bytes())),
        "prefix": &details[..end],
    }})
    .to_string()
}

macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            // Variants without a comment of their own are documented by their wire name
            // (docs/audit-log-format.md says what each means).
            $($(#[$vm])* #[doc = concat!("`", $s, "`")] $v),*
        }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// The stable name written into entries.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
            /// The value with this stable name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }
    };
}

names!(
    /// What kind of principal acted.
    ActorKind {
        /// The service itself (sweeps, key rotation, start-up).
        System = "system",
        /// A person signed in through SSO or the break-glass account.
        User = "user",
        /// A project's service account with an API token.
        ServiceAccount = "service_account",
        /// A client holding a project's public ingestion token.
        ProjectToken = "project_token",
        /// Someone who presented no valid credentials.
        Anonymous = "anonymous",
    }
);

names!(
    /// How the actor authenticated.
    AuthMethod {
        /// Not authenticated.
        None = "none",
        /// Internal to the service.
        Internal = "internal",
        /// A service-account API token.
        ApiToken = "api_token",
        /// A project's public ingestion token.
        ProjectToken = "project_token",
        /// An OpenID Connect session.
        Oidc = "oidc",
        /// A personal API token.
        PersonalToken = "personal_token",
        /// The break-glass password.
        Password = "password",
        /// The command line on the server.
        Cli = "cli",
    }
);

names!(
    /// What happened. Denials use the attempted action with outcome `denied`.
    Action {
        LogInit = "log.init",
        EventsIngest = "events.ingest",
        ProfilesUpdate = "profiles.update",
        EventsQuery = "events.query",
        EventsCount = "events.count",
        EventsExport = "events.export",
        ProfilesRead = "profiles.read",
        SubjectsExport = "subjects.export",
        SubjectsErase = "subjects.erase",
        RetentionSweep = "retention.sweep",
        ProjectCreate = "project.create",
        ProjectUpdate = "project.update",
        ProjectDelete = "project.delete",
        TokenCreate = "token.create",
        TokenRevoke = "token.revoke",
        AuthRejected = "auth.rejected",
        SignIn = "auth.signin",
        SignInFailed = "auth.signin_failed",
        SecondFactor = "auth.second_factor",
        SecondFactorFailed = "auth.second_factor_failed",
        Lockout = "auth.lockout",
        SignOut = "auth.signout",
        BreakGlass = "auth.break_glass",
        SecondFactorEnroll = "auth.second_factor_enroll",
        SecondFactorReset = "auth.second_factor_reset",
        RecoveryCodes = "auth.recovery_codes",
        SessionEnd = "auth.session_end",
        ProviderLogout = "auth.provider_logout",
        RoleChange = "access.role_change",
        GrantChange = "access.grant_change",
        PropertiesClassify = "access.properties_classify",
        AccessRequest = "access.request",
        UserChange = "access.user_change",
        AuditRead = "audit.read",
        AuditExport = "audit.export",
        AuditSubjectReport = "audit.subject_report",
        KeyRotate = "keys.rotate",
        SubjectsRequest = "subjects.request",
        SubjectsAnonymize = "subjects.anonymize",
        SubjectsOptOut = "subjects.opt_out",
        SubjectsConsent = "subjects.consent",
        ProjectRestore = "project.restore",
        ProjectPurge = "project.purge",
    }
);

names!(
    /// How it ended.
    Outcome {
        /// Allowed and done.
        Allowed = "allowed",
        /// Refused by policy or authentication.
        Denied = "denied",
        /// Allowed but failed.
        Failed = "failed",
    }
);

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The kind of principal.
    pub kind: ActorKind,
    /// Its id (a user id, service-account name, project id, or empty).
    pub id: String,
    /// How it authenticated.
    pub method: AuthMethod,
    /// Whether 2-step verification was passed.
    pub second_factor: bool,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch; never less than the previous entry's.
    pub time_ms: i64,
    /// The chain link of entry `seq - 1`; zeros for entry 0.
    pub prev: Hash,
    /// Random bytes so that hashes reveal nothing about guessable entries.
    pub salt: [u8; 16],
    /// The project the act concerned, if any.
    pub project: Option<String>,
    /// Position among this project's entries, from 0 (0 when there is no project).
    pub project_seq: u64,
    /// Who acted.
    pub actor: Actor,
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// How many records were read, written or deleted.
    pub records: u64,
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The request id, as in the response's `x-request-id`.
    pub request_id: Option<String>,
    /// Keyed pseudonyms of the end users concerned, never their ids.
    pub subjects: Vec<Hash>,
    /// A JSON object: filters, reasons, values before and after.
    pub details: String,
}

/// Why bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entry bytes: {0}")]
pub struct DecodeError(pub String);

impl Entry {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(256 + self.details.len());
        w.push(ENTRY_VERSION);
        w.extend_from_slice(&self.seq.to_be_bytes());
        w.extend_from_slice(&self.time_ms.to_be_bytes());
        w.extend_from_slice(&self.prev);
        w.extend_from_slice(&self.salt);
        put_opt(&mut w, self.project.as_deref());
        w.extend_from_slice(&self.project_seq.to_be_bytes());
        put_str(&mut w, self.actor.kind.as_str());
        put_str(&mut w, &self.actor.id);
        put_str(&mut w, self.actor.method.as_str());
        w.push(u8::from(self.actor.second_factor));
        put_str(&mut w, self.action.as_str());
        put_str(&mut w, self.outcome.as_str());
        w.extend_from_slice(&self.records.to_be_bytes());
        put_opt(&mut w, self.client_ip.as_deref());
        put_opt(&mut w, self.user_agent.as_deref());
        put_opt(&mut w, self.request_id.as_deref());
        w.extend_from_slice(&(self.subjects.len() as u32).to_be_bytes());
        for s in &self.subjects {
            w.extend_from_slice(s);
        }
        put_str(&mut w, &self.details);
        w
    }

    /// Parses canonical bytes, refusing anything that would not encode back to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let v = EntryView::parse(bytes)?;
        Ok(Self {
            seq: v.seq,
            time_ms: v.time_ms,
            prev: v.prev,
            salt: v.salt,
            project: v.project.map(str::to_owned),
            project_seq: v.project_seq,
            actor: Actor {
                kind: v.actor_kind,
                id: v.actor_id.to_owned(),
                method: v.method,
                second_factor: v.second_factor,
            },
            action: v.action,
            outcome: v.outcome,
            records: v.records,
            client_ip: v.client_ip.map(str::to_owned),
            user_agent: v.user_agent.map(str::to_owned),
            request_id: v.request_id.map(str::to_owned),
            subjects: v
                .subjects
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32-byte chunks"))
                .collect(),
            details: v.details.to_owned(),
        })
    }
}

/// An entry read in place from its canonical bytes, with every check of [`Entry::decode`]
/// but no copies: what a verifier streaming millions of entries needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// Position in the log.
    pub seq: u64,
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    /// The previous entry's chain link.
    pub prev: Hash,
    /// The salt.
    pub salt: [u8; 16],
    /// The project, if any.
    pub project: Option<&'a str>,
    /// Position among the project's entries.
    pub project_seq: u64,
    /// The actor's kind.
    pub actor_kind: ActorKind,
    /// The actor's id.
    pub actor_id: &'a str,
    /// How the actor authenticated.
    pub method: AuthMethod,
    /// Whether 2-step verification was passed.
    pub second_factor: bool,
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// Records concerned.
    pub records: u64,
    /// The client's address.
    pub client_ip: Option<&'a str>,
    /// The User-Agent.
    pub user_agent: Option<&'a str>,
    /// The request id.
    pub request_id: Option<&'a str>,
    /// The pseudonyms, 32 bytes each, back to back.
    pub subjects: &'a [u8],
    /// The details JSON.
    pub details: &'a str,
}

impl<'a> EntryView<'a> {
    /// Reads and checks canonical bytes in place.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != ENTRY_VERSION {
            return Err(DecodeError(format!("unknown version {version}")));
        }
        let seq = r.u64()?;
        let time_ms = r.u64()? as i64;
        let prev = r.array::<32>()?;
        let salt = r.array::<16>()?;
        let project = r.opt(MAX_FIELD)?;
        let project_seq = r.u64()?;
        let actor_kind = r.name("actor kind", ActorKind::parse)?;
        let actor_id = r.str(MAX_FIELD)?;
        let method = r.name("auth method", AuthMethod::parse)?;
        let second_factor = match r.u8()? {
            0 => false,
            1 => true,
            b => {
                return Err(DecodeError(format!(
                    "second_factor must be 0 or 1, not {b}"
                )));
            }
        };
        let action = r.name("action", Action::parse)?;
        let outcome = r.name("outcome", Outcome::parse)?;
        let records = r.u64()?;
        let client_ip = r.opt(MAX_FIELD)?;
        let user_agent = r.opt(MAX_FIELD)?;
        let request_id = r.opt(MAX_FIELD)?;
        let n = r.u32()? as usize;
        if n > (bytes.len() - r.pos) / 32 {
            return Err(DecodeError("more subjects than bytes".into()));
        }
        let subjects = r.take(n * 32)?;
        let details = r.str(MAX_DETAILS)?;
        if r.pos != bytes.len() {
            return Err(DecodeError(format!(
                "{} bytes after the last field",
                bytes.len() - r.pos
            )));
        }
        if project.is_none() && project_seq != 0 {
            return Err(DecodeError("project_seq without a project".into()));
        }
        Ok(Self {
            seq,
            time_ms,
            prev,
            salt,
            project,
            project_seq,
            actor_kind,
            actor_id,
            method,
            second_factor,
            action,
            outcome,
            records,
            client_ip,
            user_agent,
            request_id,
            subjects,
            details,
        })
    }
}

/// `SHA-256("auditgate/v1/chain\n" || bytes)`: the link the next entry stores as `prev`.
pub fn chain_link(entry_bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(CHAIN_LABEL);
    h.update(entry_bytes);
    h.finalize().into()
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u32).to_be_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_opt(w: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => w.push(0),
        Some(s) => {
            w.push(1);
            put_str(w, s);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| DecodeError(format!("truncated at byte {}", self.pos)))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn str(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError(format!("a field of {n} bytes exceeds {max}")));
        }
        let at = self.pos;
        std::str::from_utf8(self.take(n)?)
            .map_err(|_| DecodeError(format!("invalid UTF-8 at byte {at}")))
    }

    fn opt(&mut self, max: usize) -> Result<Option<&'a str>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str(max).map(Some),
            b => Err(DecodeError(format!(
                "an optional field's tag must be 0 or 1, not {b}"
            ))),
        }
    }

    fn name<T>(&mut self, what: &str, parse: fn(&str) -> Option<T>) -> Result<T, DecodeError> {
        let s = self.str(MAX_FIELD)?;
        parse(s).ok_or_else(|| DecodeError(format!("unknown {what} {s:?}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(seq: u64) -> Entry {
        Entry {
            seq,
            time_ms: 1_700_000_000_000 + seq as i64,
            prev: [seq as u8; 32],
            salt: [9; 16],
            project: Some("shop".into()),
            project_seq: seq,
            actor: Actor {
                kind: ActorKind::ServiceAccount,
                id: "shop-service".into(),
                method: AuthMethod::ApiToken,
                second_factor: false,
            },
            action: Action::EventsQuery,
            outcome: Outcome::Allowed,
            records: 3,
            client_ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: Some("r-1".into()),
            subjects: vec![[1; 32]],
            details: r#"{"limit":100}"#.into(),
        }
    }

    #[test]
    fn entries_round_trip_exactly() {
        let e = sample(5);
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        assert_eq!(Entry::decode(&bytes).unwrap().encode(), bytes);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let bytes = sample(1).encode();
        for n in 0..bytes.len() {
            assert!(
                Entry::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(Entry::decode(&long).is_err());
    }

    #[test]
    fn unknown_names_and_tags_are_refused() {
        let e = sample(1);
        let bytes = e.encode();
        let pos = bytes
            .windows(12)
            .position(|w| w == b"events.query")
            .unwrap();
        let mut bad = bytes.clone();
        bad[pos] = b'E';
        assert!(
            Entry::decode(&bad)
                .unwrap_err()
                .0
                .contains("unknown action")
        );
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert!(Entry::decode(&bad).is_err());
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
    }
}
