//! A project's settings and lifecycle (soft delete, restore), by one implementation whoever
//! asks (`project:admin` on the project over the API, the operator at the CLI).

use serde::Deserialize;
use serde_json::json;

use super::{Admin, Administrator};
use crate::access::perm;
use crate::domain::{AllowedOrigins, ProjectId};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::projects::ProjectView;
use crate::store::{Project, ProjectSettings};

/// The settings to change; those left out keep their value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// Days events are kept (1 to 36500).
    pub retention_days: Option<i64>,
    /// Whether events need the person's consent to be kept.
    pub consent_required: Option<bool>,
    /// The event property that carries consent (1 to 255 bytes).
    pub consent_property: Option<String>,
    /// The web origins browsers may send this project's events from (CORS), such as
    /// `https://shop.example`; `["*"]` alone for any origin; `[]` for none (the default).
    pub allowed_origins: Option<Vec<String>>,
    /// Keep the client's address in `$ip` when an SDK sends `ip=1` (off by default: an
    /// address is personal data).
    pub record_client_ip: Option<bool>,
}

async fn live(admin: &Admin<'_>, id: &ProjectId) -> Result<Project, AppError> {
    crate::projects::live(admin.store.as_ref(), id).await
}

async fn any(admin: &Admin<'_>, id: &ProjectId) -> Result<Project, AppError> {
    admin
        .store
        .project(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("project {id} does not exist")))
}

/// A live project's settings, for those who administer it.
pub async fn read(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &ProjectId,
) -> Result<ProjectView, AppError> {
    by.may::<perm::ProjectAdmin>(admin.audit, Action::ProjectUpdate, id.as_str())
        .await?;
    Ok(ProjectView::of(
        &live(admin, id).await?,
        admin.project_grace_days,
    ))
}

/// Changes a live project's settings: the entry names them before and after. `change` is
/// the change as a request's body parsed: a malformed one is answered only after the caller's
/// right is checked, so a refusal is logged whatever the body.
pub async fn update_settings(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &ProjectId,
    change: Result<SettingsChange, AppError>,
) -> Result<ProjectView, AppError> {
    by.may::<perm::ProjectAdmin>(admin.audit, Action::ProjectUpdate, id.as_str())
        .await?;
    let change = change?;
    let p = live(admin, id).await?;
    let before = ProjectView::of(&p, admin.project_grace_days);
    let after = ProjectSettings {
        retention_days: change.retention_days.unwrap_or(p.retention_days),
        consent_required: change.consent_required.unwrap_or(p.consent_required),
        consent_property: change
            .consent_property
            .clone()
            .unwrap_or(p.consent_property.clone()),
        allowed_origins: match &change.allowed_origins {
            Some(list) => AllowedOrigins::parse_list(list)?,
            None => p.allowed_origins.clone(),
        },
        record_client_ip: change.record_client_ip.unwrap_or(p.record_client_ip),
    };
    if !(1..=36_500).contains(&after.retention_days) {
        return Err(AppError::Unprocessable(
            "retention_days must be between 1 and 36500".into(),
        ));
    }
    if after.consent_property.is_empty() || after.consent_property.len() > 255 {
        return Err(AppError::Unprocessable(
            "consent_property must be 1 to 255 bytes".into(),
        ));
    }
    let details = json!({"before": before, "after": {
        "retention_days": after.retention_days,
        "consent_required": after.consent_required,
        "consent_property": after.consent_property,
        "allowed_origins": after.allowed_origins.to_list(),
        "record_client_ip": after.record_client_ip,
    }});
    by.record_as::<perm::ProjectAdmin>(admin.audit, Action::ProjectUpdate, id.as_str(), details)
        .await?;
    admin.store.update_project_settings(id, &after).await?;
    let p = live(admin, id).await?;
    Ok(ProjectView::of(&p, admin.project_grace_days))
}

/// Deletes a project: unreachable at once, restorable during the grace period
/// (`retention.project_grace_days`), then purged by the retention sweep.
pub async fn delete(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &ProjectId,
) -> Result<ProjectView, AppError> {
    by.may::<perm::ProjectAdmin>(admin.audit, Action::ProjectDelete, id.as_str())
        .await?;
    live(admin, id).await?;
    let now = admin.clock.now();
    let details = json!({
        "before": {"deleted_at": null},
        "after": {"deleted_at": now.to_rfc3339()},
        "grace_days": admin.project_grace_days,
    });
    by.record_as::<perm::ProjectAdmin>(admin.audit, Action::ProjectDelete, id.as_str(), details)
        .await?;
    if !admin.store.set_project_deleted(id, Some(now)).await? {
        return Err(AppError::Conflict(format!(
            "project {id} was deleted meanwhile"
        )));
    }
    Ok(ProjectView::of(
        &any(admin, id).await?,
        admin.project_grace_days,
    ))
}

/// Restores a deleted project within its grace period.
pub async fn restore(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    id: &ProjectId,
) -> Result<ProjectView, AppError> {
    by.may::<perm::ProjectAdmin>(admin.audit, Action::ProjectRestore, id.as_str())
        .await?;
    let p = any(admin, id).await?;
    match (p.deleted_at, p.purged_at) {
        (None, _) => return Err(AppError::Conflict(format!("project {id} is not deleted"))),
        (Some(_), Some(_)) => {
            return Err(AppError::NotFound(format!(
                "project {id} was purged after its grace period"
            )));
        }
        (Some(_), None) => {}
    }
    let details = json!({
        "before": {"deleted_at": p.deleted_at.map(|t| t.to_rfc3339())},
        "after": {"deleted_at": null},
    });
    by.record_as::<perm::ProjectAdmin>(admin.audit, Action::ProjectRestore, id.as_str(), details)
        .await?;
    admin.store.set_project_deleted(id, None).await?;
    Ok(ProjectView::of(
        &live(admin, id).await?,
        admin.project_grace_days,
    ))
}
