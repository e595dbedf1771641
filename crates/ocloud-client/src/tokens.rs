//! Where tokens live between runs: the [`TokenStore`] trait, an in-memory store and a file
//! store that stays correct when several processes share it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The tokens of a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Bearer token.
    pub access_token: String,
    /// Refresh token, if the service gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds after which the access token is expired (0: unknown).
    #[serde(default)]
    pub expires_at: u64,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Tokens {
    /// Tokens from a token answer received now.
    pub fn new(access_token: String, refresh_token: Option<String>, expires_in: Option<u64>) -> Tokens {
        Tokens { access_token, refresh_token, expires_at: expires_in.map(|s| now_secs() + s).unwrap_or(0) }
    }

    /// Whether the access token expires within `margin` seconds (unknown expiry: never).
    pub fn expires_within(&self, margin: u64) -> bool {
        self.expires_at != 0 && now_secs() + margin >= self.expires_at
    }
}

/// A place to keep tokens. `lock` guards a refresh across processes: the refresher takes it,
/// re-reads the store (another process may have refreshed already), and saves before
/// releasing it.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored tokens, if any.
    fn load(&self) -> Result<Option<Tokens>>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: &Tokens) -> Result<()>;
    /// Forgets the tokens (logout).
    fn clear(&self) -> Result<()>;
    /// Takes the store's exclusive lock until the guard is dropped (blocking).
    fn lock(&self) -> Result<Box<dyn Send>>;
}

/// Tokens in memory only.
#[derive(Debug, Default)]
pub struct MemoryTokenStore(std::sync::Mutex<Option<Tokens>>);

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<Tokens>> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    fn save(&self, tokens: &Tokens) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokens.clone());
        Ok(())
    }
    fn clear(&self) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
    fn lock(&self) -> Result<Box<dyn Send>> {
        Ok(Box::new(()))
    }
}

/// Tokens in a JSON file (mode 0600), written atomically (temp file + rename), with an OS
/// file lock on `<file>.lock` for refreshes shared between processes.
///
/// ```
/// use ocloud_client::{FileTokenStore, TokenStore, Tokens};
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileTokenStore::new(dir.path().join("tokens.json"));
/// store.save(&Tokens::new("OFR-a".into(), Some("OFR-r".into()), Some(3600))).unwrap();
/// assert_eq!(store.load().unwrap().unwrap().access_token, "OFR-a");
/// ```
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// A store at this path (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> FileTokenStore {
        FileTokenStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<Tokens>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("{}: not a token file ({e})", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    fn save(&self, tokens: &Tokens) -> Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = create_private(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&serde_json::to_vec_pretty(tokens).expect("tokens serialise")).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }

    fn clear(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.path, e)),
            _ => Ok(()),
        }
    }

    fn lock(&self) -> Result<Box<dyn Send>> {
        let lock_path = self.path.with_extension("lock");
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        f.lock().map_err(|e| Error::io(&lock_path, e))?;
        // The lock is released when the file is closed, i.e. when the guard is dropped.
        Ok(Box::new(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path().join("sub/tokens.json"));
        assert_eq!(store.load().unwrap(), None);
        let t = Tokens::new("a".into(), None, None);
        store.save(&t).unwrap();
        assert_eq!(store.load().unwrap(), Some(t));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let guard = store.lock().unwrap();
        drop(guard);
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }
}
