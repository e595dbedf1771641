//! Administration on a data dir, directly (the service may be running: SQLite WAL lets both
//! work on the file).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::domain::Service;
use crate::domain::auth::IssuedTokens;
use crate::store::{App, User};

async fn open(cfg: &Config) -> anyhow::Result<Service> {
    crate::open_service(Arc::new(cfg.clone()), String::new()).await
}

/// Creates the user and the app if needed and issues tokens for them.
pub async fn token(cfg: &Config, user: &str, app: &str, scope: &str, ttl: Duration) -> anyhow::Result<IssuedTokens> {
    crate::domain::names::validate(user).map_err(|e| anyhow::anyhow!("user name: {e}"))?;
    crate::domain::names::validate(app).map_err(|e| anyhow::anyhow!("app name: {e}"))?;
    let svc = open(cfg).await?;
    let user = svc.meta.ensure_user(user).await?;
    let app = svc.meta.ensure_app(app).await?;
    Ok(svc.issue_tokens(&user, &app, scope, ttl).await?)
}

/// Blocks (403/51 for an app, 403/52 for a user) or unblocks an account.
pub async fn set_disabled(cfg: &Config, app: bool, name: &str, disabled: bool) -> anyhow::Result<()> {
    let svc = open(cfg).await?;
    if !svc.meta.set_disabled(app, name, disabled).await? {
        anyhow::bail!("no {} named {name:?} in {}", if app { "app" } else { "user" }, cfg.location());
    }
    Ok(())
}

/// Registers a user.
pub async fn add_user(cfg: &Config, name: &str, password: &str, quota: Option<u64>) -> anyhow::Result<User> {
    if password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    open(cfg).await?.register_user(name, password, quota).await.map_err(|e| match e {
        crate::domain::Error::Exists(_) => {
            anyhow::anyhow!("a user named {name:?} already exists")
        }
        e => anyhow::anyhow!("user {name:?}: {e}"),
    })
}

/// Every user.
pub async fn users(cfg: &Config) -> anyhow::Result<Vec<User>> {
    Ok(open(cfg).await?.meta.users().await?)
}

/// Removes a user with their files and tokens.
pub async fn remove_user(cfg: &Config, name: &str) -> anyhow::Result<()> {
    let svc = open(cfg).await?;
    let freed = svc.meta.remove_user(name).await.map_err(|e| anyhow::anyhow!("user {name:?}: {e}"))?;
    svc.drop_blobs(freed).await;
    Ok(())
}

/// Registers an app; returns it and its client secret (shown once, stored hashed).
pub async fn add_app(
    cfg: &Config,
    name: &str,
    redirect_uris: Vec<String>,
    scopes: &str,
    rate_limit: Option<u32>,
) -> anyhow::Result<(App, String)> {
    if redirect_uris.is_empty() {
        anyhow::bail!("an app needs at least one --redirect-uri");
    }
    for u in &redirect_uris {
        if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains('#') {
            anyhow::bail!("redirect URI {u:?} must be an absolute http(s) URI without fragment");
        }
    }
    open(cfg).await?.register_app(name, redirect_uris, scopes, rate_limit).await.map_err(|e| match e {
        crate::domain::Error::Exists(_) => {
            anyhow::anyhow!("an app named {name:?} already exists")
        }
        e => anyhow::anyhow!("app {name:?}: {e}"),
    })
}

/// Every app.
pub async fn apps(cfg: &Config) -> anyhow::Result<Vec<App>> {
    Ok(open(cfg).await?.meta.apps().await?)
}

/// Removes an app with its tokens and consents (its folder stays in users' clouds).
pub async fn remove_app(cfg: &Config, name: &str) -> anyhow::Result<()> {
    if !open(cfg).await?.meta.remove_app(name).await? {
        anyhow::bail!("no app named {name:?} in {}", cfg.location());
    }
    Ok(())
}

/// The account made on the first start of an empty data dir.
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// User name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The dev app's client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Its registered redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// Redirect URIs of the dev app: the CLI's local listener.
pub const DEV_REDIRECT_URIS: [&str; 2] = ["http://127.0.0.1:8910/callback", "http://localhost:8910/callback"];

/// Creates the dev user and app when the data dir has no account at all.
pub async fn ensure_dev_account(svc: &Service) -> anyhow::Result<Option<DevAccount>> {
    if !svc.meta.users().await?.is_empty() || !svc.meta.apps().await?.is_empty() {
        return Ok(None);
    }
    let password = crate::domain::auth::new_token()[4..20].to_owned();
    svc.register_user("dev", &password, None).await?;
    let uris: Vec<String> = DEV_REDIRECT_URIS.iter().map(|s| s.to_string()).collect();
    let (app, secret) =
        svc.register_app("dev", uris.clone(), "openid cloud cloudfullread cloudfullwrite offline_access", None).await?;
    Ok(Some(DevAccount {
        user: "dev".into(),
        password,
        client_id: app.client_id,
        client_secret: secret,
        redirect_uris: uris,
    }))
}

/// Fills a folder with `count` files of `size` bytes sharing one blob (benchmarks, demos): one
/// transaction, one content file. Returns the folder's path.
pub async fn fill(
    cfg: &Config,
    user: &str,
    app: &str,
    folder: &str,
    count: usize,
    size: usize,
) -> anyhow::Result<String> {
    let svc = open(cfg).await?;
    let user = svc.meta.ensure_user(user).await?;
    // Created here so that `admin token --app` finds it with the folder in place.
    svc.meta.ensure_app(app).await?;
    let root = svc.meta.root(user.id).await?;
    let names: Vec<String> = folder.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let dir = svc.meta.ensure_folders(root.id, &names).await?;
    let mut w = svc.new_blob().await?;
    w.write(&vec![b'x'; size]).await?;
    let blob = w.commit().await?;
    let files = (0..count)
        .map(|i| crate::store::NewFile {
            name: format!("file-{i:07}.txt"),
            size: size as u64,
            blob: blob.clone(),
            file_type: ocloud_wire::model::FileType::File,
            mime: "text/plain".into(),
            metadata: None,
        })
        .collect();
    // Benchmark data: not charged against a quota (the files share one small blob).
    svc.meta.insert_files(dir.id, files, u64::MAX).await?;
    Ok(names.join("/"))
}
