//! Beyond the reference client: paths instead of ids (`/Photos/2024/a.jpg`), a recursive walk
//! as a `Stream`, and create-with-parents. Ids change on rename and move (spec §3.1), so the
//! path cache is cleared on every change made through this client and on a 404.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use futures_util::Stream;
use ocloud_wire::model::{File, FileType};

use crate::cloud::ListParams;
use crate::error::{Error, Result};
use crate::manager::ApiManager;

/// A file or folder found by path.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// Its name (empty for the full root).
    pub name: String,
    /// Folder or file.
    pub is_dir: bool,
    /// Size (0 for folders).
    pub size: u64,
    /// The file's details (files only).
    pub file: Option<File>,
}

impl Entry {
    /// The entry of a file.
    pub fn from_file(f: File) -> Entry {
        Entry { id: f.id.clone(), name: f.name.clone(), is_dir: false, size: f.size, file: Some(f) }
    }

    /// The entry of a folder.
    pub fn folder(id: String, name: String) -> Entry {
        Entry { id, name, is_dir: true, size: 0, file: None }
    }

    /// Kind of a file.
    pub fn file_type(&self) -> Option<FileType> {
        self.file.as_ref().map(|f| f.file_type)
    }
}

/// Path → entry, for the paths this client resolved.
#[derive(Debug, Default)]
pub(crate) struct PathCache(Mutex<HashMap<String, Entry>>);

impl PathCache {
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    fn get(&self, k: &str) -> Option<Entry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(k).cloned()
    }
    fn put(&self, k: String, e: Entry) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(k, e);
    }
}

/// The segments of a remote path; `.`, empty segments ignored, `..` refused.
pub fn segments(path: &str) -> Result<Vec<&str>> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    if segs.contains(&"..") {
        return Err(Error::Invalid(format!("{path}: '..' is not allowed in remote paths")));
    }
    Ok(segs)
}

impl ApiManager {
    /// The entry at a path relative to the root the token sees (`/` is that root).
    ///
    /// ```no_run
    /// # async fn f(api: ocloud_client::ApiManager) -> ocloud_client::Result<()> {
    /// let e = api.resolve("/Photos/2024/beach.jpg").await?;
    /// println!("{} is {}", e.name, e.id);
    /// # Ok(()) }
    /// ```
    pub async fn resolve(&self, path: &str) -> Result<Entry> {
        match self.resolve_once(path).await {
            Err(Error::Api(a)) if a.is_not_found() => {
                // A cached id went stale (renamed or moved elsewhere): walk again.
                self.inner.paths.clear();
                self.resolve_once(path).await
            }
            other => other,
        }
    }

    async fn resolve_once(&self, path: &str) -> Result<Entry> {
        let segs = segments(path)?;
        let mut key = String::new();
        let mut cur = match self.inner.paths.get("") {
            Some(e) => e,
            None => {
                let root = self.folders().get(None, &ListParams::default()).await?;
                let e = Entry::folder(root.id, root.name);
                self.inner.paths.put(String::new(), e.clone());
                e
            }
        };
        for (i, seg) in segs.iter().enumerate() {
            key.push('/');
            key.push_str(seg);
            if let Some(e) = self.inner.paths.get(&key) {
                cur = e;
                continue;
            }
            if !cur.is_dir {
                return Err(Error::NotFound(format!("/{}", segs[..=i].join("/"))));
            }
            let found = self.entries(&cur.id).await?.into_iter().find(|e| e.name == *seg);
            cur = found.ok_or_else(|| Error::NotFound(format!("/{}", segs[..=i].join("/"))))?;
            self.inner.paths.put(key.clone(), cur.clone());
        }
        Ok(cur)
    }

    /// The direct content of a folder: its sub-folders, then its files, each by name.
    pub async fn entries(&self, folder_id: &str) -> Result<Vec<Entry>> {
        let listing = self.folders().get(Some(folder_id), &ListParams::default()).await?;
        let mut out: Vec<Entry> = listing.subfolders.into_iter().map(|f| Entry::folder(f.id, f.name)).collect();
        out.extend(listing.files.into_iter().map(Entry::from_file));
        Ok(out)
    }

    /// The folder at `path`, created with its parents as needed; returns its id.
    pub async fn create_folder_all(&self, path: &str) -> Result<String> {
        let segs = segments(path)?;
        let mut cur = self.resolve("/").await?;
        let mut done = String::new();
        for seg in segs {
            done.push('/');
            done.push_str(seg);
            cur = match self.resolve(&done).await {
                Ok(e) if e.is_dir => e,
                Ok(_) => return Err(Error::Invalid(format!("{done} is a file, not a folder"))),
                Err(Error::NotFound(_)) => {
                    let f = self.folders().create(seg, Some(&cur.id)).await?;
                    let e = Entry::folder(f.id, f.name);
                    self.inner.paths.put(done.clone(), e.clone());
                    e
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur.id)
    }

    /// Every file and folder below a folder, breadth first, as `(relative path, entry)`;
    /// folders come before their content. One listing call per folder.
    pub fn walk(&self, folder_id: &str) -> impl Stream<Item = Result<(String, Entry)>> + Send + '_ {
        let start = (VecDeque::from([(String::new(), folder_id.to_owned())]), VecDeque::<(String, Entry)>::new());
        futures_util::stream::unfold(Some(start), move |state| async move {
            let (mut folders, mut ready) = state?;
            loop {
                if let Some(item) = ready.pop_front() {
                    return Some((Ok(item), Some((folders, ready))));
                }
                let (rel, id) = folders.pop_front()?;
                match self.entries(&id).await {
                    Err(e) => return Some((Err(e), None)),
                    Ok(entries) => {
                        for e in entries {
                            let path = if e.is_dir { format!("{rel}{}/", e.name) } else { format!("{rel}{}", e.name) };
                            if e.is_dir {
                                folders.push_back((path.clone(), e.id.clone()));
                            }
                            ready.push_back((path, e));
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments() {
        assert_eq!(super::segments("/a//b/./c.txt").unwrap(), ["a", "b", "c.txt"]);
        assert!(super::segments("/").unwrap().is_empty());
        assert!(super::segments("/a/../b").is_err());
    }
}
