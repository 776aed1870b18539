//! Marking properties sensitive, and removing marks: one implementation for people over the
//! API (removing a mark takes two of them: one asks, another confirms) and the operator at the
//! CLI (who removes a mark at once: the operator's right, logged as `cli`).

use serde_json::{Value, json};

use super::{Admin, Administrator};
use crate::access::perm;
use crate::domain::ProjectId;
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::PropertyKind;

/// What a change of mark did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Marked (or kept marked).
    Mark,
    /// There was no mark to remove.
    Nothing,
    /// Removal asked: a second person must confirm.
    Ask,
    /// Removed (a second person confirmed, or the operator removed it).
    Remove,
}

/// Marks (`sensitive`) or unmarks `name` of `kind` in `project`. Returns the step taken and
/// the property's state after it.
pub async fn classify(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    project: &ProjectId,
    kind: PropertyKind,
    name: &str,
    sensitive: bool,
) -> Result<(Step, Value), AppError> {
    if name.is_empty() || name.len() > 255 {
        return Err(AppError::BadRequest(
            "a property name is 1 to 255 bytes".into(),
        ));
    }
    by.may::<perm::PropertiesClassify>(admin.audit, Action::PropertiesClassify, project.as_str())
        .await?;
    crate::projects::live(admin.store.as_ref(), project).await?;
    let who = by.id().unwrap_or("cli").to_owned();
    let current = admin.store.classification(project, kind, name).await?;
    let before = match &current {
        None => json!({"sensitive": false}),
        Some(None) => json!({"sensitive": true}),
        Some(Some(asked)) => json!({"sensitive": true, "unmark_requested_by": asked}),
    };
    let operator = matches!(by, Administrator::Operator);
    let step = match (&current, sensitive) {
        (_, true) => Step::Mark,
        (None, false) => Step::Nothing,
        (Some(_), false) if operator => Step::Remove,
        (Some(None), false) => Step::Ask,
        (Some(Some(asked)), false) if *asked == who => {
            let details = json!({"kind": kind.as_str(), "property": name, "before": before,
                "reason": "you asked to remove this mark; a second person must confirm"});
            by.refused_act::<perm::PropertiesClassify>(
                admin.audit,
                Action::PropertiesClassify,
                project,
                details,
            )
            .await?;
            return Err(AppError::Conflict(
                "you already asked to remove this mark: another person with properties:classify must confirm".into(),
            ));
        }
        (Some(Some(_)), false) => Step::Remove,
    };
    let after = match step {
        Step::Mark => json!({"sensitive": true}),
        Step::Nothing | Step::Remove => json!({"sensitive": false}),
        Step::Ask => json!({"sensitive": true, "unmark_requested_by": who}),
    };
    let details =
        json!({"kind": kind.as_str(), "property": name, "before": before, "after": after});
    // Logged before it changes anything.
    by.record_as::<perm::PropertiesClassify>(
        admin.audit,
        Action::PropertiesClassify,
        project.as_str(),
        details,
    )
    .await?;
    let now = admin.clock.now();
    let changed = match step {
        Step::Mark => {
            admin.store.classify(project, kind, name, &who, now).await?;
            true
        }
        Step::Nothing => true,
        Step::Ask => {
            admin
                .store
                .request_declassify(project, kind, name, &who, now)
                .await?
        }
        Step::Remove if operator => admin.store.declassify(project, kind, name).await?,
        Step::Remove => {
            admin
                .store
                .confirm_declassify(project, kind, name, &who)
                .await?
        }
    };
    if !changed {
        return Err(AppError::Conflict(
            "the mark changed meanwhile; look again and retry".into(),
        ));
    }
    Ok((step, after))
}
