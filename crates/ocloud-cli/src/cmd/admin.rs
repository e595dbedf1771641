//! `ocloud admin`: work on a data dir directly.

use std::path::PathBuf;
use std::time::Duration;

use ocloud_wire::model::TokenResponse;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print a valid access token, creating the user and the app if needed.
    #[command(
        after_help = "Example:\n  TOKEN=$(ocloud admin token --data-dir ./ocloud-data --user alice)\n  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/cloud/v1/freespace"
    )]
    Token(TokenArgs),
    /// Fill a folder with COUNT files of SIZE bytes sharing one content (benchmarks, demos).
    #[command(
        after_help = "Example:\n  ocloud admin fill --data-dir ./ocloud-data --user dev --folder /big --count 100000"
    )]
    Fill {
        /// User (created if missing).
        #[arg(long, default_value = "dev")]
        user: String,
        /// App whose token will be used (created if missing).
        #[arg(long, default_value = "ocloud")]
        app: String,
        /// Folder path from the user's root (created if missing).
        #[arg(long)]
        folder: String,
        /// Number of files.
        #[arg(long)]
        count: usize,
        /// Bytes per file.
        #[arg(long, default_value_t = 16)]
        size: usize,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage applications (OAuth clients).
    #[command(subcommand)]
    App(AppCommand),
    /// Check an installation: every file's content exists with its size, every stored object
    /// is referenced or pending cleanup, every user's usage is the sum of their files. Exits
    /// non-zero on a problem.
    #[command(after_help = "Example:\n  ocloud admin fsck --database postgres://ocloud@db/ocloud --blobs s3://ocloud")]
    Fsck {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Copy a whole installation (users, apps, grants, tokens, the tree, content) to other
    /// backends, e.g. from the embedded default to PostgreSQL + S3. The target must be empty;
    /// the source is left as it was. Stop the service first, or writes made meanwhile are not
    /// copied.
    #[command(
        after_help = "Example:\n  ocloud admin migrate --data-dir ./ocloud-data \\\n    --to-database postgres://ocloud@db/ocloud --to-blobs s3://ocloud-content"
    )]
    Migrate {
        /// The source (default: the embedded backends of --data-dir).
        #[command(flatten)]
        dir: DataDir,
        /// Target database: sqlite://PATH or postgres://….
        #[arg(long)]
        to_database: String,
        /// Target content store: file://PATH or s3://BUCKET[/PREFIX].
        #[arg(long)]
        to_blobs: String,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a generated password unless --password-stdin.
    #[command(after_help = "Example:\n  echo 's3cret' | ocloud admin user add alice --password-stdin --quota 10GiB")]
    Add {
        /// User name (the login).
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Quota of this user [default: the service's --quota].
        #[arg(long, value_parser = crate::size::parse)]
        quota: Option<u64>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List users.
    #[command(after_help = "Example:\n  ocloud admin user list --json --data-dir ./ocloud-data")]
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove a user with all their files and tokens.
    #[command(after_help = "Example:\n  ocloud admin user remove alice --data-dir ./ocloud-data")]
    Remove {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    #[command(flatten)]
    Block(Account),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AppCommand {
    /// Register an application; prints its client_id and client_secret once.
    #[command(
        after_help = "Example:\n  ocloud admin app add MyApp --redirect-uri http://myowncloud.io:8080/ --scopes \"openid cloud offline_access\""
    )]
    Add {
        /// Name, also the name of its folder in `mes dossiers partenaires`.
        name: String,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Scopes the app may ask for.
        #[arg(long, default_value = "openid cloud offline_access")]
        scopes: String,
        /// Requests per minute per user (403/53 above); default: the service's --rate-limit.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List applications.
    #[command(after_help = "Example:\n  ocloud admin app list --data-dir ./ocloud-data")]
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove an application with its tokens and consents.
    #[command(after_help = "Example:\n  ocloud admin app remove MyApp --data-dir ./ocloud-data")]
    Remove {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    #[command(flatten)]
    Block(Account),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DataDir {
    /// The service's data dir.
    #[arg(long, env = "OCLOUD_DATA_DIR", default_value = "./ocloud-data")]
    pub data_dir: PathBuf,
    /// Metadata database: sqlite://PATH or postgres://USER@HOST:PORT/DB (default: SQLite in the data dir).
    #[arg(long, env = "OCLOUD_DATABASE")]
    pub database: Option<String>,
    /// Content store: file://PATH or s3://BUCKET[/PREFIX], with AWS_* for the endpoint and credentials (default: files in the data dir).
    #[arg(long, env = "OCLOUD_BLOBS")]
    pub blobs: Option<String>,
}

impl DataDir {
    /// The service configuration naming these backends.
    pub fn config(&self) -> ocloud_server::Config {
        let mut cfg = ocloud_server::Config::new(&self.data_dir);
        cfg.database = self.database.clone();
        cfg.blobs = self.blobs.clone();
        cfg
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Account {
    /// Block: its calls get 403 (51 for an app, 52 for a user).
    #[command(after_help = "Example:\n  ocloud admin user disable alice --data-dir ./ocloud-data")]
    Disable(AccountArgs),
    /// Unblock.
    #[command(after_help = "Example:\n  ocloud admin app enable MyApp --data-dir ./ocloud-data")]
    Enable(AccountArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AccountArgs {
    /// The name.
    name: String,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    dir: DataDir,
    /// User the token acts for.
    #[arg(long, default_value = "dev")]
    user: String,
    /// Application holding the token (its folder is `mes dossiers partenaires/<app>`).
    #[arg(long, default_value = "ocloud")]
    app: String,
    /// Space-separated scopes: cloud (app folder only), cloudfullread, cloudfullwrite.
    #[arg(long, default_value = "openid cloud")]
    scope: String,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    expires_in: u64,
    /// Print the token endpoint's JSON (access_token, refresh_token, expires_in, token_type).
    #[arg(long)]
    json: bool,
}

pub async fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Fsck { dir } => {
            let cfg = dir.config();
            let quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = ocloud_server::admin::fsck(&cfg, |r| {
                if !quiet {
                    eprint!("\rchecked {} objects, {} file contents", r.objects, r.contents);
                }
            })
            .await?;
            if !quiet {
                eprintln!();
            }
            for p in &report.problems {
                println!("{p}");
            }
            println!(
                "{}: {} file contents, {} objects, {} unreferenced pending cleanup, {} problems",
                cfg.location(),
                report.contents,
                report.objects,
                report.pending,
                report.problems.len()
            );
            if !report.problems.is_empty() {
                anyhow::bail!("{} problems found", report.problems.len());
            }
        }
        Command::Migrate { dir, to_database, to_blobs } => {
            let from = dir.config();
            let mut to = from.clone();
            to.database = Some(to_database);
            to.blobs = Some(to_blobs);
            let report = ocloud_server::admin::migrate(&from, &to, |r| match r.rows.last() {
                None => eprintln!("content: {} objects, {} bytes", r.objects, r.bytes),
                Some((table, n)) => eprintln!("{table}: {n} rows"),
            })
            .await?;
            let rows: u64 = report.rows.iter().map(|(_, n)| n).sum();
            println!("copied {} objects ({} bytes) and {rows} rows to {}", report.objects, report.bytes, to.location());
        }
        Command::Fill { user, app, folder, count, size, dir } => {
            let path = ocloud_server::admin::fill(&dir.config(), &user, &app, &folder, count, size).await?;
            println!("{count} files in /{path}");
        }
        Command::User(UserCommand::Block(acc)) => account(false, acc).await?,
        Command::App(AppCommand::Block(acc)) => account(true, acc).await?,
        Command::User(UserCommand::Add { name, password_stdin, quota, dir }) => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (random_password(), true)
            };
            let user = ocloud_server::admin::add_user(&dir.config(), &name, &password, quota).await?;
            if generated {
                println!("user {}  password {password}", user.name);
            } else {
                println!("user {}", user.name);
            }
        }
        Command::User(UserCommand::List { json, dir }) => {
            for u in ocloud_server::admin::users(&dir.config()).await? {
                if json {
                    let v =
                        serde_json::json!({"name": u.name, "quota": u.quota, "used": u.used, "disabled": u.disabled});
                    println!("{v}");
                } else {
                    let quota = u.quota.map(|q| q.to_string()).unwrap_or_else(|| "default".into());
                    println!(
                        "{}\tused {}\tquota {quota}{}",
                        u.name,
                        u.used,
                        if u.disabled { "\tdisabled" } else { "" }
                    );
                }
            }
        }
        Command::User(UserCommand::Remove { name, dir }) => {
            ocloud_server::admin::remove_user(&dir.config(), &name).await?
        }
        Command::App(AppCommand::Add { name, redirect_uris, scopes, rate_limit, json, dir }) => {
            let (app, secret) =
                ocloud_server::admin::add_app(&dir.config(), &name, redirect_uris, &scopes, rate_limit).await?;
            if json {
                let v = serde_json::json!({"name": app.name, "client_id": app.client_id, "client_secret": secret,
                    "redirect_uris": app.redirect_uris, "scopes": app.scopes});
                println!("{v}");
            } else {
                println!(
                    "app {}\nclient_id {}\nclient_secret {secret}\n(the secret is shown only now)",
                    app.name, app.client_id
                );
            }
        }
        Command::App(AppCommand::List { json, dir }) => {
            for a in ocloud_server::admin::apps(&dir.config()).await? {
                if json {
                    let v = serde_json::json!({"name": a.name, "client_id": a.client_id, "redirect_uris": a.redirect_uris,
                        "scopes": a.scopes, "rate_limit": a.rate_limit, "disabled": a.disabled});
                    println!("{v}");
                } else {
                    println!("{}\t{}\t{}\t{}", a.name, a.client_id, a.scopes, a.redirect_uris.join(" "));
                }
            }
        }
        Command::App(AppCommand::Remove { name, dir }) => {
            ocloud_server::admin::remove_app(&dir.config(), &name).await?
        }
        Command::Token(a) => {
            let t = ocloud_server::admin::token(
                &a.dir.config(),
                &a.user,
                &a.app,
                &a.scope,
                Duration::from_secs(a.expires_in),
            )
            .await?;
            if a.json {
                let body = TokenResponse {
                    token_type: "Bearer".into(),
                    access_token: t.access_token,
                    expires_in: t.expires_in,
                    refresh_token: Some(t.refresh_token),
                    scope: None,
                };
                println!("{}", serde_json::to_string(&body)?);
            } else {
                println!("{}", t.access_token);
            }
        }
    }
    Ok(())
}

async fn account(app: bool, acc: Account) -> anyhow::Result<()> {
    let (args, disabled) = match acc {
        Account::Disable(a) => (a, true),
        Account::Enable(a) => (a, false),
    };
    ocloud_server::admin::set_disabled(&args.dir.config(), app, &args.name, disabled).await
}

fn random_password() -> String {
    // 96 random bits in hex.
    ocloud_server::domain::auth::new_token()[4..28].to_owned()
}
