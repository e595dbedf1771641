//! `login`, `logout`, `whoami`, `config`.

use anyhow::Context as _;

use crate::exit::{Coded, Exit};
use crate::output::{Printer, human};
use crate::settings::{ConfigFile, Profile, Settings};

/// `ocloud login`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ocloud config set --api-url http://127.0.0.1:8080 --client-id ID --client-secret SECRET\n  ocloud login"
)]
pub struct LoginArgs {
    /// Print the URL to open and read the redirect URL you paste back, instead of waiting
    /// for the browser on the local listener.
    #[arg(long)]
    pub no_browser: bool,
    /// Seconds to wait for the browser.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

fn random_state() -> String {
    use sha2::Digest as _;
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    format!("{:x}", sha2::Sha256::digest(seed.as_bytes()))[..24].to_owned()
}

/// Logs in through the browser (OAuth2 code flow with PKCE) and stores the tokens.
pub async fn login(s: &Settings, args: &LoginArgs, out: &Printer) -> anyhow::Result<()> {
    if s.client_id.is_empty() || s.client_secret.is_empty() {
        return Err(Coded(
            Exit::Usage,
            format!(
                "profile {:?} has no client id/secret: run `ocloud config set --client-id ID --client-secret SECRET` \
                 (`ocloud serve` prints the dev app's on its first start)",
                s.profile
            ),
        )
        .into());
    }
    let api = s.manager()?;
    let state = random_state();
    let code = if args.no_browser {
        let url = api.authorize_url(&state).await?;
        eprintln!("Open this URL in a browser, sign in, then paste the address you land on:\n\n  {url}\n");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the pasted URL")?;
        api.code_from_redirect_url(&line).await?
    } else {
        let url = api.init_authorize_code_process(&state).await?;
        eprintln!("Opening your browser; if it does not open, visit:\n\n  {url}\n");
        open_browser(url.as_str());
        api.wait_and_terminate_authorize_code_process(Some(std::time::Duration::from_secs(args.timeout))).await?
    };
    api.init_with_authorize_code(&code).await?;
    out.note(format!("Logged in; tokens saved in {}", s.token_path().display()));
    Ok(())
}

fn open_browser(url: &str) {
    let cmd = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let _ = std::process::Command::new(cmd)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Forgets the stored tokens.
pub async fn logout(s: &Settings, out: &Printer) -> anyhow::Result<()> {
    s.manager()?.logout()?;
    out.note(format!("Logged out of profile {:?}", s.profile));
    Ok(())
}

/// Who and where.
pub async fn whoami(s: &Settings, out: &Printer) -> anyhow::Result<()> {
    let api = s.manager()?;
    let tokens = api.tokens();
    let root = api.folders().get(None, &Default::default()).await?;
    let free = api.freespace().await?;
    let expires_at = tokens.as_ref().map(|t| t.expires_at).filter(|e| *e > 0);
    if out.json {
        return out.json_out(&serde_json::json!({
            "profile": s.profile, "api_url": s.endpoints.api, "upload_url": s.endpoints.upload,
            "root": {"id": root.id, "name": root.name}, "freespace": free,
            "token": if s.token.is_some() { "given" } else { "stored" }, "expires_at": expires_at,
        }));
    }
    println!("profile    {}", s.profile);
    println!("api        {}", s.endpoints.api);
    println!("root       /{}  ({})", root.name, root.id);
    println!("free       {}", human(free));
    println!(
        "token      {}",
        if s.token.is_some() { "given with --token / OCLOUD_TOKEN" } else { "stored (refreshed as needed)" }
    );
    Ok(())
}

/// `ocloud config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Set fields of the profile (`--profile`, default "default").
    #[command(
        after_help = "Example:\n  ocloud config set --api-url http://127.0.0.1:8080 --client-id ID --client-secret SECRET"
    )]
    Set(SetArgs),
    /// Show the profile, the config file and the token file.
    #[command(after_help = "Example:\n  ocloud config show --profile default")]
    Show,
}

/// Fields to set.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    // --api-url and --upload-url are the global options: given here, they are saved.
    /// OAuth client id.
    #[arg(long)]
    client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long)]
    client_secret: Option<String>,
    /// Redirect URI registered for the app (the local listener's address).
    #[arg(long)]
    redirect_uri: Option<String>,
}

/// Runs `config`.
pub async fn config(s: &Settings, cmd: &ConfigCommand, out: &Printer) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Set(a) => {
            let mut file = ConfigFile::load(&s.config_path)?;
            let p = file.profiles.entry(s.profile.clone()).or_default();
            let set = |slot: &mut Option<String>, v: &Option<String>| {
                if let Some(v) = v {
                    *slot = Some(v.trim_end_matches('/').to_owned());
                }
            };
            set(&mut p.api_url, &s.api_url_given);
            set(&mut p.upload_url, &s.upload_url_given);
            set(&mut p.client_id, &a.client_id);
            set(&mut p.client_secret, &a.client_secret);
            if let Some(r) = &a.redirect_uri {
                p.redirect_uri = Some(r.clone());
            }
            file.save(&s.config_path)?;
            out.note(format!("Saved profile {:?} in {}", s.profile, s.config_path.display()));
        }
        ConfigCommand::Show => {
            let masked = Profile {
                client_secret: s.stored.client_secret.as_ref().map(|_| "********".to_owned()),
                ..s.stored.clone()
            };
            if out.json {
                return out.json_out(&serde_json::json!({
                    "profile": s.profile, "config_file": s.config_path, "token_file": s.token_path(),
                    "settings": masked, "api_url": s.endpoints.api, "upload_url": s.endpoints.upload,
                }));
            }
            println!("profile      {}", s.profile);
            println!("config file  {}", s.config_path.display());
            println!("token file   {}", s.token_path().display());
            println!("api url      {}", s.endpoints.api);
            println!("upload url   {}", s.endpoints.upload);
            println!("client id    {}", masked.client_id.unwrap_or_default());
            println!("secret       {}", masked.client_secret.unwrap_or_default());
            println!("redirect uri {}", s.redirect_uri);
        }
    }
    Ok(())
}
