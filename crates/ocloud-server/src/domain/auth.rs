//! Access tokens: issuing them, and turning a bearer token into an [`Access`].

use sha2::{Digest, Sha256};

use super::{Error, Result, Service};
use crate::store::{App, NewToken, TokenRecord, User};

/// The folder that holds one sub-folder per sandboxed application (seed 000).
pub const PARTNERS_FOLDER: &str = "mes dossiers partenaires";

/// Who is calling, and what the token lets them do.
#[derive(Debug, Clone)]
pub struct Access {
    /// The user the token acts for.
    pub user: User,
    /// The application holding the token (shared: every request of a cached token clones
    /// its access).
    pub app: std::sync::Arc<App>,
    /// `cloudfullread` (or `cloudfullwrite`): read the whole cloud.
    pub full_read: bool,
    /// `cloudfullwrite`: write outside the app folder.
    pub full_write: bool,
    /// The database generation the token was checked at. The request's later cache lookups
    /// key on it, so a request reads the generation once.
    pub generation: Option<u64>,
}

impl Access {
    /// Path of the application's own folder: `mes dossiers partenaires/<app>/`.
    pub fn app_prefix(&self) -> String {
        format!("{PARTNERS_FOLDER}/{}/", self.app.name)
    }

    /// This access with the full scopes turned off (`restrictedmode`).
    pub fn restricted(&self) -> Access {
        Access { full_read: false, full_write: false, ..self.clone() }
    }
}

/// A fresh token: `OFR-` and 256 random bits in hex, the shape Orange used (spec §2.2).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes);
    format!("OFR-{}", hex(&bytes))
}

/// A new client secret: 24 characters of [A-Za-z0-9] (142 bits). Short on purpose: with a
/// 32-character client id, `id:secret` is 57 bytes, whose base64 (76 characters) fits on one
/// line of a line-wrapping encoder, so no client puts a newline into its Basic header.
pub fn new_client_secret() -> String {
    crate::random::alphanumeric(24)
}

/// A new client id: 32 lower-case hex characters (128 bits).
pub fn new_client_id() -> String {
    new_token()[4..36].to_owned()
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What the database keeps instead of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Refresh tokens live 180 days.
pub(crate) const REFRESH_TTL_SECS: i64 = 180 * 24 * 3600;

/// Scopes of a token the emulator mints or a fixture gives without saying.
pub(crate) const DEFAULT_TEST_SCOPES: &str = "openid cloud offline_access";

/// Tokens freshly issued.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Token for the refresh grant.
    pub refresh_token: String,
    /// Access-token lifetime, seconds.
    pub expires_in: u64,
}

impl Service {
    /// Issues an access and a refresh token for `user` through `app` (a grant of its own).
    pub async fn issue_tokens(
        &self,
        user: &User,
        app: &App,
        scope: &str,
        ttl: std::time::Duration,
    ) -> Result<IssuedTokens> {
        let grant = new_token()[4..].to_owned();
        let g = self.issue_with_ttl(user, app, scope, &grant, true, ttl).await?;
        Ok(IssuedTokens {
            access_token: g.access_token,
            refresh_token: g.refresh_token.unwrap_or_default(),
            expires_in: g.expires_in,
        })
    }

    /// Issues an access token (and a refresh token if asked) within a grant.
    pub async fn issue_tokens_for_grant(
        &self,
        user: &User,
        app: &App,
        scope: &str,
        grant: &str,
        with_refresh: bool,
    ) -> Result<super::oauth::Grant> {
        self.issue_with_ttl(user, app, scope, grant, with_refresh, self.settings.token_ttl()).await
    }

    async fn issue_with_ttl(
        &self,
        user: &User,
        app: &App,
        scope: &str,
        grant: &str,
        with_refresh: bool,
        ttl: std::time::Duration,
    ) -> Result<super::oauth::Grant> {
        let now = self.clock.now_s();
        let access_token = new_token();
        let refresh_token = with_refresh.then(new_token);
        let mut tokens = vec![(access_token.clone(), "access", now + ttl.as_secs() as i64)];
        if let Some(r) = &refresh_token {
            tokens.push((r.clone(), "refresh", now + REFRESH_TTL_SECS));
        }
        let mut rows = Vec::with_capacity(tokens.len());
        for (token, kind, expires_at) in tokens {
            let record = TokenRecord {
                kind: kind.to_owned(),
                user_id: user.id,
                app_id: app.id,
                scope: scope.to_owned(),
                expires_at,
                revoked: false,
                grant: grant.to_owned(),
            };
            rows.push(NewToken { hash: hash_token(&token), record });
        }
        // The pair in one transaction: never an access token whose refresh token is missing.
        self.meta.insert_tokens(rows).await?;
        Ok(super::oauth::Grant { access_token, refresh_token, expires_in: ttl.as_secs() })
    }

    /// Checks a bearer token (spec §2.3, seed 000): none 40, unknown or revoked 41, expired
    /// 42, blocked app 51, blocked user 52, no cloud scope 50.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Access> {
        let token = token.ok_or(Error::MissingCredentials)?;
        let hash = hash_token(token);
        let generation = self.meta.generation().await?;
        if let Some((access, expires_at)) = self.cfg.cache.then(|| self.caches.auth(generation, &hash)).flatten() {
            return if expires_at <= self.clock.now_s() {
                Err(Error::ExpiredCredentials)
            } else {
                Ok(Access { generation: Some(generation), ..access })
            };
        }
        let found = self.meta.token_access(&hash).await?.ok_or(Error::InvalidCredentials)?;
        let record = found.token;
        if record.kind != "access" || record.revoked {
            return Err(Error::InvalidCredentials);
        }
        if record.expires_at <= self.clock.now_s() {
            return Err(Error::ExpiredCredentials);
        }
        let (user, app) = (found.user.ok_or(Error::InvalidCredentials)?, found.app.ok_or(Error::InvalidCredentials)?);
        let access = Access { generation: Some(generation), ..access_of(user, app, &record.scope)? };
        self.caches.put_auth(generation, hash, access.clone(), record.expires_at);
        Ok(access)
    }

    /// The access a grant of `scope` gives `user_id` through `app_id`: blocked app 51,
    /// blocked user 52, no cloud scope 50.
    pub async fn access_for(&self, user_id: i64, app_id: i64, scope: &str) -> Result<Access> {
        let user = self.meta.user(user_id).await?.ok_or(Error::InvalidCredentials)?;
        let app = self.meta.app(app_id).await?.ok_or(Error::InvalidCredentials)?;
        access_of(user, app, scope)
    }

    /// Bytes the user can still store.
    pub fn freespace(&self, a: &Access) -> u64 {
        self.quota_of(&a.user).saturating_sub(a.user.used)
    }

    /// The user's quota.
    pub fn quota_of(&self, user: &User) -> u64 {
        user.quota.unwrap_or_else(|| self.settings.quota())
    }

    /// A legacy session id (spec §3.2), valid 15 minutes; the service never requires it.
    pub async fn create_session(&self, a: &Access) -> Result<String> {
        let esid = new_token()[4..].to_owned();
        self.meta.insert_session(&esid, a.user.id, self.clock.now_s() + 15 * 60).await?;
        Ok(esid)
    }
}

/// The access a grant of `scope` gives `user` through `app`: blocked app 51, blocked user 52,
/// no cloud scope 50.
fn access_of(user: User, app: App, scope: &str) -> Result<Access> {
    if app.disabled {
        return Err(Error::BlockedApp);
    }
    if user.disabled {
        return Err(Error::BlockedUser);
    }
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let full_write = scopes.contains(&"cloudfullwrite");
    let full_read = full_write || scopes.contains(&"cloudfullread");
    if !full_read && !scopes.contains(&"cloud") {
        return Err(Error::AccessDenied(format!("scope {scope:?} does not include cloud")));
    }
    Ok(Access { user, app: std::sync::Arc::new(app), full_read, full_write, generation: None })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_256_bit_hex() {
        let t = super::new_token();
        assert_eq!(t.len(), 68);
        assert!(t.starts_with("OFR-") && t[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t, super::new_token());
    }

    #[test]
    fn client_credentials_fit_one_base64_line() {
        use base64::Engine as _;
        let (id, secret) = (super::new_client_id(), super::new_client_secret());
        assert_eq!((id.len(), secret.len()), (32, 24));
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(secret, super::new_client_secret());
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        assert!(basic.len() <= 76, "{basic}");
    }
}
