//! `ocloud admin`: work on a data dir directly.

use std::path::PathBuf;
use std::time::Duration;

use ocloud_wire::model::TokenResponse;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a valid access token, creating the user and the app if needed.
    #[command(
        after_help = "Example:\n  TOKEN=$(ocloud admin token --data-dir ./ocloud-data --user alice)\n  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/cloud/v1/freespace"
    )]
    Token(TokenArgs),
    /// Manage users.
    #[command(subcommand)]
    User(Account),
    /// Manage applications.
    #[command(subcommand)]
    App(Account),
}

#[derive(Debug, clap::Subcommand)]
pub enum Account {
    /// Block: its calls get 403 (51 for an app, 52 for a user).
    Disable(AccountArgs),
    /// Unblock.
    Enable(AccountArgs),
}

#[derive(Debug, clap::Args)]
pub struct AccountArgs {
    /// The name.
    name: String,
    /// The service's data dir.
    #[arg(long, env = "OCLOUD_DATA_DIR", default_value = "./ocloud-data")]
    data_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The service's data dir.
    #[arg(long, env = "OCLOUD_DATA_DIR", default_value = "./ocloud-data")]
    data_dir: PathBuf,
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
        Command::User(acc) => account(false, acc).await?,
        Command::App(acc) => account(true, acc).await?,
        Command::Token(a) => {
            let t = ocloud_server::admin::token(
                &a.data_dir,
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
    ocloud_server::admin::set_disabled(&args.data_dir, app, &args.name, disabled).await
}
