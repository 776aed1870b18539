//! The console's pages for data-protection officers: a project's subject requests (exports
//! under `subjects:export`, deletions under `subjects:erase`), made, followed, approved as the
//! second person or cancelled through the same services as the API.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::console::viewer;
use super::extract::ProjectPath;
use super::pages::{body, console_page, see_other};
use super::subjects::{authorized, make};
use crate::access::{Permission, Principal, Requirement, perm};
use crate::audit::RequestContext;
use crate::domain::DistinctId;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::privacy::subjects::{self, ComplianceType, JobState, NewRequest, RequestKind};
use crate::state::AppState;

/// `exports` or `deletions`, the path segment of `P`'s requests.
fn segment<P: Requirement>() -> &'static str {
    if P::PERMISSION == Permission::SubjectsExport {
        "exports"
    } else {
        "deletions"
    }
}

async fn requests_page<P: Requirement>(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    project: crate::domain::ProjectId,
) -> Result<HttpResponse, AppError> {
    authorized::<P>(state, ctx, principal, &project).await?;
    let exports = P::PERMISSION == Permission::SubjectsExport;
    let list: Vec<_> = state
        .store
        .subject_requests(&project)
        .await?
        .into_iter()
        .filter(|r| (r.kind == RequestKind::Export) == exports)
        .collect();
    // As the requests table names its requester.
    let me = subjects::actor_name(principal);
    let nav = viewer(state, principal).await?;
    let base = format!(
        "/console/projects/{project}/subject-requests/{}",
        segment::<P>()
    );
    let title = if exports {
        format!("Exports of people's data in {project}")
    } else {
        format!("Erasures in {project}")
    };
    Ok(console_page(
        &nav,
        &title,
        html! {
            form class="stack" method="post" action=(base) id="subject-request-form" {
                @if !exports {
                    label { "What to do"
                        select name="kind" {
                            option value="erase" selected { "Erase everything about them" }
                            option value="erase_property" { "Delete one property" }
                            option value="anonymize" { "Anonymise (keep counts)" }
                        }
                    }
                    label { "Property (to delete one)" input type="text" name="property"; }
                }
                label { "distinct_ids, one per line (at most 2000)" textarea name="distinct_ids" rows="4" required {} }
                label { "Why (a ticket)" input type="text" name="reason" required; }
                label { "Under"
                    select name="compliance_type" { option value="GDPR" selected { "GDPR" } option value="CCPA" { "CCPA" } }
                }
                button type="submit" { @if exports { "Export their data" } @else { "Ask" } }
            }
            p class="muted" { "The ids go to the request only: the log names people by pseudonym, and a finished erasure drops the ids it held." }
            h2 { "Requests" }
            @if list.is_empty() {
                p id="no-subject-requests" { "None yet." }
            } @else {
                div class="table-wrap" {
                    table id="subject-requests" {
                        thead { tr { th { "made (UTC)" } th { "kind" } th { "people" } th { "state" } th { "events" } th { "profiles" } th { "by" } th { "" } } }
                        tbody {
                            @for r in &list {
                                tr data-request=(r.id) {
                                    td { (r.created_at.to_rfc3339()) }
                                    td { (r.kind.as_str()) }
                                    td { (r.subject_count) }
                                    td class="state" { (r.state.as_str()) @if r.needs_approval && r.approved_by.is_none() && r.state == JobState::Pending { " (waits for a second person)" } }
                                    td { (r.events_affected) }
                                    td { (r.profiles_affected) }
                                    td { (r.requested_by) }
                                    td {
                                        @if r.state == JobState::Success && exports {
                                            a href={"/api/v1/projects/" (project) "/subject-requests/exports/" (r.id) "/download"} download { "Download" }
                                        }
                                        @if r.state == JobState::Pending {
                                            @if !exports && r.needs_approval && r.approved_by.is_none() {
                                                @if r.requested_by == me {
                                                    span class="duty" { "Yours: another person approves it." }
                                                } @else {
                                                    form method="post" action={(base) "/decision"} class="inline" {
                                                        input type="hidden" name="id" value=(r.id);
                                                        input type="hidden" name="decision" value="approve";
                                                        button type="submit" data-decision="approve" { "Approve" }
                                                    }
                                                }
                                            }
                                            form method="post" action={(base) "/decision"} class="inline" {
                                                input type="hidden" name="id" value=(r.id);
                                                input type="hidden" name="decision" value="cancel";
                                                button type="submit" data-decision="cancel" { "Cancel" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// What the request form sends.
#[derive(Debug, Deserialize)]
struct RequestForm {
    distinct_ids: String,
    reason: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    property: Option<String>,
    #[serde(default)]
    compliance_type: Option<String>,
}

async fn make_request<P: Requirement>(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    project: crate::domain::ProjectId,
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<HttpResponse, AppError> {
    // The right first: a refused caller learns nothing from the form's errors.
    let auth = authorized::<P>(state, ctx, principal, &project).await?;
    let f: RequestForm = body(req, bytes)?;
    crate::domain::FreeText::required("reason", &f.reason)?;
    let kind = match (P::PERMISSION, f.kind.as_deref()) {
        (Permission::SubjectsExport, _) => RequestKind::Export,
        (_, None | Some("erase")) => RequestKind::Erase,
        (_, Some(k)) => RequestKind::parse(k)
            .filter(|k| *k != RequestKind::Export)
            .ok_or_else(|| {
                AppError::Unprocessable(format!(
                    "kind must be erase, erase_property or anonymize, not {k:?}"
                ))
            })?,
    };
    let compliance_type = match f.compliance_type.as_deref() {
        None | Some("GDPR") => ComplianceType::Gdpr,
        Some("CCPA") => ComplianceType::Ccpa,
        Some(other) => {
            return Err(AppError::Unprocessable(format!(
                "compliance_type must be GDPR or CCPA, not {other:?}"
            )));
        }
    };
    let distinct_ids = f
        .distinct_ids
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, d)| {
            DistinctId::parse(d)
                .map_err(|e| AppError::Unprocessable(format!("line {}: {}", i + 1, e.0)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewRequest {
        kind,
        compliance_type,
        reason: f.reason,
        distinct_ids,
        property: f.property.filter(|p| !p.trim().is_empty()),
        drop_properties: vec![],
    };
    make(state, ctx, &auth, new).await?;
    Ok(see_other(&format!(
        "/console/projects/{project}/subject-requests/{}",
        segment::<P>()
    )))
}

/// A decision on a request.
#[derive(Debug, Deserialize)]
struct Decision {
    id: String,
    decision: String,
}

async fn decide<P: Requirement>(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    project: crate::domain::ProjectId,
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<HttpResponse, AppError> {
    let auth = authorized::<P>(state, ctx, principal, &project).await?;
    let d: Decision = body(req, bytes)?;
    let now = state.clock.now();
    match d.decision.as_str() {
        "cancel" => {
            subjects::cancel(&state.store, &state.audit, ctx, &auth, &d.id, now).await?;
        }
        "approve" if P::PERMISSION == Permission::SubjectsErase => {
            let auth = crate::access::narrow::<P, perm::SubjectsErase>(&auth)?;
            subjects::approve(&state.store, &state.audit, ctx, &auth, &d.id, now).await?;
            state.jobs.notify_one();
        }
        other => {
            return Err(AppError::Unprocessable(format!(
                "decision must be approve (deletions) or cancel, not {other:?}"
            )));
        }
    }
    Ok(see_other(&format!(
        "/console/projects/{project}/subject-requests/{}",
        segment::<P>()
    )))
}

/// A project's deletion requests, and the form to make one.
#[utoipa::path(get, path = "/console/projects/{project}/subject-requests/deletions", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, description = "Deletion requests", content((String = "text/html"))), (status = 401), (status = 403), (status = 404)))]
pub async fn deletions(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    requests_page::<perm::SubjectsErase>(&state, &ctx, &principal, project).await
}

/// A project's export requests, and the form to make one.
#[utoipa::path(get, path = "/console/projects/{project}/subject-requests/exports", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, description = "Export requests", content((String = "text/html"))), (status = 401), (status = 403), (status = 404)))]
pub async fn exports(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    requests_page::<perm::SubjectsExport>(&state, &ctx, &principal, project).await
}

/// Asks to erase (or delete a property of, or anonymise) people.
#[utoipa::path(post, path = "/console/projects/{project}/subject-requests/deletions", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "Back to the requests"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn ask_deletion(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    make_request::<perm::SubjectsErase>(&state, &ctx, &principal, project, &req, &bytes).await
}

/// Asks for everything stored about people.
#[utoipa::path(post, path = "/console/projects/{project}/subject-requests/exports", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "Back to the requests"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn ask_export(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    make_request::<perm::SubjectsExport>(&state, &ctx, &principal, project, &req, &bytes).await
}

/// Approves (as the second person) or cancels a deletion request.
#[utoipa::path(post, path = "/console/projects/{project}/subject-requests/deletions/decision", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "Back to the requests"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn decide_deletion(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide::<perm::SubjectsErase>(&state, &ctx, &principal, project, &req, &bytes).await
}

/// Cancels an export request that has not started.
#[utoipa::path(post, path = "/console/projects/{project}/subject-requests/exports/decision", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "Back to the requests"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn decide_export(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    decide::<perm::SubjectsExport>(&state, &ctx, &principal, project, &req, &bytes).await
}

/// A person's opt-out and consent, looked up and changed by a holder of `subjects:consent`.
#[derive(Debug, Deserialize)]
struct PreferencesForm {
    distinct_id: String,
    /// `read`, `opt_out`, `opt_in`, `consent` or `withdraw`.
    change: String,
}

fn lookup_form(action: &str, who: Option<&str>) -> maud::Markup {
    html! {
        form class="stack" method="post" action=(action) id="preferences-form" {
            label { "The person's distinct_id" input type="text" name="distinct_id" required value=[who] autocomplete="off"; }
            input type="hidden" name="change" value="read";
            button type="submit" { "Look up" }
        }
    }
}

/// The form to look a person up (the id goes in a form body, never in the URL).
#[utoipa::path(get, path = "/console/projects/{project}/preferences", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, description = "The look-up form", content((String = "text/html"))), (status = 401), (status = 403), (status = 404)))]
pub async fn preferences_form(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize::<perm::SubjectsConsent>(&ctx, &principal, &project, Action::SubjectsConsent)
        .await?;
    crate::projects::live(state.store.as_ref(), &project).await?;
    let nav = viewer(&state, &principal).await?;
    let action = format!("/console/projects/{project}/preferences");
    Ok(console_page(
        &nav,
        &format!("Opt-outs and consent in {project}"),
        lookup_form(&action, None),
    ))
}

/// Reads, or records a choice for, one person's opt-out and consent: the services of the
/// API's preferences, opt-out and consent routes (each logged, naming the pseudonym).
#[utoipa::path(post, path = "/console/projects/{project}/preferences", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, description = "The person's preferences", content((String = "text/html"))), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn preferences(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    use crate::privacy::consent::{self, Choice};
    let auth = state
        .audit
        .authorize::<perm::SubjectsConsent>(&ctx, &principal, &project, Action::SubjectsConsent)
        .await?;
    crate::projects::live(state.store.as_ref(), &project).await?;
    let f: PreferencesForm = body(&req, &bytes)?;
    let person = DistinctId::parse(&f.distinct_id).map_err(|e| AppError::Unprocessable(e.0))?;
    let choice = match f.change.as_str() {
        "read" => None,
        "opt_out" => Some(Choice::OptOut),
        "opt_in" => Some(Choice::OptIn),
        "consent" => Some(Choice::Consent),
        "withdraw" => Some(Choice::Withdraw),
        other => {
            return Err(AppError::Unprocessable(format!(
                "change must be read, opt_out, opt_in, consent or withdraw, not {other:?}"
            )));
        }
    };
    let prefs = match choice {
        Some(c) => {
            let now = state.clock.now();
            consent::record(
                &state.store,
                &state.audit,
                &ctx,
                &auth,
                &person,
                c,
                "console",
                now,
            )
            .await?;
            consent::preferences(&state.store, &state.audit, &auth, &person).await?
        }
        None => consent::read(&state.store, &state.audit, &ctx, &auth, &person).await?,
    };
    let nav = viewer(&state, &principal).await?;
    let action = format!("/console/projects/{project}/preferences");
    let change = |value: &str, label: &str| {
        html! {
            form method="post" action=(action) class="inline" {
                input type="hidden" name="distinct_id" value=(f.distinct_id);
                input type="hidden" name="change" value=(value);
                button type="submit" data-change=(value) { (label) }
            }
        }
    };
    Ok(console_page(
        &nav,
        &format!("Opt-outs and consent in {project}"),
        html! {
            (lookup_form(&action, Some(&f.distinct_id)))
            section id="preferences" data-opted-out=(prefs.opted_out) {
                h2 { "This person" }
                p id="opt-out-state" {
                    @if prefs.opted_out {
                        "Opted out (" (prefs.opt_out_source.as_deref().unwrap_or("")) ", " (prefs.opted_out_at.as_deref().unwrap_or("")) "): nothing they send is stored. "
                        (change("opt_in", "Undo the opt-out"))
                    } @else {
                        "Not opted out. " (change("opt_out", "Opt them out"))
                    }
                }
                p id="consent-state" {
                    @match prefs.consent {
                        Some(true) => { "Consent given. " (change("withdraw", "Record a withdrawal")) }
                        Some(false) => { "Consent withdrawn. " (change("consent", "Record consent")) }
                        None => { "No consent recorded. " (change("consent", "Record consent")) }
                    }
                }
                @if !prefs.consent_history.is_empty() {
                    ul id="consent-history" {
                        @for c in &prefs.consent_history {
                            li { (c.at) ": " @if c.given { "given" } @else { "withdrawn" } " (" (c.source) ")" }
                        }
                    }
                }
            }
        },
    ))
}
