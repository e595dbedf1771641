//! The OAuth2 authorization-code flow (spec §2) with PKCE, a one-shot local listener for the
//! redirect, and refresh — safe across processes sharing a [`crate::FileTokenStore`].

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse, TokenUrl,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use crate::error::{Error, Result};
use crate::manager::ApiManager;
use crate::tokens::Tokens;

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// An authorization in progress.
pub(crate) struct Pending {
    listener: Option<TcpListener>,
    state: String,
    verifier: String,
    path: String,
}

/// Failure of the HTTP exchange under the oauth2 crate.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct OAuthHttpError(#[from] reqwest::Error);

impl ApiManager {
    fn oauth_client(&self) -> Result<OAuthClient> {
        let base = self.inner.endpoints.oauth.trim_end_matches('/');
        let bad = |e: oauth2::url::ParseError| Error::Invalid(format!("bad OAuth URL: {e}"));
        Ok(BasicClient::new(ClientId::new(self.inner.creds.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.inner.creds.client_secret.clone()))
            .set_auth_uri(AuthUrl::new(format!("{base}/oauth/v2/authorize")).map_err(bad)?)
            .set_token_uri(TokenUrl::new(format!("{base}/oauth/v2/token")).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::new(self.inner.creds.redirect_uri.clone()).map_err(bad)?))
    }

    /// The authorize URL for `state`, with a fresh PKCE challenge, without a listener (for a
    /// user who pastes the redirect URL back: see [`Self::code_from_redirect_url`]).
    pub async fn authorize_url(&self, state: &str) -> Result<Url> {
        let (url, pending) = self.prepare(state)?;
        *self.inner.pending.lock().await = Some(pending);
        Ok(url)
    }

    fn prepare(&self, state: &str) -> Result<(Url, Pending)> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state_owned = state.to_owned();
        let client = self.oauth_client()?;
        let mut req = client.authorize_url(move || CsrfToken::new(state_owned)).set_pkce_challenge(challenge);
        for s in &self.inner.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, _) = req.url();
        let redirect =
            Url::parse(&self.inner.creds.redirect_uri).map_err(|e| Error::Invalid(format!("redirect URI: {e}")))?;
        let pending = Pending {
            listener: None,
            state: state.to_owned(),
            verifier: verifier.secret().clone(),
            path: redirect.path().to_owned(),
        };
        Ok((url, pending))
    }

    /// Starts a login: returns the URL to open in a browser and starts a one-shot HTTP
    /// listener on the redirect URI's host and port (80 if none). The redirect URI must be
    /// `http` (a local listener cannot do TLS).
    pub async fn init_authorize_code_process(&self, state: &str) -> Result<Url> {
        let redirect =
            Url::parse(&self.inner.creds.redirect_uri).map_err(|e| Error::Invalid(format!("redirect URI: {e}")))?;
        if redirect.scheme() != "http" {
            return Err(Error::Invalid(format!("the redirect URI {redirect} must be http:// to be served locally")));
        }
        let host = match redirect.host_str() {
            Some("localhost") | None => "127.0.0.1".to_owned(),
            Some(h) => h.trim_matches(['[', ']']).to_owned(),
        };
        let port = redirect.port().unwrap_or(80);
        let listener = TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|e| Error::io(format!("listener on {host}:{port}"), e))?;
        let (url, mut pending) = self.prepare(state)?;
        pending.listener = Some(listener);
        *self.inner.pending.lock().await = Some(pending);
        Ok(url)
    }

    /// Waits for the browser to come back to the redirect URI; answers it with the received
    /// parameters as JSON and stops the listener. Fails if the redirect carried an `error`,
    /// another `state`, or no `code`.
    pub async fn wait_and_terminate_authorize_code_process(&self, timeout: Option<Duration>) -> Result<String> {
        let mut guard = self.inner.pending.lock().await;
        let pending = guard.as_mut().ok_or_else(|| Error::Invalid("no authorization in progress".into()))?;
        let listener = pending
            .listener
            .take()
            .ok_or_else(|| Error::Invalid("no listener: call init_authorize_code_process".into()))?;
        let path = pending.path.clone();
        let wait = async {
            loop {
                let (mut sock, _) = listener.accept().await.map_err(|e| Error::io("redirect listener", e))?;
                let mut buf = Vec::with_capacity(2048);
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/");
                let url = Url::parse(&format!("http://local{target}")).map_err(|e| Error::Invalid(e.to_string()))?;
                if url.path() != path {
                    let _ = sock
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    continue;
                }
                let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                let body = serde_json::to_string(&params.iter().cloned().collect::<std::collections::BTreeMap<_, _>>())
                    .unwrap_or_default();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                return Ok::<_, Error>(params);
            }
        };
        let params = match timeout {
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .map_err(|_| Error::Timeout("waiting for the authorization redirect".into()))??,
            None => wait.await?,
        };
        check_redirect(&params, &pending.state)
    }

    /// The code of a redirect URL pasted by the user (the `--no-browser` flow), checked
    /// against the state of [`Self::authorize_url`].
    pub async fn code_from_redirect_url(&self, redirect_url: &str) -> Result<String> {
        let url = Url::parse(redirect_url.trim()).map_err(|e| Error::Invalid(format!("not a URL: {e}")))?;
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let guard = self.inner.pending.lock().await;
        let pending = guard.as_ref().ok_or_else(|| Error::Invalid("no authorization in progress".into()))?;
        check_redirect(&params, &pending.state)
    }

    /// Exchanges a code for tokens (with the PKCE verifier of the pending authorization).
    pub async fn init_with_authorize_code(&self, code: &str) -> Result<()> {
        let verifier = self.inner.pending.lock().await.take().map(|p| p.verifier);
        let client = self.oauth_client()?;
        let mut req = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(v) = verifier {
            req = req.set_pkce_verifier(PkceCodeVerifier::new(v));
        }
        let http = self.http_fn();
        let t = req.request_async(&http).await.map_err(map_oauth_error)?;
        let tokens = Tokens::new(
            t.access_token().secret().clone(),
            t.refresh_token().map(|r| r.secret().clone()),
            t.expires_in().map(|d| d.as_secs()),
        );
        self.set_tokens(tokens)
    }

    /// Starts from a saved refresh token: gets an access token with it.
    pub async fn init_with_token(&self, refresh_token: &str) -> Result<()> {
        self.set_tokens(Tokens {
            access_token: String::new(),
            refresh_token: Some(refresh_token.to_owned()),
            expires_at: 1,
        })?;
        self.refresh_token().await
    }

    /// Gets a new access token with the refresh token. Under the token store's lock it first
    /// re-reads the store: if another process refreshed meanwhile, its tokens are adopted and
    /// no request is made (so a rotated refresh token never goes stale).
    pub async fn refresh_token(&self) -> Result<()> {
        let _in_process = self.inner.refreshing.lock().await;
        let store = self.inner.store.clone();
        let _lock = tokio::task::spawn_blocking(move || store.lock())
            .await
            .map_err(|e| Error::Invalid(format!("token store lock: {e}")))??;
        let stored = self.inner.store.load()?;
        let mine = self.tokens();
        if let (Some(st), Some(m)) = (&stored, &mine)
            && st.access_token != m.access_token
            && !st.access_token.is_empty()
            && !st.expires_within(30)
        {
            *self.inner.tokens.write().unwrap_or_else(|p| p.into_inner()) = stored.clone();
            return Ok(());
        }
        let refresh = stored
            .and_then(|t| t.refresh_token)
            .or_else(|| mine.and_then(|t| t.refresh_token))
            .ok_or(Error::NotAuthenticated)?;
        let http = self.http_fn();
        let t = self
            .oauth_client()?
            .exchange_refresh_token(&RefreshToken::new(refresh.clone()))
            .request_async(&http)
            .await
            .map_err(map_oauth_error)?;
        // Orange's refresh answers carry no refresh token: keep the old one (spec §2.2).
        let tokens = Tokens::new(
            t.access_token().secret().clone(),
            Some(t.refresh_token().map(|r| r.secret().clone()).unwrap_or(refresh)),
            t.expires_in().map(|d| d.as_secs()),
        );
        tracing::debug!("access token refreshed");
        self.set_tokens(tokens)
    }

    /// Refreshes after `rejected` was refused, unless another task already replaced it.
    pub(crate) async fn refresh_after_rejection(&self, rejected: &str) -> Result<()> {
        if self.tokens().is_some_and(|t| t.access_token != rejected) {
            return Ok(());
        }
        self.refresh_token().await
    }

    /// Forgets the tokens, here and in the store.
    pub fn logout(&self) -> Result<()> {
        *self.inner.tokens.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.inner.store.clear()
    }

    fn http_fn(
        &self,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, OAuthHttpError>> + Send>> {
        let http = self.inner.http.clone();
        move |req: oauth2::HttpRequest| {
            let http = http.clone();
            Box::pin(async move {
                let req = reqwest::Request::try_from(req)?;
                let resp = http.execute(req).await?;
                let mut out = http::Response::builder().status(resp.status());
                for (k, v) in resp.headers() {
                    out = out.header(k, v);
                }
                let body = resp.bytes().await?.to_vec();
                Ok(out.body(body).expect("status and headers come from a valid response"))
            })
        }
    }
}

fn check_redirect(params: &[(String, String)], state: &str) -> Result<String> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(e) = get("error") {
        return Err(Error::Authorization(format!("{e}: {}", get("error_description").unwrap_or(""))));
    }
    if get("state").unwrap_or("") != state {
        return Err(Error::Authorization("the state of the redirect differs from the one sent".into()));
    }
    get("code").map(str::to_owned).ok_or_else(|| Error::Authorization("the redirect carried no code".into()))
}

fn map_oauth_error<RE: std::error::Error + 'static>(
    e: oauth2::RequestTokenError<RE, oauth2::StandardErrorResponse<oauth2::basic::BasicErrorResponseType>>,
) -> Error {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => {
            let error = r.error().as_ref().to_owned();
            Error::OAuth {
                status: if error == "invalid_client" { 401 } else { 400 },
                description: r.error_description().cloned().unwrap_or_default(),
                error,
            }
        }
        oauth2::RequestTokenError::Request(re) => Error::Invalid(format!("token request failed: {re}")),
        oauth2::RequestTokenError::Parse(pe, body) => Error::Invalid(format!(
            "unexpected token answer ({pe}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
        oauth2::RequestTokenError::Other(s) => Error::Invalid(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_checks() {
        let p = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(check_redirect(&p(&[("code", "c"), ("state", "s")]), "s").unwrap(), "c");
        assert!(matches!(check_redirect(&p(&[("code", "c"), ("state", "x")]), "s"), Err(Error::Authorization(_))));
        let denied = check_redirect(
            &p(&[("error", "access_denied"), ("error_description", "consent denied"), ("state", "s")]),
            "s",
        );
        assert_eq!(denied.unwrap_err().to_string(), "authorization failed: access_denied: consent denied");
        assert!(check_redirect(&p(&[("state", "s")]), "s").is_err());
    }
}
