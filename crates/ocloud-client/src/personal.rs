//! The legacy Personal APIs (spec §5 Personal Content, §6 Personal Photos), with typed
//! results from ocloud-wire. Their base is the API base (`/personal/content/v1`,
//! `/personal/photos/v1`, as `ocloud serve` serves them); the token is the current access
//! token, sent as the `token` parameter.

use std::path::Path;
use std::sync::Arc;

use ocloud_wire::legacy::{
    Album, AlbumSummary, Content, MediaObject, Mum, PhotosAction, StorageXmlEngine, UploadUrlResponse,
};
use reqwest::multipart::{Form, Part};

use crate::error::{ApiError, Error, Result};
use crate::manager::ApiManager;
use crate::transfer::Progress;

/// `api.content()`: Personal Content.
#[derive(Debug, Clone, Copy)]
pub struct PersonalContent<'a> {
    m: &'a ApiManager,
}

/// `api.photos()`: Personal Photos.
#[derive(Debug, Clone, Copy)]
pub struct PersonalPhotos<'a> {
    m: &'a ApiManager,
}

/// A granted one-time upload URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadUrl {
    /// Where to POST.
    pub url: String,
    /// The `downloadUploadKey` cookie value.
    pub cookie: String,
}

fn legacy_error(status: u16, code: Option<u32>, legacy_code: Option<String>, message: String) -> Error {
    Error::Api(ApiError {
        status,
        code: code.and_then(|c| u16::try_from(c).ok()),
        legacy_code,
        description: message.clone(),
        message,
        detail: None,
        retry_after: None,
    })
}

fn parse<T: serde::de::DeserializeOwned>(status: u16, text: &str) -> Result<T> {
    quick_xml::de::from_str(text).map_err(|e| legacy_error(status, None, None, format!("unexpected XML answer: {e}")))
}

impl ApiManager {
    /// Personal Content operations.
    pub fn content(&self) -> PersonalContent<'_> {
        PersonalContent { m: self }
    }

    /// Personal Photos operations.
    pub fn photos(&self) -> PersonalPhotos<'_> {
        PersonalPhotos { m: self }
    }

    async fn legacy_token(&self) -> Result<String> {
        if self.tokens().is_some_and(|t| t.expires_within(30) && t.refresh_token.is_some()) {
            self.refresh_token().await?;
        }
        self.tokens().map(|t| t.access_token).ok_or(Error::NotAuthenticated)
    }

    fn personal_url(&self, api: &str) -> String {
        format!("{}/personal/{api}/v1", self.inner.endpoints.api.trim_end_matches('/'))
    }
}

impl PersonalContent<'_> {
    /// Step 1, `getContentUploadURL`: a one-time URL for `name` of `size` bytes.
    pub async fn upload_url(&self, name: &str, size: u64) -> Result<UploadUrl> {
        let token = self.m.legacy_token().await?;
        let resp = self
            .m
            .inner
            .http
            .get(self.m.personal_url("content"))
            .query(&[
                ("action", "getContentUploadURL"),
                ("token", &token),
                ("content_name", name),
                ("content_size", &size.to_string()),
            ])
            .send()
            .await?;
        let status = resp.status().as_u16();
        let r: UploadUrlResponse = parse(status, &resp.text().await?)?;
        if let Some(e) = r.error {
            return Err(legacy_error(status, None, Some(e.code.clone()), format!("{}: {}", e.code, e.detail)));
        }
        match (r.url, r.cookie) {
            (Some(url), Some(c)) => Ok(UploadUrl { url: url.trim().to_owned(), cookie: c.value }),
            _ => Err(legacy_error(status, None, None, "no URL in the answer".into())),
        }
    }

    /// Step 2: posts a file to a granted URL (part `file_content`, cookie `downloadUploadKey`).
    pub async fn upload_to(
        &self,
        grant: &UploadUrl,
        path: &Path,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Content> {
        let size = tokio::fs::metadata(path).await.map_err(|e| Error::io(path, e))?.len();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let file = tokio::fs::File::open(path).await.map_err(|e| Error::io(path, e))?;
        let body = crate::transfer::counted(file, progress);
        let part = Part::stream_with_length(body, size).file_name(name).mime_str("application/octet-stream")?;
        let resp = self
            .m
            .inner
            .http
            .post(&grant.url)
            .header(reqwest::header::COOKIE, format!("downloadUploadKey={}", grant.cookie))
            .multipart(Form::new().part("file_content", part))
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if status != 200 {
            let m: Mum = parse(status, &text)?;
            return Err(legacy_error(status, None, None, m.response.message));
        }
        Ok(parse::<StorageXmlEngine>(status, &text)?.uploadcontentdirectlyresponse.content)
    }

    /// Both steps for a local file.
    ///
    /// ```no_run
    /// # async fn f(api: ocloud_client::ApiManager) -> ocloud_client::Result<()> {
    /// let c = api.content().upload_path("HelloWorld.jpg".as_ref(), None).await?;
    /// println!("stored as content {} ({} bytes)", c.id, c.file_size);
    /// # Ok(()) }
    /// ```
    pub async fn upload_path(&self, path: &Path, progress: Option<Arc<dyn Progress>>) -> Result<Content> {
        let size = tokio::fs::metadata(path).await.map_err(|e| Error::io(path, e))?.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?;
        let grant = self.upload_url(&name, size).await?;
        self.upload_to(&grant, path, progress).await
    }
}

impl PersonalPhotos<'_> {
    async fn call(&self, params: &[(&str, &str)]) -> Result<PhotosAction> {
        let token = self.m.legacy_token().await?;
        let mut q: Vec<(&str, &str)> = params.to_vec();
        q.push(("token", &token));
        let resp = self.m.inner.http.get(self.m.personal_url("photos")).query(&q).send().await?;
        answer(resp).await
    }

    /// `GetAlbumsList`.
    pub async fn albums(&self) -> Result<Vec<AlbumSummary>> {
        Ok(self.call(&[("action", "GetAlbumsList")]).await?.albums.unwrap_or_default().album)
    }

    /// `CreateAlbum` (a taken title becomes `title-n`).
    pub async fn create_album(&self, title: &str) -> Result<Album> {
        self.call(&[("action", "CreateAlbum"), ("TIT", title)])
            .await?
            .album
            .ok_or_else(|| Error::Invalid("no album in the answer".into()))
    }

    /// `GetAlbum`.
    pub async fn album(&self, id: &str) -> Result<Album> {
        self.call(&[("action", "GetAlbum"), ("Album", id)])
            .await?
            .album
            .ok_or_else(|| Error::Invalid("no album in the answer".into()))
    }

    /// `GetMediaObjsList`.
    pub async fn list(&self, album: &str) -> Result<Vec<MediaObject>> {
        Ok(self
            .call(&[("action", "GetMediaObjsList"), ("Album", album)])
            .await?
            .media_objects
            .unwrap_or_default()
            .media_object)
    }

    /// `GetMediaObj`.
    pub async fn get(&self, media: &str) -> Result<MediaObject> {
        self.call(&[("action", "GetMediaObj"), ("MOB", media)])
            .await?
            .media_object
            .ok_or_else(|| Error::Invalid("no media object in the answer".into()))
    }

    /// `AddMediaObj`: a JPEG, GIF, BMP or PNG into `album` (`None`: the inbox), titled
    /// `title` (default: the file name without extension).
    pub async fn add(&self, path: &Path, album: Option<&str>, title: Option<&str>) -> Result<MediaObject> {
        let token = self.m.legacy_token().await?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let title = title
            .map(str::to_owned)
            .unwrap_or_else(|| name.rsplit_once('.').map(|(s, _)| s.to_owned()).unwrap_or(name.clone()));
        let size = tokio::fs::metadata(path).await.map_err(|e| Error::io(path, e))?.len();
        let file = tokio::fs::File::open(path).await.map_err(|e| Error::io(path, e))?;
        let part = Part::stream_with_length(crate::transfer::counted(file, None), size)
            .file_name(name)
            .mime_str("application/octet-stream")?;
        let mut form = Form::new().text("action", "AddMediaObj");
        if let Some(a) = album {
            form = form.text("Album", a.to_owned());
        }
        let form = form.text("F_title", title).text("token", token).part("F", part);
        let resp = self.m.inner.http.post(self.m.personal_url("photos")).multipart(form).send().await?;
        answer(resp).await?.media_object.ok_or_else(|| Error::Invalid("no media object in the answer".into()))
    }

    /// The photo at `base_url`, resized into `width`×`height` when given, to a local path.
    pub async fn download(
        &self,
        media: &MediaObject,
        width: Option<u32>,
        height: Option<u32>,
        dest: &Path,
    ) -> Result<u64> {
        let token = self.m.legacy_token().await?;
        let mut url = url::Url::parse(media.base_url.trim()).map_err(|e| Error::Invalid(format!("baseUrl: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("token", &token);
            if let Some(w) = width {
                q.append_pair("width", &w.to_string());
            }
            if let Some(h) = height {
                q.append_pair("height", &h.to_string());
            }
        }
        let resp = self.m.inner.http.get(url).send().await?;
        if resp.status().as_u16() != 200 {
            return answer(resp).await.and(Err(Error::Invalid("photo not served".into())));
        }
        let bytes = resp.bytes().await?;
        tokio::fs::write(dest, &bytes).await.map_err(|e| Error::io(dest, e))?;
        Ok(bytes.len() as u64)
    }
}

async fn answer(resp: reqwest::Response) -> Result<PhotosAction> {
    let status = resp.status().as_u16();
    let a: PhotosAction = parse(status, &resp.text().await?)?;
    if let Some(code) = a.error_code {
        return Err(legacy_error(status, Some(code), None, a.error_msg.unwrap_or_default().trim().to_owned()));
    }
    Ok(a)
}
