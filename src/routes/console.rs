//! The console: server-rendered pages over the same services and the same policy as the API.
//! A page shows only what its viewer's grants reach (links included), and reads exactly as
//! the API call it stands for, audit entry included.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::audit::EntryParams;
use super::pages::{Nav, console_page};
use crate::access::{Principal, Subject, decide};
use crate::audit::{RequestContext, Standing, read, report};
use crate::domain::{Permission, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::{Action, Entry, Outcome};
use crate::ledger::show::{ENTRY_FIELDS, entry_json, rfc3339};
use crate::signin::caller::Person;
use crate::state::AppState;

/// The stylesheet every page links.
#[utoipa::path(get, path = "/assets/console.css", tag = "console",
    responses((status = 200, description = "The console's stylesheet", content((String = "text/css")))))]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(include_str!("assets/console.css"))
}

/// The console's only script: copy buttons.
#[utoipa::path(get, path = "/assets/console.js", tag = "console",
    responses((status = 200, description = "The console's script (copy buttons)", content((String = "text/javascript")))))]
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(include_str!("assets/console.js"))
}

/// The projects on which `grants` of `subject` allow `permission`, by the one policy.
pub(super) async fn reach(
    state: &AppState,
    subject: &Subject,
    permission: Permission,
) -> Result<Vec<ProjectId>, AppError> {
    Ok(state
        .store
        .list_projects()
        .await?
        .into_iter()
        .filter(crate::store::Project::is_live)
        .map(|p| p.id)
        .filter(|p| decide(subject, permission, p) == crate::access::Decision::Allow)
        .collect())
}

/// Whether `permission` is held on every project.
pub(super) fn everywhere(subject: &Subject, permission: Permission) -> bool {
    crate::access::decide_global(subject, permission) == crate::access::Decision::Allow
}

/// The links `subject` may follow.
pub(super) async fn nav_of(state: &AppState, subject: &Subject) -> Result<Nav, AppError> {
    // The project list is read once; each link is then the policy's answer on it.
    let projects: Vec<ProjectId> = state
        .store
        .list_projects()
        .await?
        .into_iter()
        .filter(crate::store::Project::is_live)
        .map(|p| p.id)
        .collect();
    let reach = |permission: Permission| -> Vec<&ProjectId> {
        projects
            .iter()
            .filter(|p| decide(subject, permission, p) == crate::access::Decision::Allow)
            .collect()
    };
    let mut links = vec![("Home".to_owned(), "/console".to_owned())];
    if !reach(Permission::AuditRead).is_empty() || everywhere(subject, Permission::AuditRead) {
        links.push(("Audit log".into(), "/console/audit".into()));
    }
    if !reach(Permission::AuditInvestigate).is_empty() {
        links.push((
            "Who accessed a person".into(),
            "/console/audit/subject-report".into(),
        ));
    }
    for p in reach(Permission::EventsRead) {
        links.push((
            format!("Events: {p}"),
            format!("/console/projects/{p}/events"),
        ));
    }
    for p in reach(Permission::SubjectsErase) {
        links.push((
            format!("Erasures: {p}"),
            format!("/console/projects/{p}/subject-requests/deletions"),
        ));
    }
    for p in reach(Permission::SubjectsExport) {
        links.push((
            format!("Exports: {p}"),
            format!("/console/projects/{p}/subject-requests/exports"),
        ));
    }
    if !reach(Permission::RolesAssign).is_empty() || everywhere(subject, Permission::RolesAssign) {
        links.push((
            "Grants and approvals".into(),
            "/console/admin/grants".into(),
        ));
    }
    for p in reach(Permission::SubjectsConsent) {
        links.push((
            format!("Consent: {p}"),
            format!("/console/projects/{p}/preferences"),
        ));
    }
    for p in reach(Permission::PropertiesClassify) {
        links.push((
            format!("Sensitive: {p}"),
            format!("/console/projects/{p}/sensitive-properties"),
        ));
    }
    if everywhere(subject, Permission::RolesAssign) {
        links.push(("Roles".into(), "/console/admin/roles".into()));
    }
    if everywhere(subject, Permission::UsersAdmin) {
        links.push(("People".into(), "/console/admin/people".into()));
        links.push((
            "Service accounts".into(),
            "/console/admin/service-accounts".into(),
        ));
    }
    if !reach(Permission::ProjectAdmin).is_empty() || everywhere(subject, Permission::ProjectAdmin)
    {
        links.push(("Projects".into(), "/console/admin/projects".into()));
    }
    if matches!(subject, Subject::User { .. }) {
        links.push(("Request access".into(), "/console/access".into()));
    }
    links.push(("Account".into(), "/account".into()));
    Ok(Nav { links })
}

pub(super) fn person_subject(person: &Person) -> Subject {
    Subject::User {
        id: person.user.id.clone(),
        method: person.actor().method,
        credential: String::new(),
        second_factor: person.actor().second_factor,
        grants: person.grants.clone(),
    }
}

/// The home page after sign-in: what this person can do, by their roles.
#[utoipa::path(get, path = "/console", tag = "console",
    responses((status = 200, description = "The home page", content((String = "text/html"))), (status = 401)))]
pub async fn home(person: Person, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let subject = person_subject(&person);
    let nav = nav_of(&state, &subject).await?;
    let audit_projects = reach(&state, &subject, Permission::AuditRead).await?;
    let investigate = reach(&state, &subject, Permission::AuditInvestigate).await?;
    let readable = reach(&state, &subject, Permission::EventsRead).await?;
    let notices = crate::signin::account::standing(&state, &person)
        .await?
        .notices;
    Ok(console_page(
        &nav,
        "Home",
        html! {
            p id="who" { "Signed in as " strong { (person.user.email) } "." }
            ul class="cards" id="can-do" {
                @if !audit_projects.is_empty() || everywhere(&subject, Permission::AuditRead) {
                    li id="card-audit" {
                        h2 { a href="/console/audit" { "Audit log" } }
                        p class="muted" { "Who did what, when: filter the log, open an entry and its proof, download bundles to verify offline." }
                    }
                }
                @if !investigate.is_empty() {
                    li id="card-subject-report" {
                        h2 { a href="/console/audit/subject-report" { "Who accessed a person" } }
                        p class="muted" { "Every read, export, change or erasure of one person's data." }
                    }
                }
                @for p in &readable {
                    li class="card-events" {
                        h2 { a href={"/console/projects/" (p) "/events"} { "Events in " (p) } }
                        p class="muted" { "Explore events and people, sensitive values redacted." }
                    }
                }
                li id="card-account" {
                    h2 { a href="/account" { "Your account" } }
                    p class="muted" { "Your roles, sessions and security notices." }
                }
            }
            @if !notices.is_empty() {
                section id="notices" {
                    h2 { "Security notices" }
                    ul { @for n in &notices { li { (n.at.to_rfc3339()) ": " (n.detail) } } }
                }
            }
            h2 { "Your roles" }
            @if person.grants.list().is_empty() {
                p id="no-roles" { "You hold no role yet. An administrator can grant you one." }
            } @else {
                ul id="roles" {
                    @for g in person.grants.list() {
                        li {
                            @if let Some(role) = &g.role { (role) } @else { "denied " (g.deny.map(|p| p.as_str()).unwrap_or("")) }
                            " on " (g.project)
                        }
                    }
                }
            }
        },
    ))
}

/// The principal's subject, with the nav its grants allow.
pub(super) async fn viewer(state: &AppState, principal: &Principal) -> Result<Nav, AppError> {
    nav_of(state, principal.subject()).await
}

/// A button posting `fields` to `action`, marked `data-decision` for tests and scripts.
pub(super) fn action_form(
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    mark: &str,
) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" data-decision=(mark) { (label) }
        }
    }
}

pub(super) fn select(
    name: &str,
    label: &str,
    options: &[String],
    chosen: Option<&str>,
    any: &str,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" selected[chosen.is_none()] { (any) }
                @for o in options {
                    option value=(o) selected[chosen == Some(o.as_str())] { (o) }
                }
            }
        }
    }
}

pub(super) fn text_input(
    name: &str,
    label: &str,
    value: Option<&str>,
    placeholder: &str,
) -> Markup {
    html! {
        label { (label) input type="text" name=(name) value=[value] placeholder=(placeholder); }
    }
}

fn entries_table(entries: &[Entry]) -> Markup {
    html! {
        div class="table-wrap" {
            table id="entries" {
                thead { tr { th { "#" } th { "time (UTC)" } th { "actor" } th { "action" } th { "outcome" } th { "project" } th { "records" } } }
                tbody {
                    @for e in entries {
                        tr {
                            td { a href={"/console/audit/entries/" (e.seq)} { (e.seq) } }
                            td { (rfc3339(e.time_ms)) }
                            td { (e.actor.kind.as_str()) ":" (e.actor.id) }
                            td { (e.action.as_str()) }
                            td { (e.outcome.as_str()) }
                            td { (e.project.as_deref().unwrap_or("—")) }
                            td { (e.records) }
                        }
                    }
                }
            }
        }
    }
}

/// The audit log viewer: the filters of `GET /api/v1/audit/entries`, a page of entries, the
/// latest checkpoint and key, and the bundles this viewer may download.
#[utoipa::path(get, path = "/console/audit", tag = "console", params(EntryParams),
    responses((status = 200, description = "The audit log viewer", content((String = "text/html"))), (status = 400), (status = 401), (status = 403)))]
pub async fn audit_log(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    q: web::Query<EntryParams>,
) -> Result<HttpResponse, AppError> {
    let mut params = q.into_inner().without_empty();
    let subject = principal.subject().clone();
    let readable = reach(&state, &subject, Permission::AuditRead).await?;
    let whole_log = everywhere(&subject, Permission::AuditRead);
    // Someone who reads one project's entries lands on that project rather than a refusal.
    if params.project.is_none()
        && !whole_log
        && let Some(first) = readable.first()
    {
        params.project = Some(first.to_string());
    }
    let query = params.parse()?;
    let page = read::read_page(
        &state.audit,
        state.store.as_ref(),
        &ctx,
        &principal,
        &query,
        params.filters(query.limit),
    )
    .await?;
    let nav = viewer(&state, &principal).await?;
    let exportable = reach(&state, &subject, Permission::AuditExport).await?;
    let export_all = everywhere(&subject, Permission::AuditExport);
    let checkpoint = state.store.latest_checkpoint().await?;
    let key = state.audit.verifier_key().to_string();
    let projects: Vec<String> = readable.iter().map(ToString::to_string).collect();
    let actions: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    let outcomes: Vec<String> = Outcome::ALL.iter().map(|o| o.as_str().to_owned()).collect();
    let next = page.next_cursor.map(|c| {
        let mut p = params.clone();
        p.cursor = Some(c);
        format!(
            "/console/audit?{}",
            serde_urlencoded::to_string(&p).unwrap_or_default()
        )
    });
    Ok(console_page(
        &nav,
        "Audit log",
        html! {
            form class="filters" method="get" action="/console/audit" id="filters" {
                @if whole_log {
                    (select("project", "Project", &projects, params.project.as_deref(), "every entry"))
                } @else {
                    (select("project", "Project", &projects, params.project.as_deref(), "choose"))
                }
                (select("action", "Action", &actions, params.action.as_deref(), "any"))
                (select("outcome", "Outcome", &outcomes, params.outcome.as_deref(), "any"))
                (text_input("actor", "Actor id", params.actor.as_deref(), "a person's id"))
                (text_input("from", "From", params.from.as_deref(), "2026-01-31T00:00:00Z"))
                (text_input("to", "To", params.to.as_deref(), "RFC 3339 or ms"))
                button type="submit" { "Filter" }
            }
            p class="muted" id="page-summary" {
                (page.entries.len()) " entries, newest first (" (page.scanned) " looked at). This read is itself in the log."
            }
            (entries_table(&page.entries))
            @if let Some(next) = &next {
                p class="pager" { a id="older" href=(next) { "Older entries" } }
            }
            h2 { "Verify it yourself" }
            @if let Some((size, note)) = &checkpoint {
                p { "The latest signed checkpoint covers " (size) " entries:" }
                pre id="checkpoint" { (note) }
                button type="button" class="copy" data-copy="checkpoint" { "Copy" }
            }
            p { "The log's public key:" }
            pre id="public-key" { (key) }
            button type="button" class="copy" data-copy="public-key" { "Copy" }
            @if export_all || !exportable.is_empty() {
                h2 { "Download a bundle" }
                ul id="bundles" {
                    @if export_all {
                        li { a href="/api/v1/audit/export" download="auditgate-log.bundle" { "The whole log" } }
                    }
                    @for p in &exportable {
                        li { a href={"/api/v1/audit/export?project=" (p)} download={(p) ".bundle"} { "Project " (p) } }
                    }
                }
                @if export_all {
                    // A range of the whole log: a GET form straight to the API's export.
                    form method="get" action="/api/v1/audit/export" id="range-bundle" class="stack" {
                        label { "From entry (sequence number)" input type="number" name="from" min="0" value="0"; }
                        label { "To the last signed size not above" input type="number" name="to" min="1" value=(checkpoint.as_ref().map_or(1, |(size, _)| *size)); }
                        button type="submit" { "Download this range" }
                    }
                }
                p { "Then, on your own machine, with no network or database:" }
                pre id="verify-command" { "auditgate-verify FILE.bundle --key '" (key) "' --show" }
                button type="button" class="copy" data-copy="verify-command" { "Copy" }
            }
        },
    ))
}

/// One entry, every field decoded, with its inclusion proof in the latest checkpoint.
#[utoipa::path(get, path = "/console/audit/entries/{seq}", tag = "console",
    params(("seq" = String, Path, description = "The entry's sequence number")),
    responses((status = 200, description = "The entry", content((String = "text/html"))), (status = 401), (status = 403), (status = 404)))]
pub async fn audit_entry(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let seq: u64 = path
        .parse()
        .map_err(|_| AppError::NotFound(format!("there is no entry {:?}", path.as_str())))?;
    let (entry, inclusion) =
        read::read_one(&state.audit, state.store.as_ref(), &ctx, &principal, seq).await?;
    let nav = viewer(&state, &principal).await?;
    let json = entry_json(&entry);
    let b64 = |h: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(h)
    };
    Ok(console_page(
        &nav,
        &format!("Entry {seq}"),
        html! {
            dl class="fields" id="entry-fields" {
                @for name in ENTRY_FIELDS.iter().filter(|n| **n != "details") {
                    dt { (name) }
                    dd { code { @match &json[*name] { serde_json::Value::String(s) => (s), other => (other.to_string()) } } }
                }
            }
            h2 { "Details" }
            pre id="entry-details" { (serde_json::to_string_pretty(&json["details"]).unwrap_or_default()) }
            h2 { "Inclusion proof" }
            @if inclusion.size == 0 {
                p id="no-proof" { "No signed checkpoint covers this entry yet; reload in a moment." }
            } @else {
                p { "Leaf " code { (b64(&inclusion.leaf)) } " is entry " (seq) " of the tree of " (inclusion.size) " entries, by these hashes (leaf to root):" }
                ol id="proof" { @for h in &inclusion.proof { li { code { (b64(h)) } } } }
                p class="muted" { "The same proof, for scripts: " code { "GET /api/v1/audit/proof/inclusion?seq=" (seq) "&size=" (inclusion.size) } }
            }
            p { a href="/console/audit" { "Back to the log" } }
        },
    ))
}

/// The subject report's form, as a form post sends it.
#[derive(Debug, Deserialize)]
pub struct ReportForm {
    project: String,
    distinct_id: String,
}

fn report_form(projects: &[ProjectId], chosen: Option<&str>, who: Option<&str>) -> Markup {
    let names: Vec<String> = projects.iter().map(ToString::to_string).collect();
    html! {
        form class="stack" method="post" action="/console/audit/subject-report" id="report-form" {
            (select("project", "Project", &names, chosen.or(names.first().map(String::as_str)), "choose"))
            label { "The person's distinct_id" input type="text" name="distinct_id" required value=[who] autocomplete="off"; }
            button type="submit" { "Report" }
        }
        p class="muted" { "The id is sent in the request body only, and the log records the person's pseudonym, never the id." }
    }
}

/// Refuses (and logs the refusal as `action`) a caller who holds `P` on no project at all,
/// before a form's body is judged: someone without the right learns nothing from its errors.
pub(super) async fn holds_somewhere<P: crate::access::Requirement>(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    action: Action,
) -> Result<Vec<ProjectId>, AppError> {
    let projects = reach(state, principal.subject(), P::PERMISSION).await?;
    if projects.is_empty() && !everywhere(principal.subject(), P::PERMISSION) {
        state
            .audit
            .authorize_global::<P>(ctx, principal, action)
            .await?;
    }
    Ok(projects)
}

/// "Who accessed this person's data?": the form.
#[utoipa::path(get, path = "/console/audit/subject-report", tag = "console",
    responses((status = 200, description = "The form", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn subject_report_form(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let projects = holds_somewhere::<crate::access::perm::AuditInvestigate>(
        &state,
        &ctx,
        &principal,
        Action::AuditSubjectReport,
    )
    .await?;
    let nav = viewer(&state, &principal).await?;
    Ok(console_page(
        &nav,
        "Who accessed a person",
        report_form(&projects, None, None),
    ))
}

/// "Who accessed this person's data?": the answer, from the same service as the API.
#[utoipa::path(post, path = "/console/audit/subject-report", tag = "console",
    responses((status = 200, description = "The report", content((String = "text/html"))), (status = 400), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn subject_report_run(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let projects = holds_somewhere::<crate::access::perm::AuditInvestigate>(
        &state,
        &ctx,
        &principal,
        Action::AuditSubjectReport,
    )
    .await?;
    let form: ReportForm = super::pages::body(&req, &body)?;
    let asked = report::Asked::parse(&form.project, &form.distinct_id, None, Some(500))?;
    let found =
        report::subject_report(&state.audit, state.store.as_ref(), &ctx, &principal, &asked)
            .await?;
    let nav = viewer(&state, &principal).await?;
    Ok(console_page(
        &nav,
        "Who accessed a person",
        html! {
            (report_form(&projects, Some(&form.project), Some(&form.distinct_id)))
            section id="report" data-standing=(found.standing_name()) {
                h2 { "In project " (found.project) }
                p id="report-message" { (found.message()) }
                @if let Standing::Named(_) = found.standing {
                    p { "Pseudonym " code id="pseudonym" { (found.subject_hex().unwrap_or_default()) } }
                    (entries_table(&found.page.entries))
                    @if found.page.next_cursor.is_some() {
                        p class="muted" { "Only the newest 500 are shown; the API pages through the rest." }
                    }
                    form method="post" action="/api/v1/audit/subject-report/bundle" id="report-bundle" {
                        input type="hidden" name="project" value=(form.project);
                        input type="hidden" name="distinct_id" value=(form.distinct_id);
                        button type="submit" { "Download as a verifiable bundle" }
                    }
                    p { "Verify it offline:" }
                    pre id="verify-command" { "auditgate-verify subject-report-" (found.project) ".bundle --key '" (state.audit.verifier_key().to_string()) "' --show" }
                }
            }
        },
    ))
}

/// Counts by day as a bar chart drawn on the server: an SVG the page's colours fill.
fn day_chart(rows: &[(String, i64)]) -> Markup {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let (width, height) = (600.0_f64, 120.0_f64);
    let slot = width / rows.len().max(1) as f64;
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    html! {
        figure id="counts-by-day" {
            svg viewBox={"0 0 " (width) " " (height + 20.0)} width="100%" height="140" role="img"
                aria-label={(total) " events over " (rows.len()) " days"} {
                @for (i, (day, n)) in rows.iter().enumerate() {
                    @let h = (*n as f64 / max as f64) * height;
                    rect x=(format!("{:.1}", i as f64 * slot + 1.0)) y=(format!("{:.1}", height - h))
                        width=(format!("{:.1}", (slot - 2.0).max(1.0))) height=(format!("{:.1}", h))
                        fill="currentColor" class="bar" {
                        title { (day) ": " (n) }
                    }
                }
                @if let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) {
                    text x="0" y=(height + 16.0) font-size="12" fill="currentColor" { (first) }
                    text x=(width) y=(height + 16.0) font-size="12" fill="currentColor" text-anchor="end" { (last) }
                }
            }
            figcaption class="muted" { (total) " events by day (UTC)" }
        }
    }
}

/// A property value as text, sensitive values marked as hidden.
fn value_text(v: &serde_json::Value) -> Markup {
    match v {
        serde_json::Value::String(s) if s == crate::events::REDACTED => {
            html! { span class="redacted" title="sensitive: your roles do not reveal it" { (s) } }
        }
        serde_json::Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}

/// The event explorer of one project: the filters of `GET .../events`, a page of events
/// (sensitive values redacted as the API redacts them) and counts by day, each read logged
/// as its API call is.
#[utoipa::path(get, path = "/console/projects/{project}/events", tag = "console",
    params(("project" = String, Path, description = "Project id"), super::query::Filters),
    responses((status = 200, description = "The event explorer", content((String = "text/html"))), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn explorer(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    super::extract::ProjectPath(project): super::extract::ProjectPath,
    filters: web::Query<super::query::Filters>,
    cursor: web::Query<ExplorerPage>,
) -> Result<HttpResponse, AppError> {
    use crate::events::reads::{self, Reader};
    let filters = filters.into_inner().without_empty();
    let after = cursor
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(crate::events::Cursor::parse)
        .transpose()?;
    let reader = Reader {
        audit: &state.audit,
        store: &state.store,
        ctx: &ctx,
        principal: &principal,
    };
    let page = reads::events_page(&reader, &project, filters.parse()?, after, 50).await?;
    let days = reads::counts(
        &reader,
        &project,
        filters.parse()?,
        crate::store::CountGroup::Day,
        "day",
    )
    .await?;
    let nav = viewer(&state, &principal).await?;
    let profiles = crate::access::holds(&principal, Permission::ProfilesRead, &project);
    let base = format!("/console/projects/{project}/events");
    let next = page.next_cursor.as_ref().map(|c| {
        let q = serde_urlencoded::to_string(&filters).unwrap_or_default();
        format!("{base}?{q}&cursor={c}")
    });
    Ok(console_page(
        &nav,
        &format!("Events in {project}"),
        html! {
            form class="filters" method="get" action=(base) id="filters" {
                (text_input("event", "Event", filters.event.as_deref(), "e.g. Purchase"))
                (text_input("distinct_id", "Person (distinct_id)", filters.distinct_id.as_deref(), "one person"))
                (text_input("from", "From", filters.from.as_deref(), "2026-01-31T00:00:00Z"))
                (text_input("to", "To", filters.to.as_deref(), "RFC 3339 or ms"))
                button type="submit" { "Filter" }
            }
            (day_chart(&days))
            p class="muted" { "Values of sensitive properties show as " code { (crate::events::REDACTED) } " unless your roles reveal them. Every view here is in the audit log." }
            div class="table-wrap" {
                table id="events" {
                    thead { tr { th { "time (UTC)" } th { "event" } th { "person" } th { "properties" } } }
                    tbody {
                        @for e in &page.events {
                            tr {
                                td { (e.time) }
                                td { (e.event) }
                                td {
                                    @if profiles {
                                        a href={"/console/projects/" (project) "/profiles/" (urlencoding(&e.distinct_id))} { (e.distinct_id) }
                                    } @else { (e.distinct_id) }
                                }
                                td {
                                    dl class="fields" {
                                        @for (k, v) in &e.properties {
                                            dt { (k) } dd { (value_text(v)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &next {
                p class="pager" { a id="next-page" href=(next) { "Next page" } }
            }
        },
    ))
}

/// Where the explorer's page starts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExplorerPage {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A path segment, percent-encoded.
fn urlencoding(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .replace('+', "%20")
}

/// One person's profile, redacted as the API redacts it; the read is logged as its API
/// call's is.
#[utoipa::path(get, path = "/console/projects/{project}/profiles/{distinct_id}", tag = "console",
    params(("project" = String, Path, description = "Project id"), ("distinct_id" = String, Path, description = "The person")),
    responses((status = 200, description = "The profile", content((String = "text/html"))), (status = 401), (status = 403), (status = 404)))]
pub async fn profile(
    state: web::Data<AppState>,
    ctx: RequestContext,
    principal: Principal,
    super::extract::ProjectPath(project): super::extract::ProjectPath,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (_, who) = path.into_inner();
    let reader = crate::events::reads::Reader {
        audit: &state.audit,
        store: &state.store,
        ctx: &ctx,
        principal: &principal,
    };
    let p = crate::events::reads::profile(&reader, &project, &who).await?;
    let nav = viewer(&state, &principal).await?;
    Ok(console_page(
        &nav,
        &format!("Profile of {}", p.distinct_id),
        html! {
            p class="muted" { "In project " (project) ", last changed " (p.updated_at.to_rfc3339()) "." }
            dl class="fields" id="profile" {
                @for (k, v) in &p.properties { dt { (k) } dd { (value_text(v)) } }
            }
            p { a href={"/console/projects/" (project) "/events?distinct_id=" (urlencoding(&p.distinct_id))} { "Their events" } }
        },
    ))
}
