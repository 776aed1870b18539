//! Data-protection services: subject requests as jobs, opt-outs and consent at ingestion,
//! retention windows and the purge of deleted projects.

pub mod consent;
pub mod export;
pub use crate::domain::subject_request as request;
pub mod retention;
pub mod subjects;
