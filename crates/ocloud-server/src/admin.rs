//! Administration on a data dir, directly (the service may be running: SQLite WAL lets both
//! work on the file).

use std::sync::Arc;

use anyhow::Context as _;
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
    let app = svc.meta.ensure_app(app, crate::domain::oauth::ADMIN_APP_SCOPES).await?;
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
    svc.meta.ensure_app(app, crate::domain::oauth::ADMIN_APP_SCOPES).await?;
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

/// What `admin fsck` found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Distinct file contents checked.
    pub contents: u64,
    /// Stored objects checked (blobs and renditions).
    pub objects: u64,
    /// Unreferenced keys waiting for the reaper (not a problem).
    pub pending: u64,
    /// One line per problem.
    pub problems: Vec<String>,
}

/// Objects and rows compared per page.
const PAGE: usize = 1000;

/// The file contents of the database in key order, a page at a time.
struct Contents<'a> {
    meta: &'a dyn crate::store::Metadata,
    page: std::collections::VecDeque<(String, u64)>,
    after: Option<String>,
    done: bool,
    /// Whether the object of the front entry was found.
    front_found: bool,
}

impl Contents<'_> {
    async fn front(&mut self) -> anyhow::Result<Option<(String, u64)>> {
        if self.page.is_empty() && !self.done {
            let page = self.meta.file_blobs(self.after.as_deref(), PAGE).await?;
            self.done = page.len() < PAGE;
            self.after = page.last().map(|(k, _)| k.clone());
            self.page.extend(page);
        }
        Ok(self.page.front().cloned())
    }

    /// Moves past the front entry; a problem if its object never showed up.
    fn pop(&mut self, report: &mut FsckReport) {
        if let Some((k, size)) = self.page.pop_front() {
            report.contents += 1;
            if !self.front_found {
                report.problems.push(format!("content missing: blob {k} ({size} bytes) of a file"));
            }
        }
        self.front_found = false;
    }
}

/// Checks an installation: every file's content exists with its size; every stored object is
/// referenced or pending cleanup; every user's usage equals the sum of their files. Walks the
/// file contents (from the database) and the stored objects (from the content store) side by
/// side in key order — a blob's renditions `<key>.<kind>` sort right after it — a page at a
/// time, so memory stays flat whatever the size.
pub async fn fsck(cfg: &Config, mut progress: impl FnMut(&FsckReport)) -> anyhow::Result<FsckReport> {
    let svc = open(cfg).await?;
    let mut report = FsckReport::default();
    let mut contents =
        Contents { meta: svc.meta.as_ref(), page: Default::default(), after: None, done: false, front_found: false };
    let mut after: Option<String> = None;
    loop {
        let objects = svc.blobs.list(after.as_deref(), PAGE).await?;
        let Some(last) = objects.last() else { break };
        after = Some(last.key.clone());
        let mut unreferenced = Vec::new();
        for obj in &objects {
            report.objects += 1;
            let owner = crate::blobs::owner_key(&obj.key);
            while let Some((k, _)) = contents.front().await?
                && k.as_str() < owner
            {
                contents.pop(&mut report);
            }
            match contents.front().await? {
                Some((k, size)) if k == owner => {
                    if obj.key == owner {
                        contents.front_found = true;
                        if obj.size != size {
                            report
                                .problems
                                .push(format!("size mismatch: blob {k} holds {} bytes, its file {size}", obj.size));
                        }
                    }
                }
                _ => unreferenced.push(owner.to_owned()),
            }
        }
        unreferenced.dedup();
        if !unreferenced.is_empty() {
            let known = svc.meta.pending_blobs(&unreferenced).await?;
            for key in unreferenced {
                if known.contains(&key) {
                    report.pending += 1;
                } else {
                    report.problems.push(format!("unreferenced object: {key} (no file, not pending cleanup)"));
                }
            }
        }
        progress(&report);
        if objects.len() < PAGE {
            break;
        }
    }
    while contents.front().await?.is_some() {
        contents.pop(&mut report);
    }
    for (name, used, sum) in svc.meta.usage_mismatches().await? {
        report.problems.push(format!("usage of user {name:?} is {used} bytes, its files hold {sum}"));
    }
    progress(&report);
    Ok(report)
}

/// What `admin migrate` copied.
#[derive(Debug, Default, Clone)]
pub struct MigrateReport {
    /// Objects copied (blobs and renditions).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Rows copied per table.
    pub rows: Vec<(&'static str, u64)>,
}

/// Copies a whole installation from `from`'s backends to `to`'s: content first (so no row ever
/// names missing content), then every table with its keys. The target must be empty. Reports
/// progress after each page.
pub async fn migrate(
    from: &Config,
    to: &Config,
    mut progress: impl FnMut(&MigrateReport),
) -> anyhow::Result<MigrateReport> {
    use futures_util::TryStreamExt as _;
    let src = open(from).await?;
    let dst = open(to).await.context("opening the target backends")?;
    for t in crate::store::TABLES {
        anyhow::ensure!(
            dst.meta.export_rows(t, 0, 1).await?.is_empty(),
            "the target database is not empty (table {} has rows): migrate into a fresh one",
            t.name
        );
    }
    let mut report = MigrateReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = src.blobs.list(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for obj in &page {
            let mut w = dst.blobs.create_with_key(&obj.key).await?;
            let mut stream = src.blobs.read(&obj.key, 0, None).await?;
            while let Some(chunk) = stream.try_next().await.with_context(|| format!("reading object {}", obj.key))? {
                w.write(&chunk).await?;
                report.bytes += chunk.len() as u64;
            }
            w.commit().await?;
            report.objects += 1;
        }
        progress(&report);
        if page.len() < PAGE {
            break;
        }
    }
    for t in crate::store::TABLES {
        let mut n = 0u64;
        loop {
            let rows = src.meta.export_rows(t, n, PAGE).await?;
            let got = rows.len();
            if got > 0 {
                dst.meta.import_rows(t, rows).await.with_context(|| format!("copying table {}", t.name))?;
            }
            n += got as u64;
            if got < PAGE {
                break;
            }
        }
        report.rows.push((t.name, n));
        progress(&report);
    }
    dst.meta.finish_import().await?;
    Ok(report)
}
