//! `ocloud`: the command line for Orange Cloud, and the service itself (`ocloud serve`).
//!
//! Thin: parse arguments, set up logging, resolve settings, run one command, turn its error
//! into one line on stderr and an exit code (see `exit`).

mod cmd;
mod exit;
mod output;
mod remote;
mod settings;
mod size;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use exit::Exit;
use output::Printer;
use settings::{GlobalArgs, Settings};

/// Orange Cloud from the command line, and a self-hosted Orange Cloud service.
#[derive(Debug, Parser)]
#[command(name = "ocloud", version, about, after_help = exit::HELP)]
struct Cli {
    /// More logs (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars and no notes.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Machine-readable output (listing, stat, df, whoami, transfers).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Orange Cloud service (API, OAuth, uploads, downloads) on this machine.
    Serve(Box<cmd::serve::Args>),
    /// Control a service run with `ocloud serve --emulator`: clock, tokens, faults, journal, settings, snapshots.
    #[command(
        subcommand,
        after_help = "Talks to --api-url (OCLOUD_API_URL) with the admin token in OCLOUD_EMULATOR_TOKEN (printed by `ocloud serve --emulator`)."
    )]
    Emu(cmd::emu::Command),
    /// Administration of a data dir (works while the service runs).
    #[command(subcommand)]
    Admin(cmd::admin::Command),
    /// Log in through the browser (OAuth2) and keep the tokens.
    Login(cmd::auth::LoginArgs),
    /// Forget the tokens of the profile.
    #[command(after_help = "Example:\n  ocloud logout --profile work")]
    Logout,
    /// Show the profile, the service and the account.
    #[command(after_help = "Example:\n  ocloud whoami --json")]
    Whoami,
    /// Show or change the profile.
    #[command(subcommand)]
    Config(cmd::auth::ConfigCommand),
    /// Free space.
    #[command(after_help = "Example:\n  ocloud df --json")]
    Df,
    /// List a folder.
    Ls(cmd::fs::LsArgs),
    /// Show a folder tree.
    #[command(after_help = "Example:\n  ocloud tree /Photos")]
    Tree {
        /// Folder.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Details of a file or folder.
    #[command(after_help = "Example:\n  ocloud stat /Photos/beach.jpg --json")]
    Stat {
        /// Path or id:ID.
        path: String,
    },
    /// Create a folder.
    #[command(after_help = "Example:\n  ocloud mkdir -p /Photos/2024/summer")]
    Mkdir {
        /// Folder path.
        path: String,
        /// Create missing parents; no error if it exists.
        #[arg(short, long)]
        parents: bool,
    },
    /// Delete a file, or a folder with -r.
    #[command(after_help = "Example:\n  ocloud rm -r /Old")]
    Rm {
        /// Path or id:ID.
        path: String,
        /// Delete a folder and everything in it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Move (and rename) a file or folder, server-side.
    #[command(
        after_help = "Examples:\n  ocloud mv /a.txt /Docs/        # into a folder\n  ocloud mv /a.txt /Docs/b.txt  # and rename"
    )]
    Mv {
        /// Source.
        src: String,
        /// Destination folder, or new path.
        dst: String,
    },
    /// Copy a file or folder, server-side.
    #[command(after_help = "Example:\n  ocloud cp /Photos /Backup/Photos-2024")]
    Cp {
        /// Source.
        src: String,
        /// Destination folder, or new path.
        dst: String,
    },
    /// Rename a file or folder in place.
    #[command(after_help = "Example:\n  ocloud rename /Photos/IMG_1.jpg beach.jpg")]
    Rename {
        /// Path or id:ID.
        path: String,
        /// The new name.
        new_name: String,
    },
    /// Print a file's content on stdout.
    #[command(after_help = "Example:\n  ocloud cat /notes.txt | less")]
    Cat {
        /// File path or id:ID.
        path: String,
    },
    /// Upload a file, or a folder's contents, to the cloud.
    #[command(
        after_help = "Examples:\n  ocloud upload ./photos /Photos --transfers 8   # contents of ./photos into /Photos\n  ocloud upload notes.txt /Docs/               # into an existing folder"
    )]
    Upload {
        /// Local file or folder.
        local: PathBuf,
        /// Remote destination.
        remote: String,
        #[command(flatten)]
        opts: cmd::transfer::TransferOpts,
    },
    /// Download a file, or a folder's contents, from the cloud.
    #[command(after_help = "Examples:\n  ocloud download /Photos ./photos\n  ocloud download /Docs/notes.txt .")]
    Download {
        /// Remote file or folder.
        remote: String,
        /// Local destination.
        local: PathBuf,
        #[command(flatten)]
        opts: cmd::transfer::TransferOpts,
    },
    /// Make a destination folder like a source folder (one local, one cloud:/remote).
    Sync(cmd::transfer::SyncArgs),
    /// Compare a local folder and a remote folder.
    Check(cmd::transfer::CheckArgs),
    /// The legacy Personal Photos API: albums and photos.
    #[command(subcommand)]
    Photos(cmd::personal::PhotosCommand),
    /// The legacy Personal Content API: one-time upload URLs.
    #[command(subcommand)]
    Content(cmd::personal::ContentCommand),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  ocloud completions bash > /etc/bash_completion.d/ocloud")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { Exit::Usage } else { Exit::Success };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let default = match (cli.verbose, &cli.command) {
        (0, Command::Serve(_)) => "info",
        // A command's own failure is its one line on stderr: libraries stay quiet unless -v.
        (0, _) => "ocloud=warn,ocloud_client=warn",
        (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a terminal: escape codes in a log file or a pipe are noise, or worse.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    // The service (and `admin`, which opens its stores) runs on every core, and so does a
    // client command that speaks HTTPS: its TLS work would share the one thread with the
    // transfer (a 512 MiB upload over HTTPS measured up to 1.6× slower so, though within this
    // VM's noise: not a risk worth taking). A client command over plain HTTP runs on
    // this one thread (files are still read and written on the blocking pool): its transfers
    // and their connections then wake one another without crossing threads, which was a
    // fifth of the CLI's CPU time for many small files and changes nothing for large ones
    // (measured in bench/README.md).
    let plain_http = |s: &Settings| {
        [&s.endpoints.api, &s.endpoints.upload, &s.endpoints.oauth].iter().all(|u| u.starts_with("http://"))
    };
    // A client command's settings are read once, here, and handed to it.
    let settings = match &cli.command {
        Command::Serve(_) | Command::Admin(_) => None,
        _ => Some(Settings::resolve(&cli.global)),
    };
    let runtime = match &settings {
        Some(Ok(s)) if plain_http(s) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ocloud: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Error as u8);
        }
    };
    match runtime.block_on(run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`ocloud cat f | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("ocloud: {e:#}");
            ExitCode::from(exit::classify(&e) as u8)
        }
    }
}

/// Runs the command; `settings` are the client's, resolved by `main` for every command but
/// `serve` and `admin`.
async fn run(cli: Cli, settings: Option<anyhow::Result<Settings>>) -> anyhow::Result<()> {
    let out = Printer::new(cli.json, cli.quiet);
    // Each command below takes them at most once.
    let settings = || settings.expect("client settings are resolved for client commands");
    let api = |s: anyhow::Result<Settings>| s?.manager();
    match &cli.command {
        Command::Serve(args) => cmd::serve::run((**args).clone(), cli.json).await,
        Command::Emu(c) => cmd::emu::run(c, &cli.global, &out).await,
        Command::Admin(c) => cmd::admin::run(c.clone()).await,
        Command::Login(a) => cmd::auth::login(&settings()?, a, &out).await,
        Command::Logout => cmd::auth::logout(&settings()?, &out).await,
        Command::Whoami => cmd::auth::whoami(&settings()?, &out).await,
        Command::Config(c) => cmd::auth::config(&settings()?, c, &out).await,
        Command::Df => cmd::fs::df(&api(settings())?, &out).await,
        Command::Ls(a) => cmd::fs::ls(&api(settings())?, a, &out).await,
        Command::Tree { path } => cmd::fs::tree(&api(settings())?, path, &out).await,
        Command::Stat { path } => cmd::fs::stat(&api(settings())?, path, &out).await,
        Command::Mkdir { path, parents } => cmd::fs::mkdir(&api(settings())?, path, *parents, &out).await,
        Command::Rm { path, recursive } => cmd::fs::rm(&api(settings())?, path, *recursive, &out).await,
        Command::Mv { src, dst } => cmd::fs::mv_cp(&api(settings())?, src, dst, false, &out).await,
        Command::Cp { src, dst } => cmd::fs::mv_cp(&api(settings())?, src, dst, true, &out).await,
        Command::Rename { path, new_name } => cmd::fs::rename(&api(settings())?, path, new_name, &out).await,
        Command::Cat { path } => cmd::fs::cat(&api(settings())?, path).await,
        Command::Upload { local, remote, opts } => {
            cmd::transfer::upload(&api(settings())?, local, remote, opts, &out).await
        }
        Command::Download { remote, local, opts } => {
            cmd::transfer::download(&api(settings())?, remote, local, opts, &out).await
        }
        Command::Sync(a) => cmd::transfer::sync(&api(settings())?, a, &out).await,
        Command::Check(a) => cmd::transfer::check(&api(settings())?, a, &out).await,
        Command::Photos(c) => cmd::personal::photos(&api(settings())?, c, &out).await,
        Command::Content(c) => cmd::personal::content(&api(settings())?, c, &out).await,
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "ocloud", &mut std::io::stdout());
            Ok(())
        }
    }
}
