//! The route registry: every route, the access it declares, and its handler, in one table.
//!
//! A route cannot be registered without an [`Access`]; tests walk this table to prove every
//! protected route refuses anonymous callers and that the OpenAPI document lists the same routes.

mod audit;
mod health;
mod ingest;
pub mod openapi;
mod query;

use actix_web::http::Method;
use actix_web::{Route, guard, web};

use crate::access::{Access, Permission, RouteAccess};

/// One registered route.
pub struct RouteDef {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern, as in the OpenAPI document.
    pub path: &'static str,
    /// What it requires.
    pub access: Access,
    handler: fn() -> Route,
}

fn def(method: Method, path: &'static str, access: Access, handler: fn() -> Route) -> RouteDef {
    RouteDef {
        method,
        path,
        access,
        handler,
    }
}

/// Every route the service serves.
pub fn registry() -> Vec<RouteDef> {
    use Access::{Public, Requires};
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
        def(Method::POST, "/track", Requires(EventsIngest), || {
            web::post().to(ingest::track)
        }),
        def(Method::POST, "/engage", Requires(EventsIngest), || {
            web::post().to(ingest::engage)
        }),
        def(Method::POST, "/import", Requires(EventsIngest), || {
            web::post().to(ingest::import)
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
    ]
}

/// Registers every route with its declared access in the resource's app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for r in registry() {
        cfg.service(
            web::resource(r.path)
                .guard(guard::Method(r.method.clone()))
                .app_data(RouteAccess(r.access))
                .route((r.handler)()),
        );
    }
}
