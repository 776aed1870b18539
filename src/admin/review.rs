//! The access review: who can do what on which project, through which grant or group, since
//! when, until when, and when they last signed in or used a token. Reading it is an audited
//! read of the whole policy (`audit:read` on every project).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use super::{Admin, Administrator};
use crate::access::{GrantSource, Grants, RoleBook, perm, person_grants};
use crate::domain::{ProjectId, Timestamp};
use crate::error::AppError;
use crate::ledger::entry::Action;
use crate::store::UserKind;

/// One line of the review: one principal holding one role (or denied one permission) on one
/// scope, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewRow {
    /// `user` or `service_account`.
    principal_kind: &'static str,
    /// The principal's id.
    principal: String,
    /// A person's email, or a service account's name.
    email: String,
    /// The role held (empty for a denial).
    role: String,
    /// The permission denied (empty for a role).
    denied: String,
    /// A project's id, or `*` for every project.
    project: String,
    /// Where it comes from: a stored grant, a group mapping in configuration, ...
    via: String,
    /// Who gave the grant.
    granted_by: String,
    /// Since when (RFC 3339; empty when not known).
    since: String,
    /// When it lapses (empty if never).
    expires_at: String,
    /// When its next access review is due (empty if none is set).
    review_due: String,
    /// Whether that review is overdue.
    review_overdue: bool,
    /// A person's last sign-in.
    last_signin_at: String,
    /// The last sign-in or token use.
    last_used_at: String,
    /// Whether the principal is disabled or locked (and so holds nothing now).
    disabled: bool,
}

/// The access review as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Review {
    /// One row per principal, role and scope.
    pub rows: Vec<ReviewRow>,
}

/// One principal as the review lists it.
struct Who<'a> {
    kind: &'static str,
    id: &'a str,
    email: &'a str,
    signed_in: Option<Timestamp>,
    used: Option<Timestamp>,
    disabled: bool,
}

fn rows_for(
    out: &mut Vec<ReviewRow>,
    grants: &Grants,
    who: Who<'_>,
    stored: &HashMap<String, crate::access::GrantRecord>,
    project: Option<&ProjectId>,
    now: Timestamp,
    mappings: &[crate::config::GroupRoleSettings],
) {
    let Who {
        kind,
        id,
        email,
        signed_in: last,
        used,
        disabled,
    } = who;
    for g in grants.list() {
        if let Some(p) = project
            && g.project != "*"
            && g.project != p.as_str()
        {
            continue;
        }
        let review = match &g.source {
            GrantSource::Grant(gid) => stored
                .get(gid)
                .map(|r| (r.review_due(), r.review_overdue(now))),
            GrantSource::Group(group) => mappings
                .iter()
                .find(|m| {
                    &m.group == group
                        && Some(m.role.as_str()) == g.role.as_deref()
                        && m.project == g.project
                })
                .and_then(|m| m.review_by.as_deref())
                .and_then(|t| Timestamp::parse(t).ok())
                .map(|due| (Some(due), now >= due)),
            _ => None,
        };
        let (via, granted_by, since) = match &g.source {
            GrantSource::Group(name) => (
                format!("group {name} (configuration)"),
                String::new(),
                String::new(),
            ),
            GrantSource::Grant(gid) => match stored.get(gid) {
                Some(r) => (
                    format!("grant {gid} ({} {})", r.subject_kind.as_str(), r.subject),
                    r.granted_by.clone(),
                    r.decided_at.unwrap_or(r.created_at).to_rfc3339(),
                ),
                None => (format!("grant {gid}"), String::new(), String::new()),
            },
            GrantSource::BreakGlass => ("break-glass account".into(), String::new(), String::new()),
            GrantSource::ServiceAccount => (
                "service account of the project".into(),
                String::new(),
                String::new(),
            ),
        };
        out.push(ReviewRow {
            principal_kind: kind,
            principal: id.to_owned(),
            email: email.to_owned(),
            role: g.role.clone().unwrap_or_default(),
            denied: g.deny.map(|p| p.as_str().to_owned()).unwrap_or_default(),
            project: g.project.clone(),
            via,
            granted_by,
            since,
            expires_at: g.expires_at.clone().unwrap_or_default(),
            review_due: review
                .and_then(|(due, _)| due.map(Timestamp::to_rfc3339))
                .unwrap_or_default(),
            review_overdue: review.is_some_and(|(_, overdue)| overdue),
            last_signin_at: last.map(Timestamp::to_rfc3339).unwrap_or_default(),
            last_used_at: used.map(Timestamp::to_rfc3339).unwrap_or_default(),
            disabled,
        });
    }
}

/// Everyone's access, on `project` (grants on every project included) or everywhere; the
/// read is logged, with how many rows it gave, before it is returned.
pub async fn access_review(
    admin: &Admin<'_>,
    by: Administrator<'_>,
    project: Option<&ProjectId>,
) -> Result<Review, AppError> {
    by.may::<perm::AuditRead>(admin.audit, Action::AuditRead, "*")
        .await?;
    let stored: HashMap<_, _> = admin
        .store
        .grants(None)
        .await?
        .into_iter()
        .map(|g| (g.id.clone(), g))
        .collect();
    let now = admin.clock.now();
    let roles = RoleBook::new(admin.store.custom_roles().await?);
    let mappings = &admin.access.group_roles;
    let mut rows = Vec::new();
    // Everyone's grants come from the one read of every grant above, not a read per person.
    let every: Vec<_> = stored.values().cloned().collect();
    for person in admin.store.people_overview().await? {
        let (user, groups) = (&person.user, &person.groups);
        let grants = person_grants(
            &user.id,
            user.kind == UserKind::Local,
            groups,
            &every,
            &roles,
            admin.access,
            now,
        );
        let token_use = person.token_last_used;
        let who = Who {
            kind: "user",
            id: &user.id,
            email: &user.email,
            signed_in: user.last_signin_at,
            used: user.last_signin_at.max(token_use),
            disabled: user.disabled_at.is_some(),
        };
        rows_for(&mut rows, &grants, who, &stored, project, now, mappings);
    }
    let mut tokens: HashMap<String, Vec<_>> = HashMap::new();
    for (sa, locked) in admin.store.all_service_accounts().await? {
        if !tokens.contains_key(sa.project_id.as_str()) {
            let of_project = admin.store.tokens(&sa.project_id).await?;
            tokens.insert(sa.project_id.as_str().to_owned(), of_project);
        }
        let used = tokens[sa.project_id.as_str()]
            .iter()
            .filter(|t| t.service_account.id == sa.id)
            .filter_map(|t| t.last_used_at)
            .max();
        let locked = locked.is_some();
        let own: Vec<_> = stored
            .values()
            .filter(|g| {
                g.subject_kind == crate::access::SubjectKind::ServiceAccount && g.subject == sa.id
            })
            .cloned()
            .collect();
        let grants = Grants::service_account(&sa.project_id).with_stored(
            &own,
            &roles,
            admin.clock.now(),
            admin.access.lapse_overdue_grants,
        );
        rows_for(
            &mut rows,
            &grants,
            Who {
                kind: "service_account",
                id: &sa.id,
                email: &sa.name,
                signed_in: None,
                used,
                disabled: locked,
            },
            &stored,
            project,
            now,
            mappings,
        );
    }
    let details = json!({
        "report": "access_review",
        "project": project.map(ProjectId::as_str),
        "rows": rows.len(),
    });
    by.record_as::<perm::AuditRead>(admin.audit, Action::AuditRead, "*", details)
        .await?;
    Ok(Review { rows })
}

/// The review as CSV: a header line, then one line per row.
pub fn csv(review: &Review) -> Result<Vec<u8>, AppError> {
    let failed =
        |e: &dyn std::fmt::Display| AppError::Internal(anyhow::anyhow!("writing CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &review.rows {
        w.serialize(r).map_err(|e| failed(&e))?;
    }
    w.into_inner().map_err(|e| failed(&e))
}
