//! `GET /ui/zip?f=ID&d=ID…&name=N`: files (`f`) and folders (`d`, with everything under them)
//! as one zip, streamed. Listings and content come from the API as the session (so a token
//! sees exactly what it may), each file's bytes go into the archive as they arrive (stored,
//! not compressed: photos and videos are compressed already, and the CPU stays free), with a
//! data descriptor after each file. Nothing is held whole, in memory or on disk; the archive
//! is cut short (the browser reports a failed download) if a read fails half-way.

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipEntryBuilder};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use futures_util::io::AsyncWriteExt as _;
use ocloud_wire::ErrorCode;
use serde_json::Value;
use tokio_util::compat::TokioAsyncWriteCompatExt as _;

use super::UiState;
use super::session::{Session, with_cookies};
use crate::http::error::ApiError;

/// Entries per listing page.
const PAGE: u64 = 1000;

/// What to put in the archive.
struct Wanted {
    files: Vec<String>,
    folders: Vec<String>,
    name: String,
}

fn wanted(query: &str) -> Wanted {
    let mut w = Wanted { files: Vec::new(), folders: Vec::new(), name: "ocloud.zip".into() };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "f" => w.files.push(v.into_owned()),
            "d" => w.folders.push(v.into_owned()),
            "name" if !v.is_empty() => w.name = format!("{}.zip", v.trim_end_matches(".zip")),
            _ => {}
        }
    }
    w
}

/// A path of the API for an id (ids are URL-safe already, but never trust that).
fn id_path(kind: &str, id: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/cloud/v1/{kind}/{id}")
}

/// The API's JSON answer to a `GET`; else its refusal, passed on as it is.
async fn json(s: &UiState, session: &Session, path: &str) -> Result<Value, Response> {
    let res = super::gateway::get(s, session, path).await;
    if !res.status().is_success() {
        return Err(res);
    }
    let internal = |e: String| ApiError::new(ErrorCode::Internal, format!("{path}: {e}")).into_response();
    let bytes = axum::body::to_bytes(res.into_body(), 64 << 20).await.map_err(|e| internal(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| internal(e.to_string()))
}

/// The download.
pub async fn download(State(s): State<UiState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let Some(session) = Session::of(&s.app.svc, &headers).await else {
        return ApiError::new(ErrorCode::MissingCredentials, "not signed in to the web interface").into_response();
    };
    let w = wanted(q.as_deref().unwrap_or_default());
    if w.files.is_empty() && w.folders.is_empty() {
        return ApiError::new(ErrorCode::InvalidUrlParameter, "nothing to zip: give f=FILE_ID or d=FOLDER_ID")
            .into_response();
    }
    // Read before the answer starts, so a wrong id is a clear error rather than a cut zip;
    // the writer starts from what was read.
    let mut files = Vec::with_capacity(w.files.len());
    for id in &w.files {
        match json(&s, &session, &id_path("files", id)).await {
            Ok(info) => files.push(info),
            Err(res) => return res,
        }
    }
    let mut folders = Vec::with_capacity(w.folders.len());
    for id in &w.folders {
        match json(&s, &session, &format!("{}?limit=1", id_path("folders", id))).await {
            Ok(top) => folders.push((id.clone(), format!("{}/", top["name"].as_str().unwrap_or("folder")))),
            Err(res) => return res,
        }
    }
    let (tx, rx) = tokio::io::duplex(256 << 10);
    let renewed = session.renewed.clone();
    let name = w.name;
    tokio::spawn(async move {
        if let Err(e) = write(&s, &session, files, folders, tx).await {
            tracing::warn!(error = %crate::logsafe::Esc(&e), "zip cut short");
        }
    });
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(rx, 256 << 10));
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' }).collect();
    let utf8: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{utf8}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    with_cookies(res, &renewed)
}

/// Writes the archive into `out`: the `files` (as the API described them), then the
/// `folders` (id, path in the archive) with everything under them.
async fn write(
    s: &UiState,
    session: &Session,
    files: Vec<Value>,
    folders: Vec<(String, String)>,
    out: tokio::io::DuplexStream,
) -> Result<(), String> {
    let mut zip = ZipFileWriter::new(out.compat_write());
    for info in &files {
        let name = info["name"].as_str().unwrap_or("file").to_owned();
        add_file(s, session, &mut zip, &name, info).await?;
    }
    // Depth first, a page of each folder at a time.
    let mut stack = folders;
    while let Some((id, prefix)) = stack.pop() {
        let dir = ZipEntryBuilder::new(prefix.clone().into(), Compression::Stored);
        zip.write_entry_whole(dir, &[]).await.map_err(|e| e.to_string())?;
        let mut offset = 0;
        loop {
            let path = format!("{}?showthumbnails=true&limit={PAGE}&offset={offset}", id_path("folders", &id));
            let page = json(s, session, &path).await.map_err(|res| format!("{path}: {}", res.status()))?;
            let subs = page["subfolders"].as_array().cloned().unwrap_or_default();
            let files = page["files"].as_array().cloned().unwrap_or_default();
            for f in &subs {
                let (Some(sid), Some(n)) = (f["id"].as_str(), f["name"].as_str()) else { continue };
                stack.push((sid.to_owned(), format!("{prefix}{n}/")));
            }
            for f in &files {
                let n = f["name"].as_str().unwrap_or("file");
                add_file(s, session, &mut zip, &format!("{prefix}{n}"), f).await?;
            }
            let got = (subs.len() + files.len()) as u64;
            if got < PAGE {
                break;
            }
            offset += got;
        }
    }
    zip.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Streams one file's content into the archive under `name`.
async fn add_file<W: futures_util::io::AsyncWrite + Unpin>(
    s: &UiState,
    session: &Session,
    zip: &mut ZipFileWriter<W>,
    name: &str,
    info: &Value,
) -> Result<(), String> {
    let url = info["downloadUrl"].as_str().ok_or_else(|| format!("{name}: no content URL"))?;
    let path = url.find("/cloud/v1/").map(|i| &url[i..]).ok_or_else(|| format!("{name}: content URL {url}"))?;
    let res = super::gateway::get(s, session, path).await;
    if !res.status().is_success() {
        return Err(format!("{name}: {}", res.status()));
    }
    let entry = ZipEntryBuilder::new(name.to_owned().into(), Compression::Stored);
    let mut w = zip.write_entry_stream(entry).await.map_err(|e| e.to_string())?;
    let mut body = res.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("{name}: {e}"))?;
        w.write_all(&chunk).await.map_err(|e| format!("{name}: {e}"))?;
    }
    w.close().await.map_err(|e| e.to_string())?;
    Ok(())
}
