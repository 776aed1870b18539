//! The route registry: every route, the access it declares, and its handler, in one table.
//!
//! A route cannot be registered without an [`Access`]; tests walk this table to prove every
//! protected route refuses anonymous callers and that the OpenAPI document lists the same routes.

mod account;
mod admin;
mod audit;
mod auth;
pub mod bodies;
mod classify;
mod console;
mod console_access;
mod console_admin;
mod console_privacy;
pub mod cors;
pub mod extract;
mod grants;
mod health;
mod ingest;
pub mod limits;
pub mod openapi;
pub mod pages;
mod privacy;
mod query;
mod requests;
mod review;
mod service_tokens;
mod subjects;

use actix_web::http::Method;
use actix_web::{Route, guard, web};

use crate::access::{Access, AccountNeed, Permission};
use crate::signin::principal::RouteAccess;

/// One registered route.
pub struct RouteDef {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern, as in the OpenAPI document.
    pub path: &'static str,
    /// What it requires.
    pub access: Access,
    handler: fn() -> Route,
    /// Whether it answers at `path/` too, as Mixpanel's SDKs call it.
    pub slash: bool,
}

fn def(method: Method, path: &'static str, access: Access, handler: fn() -> Route) -> RouteDef {
    RouteDef {
        method,
        path,
        access,
        handler,
        slash: false,
    }
}

/// The routes Mixpanel's SDKs call, answered with and without a trailing slash.
fn sdk(method: Method, path: &'static str, access: Access, handler: fn() -> Route) -> RouteDef {
    RouteDef {
        slash: true,
        ..def(method, path, access, handler)
    }
}

/// The routes a page's SDK calls: each answers a browser's preflight and carries CORS headers.
pub const BROWSER_ROUTES: [&str; 5] = ["/track", "/engage", "/groups", "/decide", "/flags"];

const PREFLIGHT: Access =
    Access::Public("a browser's CORS preflight: says which origins may send, reads no data");

/// Every route the service serves.
pub fn registry() -> Vec<RouteDef> {
    use Access::{Account, Public, Requires};
    use AccountNeed::{Partial, StepUp, Verified};
    use Permission::*;
    vec![
        def(
            Method::GET,
            "/healthz",
            Public("liveness only, no data"),
            || web::get().to(health::healthz),
        ),
        def(
            Method::GET,
            "/readyz",
            Public("readiness only, no data"),
            || web::get().to(health::readyz),
        ),
        def(
            Method::GET,
            "/metrics",
            Public("request counts and latencies, no customer data"),
            || web::get().to(health::metrics),
        ),
        def(
            Method::GET,
            "/openapi.json",
            Public("the API description"),
            || web::get().to(openapi::document),
        ),
        def(
            Method::GET,
            "/api/v1/audit/checkpoint",
            Public("a signed tree head: hashes only"),
            || web::get().to(audit::checkpoint),
        ),
        def(
            Method::GET,
            "/api/v1/audit/proof/inclusion",
            Public("proofs are hashes of salted entries and reveal nothing about them"),
            || web::get().to(audit::inclusion),
        ),
        def(
            Method::GET,
            "/api/v1/audit/proof/consistency",
            Public("proofs are hashes of salted entries and reveal nothing about them"),
            || web::get().to(audit::consistency),
        ),
        def(
            Method::GET,
            "/api/v1/audit/export",
            Requires(AuditExport),
            || web::get().to(audit::export),
        ),
        def(
            Method::GET,
            "/api/v1/audit/entries",
            Requires(AuditRead),
            || web::get().to(audit::entries),
        ),
        def(
            Method::POST,
            "/api/v1/audit/subject-report",
            Requires(AuditInvestigate),
            || web::post().to(audit::subject_report),
        ),
        def(
            Method::POST,
            "/api/v1/audit/subject-report/bundle",
            Requires(AuditInvestigate),
            || web::post().to(audit::subject_bundle),
        ),
        def(
            Method::GET,
            "/assets/console.css",
            Public("the console's stylesheet: no data"),
            || web::get().to(console::stylesheet),
        ),
        def(
            Method::GET,
            "/assets/console.js",
            Public("the console's script: no data"),
            || web::get().to(console::script),
        ),
        def(Method::GET, "/console", Account(Verified), || {
            web::get().to(console::home)
        }),
        def(
            Method::GET,
            "/console/projects/{project}/events",
            Requires(EventsRead),
            || web::get().to(console::explorer),
        ),
        def(
            Method::GET,
            "/console/projects/{project}/profiles/{distinct_id}",
            Requires(ProfilesRead),
            || web::get().to(console::profile),
        ),
        def(
            Method::GET,
            "/console/projects/{project}/subject-requests/deletions",
            Requires(SubjectsErase),
            || web::get().to(console_privacy::deletions),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/subject-requests/deletions",
            Requires(SubjectsErase),
            || web::post().to(console_privacy::ask_deletion),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/subject-requests/deletions/decision",
            Requires(SubjectsErase),
            || web::post().to(console_privacy::decide_deletion),
        ),
        def(
            Method::GET,
            "/console/projects/{project}/subject-requests/exports",
            Requires(SubjectsExport),
            || web::get().to(console_privacy::exports),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/subject-requests/exports",
            Requires(SubjectsExport),
            || web::post().to(console_privacy::ask_export),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/subject-requests/exports/decision",
            Requires(SubjectsExport),
            || web::post().to(console_privacy::decide_export),
        ),
        def(
            Method::GET,
            "/console/projects/{project}/preferences",
            Requires(SubjectsConsent),
            || web::get().to(console_privacy::preferences_form),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/preferences",
            Requires(SubjectsConsent),
            || web::post().to(console_privacy::preferences),
        ),
        def(Method::GET, "/console/access", Account(Verified), || {
            web::get().to(console_access::access_page)
        }),
        def(Method::POST, "/console/access", Account(Verified), || {
            web::post().to(console_access::ask)
        }),
        def(
            Method::GET,
            "/console/projects/{project}/sensitive-properties",
            Requires(PropertiesClassify),
            || web::get().to(console_access::sensitive_page),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/sensitive-properties",
            Requires(PropertiesClassify),
            || web::post().to(console_access::classify),
        ),
        def(
            Method::GET,
            "/console/admin/people",
            Requires(UsersAdmin),
            || web::get().to(console_access::people_page),
        ),
        def(
            Method::POST,
            "/console/admin/people/decision",
            Requires(UsersAdmin),
            || web::post().to(console_access::decide_person),
        ),
        def(
            Method::GET,
            "/console/admin/grants",
            Requires(RolesAssign),
            || web::get().to(console_access::grants_page),
        ),
        def(
            Method::POST,
            "/console/admin/grants",
            Requires(RolesAssign),
            || web::post().to(console_access::grant),
        ),
        def(
            Method::POST,
            "/console/admin/grants/decision",
            Requires(RolesAssign),
            || web::post().to(console_access::decide_grant),
        ),
        def(
            Method::POST,
            "/console/admin/grants/review",
            Requires(RolesAssign),
            || web::post().to(console_access::review_grant),
        ),
        def(
            Method::POST,
            "/console/admin/access-requests/decision",
            Requires(RolesAssign),
            || web::post().to(console_access::decide_request),
        ),
        def(
            Method::GET,
            "/console/admin/roles",
            Requires(RolesAssign),
            || web::get().to(console_admin::roles_page),
        ),
        def(
            Method::POST,
            "/console/admin/roles",
            Requires(RolesAssign),
            || web::post().to(console_admin::create_role),
        ),
        def(
            Method::POST,
            "/console/admin/roles/delete",
            Requires(RolesAssign),
            || web::post().to(console_admin::delete_role),
        ),
        def(
            Method::GET,
            "/console/admin/service-accounts",
            Requires(UsersAdmin),
            || web::get().to(console_admin::service_accounts_page),
        ),
        def(
            Method::POST,
            "/console/admin/service-accounts/decision",
            Requires(UsersAdmin),
            || web::post().to(console_admin::decide_service_account),
        ),
        def(
            Method::POST,
            "/console/admin/service-accounts/tokens",
            Requires(UsersAdmin),
            || web::post().to(console_admin::make_token),
        ),
        def(
            Method::GET,
            "/console/admin/projects",
            Requires(ProjectAdmin),
            || web::get().to(console_admin::projects_page),
        ),
        def(
            Method::GET,
            "/console/projects/{project}/settings",
            Requires(ProjectAdmin),
            || web::get().to(console_admin::settings_page),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/settings",
            Requires(ProjectAdmin),
            || web::post().to(console_admin::save_settings),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/delete",
            Requires(ProjectAdmin),
            || web::post().to(console_admin::delete_project),
        ),
        def(
            Method::POST,
            "/console/projects/{project}/restore",
            Requires(ProjectAdmin),
            || web::post().to(console_admin::restore_project),
        ),
        def(Method::GET, "/console/audit", Requires(AuditRead), || {
            web::get().to(console::audit_log)
        }),
        def(
            Method::GET,
            "/console/audit/entries/{seq}",
            Requires(AuditRead),
            || web::get().to(console::audit_entry),
        ),
        def(
            Method::GET,
            "/console/audit/subject-report",
            Requires(AuditInvestigate),
            || web::get().to(console::subject_report_form),
        ),
        def(
            Method::POST,
            "/console/audit/subject-report",
            Requires(AuditInvestigate),
            || web::post().to(console::subject_report_run),
        ),
        def(
            Method::GET,
            "/auth/login",
            Public("starts a sign-in at a provider; no data"),
            || web::get().to(auth::login),
        ),
        def(
            Method::GET,
            "/auth/callback",
            Public("finishes a sign-in: state, PKCE and the ID token are checked"),
            || web::get().to(auth::callback),
        ),
        def(
            Method::POST,
            "/auth/password",
            Public("break-glass sign-in: locked after repeated failures, every attempt audited"),
            || web::post().to(auth::password),
        ),
        def(
            Method::POST,
            "/auth/backchannel-logout/{provider}",
            Public("acts only on logout tokens signed by the provider"),
            || web::post().to(auth::backchannel_logout),
        ),
        def(Method::GET, "/auth/2fa/enroll", Account(Partial), || {
            web::get().to(auth::enroll_page)
        }),
        def(Method::POST, "/auth/2fa/enroll", Account(Partial), || {
            web::post().to(auth::enroll_confirm)
        }),
        def(Method::GET, "/auth/2fa/verify", Account(Partial), || {
            web::get().to(auth::verify_page)
        }),
        def(Method::POST, "/auth/2fa/verify", Account(Partial), || {
            web::post().to(auth::verify)
        }),
        def(
            Method::POST,
            "/auth/2fa/recovery-codes",
            Account(StepUp),
            || web::post().to(auth::recovery_codes),
        ),
        def(Method::POST, "/auth/logout", Account(Partial), || {
            web::post().to(auth::logout)
        }),
        def(Method::GET, "/account", Account(Verified), || {
            web::get().to(account::account_page)
        }),
        def(
            Method::POST,
            "/account/sessions/end",
            Account(Verified),
            || web::post().to(account::end_session_form),
        ),
        def(
            Method::POST,
            "/account/tokens/revoke",
            Account(Verified),
            || web::post().to(account::revoke_token_form),
        ),
        def(Method::POST, "/account/tokens", Account(StepUp), || {
            web::post().to(account::create_token_form)
        }),
        def(Method::GET, "/api/v1/me", Account(Verified), || {
            web::get().to(account::me)
        }),
        def(Method::GET, "/api/v1/sessions", Account(Verified), || {
            web::get().to(account::sessions)
        }),
        def(
            Method::DELETE,
            "/api/v1/sessions/{id}",
            Account(Verified),
            || web::delete().to(account::end_session),
        ),
        def(Method::POST, "/api/v1/tokens", Account(StepUp), || {
            web::post().to(account::create_token)
        }),
        def(Method::GET, "/api/v1/tokens", Account(Verified), || {
            web::get().to(account::tokens)
        }),
        def(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Account(Verified),
            || web::delete().to(account::revoke_token),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/sensitive-properties",
            Requires(PropertiesClassify),
            || web::get().to(classify::list),
        ),
        def(
            Method::PUT,
            "/api/v1/projects/{project}/sensitive-properties/{kind}/{name}",
            Requires(PropertiesClassify),
            || web::put().to(classify::mark),
        ),
        def(
            Method::DELETE,
            "/api/v1/projects/{project}/sensitive-properties/{kind}/{name}",
            Requires(PropertiesClassify),
            || web::delete().to(classify::unmark),
        ),
        def(
            Method::GET,
            "/api/v1/admin/grants",
            Requires(RolesAssign),
            || web::get().to(grants::list),
        ),
        def(
            Method::POST,
            "/api/v1/admin/grants",
            Requires(RolesAssign),
            || web::post().to(grants::create),
        ),
        def(
            Method::POST,
            "/api/v1/admin/grants/{id}/approve",
            Requires(RolesAssign),
            || web::post().to(grants::approve),
        ),
        def(
            Method::POST,
            "/api/v1/admin/grants/{id}/reject",
            Requires(RolesAssign),
            || web::post().to(grants::reject),
        ),
        def(
            Method::POST,
            "/api/v1/admin/grants/{id}/review",
            Requires(RolesAssign),
            || web::post().to(grants::review),
        ),
        def(
            Method::POST,
            "/api/v1/admin/grants/{id}/lock",
            Requires(RolesAssign),
            || web::post().to(grants::lock),
        ),
        def(
            Method::POST,
            "/api/v1/admin/grants/{id}/unlock",
            Requires(RolesAssign),
            || web::post().to(grants::unlock),
        ),
        def(
            Method::GET,
            "/api/v1/admin/roles",
            Requires(RolesAssign),
            || web::get().to(grants::roles),
        ),
        def(
            Method::POST,
            "/api/v1/admin/roles",
            Requires(RolesAssign),
            || web::post().to(grants::create_role),
        ),
        def(
            Method::DELETE,
            "/api/v1/admin/roles/{name}",
            Requires(RolesAssign),
            || web::delete().to(grants::delete_role),
        ),
        def(
            Method::GET,
            "/api/v1/admin/service-accounts",
            Requires(UsersAdmin),
            || web::get().to(grants::service_accounts),
        ),
        def(
            Method::POST,
            "/api/v1/admin/service-accounts/{id}/lock",
            Requires(UsersAdmin),
            || web::post().to(grants::lock_service_account),
        ),
        def(
            Method::POST,
            "/api/v1/admin/service-accounts/{id}/unlock",
            Requires(UsersAdmin),
            || web::post().to(grants::unlock_service_account),
        ),
        def(
            Method::GET,
            "/api/v1/admin/service-accounts/{id}/tokens",
            Requires(UsersAdmin),
            || web::get().to(service_tokens::list),
        ),
        def(
            Method::POST,
            "/api/v1/admin/service-accounts/{id}/tokens",
            Requires(UsersAdmin),
            || web::post().to(service_tokens::create),
        ),
        def(
            Method::DELETE,
            "/api/v1/admin/service-accounts/{id}/tokens/{token}",
            Requires(UsersAdmin),
            || web::delete().to(service_tokens::revoke),
        ),
        def(
            Method::DELETE,
            "/api/v1/admin/grants/{id}",
            Requires(RolesAssign),
            || web::delete().to(grants::revoke),
        ),
        def(
            Method::POST,
            "/api/v1/access-requests",
            Account(Verified),
            || web::post().to(requests::ask),
        ),
        def(
            Method::GET,
            "/api/v1/access-requests",
            Account(Verified),
            || web::get().to(requests::mine),
        ),
        def(
            Method::GET,
            "/api/v1/admin/access-requests",
            Requires(RolesAssign),
            || web::get().to(requests::pending),
        ),
        def(
            Method::POST,
            "/api/v1/admin/access-requests/{id}/approve",
            Requires(RolesAssign),
            || web::post().to(requests::approve),
        ),
        def(
            Method::POST,
            "/api/v1/admin/access-requests/{id}/reject",
            Requires(RolesAssign),
            || web::post().to(requests::reject),
        ),
        def(
            Method::POST,
            "/api/v1/admin/retention/sweep",
            Requires(ProjectAdmin),
            || web::post().to(privacy::sweep),
        ),
        def(
            Method::POST,
            "/api/v1/projects/{project}/subject-requests/exports",
            Requires(SubjectsExport),
            || web::post().to(subjects::create_export),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/subject-requests/exports",
            Requires(SubjectsExport),
            || web::get().to(subjects::list_exports),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/subject-requests/exports/{id}",
            Requires(SubjectsExport),
            || web::get().to(subjects::show_export),
        ),
        def(
            Method::DELETE,
            "/api/v1/projects/{project}/subject-requests/exports/{id}",
            Requires(SubjectsExport),
            || web::delete().to(subjects::cancel_export),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/subject-requests/exports/{id}/download",
            Requires(SubjectsExport),
            || web::get().to(subjects::download),
        ),
        def(
            Method::POST,
            "/api/v1/projects/{project}/subject-requests/deletions",
            Requires(SubjectsErase),
            || web::post().to(subjects::create_deletion),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/subject-requests/deletions",
            Requires(SubjectsErase),
            || web::get().to(subjects::list_deletions),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/subject-requests/deletions/{id}",
            Requires(SubjectsErase),
            || web::get().to(subjects::show_deletion),
        ),
        def(
            Method::DELETE,
            "/api/v1/projects/{project}/subject-requests/deletions/{id}",
            Requires(SubjectsErase),
            || web::delete().to(subjects::cancel_deletion),
        ),
        def(
            Method::POST,
            "/api/v1/projects/{project}/subject-requests/deletions/{id}/approve",
            Requires(SubjectsErase),
            || web::post().to(subjects::approve_deletion),
        ),
        def(
            Method::POST,
            "/api/app/data-retrievals/v3.0/",
            Requires(SubjectsExport),
            || web::post().to(subjects::mixpanel_create_retrieval),
        ),
        def(
            Method::GET,
            "/api/app/data-retrievals/v3.0/{task_id}",
            Requires(SubjectsExport),
            || web::get().to(subjects::mixpanel_retrieval_status),
        ),
        def(
            Method::POST,
            "/api/app/data-deletions/v3.0/",
            Requires(SubjectsErase),
            || web::post().to(subjects::mixpanel_create_deletion),
        ),
        def(
            Method::GET,
            "/api/app/data-deletions/v3.0/{task_id}",
            Requires(SubjectsErase),
            || web::get().to(subjects::mixpanel_deletion_status),
        ),
        def(
            Method::DELETE,
            "/api/app/data-deletions/v3.0/{task_id}",
            Requires(SubjectsErase),
            || web::delete().to(subjects::mixpanel_cancel_deletion),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/subjects/{distinct_id}/preferences",
            Requires(SubjectsConsent),
            || web::get().to(privacy::preferences),
        ),
        def(
            Method::PUT,
            "/api/v1/projects/{project}/subjects/{distinct_id}/opt-out",
            Requires(SubjectsConsent),
            || web::put().to(privacy::opt_out),
        ),
        def(
            Method::DELETE,
            "/api/v1/projects/{project}/subjects/{distinct_id}/opt-out",
            Requires(SubjectsConsent),
            || web::delete().to(privacy::opt_in),
        ),
        def(
            Method::PUT,
            "/api/v1/projects/{project}/subjects/{distinct_id}/consent",
            Requires(SubjectsConsent),
            || web::put().to(privacy::give_consent),
        ),
        def(
            Method::DELETE,
            "/api/v1/projects/{project}/subjects/{distinct_id}/consent",
            Requires(SubjectsConsent),
            || web::delete().to(privacy::withdraw_consent),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}",
            Requires(ProjectAdmin),
            || web::get().to(privacy::project),
        ),
        def(
            Method::PATCH,
            "/api/v1/projects/{project}",
            Requires(ProjectAdmin),
            || web::patch().to(privacy::update_project),
        ),
        def(
            Method::DELETE,
            "/api/v1/projects/{project}",
            Requires(ProjectAdmin),
            || web::delete().to(privacy::delete_project),
        ),
        def(
            Method::POST,
            "/api/v1/projects/{project}/restore",
            Requires(ProjectAdmin),
            || web::post().to(privacy::restore_project),
        ),
        def(
            Method::GET,
            "/api/v1/admin/access-review",
            Requires(AuditRead),
            || web::get().to(review::review),
        ),
        def(
            Method::GET,
            "/api/v1/admin/users",
            Requires(UsersAdmin),
            || web::get().to(grants::users),
        ),
        def(
            Method::POST,
            "/api/v1/admin/users/{id}/disable",
            Requires(UsersAdmin),
            || web::post().to(grants::disable),
        ),
        def(
            Method::POST,
            "/api/v1/admin/users/{id}/enable",
            Requires(UsersAdmin),
            || web::post().to(grants::enable),
        ),
        def(
            Method::POST,
            "/api/v1/admin/users/{id}/second-factor/reset",
            Requires(UsersAdmin),
            || web::post().to(admin::reset_second_factor),
        ),
        def(
            Method::DELETE,
            "/api/v1/admin/users/{id}/sessions",
            Requires(UsersAdmin),
            || web::delete().to(admin::end_sessions),
        ),
        sdk(Method::POST, "/track", Requires(EventsIngest), || {
            web::post().to(ingest::track)
        }),
        sdk(Method::GET, "/track", Requires(EventsIngest), || {
            web::get().to(ingest::track)
        }),
        sdk(Method::POST, "/engage", Requires(EventsIngest), || {
            web::post().to(ingest::engage)
        }),
        sdk(Method::GET, "/engage", Requires(EventsIngest), || {
            web::get().to(ingest::engage)
        }),
        sdk(Method::POST, "/groups", Requires(EventsIngest), || {
            web::post().to(ingest::groups)
        }),
        sdk(Method::GET, "/groups", Requires(EventsIngest), || {
            web::get().to(ingest::groups)
        }),
        sdk(Method::POST, "/import", Requires(EventsIngest), || {
            web::post().to(ingest::import)
        }),
        sdk(Method::GET, "/import", Requires(EventsIngest), || {
            web::get().to(ingest::import)
        }),
        sdk(
            Method::GET,
            "/decide",
            Public("answers that there are no feature flags or surveys; reads no data"),
            || web::get().to(cors::decide),
        ),
        sdk(
            Method::GET,
            "/flags",
            Public("answers that there are no feature flags; reads no data"),
            || web::get().to(cors::flags),
        ),
        sdk(Method::OPTIONS, "/track", PREFLIGHT, || {
            web::method(Method::OPTIONS).to(cors::preflight)
        }),
        sdk(Method::OPTIONS, "/engage", PREFLIGHT, || {
            web::method(Method::OPTIONS).to(cors::preflight)
        }),
        sdk(Method::OPTIONS, "/groups", PREFLIGHT, || {
            web::method(Method::OPTIONS).to(cors::preflight)
        }),
        sdk(Method::OPTIONS, "/decide", PREFLIGHT, || {
            web::method(Method::OPTIONS).to(cors::preflight)
        }),
        sdk(Method::OPTIONS, "/flags", PREFLIGHT, || {
            web::method(Method::OPTIONS).to(cors::preflight)
        }),
        def(
            Method::GET,
            "/api/v1/projects/{project}/events",
            Requires(EventsRead),
            || web::get().to(query::events),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/events/count",
            Requires(EventsRead),
            || web::get().to(query::count),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/profiles/{distinct_id}",
            Requires(ProfilesRead),
            || web::get().to(query::profile),
        ),
        def(
            Method::GET,
            "/api/v1/projects/{project}/groups/{group_key}/{group_id}",
            Requires(ProfilesRead),
            || web::get().to(query::group),
        ),
    ]
}

/// Registers every route with its declared access in the resource's app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for r in registry() {
        let mut patterns = vec![r.path.to_owned()];
        if r.slash {
            patterns.push(format!("{}/", r.path));
        }
        let mut resource = web::resource(patterns)
            .guard(guard::Method(r.method.clone()))
            .app_data(RouteAccess(r.access));
        if let Some(class) = r.rate_class() {
            resource = resource.app_data(class);
        }
        // Bodies are read under their limits only once the client's budget allows it.
        let resource = resource
            .route((r.handler)())
            .wrap(actix_web::middleware::from_fn(bodies::bound))
            // The last wrap runs first: a malformed project is refused before the body waits.
            .wrap(actix_web::middleware::from_fn(extract::project_in_path))
            // A route without a rate class passes straight through.
            .wrap(actix_web::middleware::from_fn(limits::limit))
            // Outermost, so every answer of a browser route (a 429 too) carries its headers.
            .wrap(actix_web::middleware::Condition::new(
                BROWSER_ROUTES.contains(&r.path),
                actix_web::middleware::from_fn(cors::expose),
            ));
        cfg.service(resource);
    }
}

impl RouteDef {
    /// The per-client limit this route falls under: the routes anyone can call without an
    /// account, and each step of signing in.
    pub fn rate_class(&self) -> Option<limits::RateClass> {
        use limits::RateClass;
        let signin = self.method == Method::POST
            && (self.path.starts_with("/auth/password")
                || self.path.starts_with("/auth/backchannel-logout")
                || self.path.starts_with("/auth/2fa/"))
            || self.path == "/auth/callback"
            || self.path == "/auth/login";
        if signin {
            return Some(RateClass::SignIn);
        }
        match (&self.access, self.path) {
            (_, "/healthz") => None,
            (Access::Public(_), _) | (_, "/track" | "/engage" | "/groups") => {
                Some(RateClass::Public)
            }
            _ => None,
        }
    }
}
