//! The Orange Cloud wire contract, shared by the ocloud server and client so they cannot drift.
//!
//! - [`error`]: the error-code table of spec §4.1 and the other error shapes of §4.2;
//! - [`model`]: the JSON bodies of the Cloud API v1 (spec §3);
//! - [`id`]: the path-derived item ids of spec §3.1.
//!
//! This crate does no I/O. Field names and error strings are spelled out here and nowhere else.

pub mod error;
pub mod id;
pub mod legacy;
pub mod model;

pub use error::{ErrorBody, ErrorCode};
