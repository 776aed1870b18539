//! The pure core of the audit log: encoding, hashing and verification, with no I/O.
