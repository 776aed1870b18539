//! Authentication: service-account API tokens, and the 2-step verification core for sign-in.

pub mod oidc;
pub mod recovery;
pub mod seal;
pub mod session;
pub mod tokens;
pub mod totp;
