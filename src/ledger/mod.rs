//! The pure core of the audit log: entry encoding, the hash chain, RFC 6962 Merkle trees,
//! signed notes and checkpoints, and bundle verification. No async, no I/O, no clock, no
//! database: the service and the offline verifier share exactly this code.

pub mod bundle;
pub mod chain;
pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod show;
