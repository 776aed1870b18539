//! Small server-rendered pages (maud escapes everything it prints) and the content
//! negotiation that lets the same routes answer JSON.

use actix_web::http::StatusCode;
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

/// Links a signed-in person is shown: only to pages their grants reach.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    /// (label, path), in order.
    pub links: Vec<(String, String)>,
}

/// The shell every page shares: the stylesheet, the header with `nav`, the title.
fn shell(title: &str, nav: Option<&Nav>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · auditgate" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/console" { "auditgate" }
                    @if let Some(nav) = nav {
                        nav aria-label="Main" {
                            ul id="nav" {
                                @for (label, path) in &nav.links {
                                    li { a href=(path) { (label) } }
                                }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A whole page; never cached, since every page here is about one person's account.
pub fn page(title: &str, content: Markup) -> HttpResponse {
    respond(StatusCode::OK, shell(title, None, content))
}

/// A whole page with a status of its own (a form refused, shown again to be corrected).
pub fn page_with_status(status: StatusCode, title: &str, content: Markup) -> HttpResponse {
    respond(status, shell(title, None, content))
}

/// A console page, with the links its viewer may follow.
pub fn console_page(nav: &Nav, title: &str, content: Markup) -> HttpResponse {
    respond(StatusCode::OK, shell(title, Some(nav), content))
}

fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// A problem (RFC 9457) as a page, for a browser that navigated to it: the same status, a
/// plain title, what went wrong and what to do about it.
/// `back` is the page the browser was on (a GET's own address, or a form's page from its
/// same-origin `Referer`): a step-up asks for the code right here, then returns there.
pub fn problem_page(
    status: StatusCode,
    problem: &serde_json::Value,
    retry_after: Option<&str>,
    back: Option<&str>,
) -> HttpResponse {
    let detail = problem["detail"].as_str().unwrap_or("");
    // The policy's one wording of a refusal: "missing permission P on ...".
    let missing = detail
        .strip_prefix("missing permission ")
        .and_then(|rest| rest.split_whitespace().next());
    let (title, advice): (&str, Markup) = match status.as_u16() {
        401 if problem["step_up_required"] == true => (
            "Enter a fresh code",
            html! {
                p id="step-up" {
                    "This change needs a code from your authenticator app, entered in the last few minutes. "
                    @if back.is_some() { "Enter one here; you will return to the page to do it again." }
                }
                form class="stack" method="post" action="/auth/2fa/verify" id="step-up-form" {
                    @if let Some(back) = back { input type="hidden" name="next" value=(back); }
                    label { "Code " input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required; }
                    button type="submit" { "Confirm" }
                }
                p { a href=(recovery_link(back)) { "Use a recovery code instead" } }
            },
        ),
        401 => match problem["next"]
            .as_str()
            .filter(|n| n.starts_with("/auth/2fa/"))
        {
            // A step-up, or 2-step verification still to do: one click to the code prompt.
            Some(next) => (
                "Enter a fresh code",
                html! { p id="step-up" { "This needs a code from your authenticator app. " a href=(next) { "Enter a code" } ", then try again." } },
            ),
            None => (
                "Please sign in",
                html! { p { "This page needs you to be signed in. " a href="/auth/login" { "Sign in" } } },
            ),
        },
        403 => (
            "Not allowed",
            html! {
                @if let Some(p) = missing {
                    p id="missing-permission" { "You need the permission " code { (p) } " for this. Ask an administrator for a role that carries it, or " a href="/console" { "request access" } "." }
                } @else {
                    p { "Your roles do not allow this. " a href="/console" { "Back to the console" } }
                }
            },
        ),
        404 => (
            "Not found",
            html! { p { a href="/console" { "Back to the console" } } },
        ),
        429 => (
            "Too many attempts",
            html! {
                p id="retry-after" {
                    @match retry_after {
                        Some(secs) => { "Please wait " (secs) " seconds, then try again." }
                        None => { "Please wait a moment, then try again." }
                    }
                }
            },
        ),
        s if s >= 500 => (
            "The service cannot answer now",
            html! { p { "Nothing was changed. Please try again in a moment." } },
        ),
        _ => (
            "That did not work",
            html! { p { "Check what you entered and try again." } },
        ),
    };
    let markup = shell(
        title,
        None,
        html! {
            div class="problem" role="alert" {
                p { strong { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } }
                p id="problem-detail" { (detail) }
            }
            (advice)
        },
    );
    respond(status, markup)
}

/// The full verification prompt (recovery codes too), returning to `back`.
fn recovery_link(back: Option<&str>) -> String {
    match back.and_then(|b| serde_urlencoded::to_string([("next", b)]).ok()) {
        Some(q) => format!("/auth/2fa/verify?{q}"),
        None => "/auth/2fa/verify".into(),
    }
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
        _ => "/console".to_owned(),
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
            assert_eq!(local_path(Some(bad)), "/console", "{bad:?}");
        }
        assert_eq!(local_path(None), "/console");
    }
}
