//! One module per command group.

pub mod admin;
pub mod auth;
pub mod emu;
pub mod fs;
pub mod personal;
pub mod serve;
pub mod transfer;
