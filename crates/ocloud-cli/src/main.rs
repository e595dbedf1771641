//! `ocloud`: the command line for Orange Cloud, and the service itself (`ocloud serve`).
//!
//! Thin: parse arguments, set up logging, run one command, turn its error into one line on
//! stderr and an exit code.

mod cmd;
mod size;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Orange Cloud from the command line, and a self-hosted Orange Cloud service.
#[derive(Debug, Parser)]
#[command(name = "ocloud", version, about)]
struct Cli {
    /// More logs (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Orange Cloud service (API, uploads, downloads) on this machine.
    Serve(cmd::serve::Args),
    /// Administration of a data dir (works while the service runs).
    #[command(subcommand)]
    Admin(cmd::admin::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match (cli.verbose, &cli.command) {
        (0, Command::Serve(_)) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ocloud: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Admin(c) => cmd::admin::run(c).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocloud: {e:#}");
            ExitCode::from(1)
        }
    }
}
