//! Small server-rendered pages (maud escapes everything it prints) and the content
//! negotiation that lets the same routes answer JSON.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse};
use maud::{DOCTYPE, Markup, html};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Whether the client asked for HTML (a browser) rather than JSON.
pub fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html") && !a.starts_with("application/json"))
}

/// A request body as a form (from our pages) or JSON (from scripts).
pub fn body<T: DeserializeOwned>(req: &HttpRequest, bytes: &[u8]) -> Result<T, AppError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        serde_urlencoded::from_bytes(bytes)
            .map_err(|e| AppError::Unprocessable(format!("the form is not valid: {e}")))
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                AppError::BadRequest(format!("the body is not valid JSON: {e}"))
            } else {
                AppError::Unprocessable(format!("the body does not match: {e}"))
            }
        })
    }
}

/// A whole page; never cached, since every page here is about one person's account.
pub fn page(title: &str, content: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · auditgate" }
            }
            body {
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    };
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// A 303 to a local path (after a form post), never cached.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Accepts only a local path for `return_to`, so sign-in cannot become an open redirect.
pub fn local_path(return_to: Option<&str>) -> String {
    match return_to {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.chars().any(|c| c.is_control() || c == '\\') =>
        {
            p.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

/// A form posting to `action` with a submit button.
pub fn form(action: &str, id: &str, fields: Markup, button: &str) -> Markup {
    html! {
        form method="post" action=(action) id=(id) {
            (fields)
            button type="submit" { (button) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn return_to_takes_local_paths_only() {
        assert_eq!(local_path(Some("/account?x=1")), "/account?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\nb",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/account", "{bad:?}");
        }
        assert_eq!(local_path(None), "/account");
    }
}
