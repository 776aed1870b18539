//! Request authentication and sign-in: how a request becomes a `Caller` (a person's session or
//! personal token) or a `Principal` (with the permission its route declares), and the sign-in
//! flows. Above the shared state, which they read; the credential machinery they use
//! (providers, sessions, TOTP, tokens, sealing) is `auth`, below it.

pub mod account;
pub mod caller;
pub mod flows;
pub mod principal;
