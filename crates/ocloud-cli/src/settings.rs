//! Settings: the config file's profiles, overridden by environment variables, overridden by
//! flags. Commands see only the resolved [`Settings`] and the [`ApiManager`] built from them.
//!
//! Config file: `$OCLOUD_CONFIG`, else `<XDG config dir>/ocloud/config.toml`:
//! ```toml
//! [profiles.default]
//! api_url = "http://127.0.0.1:8080"   # base of /cloud/v1 and /oauth/v2
//! upload_url = "http://127.0.0.1:8080" # base of uploads and content (default: api_url)
//! client_id = "…"
//! client_secret = "…"
//! redirect_uri = "http://127.0.0.1:8910/callback"
//! ```
//! Tokens of profile P live in `tokens/P.json` beside the config file (mode 0600).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use ocloud_client::{ApiManager, Endpoints, FileTokenStore};
use serde::{Deserialize, Serialize};

/// Where a fresh install points: a local `ocloud serve`.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";
/// The dev app's redirect URI (`ocloud serve` registers it).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8910/callback";

/// One profile of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Base of `/cloud/v1` and `/oauth/v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Base of uploads and content URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// OAuth client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Registered redirect URI of the local listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The config file's path.
pub fn config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("OCLOUD_CONFIG") {
        return PathBuf::from(p);
    }
    directories::ProjectDirs::from("", "", "ocloud")
        .map(|d| d.config_dir().join("config.toml"))
        .unwrap_or_else(|| PathBuf::from(".ocloud.toml"))
}

impl ConfigFile {
    /// Reads the file (missing: empty).
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        match std::fs::read_to_string(path) {
            Ok(s) => toml::from_str(&s).with_context(|| format!("{}: invalid config file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file (0600: it holds a client secret).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(toml::to_string_pretty(self)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }
}

/// The global options every command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Profile of the config file.
    #[arg(long, global = true, env = "OCLOUD_PROFILE", default_value = "default")]
    pub profile: String,
    /// API base URL (default: the profile's, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "OCLOUD_API_URL")]
    pub api_url: Option<String>,
    /// Upload and content base URL (default: the API URL).
    #[arg(long, global = true, env = "OCLOUD_UPLOAD_URL")]
    pub upload_url: Option<String>,
    /// An access token to use as is (no login, no refresh).
    #[arg(long, global = true, env = "OCLOUD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Trust the CA certificates of this PEM file too, e.g. the local CA of
    /// `ocloud serve --tls auto`.
    #[arg(long, global = true, env = "OCLOUD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Profile name.
    pub profile: String,
    /// The profile as stored (for `config show`, `login`).
    pub stored: Profile,
    /// Base URLs.
    pub endpoints: Endpoints,
    /// OAuth client.
    pub client_id: String,
    /// OAuth secret.
    pub client_secret: String,
    /// Redirect URI.
    pub redirect_uri: String,
    /// Bare access token, if given.
    pub token: Option<String>,
    /// Config file.
    pub config_path: PathBuf,
    /// `--api-url` / `OCLOUD_API_URL` as given (for `config set`).
    pub api_url_given: Option<String>,
    /// `--upload-url` / `OCLOUD_UPLOAD_URL` as given.
    pub upload_url_given: Option<String>,
    /// `--ca-cert` / `OCLOUD_CA_CERT`.
    pub ca_cert: Option<PathBuf>,
}

impl Settings {
    /// Flags and environment over the profile over the defaults.
    pub fn resolve(g: &GlobalArgs) -> anyhow::Result<Settings> {
        let config_path = config_path();
        let file = ConfigFile::load(&config_path)?;
        let stored = file.profiles.get(&g.profile).cloned().unwrap_or_default();
        let api = g.api_url.clone().or(stored.api_url.clone()).unwrap_or_else(|| DEFAULT_API_URL.into());
        let upload = g.upload_url.clone().or(stored.upload_url.clone()).unwrap_or_else(|| api.clone());
        let trim = |s: &str| s.trim_end_matches('/').to_owned();
        Ok(Settings {
            profile: g.profile.clone(),
            endpoints: Endpoints { api: trim(&api), upload: trim(&upload), oauth: trim(&api) },
            client_id: stored.client_id.clone().unwrap_or_default(),
            client_secret: stored.client_secret.clone().unwrap_or_default(),
            redirect_uri: stored.redirect_uri.clone().unwrap_or_else(|| DEFAULT_REDIRECT_URI.into()),
            token: g.token.clone().filter(|t| !t.is_empty()),
            stored,
            config_path,
            api_url_given: g.api_url.clone(),
            upload_url_given: g.upload_url.clone(),
            ca_cert: g.ca_cert.clone(),
        })
    }

    /// Where this profile's tokens are kept.
    pub fn token_path(&self) -> PathBuf {
        let dir = self.config_path.parent().map(Path::to_path_buf).unwrap_or_default();
        dir.join("tokens").join(format!("{}.json", self.profile))
    }

    /// A client for these settings, logged in from `--token` or the token store.
    pub fn manager(&self) -> anyhow::Result<ApiManager> {
        let mut builder = ApiManager::builder(&self.client_id, &self.client_secret, &self.redirect_uri)
            .endpoints(self.endpoints.clone())
            .token_store(Arc::new(FileTokenStore::new(self.token_path())));
        if let Some(ca) = &self.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading the CA file {}", ca.display()))?;
            builder = builder.ca_cert_pem(pem);
        }
        let api = builder.build().with_context(|| match &self.ca_cert {
            Some(ca) => format!("setting up the HTTP client with the CA file {}", ca.display()),
            None => "setting up the HTTP client".to_owned(),
        })?;
        if let Some(t) = &self.token {
            api.init_with_access_token(t);
        }
        Ok(api)
    }
}
