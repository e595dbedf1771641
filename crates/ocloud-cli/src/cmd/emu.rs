//! `ocloud emu`: the control plane of a service run with `ocloud serve --emulator`.

use std::io::Write as _;

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
        /// Only requests no route took, each with the nearest known route.
        #[arg(long, conflicts_with_all = ["op", "status", "path", "har"])]
        unmatched: bool,
        /// Write the journal to FILE as an HTTP Archive (HAR 1.2).
        #[arg(long)]
        har: Option<std::path::PathBuf>,
    },
    /// Print each request as it arrives (the journal's live tail), until interrupted.
    #[command(after_help = "Example:\n  ocloud emu tail --op files.upload")]
    Tail {
        /// Only this operation id.
        #[arg(long)]
        op: Option<String>,
    },
    /// Show the settings, or change some: KEY=VALUE with KEY one of token_ttl, quota,
    /// rate_limit, max_upload_size, error_shape, expired_token_code, auto_login (a user, or
    /// `null`), auto_consent, seed.
    #[command(after_help = "Example:
  ocloud emu settings auto_login=alice auto_consent=true quota=1048576")]
    Settings {
        /// KEY=VALUE pairs.
        set: Vec<String>,
    },
    /// The last authorization code issued to a client (for tests that cannot follow the
    /// redirect).
    Code {
        /// The client id.
        client_id: String,
    },
    /// Write snapshot ID to FILE as an archive (tar: the tables and the content).
    Export {
        /// The snapshot's id.
        id: String,
        /// Where to write it.
        file: std::path::PathBuf,
    },
    /// Load an archive made by `export` as a new snapshot; prints its id (restore it with
    /// `ocloud emu restore ID`).
    Import {
        /// The archive.
        file: std::path::PathBuf,
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

/// One journal entry on one line: id, method, path, status, operation, user.
fn entry_line(e: &Value) -> String {
    format!(
        "{} {} {} {} {} {}",
        e["id"],
        e["method"].as_str().unwrap_or_default(),
        e["path"].as_str().unwrap_or_default(),
        e["status"],
        e["operation"].as_str().unwrap_or("-"),
        e["user"].as_str().unwrap_or("-")
    )
}

/// The journal matcher as a query string.
fn matcher_query(op: &Option<String>, status: &Option<u16>, path: &Option<String>) -> String {
    let mut u = reqwest::Url::parse("http://x/").expect("a URL");
    {
        let mut q = u.query_pairs_mut();
        if let Some(o) = op {
            q.append_pair("op", o);
        }
        if let Some(s) = status {
            q.append_pair("status", &s.to_string());
        }
        if let Some(p) = path {
            q.append_pair("path", p);
        }
    }
    u.query().unwrap_or_default().to_owned()
}

/// Runs one command against the service at `--api-url` (`OCLOUD_API_URL`) with the admin
/// token of `OCLOUD_EMULATOR_TOKEN`.
pub async fn run(c: &Command, global: &GlobalArgs, out: &Printer) -> anyhow::Result<()> {
    let base = global.api_url.clone().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let base = base.trim_end_matches('/').to_owned();
    let token = std::env::var("OCLOUD_EMULATOR_TOKEN")
        .context("OCLOUD_EMULATOR_TOKEN is not set: export the admin token `ocloud serve --emulator` printed")?;
    let mut pems = Vec::new();
    if let Some(ca) = &global.ca_cert {
        pems.push(std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?);
    }
    let http = ocloud_client::http_client_builder(&pems, false)?.build()?;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rb = http.request(method, format!("{base}/_ocloud/v1{path}")).bearer_auth(&token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let base = base.clone();
        async move {
            let r = rb.send().await.with_context(|| format!("no answer from {base}"))?;
            let status = r.status();
            // The service's own words on what was wrong, when it gives them.
            let detail = r.headers().get("x-ocloud-detail").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let text = r.text().await.unwrap_or_default();
            if !status.is_success() {
                let why = detail.clone().unwrap_or_else(|| {
                    serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["description"].as_str().or(v["message"].as_str()).map(str::to_owned))
                        .unwrap_or(text)
                });
                if status == reqwest::StatusCode::UNAUTHORIZED {
                    anyhow::bail!("{status}: the emulator refused the admin token in OCLOUD_EMULATOR_TOKEN ({why})");
                }
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
                writeln!(std::io::stdout(), "{}", v["access_token"].as_str().unwrap_or_default())?;
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
        Command::Requests { unmatched: true, .. } => {
            let v = call(reqwest::Method::GET, "/requests/unmatched", None).await?;
            if !out.json {
                for e in v["requests"].as_array().into_iter().flatten() {
                    writeln!(
                        std::io::stdout(),
                        "{} -> nearest: {}",
                        entry_line(e),
                        e["nearest"].as_str().unwrap_or("-")
                    )?;
                }
                return Ok(());
            }
            v
        }
        Command::Requests { har: Some(file), op, status, path, .. } => {
            let v =
                call(reqwest::Method::GET, &format!("/requests/har?{}", matcher_query(op, status, path)), None).await?;
            std::fs::write(file, serde_json::to_vec_pretty(&v)?)
                .with_context(|| format!("writing {}", file.display()))?;
            out.note(format!(
                "{} requests written to {}",
                v["log"]["entries"].as_array().map_or(0, Vec::len),
                file.display()
            ));
            return Ok(());
        }
        Command::Tail { op } => {
            let mut rb = http.get(format!("{base}/_ocloud/v1/requests/tail")).bearer_auth(&token);
            if let Some(o) = op {
                rb = rb.query(&[("op", o)]);
            }
            let r = rb.send().await.with_context(|| format!("no answer from {base}"))?;
            if !r.status().is_success() {
                anyhow::bail!("{}: no live tail (is it `ocloud serve --emulator`?)", r.status());
            }
            let mut body = r.bytes_stream();
            let mut pending = String::new();
            while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
                pending.push_str(&String::from_utf8_lossy(&chunk.context("the tail was cut")?));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let Some(data) = line.trim_end().strip_prefix("data: ") else { continue };
                    let e: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                    if out.json {
                        writeln!(std::io::stdout(), "{data}")?;
                    } else {
                        writeln!(std::io::stdout(), "{}", entry_line(&e))?;
                    }
                }
            }
            return Ok(());
        }
        Command::Settings { set } => {
            if set.is_empty() {
                call(reqwest::Method::GET, "/settings", None).await?
            } else {
                let mut patch = serde_json::Map::new();
                for kv in set {
                    let (k, v) = kv.split_once('=').with_context(|| format!("{kv:?}: KEY=VALUE expected"))?;
                    // Numbers, booleans and null as JSON; anything else as a string.
                    let value = serde_json::from_str::<Value>(v).ok().filter(|x| !x.is_string()).unwrap_or(json!(v));
                    patch.insert(k.to_owned(), value);
                }
                call(reqwest::Method::PATCH, "/settings", Some(Value::Object(patch))).await?
            }
        }
        Command::Code { client_id } => {
            let v = call(reqwest::Method::GET, &format!("/oauth/codes?client_id={client_id}"), None).await?;
            if !out.json {
                writeln!(std::io::stdout(), "{}", v["code"].as_str().unwrap_or_default())?;
                return Ok(());
            }
            v
        }
        Command::Export { id, file } => {
            let r = http
                .get(format!("{base}/_ocloud/v1/snapshots/{id}/export"))
                .bearer_auth(&token)
                .send()
                .await
                .with_context(|| format!("no answer from {base}"))?;
            if !r.status().is_success() {
                anyhow::bail!("{}: snapshot {id} cannot be exported", r.status());
            }
            let mut f = tokio::fs::File::create(file).await.with_context(|| format!("creating {}", file.display()))?;
            let mut body = r.bytes_stream();
            let mut n = 0u64;
            while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
                let chunk = chunk.context("the archive was cut short")?;
                n += chunk.len() as u64;
                tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
                    .await
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            tokio::io::AsyncWriteExt::flush(&mut f).await?;
            out.note(format!("snapshot {id}: {n} bytes written to {}", file.display()));
            return Ok(());
        }
        Command::Import { file } => {
            let f = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
            let r = http
                .post(format!("{base}/_ocloud/v1/snapshots/import"))
                .bearer_auth(&token)
                .body(body)
                .send()
                .await
                .with_context(|| format!("no answer from {base}"))?;
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                anyhow::bail!("{status}: {}", v["description"].as_str().unwrap_or("the archive was refused"));
            }
            if !out.json {
                writeln!(std::io::stdout(), "{}", v["id"].as_str().unwrap_or_default())?;
                return Ok(());
            }
            v
        }
        Command::Requests { op, status, path, .. } => {
            let v = call(reqwest::Method::GET, &format!("/requests?{}", matcher_query(op, status, path)), None).await?;
            if !out.json {
                for e in v["requests"].as_array().into_iter().flatten() {
                    writeln!(std::io::stdout(), "{}", entry_line(e))?;
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
                writeln!(std::io::stdout(), "{}", v["id"].as_str().unwrap_or_default())?;
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
        writeln!(std::io::stdout(), "{now}{}", if v["frozen"] == true { " (frozen)" } else { "" })?;
    } else if !v.is_null() {
        writeln!(std::io::stdout(), "{v}")?;
    }
    Ok(())
}
