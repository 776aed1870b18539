//! Stored grants and just-in-time access requests, as records every layer shares.

use std::borrow::Cow;

use serde::Serialize;

use super::roles::RoleBook;
use super::{Permission, Timestamp};

/// Allow a role, or deny one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The role's permissions are allowed.
    Allow,
    /// The permission is denied, whatever else allows it.
    Deny,
}

/// The life of a stored grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Waiting for a second administrator's approval: inert.
    Pending,
    /// In force (until its expiry, if any).
    Active,
    /// Refused by the approver.
    Rejected,
    /// Revoked.
    Revoked,
}

impl GrantStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Active, Self::Rejected, Self::Revoked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Who a stored grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person, by id.
    User,
    /// An identity-provider group, by name.
    Group,
    /// A service account, by id.
    ServiceAccount,
}

impl SubjectKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::ServiceAccount => "service_account",
        }
    }

    /// The kind with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::Group, Self::ServiceAccount]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A stored grant, as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The id.
    pub id: String,
    /// Who it is for.
    pub subject_kind: SubjectKind,
    /// The person's id, the group's name or the service account's id.
    pub subject: String,
    /// Allow a role or deny a permission.
    pub effect: Effect,
    /// The role, for an allow grant.
    pub role: Option<String>,
    /// The permission, for a deny grant.
    pub permission: Option<Permission>,
    /// A project id, or `*`.
    pub project: String,
    /// Why it was granted (a ticket, a sentence).
    pub reason: String,
    /// Who granted it (a person's id, or `cli`).
    pub granted_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working on its own.
    pub expires_at: Option<Timestamp>,
    /// Pending, active, rejected or revoked.
    pub status: GrantStatus,
    /// Who approved, rejected or revoked it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// How often it must be reviewed, in days.
    pub review_every_days: Option<i64>,
    /// The last review.
    pub reviewed_at: Option<Timestamp>,
    /// Set while locked.
    pub locked_at: Option<Timestamp>,
}

impl GrantRecord {
    /// Whether it is in force at `now`: active, not expired, not locked, and (when overdue
    /// grants lapse) not overdue for review.
    pub fn in_force(&self, now: Timestamp, lapse_overdue: bool) -> bool {
        self.status == GrantStatus::Active
            && self.expires_at.is_none_or(|e| now < e)
            && self.locked_at.is_none()
            // A deny never lapses for want of a review: that would widen access.
            && !(lapse_overdue && self.effect == Effect::Allow && self.review_overdue(now))
    }

    /// When its next review is due, if it has a cadence.
    pub fn review_due(&self) -> Option<Timestamp> {
        let last = self
            .reviewed_at
            .or(self.decided_at)
            .unwrap_or(self.created_at);
        self.review_every_days
            .map(|d| Timestamp::from_millis(last.millis() + d * 86_400_000))
    }

    /// Whether its review is overdue at `now`.
    pub fn review_overdue(&self, now: Timestamp) -> bool {
        self.status == GrantStatus::Active && self.review_due().is_some_and(|due| now >= due)
    }

    /// The permissions it allows (empty for a deny grant or an unknown role).
    pub fn permissions(&self, roles: &RoleBook) -> Cow<'static, [Permission]> {
        match (
            self.effect,
            self.role.as_deref().and_then(|r| roles.permissions(r)),
        ) {
            (Effect::Allow, Some(permissions)) => permissions,
            _ => Cow::Borrowed(&[]),
        }
    }

    /// Whether it carries the most powerful permissions, which need a second approval.
    pub fn is_powerful(&self, roles: &RoleBook) -> bool {
        self.effect == Effect::Allow && self.role.as_deref().is_some_and(|r| roles.is_powerful(r))
    }
}

/// A request for a role on a project, for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// The id.
    pub id: String,
    /// Who asks (a person's id).
    pub requester: String,
    /// Where.
    pub project: String,
    /// Which role.
    pub role: String,
    /// Why (a ticket, an incident).
    pub reason: String,
    /// For how long, once granted, in milliseconds.
    pub duration_ms: i64,
    /// Approvals needed.
    pub approvals_needed: u32,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When it lapses unanswered.
    pub lapses_at: Timestamp,
    /// Where it stands (lapsing is derived from the time).
    pub status: RequestStatus,
    /// The grant it became.
    pub grant_id: Option<String>,
    /// When it was granted or rejected.
    pub decided_at: Option<Timestamp>,
}

/// The stored state of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved: a grant exists.
    Granted,
    /// Refused.
    Rejected,
}

impl RequestStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Rejected => "rejected",
        }
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Granted, Self::Rejected]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl AccessRequest {
    /// The state as of `now`: pending requests past their time have lapsed.
    pub fn state_at(&self, now: Timestamp) -> &'static str {
        match self.status {
            RequestStatus::Pending if now >= self.lapses_at => "lapsed",
            other => other.as_str(),
        }
    }

    /// The grant an approved request becomes, starting `now`.
    pub fn to_grant(&self, id: String, approver: &str, now: Timestamp) -> GrantRecord {
        GrantRecord {
            id,
            subject_kind: SubjectKind::User,
            subject: self.requester.clone(),
            effect: Effect::Allow,
            role: Some(self.role.clone()),
            permission: None,
            project: self.project.clone(),
            reason: format!("access request {}: {}", self.id, self.reason),
            granted_by: format!("request:{}", self.id),
            created_at: now,
            expires_at: Some(Timestamp::from_millis(now.millis() + self.duration_ms)),
            status: GrantStatus::Active,
            decided_by: Some(approver.to_owned()),
            decided_at: Some(now),
            // It expires long before any review would be due.
            review_every_days: None,
            reviewed_at: None,
            locked_at: None,
        }
    }
}
