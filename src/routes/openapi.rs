//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::access::{Access, AccountNeed};

use super::{
    account, admin, audit, auth, classify, console, console_access, console_admin, console_privacy,
    cors, grants, health, ingest, privacy, query, requests, review, service_tokens, subjects,
};

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        // Over https:// the cookie is `__Host-auditgate_session`; state changes with it also
        // send the session's CSRF token in X-CSRF-Token.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("auditgate_session"))),
        );
    }
}

/// Each operation's security, from what its route declares in the registry: none for public
/// routes, a session or a personal token for account routes, and any credential for the rest.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        let need = |names: &[&str]| -> Vec<SecurityRequirement> {
            names
                .iter()
                .map(|n| SecurityRequirement::new(*n, Vec::<String>::new()))
                .collect()
        };
        for route in super::registry() {
            let Some(item) = openapi.paths.paths.get_mut(route.path) else {
                continue;
            };
            let op = match route.method.as_str() {
                "GET" => &mut item.get,
                "POST" => &mut item.post,
                "PUT" => &mut item.put,
                "DELETE" => &mut item.delete,
                "PATCH" => &mut item.patch,
                "OPTIONS" => &mut item.options,
                _ => continue,
            };
            let Some(op) = op else { continue };
            op.security = Some(match route.access {
                Access::Public(_) => Vec::new(),
                Access::Account(AccountNeed::Verified) => need(&["session", "bearer"]),
                Access::Account(_) => need(&["session"]),
                Access::Requires(_) => need(&["bearer", "basic", "session"]),
            });
        }
    }
}

/// What every status this service answers means, where an annotation did not say; every
/// error is `application/problem+json` (RFC 9457), one shared schema.
struct Responses;

fn meaning(status: &str) -> &'static str {
    match status {
        "200" => "Done",
        "201" => "Created",
        "202" => "Accepted: the work continues as a job",
        "204" => "Done; nothing to return",
        "302" | "303" => "Redirected",
        "304" => "Not modified",
        "400" => "The request is malformed",
        "401" => "No valid credentials (or 2-step verification still to do)",
        "403" => "Not allowed: the caller lacks the permission, or the request is cross-site",
        "404" => "Not found (or not visible to the caller)",
        "409" => "Conflicts with the current state",
        "413" => "The body is too large",
        "415" => "The content type is not accepted",
        "422" => "Well-formed but invalid",
        "429" => "Too many requests, or locked out for a while",
        "503" => {
            "Unavailable: the audit log or the database cannot be written or read now; nothing was returned or changed"
        }
        _ => "See the status code",
    }
}

impl Modify for Responses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, RefOr};
        let text = |d: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(d))
        };
        let problem = ObjectBuilder::new()
            .description(Some(
                "An error, as RFC 9457 describes (`application/problem+json`)",
            ))
            .property("type", text("A URI naming the kind of problem"))
            .property("title", text("A short summary"))
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The HTTP status")),
            )
            .property("detail", text("What went wrong, for this request"))
            .property(
                "error",
                text("The same as `detail`: what Mixpanel's SDKs read"),
            )
            .required("title")
            .required("status")
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            "Problem".into(),
            RefOr::T(utoipa::openapi::schema::Schema::Object(problem)),
        );
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for (status, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(r) = response else { continue };
                    if r.description.is_empty() {
                        r.description = meaning(status).to_owned();
                    }
                    let error = status.starts_with('4') || status.starts_with('5');
                    if error && r.content.is_empty() {
                        let problem = ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                            .build();
                        r.content
                            .insert("application/problem+json".into(), RefOr::T(problem));
                    }
                }
            }
        }
    }
}

/// Every browser route answers the same preflight, documented once at `/track`.
struct Preflights;

impl Modify for Preflights {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let paths = &mut openapi.paths.paths;
        let Some(preflight) = paths.get("/track").and_then(|p| p.options.clone()) else {
            return;
        };
        for path in super::BROWSER_ROUTES {
            if let Some(item) = paths.get_mut(path) {
                item.options.get_or_insert_with(|| preflight.clone());
            }
        }
    }
}

/// One handler can serve several methods (`GET` and `POST /track`) or paths (the preflight):
/// each operation gets an id of its own, as the specification requires.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::BTreeSet::new();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("trace", &mut item.trace),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let Some(id) = op.operation_id.clone() else {
                    continue;
                };
                if !seen.insert(id.clone()) {
                    let words: String = path
                        .split('/')
                        .filter(|w| !w.is_empty() && !w.starts_with('{'))
                        .collect::<Vec<_>>()
                        .join("_");
                    let unique = format!("{id}_{method}_{words}");
                    seen.insert(unique.clone());
                    op.operation_id = Some(unique);
                }
            }
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "auditgate", description = "An audited gate in front of a product-analytics event store"),
    paths(
        health::healthz, health::readyz, health::metrics, document,
        ingest::track, ingest::engage, ingest::groups, ingest::import,
        cors::preflight, cors::decide, cors::flags,
        query::events, query::count, query::profile, query::group,
        audit::checkpoint, audit::inclusion, audit::consistency, audit::export, audit::entries, audit::subject_report, audit::subject_bundle,
        console::stylesheet, console::script, console::home, console::audit_log, console::audit_entry,
        console::subject_report_form, console::subject_report_run, console::explorer, console::profile,
        console_access::access_page, console_access::ask, console_access::grants_page, console_access::grant,
        console_access::decide_grant,
        console_admin::roles_page, console_admin::create_role, console_admin::delete_role,
        console_admin::service_accounts_page, console_admin::decide_service_account, console_admin::make_token,
        console_admin::projects_page, console_admin::settings_page, console_admin::save_settings,
        console_admin::delete_project, console_admin::restore_project,
        console_access::review_grant, console_access::decide_request, console_access::people_page,
        console_access::decide_person, console_access::sensitive_page, console_access::classify,
        console_privacy::deletions, console_privacy::exports, console_privacy::ask_deletion,
        console_privacy::ask_export, console_privacy::decide_deletion, console_privacy::decide_export,
        console_privacy::preferences_form, console_privacy::preferences,
        account::end_session_form, account::revoke_token_form, account::create_token_form,
        auth::login, auth::callback, auth::password, auth::backchannel_logout,
        auth::enroll_page, auth::enroll_confirm, auth::verify_page, auth::verify,
        auth::recovery_codes, auth::logout,
        account::account_page, account::me, account::sessions, account::end_session,
        account::create_token, account::tokens, account::revoke_token,
        admin::reset_second_factor, admin::end_sessions,
        grants::list, grants::create, grants::approve, grants::reject, grants::revoke,
        grants::users, grants::disable, grants::enable,
        grants::review, grants::lock, grants::unlock, grants::service_accounts,
        grants::lock_service_account, grants::unlock_service_account,
        service_tokens::list, service_tokens::create, service_tokens::revoke,
        grants::roles, grants::create_role, grants::delete_role,
        classify::list, classify::mark, classify::unmark,
        review::review,
        privacy::sweep,
        privacy::opt_out, privacy::opt_in, privacy::give_consent, privacy::withdraw_consent,
        privacy::preferences,
        privacy::project, privacy::update_project, privacy::delete_project, privacy::restore_project,
        subjects::create_export, subjects::list_exports, subjects::show_export,
        subjects::cancel_export, subjects::download,
        subjects::create_deletion, subjects::list_deletions, subjects::show_deletion,
        subjects::cancel_deletion, subjects::approve_deletion,
        subjects::mixpanel_create_retrieval, subjects::mixpanel_retrieval_status,
        subjects::mixpanel_create_deletion, subjects::mixpanel_deletion_status,
        subjects::mixpanel_cancel_deletion,
        requests::ask, requests::mine, requests::pending, requests::approve, requests::reject,
    ),
    modifiers(&SecuritySchemes, &Preflights, &UniqueOperationIds, &Security, &Responses),
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "This document", body = Object)))]
/// This service's OpenAPI document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
