//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    account, admin, audit, auth, classify, cors, grants, health, ingest, privacy, query, requests,
    review, subjects,
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
        audit::checkpoint, audit::inclusion, audit::consistency, audit::export,
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
    modifiers(&SecuritySchemes, &Preflights, &UniqueOperationIds),
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "This document")))]
/// This service's OpenAPI document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
