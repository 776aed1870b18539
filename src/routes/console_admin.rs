//! The console's administration pages beyond grants and people: custom roles, service
//! accounts and their tokens, and projects (settings, soft delete, restore). Each form posts
//! to a page route calling the same admin service as the API, so the same rights, checks and
//! audit entries apply.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::console::{action_form, everywhere, viewer};
use super::extract::ProjectPath;
use super::grants::admin;
use super::pages::{body, console_page, see_other};
use crate::access::{Principal, perm};
use crate::admin::{Administrator, people, projects, roles, tokens};
use crate::audit::RequestContext;
use crate::domain::{BUILTIN, Permission, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::projects::ProjectView;
use crate::state::AppState;

fn by<'a>(ctx: &'a RequestContext, principal: &'a Principal) -> Administrator<'a> {
    Administrator::Person { ctx, principal }
}

/// Roles: the built-in ones and what they carry, the custom ones with remove, and the form
/// to define one from the permission catalogue (`roles:assign` on every project).
#[utoipa::path(get, path = "/console/admin/roles", tag = "console",
    responses((status = 200, description = "Roles", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn roles_page(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let custom = roles::custom(&admin(&state), by(&ctx, &principal)).await?;
    let nav = viewer(&state, &principal).await?;
    let perms = |ps: &[Permission]| ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    Ok(console_page(
        &nav,
        "Roles",
        html! {
            h2 { "Built in" }
            div class="table-wrap" {
                table id="builtin-roles" {
                    thead { tr { th { "role" } th { "permissions" } } }
                    tbody {
                        @for r in BUILTIN {
                            tr { td { (r.name) } td { (perms(r.permissions)) } }
                        }
                    }
                }
            }
            h2 { "Custom" }
            @if custom.is_empty() {
                p id="no-custom-roles" { "No custom roles yet." }
            } @else {
                div class="table-wrap" {
                    table id="custom-roles" {
                        thead { tr { th { "role" } th { "what for" } th { "permissions" } th { "" } } }
                        tbody {
                            @for r in &custom {
                                tr data-role=(r.name) {
                                    td { (r.name) }
                                    td { (r.description) }
                                    td { (perms(&r.permissions)) }
                                    td { (action_form("/console/admin/roles/delete", &[("name", &r.name)], "Remove", "remove")) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Define a role" }
            form class="stack" method="post" action="/console/admin/roles" id="role-form" {
                label { "Name (a-z, 0-9, _ or -)" input type="text" name="name" required pattern="[a-z0-9_-]{1,64}"; }
                label { "What it is for" input type="text" name="description" required; }
                fieldset {
                    legend { "Permissions" }
                    @for p in Permission::ALL {
                        label class="check" { input type="checkbox" name={"permission " (p.as_str())} value="on"; " " code { (p.as_str()) } }
                    }
                }
                button type="submit" { "Define" }
            }
        },
    ))
}

/// Defines a custom role (the service of `POST /api/v1/admin/roles`). The form's
/// checkboxes are named `permission P`, one per permission.
#[utoipa::path(post, path = "/console/admin/roles", tag = "console",
    responses((status = 303, description = "Back to the roles"), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub async fn create_role(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = by(&ctx, &principal);
    // The right first, so a refusal is the same whatever the form says.
    by.may::<perm::RolesAssign>(&state.audit, Action::RoleChange, "*")
        .await?;
    let mut form: BTreeMap<String, String> = body(&req, &bytes)?;
    let name = form.remove("name").unwrap_or_default();
    let description = form.remove("description").unwrap_or_default();
    let permissions: Vec<String> = form
        .keys()
        .filter_map(|k| k.strip_prefix("permission "))
        .map(str::to_owned)
        .collect();
    roles::create(&admin(&state), by, name, &permissions, description).await?;
    Ok(see_other("/console/admin/roles"))
}

/// A role to remove.
#[derive(Debug, Deserialize)]
struct RoleName {
    name: String,
}

/// Removes a custom role (the service of `DELETE /api/v1/admin/roles/{name}`).
#[utoipa::path(post, path = "/console/admin/roles/delete", tag = "console",
    responses((status = 303, description = "Back to the roles"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn delete_role(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = by(&ctx, &principal);
    by.may::<perm::RolesAssign>(&state.audit, Action::RoleChange, "*")
        .await?;
    let f: RoleName = body(&req, &bytes)?;
    roles::delete(&admin(&state), by, &f.name).await?;
    Ok(see_other("/console/admin/roles"))
}

/// Service accounts with their lock and tokens (`users:admin` on every project); a token
/// just made is shown once, above the list.
#[utoipa::path(get, path = "/console/admin/service-accounts", tag = "console",
    responses((status = 200, description = "Service accounts", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn service_accounts_page(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    service_accounts_markup(&state, &ctx, &principal, None).await
}

async fn service_accounts_markup(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    made: Option<(&str, &str, &str)>,
) -> Result<HttpResponse, AppError> {
    let a = admin(state);
    let by = by(ctx, principal);
    let rows = tokens::every_account(&a, by).await?;
    let nav = viewer(state, principal).await?;
    Ok(console_page(
        &nav,
        "Service accounts",
        html! {
            @if let Some((name, id, secret)) = made {
                div class="notice" id="new-service-token" role="status" {
                    p { "A token for " strong { (name) } " (id " code { (id) } "). Copy its secret now: it is never shown again." }
                    pre id="token-secret" { (secret) }
                    button type="button" class="copy" data-copy="token-secret" { "Copy" }
                    p { "It authenticates " code { "/import" } " as HTTP Basic user " code { (name) } ", and the read API as a Bearer token." }
                }
            }
            @if rows.is_empty() {
                p { "No service accounts: each project gets one when it is created." }
            }
            @for (account, locked, toks) in &rows {
                section class="service-account" data-account=(account.id) {
                    h2 { (account.name) }
                    p {
                        "Project " code { (account.project_id) } ", id " code { (account.id) } ". "
                        span class="state" { @if let Some(t) = locked { "Locked since " (t.to_rfc3339()) "." } @else { "Active." } }
                    }
                    @if locked.is_some() {
                        (action_form("/console/admin/service-accounts/decision", &[("id", &account.id), ("decision", "unlock")], "Unlock", "unlock"))
                    } @else {
                        (action_form("/console/admin/service-accounts/decision", &[("id", &account.id), ("decision", "lock")], "Lock (every token stops)", "lock"))
                    }
                    (action_form("/console/admin/service-accounts/tokens", &[("id", &account.id)], "Make a token", "make-token"))
                    div class="table-wrap" {
                        table class="tokens" {
                            thead { tr { th { "token" } th { "made" } th { "last used" } th { "state" } th { "" } } }
                            tbody {
                                @for t in toks {
                                    tr data-token=(t.id) {
                                        td { code { (t.id) } }
                                        td { (t.created_at.to_rfc3339()) }
                                        td { (t.last_used_at.map(|u| u.to_rfc3339()).unwrap_or_else(|| "never".into())) }
                                        td class="state" { @if t.revoked_at.is_some() { "revoked" } @else { "live" } }
                                        td {
                                            @if t.revoked_at.is_none() {
                                                (action_form("/console/admin/service-accounts/decision", &[("id", &account.id), ("decision", "revoke"), ("token", &t.id)], "Revoke", "revoke"))
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

/// A change to a service account: lock, unlock, or revoke one of its tokens.
#[derive(Debug, Deserialize)]
struct AccountDecision {
    id: String,
    decision: String,
    #[serde(default)]
    token: String,
}

/// Locks or unlocks a service account, or revokes a token of it (the services of the API's
/// lock, unlock and token revoke).
#[utoipa::path(post, path = "/console/admin/service-accounts/decision", tag = "console",
    responses((status = 303, description = "Back to the service accounts"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn decide_service_account(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = by(&ctx, &principal);
    let a = admin(&state);
    by.may::<perm::UsersAdmin>(&state.audit, Action::UserChange, "*")
        .await?;
    let d: AccountDecision = body(&req, &bytes)?;
    match d.decision.as_str() {
        "lock" => {
            people::lock_service_account(&a, by, &d.id, true).await?;
        }
        "unlock" => {
            people::lock_service_account(&a, by, &d.id, false).await?;
        }
        "revoke" => {
            tokens::revoke(&a, by, &d.id, &d.token).await?;
        }
        other => {
            return Err(AppError::Unprocessable(format!(
                "decision must be lock, unlock or revoke, not {other:?}"
            )));
        }
    }
    Ok(see_other("/console/admin/service-accounts"))
}

/// The account to make a token for.
#[derive(Debug, Deserialize)]
struct AccountId {
    id: String,
}

/// Makes a token for a service account (the service of the API's token create) and shows
/// its secret, this once.
#[utoipa::path(post, path = "/console/admin/service-accounts/tokens", tag = "console",
    responses((status = 200, description = "The service accounts, with the new token's secret", content((String = "text/html"))), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn make_token(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = by(&ctx, &principal);
    by.may::<perm::UsersAdmin>(&state.audit, Action::TokenCreate, "*")
        .await?;
    let f: AccountId = body(&req, &bytes)?;
    let (account, id, secret) = tokens::create(&admin(&state), by, &f.id).await?;
    service_accounts_markup(
        &state,
        &ctx,
        &principal,
        Some((&account.name, &id, secret.expose())),
    )
    .await
}

/// The projects the viewer administers (`project:admin`), deleted ones included while they
/// can be restored.
#[utoipa::path(get, path = "/console/admin/projects", tag = "console",
    responses((status = 200, description = "Projects", content((String = "text/html"))), (status = 401), (status = 403)))]
pub async fn projects_page(
    ctx: RequestContext,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let subject = principal.subject();
    let grace = state.settings.retention.project_grace_days;
    let mine: Vec<ProjectView> = state
        .store
        .list_projects()
        .await?
        .iter()
        .filter(|p| p.purged_at.is_none())
        .filter(|p| {
            crate::access::decide(subject, Permission::ProjectAdmin, &p.id)
                == crate::access::Decision::Allow
        })
        .map(|p| ProjectView::of(p, grace))
        .collect();
    if mine.is_empty() && !everywhere(subject, Permission::ProjectAdmin) {
        // Refused (and logged) exactly as the API refuses a project's settings.
        state
            .audit
            .authorize_global::<perm::ProjectAdmin>(&ctx, &principal, Action::ProjectUpdate)
            .await?;
    }
    let nav = viewer(&state, &principal).await?;
    Ok(console_page(
        &nav,
        "Projects",
        html! {
            div class="table-wrap" {
                table id="projects" {
                    thead { tr { th { "project" } th { "name" } th { "keeps events" } th { "state" } th { "" } } }
                    tbody {
                        @for p in &mine {
                            tr data-project=(p.id) {
                                td { code { (p.id) } }
                                td { (p.name) }
                                td { (p.retention_days) " days" }
                                @if let Some(at) = &p.deleted_at {
                                    td class="state" { "deleted " (at) ", restorable until " (p.restorable_until.as_deref().unwrap_or("—")) }
                                    td { (action_form(&format!("/console/projects/{}/restore", p.id), &[], "Restore", "restore")) }
                                } @else {
                                    td class="state" { "live" }
                                    td { a href={"/console/projects/" (p.id) "/settings"} { "Settings" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// A live project's settings to change, and its deletion (`project:admin` there).
#[utoipa::path(get, path = "/console/projects/{project}/settings", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project's settings", content((String = "text/html"))), (status = 401), (status = 403), (status = 404)))]
pub async fn settings_page(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let p = projects::read(&admin(&state), by(&ctx, &principal), &project).await?;
    let nav = viewer(&state, &principal).await?;
    let action = format!("/console/projects/{project}/settings");
    let grace = state.settings.retention.project_grace_days;
    Ok(console_page(
        &nav,
        &format!("Settings: {}", p.name),
        html! {
            form class="stack" method="post" action=(action) id="settings-form" {
                label { "Keep events for (days, 1 to 36500)" input type="number" name="retention_days" min="1" max="36500" required value=(p.retention_days); }
                label class="check" { input type="checkbox" name="consent_required" value="on" checked[p.consent_required]; " Keep events only with the person's consent" }
                label { "The property that carries consent" input type="text" name="consent_property" required value=(p.consent_property); }
                label { "Browser origins that may send events (one per line, * for any)" textarea name="allowed_origins" rows="3" { (p.allowed_origins.join("\n")) } }
                label class="check" { input type="checkbox" name="record_client_ip" value="on" checked[p.record_client_ip]; " Keep the client's address in $ip when an SDK sends ip=1 (personal data)" }
                button type="submit" { "Save" }
            }
            h2 { "Delete this project" }
            p { "Its events stop being readable at once. It can be restored for " (grace) " days; then the retention sweep purges it." }
            form class="stack" method="post" action={"/console/projects/" (project) "/delete"} id="delete-project" {
                label { "Type the project's id to confirm" input type="text" name="confirm" required autocomplete="off"; }
                button type="submit" class="danger" { "Delete" }
            }
        },
    ))
}

/// What the settings form sends: unchecked boxes are absent.
#[derive(Debug, Deserialize)]
struct SettingsForm {
    retention_days: String,
    #[serde(default)]
    consent_required: Option<String>,
    consent_property: String,
    #[serde(default)]
    allowed_origins: String,
    #[serde(default)]
    record_client_ip: Option<String>,
}

/// Saves a project's settings (the service of `PATCH /api/v1/projects/{project}`).
#[utoipa::path(post, path = "/console/projects/{project}/settings", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "Back to the settings"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn save_settings(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    // Parsed here, judged by the service once the right is checked (as the API's PATCH).
    let change = body::<SettingsForm>(&req, &bytes).and_then(|f| {
        let retention_days = f.retention_days.trim().parse().map_err(|_| {
            AppError::Unprocessable("retention_days must be a whole number of days".into())
        })?;
        Ok(projects::SettingsChange {
            retention_days: Some(retention_days),
            consent_required: Some(f.consent_required.is_some()),
            consent_property: Some(f.consent_property.trim().to_owned()),
            allowed_origins: Some(
                f.allowed_origins
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            record_client_ip: Some(f.record_client_ip.is_some()),
        })
    });
    projects::update_settings(&admin(&state), by(&ctx, &principal), &project, change).await?;
    Ok(see_other(&format!("/console/projects/{project}/settings")))
}

/// The deletion's confirmation.
#[derive(Debug, Deserialize)]
struct Confirm {
    confirm: String,
}

/// Deletes a project once its id is typed (the service of `DELETE /api/v1/projects/{p}`).
#[utoipa::path(post, path = "/console/projects/{project}/delete", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "To the projects"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn delete_project(
    req: HttpRequest,
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = by(&ctx, &principal);
    by.may::<perm::ProjectAdmin>(&state.audit, Action::ProjectDelete, project.as_str())
        .await?;
    let f: Confirm = body(&req, &bytes)?;
    if ProjectId::parse(f.confirm.trim()).ok().as_ref() != Some(&project) {
        return Err(AppError::Unprocessable(format!(
            "type the project's id, {project}, to confirm its deletion"
        )));
    }
    projects::delete(&admin(&state), by, &project).await?;
    Ok(see_other("/console/admin/projects"))
}

/// Restores a deleted project (the service of `POST /api/v1/projects/{p}/restore`).
#[utoipa::path(post, path = "/console/projects/{project}/restore", tag = "console",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 303, description = "To its settings"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn restore_project(
    ctx: RequestContext,
    principal: Principal,
    ProjectPath(project): ProjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    projects::restore(&admin(&state), by(&ctx, &principal), &project).await?;
    Ok(see_other(&format!("/console/projects/{project}/settings")))
}
