//! Authentication: today, service-account API tokens; people's sign-in joins here.

pub mod tokens;
