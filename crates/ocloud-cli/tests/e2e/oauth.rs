//! The OAuth2 server of spec §2, driven over HTTP as a browser and a client would: the
//! authorize request, the login and consent forms, the token endpoint, refresh, revocation,
//! logout, prompt values, PKCE, and every refusal.

use std::process::Stdio;

use reqwest::redirect::Policy;
use serde_json::Value;

use crate::harness::*;

pub const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// A registered app and user on a fresh service.
pub struct Setup {
    pub server: Server,
    pub client_id: String,
    pub secret: String,
}

pub fn admin(s: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = admin_cmd(&s.data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

impl Setup {
    pub fn new(extra: &[&str], scopes: &str, rate_limit: Option<&str>) -> Setup {
        let server = Server::start(extra);
        admin(&server, &["user", "add", "alice", "--password-stdin"], Some("correct horse\n"));
        let mut args = vec![
            "app",
            "add",
            "tests",
            "--redirect-uri",
            REDIRECT,
            "--redirect-uri",
            "http://localhost:9/other",
            "--scopes",
            scopes,
            "--json",
        ];
        if let Some(r) = rate_limit {
            args.extend(["--rate-limit", r]);
        }
        let app: Value = serde_json::from_str(&admin(&server, &args, None)).unwrap();
        Setup {
            client_id: app["client_id"].as_str().unwrap().to_owned(),
            secret: app["client_secret"].as_str().unwrap().to_owned(),
            server,
        }
    }

    /// A browser: no redirects followed, cookies kept by hand.
    pub fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder().redirect(Policy::none()).timeout(TEST_TIMEOUT).build().unwrap(),
            base: self.server.url.clone(),
            cookies: Vec::new(),
        }
    }

    pub fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid cloud"),
            ("state", "s t&ate=1"),
        ];
        for (k, v) in extra {
            params.retain(|(pk, _)| pk != k);
            params.push((k, v));
        }
        let q = form_urlencoded_pairs(&params);
        format!("/oauth/v2/authorize?{q}")
    }

    /// The whole browser part: authorize, then sign in and allow as the pages ask. Returns
    /// the code.
    pub async fn code(&self, b: &mut Browser, extra: &[(&str, &str)]) -> String {
        let mut page = b.get(&self.authorize_url(extra)).await;
        for _ in 0..3 {
            if page.status != 200 {
                return redirect_param(&page, "code").expect("a code");
            }
            let html = String::from_utf8_lossy(&page.body).into_owned();
            page = if html.contains("action=\"/oauth/v2/login\"") {
                b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await
            } else {
                assert!(html.contains("Allow tests to access your cloud?"), "{html}");
                b.submit(&page, "/oauth/v2/consent", &[("decision", "allow")]).await
            };
        }
        redirect_param(&page, "code").expect("a code")
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> Resp {
        Api::send(
            http()
                .post(format!("{}/oauth/v2/token", self.server.url))
                .basic_auth(&self.client_id, Some(&self.secret))
                .form(form),
        )
        .await
    }

    pub async fn exchange(&self, code: &str) -> Resp {
        self.token(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)]).await
    }
}

pub fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    /// A browser for a service at `base`.
    pub fn new(base: &str) -> Browser {
        Browser::with(reqwest::Client::builder(), base)
    }

    /// A browser built on `http` (which must not follow redirects), e.g. one that trusts a CA.
    pub fn with(http: reqwest::ClientBuilder, base: &str) -> Browser {
        Browser {
            http: http.redirect(Policy::none()).timeout(TEST_TIMEOUT).build().unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, r: &Resp) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            self.cookies.retain(|(ck, _)| ck != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        let r = Api::send(self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header())).await;
        self.keep_cookies(&r);
        r
    }

    /// Posts a page's form: its hidden fields plus `fields`.
    pub async fn submit(&mut self, page: &Resp, action: &str, fields: &[(&str, &str)]) -> Resp {
        let html = String::from_utf8_lossy(&page.body).into_owned();
        let mut form: Vec<(String, String)> = hidden_fields(&html);
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let r = Api::send(
            self.http.post(format!("{}{action}", self.base)).header("cookie", self.cookie_header()).form(&form),
        )
        .await;
        self.keep_cookies(&r);
        r
    }

    /// Sets a cookie as an attacker who can plant one would.
    pub fn plant_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    /// Drops the open connections (the service was restarted), keeping the cookies.
    pub fn reconnect(&mut self) {
        self.http = reqwest::Client::builder().redirect(Policy::none()).timeout(TEST_TIMEOUT).build().unwrap();
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// A request carrying the cookies (sent with `Api::send`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).header("cookie", self.cookie_header())
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(k, _)| k == name)
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|chunk| {
            let name = chunk.split("name=\"").nth(1).unwrap().split('"').next().unwrap();
            let value = chunk.split("value=\"").nth(1).unwrap().split('"').next().unwrap();
            (name.to_owned(), unescape(value))
        })
        .collect()
}

/// A parameter of the redirect a response points to.
pub fn redirect_param(r: &Resp, name: &str) -> Option<String> {
    assert!(matches!(r.status, 302 | 303 | 307), "not a redirect: {} {}", r.status, String::from_utf8_lossy(&r.body));
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(REDIRECT) || loc.starts_with("http://localhost:9/other"), "{loc}");
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or_default();
    q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| {
        let v = v.replace('+', " ");
        let bytes = v.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    })
}

#[tokio::test]
async fn whole_flow_code_token_api_refresh() {
    let s = Setup::new(&[], "openid cloud offline_access", None);
    let mut b = s.browser();
    let page = b.get(&s.authorize_url(&[])).await;
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains("Sign in") && html.contains("<strong>tests</strong>"));
    let login_cookie = page.header("set-cookie").unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Lax"), "{login_cookie}");
    let consent = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert!(b.has_cookie("ocloud_session"));
    let consent_html = String::from_utf8_lossy(&consent.body).into_owned();
    assert!(consent_html.contains("Read and write files in its own folder of your cloud"), "scopes in plain words");
    let done = b.submit(&consent, "/oauth/v2/consent", &[("decision", "allow")]).await;
    assert_eq!(redirect_param(&done, "state").as_deref(), Some("s t&ate=1"), "state echoed");
    let code = redirect_param(&done, "code").unwrap();
    assert_eq!(code.len(), 68);

    let t = s.exchange(&code).await;
    assert_eq!(t.header("cache-control"), Some("no-store"));
    let t = t.ok();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    assert!(access.starts_with("OFR-"));
    let api = Api::new(&s.server.url, access);
    let root = api.root("").await;
    assert_eq!(root["name"], "tests", "a cloud-scoped token sees its app folder");

    // Refresh: a new access token, no new refresh token (spec §2.2); redirect_uri and scope
    // are accepted and ignored.
    let r = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("redirect_uri", REDIRECT),
            ("scope", "openid cloud"),
        ])
        .await
        .ok();
    assert!(r.get("refresh_token").is_none());
    let api2 = Api::new(&s.server.url, r["access_token"].as_str().unwrap());
    assert_eq!(api2.freespace().await, 5 << 30);

    // With session and consent, authorize answers a code at once, even with prompt=none.
    for extra in [vec![], vec![("prompt", "none")]] {
        let again = b.get(&s.authorize_url(&extra)).await;
        assert!(redirect_param(&again, "code").is_some());
    }
    // prompt=login shows the login page; prompt=consent the consent page.
    let login = b.get(&s.authorize_url(&[("prompt", "login consent")])).await;
    assert!(String::from_utf8_lossy(&login.body).contains("Sign in"));
    let consent = b.get(&s.authorize_url(&[("prompt", "consent")])).await;
    assert!(String::from_utf8_lossy(&consent.body).contains("Allow tests"));

    // Logout ends the session: prompt=none now needs a login.
    let out = b.get("/oauth/v2/logout").await;
    assert_eq!(out.status, 200);
    assert!(!b.has_cookie("ocloud_session"));
    let none = b.get(&s.authorize_url(&[("prompt", "none")])).await;
    assert_eq!(redirect_param(&none, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn prompt_none_deny_and_wrong_password() {
    let s = Setup::new(&[], "openid cloud", None);
    let mut b = s.browser();
    let none = b.get(&s.authorize_url(&[("prompt", "none")])).await;
    assert_eq!(redirect_param(&none, "error").as_deref(), Some("login_required"));
    assert_eq!(redirect_param(&none, "state").as_deref(), Some("s t&ate=1"));

    let page = b.get(&s.authorize_url(&[])).await;
    let bad = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "wrong")]).await;
    assert_eq!(bad.status, 401);
    assert!(String::from_utf8_lossy(&bad.body).contains("Wrong user name or password."));
    assert!(!b.has_cookie("ocloud_session"));
    let unknown = b.submit(&bad, "/oauth/v2/login", &[("username", "mallory"), ("password", "x")]).await;
    assert_eq!(unknown.status, 401);

    let consent = b.submit(&unknown, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert_eq!(consent.status, 200);
    // Signed in but no consent yet: prompt=none says so.
    let none = b.get(&s.authorize_url(&[("prompt", "none")])).await;
    assert_eq!(redirect_param(&none, "error").as_deref(), Some("consent_required"));
    let denied = b.submit(&consent, "/oauth/v2/consent", &[("decision", "deny")]).await;
    assert_eq!(redirect_param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(redirect_param(&denied, "error_description").as_deref(), Some("consent denied"));
    assert_eq!(redirect_param(&denied, "state").as_deref(), Some("s t&ate=1"));
    assert!(redirect_param(&denied, "code").is_none());
}

/// The login form's CSRF token must be one the service signed: a planted cookie with a
/// matching form field is refused. Failed sign-ins are throttled with growing waits, never
/// locked out.
#[tokio::test]
async fn login_csrf_is_signed_and_failures_are_throttled() {
    let s = Setup::new(&[], "openid cloud", None);
    let mut b = s.browser();
    let page = b.get(&s.authorize_url(&[])).await;
    b.plant_cookie("ocloud_login_csrf", "chosen-by-the-attacker");
    let html = String::from_utf8_lossy(&page.body).replace(&hidden_csrf(&page), "chosen-by-the-attacker");
    let forged = Resp { status: page.status, headers: page.headers.clone(), body: html.into_bytes().into() };
    let r = b.submit(&forged, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert!(String::from_utf8_lossy(&r.body).contains("This form has expired"), "a planted pair signs in");
    assert!(!b.has_cookie("ocloud_session"));

    // Two failures are free; then each attempt waits, even with the right password.
    let mut page = b.get(&s.authorize_url(&[])).await;
    for _ in 0..3 {
        page = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "wrong")]).await;
        assert_eq!(page.status, 401);
    }
    let held = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert_eq!(held.status, 429);
    assert!(String::from_utf8_lossy(&held.body).contains("Too many failed sign-ins. Please wait 1 s"));
    let wait: u64 = held.header("retry-after").unwrap().parse().unwrap();
    assert!(!b.has_cookie("ocloud_session"));
    // The wait ends: no lockout.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let ok = b.submit(&held, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert!(b.has_cookie("ocloud_session"));
}

fn hidden_csrf(page: &Resp) -> String {
    hidden_fields(&String::from_utf8_lossy(&page.body)).into_iter().find(|(k, _)| k == "csrf").unwrap().1
}

#[tokio::test]
async fn authorize_refusals() {
    let s = Setup::new(&[], "openid cloud", None);
    let mut b = s.browser();
    // Unknown client or unregistered redirect URI: an error page, never a redirect.
    for extra in [[("client_id", "nobody")], [("redirect_uri", "http://127.0.0.1:9/cb/evil")]] {
        let r = b.get(&s.authorize_url(&extra)).await;
        assert_eq!(r.status, 400);
        assert!(r.header("location").is_none());
        assert!(String::from_utf8_lossy(&r.body).contains("Cannot continue"));
    }
    // The second registered URI is fine.
    let other = b.get(&s.authorize_url(&[("redirect_uri", "http://localhost:9/other")])).await;
    assert_eq!(other.status, 200);
    // Errors the client may hear about are redirected to it.
    for (extra, error) in [
        (vec![("scope", "cloud")], "invalid_scope"),
        (vec![("scope", "openid cloudfullwrite")], "invalid_scope"),
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("code_challenge", "abc"), ("code_challenge_method", "plain")], "invalid_request"),
        (vec![("prompt", "none login")], "invalid_request"),
    ] {
        let r = b.get(&s.authorize_url(&extra)).await;
        assert_eq!(redirect_param(&r, "error").as_deref(), Some(error), "{extra:?}");
    }
    // A login form without its CSRF cookie is refused; a consent with a wrong CSRF token too.
    let page = b.get(&s.authorize_url(&[])).await;
    let mut fresh = s.browser();
    let r = fresh.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert!(String::from_utf8_lossy(&r.body).contains("This form has expired"));
    assert!(!fresh.has_cookie("ocloud_session"));
    let consent = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    let html = String::from_utf8_lossy(&consent.body).replace("name=\"csrf\" value=\"", "name=\"csrf\" value=\"x");
    let forged = Resp { status: 200, headers: consent.headers.clone(), body: html.into_bytes().into() };
    let r = b.submit(&forged, "/oauth/v2/consent", &[("decision", "allow")]).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn token_endpoint_refusals() {
    let s = Setup::new(&[], "openid cloud", None);
    let mut b = s.browser();
    let code = s.code(&mut b, &[]).await;
    // Wrong secret, no credentials.
    let r = Api::send(
        http().post(format!("{}/oauth/v2/token", s.server.url)).basic_auth(&s.client_id, Some("nope")).form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ]),
    )
    .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_client")));
    assert!(r.header("www-authenticate").is_some());
    let r = Api::send(
        http().post(format!("{}/oauth/v2/token", s.server.url)).form(&[("grant_type", "authorization_code")]),
    )
    .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_client")));
    // Wrong redirect_uri, missing fields, unknown grant type.
    let r = s
        .token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://localhost:9/other")])
        .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_grant")));
    let r = s.token(&[("grant_type", "authorization_code"), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_request")));
    let r = s.token(&[("grant_type", "password"), ("username", "alice")]).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("unsupported_grant_type")));
    // The code was spent by the wrong-redirect attempt (single use): a fresh one works once.
    let code = s.code(&mut b, &[]).await;
    let first = s.exchange(&code).await.ok();
    let reuse = s.exchange(&code).await;
    assert_eq!((reuse.status, reuse.json()["error"].as_str()), (400, Some("invalid_grant")));
    // A replayed code revokes what it gave.
    Api::new(&s.server.url, first["access_token"].as_str().unwrap())
        .get("/cloud/v1/freespace")
        .await
        .assert_error(401, 41);
    // Credentials shaped like Orange's: `id:secret` in one 76-column base64 line, so a client
    // whose encoder wraps lines (Python's base64.encodebytes, 76 columns and a final newline
    // it strips) sends a header the service reads.
    assert_eq!((s.client_id.len(), s.secret.len()), (32, 24));
    assert!(s.secret.bytes().all(|b| b.is_ascii_alphanumeric()));
    let line =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{}:{}", s.client_id, s.secret));
    assert!(line.len() <= 76, "{line}");
    let code = s.code(&mut b, &[]).await;
    let r = Api::send(
        http()
            .post(format!("{}/oauth/v2/token", s.server.url))
            .header("authorization", format!("Basic {line}"))
            .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)]),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // client_secret_post works too.
    let code = s.code(&mut b, &[]).await;
    let r = Api::send(http().post(format!("{}/oauth/v2/token", s.server.url)).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", s.client_id.as_str()),
        ("client_secret", s.secret.as_str()),
    ]))
    .await;
    assert_eq!(r.status, 200);
    // A refresh token of another client is refused.
    let other: Value =
        serde_json::from_str(&admin(&s.server, &["app", "add", "other", "--redirect-uri", REDIRECT, "--json"], None))
            .unwrap();
    let rt = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let r = Api::send(
        http()
            .post(format!("{}/oauth/v2/token", s.server.url))
            .basic_auth(other["client_id"].as_str().unwrap(), other["client_secret"].as_str())
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())]),
    )
    .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn pkce_s256() {
    let s = Setup::new(&[], "openid cloud", None);
    let mut b = s.browser();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"; // RFC 7636 appendix B
    let with = [("code_challenge", challenge), ("code_challenge_method", "S256")];
    let code = s.code(&mut b, &with).await;
    let r = s.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_request")), "verifier required");
    let code = s.code(&mut b, &with).await;
    let r = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier"),
        ])
        .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_grant")));
    let code = s.code(&mut b, &with).await;
    let r = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn expired_code_and_expired_access_token() {
    let s = Setup::new(&["--code-ttl", "0", "--token-ttl", "0"], "openid cloud", None);
    let mut b = s.browser();
    let code = s.code(&mut b, &[]).await;
    let r = s.exchange(&code).await;
    assert_eq!((r.status, r.json()["error_description"].as_str()), (400, Some("authorization code expired")));

    let s = Setup::new(&["--token-ttl", "0"], "openid cloud", None);
    let mut b = s.browser();
    let t = s.exchange(&s.code(&mut b, &[]).await).await.ok();
    assert_eq!(t["expires_in"], 0);
    Api::new(&s.server.url, t["access_token"].as_str().unwrap()).get("/cloud/v1/freespace").await.assert_error(401, 41);
    // The refresh token still works.
    let r = s.token(&[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn rotated_refresh_tokens_retire_only_the_used_one() {
    let s = Setup::new(&["--rotate-refresh-tokens"], "openid cloud", None);
    let mut b = s.browser();
    let t = s.exchange(&s.code(&mut b, &[]).await).await.ok();
    let old_rt = t["refresh_token"].as_str().unwrap();
    let r = s.token(&[("grant_type", "refresh_token"), ("refresh_token", old_rt)]).await.ok();
    let new_rt = r["refresh_token"].as_str().expect("a rotated refresh token");
    assert_ne!(new_rt, old_rt);
    // Access tokens already issued keep working until they expire (another process may have
    // just sent a request with one); the new one works too.
    for access in [&t["access_token"], &r["access_token"]] {
        assert_eq!(Api::new(&s.server.url, access.as_str().unwrap()).freespace().await, 5 << 30);
    }
    let again = s.token(&[("grant_type", "refresh_token"), ("refresh_token", old_rt)]).await;
    assert_eq!((again.status, again.json()["error"].as_str()), (400, Some("invalid_grant")), "the used one is retired");
    assert_eq!(s.token(&[("grant_type", "refresh_token"), ("refresh_token", new_rt)]).await.status, 200);
}

#[tokio::test]
async fn revocation() {
    let s = Setup::new(&[], "openid cloud", None);
    let mut b = s.browser();
    let t = s.exchange(&s.code(&mut b, &[]).await).await.ok();
    let revoke = |token: String| {
        let s = &s;
        async move {
            Api::send(
                http()
                    .post(format!("{}/oauth/v2/revoke", s.server.url))
                    .basic_auth(&s.client_id, Some(&s.secret))
                    .form(&[("token", token.as_str())]),
            )
            .await
        }
    };
    // Revoking the refresh token ends the whole grant.
    assert_eq!(revoke(t["refresh_token"].as_str().unwrap().to_owned()).await.status, 200);
    Api::new(&s.server.url, t["access_token"].as_str().unwrap()).get("/cloud/v1/freespace").await.assert_error(401, 41);
    let r = s.token(&[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(r.json()["error"], "invalid_grant");
    // Revoking an access token ends only it; unknown tokens are fine (RFC 7009).
    let t = s.exchange(&s.code(&mut b, &[]).await).await.ok();
    assert_eq!(revoke(t["access_token"].as_str().unwrap().to_owned()).await.status, 200);
    Api::new(&s.server.url, t["access_token"].as_str().unwrap()).get("/cloud/v1/freespace").await.assert_error(401, 41);
    assert_eq!(
        s.token(&[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())])
            .await
            .status,
        200
    );
    assert_eq!(revoke("OFR-unknown".into()).await.status, 200);
}

#[tokio::test]
async fn rate_limit_53_with_retry_after() {
    let s = Setup::new(&[], "openid cloud", Some("3"));
    let mut b = s.browser();
    let t = s.exchange(&s.code(&mut b, &[]).await).await.ok();
    let api = Api::new(&s.server.url, t["access_token"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(api.get("/cloud/v1/freespace").await.status, 200);
    }
    let r = api.get("/cloud/v1/freespace").await;
    r.assert_error(403, 53);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    // Another user of the same app has a bucket of their own.
    let bob = s.server.admin_token(&["--user", "bob", "--app", "tests"]);
    assert_eq!(Api::new(&s.server.url, &bob).get("/cloud/v1/freespace").await.status, 200);
}

#[tokio::test]
async fn full_read_scope_through_oauth() {
    let s = Setup::new(&[], "openid cloud cloudfullread", None);
    let mut b = s.browser();
    let t = s.exchange(&s.code(&mut b, &[("scope", "openid cloudfullread")]).await).await.ok();
    let api = Api::new(&s.server.url, t["access_token"].as_str().unwrap());
    assert_eq!(api.root("").await["id"], "Lw");
    api.post_json("/cloud/v1/folders", serde_json::json!({"name": "x", "parentFolderId": "Lw"}))
        .await
        .assert_error(403, 50);
}

#[tokio::test]
async fn admin_accounts() {
    let s = Server::start(&["--no-dev-account"]);
    let out = admin(&s, &["user", "add", "carol"], None);
    assert!(out.starts_with("user carol  password "), "{out}");
    let password = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(password.len(), 24);
    admin(&s, &["user", "add", "dave", "--password-stdin", "--quota", "1KiB"], Some("pw\n"));
    let users: Vec<Value> =
        admin(&s, &["user", "list", "--json"], None).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(users.iter().map(|u| u["name"].as_str().unwrap()).collect::<Vec<_>>(), ["carol", "dave"]);
    assert_eq!(users[1]["quota"], 1024);
    let out = admin_cmd(&s.data).args(["user", "add", "carol"]).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "ocloud: a user named \"carol\" already exists");
    // Secrets are stored hashed.
    let app: Value =
        serde_json::from_str(&admin(&s, &["app", "add", "a1", "--redirect-uri", REDIRECT, "--json"], None)).unwrap();
    let dump = database_dump(&s.data);
    assert!(dump.contains("a1"), "the dump holds the app");
    for secret in [app["client_secret"].as_str().unwrap(), password.as_str()] {
        assert!(!dump.contains(secret));
    }
    let apps = admin(&s, &["app", "list", "--json"], None);
    assert!(apps.contains("\"a1\"") && !apps.contains(app["client_secret"].as_str().unwrap()));
    admin(&s, &["app", "remove", "a1"], None);
    assert_eq!(admin(&s, &["app", "list"], None), "");
    // Removing a user removes their files.
    let token = s.admin_token(&["--user", "dave"]);
    Api::new(&s.url, &token).upload("f.txt", b"abc", None).await.ok();
    admin(&s, &["user", "remove", "dave"], None);
    Api::new(&s.url, &token).get("/cloud/v1/freespace").await.assert_error(401, 41);
    assert_eq!(stored_objects(&s.data), Vec::<String>::new());
}
