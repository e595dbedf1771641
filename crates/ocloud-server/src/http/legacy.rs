//! The legacy Personal APIs (spec §5, §6) as XML over HTTP:
//! `/personal/content/v1` (+ `/personal/content/v1/upload/{key}`) and `/personal/photos/v1`
//! (+ `/personal/photos/v1/photo`, the photos' `baseUrl`). Authentication is the `token`
//! parameter: an access token of our OAuth2 server.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use ocloud_wire::legacy::{
    Album, AlbumSummary, Albums, Content, ContentError, Cookie, Count, MediaObject, MediaObjects, Mum, PhotosAction,
    StorageXmlEngine, ToXml, UploadContentDirectlyResponse, UploadUrlResponse,
};

use super::AppState;
use super::extract::{RawQuery, bearer, cookie, next_chunk};
use super::upload::{Multipart, Sink, param};
use crate::domain::legacy::{Photo, cyphered};
use crate::domain::{Access, Error};
use crate::store::Node;

fn xml(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=UTF-8"));
    res.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static("en-US"));
    res
}

/// Largest form body of a legacy call; the calls carry a few short parameters.
const MAX_FORM: usize = 64 * 1024;

/// The parameters of a call: the query string, plus a form body on POST. A body over
/// [`MAX_FORM`], stalled or broken is refused (`Err` says why), never read in part.
async fn params(s: &AppState, headers: &HeaderMap, q: RawQuery, body: Body) -> Result<RawQuery, String> {
    let mut pairs = q.0;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        let mut stream = body.into_data_stream();
        let mut buf = BytesMut::new();
        while let Some(chunk) = next_chunk(&mut stream, s.svc.cfg.body_timeout).await.map_err(|e| e.detail)? {
            buf.extend_from_slice(&chunk);
            if buf.len() > MAX_FORM {
                return Err(format!("form body over {} KiB", MAX_FORM / 1024));
            }
        }
        pairs.extend(form_urlencoded::parse(&buf).into_owned());
    }
    Ok(RawQuery(pairs))
}

/// `action=X`, or the seed's typo `?actionX` (a bare key).
pub(crate) fn action(p: &RawQuery) -> Option<String> {
    if let Some(a) = p.get("action") {
        return Some(a.to_owned());
    }
    p.0.iter().find_map(|(k, v)| {
        // `get`, not `[..6]`: a key with a multi-byte character there must not panic.
        let (head, rest) = (k.get(..6)?, k.get(6..)?);
        (v.is_empty() && !rest.is_empty() && head.eq_ignore_ascii_case("action")).then(|| rest.to_owned())
    })
}

fn date_iso(ms: i64) -> String {
    let base = crate::domain::dates::format_ms(ms);
    // 2007-10-31T16:39:57.000+00:00: millis and a colon in the offset, as the seed shows.
    format!("{}.{:03}+00:00", &base[..19], ms.rem_euclid(1000))
}

// ---- Personal Content -----------------------------------------------------------------------

fn content_error(code: &str, detail: &str, portal: Option<String>) -> Response {
    let body = UploadUrlResponse {
        url: portal,
        cookie: None,
        error: Some(ContentError { code: code.into(), detail: detail.into() }),
    };
    xml(StatusCode::INTERNAL_SERVER_ERROR, body.to_xml())
}

/// `[PersonalContentV1URL]?action=getContentUploadURL&token=…&content_name=…&content_size=…`.
pub async fn content_api(State(s): State<AppState>, headers: HeaderMap, q: RawQuery, body: Body) -> Response {
    let p = match params(&s, &headers, q, body).await {
        Ok(p) => p,
        Err(why) => return content_error("PA900", &format!("Personal Content API internal error : {why}"), None),
    };
    let act = action(&p).unwrap_or_default();
    if !act.eq_ignore_ascii_case("getContentUploadURL") {
        return content_error("PA900", &format!("Personal Content API internal error : unknown action {act:?}"), None);
    }
    let access = match s.svc.authorize(p.get("token").filter(|t| !t.is_empty())).await {
        Ok(a) => a,
        Err(Error::BlockedUser) => {
            return content_error(
                "MD803",
                "User suspended. Please contact the \"Mes Données\" service administrator.",
                None,
            );
        }
        Err(Error::BlockedApp | Error::AccessDenied(_)) => {
            return content_error(
                "MD113",
                "Your \"Mes donnees\" service account has been deactivated. Please contact the service administrator.",
                None,
            );
        }
        Err(Error::Internal(e)) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "Personal Content API");
            return content_error("PA900", crate::domain::legacy::PA900_TEXT, None);
        }
        Err(e @ Error::RateLimited(_)) => {
            return content_error("PA900", &format!("Personal Content API internal error : {e}"), None);
        }
        Err(_) => {
            let portal = format!("{}/", s.svc.public_url);
            return content_error(
                "MD804",
                "User unknown. The Orange user should activate first their \"Mes Données\" service.",
                Some(portal),
            );
        }
    };
    match s.svc.grant_upload_url(&access, p.get("content_name"), p.get("content_size")).await {
        Ok(g) => {
            let url = format!("{}/personal/content/v1/upload/{}", s.svc.public_url, g.key);
            xml(
                StatusCode::OK,
                UploadUrlResponse { url: Some(url), cookie: Some(Cookie::upload_key(&g.cookie)), error: None }.to_xml(),
            )
        }
        Err(r) => content_error(r.code, &r.detail, None),
    }
}

fn mum(key: &str, message: &str) -> Response {
    xml(StatusCode::BAD_REQUEST, Mum::new(&format!("key={key}"), message).to_xml())
}

/// `POST <upload URL>`: multipart part `file_content`, cookie `downloadUploadKey`.
pub async fn content_upload(
    State(s): State<AppState>,
    method: Method,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return mum(&key, "HTTP Request method must be POST");
    }
    let cookie = cookie(&headers, "downloadUploadKey");
    let (url, access) = match s.svc.take_upload_url(&key, cookie.as_deref()).await {
        Ok(Some(x)) => x,
        // Unknown, already used, expired, or another cookie: the URL is spent either way.
        Ok(None) => return mum(&key, "Can not create content"),
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "upload URL");
            return mum(&key, "Can not create content");
        }
    };
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(boundary) = param(ct, "boundary").filter(|b| !b.is_empty()) else {
        return mum(&key, "Parameter file_content is not found in uploadcontent");
    };
    let mut parts = Multipart::new(body.into_data_stream(), &boundary, s.svc.cfg.body_timeout);
    if parts.start().await.is_err() {
        return mum(&key, "Parameter file_content is not found in uploadcontent");
    }
    loop {
        match parts.next_part().await {
            Ok(Some(h)) if h.name.as_deref() == Some("file_content") => break,
            Ok(Some(_)) => {
                if parts.read_small().await.is_err() {
                    return mum(&key, "Error while uploading content");
                }
            }
            _ => return mum(&key, "Parameter file_content is not found in uploadcontent"),
        }
    }
    let target = match s.svc.prepare_upload(&access, None, &url.name, Some(url.size)).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %crate::logsafe::Esc(&e), "content upload refused");
            return mum(&key, "Can not create content");
        }
    };
    let Ok(mut sink) = Sink::new(&s, &access, Some(url.size)).await else {
        return mum(&key, "An error has occured while writing file in temporary directory");
    };
    // The declared size is the content: a part shorter or longer is refused.
    if parts.stream_exact(url.size, &mut sink).await.is_err() {
        return mum(&key, "Error while uploading content");
    }
    let Ok(blob) = sink.commit().await else {
        return mum(&key, "An error has occured while writing file in temporary directory");
    };
    let stored = match s.svc.finish_upload(&access, target, blob).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %crate::logsafe::Esc(&e), "content upload refused");
            return mum(&key, "Can not create content");
        }
    };
    let Ok(item) = s.svc.resolve(&access, &stored.file_id, false).await else {
        return mum(&key, "Error while getting tmp file info");
    };
    let n = &item.node;
    let stem = n.name.rsplit_once('.').map(|(s, _)| s).filter(|s| !s.is_empty()).unwrap_or(&n.name);
    let content = Content {
        id: n.id.to_string(),
        parent_id: n.parent_id.unwrap_or_default().to_string(),
        name: stem.to_owned(),
        commentary: String::new(),
        file_format: String::new(),
        file_size: n.size,
        creation_date: date_iso(n.created),
        last_modification_date: date_iso(n.updated),
    };
    xml(
        StatusCode::OK,
        StorageXmlEngine { uploadcontentdirectlyresponse: UploadContentDirectlyResponse { content } }.to_xml(),
    )
}

// ---- Personal Photos ------------------------------------------------------------------------

/// Our error numbers (the seed shows only 1106), each with its HTTP status.
pub mod photo_errors {
    /// Bad or missing token (the seed's example).
    pub const OWNER_UNKNOWN: (u32, u16) = (1106, 400);
    /// A mandatory parameter is missing.
    pub const MISSING_PARAMETER: (u32, u16) = (1101, 400);
    /// No such action.
    pub const UNKNOWN_ACTION: (u32, u16) = (1102, 400);
    /// No such album.
    pub const UNKNOWN_ALBUM: (u32, u16) = (1201, 404);
    /// No such media object.
    pub const UNKNOWN_MEDIA: (u32, u16) = (1301, 404);
    /// Not JPEG, GIF, BMP or PNG.
    pub const UNSUPPORTED_FORMAT: (u32, u16) = (1401, 400);
    /// Anything else.
    pub const INTERNAL: (u32, u16) = (1500, 500);
    /// Over the per-(app, user) rate limit (ours: the seeds have no such case).
    pub const TOO_MANY_REQUESTS: (u32, u16) = (1104, 403);
    /// A form body over 64 KiB, stalled or broken (ours: the seeds have no such case).
    pub const TOO_LARGE: (u32, u16) = (1103, 413);
}

fn photo_error((code, status): (u32, u16), msg: &str) -> Response {
    xml(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), PhotosAction::error(code, msg).to_xml())
}

fn from_domain(e: Error, what: &str) -> Response {
    use photo_errors::*;
    match e {
        Error::NotFound(_) if what == "album" => photo_error(UNKNOWN_ALBUM, &format!("Album unknown [{e}]")),
        Error::NotFound(_) => photo_error(UNKNOWN_MEDIA, &format!("Media object unknown [{e}]")),
        Error::InvalidName(..) => photo_error(MISSING_PARAMETER, &format!("Invalid parameter [{e}]")),
        Error::QuotaExceeded { .. } | Error::TooLarge { .. } => photo_error(INTERNAL, &e.to_string()),
        Error::RateLimited(_) => photo_error(TOO_MANY_REQUESTS, &format!("Too many requests [{e}]")),
        Error::DiskFull(why) => {
            tracing::warn!(error = %crate::logsafe::Esc(&why), "disk full: photo refused");
            photo_error(INTERNAL, "disk full, retry later")
        }
        Error::Internal(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "Personal Photos API");
            photo_error(INTERNAL, "internal error")
        }
        other => photo_error(OWNER_UNKNOWN, &format!("Owner unknown [{other}]")),
    }
}

fn media_object(s: &AppState, a: &Access, p: &Photo) -> MediaObject {
    let app: String = form_urlencoded::byte_serialize(a.app.name.as_bytes()).collect();
    MediaObject {
        id: p.node.id.to_string(),
        cyphered_id: cyphered(p.node.id),
        title: p.title.clone(),
        creation_date: p.node.created,
        filename: p.node.name.clone(),
        filesize: p.node.size,
        mime_type: p.node.mime.clone().unwrap_or_default(),
        width: p.width,
        height: p.height,
        base_url: format!("{}/personal/photos/v1/photo?cid={}&app={app}", s.svc.public_url, cyphered(p.node.id)),
    }
}

fn album_xml(node: &Node) -> Album {
    Album { cyphered_id: cyphered(node.id), title: node.name.clone(), creation_date: node.created }
}

async fn album_list(s: &AppState, a: &Access) -> Result<Albums, Response> {
    let albums = s.svc.albums(a).await.map_err(|e| from_domain(e, "album"))?;
    Ok(Albums {
        count: albums.len() as u64,
        album: albums
            .into_iter()
            .map(|(n, photos)| AlbumSummary {
                cyphered_id: cyphered(n.id),
                title: n.name,
                guests: Count { count: 0 },
                media_objects: Count { count: photos },
            })
            .collect(),
    })
}

/// `[PersonalPhotosV1URL]?action=…&token=…` (GET, or POST multipart for AddMediaObj).
pub async fn photos_api(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: RawQuery,
    body: Body,
) -> Response {
    use photo_errors::*;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if method == Method::POST && ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return add_media(s, &headers, q, &ct, body).await;
    }
    let p = match params(&s, &headers, q, body).await {
        Ok(p) => p,
        Err(why) => return photo_error(TOO_LARGE, &format!("Invalid request [{why}]")),
    };
    let Some(act) = action(&p) else { return photo_error(MISSING_PARAMETER, "Parameter action is missing") };
    let a = match s.svc.authorize(p.get("token").filter(|t| !t.is_empty())).await {
        Ok(a) => a,
        Err(e) => return from_domain(e, "owner"),
    };
    let result = match act.to_ascii_lowercase().as_str() {
        "getalbumslist" | "getalbumlist" => {
            album_list(&s, &a).await.map(|albums| PhotosAction { albums: Some(albums), ..PhotosAction::new(3201) })
        }
        "createalbum" => match p.get("TIT").or(p.get("title")).filter(|t| !t.is_empty()) {
            None => Err(photo_error(MISSING_PARAMETER, "Parameter TIT is missing")),
            Some(title) => s
                .svc
                .create_album(&a, title)
                .await
                .map(|n| PhotosAction { album: Some(album_xml(&n)), ..PhotosAction::new(100) })
                .map_err(|e| from_domain(e, "album")),
        },
        "getalbum" | "getmediaobjslist" => match p.get("Album").filter(|t| !t.is_empty()) {
            None => Err(photo_error(MISSING_PARAMETER, "Parameter Album is missing")),
            Some(id) => match s.svc.album(&a, Some(id)).await {
                Err(e) => Err(from_domain(e, "album")),
                Ok(node) if act.eq_ignore_ascii_case("getalbum") => {
                    Ok(PhotosAction { album: Some(album_xml(&node)), ..PhotosAction::new(105) })
                }
                Ok(node) => {
                    s.svc.photos_of(&node).await.map_err(|e| from_domain(e, "album")).map(|photos| PhotosAction {
                        media_objects: Some(MediaObjects {
                            media_object: photos.iter().map(|ph| media_object(&s, &a, ph)).collect(),
                        }),
                        ..PhotosAction::new(3204)
                    })
                }
            },
        },
        "getmediaobj" => match p.get("MOB").filter(|t| !t.is_empty()) {
            None => Err(photo_error(MISSING_PARAMETER, "Parameter MOB is missing")),
            Some(id) => s
                .svc
                .photo(&a, id)
                .await
                .map(|ph| PhotosAction { media_object: Some(media_object(&s, &a, &ph)), ..PhotosAction::new(3205) })
                .map_err(|e| from_domain(e, "media")),
        },
        "addmediaobj" => Err(photo_error(MISSING_PARAMETER, "AddMediaObj is a multipart POST with the file in part F")),
        other => Err(photo_error(UNKNOWN_ACTION, &format!("Unknown action {other:?}"))),
    };
    match result {
        Ok(answer) => xml(StatusCode::OK, answer.to_xml()),
        Err(res) => res,
    }
}

async fn add_media(s: AppState, headers: &HeaderMap, q: RawQuery, ct: &str, body: Body) -> Response {
    use photo_errors::*;
    let Some(boundary) = param(ct, "boundary").filter(|b| !b.is_empty()) else {
        return photo_error(MISSING_PARAMETER, "multipart body without boundary");
    };
    let mut parts = Multipart::new(body.into_data_stream(), &boundary, s.svc.cfg.body_timeout);
    if parts.start().await.is_err() {
        return photo_error(MISSING_PARAMETER, "Parameter F is missing");
    }
    let mut fields = q.0;
    let file_name = loop {
        match parts.next_part().await {
            Ok(Some(h)) if h.name.as_deref() == Some("F") || h.filename.is_some() => {
                break h.filename.unwrap_or_default();
            }
            Ok(Some(h)) => match parts.read_small().await {
                Ok(v) => fields.push((h.name.unwrap_or_default(), String::from_utf8_lossy(&v).trim().to_owned())),
                Err(_) => return photo_error(MISSING_PARAMETER, "malformed multipart body"),
            },
            _ => return photo_error(MISSING_PARAMETER, "Parameter F is missing"),
        }
    };
    let f = RawQuery(fields);
    let token = f.get("token").map(str::to_owned).or_else(|| bearer(headers).ok().flatten().map(str::to_owned));
    let a = match s.svc.authorize(token.as_deref().filter(|t| !t.is_empty())).await {
        Ok(a) => a,
        Err(e) => return from_domain(e, "owner"),
    };
    let Some(title) = f.get("F_title").map(str::to_owned) else {
        return photo_error(MISSING_PARAMETER, "Parameter F_title is missing");
    };
    let album = match s.svc.album(&a, f.get("Album")).await {
        Ok(n) => n,
        Err(e) => return from_domain(e, "album"),
    };
    let Ok(mut sink) = Sink::new(&s, &a, None).await else { return photo_error(INTERNAL, "internal error") };
    if let Err(e) = parts.stream_until_delimiter(&mut sink).await {
        // 4xx details say what the client sent wrong; anything else is logged, not shown.
        let client_fault = e.code.status() < 500;
        if !client_fault {
            tracing::warn!(error = %crate::logsafe::Esc(&e.detail), "photo upload failed");
        }
        return photo_error(INTERNAL, if client_fault { &e.detail } else { "internal error" });
    }
    let Ok(blob) = sink.commit().await else { return photo_error(INTERNAL, "internal error") };
    match s.svc.add_photo(&a, &album, &file_name, &title, blob.key, blob.size).await {
        Ok(None) => photo_error(UNSUPPORTED_FORMAT, "Unsupported format: JPEG, GIF, BMP and PNG only"),
        Err(e) => from_domain(e, "album"),
        Ok(Some(photo)) => match album_list(&s, &a).await {
            // The seed's sample answers the album list (code 3201); we add the new photo.
            Ok(albums) => xml(
                StatusCode::OK,
                PhotosAction {
                    albums: Some(albums),
                    media_object: Some(media_object(&s, &a, &photo)),
                    ..PhotosAction::new(3201)
                }
                .to_xml(),
            ),
            Err(res) => res,
        },
    }
}

/// A photo's `baseUrl`: the original, or resized with `width`/`height`. Needs the token, as
/// a `token` parameter or a Bearer header.
pub async fn photo(State(s): State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    use photo_errors::*;
    let token = q.get("token").map(str::to_owned).or_else(|| bearer(&headers).ok().flatten().map(str::to_owned));
    let a = match s.svc.authorize(token.as_deref().filter(|t| !t.is_empty())).await {
        Ok(a) => a,
        Err(e) => return from_domain(e, "owner"),
    };
    let Some(cid) = q.get("cid") else { return photo_error(MISSING_PARAMETER, "Parameter cid is missing") };
    let ph = match s.svc.photo(&a, cid).await {
        Ok(p) => p,
        Err(e) => return from_domain(e, "media"),
    };
    let dim = |k: &str| q.get(k).and_then(|v| v.parse::<u32>().ok()).filter(|v| *v > 0);
    match s.svc.photo_bytes(&ph, dim("width"), dim("height")).await {
        Ok(Some(jpeg)) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Ok(None) => {
            let blob = ph.node.blob.clone().unwrap_or_default();
            match s.svc.blobs.read(&blob, 0, None).await {
                Ok(r) => {
                    let mut res = Response::new(Body::from_stream(r));
                    let mime = HeaderValue::from_str(ph.node.mime.as_deref().unwrap_or("image/jpeg"))
                        .unwrap_or(HeaderValue::from_static("image/jpeg"));
                    res.headers_mut().insert(header::CONTENT_TYPE, mime);
                    res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(ph.node.size));
                    res
                }
                Err(e) => from_domain(e.into(), "media"),
            }
        }
        Err(e) => from_domain(e, "media"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_typo_form_never_panics() {
        let q = |k: &str| RawQuery(vec![(k.to_owned(), String::new())]);
        assert_eq!(action(&q("actionGetAlbum")).as_deref(), Some("GetAlbum"));
        assert_eq!(action(&q("actio\u{e9}x")), None);
        assert_eq!(action(&q("\u{1F600}\u{1F600}ab")), None);
    }
}
