//! Data-protection services: retention today; subject requests, opt-outs and consent follow.

pub mod retention;
