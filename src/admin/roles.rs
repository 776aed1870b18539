//! Custom roles: defined and removed through one implementation, whoever asks
//! (`roles:assign` on every project for a person, the operator at the CLI).

use serde_json::json;

use super::{Admin, Administrator};
use crate::access::perm;
use crate::domain::{CustomRole, FreeText, GrantStatus, Permission, Role, RoleBook, did_you_mean};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::StoreError;

/// The custom roles, for those who may assign roles everywhere.
pub async fn custom(admin: &Admin<'_>, by: Administrator<'_>) -> Result<Vec<CustomRole>, AppError> {
    by.may_assign(admin.audit, "*").await?;
    Ok(admin.store.custom_roles().await?)
}

/// Defines a role from the permission catalogue: a new name (a-z, 0-9, `_`, `-`; never a
/// built-in one, nor one used before), at least one permission.
pub async fn create(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    name: String,
    permissions: &[String],
    description: String,
) -> Result<CustomRole, AppError> {
    by.may::<perm::RolesAssign>(admin.audit, Action::RoleChange, "*")
        .await?;
    FreeText::parse("description", &description)?;
    let valid_name = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid_name || Role::builtin(&name).is_some() {
        return Err(AppError::Unprocessable(format!(
            "{name:?} must be a-z, 0-9, '_' or '-' and not a built-in role"
        )));
    }
    let mut parsed = Vec::new();
    for p in permissions {
        let p = Permission::parse(p).ok_or_else(|| {
            let hint = did_you_mean(p, Permission::ALL.iter().map(|q| q.as_str()));
            AppError::Unprocessable(format!("{p:?} is not a permission{hint}"))
        })?;
        if !parsed.contains(&p) {
            parsed.push(p);
        }
    }
    if parsed.is_empty() {
        return Err(AppError::Unprocessable("a role needs a permission".into()));
    }
    let book = RoleBook::new(admin.store.custom_roles().await?);
    if book.permissions(&name).is_some() {
        return Err(AppError::Conflict(format!("a role called {name} exists")));
    }
    let role = CustomRole {
        name,
        permissions: parsed,
        description,
    };
    let details = json!({"role": role.name, "before": null, "after": {"permissions": role.permissions, "description": role.description}});
    by.record_as::<perm::RolesAssign>(admin.audit, Action::RoleChange, "*", details)
        .await?;
    admin
        .store
        .create_role(&role, by.id().unwrap_or("cli"), admin.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                AppError::Conflict(format!("a role called {} exists or existed", role.name))
            }
            other => other.into(),
        })?;
    Ok(role)
}

/// Removes a custom role nobody holds through a live (active or pending) grant.
pub async fn delete(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    name: &str,
) -> Result<CustomRole, AppError> {
    by.may::<perm::RolesAssign>(admin.audit, Action::RoleChange, "*")
        .await?;
    let custom = admin.store.custom_roles().await?;
    let Some(role) = custom.into_iter().find(|r| r.name == name) else {
        return Err(AppError::NotFound(format!("no custom role {name}")));
    };
    let in_use = admin.store.grants(None).await?.iter().any(|g| {
        g.role.as_deref() == Some(name)
            && matches!(g.status, GrantStatus::Active | GrantStatus::Pending)
    });
    if in_use {
        return Err(AppError::Conflict(format!(
            "role {name} is in use by a live grant: revoke those first"
        )));
    }
    let details =
        json!({"role": role.name, "before": {"permissions": role.permissions}, "after": null});
    by.record_as::<perm::RolesAssign>(admin.audit, Action::RoleChange, "*", details)
        .await?;
    if !admin.store.delete_role(name, admin.clock.now()).await? {
        return Err(AppError::Conflict(format!(
            "role {name} was deleted meanwhile"
        )));
    }
    Ok(role)
}
