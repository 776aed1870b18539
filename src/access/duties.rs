//! Separation of duties for grants, as pure checks: nobody grants to themselves or to a group
//! they are in, nobody grants a permission they do not hold, and the most powerful grants wait
//! for a second administrator, who is neither the granter nor the grantee.

use super::roles::{Effect, GrantRecord, GrantStatus, Grants, RoleBook, SubjectKind};
use crate::domain::ProjectId;

/// The administrator acting on a grant.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their id.
    pub id: &'a str,
    /// Their identity-provider groups.
    pub groups: &'a [String],
    /// What they hold now.
    pub grants: &'a Grants,
}

fn is_grantee(actor: &Actor<'_>, grant: &GrantRecord) -> bool {
    match grant.subject_kind {
        SubjectKind::User => grant.subject == actor.id,
        SubjectKind::Group => actor.groups.contains(&grant.subject),
        SubjectKind::ServiceAccount => false,
    }
}

/// Checks that `actor` holds every permission `grant` would give, where it would give it.
pub fn check_holds(actor: &Actor<'_>, grant: &GrantRecord, roles: &RoleBook) -> Result<(), String> {
    let permissions = grant.permissions(roles);
    let missing = permissions.iter().find(|p| {
        if grant.project == "*" {
            !actor.grants.allows_everywhere(**p)
        } else {
            ProjectId::parse(&grant.project)
                .is_ok_and(|project| !actor.grants.allows(**p, &project))
        }
    });
    match missing {
        Some(p) => Err(format!(
            "you cannot grant a role carrying {p}, which you do not hold on {}",
            grant.project
        )),
        None => Ok(()),
    }
}

/// Checks a new grant and says whether it starts active or waits for approval.
pub fn check_new_grant(
    actor: &Actor<'_>,
    grant: &GrantRecord,
    roles: &RoleBook,
    powerful_need_approval: bool,
) -> Result<GrantStatus, String> {
    if is_grantee(actor, grant) {
        return Err("nobody can grant to themselves or to a group they belong to".into());
    }
    if grant.effect == Effect::Allow {
        let role = grant.role.as_deref().unwrap_or_default();
        if roles.permissions(role).is_none() {
            return Err(format!("{role:?} is not a role"));
        }
        check_holds(actor, grant, roles)?;
    }
    Ok(if grant.is_powerful(roles) && powerful_need_approval {
        GrantStatus::Pending
    } else {
        GrantStatus::Active
    })
}

/// Checks a grant to the break-glass account: it may be given administration, never a role
/// that reads event or profile data.
pub fn check_break_glass_grant(grant: &GrantRecord, roles: &RoleBook) -> Result<(), String> {
    match grant.permissions(roles).iter().find(|p| p.reads_data()) {
        Some(p) => Err(format!(
            "the break-glass account reads no data: a role carrying {p} cannot be granted to it"
        )),
        None => Ok(()),
    }
}

/// What an administrator does to an existing grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Lock it: it stops working until unlocked.
    Lock,
    /// Unlock it.
    Unlock,
    /// Revoke it for good.
    Revoke,
}

/// Checks that `actor` may lock, unlock or revoke `grant`: nobody lifts a deny that applies
/// to them (directly or through a group), and nobody unlocks their own grant, the same
/// separation of duties as for granting. Ending one's own allow is always possible.
pub fn check_change(actor: &Actor<'_>, grant: &GrantRecord, change: Change) -> Result<(), String> {
    if !is_grantee(actor, grant) {
        return Ok(());
    }
    match (grant.effect, change) {
        (Effect::Deny, _) => Err(
            "nobody locks, unlocks or revokes a deny that applies to them or to a group they belong to"
                .into(),
        ),
        (Effect::Allow, Change::Unlock) => {
            Err("nobody unlocks a grant to themselves or to a group they belong to".into())
        }
        (Effect::Allow, Change::Lock | Change::Revoke) => Ok(()),
    }
}

/// Checks that `actor` may approve (or reject) a pending grant.
pub fn check_approval(
    actor: &Actor<'_>,
    grant: &GrantRecord,
    roles: &RoleBook,
) -> Result<(), String> {
    if grant.status != GrantStatus::Pending {
        return Err(format!(
            "the grant is {}, not pending",
            grant.status.as_str()
        ));
    }
    if actor.id == grant.granted_by {
        return Err("the administrator who granted it cannot approve it".into());
    }
    if is_grantee(actor, grant) {
        return Err("nobody can approve a grant to themselves".into());
    }
    check_holds(actor, grant, roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupRoleSettings;
    use crate::domain::Timestamp;

    fn owner_everywhere() -> Grants {
        Grants::from_groups(
            &["owners".into()],
            &[GroupRoleSettings {
                group: "owners".into(),
                role: "owner".into(),
                project: "*".into(),
                review_by: None,
            }],
        )
    }

    fn grant(kind: SubjectKind, subject: &str, role: &str, project: &str) -> GrantRecord {
        GrantRecord {
            id: "g".into(),
            subject_kind: kind,
            subject: subject.into(),
            effect: Effect::Allow,
            role: Some(role.into()),
            permission: None,
            project: project.into(),
            reason: "ticket".into(),
            granted_by: "alice".into(),
            created_at: Timestamp::from_millis(0),
            expires_at: None,
            status: GrantStatus::Pending,
            decided_by: None,
            decided_at: None,
            review_every_days: None,
            reviewed_at: None,
            locked_at: None,
        }
    }

    #[test]
    fn nobody_grants_to_themselves_or_their_group() {
        let g = owner_everywhere();
        let groups = vec!["owners".to_owned()];
        let alice = Actor {
            id: "alice",
            groups: &groups,
            grants: &g,
        };
        assert!(
            check_new_grant(
                &alice,
                &grant(SubjectKind::User, "alice", "analyst", "shop"),
                &RoleBook::default(),
                true
            )
            .is_err()
        );
        assert!(
            check_new_grant(
                &alice,
                &grant(SubjectKind::Group, "owners", "analyst", "shop"),
                &RoleBook::default(),
                true
            )
            .is_err()
        );
        assert_eq!(
            check_new_grant(
                &alice,
                &grant(SubjectKind::User, "bob", "analyst", "shop"),
                &RoleBook::default(),
                true
            ),
            Ok(GrantStatus::Active)
        );
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let g = Grants::from_groups(
            &["admins".into()],
            &[GroupRoleSettings {
                group: "admins".into(),
                role: "admin".into(),
                project: "shop".into(),
                review_by: None,
            }],
        );
        let carol = Actor {
            id: "carol",
            groups: &[],
            grants: &g,
        };
        // An admin holds analyst's permissions on shop, not on bank, and not auditor's.
        assert!(
            check_new_grant(
                &carol,
                &grant(SubjectKind::User, "bob", "analyst", "shop"),
                &RoleBook::default(),
                true
            )
            .is_ok()
        );
        assert!(
            check_new_grant(
                &carol,
                &grant(SubjectKind::User, "bob", "analyst", "bank"),
                &RoleBook::default(),
                true
            )
            .is_err()
        );
        let err = check_new_grant(
            &carol,
            &grant(SubjectKind::User, "bob", "auditor", "shop"),
            &RoleBook::default(),
            true,
        )
        .unwrap_err();
        assert!(err.contains("audit:export"), "{err}");
    }

    #[test]
    fn powerful_grants_wait_for_someone_else() {
        let g = owner_everywhere();
        let alice = Actor {
            id: "alice",
            groups: &[],
            grants: &g,
        };
        let owner = grant(SubjectKind::User, "bob", "owner", "shop");
        assert_eq!(
            check_new_grant(&alice, &owner, &RoleBook::default(), true),
            Ok(GrantStatus::Pending)
        );
        assert_eq!(
            check_new_grant(&alice, &owner, &RoleBook::default(), false),
            Ok(GrantStatus::Active)
        );
        assert!(
            check_new_grant(
                &alice,
                &grant(SubjectKind::User, "bob", "admin", "shop"),
                &RoleBook::default(),
                true
            ) == Ok(GrantStatus::Pending)
        );
        assert!(
            check_approval(&alice, &owner, &RoleBook::default())
                .unwrap_err()
                .contains("granted it")
        );
        let bob = Actor {
            id: "bob",
            groups: &[],
            grants: &g,
        };
        assert!(
            check_approval(&bob, &owner, &RoleBook::default())
                .unwrap_err()
                .contains("themselves")
        );
        let dave = Actor {
            id: "dave",
            groups: &[],
            grants: &g,
        };
        assert_eq!(check_approval(&dave, &owner, &RoleBook::default()), Ok(()));
    }

    #[test]
    fn the_break_glass_account_is_granted_no_data_role() {
        let book = RoleBook::default();
        for role in ["owner", "admin", "analyst", "consumer", "sensitive_reader"] {
            let g = grant(SubjectKind::User, "root", role, "*");
            assert!(check_break_glass_grant(&g, &book).is_err(), "{role}");
        }
        for role in ["auditor", "ingest_service"] {
            let g = grant(SubjectKind::User, "root", role, "*");
            assert_eq!(check_break_glass_grant(&g, &book), Ok(()), "{role}");
        }
    }

    #[test]
    fn nobody_lifts_a_deny_on_themselves_or_their_group() {
        let g = owner_everywhere();
        let groups = vec!["analysts".to_owned()];
        let bob = Actor {
            id: "bob",
            groups: &groups,
            grants: &g,
        };
        let mut deny = grant(SubjectKind::Group, "analysts", "owner", "shop");
        deny.effect = Effect::Deny;
        deny.role = None;
        for change in [Change::Lock, Change::Unlock, Change::Revoke] {
            assert!(check_change(&bob, &deny, change).is_err(), "{change:?}");
            deny.subject_kind = SubjectKind::User;
            deny.subject = "bob".into();
            assert!(check_change(&bob, &deny, change).is_err(), "{change:?}");
            deny.subject = "carol".into();
            assert_eq!(check_change(&bob, &deny, change), Ok(()));
            deny.subject_kind = SubjectKind::Group;
            deny.subject = "analysts".into();
        }
        let own = grant(SubjectKind::User, "bob", "analyst", "shop");
        assert!(check_change(&bob, &own, Change::Unlock).is_err());
        assert_eq!(check_change(&bob, &own, Change::Lock), Ok(()));
        assert_eq!(check_change(&bob, &own, Change::Revoke), Ok(()));
    }
}
