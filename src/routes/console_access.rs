//! The console's access pages: asking for access just in time, and the administrators' grants
//! and approvals queue. Every form posts to a page route that calls the same admin service as
//! the API (so the same rights, separation of duties and audit entries apply), then goes back
//! to the page it came from.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::console::{
    action_form, holds_somewhere, nav_of, person_subject, reach, select, text_input, viewer,
};
use super::grants::admin;
use super::pages::{body, console_page, see_other};
use crate::access::{GrantStatus, Principal, Subject, perm};
use crate::admin::Administrator;
use crate::admin::grants::{self, NewGrant};
use crate::admin::requests::{self, NewRequest};
use crate::audit::RequestContext;
use crate::domain::{BUILTIN, Permission, SubjectKind};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::signin::caller::Person;
use crate::state::AppState;
use crate::store::PropertyKind;

/// Role names a form offers: the built-in ones and the custom ones.
async fn role_names(state: &AppState) -> Result<Vec<String>, AppError> {
    let mut names: Vec<String> = BUILTIN.iter().map(|r| r.name.to_owned()).collect();
    names.extend(
        state
            .store
            .custom_roles()
            .await?
            .into_iter()
            .map(|r| r.name),
    );
    Ok(names)
}

/// Just-in-time access: ask for a role on a project for a while, and follow the requests.
#[utoipa::path(get, path = "/console/access", tag = "console",
    responses((status = 200, description = "The person's access requests and the form to ask", content((String = "text/html"))), (status = 401)))]
pub async fn access_page(
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let subject = person_subject(&person);
    let nav = nav_of(&state, &subject).await?;
    let now = state.clock.now();
    let mine = requests::of_person(&admin(&state), &person.user.id).await?;
    let roles = role_names(&state).await?;
    Ok(console_page(
        &nav,
        "Request access",
        html! {
            p class="muted" { "Ask for a role on a project for a few hours. Other administrators approve it; once approved it works at once and lapses by itself." }
            form class="stack" method="post" action="/console/access" id="request-form" {
                (text_input("project", "Project id", None, "e.g. shop"))
                (select("role", "Role", &roles, Some("analyst"), "choose"))
                label { "Why (a ticket or an incident)" input type="text" name="reason" required; }
                label { "For how many hours" input type="number" name="duration_hours" value="4" min="1" required; }
                button type="submit" { "Ask" }
            }
            h2 { "Your requests" }
            @if mine.is_empty() {
                p id="no-requests" { "You have asked for nothing yet." }
            } @else {
                div class="table-wrap" {
                    table id="my-requests" {
                        thead { tr { th { "asked (UTC)" } th { "role" } th { "project" } th { "why" } th { "state" } } }
                        tbody {
                            @for r in &mine {
                                tr {
                                    td { (r.created_at.to_rfc3339()) }
                                    td { (r.role) }
                                    td { (r.project) }
                                    td { (r.reason) }
                                    td class="state" { (r.state_at(now)) }
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
    project: String,
    role: String,
    reason: String,
    duration_hours: String,
}

/// Asks for access (the same service as `POST /api/v1/access-requests`).
#[utoipa::path(post, path = "/console/access", tag = "console",
    responses((status = 303, description = "Back to the requests"), (status = 401), (status = 422)))]
pub async fn ask(
    req: HttpRequest,
    ctx: RequestContext,
    person: Person,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let f: RequestForm = body(&req, &bytes)?;
    let duration_hours = f.duration_hours.trim().parse().map_err(|_| {
        AppError::Unprocessable("duration_hours must be a whole number of hours".into())
    })?;
    let asked = NewRequest {
        project: f.project,
        role: f.role,
        reason: f.reason,
        duration_hours,
    };
    requests::ask(&admin(&state), &ctx, person.actor(), asked).await?;
    Ok(see_other("/console/access"))
}

/// Whom the viewer is, for separation of duties on the page: the person's id.
fn viewer_id(subject: &Subject) -> &str {
    match subject {
        Subject::User { id, .. } | Subject::ServiceAccount { id, .. } => id,
        Subject::ProjectToken { .. } => "",
    }
}

fn decision_form(action: &str, id: &str, choices: &[(&str, &str)]) -> Markup {
    html! {
        @for (value, label) in choices {
            (action_form(action, &[("id", id), ("decision", value)], label, value))
        }
    }
}

/// Grants and the approvals queue, for holders of `roles:assign`: pending grants and access
/// requests to approve or reject (separation of duties explained where it applies), every
/// grant with revoke, and the form to grant.
#[utoipa::path(get, path = "/console/admin/grants", tag = "console",
    responses((status = 200, description = "Grants and approvals", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn grants_page(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let subject = principal.subject().clone();
    let everywhere = crate::access::decide_global(&subject, Permission::RolesAssign)
        == crate::access::Decision::Allow;
    let projects = reach(&state, &subject, Permission::RolesAssign).await?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let a = admin(&state);
    // Listed through the service, so the right is checked (and a refusal logged) as the API's.
    let mut all = Vec::new();
    let mut pending_requests = Vec::new();
    if everywhere || projects.is_empty() {
        all = grants::list(&a, by, None).await?;
        pending_requests = requests::pending(&a, by, None).await?;
    } else {
        for p in &projects {
            for g in grants::list(&a, by, Some(p.as_str())).await? {
                if !all
                    .iter()
                    .any(|x: &crate::access::GrantRecord| x.id == g.id)
                {
                    all.push(g);
                }
            }
            pending_requests.extend(requests::pending(&a, by, Some(p)).await?);
        }
    }
    let me = viewer_id(&subject).to_owned();
    let nav = viewer(&state, &principal).await?;
    let roles = role_names(&state).await?;
    let mut scopes: Vec<String> = projects.iter().map(ToString::to_string).collect();
    if everywhere {
        scopes.insert(0, "*".into());
    }
    let pending: Vec<_> = all
        .iter()
        .filter(|g| g.status == GrantStatus::Pending)
        .collect();
    Ok(console_page(
        &nav,
        "Grants and approvals",
        html! {
            h2 { "Waiting for approval" }
            @if pending.is_empty() && pending_requests.is_empty() {
                p id="queue-empty" { "Nothing is waiting." }
            }
            @if !pending.is_empty() {
                div class="table-wrap" {
                    table id="pending-grants" {
                        thead { tr { th { "who" } th { "role" } th { "project" } th { "why" } th { "granted by" } th { "decide" } } }
                        tbody {
                            @for g in &pending {
                                tr data-grant=(g.id) {
                                    td { (g.subject) }
                                    td { (g.role.as_deref().unwrap_or("—")) }
                                    td { (g.project) }
                                    td { (g.reason) }
                                    td { (g.granted_by) }
                                    td {
                                        @if g.granted_by == me {
                                            span class="duty" { "You granted it: another administrator must approve it (separation of duties)." }
                                        } @else if g.subject == me {
                                            span class="duty" { "It is for you: another administrator must approve it (separation of duties)." }
                                        } @else {
                                            (decision_form("/console/admin/grants/decision", &g.id, &[("approve", "Approve"), ("reject", "Reject")]))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !pending_requests.is_empty() {
                h2 { "Access requests" }
                div class="table-wrap" {
                    table id="pending-requests" {
                        thead { tr { th { "who" } th { "role" } th { "project" } th { "why" } th { "hours" } th { "decide" } } }
                        tbody {
                            @for r in &pending_requests {
                                tr data-request=(r.id) {
                                    td { (r.requester) }
                                    td { (r.role) }
                                    td { (r.project) }
                                    td { (r.reason) }
                                    td { (r.duration_ms / 3_600_000) }
                                    td {
                                        @if r.requester == me {
                                            span class="duty" { "Your own request: others approve it (separation of duties)." }
                                        } @else {
                                            (decision_form("/console/admin/access-requests/decision", &r.id, &[("approve", "Approve"), ("reject", "Reject")]))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Grant a role" }
            form class="stack" method="post" action="/console/admin/grants" id="grant-form" {
                (select("subject_kind", "To a", &["user".to_owned(), "group".to_owned(), "service_account".to_owned()], Some("user"), "choose"))
                (text_input("subject", "Person's id, group or service account", None, "their id"))
                (select("role", "Role", &roles, Some("analyst"), "choose"))
                (select("project", "Project", &scopes, scopes.first().map(String::as_str), "choose"))
                label { "Why (a ticket)" input type="text" name="reason" required; }
                label { "Lapses after (days, empty for never)" input type="number" name="expires_in_days" min="1"; }
                button type="submit" { "Grant" }
            }
            h2 { "All grants" }
            div class="table-wrap" {
                table id="grants" {
                    thead { tr { th { "who" } th { "role or denial" } th { "project" } th { "state" } th { "why" } th { "lapses" } th { "review due" } th { "" } } }
                    tbody {
                        @for g in &all {
                            tr data-grant=(g.id) {
                                td { (g.subject_kind.as_str()) ": " (g.subject) }
                                td { @if let Some(r) = &g.role { (r) } @else { "deny " (g.permission.map(Permission::as_str).unwrap_or("")) } }
                                td { (g.project) }
                                td class="state" {
                                    (g.status.as_str())
                                    @if g.locked_at.is_some() { " (locked)" }
                                }
                                td { (g.reason) }
                                td { (g.expires_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())) }
                                td { (g.review_due().map(|t| t.to_rfc3339()).unwrap_or_else(|| "—".into())) }
                                td {
                                    @if g.status == GrantStatus::Active {
                                        @if g.locked_at.is_some() {
                                            (decision_form("/console/admin/grants/decision", &g.id, &[("revoke", "Revoke"), ("unlock", "Unlock")]))
                                        } @else {
                                            (decision_form("/console/admin/grants/decision", &g.id, &[("revoke", "Revoke"), ("lock", "Lock")]))
                                        }
                                        @if !(g.subject_kind == SubjectKind::User && g.subject == me) {
                                            form method="post" action="/console/admin/grants/review" class="inline review" {
                                                input type="hidden" name="id" value=(g.id);
                                                label { "Still needed because " input type="text" name="note" required; }
                                                button type="submit" { "Reviewed" }
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

/// What the grant form sends.
#[derive(Debug, Deserialize)]
struct GrantForm {
    subject_kind: String,
    subject: String,
    role: String,
    project: String,
    reason: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Grants a role (the same service as `POST /api/v1/admin/grants`).
#[utoipa::path(post, path = "/console/admin/grants", tag = "console",
    responses((status = 303, description = "Back to the grants"), (status = 401), (status = 403), (status = 422)))]
pub async fn grant(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    holds_somewhere::<perm::RolesAssign>(&state, &ctx, &principal, Action::GrantChange).await?;
    let f: GrantForm = body(&req, &bytes)?;
    let expires_in_days = match f.expires_in_days.trim() {
        "" => None,
        days => Some(days.parse().map_err(|_| {
            AppError::Unprocessable("expires_in_days must be a whole number of days".into())
        })?),
    };
    let new = NewGrant::parse(
        &f.subject_kind,
        f.subject,
        Some(f.role),
        None,
        f.project,
        f.reason,
        expires_in_days,
    )?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    grants::create(&admin(&state), by, new).await?;
    Ok(see_other("/console/admin/grants"))
}

/// A decision on a grant or a request.
#[derive(Debug, Deserialize)]
struct Decision {
    id: String,
    decision: String,
}

/// Approves, rejects or revokes a grant (the services of the API's approve, reject and
/// revoke).
#[utoipa::path(post, path = "/console/admin/grants/decision", tag = "console",
    responses((status = 303, description = "Back to the grants"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn decide_grant(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    holds_somewhere::<perm::RolesAssign>(&state, &ctx, &principal, Action::GrantChange).await?;
    let d: Decision = body(&req, &bytes)?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let to = match d.decision.as_str() {
        "approve" => GrantStatus::Active,
        "reject" => GrantStatus::Rejected,
        "revoke" => GrantStatus::Revoked,
        lock @ ("lock" | "unlock") => {
            grants::lock(&admin(&state), by, &d.id, lock == "lock").await?;
            return Ok(see_other("/console/admin/grants"));
        }
        other => {
            return Err(AppError::Unprocessable(format!(
                "decision must be approve, reject, revoke, lock or unlock, not {other:?}"
            )));
        }
    };
    grants::decide(&admin(&state), by, &d.id, to).await?;
    Ok(see_other("/console/admin/grants"))
}

/// A review of a grant: why it is still needed.
#[derive(Debug, Deserialize)]
struct ReviewForm {
    id: String,
    note: String,
}

/// Records a grant's review (the service of `POST /api/v1/admin/grants/{id}/review`).
#[utoipa::path(post, path = "/console/admin/grants/review", tag = "console",
    responses((status = 303, description = "Back to the grants"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn review_grant(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    holds_somewhere::<perm::RolesAssign>(&state, &ctx, &principal, Action::GrantChange).await?;
    let f: ReviewForm = body(&req, &bytes)?;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    grants::review(&admin(&state), by, &f.id, || Ok(f.note.clone())).await?;
    Ok(see_other("/console/admin/grants"))
}

/// Approves or rejects an access request (the service of the API's approve and reject).
#[utoipa::path(post, path = "/console/admin/access-requests/decision", tag = "console",
    responses((status = 303, description = "Back to the grants"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn decide_request(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    holds_somewhere::<perm::RolesAssign>(&state, &ctx, &principal, Action::GrantChange).await?;
    let d: Decision = body(&req, &bytes)?;
    let approve = match d.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(AppError::Unprocessable(format!(
                "decision must be approve or reject, not {other:?}"
            )));
        }
    };
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    requests::decide(&admin(&state), by, &d.id, approve).await?;
    Ok(see_other("/console/admin/grants"))
}

/// People, for holders of `users:admin` (on every project): disable or enable them, reset
/// their 2-step verification, end their sessions; and the access review to download.
#[utoipa::path(get, path = "/console/admin/people", tag = "console",
    responses((status = 200, description = "People", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn people_page(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    // Through the service: the right is checked (and a refusal logged) as the API's.
    let people = crate::admin::people::list(&admin(&state), by).await?;
    let me = viewer_id(principal.subject()).to_owned();
    let nav = viewer(&state, &principal).await?;
    // The review's own right (audit:read on every project), so the link is never refused.
    let review = crate::access::decide_global(principal.subject(), Permission::AuditRead)
        == crate::access::Decision::Allow;
    Ok(console_page(
        &nav,
        "People",
        html! {
            @if review {
                p { "The access review, who holds what where and why: "
                    a href="/api/v1/admin/access-review?format=csv" download="access-review.csv" { "download as CSV" } "." }
            }
            div class="table-wrap" {
                table id="people" {
                    thead { tr { th { "e-mail" } th { "id" } th { "kind" } th { "last sign-in" } th { "state" } th { "" } } }
                    tbody {
                        @for u in &people {
                            tr data-person=(u.id) {
                                td { (u.email) }
                                td { code { (u.id) } }
                                td { (u.kind.as_str()) }
                                td { (u.last_signin_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())) }
                                td class="state" { @if u.disabled_at.is_some() { "disabled" } @else { "active" } }
                                td {
                                    @if u.id == me {
                                        span class="duty" { "You" }
                                    } @else {
                                        @if u.disabled_at.is_some() {
                                            (decision_form("/console/admin/people/decision", &u.id, &[("enable", "Enable")]))
                                        } @else {
                                            (decision_form("/console/admin/people/decision", &u.id, &[("disable", "Disable"), ("end_sessions", "End sessions"), ("reset_second_factor", "Reset 2-step verification")]))
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

/// Disables, enables, ends the sessions of, or resets the 2-step verification of a person
/// (the services of the API's user routes).
#[utoipa::path(post, path = "/console/admin/people/decision", tag = "console",
    responses((status = 303, description = "Back to the people"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn decide_person(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    use crate::admin::people;
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let a = admin(&state);
    // The right first (on every project, as the API's), then the form.
    by.may::<perm::UsersAdmin>(&state.audit, Action::UserChange, "*")
        .await?;
    let d: Decision = body(&req, &bytes)?;
    match d.decision.as_str() {
        "disable" => {
            people::set_disabled(&a, by, &d.id, true).await?;
        }
        "enable" => {
            people::set_disabled(&a, by, &d.id, false).await?;
        }
        "end_sessions" => {
            people::end_sessions(&a, by, &d.id).await?;
        }
        "reset_second_factor" => {
            people::reset_second_factor(&a, by, &d.id).await?;
        }
        other => {
            return Err(AppError::Unprocessable(format!(
                "decision must be disable, enable, end_sessions or reset_second_factor, not {other:?}"
            )));
        }
    }
    Ok(see_other("/console/admin/people"))
}

/// A project's sensitive properties, for holders of `properties:classify` there: mark one,
/// or ask to take a mark off (a second person confirms).
#[utoipa::path(get, path = "/console/projects/{project}/sensitive-properties", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, description = "Sensitive properties", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn sensitive_page(
    ctx: RequestContext,
    principal: Principal,
    super::extract::ProjectPath(project): super::extract::ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize::<perm::PropertiesClassify>(
            &ctx,
            &principal,
            &project,
            Action::PropertiesClassify,
        )
        .await?;
    let nav = viewer(&state, &principal).await?;
    let mut marked = Vec::new();
    for kind in [PropertyKind::Event, PropertyKind::Profile] {
        for name in state.store.sensitive_properties(&project, kind).await? {
            let asked = state
                .store
                .classification(&project, kind, &name)
                .await?
                .flatten();
            marked.push((kind, name, asked));
        }
    }
    let action = format!("/console/projects/{project}/sensitive-properties");
    Ok(console_page(
        &nav,
        &format!("Sensitive properties in {project}"),
        html! {
            p class="muted" { "Values of these properties are shown as [redacted] to readers without events:read_sensitive. Taking a mark off needs a second person." }
            div class="table-wrap" {
                table id="sensitive" {
                    thead { tr { th { "kind" } th { "property" } th { "" } } }
                    tbody {
                        @for (kind, name, asked) in &marked {
                            tr {
                                td { (kind.as_str()) }
                                td { code { (name) } }
                                td {
                                    @if let Some(who) = asked { span class="duty" { "Removal asked by " (who) "; another person confirms it. " } }
                                    form method="post" action=(action) class="inline" {
                                        input type="hidden" name="kind" value=(kind.as_str());
                                        input type="hidden" name="name" value=(name);
                                        input type="hidden" name="sensitive" value="false";
                                        button type="submit" data-decision="unmark" { "Take the mark off" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form class="stack" method="post" action=(action) id="mark-form" {
                (select("kind", "Kind", &["event".to_owned(), "profile".to_owned()], Some("event"), "choose"))
                (text_input("name", "Property", None, "e.g. email"))
                input type="hidden" name="sensitive" value="true";
                button type="submit" { "Mark sensitive" }
            }
        },
    ))
}

/// What the classification forms send.
#[derive(Debug, Deserialize)]
struct ClassifyForm {
    kind: String,
    name: String,
    sensitive: String,
}

/// Marks a property, or asks (or, as the second person, confirms) taking a mark off: the
/// service of the API's PUT and DELETE.
#[utoipa::path(post, path = "/console/projects/{project}/sensitive-properties", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "Back to the properties"), (status = 400), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn classify(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    super::extract::ProjectPath(project): super::extract::ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    state
        .audit
        .authorize::<perm::PropertiesClassify>(
            &ctx,
            &principal,
            &project,
            Action::PropertiesClassify,
        )
        .await?;
    let f: ClassifyForm = body(&req, &bytes)?;
    let kind = PropertyKind::parse(&f.kind).ok_or_else(|| {
        AppError::Unprocessable(format!("kind must be event or profile, not {:?}", f.kind))
    })?;
    let sensitive = match f.sensitive.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(AppError::Unprocessable(format!(
                "sensitive must be true or false, not {other:?}"
            )));
        }
    };
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    crate::admin::properties::classify(
        &admin(&state),
        by,
        &project,
        kind,
        f.name.trim(),
        sensitive,
    )
    .await?;
    Ok(see_other(&format!(
        "/console/projects/{project}/sensitive-properties"
    )))
}
