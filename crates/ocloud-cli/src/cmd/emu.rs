//! `ocloud emu`: the control plane of a service run with `ocloud serve --emulator`.

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::output::Printer;
use crate::settings::GlobalArgs;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Show the service's clock, or set it.
    #[command(
        after_help = "Examples:\n  ocloud emu clock\n  ocloud emu clock --set 2030-01-01T00:00:00Z\n  ocloud emu clock --run"
    )]
    Clock {
        /// Set it to this RFC 3339 time (frozen there unless --run).
        #[arg(long)]
        set: Option<String>,
        /// Let it run (from --set, or from where it stands).
        #[arg(long)]
        run: bool,
        /// Freeze it where it stands.
        #[arg(long, conflicts_with_all = ["set", "run"])]
        freeze: bool,
    },
    /// Move the clock forward by SECONDS: tokens, codes and upload URLs expire with no waiting.
    #[command(after_help = "Example:\n  ocloud emu advance 3601")]
    Advance {
        /// Seconds (may be fractional or negative).
        seconds: f64,
    },
    /// Mint tokens for a user and an app (both created if missing); prints the access token,
    /// or with --json the token endpoint's answer.
    #[command(after_help = "Example:\n  export OCLOUD_TOKEN=$(ocloud emu token --user alice --app tests)")]
    Token {
        /// The user.
        #[arg(long)]
        user: String,
        /// The app.
        #[arg(long)]
        app: String,
        /// Scopes.
        #[arg(long, default_value = "openid cloud offline_access")]
        scope: String,
        /// Access-token lifetime, seconds (default: the service's).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Expire a token now.
    Expire {
        /// The token (access or refresh).
        token: String,
    },
    /// Revoke a token.
    Revoke {
        /// The token (access or refresh).
        token: String,
    },
    /// Load a fixture (JSON: users, apps, tokens, files); idempotent.
    #[command(after_help = "Example:\n  ocloud emu seed fixture.json")]
    Seed {
        /// The fixture file.
        file: std::path::PathBuf,
    },
    /// The request journal (with --json, whole entries), optionally filtered.
    #[command(after_help = "Example:\n  ocloud emu requests --op files.upload --status 201")]
    Requests {
        /// Operation id (files.upload, folders.get…).
        #[arg(long)]
        op: Option<String>,
        /// Status.
        #[arg(long)]
        status: Option<u16>,
        /// Path glob.
        #[arg(long)]
        path: Option<String>,
    },
    /// Show the fault rules, or replace them (--set FILE), append to them (--add FILE), or
    /// remove them (--clear). FILE: `{"rules": [...]}` as `PUT /_ocloud/v1/faults` takes.
    #[command(
        after_help = "Example:\n  echo '{\"rules\":[{\"match\":{\"op\":\"files.upload\"},\"when\":{\"times\":1},\"action\":{\"error\":5}}]}' > f.json\n  ocloud emu faults --add f.json"
    )]
    Faults {
        /// Replace every rule with those of this file.
        #[arg(long, conflicts_with_all = ["add", "clear"])]
        set: Option<std::path::PathBuf>,
        /// Append the rules of this file.
        #[arg(long, conflicts_with = "clear")]
        add: Option<std::path::PathBuf>,
        /// Remove every rule.
        #[arg(long)]
        clear: bool,
    },
    /// Take a snapshot of everything; prints its id.
    Snapshot,
    /// Put everything back as it was at snapshot ID.
    Restore {
        /// The snapshot's id.
        id: String,
    },
    /// Forget snapshot ID.
    Forget {
        /// The snapshot's id.
        id: String,
    },
    /// Empty the service: everything, or with --keep-accounts only the files.
    Reset {
        /// Keep users, apps, consents and tokens.
        #[arg(long)]
        keep_accounts: bool,
    },
}

/// Runs one command against the service at `--api-url` (`OCLOUD_API_URL`) with the admin
/// token of `OCLOUD_EMULATOR_TOKEN`.
pub async fn run(c: &Command, global: &GlobalArgs, out: &Printer) -> anyhow::Result<()> {
    let base = global.api_url.clone().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let base = base.trim_end_matches('/').to_owned();
    let token = std::env::var("OCLOUD_EMULATOR_TOKEN")
        .context("OCLOUD_EMULATOR_TOKEN is not set: export the admin token `ocloud serve --emulator` printed")?;
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = &global.ca_cert {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let http = builder.build()?;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rb = http.request(method, format!("{base}/_ocloud/v1{path}")).bearer_auth(&token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        async move {
            let r = rb.send().await.with_context(|| format!("no answer from {base}"))?;
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if !status.is_success() {
                let why = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["description"].as_str().or(v["message"].as_str()).map(str::to_owned))
                    .unwrap_or(text);
                if status == reqwest::StatusCode::NOT_FOUND && why.contains("no such endpoint") {
                    anyhow::bail!("{base} has no control plane: start it with `ocloud serve --emulator`");
                }
                anyhow::bail!("{status}: {why}");
            }
            Ok::<Value, anyhow::Error>(serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    };
    let v = match c {
        Command::Clock { set, run, freeze } => {
            if set.is_none() && !run && !freeze {
                call(reqwest::Method::GET, "/clock", None).await?
            } else {
                let mut body = json!({"frozen": !run});
                if let Some(t) = set {
                    body["now"] = json!(t);
                }
                call(reqwest::Method::PUT, "/clock", Some(body)).await?
            }
        }
        Command::Advance { seconds } => {
            call(reqwest::Method::POST, "/clock/advance", Some(json!({"seconds": seconds}))).await?
        }
        Command::Token { user, app, scope, ttl } => {
            let v = call(
                reqwest::Method::POST,
                "/tokens",
                Some(json!({"user": user, "app": app, "scope": scope, "ttl": ttl})),
            )
            .await?;
            if !out.json {
                println!("{}", v["access_token"].as_str().unwrap_or_default());
                return Ok(());
            }
            v
        }
        Command::Expire { token } => call(reqwest::Method::POST, &format!("/tokens/{token}/expire"), None).await?,
        Command::Revoke { token } => call(reqwest::Method::POST, &format!("/tokens/{token}/revoke"), None).await?,
        Command::Seed { file } => {
            let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let fixture: Value =
                serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", file.display()))?;
            call(reqwest::Method::POST, "/seed", Some(fixture)).await?
        }
        Command::Requests { op, status, path } => {
            let mut q = Vec::new();
            if let Some(o) = op {
                q.push(format!("op={o}"));
            }
            if let Some(s) = status {
                q.push(format!("status={s}"));
            }
            if let Some(p) = path {
                q.push(format!("path={p}"));
            }
            let v = call(reqwest::Method::GET, &format!("/requests?{}", q.join("&")), None).await?;
            if !out.json {
                for e in v["requests"].as_array().into_iter().flatten() {
                    println!(
                        "{} {} {} {} {} {}",
                        e["id"],
                        e["method"].as_str().unwrap_or_default(),
                        e["path"].as_str().unwrap_or_default(),
                        e["status"],
                        e["operation"].as_str().unwrap_or("-"),
                        e["user"].as_str().unwrap_or("-")
                    );
                }
                return Ok(());
            }
            v
        }
        Command::Faults { set, add, clear } => {
            let read = |f: &std::path::PathBuf| -> anyhow::Result<Value> {
                let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", f.display()))
            };
            match (set, add, clear) {
                (Some(f), _, _) => call(reqwest::Method::PUT, "/faults", Some(read(f)?)).await?,
                (_, Some(f), _) => call(reqwest::Method::PATCH, "/faults", Some(read(f)?)).await?,
                (_, _, true) => call(reqwest::Method::DELETE, "/faults", None).await?,
                _ => call(reqwest::Method::GET, "/faults", None).await?,
            }
        }
        Command::Snapshot => {
            let v = call(reqwest::Method::POST, "/snapshots", None).await?;
            if !out.json {
                println!("{}", v["id"].as_str().unwrap_or_default());
                return Ok(());
            }
            v
        }
        Command::Restore { id } => call(reqwest::Method::POST, &format!("/snapshots/{id}/restore"), None).await?,
        Command::Forget { id } => call(reqwest::Method::DELETE, &format!("/snapshots/{id}"), None).await?,
        Command::Reset { keep_accounts } => {
            let q = if *keep_accounts { "?keep=accounts" } else { "" };
            call(reqwest::Method::POST, &format!("/reset{q}"), None).await?
        }
    };
    if out.json {
        out.json_out(&v)?;
    } else if let Some(now) = v["now"].as_str() {
        println!("{now}{}", if v["frozen"] == true { " (frozen)" } else { "" });
    } else if !v.is_null() {
        println!("{v}");
    }
    Ok(())
}
