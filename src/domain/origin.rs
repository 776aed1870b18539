//! Web origins, as browsers name a page in the `Origin` header, and the origins a project
//! accepts browser ingestion from.

use std::fmt;

use super::ParseError;

/// Most origins one project may list: a list this long is a wildcard by another name.
pub const MAX_ALLOWED_ORIGINS: usize = 50;

/// A web origin, `scheme://host[:port]`, in the form browsers send it: lowercase, no path, the
/// scheme's default port left out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    /// Accepts what a browser would send for a page: a scheme, a host and an optional port,
    /// nothing else (`https://shop.example`, `http://localhost:3000`, `capacitor://localhost`).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |why: &str| ParseError(format!("{s:?} is not a web origin: {why}"));
        if s.len() > 300 {
            return Err(bad("longer than 300 bytes"));
        }
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it names no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("it carries a user name or password"));
        }
        // `Url` adds "/" to http(s) URLs; anything more is a page, not an origin.
        let rest = &s[s.find("://").map_or(0, |i| i + 3)..];
        if rest.contains(['/', '?', '#']) {
            return Err(bad("write the scheme, host and port only, without a path"));
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Self(format!("{}://{host}{port}", url.scheme())))
    }

    /// The origin as browsers send it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The browser origins a project accepts events from (CORS on `/track`, `/engage`, `/groups`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// These origins only; none at all by default, so browsers are refused until an
    /// administrator lists the sites that embed the SDK.
    Listed(Vec<Origin>),
    /// Any origin: only where the project opts in with `["*"]`.
    Any,
    /// No browser origin (the default).
    #[default]
    None,
}

impl AllowedOrigins {
    /// Parses an administrator's list: origins, or `["*"]` alone for any.
    pub fn parse_list(items: &[String]) -> Result<Self, ParseError> {
        if items.iter().any(|i| i == "*") {
            return if items.len() == 1 {
                Ok(Self::Any)
            } else {
                Err(ParseError(
                    "allowed_origins: \"*\" allows every origin and cannot be listed with others"
                        .into(),
                ))
            };
        }
        if items.len() > MAX_ALLOWED_ORIGINS {
            return Err(ParseError(format!(
                "allowed_origins: at most {MAX_ALLOWED_ORIGINS} origins"
            )));
        }
        let mut list = items
            .iter()
            .map(|i| Origin::parse(i).map_err(|e| ParseError(format!("allowed_origins: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort();
        list.dedup();
        Ok(if list.is_empty() {
            Self::None
        } else {
            Self::Listed(list)
        })
    }

    /// Whether a page at `origin` may send this project's events.
    pub fn allows(&self, origin: &Origin) -> bool {
        match self {
            Self::Any => true,
            Self::Listed(list) => list.contains(origin),
            Self::None => false,
        }
    }

    /// The list as administrators write it.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Self::Any => vec!["*".into()],
            Self::Listed(list) => list.iter().map(|o| o.0.clone()).collect(),
            Self::None => Vec::new(),
        }
    }

    /// The stored form: origins separated by spaces (no origin contains one), or `*`.
    pub fn to_stored(&self) -> String {
        self.to_list().join(" ")
    }

    /// Reads the stored form; entries were checked when written, so any that no longer
    /// parse are left out rather than failing every request of the project.
    pub fn from_stored(s: &str) -> Self {
        let items: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        Self::parse_list(&items).unwrap_or_else(|_| {
            Self::parse_list(
                &items
                    .into_iter()
                    .filter(|i| Origin::parse(i).is_ok())
                    .take(MAX_ALLOWED_ORIGINS)
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_read_as_browsers_send_them() {
        let ok = |s: &str| Origin::parse(s).unwrap().to_string();
        assert_eq!(ok("https://Shop.Example"), "https://shop.example");
        assert_eq!(ok("https://shop.example:443"), "https://shop.example");
        assert_eq!(ok("http://localhost:3000"), "http://localhost:3000");
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("capacitor://localhost"), "capacitor://localhost");
        for bad in [
            "",
            "null",
            "shop.example",
            "https://shop.example/",
            "https://shop.example/app",
            "https://shop.example?x=1",
            "https://user:pw@shop.example",
            "file:///etc/passwd",
            "https://",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_project_lists_origins_or_opts_into_any() {
        let list = |items: &[&str]| {
            AllowedOrigins::parse_list(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let shop = Origin::parse("https://shop.example").unwrap();
        let evil = Origin::parse("https://evil.example").unwrap();
        let l = list(&["https://shop.example", "https://SHOP.example"]).unwrap();
        assert!(l.allows(&shop) && !l.allows(&evil));
        assert_eq!(l.to_list(), ["https://shop.example"]);
        assert_eq!(AllowedOrigins::from_stored(&l.to_stored()), l);
        let any = list(&["*"]).unwrap();
        assert!(any.allows(&evil));
        assert_eq!(AllowedOrigins::from_stored("*"), any);
        assert!(list(&["*", "https://shop.example"]).is_err());
        assert!(list(&["https://shop.example/path"]).is_err());
        assert_eq!(list(&[]).unwrap(), AllowedOrigins::None);
        assert!(!AllowedOrigins::None.allows(&shop));
        assert_eq!(AllowedOrigins::from_stored(""), AllowedOrigins::None);
        let many: Vec<String> = (0..51).map(|i| format!("https://s{i}.example")).collect();
        assert!(AllowedOrigins::parse_list(&many).is_err());
    }
}
