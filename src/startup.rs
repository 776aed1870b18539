//! Building the application: store, middleware, routes, and the HTTP server.

use std::net::TcpListener;

use actix_web::body::{MessageBody, to_bytes};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, ResponseError, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::error::{AppError, MixpanelAnswer, PROBLEM_JSON, from_actix};
use crate::state::AppState;
use crate::store::{self, SharedStore};
use crate::telemetry::RequestLine;

/// A built application, bound to its port but not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    store: SharedStore,
    audit: AuditLog,
}

impl Application {
    /// Connects the store, runs migrations, and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let store = store::connect(&settings.database).await?;
        store.migrate().await?;
        Self::build_with_store(settings, clock, store).await
    }

    /// Starts the audit log and binds the listener around an already connected and migrated store.
    pub async fn build_with_store(
        settings: Settings,
        clock: SharedClock,
        store: SharedStore,
    ) -> anyhow::Result<Self> {
        store.use_clock(clock.clone());
        let audit = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
        let auth = std::sync::Arc::new(crate::auth::AuthServices::from_settings(&settings)?);
        let swept = prometheus::IntCounter::with_opts(
            prometheus::Opts::new(
                "events_deleted_total",
                "Events deleted for being past their project's retention window.",
            )
            .namespace("auditgate")
            .subsystem("retention"),
        )?;
        if settings.retention.sweep_interval_secs > 0 {
            let (store, audit, clock) = (store.clone(), audit.clone(), clock.clone());
            let swept = swept.clone();
            let every = std::time::Duration::from_secs(settings.retention.sweep_interval_secs);
            let batch = settings.retention.batch;
            let grace = settings.retention.project_grace_days;
            tokio::spawn(async move {
                loop {
                    match crate::privacy::retention::sweep(
                        &store,
                        &audit,
                        clock.now(),
                        batch,
                        None,
                        grace,
                    )
                    .await
                    {
                        Ok(r) if !r.projects.is_empty() => {
                            swept.inc_by(r.projects.iter().map(|p| p.deleted).sum());
                            tracing::info!(report = ?r, "retention sweep");
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "retention sweep failed; retrying later")
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        {
            // Summaries of repeated anonymous refusals, once their minute has ended.
            let audit = audit.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    if let Err(e) = audit.flush_refusals(false).await {
                        tracing::warn!(error = %e, "refusal summaries: retrying later");
                    }
                }
            });
        }
        if settings.database.wal_checkpoint_secs > 0 && store.wal_bytes().is_some() {
            // SQLite restarts its WAL only when no reader holds it, which a busy service never
            // allows, and each import batch writes tens of MB of index pages into it: without
            // this it grows by every write. Checked every second, checkpointed (and truncated)
            // once it passes its limit, and anyway every wal_checkpoint_secs.
            let store = store.clone();
            let every = std::time::Duration::from_secs(settings.database.wal_checkpoint_secs);
            let limit = settings.database.wal_limit_bytes;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                let mut last = tokio::time::Instant::now();
                loop {
                    tick.tick().await;
                    if store.wal_bytes().unwrap_or(0) <= limit && last.elapsed() < every {
                        continue;
                    }
                    last = tokio::time::Instant::now();
                    match store.truncate_wal().await {
                        Ok(true) => {}
                        Ok(false) => tracing::debug!("WAL checkpoint: readers busy, next time"),
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint: retrying later"),
                    }
                }
            });
        }
        let jobs = std::sync::Arc::new(tokio::sync::Notify::new());
        if settings.privacy.run_jobs {
            let (store, audit, clock) = (store.clone(), audit.clone(), clock.clone());
            let (wake, every) = (
                jobs.clone(),
                std::time::Duration::from_secs(settings.privacy.job_poll_secs),
            );
            tokio::spawn(async move {
                let mut first_pass = true;
                loop {
                    match crate::privacy::subjects::run_open(&store, &audit, &clock, first_pass)
                        .await
                    {
                        Ok(n) if n > 0 => tracing::info!(jobs = n, "subject requests ended"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "subject requests: retrying later"),
                    }
                    first_pass = false;
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            });
        }
        let address = settings.bind_addr();
        // The OS says only "Address already in use": name the address and the setting.
        let listener = TcpListener::bind(address).map_err(|e| {
            anyhow::anyhow!("cannot listen on {address} (server.bind, or --bind): {e}")
        })?;
        let port = listener.local_addr()?.port();
        let tls = tls_config(&settings.server)?;
        let metrics = prometheus::Registry::new();
        let prom = actix_web_prom::PrometheusMetricsBuilder::new("auditgate")
            .registry(metrics.clone())
            .mask_unmatched_patterns("UNKNOWN")
            .build()
            .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let shutdown = settings.server.shutdown_timeout_secs;
        let ingested = crate::events::metrics::IngestMetrics::default();
        let subject_requests = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("requests", "Subject requests by kind and state.")
                .namespace("auditgate")
                .subsystem("subject"),
            &["kind", "state"],
        )?;
        metrics.register(Box::new(subject_requests.clone()))?;
        ingested
            .register(&metrics)
            .and_then(|()| audit.metrics().register(&metrics))
            .and_then(|()| metrics.register(Box::new(swept)))
            .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let state = web::Data::new(AppState {
            store: store.clone(),
            clock,
            settings,
            metrics,
            ingested,
            subject_requests,
            audit: audit.clone(),
            auth,
            jobs,
        });
        let trusted = crate::domain::TrustedProxies::parse(&state.settings.server.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("server.trusted_proxies: {e}"))?;
        let limiters = web::Data::new(crate::routes::limits::Limiters::new(
            &state.settings.server.rate_limit,
        ));
        {
            let limiters = limiters.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    limiters.forget_idle();
                }
            });
        }
        let bodies = web::Data::new(crate::routes::bodies::BodyGate::new(
            state.settings.server.max_large_bodies,
            std::time::Duration::from_secs(state.settings.server.body_read_secs),
            state.settings.server.max_body_bytes,
        ));
        let server = HttpServer::new(move || {
            let limit = state.settings.server.max_body_bytes;
            App::new()
                .app_data(state.clone())
                .app_data(trusted.clone())
                .app_data(limiters.clone())
                .app_data(bodies.clone())
                .app_data(web::PayloadConfig::new(limit))
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(|e, _| from_actix(e.into())),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| from_actix(e.into())))
                .app_data(web::PathConfig::default().error_handler(|e, _| from_actix(e.into())))
                .configure(crate::routes::configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(problems_and_request_id))
                .wrap(security_headers(&state.settings))
                .wrap(prom.clone())
                .wrap(TracingLogger::<RequestLine>::new())
        })
        .shutdown_timeout(shutdown);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Self {
            port,
            server,
            store,
            audit,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store the server uses.
    pub fn store(&self) -> SharedStore {
        self.store.clone()
    }

    /// The audit log the server writes.
    pub fn audit(&self) -> AuditLog {
        self.audit.clone()
    }

    /// Serves until the server is stopped or receives SIGTERM/SIGINT, then drains and
    /// writes the summaries of refusals still being counted.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Err(e) = self.audit.flush_refusals(true).await {
            tracing::error!(error = %e, "the last refusal summaries could not be written");
        }
        served
    }
}

async fn not_found() -> HttpResponse {
    AppError::NotFound("no such route (or not with this method)".into()).error_response()
}

/// Headers on every response: a strict Content-Security-Policy (scripts only from our own
/// files, never inline; forms
/// post only here or, on sign-out, to a provider), no framing, and HSTS behind TLS.
fn security_headers(settings: &Settings) -> DefaultHeaders {
    let providers: Vec<&str> = settings
        .auth
        .providers
        .iter()
        .map(|p| crate::config::origin_of(&p.issuer))
        .collect();
    let csp = format!(
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; form-action 'self'{}{}; \
         frame-ancestors 'none'; base-uri 'none'",
        if providers.is_empty() { "" } else { " " },
        providers.join(" ")
    );
    let mut headers = DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        // Not no-referrer: with it browsers send `Origin: null`, and our forms prove their
        // origin (CSRF) by that header.
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::CONTENT_SECURITY_POLICY, csp));
    if settings.is_tls() {
        headers = headers.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ));
    }
    headers
}

/// The TLS configuration of `server.tls_cert_file` and `server.tls_key_file`, if set.
pub(crate) fn tls_config(
    s: &crate::config::ServerSettings,
) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&s.tls_cert_file, &s.tls_key_file) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("server.tls_cert_file {cert:?}: {e}"))?;
    if chain.is_empty() {
        anyhow::bail!("server.tls_cert_file {cert:?} holds no PEM certificate");
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("server.tls_key_file {key:?}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| anyhow::anyhow!("server.tls_cert_file and tls_key_file do not match: {e}"))?;
    Ok(Some(config))
}

/// The page a browser was on: a GET's own address, else the path of a same-origin `Referer`
/// (a form's page). Only ever a local path.
fn page_to_return_to(req: &actix_web::HttpRequest) -> Option<String> {
    if req.method() == actix_web::http::Method::GET {
        return Some(req.uri().path_and_query()?.as_str().to_owned());
    }
    let state = req.app_data::<actix_web::web::Data<crate::state::AppState>>()?;
    let origin = crate::config::origin_of(state.settings.public_url());
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    let path = referer.strip_prefix(origin)?;
    path.starts_with('/').then(|| path.to_owned())
}

/// The headers of a response whose body is being replaced (all but its type and length).
fn kept_headers<B>(resp: &HttpResponse<B>) -> Vec<(header::HeaderName, HeaderValue)> {
    resp.headers()
        .iter()
        .filter(|(k, _)| *k != header::CONTENT_TYPE && *k != header::CONTENT_LENGTH)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Adds `x-request-id` to every response, and rewrites any error body that is not yet a
/// problem (actix's own payload or routing errors) into one, so clients see one error format.
async fn problems_and_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    // Sign-in and account answers are about one person: never cached anywhere.
    let private = req.path().starts_with("/auth/")
        || req.path().starts_with("/account")
        || req.path().starts_with("/api/v1/me")
        || req.path().starts_with("/api/v1/tokens")
        || req.path().starts_with("/api/v1/sessions");
    let browser = crate::routes::pages::wants_html(req.request());
    let res = next.call(req).await?;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let status = res.status();
    // Mixpanel's own answers, and our pages (a form shown again with what was wrong), keep
    // their bodies; only actix's plain-text errors become problems.
    let deliberate = res
        .response()
        .extensions()
        .get::<MixpanelAnswer>()
        .is_some()
        || res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let mut res =
        if (status.is_client_error() || status.is_server_error()) && !is_problem && !deliberate {
            let (req, resp) = res.into_parts();
            // Headers set on the way out (CORS, Retry-After) stay; the body becomes a problem.
            let kept = kept_headers(&resp);
            let text = to_bytes(resp.into_body())
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let detail = if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            let problem = AppError::Detailed {
                status,
                detail,
                extensions: Default::default(),
            };
            let mut resp = problem.error_response();
            let own: Vec<_> = resp.headers().keys().cloned().collect();
            for (k, v) in kept.into_iter().filter(|(k, _)| !own.contains(k)) {
                resp.headers_mut().append(k, v);
            }
            ServiceResponse::new(req, resp)
        } else {
            res.map_into_boxed_body()
        };
    // A browser that navigated here reads the problem as a page (same status and headers).
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if browser && is_problem {
        let (req, resp) = res.into_parts();
        let status = resp.status();
        let kept = kept_headers(&resp);
        let problem: serde_json::Value = to_bytes(resp.into_body())
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let retry_after = kept
            .iter()
            .find(|(k, _)| *k == header::RETRY_AFTER)
            .and_then(|(_, v)| v.to_str().ok())
            .map(str::to_owned);
        let back = page_to_return_to(&req);
        let mut page = crate::routes::pages::problem_page(
            status,
            &problem,
            retry_after.as_deref(),
            back.as_deref(),
        );
        for (k, v) in kept {
            if k != header::CACHE_CONTROL {
                page.headers_mut().append(k, v);
            }
        }
        res = ServiceResponse::new(req, page.map_into_boxed_body());
    }
    if private {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), id);
    }
    Ok(res)
}
