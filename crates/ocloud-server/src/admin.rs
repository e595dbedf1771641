//! Administration on a data dir, directly (the service may be running: SQLite WAL lets both
//! work on the file).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::domain::auth::IssuedTokens;

/// Creates the user and the app if needed and issues tokens for them.
pub async fn token(
    data_dir: &Path,
    user: &str,
    app: &str,
    scope: &str,
    ttl: Duration,
) -> anyhow::Result<IssuedTokens> {
    crate::domain::names::validate(user).map_err(|e| anyhow::anyhow!("user name: {e}"))?;
    crate::domain::names::validate(app).map_err(|e| anyhow::anyhow!("app name: {e}"))?;
    let svc = crate::open_service(Arc::new(Config::new(data_dir)), String::new())?;
    let user = svc.meta.ensure_user(user).await?;
    let app = svc.meta.ensure_app(app).await?;
    Ok(svc.issue_tokens(&user, &app, scope, ttl).await?)
}

/// Blocks (403/51 for an app, 403/52 for a user) or unblocks an account.
pub async fn set_disabled(
    data_dir: &Path,
    app: bool,
    name: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let svc = crate::open_service(Arc::new(Config::new(data_dir)), String::new())?;
    if !svc.meta.set_disabled(app, name, disabled).await? {
        anyhow::bail!(
            "no {} named {name:?} in {}",
            if app { "app" } else { "user" },
            data_dir.display()
        );
    }
    Ok(())
}
