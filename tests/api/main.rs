//! Integration tests: the real application over HTTP on port 0.

mod audit;
mod bad_input;
mod browser;
mod cli;
mod console;
mod fake_idp;
mod faults;
mod grants;
mod health;
mod helpers;
mod ingest;
mod investigate;
mod layers;
mod limits;
mod oidc_e2e;
mod privacy;
mod privilege;
mod processes;
mod query;
mod routes;
mod scale;
mod sdk;
mod signin;
mod store;
mod tamper;
mod verify_cli;
