//! One module per command group.

pub mod admin;
pub mod auth;
pub mod fs;
pub mod serve;
pub mod transfer;
