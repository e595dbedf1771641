//! The rules of the legacy Personal APIs (spec §5, §6), on the same tree as the Cloud API.
//!
//! - Personal Content: a one-time upload URL (random key, bound to a `downloadUploadKey`
//!   cookie, the declared name and size, expiring after `upload_url_ttl`); the content lands
//!   where Cloud API uploads without a folder land (the app folder, or `/` with
//!   `cloudfullwrite`).
//! - Personal Photos: the "Photos" area is a folder `Photos` there; an album is a folder in
//!   it (the inbox album is `Inbox`), a photo a picture file in an album. Cyphered ids are the
//!   hexadecimal row ids, always checked against the caller's Photos area.

use bytes::Bytes;
use ocloud_wire::model::FileType;

use super::auth::{hash_token, new_token};
use super::{Access, Error, Item, Result, Service, names};
use crate::store::{ChildQuery, Node, UploadUrl};

/// Name of the Photos area folder.
pub const PHOTOS_FOLDER: &str = "Photos";
/// Name of the album used when AddMediaObj names none.
pub const INBOX_ALBUM: &str = "Inbox";

/// A granted upload URL.
#[derive(Debug, Clone)]
pub struct GrantedUpload {
    /// The URL's key (its last path segment).
    pub key: String,
    /// The `downloadUploadKey` cookie value.
    pub cookie: String,
}

/// Why a `getContentUploadURL` is refused (spec §5 codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRefusal {
    /// `PA003`, …
    pub code: &'static str,
    /// Message of the seed.
    pub detail: String,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> ContentRefusal {
    ContentRefusal { code, detail: detail.into() }
}

/// A photo with what the XML needs.
#[derive(Debug, Clone)]
pub struct Photo {
    /// The file.
    pub node: Node,
    /// Its title (the upload's `F_title`, else the file name without extension).
    pub title: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

impl Photo {
    fn from_node(node: Node) -> Photo {
        let meta: serde_json::Value =
            node.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
        let stem = node.name.rsplit_once('.').map(|(s, _)| s).unwrap_or(&node.name).to_owned();
        Photo {
            title: meta["title"].as_str().map(str::to_owned).unwrap_or(stem),
            width: meta["width"].as_u64().unwrap_or(0) as u32,
            height: meta["height"].as_u64().unwrap_or(0) as u32,
            node,
        }
    }
}

/// The cyphered id of a node.
pub fn cyphered(id: i64) -> String {
    format!("{id:x}")
}

fn uncypher(s: &str) -> Option<i64> {
    i64::from_str_radix(s.trim(), 16).ok().filter(|n| *n > 0)
}

/// The text of every PA900 answer: the cause goes to the log, never to the client.
pub const PA900_TEXT: &str = "Personal Content API internal error";

impl Service {
    /// `getContentUploadURL`: checks name, size and space, and grants a one-time URL.
    pub async fn grant_upload_url(
        &self,
        a: &Access,
        name: Option<&str>,
        size: Option<&str>,
    ) -> std::result::Result<GrantedUpload, ContentRefusal> {
        let name = names::validate(name.unwrap_or_default())
            .map_err(|_| refuse("PA003", "Invalid input parameter \"content_name\""))?;
        let size: u64 = size
            .and_then(|s| s.trim().parse().ok())
            .filter(|s| *s <= self.settings.max_upload_size())
            .ok_or_else(|| refuse("PA004", "Invalid input parameter \"content_size\""))?;
        if size > self.freespace(a) {
            return Err(refuse("MD327", "Insufficient available space"));
        }
        let (key, cookie) = (new_token()[4..].to_owned(), new_token()[4..].to_owned());
        let record = UploadUrl {
            cookie_hash: hash_token(&cookie),
            user_id: a.user.id,
            app_id: a.app.id,
            scope: if a.full_write { "openid cloudfullwrite".into() } else { "openid cloud".into() },
            name,
            size,
            expires_at: self.clock.now_s() + self.cfg.upload_url_ttl.as_secs() as i64,
        };
        self.meta.insert_upload_url(&hash_token(&key), record).await.map_err(|e| {
            tracing::error!(error = %crate::logsafe::Esc(&e), "recording an upload URL");
            refuse("PA900", PA900_TEXT.to_owned())
        })?;
        Ok(GrantedUpload { key, cookie })
    }

    /// Spends an upload URL: `None` when unknown, used, expired or the cookie differs.
    pub async fn take_upload_url(&self, key: &str, cookie: Option<&str>) -> Result<Option<(UploadUrl, Access)>> {
        // A wrong or missing cookie finds nothing and leaves the URL for its owner.
        let Some(cookie) = cookie else { return Ok(None) };
        let Some((u, used)) = self.meta.take_upload_url(&hash_token(key), &hash_token(cookie)).await? else {
            return Ok(None);
        };
        if used || u.expires_at <= self.clock.now_s() {
            return Ok(None);
        }
        let access = self.access_for(u.user_id, u.app_id, &u.scope).await?;
        Ok(Some((u, access)))
    }

    /// The caller's Photos area, created on first use.
    pub async fn photos_area(&self, a: &Access) -> Result<Item> {
        let base = self.default_target(a).await?;
        let node = self.meta.ensure_folders(base.node.id, &[PHOTOS_FOLDER.to_owned()]).await?;
        Ok(Item { path: ocloud_wire::id::folder_path(&base.path, PHOTOS_FOLDER), node })
    }

    /// Every album with its number of photos.
    pub async fn albums(&self, a: &Access) -> Result<Vec<(Node, u64)>> {
        let area = self.photos_area(a).await?;
        let mut out = Vec::new();
        for album in self.meta.children(area.node.id, ChildQuery { dirs: true, ..Default::default() }).await? {
            let photos = self.photos_of(&album).await?.len() as u64;
            out.push((album, photos));
        }
        Ok(out)
    }

    /// Creates an album; a taken title becomes `title-1`, `title-2`, …
    pub async fn create_album(&self, a: &Access, title: &str) -> Result<Node> {
        names::validate(title)?;
        let area = self.photos_area(a).await?;
        for n in 0..1000 {
            let name = if n == 0 { title.to_owned() } else { format!("{title}-{n}") };
            match self.meta.create_folder(area.node.id, &name).await {
                Err(crate::store::StoreError::AlreadyExists(_)) => continue,
                other => return Ok(other?),
            }
        }
        Err(Error::Exists(title.to_owned()))
    }

    /// An album by cyphered id (`None` for the inbox, created on demand).
    pub async fn album(&self, a: &Access, id: Option<&str>) -> Result<Node> {
        let area = self.photos_area(a).await?;
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            return Ok(self.meta.ensure_folders(area.node.id, &[INBOX_ALBUM.to_owned()]).await?);
        };
        let not_found = || Error::NotFound(format!("album {id}"));
        let node = self.meta.node(uncypher(id).ok_or_else(not_found)?).await?.ok_or_else(not_found)?;
        if node.is_dir && node.parent_id == Some(area.node.id) && node.user_id == a.user.id {
            Ok(node)
        } else {
            Err(not_found())
        }
    }

    /// The photos of an album.
    pub async fn photos_of(&self, album: &Node) -> Result<Vec<Photo>> {
        let q = ChildQuery { files: true, file_type: Some(FileType::Picture), ..Default::default() };
        Ok(self
            .meta
            .children(album.id, q)
            .await?
            .into_iter()
            .filter(Service::has_renditions)
            .map(Photo::from_node)
            .collect())
    }

    /// A photo by cyphered id, if it is in one of the caller's albums.
    pub async fn photo(&self, a: &Access, id: &str) -> Result<Photo> {
        let not_found = || Error::NotFound(format!("media object {id}"));
        let node = self.meta.node(uncypher(id).ok_or_else(not_found)?).await?.ok_or_else(not_found)?;
        let album = self.meta.node(node.parent_id.unwrap_or_default()).await?.ok_or_else(not_found)?;
        let area = self.photos_area(a).await?;
        if node.is_dir
            || node.user_id != a.user.id
            || album.parent_id != Some(area.node.id)
            || !Service::has_renditions(&node)
        {
            return Err(not_found());
        }
        Ok(Photo::from_node(node))
    }

    /// Records an uploaded blob as a photo of `album` with `title`; refuses (and deletes)
    /// anything but JPEG, GIF, BMP and PNG, recognised from the bytes.
    pub async fn add_photo(
        &self,
        a: &Access,
        album: &Node,
        file_name: &str,
        title: &str,
        blob: String,
        size: u64,
    ) -> Result<Option<Photo>> {
        let prefix = crate::blobs::read_all(self.blobs.as_ref(), &blob, 512 * 1024).await?;
        let Some((mime, width, height)) = super::kinds::sniff_picture(&prefix) else {
            self.drop_blobs(vec![blob]).await;
            return Ok(None);
        };
        let ext = mime.rsplit('/').next().unwrap_or("jpg").replace("jpeg", "jpg");
        let name = match names::validate(file_name) {
            Ok(n) => n,
            Err(_) => format!("{}.{ext}", names::validate(title).unwrap_or_else(|_| "photo".into())),
        };
        let metadata = serde_json::json!({"width": width, "height": height, "title": title}).to_string();
        let file = crate::store::NewFile {
            name,
            size,
            blob: blob.clone(),
            file_type: FileType::Picture,
            mime: mime.into(),
            metadata: Some(metadata),
        };
        let node = match self.meta.insert_file(album.id, file, self.quota_of(&a.user)).await {
            Ok(n) => n,
            Err(e) => {
                self.drop_blobs(vec![blob]).await;
                return Err(e.into());
            }
        };
        self.schedule_renditions(blob);
        Ok(Some(Photo::from_node(node)))
    }

    /// A photo's bytes: the original, or resized into `width`×`height` (100×100 and 500×500
    /// are precomputed, other sizes are made now).
    pub async fn photo_bytes(&self, photo: &Photo, width: Option<u32>, height: Option<u32>) -> Result<Option<Bytes>> {
        let blob = photo.node.blob.clone().unwrap_or_default();
        let (w, h) = match (width, height) {
            (None, None) => return Ok(None),
            (w, h) => (w.unwrap_or(u32::MAX).max(1), h.unwrap_or(u32::MAX).max(1)),
        };
        match (w, h) {
            (100, 100) => self.rendition(&blob, "p100").await.map(Some),
            (500, 500) => self.rendition(&blob, "p500").await.map(Some),
            _ => {
                let _permit = self.renders.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
                self.render_now(&blob, w, h).await.map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cyphered_ids() {
        assert_eq!(super::cyphered(255), "ff");
        assert_eq!(super::uncypher("ff"), Some(255));
        assert_eq!(super::uncypher("zz"), None);
        assert_eq!(super::uncypher("0"), None);
    }
}
