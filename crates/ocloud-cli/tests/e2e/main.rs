//! End to end: the real `ocloud` binary on a loopback port, spoken to over HTTP.

#[allow(dead_code)] // shared with the reliability and scale suites
mod harness;

mod api;
mod browser;
mod cli;
mod client;
mod content;
mod crash;
mod emulator;
mod emulator_faults;
mod emulator_tools;
mod errors;
mod fsck;
mod hardening;
mod legacy;
mod oauth;
mod tls;
mod ui;
mod upgrade;
mod upload;
