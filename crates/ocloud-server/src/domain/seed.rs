//! Declarative fixtures for the emulator (`POST /_ocloud/v1/seed`, `--emulator-file`): users,
//! apps with fixed credentials, tokens with given values, and a tree of folders and files.
//!
//! Loading is idempotent: what already exists (a user, an app with that client id, a token,
//! a file at that path with that size) is left as it is, so loading the same fixture twice
//! has the effect of loading it once.

use serde::Deserialize;

use super::auth::hash_token;
use super::oauth::hash_secret;
use super::{Error, Result, Service};
use crate::store::{NewApp, NewFile, NewToken, TokenRecord};

/// A fixture, as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Accounts.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// OAuth clients.
    #[serde(default)]
    pub apps: Vec<SeedApp>,
    /// Tokens with given values.
    #[serde(default)]
    pub tokens: Vec<SeedToken>,
    /// Folders (paths ending in `/`) and files, from each user's root.
    #[serde(default)]
    pub files: Vec<SeedFile>,
    /// Settings applied before anything else (as `PATCH /_ocloud/v1/settings`), by the HTTP
    /// layer with the faults.
    #[serde(default)]
    pub settings: Option<super::settings::Patch>,
    /// Fault rules that replace the current ones (as `PUT /_ocloud/v1/faults`), checked and
    /// installed by the HTTP layer.
    #[serde(default)]
    pub faults: Option<serde_json::Value>,
}

/// A user of a fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Login name.
    pub name: String,
    /// Password (stored hashed); none: the user cannot sign in through the pages.
    pub password: Option<String>,
    /// Quota in bytes; none: the service's.
    pub quota: Option<u64>,
}

/// An app of a fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedApp {
    /// Display and folder name.
    pub name: String,
    /// A fixed client id.
    pub client_id: String,
    /// A fixed secret (stored hashed).
    pub client_secret: String,
    /// Exact redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Allowed scopes; default: all.
    pub scopes: Option<String>,
    /// Requests per minute per user.
    pub rate_limit: Option<u32>,
}

/// A token of a fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedToken {
    /// Its user.
    pub user: String,
    /// Its app, by name.
    pub app: String,
    /// The access token's value.
    pub access_token: String,
    /// A refresh token's value, if any.
    pub refresh_token: Option<String>,
    /// Scopes; default `openid cloud offline_access`.
    pub scope: Option<String>,
    /// Access-token lifetime in seconds from the load; default the service's.
    pub ttl: Option<u64>,
}

/// A folder or file of a fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Its owner.
    pub user: String,
    /// Path from the user's root, `/`-separated; a trailing `/` makes a folder.
    pub path: String,
    /// Inline text content, or…
    pub content: Option<String>,
    /// …a size in bytes, filled with `pattern` repeated (default `ocloud`).
    pub size: Option<u64>,
    /// The byte pattern of `size`.
    pub pattern: Option<String>,
}

/// What a load did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Seeded {
    /// Users created.
    pub users: usize,
    /// Apps created.
    pub apps: usize,
    /// Tokens stored.
    pub tokens: usize,
    /// Folders and files created.
    pub files: usize,
}

/// Bytes written per chunk of a patterned file (memory stays flat whatever its size).
const CHUNK: usize = 1 << 20;

impl Service {
    /// Loads a fixture; see the module docs.
    pub async fn seed(&self, f: &Fixture) -> Result<Seeded> {
        let mut done = Seeded::default();
        for u in &f.users {
            if self.meta.user_by_name(&u.name).await?.is_some() {
                continue;
            }
            match &u.password {
                Some(p) => {
                    self.register_user(&u.name, p, u.quota).await?;
                }
                None => {
                    super::names::validate(&u.name)?;
                    self.meta.create_user(&u.name, "", u.quota).await?;
                }
            }
            done.users += 1;
        }
        for a in &f.apps {
            if self.meta.app_by_client_id(&a.client_id).await?.is_some() {
                continue;
            }
            super::names::validate(&a.name)?;
            let secret = a.client_secret.clone();
            let secret_hash = tokio::task::spawn_blocking(move || hash_secret(&secret))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            let scopes = a.scopes.clone().unwrap_or_else(|| super::oauth::ADMIN_APP_SCOPES.to_owned());
            let app = NewApp {
                name: a.name.clone(),
                client_id: a.client_id.clone(),
                secret_hash,
                redirect_uris: a.redirect_uris.clone(),
                scopes: scopes.split_whitespace().collect::<Vec<_>>().join(" "),
                rate_limit: a.rate_limit,
            };
            self.meta.create_app(app).await?;
            done.apps += 1;
        }
        for t in &f.tokens {
            if self.meta.token(&hash_token(&t.access_token)).await?.is_some() {
                continue;
            }
            let user = self.meta.ensure_user(&t.user).await?;
            let app = self.meta.ensure_app(&t.app, super::oauth::ADMIN_APP_SCOPES).await?;
            let now = self.clock.now_s();
            let ttl = t.ttl.unwrap_or(self.settings.token_ttl().as_secs()) as i64;
            let grant = super::auth::new_token()[4..].to_owned();
            let record = |kind: &str, expires_at: i64| TokenRecord {
                kind: kind.to_owned(),
                user_id: user.id,
                app_id: app.id,
                scope: t.scope.clone().unwrap_or_else(|| super::auth::DEFAULT_TEST_SCOPES.into()),
                expires_at,
                revoked: false,
                grant: grant.clone(),
            };
            let mut rows = vec![NewToken { hash: hash_token(&t.access_token), record: record("access", now + ttl) }];
            if let Some(r) = &t.refresh_token {
                rows.push(NewToken {
                    hash: hash_token(r),
                    record: record("refresh", now + super::auth::REFRESH_TTL_SECS),
                });
            }
            self.meta.insert_tokens(rows).await?;
            done.tokens += 1;
        }
        for file in &f.files {
            if self.seed_file(file).await? {
                done.files += 1;
            }
        }
        Ok(done)
    }

    /// One folder or file; `false` if it was there already.
    async fn seed_file(&self, f: &SeedFile) -> Result<bool> {
        let user = self.meta.ensure_user(&f.user).await?;
        let root = self.meta.root(user.id).await?;
        let mut names = Vec::new();
        for part in f.path.split('/').filter(|p| !p.is_empty()) {
            names.push(super::names::validate(part)?);
        }
        if f.path.ends_with('/') {
            if self.meta.walk(root.id, &names).await?.is_some() {
                return Ok(false);
            }
            self.meta.ensure_folders(root.id, &names).await?;
            return Ok(true);
        }
        let Some((name, dirs)) = names.split_last() else {
            return Err(Error::InvalidName(f.path.clone(), "a file needs a name"));
        };
        let content = f.content.as_deref().map(str::as_bytes);
        let size = content.map_or(f.size.unwrap_or(0), |c| c.len() as u64);
        if let Some(existing) = self.meta.walk(root.id, &names).await?
            && existing.size == size
        {
            return Ok(false);
        }
        let folder = self.meta.ensure_folders(root.id, dirs).await?;
        let mut w = self.new_blob().await?;
        match content {
            Some(c) => w.write(c).await?,
            None => {
                let pattern = f.pattern.as_deref().filter(|p| !p.is_empty()).unwrap_or("ocloud").as_bytes();
                let mut pos = 0u64;
                while pos < size {
                    let n = (size - pos).min(CHUNK as u64);
                    let chunk: Vec<u8> = (pos..pos + n).map(|i| pattern[(i % pattern.len() as u64) as usize]).collect();
                    w.write(&chunk).await?;
                    pos += n;
                }
            }
        }
        let blob = w.commit().await?;
        let (file_type, mime) = super::kinds::from_name(name);
        let file =
            NewFile { name: name.clone(), size, blob: blob.clone(), file_type, mime: mime.to_owned(), metadata: None };
        if let Err(e) = self.meta.insert_file(folder.id, file, self.quota_of(&user)).await {
            self.drop_blobs(vec![blob]).await;
            return Err(e.into());
        }
        Ok(true)
    }
}
