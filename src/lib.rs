//! auditgate: nobody reads customer data without proving who they are, without being allowed
//! to, and without leaving a signed, tamper-evident trace that anyone can check offline.
//!
//! `ledger` is the pure core of the audit log and builds on its own (`--no-default-features`);
//! everything else is the service, behind the default `server` feature.

pub mod ledger;
pub mod verify_cli;

#[cfg(feature = "server")]
pub mod access;
#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod domain;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "server")]
pub mod privacy;
#[cfg(feature = "server")]
pub mod projects;
#[cfg(feature = "server")]
pub mod routes;
#[cfg(feature = "server")]
pub mod signin;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
