//! The OAuth2 authorization server of spec §2: authorize-request checks, passwords, browser
//! sessions, consents, authorization codes (single use, short-lived, bound to client,
//! redirect URI and PKCE), the code and refresh grants, revocation.
//!
//! Secrets (passwords, client secrets) are stored as argon2 hashes; codes, tokens and session
//! ids are 256-bit random values stored as SHA-256 hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::{hash_token, hex, new_token};
use super::{Result, Service};
use crate::store::{App, CodeRecord, NewApp, User, WebSession};

/// Scopes the service knows (spec §2.1).
pub const KNOWN_SCOPES: [&str; 7] =
    ["openid", "cloud", "cloudfullread", "cloudfullwrite", "offline_access", "profile", "details"];

/// Scopes of an app that `ocloud admin token` creates on the fly: everything a token may ask.
pub const ADMIN_APP_SCOPES: &str = "openid cloud cloudfullread cloudfullwrite offline_access";

/// Lifetime of a login session of the web pages.
const WEB_SESSION_SECS: i64 = 7 * 24 * 3600;

/// Hashes a password or client secret with argon2id and a random salt.
pub fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default().hash_password(secret.as_bytes(), &salt).expect("argon2 with default params").to_string()
}

/// Checks a secret against an argon2 hash.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
}

/// Constant-time equality of two strings.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The parameters of `GET /oauth/v2/authorize`, also carried through the login and consent
/// forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// Must be `code`.
    pub response_type: String,
    /// The app.
    pub client_id: String,
    /// Must equal a registered URI.
    pub redirect_uri: String,
    /// Space-separated; must contain `openid`.
    pub scope: String,
    /// Echoed back, may be empty.
    pub state: String,
    /// `none`, `login`, `consent`, `login consent` or empty.
    pub prompt: String,
    /// PKCE challenge.
    pub code_challenge: String,
    /// `S256` (or empty without a challenge).
    pub code_challenge_method: String,
}

impl AuthorizeRequest {
    /// Whether `prompt` contains this value.
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt.split_whitespace().any(|p| p == value)
    }

    /// The scopes asked for, normalised (order kept, duplicates dropped).
    pub fn scopes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in self.scope.split([' ', '+']).filter(|s| !s.is_empty()) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Pairs for hidden form fields and redirects.
    pub fn pairs(&self) -> [(&'static str, &str); 8] {
        [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("prompt", &self.prompt),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ]
    }

    /// Reads the parameters from decoded pairs (query or form).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> AuthorizeRequest {
        let mut r = AuthorizeRequest::default();
        for (k, v) in pairs {
            let slot = match k {
                "response_type" => &mut r.response_type,
                "client_id" => &mut r.client_id,
                "redirect_uri" => &mut r.redirect_uri,
                "scope" => &mut r.scope,
                "state" => &mut r.state,
                "prompt" => &mut r.prompt,
                "code_challenge" => &mut r.code_challenge,
                "code_challenge_method" => &mut r.code_challenge_method,
                _ => continue,
            };
            *slot = v.to_owned();
        }
        r
    }
}

/// Why an authorize request cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Client or redirect URI unusable: shown on a page, never redirected (RFC 6749 §4.1.2.1).
    Page(String),
    /// Sent back to the client's redirect URI as `error` and `error_description`.
    Redirect(&'static str, String),
}

/// An OAuth error of the token and revocation endpoints (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthFailure {
    /// `invalid_client`, `invalid_grant`, …
    pub error: &'static str,
    /// Human-readable.
    pub description: String,
}

impl OAuthFailure {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthFailure {
        OAuthFailure { error, description: description.into() }
    }

    /// A failure of ours: logged with its cause, answered 500 `server_error` with a fixed text.
    pub fn internal(cause: impl std::fmt::Display) -> OAuthFailure {
        tracing::error!(error = %crate::logsafe::Esc(&cause), "OAuth endpoint failed");
        OAuthFailure::new("server_error", "internal error")
    }

    /// The HTTP status: 401 for `invalid_client`, 500 for `server_error`, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}

/// Tokens of a grant.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Access token.
    pub access_token: String,
    /// Refresh token, when one is issued.
    pub refresh_token: Option<String>,
    /// Seconds.
    pub expires_in: u64,
}

/// The client id of the web interface (`ui`), the service's own first-party client: made on
/// first use, its redirect URI is always `<public URL>/ui/callback` (so it follows the public
/// URL), and its consent is implied.
pub const WEB_CLIENT_ID: &str = "ocloud-web";
/// The web interface's scopes: the user's whole cloud.
pub const WEB_SCOPES: &str = "openid cloud cloudfullread cloudfullwrite offline_access";

impl Service {
    /// The web interface's OAuth client, made if missing (by whichever instance comes first).
    pub async fn web_app(&self) -> Result<App> {
        if let Some(app) = self.meta.app_by_client_id(WEB_CLIENT_ID).await? {
            return Ok(app);
        }
        // Its secret is never used (the service exchanges its codes itself) nor known.
        let secret = super::auth::new_token();
        let secret_hash = tokio::task::spawn_blocking(move || hash_secret(&secret))
            .await
            .map_err(|e| super::Error::Internal(e.to_string()))?;
        let new = crate::store::NewApp {
            name: "ocloud web".into(),
            client_id: WEB_CLIENT_ID.into(),
            secret_hash,
            redirect_uris: Vec::new(),
            scopes: WEB_SCOPES.into(),
            rate_limit: None,
        };
        match self.meta.create_app(new).await {
            Ok(app) => Ok(app),
            // Another instance made it first.
            Err(_) => {
                self.meta.app_by_client_id(WEB_CLIENT_ID).await?.ok_or_else(|| super::Error::Internal("web app".into()))
            }
        }
    }

    /// The applications a user has allowed, with the scopes allowed (the web interface's own
    /// client left out).
    pub async fn grants_of(&self, user_id: i64) -> Result<Vec<(App, String)>> {
        let mut out = Vec::new();
        for (app_id, scope) in self.meta.consents_of(user_id).await? {
            if let Some(app) = self.meta.app(app_id).await?.filter(|a| !Service::is_first_party(a)) {
                out.push((app, scope));
            }
        }
        Ok(out)
    }

    /// Ends an application's access to a user's account: its consent forgotten, its tokens
    /// revoked; `false` if it had none.
    pub async fn revoke_grants(&self, user_id: i64, client_id: &str) -> Result<bool> {
        let Some(app) = self.meta.app_by_client_id(client_id).await? else { return Ok(false) };
        Ok(self.meta.forget_access(user_id, app.id).await?)
    }

    /// Whether `app` is the web interface.
    pub fn is_first_party(app: &App) -> bool {
        app.client_id == WEB_CLIENT_ID
    }

    /// The web interface's redirect URI.
    pub fn web_redirect_uri(&self) -> String {
        format!("{}/ui/callback", self.public_url)
    }

    /// Validates an authorize request against the registered app.
    pub async fn check_authorize(&self, req: &AuthorizeRequest) -> Result<App, AuthorizeError> {
        let page = |m: String| AuthorizeError::Page(m);
        if req.client_id.is_empty() {
            return Err(page("The request has no client_id.".into()));
        }
        let app = self
            .meta
            .app_by_client_id(&req.client_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %crate::logsafe::Esc(&e), "looking up a client");
                page("Internal error.".into())
            })?
            .ok_or_else(|| page(format!("Unknown application {:?}.", req.client_id)))?;
        let first_party = Service::is_first_party(&app) && req.redirect_uri == self.web_redirect_uri();
        if !first_party && !app.redirect_uris.iter().any(|u| u == &req.redirect_uri) {
            return Err(page(format!("The redirect URI {:?} is not registered for {}.", req.redirect_uri, app.name)));
        }
        if app.disabled {
            return Err(AuthorizeError::Redirect("unauthorized_client", "application blocked".into()));
        }
        if req.response_type != "code" {
            return Err(AuthorizeError::Redirect(
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
        let scopes = req.scopes();
        if !scopes.contains(&"openid") {
            return Err(AuthorizeError::Redirect("invalid_scope", "scope must contain openid".into()));
        }
        let allowed: Vec<&str> = app.scopes.split_whitespace().collect();
        if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(s) || !allowed.contains(s)) {
            return Err(AuthorizeError::Redirect(
                "invalid_scope",
                format!("scope {bad} is not granted to this application"),
            ));
        }
        match (req.code_challenge.is_empty(), req.code_challenge_method.as_str()) {
            (true, "") => {}
            (false, "S256") if (43..=128).contains(&req.code_challenge.len()) => {}
            _ => {
                return Err(AuthorizeError::Redirect(
                    "invalid_request",
                    "PKCE needs code_challenge_method=S256 and a 43 to 128 character challenge".into(),
                ));
            }
        }
        for p in req.prompt.split_whitespace() {
            if !matches!(p, "none" | "login" | "consent") || (p == "none" && req.prompt.split_whitespace().count() > 1)
            {
                return Err(AuthorizeError::Redirect(
                    "invalid_request",
                    format!("unsupported prompt {:?}", req.prompt),
                ));
            }
        }
        Ok(app)
    }

    /// The user with this name and password, if they match and the user is not blocked.
    pub async fn login(&self, name: &str, password: &str) -> Result<Option<User>> {
        let found = self.meta.user_by_name(name).await?;
        // Verify against a fixed hash when the user is unknown, so timing does not tell.
        // (Made on the blocking pool too, the first time: argon2 is milliseconds of CPU.)
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (user, hash) = match found {
            Some((u, Some(h))) => (Some(u), Some(h)),
            _ => (None, None),
        };
        let ok = tokio::task::spawn_blocking({
            let password = password.to_owned();
            move || {
                let hash = hash.unwrap_or_else(|| DUMMY.get_or_init(|| hash_secret("not a password")).clone());
                verify_secret(&password, &hash)
            }
        })
        .await
        .unwrap_or(false);
        Ok(user.filter(|u| ok && !u.disabled))
    }

    /// Opens a browser session; returns the cookie value and the session's CSRF token.
    pub async fn open_web_session(&self, user: &User) -> Result<(String, String)> {
        let sid = new_token();
        let csrf = new_token();
        let session =
            WebSession { user_id: user.id, csrf: csrf.clone(), expires_at: self.clock.now_s() + WEB_SESSION_SECS };
        self.meta.insert_web_session(&hash_token(&sid), session).await?;
        Ok((sid, csrf))
    }

    /// The live session behind a cookie value, with its user.
    pub async fn web_session(&self, sid: &str) -> Result<Option<(User, WebSession)>> {
        let Some(s) = self.meta.web_session(&hash_token(sid)).await? else {
            return Ok(None);
        };
        if s.expires_at <= self.clock.now_s() {
            return Ok(None);
        }
        Ok(self.meta.user(s.user_id).await?.filter(|u| !u.disabled).map(|u| (u, s)))
    }

    /// Ends a browser session.
    pub async fn close_web_session(&self, sid: &str) -> Result<()> {
        Ok(self.meta.delete_web_session(&hash_token(sid)).await?)
    }

    /// Whether the user already consented to every scope of the request.
    pub async fn has_consent(&self, user: &User, app: &App, req: &AuthorizeRequest) -> Result<bool> {
        let Some(granted) = self.meta.consent(user.id, app.id).await? else {
            return Ok(false);
        };
        let granted: Vec<&str> = granted.split_whitespace().collect();
        Ok(req.scopes().iter().all(|s| granted.contains(s)))
    }

    /// Records the user's consent to the request's scopes.
    pub async fn grant_consent(&self, user: &User, app: &App, req: &AuthorizeRequest) -> Result<()> {
        let scopes: Vec<String> = req.scopes().into_iter().map(str::to_owned).collect();
        // Merged with what was granted before in the store, in one step: two consents given
        // at once on two instances both count.
        Ok(self.meta.merge_consent(user.id, app.id, &scopes).await?)
    }

    /// Issues an authorization code for a checked request.
    pub async fn issue_code(&self, user: &User, app: &App, req: &AuthorizeRequest) -> Result<String> {
        let code = new_token();
        let record = CodeRecord {
            app_id: app.id,
            user_id: user.id,
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scopes().join(" "),
            code_challenge: (!req.code_challenge.is_empty()).then(|| req.code_challenge.clone()),
            expires_at: self.clock.now_s() + self.cfg.code_ttl.as_secs() as i64,
        };
        self.meta.insert_code(&hash_token(&code), record).await?;
        if self.cfg.emulator.is_some() {
            // For `GET /_ocloud/v1/oauth/codes`: a headless test reads the code it got.
            self.settings.note_code(&app.client_id, &code, self.clock.now_ms());
        }
        Ok(code)
    }

    /// Authenticates a client of the token endpoint.
    pub async fn authenticate_client(&self, client_id: &str, secret: &str) -> Result<App, OAuthFailure> {
        let bad = || OAuthFailure::new("invalid_client", "client authentication failed");
        let app = self.meta.app_by_client_id(client_id).await.map_err(OAuthFailure::internal)?;
        let Some(app) = app else { return Err(bad()) };
        let Some(hash) = app.secret_hash.clone() else {
            return Err(bad());
        };
        let secret = secret.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_secret(&secret, &hash)).await.unwrap_or(false);
        if !ok || app.disabled {
            return Err(bad());
        }
        Ok(app)
    }

    /// The authorization-code grant. A replayed code revokes the tokens it gave.
    pub async fn exchange_code(
        &self,
        app: &App,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<Grant, OAuthFailure> {
        let invalid = |why: &str| OAuthFailure::new("invalid_grant", why);
        let hash = hash_token(code);
        let grant_id = hex(&hash);
        let (record, used) = self
            .meta
            .take_code(&hash)
            .await
            .map_err(OAuthFailure::internal)?
            .ok_or_else(|| invalid("unknown authorization code"))?;
        if used {
            // The replay defence: the tokens of the first exchange die. If that fails, the
            // client must not hear a plain invalid_grant as though it had worked.
            self.meta.revoke_grant(&grant_id).await.map_err(OAuthFailure::internal)?;
            return Err(invalid("authorization code already used"));
        }
        if record.app_id != app.id {
            return Err(invalid("authorization code issued to another client"));
        }
        if record.expires_at <= self.clock.now_s() {
            return Err(invalid("authorization code expired"));
        }
        if record.redirect_uri != redirect_uri {
            return Err(invalid("redirect_uri differs from the authorization request"));
        }
        if let Some(challenge) = &record.code_challenge {
            let verifier = verifier.ok_or_else(|| OAuthFailure::new("invalid_request", "code_verifier is required"))?;
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !same(&computed, challenge) {
                return Err(invalid("code_verifier does not match the code_challenge"));
            }
        }
        let user = self.grant_user(record.user_id).await?;
        let t = self
            .issue_tokens_for_grant(&user, app, &record.scope, &grant_id, true)
            .await
            .map_err(OAuthFailure::internal)?;
        Ok(t)
    }

    /// The user a code or refresh token was issued to; gone since: `invalid_grant`.
    async fn grant_user(&self, user_id: i64) -> Result<User, OAuthFailure> {
        self.meta
            .user(user_id)
            .await
            .map_err(OAuthFailure::internal)?
            .ok_or_else(|| OAuthFailure::new("invalid_grant", "user no longer exists"))
    }

    /// The refresh-token grant. The answer carries no refresh token (Orange's behaviour, spec
    /// §2.2) unless `rotate_refresh_tokens` is on, which revokes the old one.
    pub async fn refresh(&self, app: &App, refresh_token: &str) -> Result<Grant, OAuthFailure> {
        let invalid = |why: &str| OAuthFailure::new("invalid_grant", why);
        let hash = hash_token(refresh_token);
        let record = self
            .meta
            .token(&hash)
            .await
            .map_err(OAuthFailure::internal)?
            .filter(|r| r.kind == "refresh" && !r.revoked)
            .ok_or_else(|| invalid("unknown or revoked refresh token"))?;
        if record.app_id != app.id {
            return Err(invalid("refresh token issued to another client"));
        }
        if record.expires_at <= self.clock.now_s() {
            return Err(invalid("refresh token expired"));
        }
        let user = self.grant_user(record.user_id).await?;
        let rotate = self.cfg.rotate_refresh_tokens;
        if rotate {
            // The used refresh token only: access tokens already issued stay valid until they
            // expire (revoking the grant here cut off a request another process had just
            // sent with its fresh access token). A replayed code still revokes the grant.
            self.meta.revoke_token(&hash, app.id, false).await.map_err(OAuthFailure::internal)?;
        }
        self.issue_tokens_for_grant(&user, app, &record.scope, &record.grant, rotate)
            .await
            .map_err(OAuthFailure::internal)
    }

    /// RFC 7009: revokes a token of this client; unknown tokens are not an error.
    pub async fn revoke(&self, app: &App, token: &str) -> Result<()> {
        // The store revokes an access token alone, a refresh token with its whole grant.
        self.meta.revoke_token(&hash_token(token), app.id, true).await?;
        Ok(())
    }

    /// Registers an app; returns it with its client secret (shown once).
    pub async fn register_app(
        &self,
        name: &str,
        redirect_uris: Vec<String>,
        scopes: &str,
        rate_limit: Option<u32>,
    ) -> Result<(App, String)> {
        super::names::validate(name)?;
        let client_id = super::auth::new_client_id();
        let secret = super::auth::new_client_secret();
        let secret_hash = tokio::task::spawn_blocking({
            let s = secret.clone();
            move || hash_secret(&s)
        })
        .await
        .map_err(|e| super::Error::Internal(e.to_string()))?;
        let app = NewApp {
            name: name.to_owned(),
            client_id,
            secret_hash,
            redirect_uris,
            scopes: scopes.split_whitespace().collect::<Vec<_>>().join(" "),
            rate_limit,
        };
        Ok((self.meta.create_app(app).await?, secret))
    }

    /// Registers a user with a password.
    pub async fn register_user(&self, name: &str, password: &str, quota: Option<u64>) -> Result<User> {
        super::names::validate(name)?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_secret(&password))
            .await
            .map_err(|e| super::Error::Internal(e.to_string()))?;
        Ok(self.meta.create_user(name, &hash, quota).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_and_verify() {
        let h = hash_secret("hunter2");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_secret("hunter2", &h));
        assert!(!verify_secret("hunter3", &h));
        assert!(!verify_secret("hunter2", "garbage"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[tokio::test]
    async fn secrets_issued_before_keep_working() {
        // Before the short secrets, apps got 64 hex characters; their hashes stay valid.
        let dir = tempfile::tempdir().unwrap();
        let svc =
            crate::open_service(std::sync::Arc::new(crate::Config::new(dir.path())), "http://x".into()).await.unwrap();
        let old_secret = hex(&[0xab; 32]);
        let app = NewApp {
            name: "old".into(),
            client_id: "0123456789abcdef0123456789abcdef".into(),
            secret_hash: hash_secret(&old_secret),
            redirect_uris: vec!["http://x/cb".into()],
            scopes: "openid cloud".into(),
            rate_limit: None,
        };
        svc.meta.create_app(app).await.unwrap();
        assert!(svc.authenticate_client("0123456789abcdef0123456789abcdef", &old_secret).await.is_ok());
        assert!(svc.authenticate_client("0123456789abcdef0123456789abcdef", &old_secret[..24]).await.is_err());
    }

    #[test]
    fn scopes_accept_plus_and_space() {
        let r = AuthorizeRequest { scope: "openid+cloud cloud offline_access".into(), ..Default::default() };
        assert_eq!(r.scopes(), ["openid", "cloud", "offline_access"]);
    }
}
