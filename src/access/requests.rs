//! Just-in-time access requests, as pure rules: what may be asked for, who may approve, and
//! when a request lapses. Time is passed in.

use super::duties::Actor;
use super::roles::RoleBook;
pub use crate::domain::{AccessRequest, RequestStatus};
use crate::domain::{ProjectId, Timestamp};

/// How many approvals a request for `role` needs: what configuration says (at least one),
/// and at least two for the roles a direct grant of which waits for a second administrator,
/// so that asking is never a shorter way to power than granting.
pub fn approvals_needed(
    roles: &RoleBook,
    role: &str,
    configured: Option<u32>,
    powerful_need_approval: bool,
) -> u32 {
    let base = configured.unwrap_or(1).max(1);
    if powerful_need_approval && roles.is_powerful(role) {
        base.max(2)
    } else {
        base
    }
}

/// Checks what is asked: a real role, a project (never `*`), a duration within the cap.
pub fn check_ask(
    roles: &RoleBook,
    role: &str,
    project: &str,
    duration_ms: i64,
    max_ms: i64,
) -> Result<(), String> {
    if roles.permissions(role).is_none() {
        return Err(format!("{role:?} is not a role"));
    }
    if ProjectId::parse(project).is_err() {
        return Err(format!(
            "{project:?} is not a project: just-in-time access is for one project"
        ));
    }
    if duration_ms <= 0 || duration_ms > max_ms {
        return Err(format!(
            "the duration must be positive and at most {} hours",
            max_ms / 3_600_000
        ));
    }
    Ok(())
}

/// Checks that `actor` may approve `request` at `now`.
pub fn check_request_approval(
    actor: &Actor<'_>,
    request: &AccessRequest,
    approvals: &[String],
    roles: &RoleBook,
    now: Timestamp,
) -> Result<(), String> {
    match request.state_at(now) {
        "pending" => {}
        other => return Err(format!("the request is {other}")),
    }
    if actor.id == request.requester {
        return Err("nobody can approve their own request".into());
    }
    if approvals.iter().any(|a| a == actor.id) {
        return Err("you already approved this request".into());
    }
    // An approver must hold what the request would give.
    let as_grant = request.to_grant(String::new(), actor.id, now);
    super::duties::check_holds(actor, &as_grant, roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Grants;
    use crate::config::GroupRoleSettings;

    fn request() -> AccessRequest {
        AccessRequest {
            id: "r".into(),
            requester: "carol".into(),
            project: "shop".into(),
            role: "analyst".into(),
            reason: "INC-1".into(),
            duration_ms: 3_600_000,
            approvals_needed: 1,
            created_at: Timestamp::from_millis(0),
            lapses_at: Timestamp::from_millis(3_600_000),
            status: RequestStatus::Pending,
            grant_id: None,
            decided_at: None,
        }
    }

    #[test]
    fn asks_are_capped_and_for_one_project() {
        let max = 14 * 86_400_000;
        assert!(check_ask(&RoleBook::default(), "analyst", "shop", 3_600_000, max).is_ok());
        assert!(check_ask(&RoleBook::default(), "analyst", "*", 3_600_000, max).is_err());
        assert!(check_ask(&RoleBook::default(), "analyst", "shop", max + 1, max).is_err());
        assert!(check_ask(&RoleBook::default(), "emperor", "shop", 1, max).is_err());
    }

    #[test]
    fn requesters_never_approve_and_unanswered_requests_lapse() {
        let g = Grants::from_groups(
            &["o".into()],
            &[GroupRoleSettings {
                group: "o".into(),
                role: "owner".into(),
                project: "*".into(),
                review_by: None,
            }],
        );
        let carol = Actor {
            id: "carol",
            groups: &[],
            grants: &g,
        };
        let alice = Actor {
            id: "alice",
            groups: &[],
            grants: &g,
        };
        let r = request();
        let early = Timestamp::from_millis(1000);
        assert!(
            check_request_approval(&carol, &r, &[], &RoleBook::default(), early)
                .unwrap_err()
                .contains("own")
        );
        assert!(check_request_approval(&alice, &r, &[], &RoleBook::default(), early).is_ok());
        assert!(
            check_request_approval(&alice, &r, &["alice".into()], &RoleBook::default(), early)
                .is_err()
        );
        let late = Timestamp::from_millis(3_600_000);
        assert_eq!(r.state_at(late), "lapsed");
        assert!(
            check_request_approval(&alice, &r, &[], &RoleBook::default(), late)
                .unwrap_err()
                .contains("lapsed")
        );
        let nobody = Grants::default();
        let dave = Actor {
            id: "dave",
            groups: &[],
            grants: &nobody,
        };
        assert!(check_request_approval(&dave, &r, &[], &RoleBook::default(), early).is_err());
    }

    #[test]
    fn powerful_roles_need_two_approvals_like_direct_grants() {
        let book = RoleBook::new(vec![crate::access::CustomRole {
            name: "key-keeper".into(),
            permissions: vec![crate::access::Permission::KeysRotate],
            description: String::new(),
        }]);
        for role in ["owner", "admin", "key-keeper"] {
            assert_eq!(approvals_needed(&book, role, None, true), 2, "{role}");
            assert_eq!(approvals_needed(&book, role, Some(3), true), 3, "{role}");
            assert_eq!(approvals_needed(&book, role, None, false), 1, "{role}");
        }
        assert_eq!(approvals_needed(&book, "analyst", None, true), 1);
        assert_eq!(approvals_needed(&book, "analyst", Some(0), true), 1);
    }

    #[test]
    fn an_approved_request_becomes_a_grant_that_expires() {
        let g = request().to_grant("g".into(), "alice", Timestamp::from_millis(10));
        assert_eq!(g.expires_at, Some(Timestamp::from_millis(3_600_010)));
        assert_eq!(g.subject, "carol");
        assert!(g.in_force(Timestamp::from_millis(3_600_009), true));
        assert!(!g.in_force(Timestamp::from_millis(3_600_010), true));
    }
}
