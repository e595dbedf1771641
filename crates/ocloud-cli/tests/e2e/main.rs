//! End to end: the real `ocloud` binary on a loopback port, spoken to over HTTP.

mod harness;

mod api;
mod browser;
mod cli;
mod client;
mod content;
mod crash;
mod errors;
mod hardening;
mod legacy;
mod oauth;
mod tls;
mod upload;
