//! What the emulator's control plane does to the service (`--emulator`, `http::control`):
//! mint, expire and revoke tokens, and reset the installation. The clock is moved through
//! [`crate::clock::Clock`] directly.

use super::auth::{IssuedTokens, hash_token};
use super::{Error, Result, Service};

impl Service {
    /// Tokens for `user` through `app` with `scope`, both created if missing (the app with
    /// every scope), valid for `ttl` on the service's clock.
    pub async fn mint_tokens(
        &self,
        user: &str,
        app: &str,
        scope: &str,
        ttl: std::time::Duration,
    ) -> Result<IssuedTokens> {
        for name in [user, app] {
            super::names::validate(name)?;
        }
        let user = self.meta.ensure_user(user).await?;
        let app = self.meta.ensure_app(app, super::oauth::ADMIN_APP_SCOPES).await?;
        self.issue_tokens(&user, &app, scope, ttl).await
    }

    /// Makes a token (access or refresh) expired as of now; `NotFound` if unknown.
    pub async fn expire_token(&self, token: &str) -> Result<()> {
        let at = self.clock.now_s() - 1;
        if !self.meta.set_token(&hash_token(token), Some(at), false).await? {
            return Err(Error::NotFound("token".into()));
        }
        Ok(())
    }

    /// Revokes a token (access or refresh); `NotFound` if unknown.
    pub async fn revoke_token_now(&self, token: &str) -> Result<()> {
        if !self.meta.set_token(&hash_token(token), None, true).await? {
            return Err(Error::NotFound("token".into()));
        }
        Ok(())
    }

    /// Empties the installation (see [`crate::store::Housekeeping::reset`]), content included,
    /// and what the service counts in memory.
    pub async fn reset(&self, keep_accounts: bool) -> Result<usize> {
        let keys = self.meta.reset(keep_accounts, self.clock.now_ms()).await?;
        let n = keys.len();
        self.drop_blobs(keys).await;
        self.forget_rate_limits();
        self.forget_login_failures();
        Ok(n)
    }
}
