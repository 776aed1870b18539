//! Who is calling, and what the route they called declares it needs: values only. How a
//! request becomes a [`Principal`] is `auth::principal`.

use super::{Permission, Subject};

/// What a route requires: every route in the registry declares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to anyone; the reason says why that is safe.
    Public(&'static str),
    /// Needs this permission on the project in the path (or the one the credentials name).
    Requires(Permission),
    /// A person's own account (sign-in steps, sessions, personal tokens): no project
    /// permission, but a session at the stated stage.
    Account(AccountNeed),
}

/// How far a person must have signed in to use an account route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountNeed {
    /// Signed in, 2-step verification possibly still to do (the 2-step pages themselves).
    Partial,
    /// Signed in and verified; a personal token also serves.
    Verified,
    /// Verified within the last few minutes, in a session (e.g. creating a token).
    StepUp,
}

/// An authenticated caller on a route that declares a permission.
#[derive(Debug, Clone)]
pub struct Principal {
    subject: Subject,
    route_permission: Permission,
}

impl Principal {
    /// Who the caller is.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The permission the route being served declares.
    pub fn route_permission(&self) -> Permission {
        self.route_permission
    }

    /// `subject` calling a route declaring `access`; None if the route declares no
    /// permission (a route bug: such routes never ask for a principal).
    pub fn for_route(subject: Subject, access: Access) -> Option<Self> {
        match access {
            Access::Requires(route_permission) => Some(Self {
                subject,
                route_permission,
            }),
            Access::Public(_) | Access::Account(_) => None,
        }
    }
}
