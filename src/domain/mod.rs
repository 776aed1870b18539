//! Identifiers and values shared by every domain, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

mod grants;
mod origin;
mod people;
mod permission;
pub mod profile;
mod roles;
pub mod subject_request;

pub use grants::{AccessRequest, Effect, GrantRecord, GrantStatus, RequestStatus, SubjectKind};
pub use origin::{AllowedOrigins, MAX_ALLOWED_ORIGINS, Origin};
pub use people::TotpState;
pub use permission::{Permission, Requirement, perm};
pub use roles::{BREAK_GLASS, BUILTIN, CustomRole, Role, RoleBook, SERVICE_ACCOUNT};

/// The candidate a mistyped `word` most likely meant, if one is close enough to suggest
/// ("analist" → "analyst"): at most a third of its letters (and at least one) away.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)` for a mistyped `word`, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

/// Why a value could not be parsed into one of the domain types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// A project's id: a lowercase slug used in URLs and as the store key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectId(String);

impl ProjectId {
    /// Accepts 1 to 64 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError(format!(
                "invalid project id {s:?}: use 1 to 64 characters of a-z, 0-9 and '-', not starting with '-'"
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProjectId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<ProjectId> for String {
    fn from(p: ProjectId) -> String {
        p.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest distinct_id, event name or property key we store, as Mixpanel allows.
pub const MAX_NAME_LEN: usize = 255;

/// An end user's identifier within a project, as the analytics SDKs send it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DistinctId(String);

impl DistinctId {
    /// Accepts 1 to 255 bytes with no control characters.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.trim().is_empty() {
            return Err(ParseError("distinct_id must not be empty".into()));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(ParseError(format!(
                "distinct_id is longer than {MAX_NAME_LEN} bytes"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(ParseError(
                "distinct_id must not contain control characters".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// An end-user identifier is personal data: keep it out of logs by default.
impl fmt::Debug for DistinctId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DistinctId(..)")
    }
}

impl TryFrom<String> for DistinctId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<DistinctId> for String {
    fn from(d: DistinctId) -> String {
        d.0
    }
}

/// Longest free text a client may send (a reason, a note, a name, a description), in bytes.
pub const MAX_TEXT: usize = 1000;

/// Free text a person or client wrote: at most [`MAX_TEXT`] bytes, so that nobody can make
/// an audit entry, a stored record or a page as large as they like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeText(String);

impl FreeText {
    /// Accepts at most [`MAX_TEXT`] bytes, none of them NUL; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, ParseError> {
        if s.len() > MAX_TEXT {
            return Err(ParseError(format!(
                "{field} is {} bytes long; at most {MAX_TEXT} are accepted",
                s.len()
            )));
        }
        // PostgreSQL refuses a NUL in text: it would fail the write, not the request.
        if s.contains('\0') {
            return Err(ParseError(format!(
                "{field} must not contain a NUL character"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// As [`FreeText::parse`], and not blank.
    pub fn required(field: &str, s: &str) -> Result<Self, ParseError> {
        if s.trim().is_empty() {
            return Err(ParseError(format!("{field} must not be empty")));
        }
        Self::parse(field, s)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The proxies allowed to name the client in `X-Forwarded-For`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(std::net::IpAddr, u8)>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(items: &[String]) -> Result<Self, ParseError> {
        let mut nets = Vec::new();
        for item in items {
            let (addr, bits) = item.split_once('/').unwrap_or((item, ""));
            let addr: std::net::IpAddr = addr
                .parse()
                .map_err(|_| ParseError(format!("{item:?} is not an address or CIDR range")))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                max
            } else {
                bits.parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| ParseError(format!("{item:?} has a bad prefix length")))?
            };
            nets.push((addr, bits));
        }
        Ok(Self(nets))
    }

    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (V4(n), V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            (V6(n), V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            _ => false,
        })
    }

    /// The client: the peer, unless the peer is a trusted proxy, in which case the rightmost
    /// address in `X-Forwarded-For` that is not itself a trusted proxy (entries to its left
    /// were written by the client and prove nothing).
    pub fn client(&self, peer: std::net::IpAddr, forwarded_for: Option<&str>) -> std::net::IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or("").rsplit(',') {
            match hop.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0)
}

/// A point in time as milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Wraps milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2024-05-01T12:00:00Z`) or an integer number of epoch milliseconds.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if let Ok(ms) = s.parse::<i64>() {
            return if ms >= 0 {
                Ok(Self(ms))
            } else {
                Err(ParseError(format!("time {s} is before 1970")))
            };
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| {
                ParseError(format!(
                    "time {s:?} is neither RFC 3339 nor epoch milliseconds"
                ))
            })
    }

    /// RFC 3339 text in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_what_is_close() {
        let roles = ["owner", "admin", "analyst", "consumer", "auditor"];
        assert_eq!(closest("analist", roles), Some("analyst"));
        assert_eq!(closest("Owner", roles), Some("owner"));
        assert_eq!(closest("emperor", roles), None);
        assert_eq!(closest("", roles), None);
        assert_eq!(
            did_you_mean("auditer", roles),
            " (did you mean \"auditor\"?)"
        );
        assert_eq!(did_you_mean("xyz", roles), "");
    }

    #[test]
    fn project_ids_are_slugs() {
        assert!(ProjectId::parse("shop").is_ok());
        assert!(ProjectId::parse("shop-2").is_ok());
        for bad in ["", "Shop", "-shop", "a b", "shop/x", &"a".repeat(65)] {
            assert!(ProjectId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn distinct_ids_reject_empty_long_and_control() {
        assert!(DistinctId::parse("user-1").is_ok());
        assert!(DistinctId::parse(" ").is_err());
        assert!(DistinctId::parse("a\nb").is_err());
        assert!(DistinctId::parse(&"x".repeat(256)).is_err());
        assert_eq!(
            format!("{:?}", DistinctId::parse("alice").unwrap()),
            "DistinctId(..)"
        );
    }

    #[test]
    fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.1".into()]).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let xff = Some("1.2.3.4, 203.0.113.9, 10.1.1.1");
        assert_eq!(
            t.client(ip("198.51.100.7"), xff),
            ip("198.51.100.7"),
            "untrusted peer"
        );
        assert_eq!(
            t.client(ip("10.9.9.9"), xff),
            ip("203.0.113.9"),
            "rightmost untrusted hop"
        );
        assert_eq!(t.client(ip("192.0.2.1"), None), ip("192.0.2.1"));
        assert_eq!(t.client(ip("10.9.9.9"), Some("garbage")), ip("10.9.9.9"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy".into()]).is_err());
        assert!(
            TrustedProxies::parse(&["fd00::/8".into()])
                .unwrap()
                .trusts(ip("fd12::1"))
        );
    }

    #[test]
    fn free_text_is_bounded() {
        assert!(FreeText::parse("reason", &"x".repeat(MAX_TEXT)).is_ok());
        let err = FreeText::parse("reason", &"x".repeat(MAX_TEXT + 1)).unwrap_err();
        assert!(err.0.contains("reason is 1001 bytes"));
        assert!(FreeText::required("note", "  ").is_err());
        assert_eq!(FreeText::parse("note", "").unwrap().as_str(), "");
        let err = FreeText::parse("note", "a\0b").unwrap_err();
        assert!(err.0.contains("note must not contain a NUL"), "{}", err.0);
        assert!(FreeText::parse("note", "line\nand tab\t").is_ok());
    }

    #[test]
    fn timestamps_parse_both_forms() {
        assert_eq!(
            Timestamp::parse("1700000000000").unwrap().millis(),
            1_700_000_000_000
        );
        assert_eq!(
            Timestamp::parse("2023-11-14T22:13:20Z").unwrap().millis(),
            1_700_000_000_000
        );
        assert_eq!(
            Timestamp::from_millis(1_700_000_000_000).to_rfc3339(),
            "2023-11-14T22:13:20.000Z"
        );
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("-5").is_err());
    }
}
