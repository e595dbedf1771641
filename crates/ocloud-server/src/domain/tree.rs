//! The folder tree as a client sees it: ids, visibility (the app sandbox), listings, create,
//! rename/move/copy, delete.

use ocloud_wire::id::{self, ROOT_PATH};
use ocloud_wire::model::{File, FileType, Folder, SubFolder, UpdateItem};
use unicode_normalization::UnicodeNormalization;

use super::auth::PARTNERS_FOLDER;
use super::{Access, Error, Result, Service, dates, names};
use crate::store::{ChildQuery, Node};

/// A node with its path relative to the user's cloud root (`/` for the root, `a/b/` for a
/// folder, `a/b.txt` for a file). The path is what the id encodes.
#[derive(Debug, Clone)]
pub struct Item {
    /// The node.
    pub node: Node,
    /// Its path.
    pub path: String,
}

impl Item {
    /// The wire id.
    pub fn id(&self) -> String {
        id::encode(&self.path)
    }

    fn child(&self, node: Node) -> Item {
        let path =
            if node.is_dir { id::folder_path(&self.path, &node.name) } else { id::file_path(&self.path, &node.name) };
        Item { node, path }
    }
}

/// The path of the folder containing `path`.
pub fn parent_path(path: &str) -> &str {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    match trimmed.rfind('/') {
        Some(i) => &path[..=i],
        None => ROOT_PATH,
    }
}

/// What a cached listing depends on besides the generation: who asks, with which rights, for
/// which folder and page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListingKey {
    user: i64,
    app: i64,
    full_read: bool,
    full_write: bool,
    folder: Option<String>,
    params: ListParams,
}

/// Query parameters of a folder listing (spec §3.4), already parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ListParams {
    /// App folder as root even with full scopes.
    pub restricted: bool,
    /// Add content URLs to files.
    pub thumbnails: bool,
    /// Keep only files of this kind.
    pub filter: Option<FileType>,
    /// Whole subtree.
    pub flat: bool,
    /// Folders only.
    pub tree: bool,
    /// Max entries (subfolders first, then files).
    pub limit: Option<u64>,
    /// Entries skipped.
    pub offset: u64,
}

impl Service {
    fn root_path_for(&self, a: &Access) -> String {
        if a.full_read { ROOT_PATH.to_owned() } else { a.app_prefix() }
    }

    /// The folder a listing without id shows: the whole cloud with `cloudfullread`, else the
    /// app folder, created on first use.
    pub async fn view_root(&self, a: &Access) -> Result<Item> {
        let root = self.meta.root(a.user.id).await?;
        if a.full_read {
            return Ok(Item { node: root, path: ROOT_PATH.to_owned() });
        }
        let node = self.meta.ensure_folders(root.id, &[PARTNERS_FOLDER.to_owned(), a.app.name.clone()]).await?;
        Ok(Item { node, path: a.app_prefix() })
    }

    /// Where uploads and new folders go when the client names no folder: the root with
    /// `cloudfullwrite`, else the app folder.
    pub async fn default_target(&self, a: &Access) -> Result<Item> {
        if a.full_write { self.view_root(a).await } else { self.view_root(&a.restricted()).await }
    }

    /// The item an id names, if this access may see it. Folder ids end with `/`, file ids
    /// do not: a file id on a folder route (or the reverse) is not found.
    pub async fn resolve(&self, a: &Access, item_id: &str, want_dir: bool) -> Result<Item> {
        let raw = id::decode(item_id).ok_or_else(|| Error::BadId(item_id.to_owned()))?;
        // Clients may send a decomposed (NFD) path; names are stored NFC.
        let path: String = raw.nfc().collect();
        let not_found = || Error::NotFound(format!("{} {item_id}", if want_dir { "folder" } else { "file" }));
        if path != ROOT_PATH && (path.starts_with('/') || path.ends_with('/') != want_dir) {
            return Err(not_found());
        }
        if path == ROOT_PATH && !want_dir {
            return Err(not_found());
        }
        if !a.full_read && !path.starts_with(&a.app_prefix()) {
            return Err(not_found());
        }
        let root = self.meta.root(a.user.id).await?;
        if path == ROOT_PATH {
            return Ok(Item { node: root, path });
        }
        let names: Vec<String> = path.trim_end_matches('/').split('/').map(str::to_owned).collect();
        if names.iter().any(String::is_empty) {
            return Err(not_found());
        }
        match self.meta.walk(root.id, &names).await? {
            Some(node) if node.is_dir == want_dir => Ok(Item { node, path }),
            _ => Err(not_found()),
        }
    }

    async fn resolve_folder_or_default(&self, a: &Access, folder_id: Option<&str>) -> Result<Item> {
        match folder_id {
            Some(fid) if !fid.is_empty() => self.resolve(a, fid, true).await,
            _ => self.default_target(a).await,
        }
    }

    pub(crate) fn check_write_into(&self, a: &Access, folder: &Item) -> Result<()> {
        if a.full_write || folder.path.starts_with(&a.app_prefix()) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("writing in folder {} needs the cloudfullwrite scope", folder.id())))
        }
    }

    fn check_modify(&self, a: &Access, item: &Item) -> Result<()> {
        let prefix = a.app_prefix();
        if item.path == ROOT_PATH || (!a.full_write && (item.path == prefix || !item.path.starts_with(&prefix))) {
            Err(Error::Forbidden(format!("item {} cannot be changed with this token", item.id())))
        } else {
            Ok(())
        }
    }

    fn parent_id_of(&self, a: &Access, item: &Item) -> String {
        if item.path == self.root_path_for(a) || item.path == ROOT_PATH {
            item.id()
        } else {
            id::encode(parent_path(&item.path))
        }
    }

    fn content_url(&self, item: &Item, kind: &str) -> String {
        let blob = item.node.blob.as_deref().unwrap_or_default();
        format!("{}/cloud/v1/files/{}/{kind}/{}", self.public_url, item.id(), &blob[..blob.len().min(16)])
    }

    /// Whether thumbnails and previews can be made: pictures whose header was read.
    pub fn has_renditions(node: &Node) -> bool {
        node.file_type == Some(FileType::Picture) && node.metadata.as_deref().is_some_and(|m| m.contains("\"width\""))
    }

    /// The wire form of a file. `urls`: add downloadUrl (and thumb/preview for pictures).
    pub fn file_json(&self, item: &Item, urls: bool, parent_id: Option<String>) -> File {
        let n = &item.node;
        let renditions = urls && Self::has_renditions(n);
        File {
            id: item.id(),
            name: n.name.clone(),
            file_type: n.file_type.unwrap_or(FileType::File),
            size: n.size,
            creation_date: dates::format_ms(n.created),
            last_update_date: dates::format_ms(n.updated),
            metadata: n
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_else(|| serde_json::json!({})),
            parent_id,
            thumb_url: renditions.then(|| self.content_url(item, "thumb")),
            preview_url: renditions.then(|| self.content_url(item, "preview")),
            download_url: urls.then(|| self.content_url(item, "content")),
        }
    }

    /// `GET /folders[/{id}]` (spec §3.4).
    pub async fn list(&self, a: &Access, folder_id: Option<&str>, p: &ListParams) -> Result<Folder> {
        let a = &if p.restricted { a.restricted() } else { a.clone() };
        let folder = match folder_id {
            Some(fid) if !fid.is_empty() => self.resolve(a, fid, true).await?,
            _ => self.view_root(a).await?,
        };
        let limit = p.limit.filter(|&l| l > 0);
        let folder_id = folder.id();
        let (mut subfolders, mut files) = (Vec::new(), Vec::new());
        if p.flat {
            let all = self.meta.descendants(folder.node.id, p.tree).await?;
            let mut dirs = Vec::new();
            let mut plain = Vec::new();
            for d in all {
                let parent = Item { node: folder.node.clone(), path: rel_join(&folder.path, &d.parent_rel) };
                let keep = d.node.is_dir || p.filter.is_none_or(|f| d.node.file_type == Some(f));
                if keep {
                    let item = parent.child(d.node);
                    if item.node.is_dir { dirs.push((item, parent.path)) } else { plain.push(item) }
                }
            }
            let take = limit.unwrap_or(u64::MAX) as usize;
            let skip = p.offset as usize;
            let entries = dirs.into_iter().map(Ok).chain(plain.into_iter().map(Err)).skip(skip).take(take);
            for (i, e) in entries.enumerate() {
                yield_every(i).await;
                match e {
                    Ok((item, parent_path)) => subfolders.push(SubFolder {
                        id: item.id(),
                        name: item.node.name,
                        parent_id: id::encode(&parent_path),
                    }),
                    Err(item) => files.push(self.file_json(&item, p.thumbnails, None)),
                }
            }
        } else {
            let q = ChildQuery { dirs: true, files: !p.tree, file_type: p.filter, offset: p.offset, limit };
            for (i, node) in self.meta.children(folder.node.id, q).await?.into_iter().enumerate() {
                yield_every(i).await;
                let item = folder.child(node);
                if item.node.is_dir {
                    subfolders.push(SubFolder { id: item.id(), name: item.node.name, parent_id: folder_id.clone() });
                } else {
                    files.push(self.file_json(&item, p.thumbnails, None));
                }
            }
        }
        Ok(Folder {
            parent_id: self.parent_id_of(a, &folder),
            id: folder_id,
            name: folder.node.name,
            files,
            subfolders,
        })
    }

    /// [`Self::list`] as JSON bytes, from the listing cache when nothing changed since.
    pub async fn list_json(&self, a: &Access, folder_id: Option<&str>, p: &ListParams) -> Result<bytes::Bytes> {
        // Read before the listing: an entry never holds data older than its key.
        let generation = match a.generation {
            Some(g) => g,
            None => self.meta.generation().await?,
        };
        let key = ListingKey {
            user: a.user.id,
            app: a.app.id,
            full_read: a.full_read,
            full_write: a.full_write,
            folder: folder_id.map(str::to_owned),
            params: p.clone(),
        };
        if let Some(body) = self.cfg.cache.then(|| self.caches.listing(generation, &key)).flatten() {
            return Ok(body);
        }
        let folder = self.list(a, folder_id, p).await?;
        let entries = folder.files.len() + folder.subfolders.len();
        let to_json = move || serde_json::to_vec(&folder).map_err(|e| Error::Internal(e.to_string()));
        let json = match entries {
            // A long one on the blocking pool: its connection's thread serves others too.
            n if n > YIELD_EVERY => {
                tokio::task::spawn_blocking(to_json).await.map_err(|e| Error::Internal(e.to_string()))?
            }
            _ => to_json(),
        }?;
        let body = bytes::Bytes::from(json);
        self.caches.put_listing(generation, key, body.clone());
        Ok(body)
    }

    /// `POST /folders` (spec §3.5).
    pub async fn create_folder(&self, a: &Access, name: &str, parent_id: Option<&str>) -> Result<Folder> {
        let name = names::validate(name)?;
        let parent = self.resolve_folder_or_default(a, parent_id).await?;
        self.check_write_into(a, &parent)?;
        let node = self.meta.create_folder(parent.node.id, &name).await?;
        let item = parent.child(node);
        Ok(Folder {
            parent_id: parent.id(),
            id: item.id(),
            name: item.node.name,
            files: Vec::new(),
            subfolders: Vec::new(),
        })
    }

    /// `POST /folders/{id}` and `POST /files/{id}` (spec §3.6): any combination of rename,
    /// move and copy. Returns the resulting item and its folder's id.
    pub async fn update(&self, a: &Access, item_id: &str, is_dir: bool, req: &UpdateItem) -> Result<(Item, String)> {
        let item = self.resolve(a, item_id, is_dir).await?;
        let copy = req.clone.unwrap_or(false);
        let new_name = match &req.name {
            Some(n) => names::validate(n)?,
            None => item.node.name.clone(),
        };
        if item.node.parent_id.is_none() {
            return Err(Error::Forbidden("the root folder cannot be renamed, moved or copied".into()));
        }
        if !copy {
            self.check_modify(a, &item)?;
        }
        let dest = match req.parent_folder_id.as_deref() {
            Some(fid) if !fid.is_empty() => self.resolve(a, fid, true).await?,
            _ => {
                let path = parent_path(&item.path).to_owned();
                let node = self
                    .meta
                    .node(item.node.parent_id.unwrap_or_default())
                    .await?
                    .ok_or_else(|| Error::NotFound(path.clone()))?;
                Item { node, path }
            }
        };
        self.check_write_into(a, &dest)?;
        let node = if copy {
            self.meta.copy(item.node.id, dest.node.id, &new_name, self.quota_of(&a.user)).await?
        } else {
            self.meta.relocate(item.node.id, dest.node.id, &new_name).await?
        };
        Ok((dest.child(node), dest.id()))
    }

    /// `DELETE /folders/{id}` (recursive) and `DELETE /files/{id}` (spec §3.7).
    pub async fn delete(&self, a: &Access, item_id: &str, is_dir: bool) -> Result<()> {
        let item = self.resolve(a, item_id, is_dir).await?;
        self.check_modify(a, &item)?;
        let freed = self.meta.delete(item.node.id).await?;
        // Metadata is committed first; a crash here leaves unreferenced keys that the reaper
        // finds in the database, never an item without content.
        self.drop_blobs(freed).await;
        Ok(())
    }

    /// The file an id and the opaque part of a content URL name.
    pub async fn content_item(&self, a: &Access, item_id: &str, opaque: &str) -> Result<Item> {
        let item = self.resolve(a, item_id, false).await?;
        let blob = item.node.blob.as_deref().unwrap_or_default();
        if opaque.is_empty() || !blob.starts_with(opaque) {
            return Err(Error::NotFound(format!("content of file {item_id}")));
        }
        Ok(item)
    }
}

/// Entries a listing builds before it lets the other connections of its thread run (see
/// `http::lanes`): a folder of 100,000 entries would otherwise hold them up for its whole
/// build. A listing of more entries than this is also serialised on the blocking pool.
const YIELD_EVERY: usize = 1024;

async fn yield_every(i: usize) {
    if i > 0 && i.is_multiple_of(YIELD_EVERY) {
        tokio::task::yield_now().await;
    }
}

fn rel_join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_owned()
    } else if base == ROOT_PATH {
        rel.to_owned()
    } else {
        format!("{base}{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent_path("a/b/"), "a/");
        assert_eq!(parent_path("a/"), "/");
        assert_eq!(parent_path("a/b.txt"), "a/");
        assert_eq!(parent_path("b.txt"), "/");
        assert_eq!(rel_join("/", "x/"), "x/");
        assert_eq!(rel_join("a/", "x/"), "a/x/");
        assert_eq!(rel_join("a/", ""), "a/");
    }
}
