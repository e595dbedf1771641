//! One module per command group.

pub mod admin;
pub mod serve;
