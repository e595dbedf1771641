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
