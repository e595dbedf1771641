//! `POST /cloud/v1/files/content` (spec §3.9), both forms, streamed to the blob store.
//!
//! Form A is `multipart/form-data` with a `description` JSON part then a `file` part. The
//! parser is our own because clients in the field break the RFC: a CRLF before the first
//! boundary, no closing delimiter, no CRLF before it. When the description gives the size,
//! exactly that many bytes are taken as the file, so none of those quirks can change the
//! content; without a size the file ends at the next boundary (or at the end of the body).
//! Form B is the raw body with `?name=…&folder=…`, and needs a `Content-Length` (411/64).

use axum::Json;
use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Buf, Bytes, BytesMut};
use ocloud_wire::ErrorCode;
use ocloud_wire::error::LegacyLabel;
use ocloud_wire::model::{UploadDescription, UploadResponse};

use super::AppState;
use super::error::ApiError;
use super::extract::{RawQuery, bearer, content_length, next_chunk, parse_json};
use crate::blobs::BlobWriter;
use crate::domain::upload::{HEAD, StoredBlob};
use crate::domain::{Access, Error};

const SMALL_PART_MAX: usize = 64 * 1024;

/// Uploads a file (spec §3.9).
#[utoipa::path(post, path = "/cloud/v1/files/content",
    params(("name" = Option<String>, Query, description = "form B: file name"), ("folder" = Option<String>, Query, description = "form B: folder id")),
    request_body(content_type = "multipart/form-data", description = "form A: parts `description` (JSON {name, size, folder}) then `file`"),
    responses((status = 201, body = UploadResponse)))]
pub async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let token = bearer(&headers).map_err(|e| e.with_label(LegacyLabel::InvalidToken))?;
    let a = s.svc.authorize(token).await.map_err(|e| ApiError::from(e).on_upload_host())?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let res = if essence == "multipart/form-data" {
        let boundary = param(ct, "boundary")
            .filter(|b| !b.is_empty() && b.len() <= 200)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidHeader, "multipart Content-Type without a boundary"))?;
        if let Some(len) = content_length(&headers) {
            // The description and headers are small: a body far over the limit is refused now.
            let max = s.svc.settings.max_upload_size().saturating_add(SMALL_PART_MAX as u64 * 2);
            if len > max {
                return Err(Error::TooLarge { size: len, max: s.svc.settings.max_upload_size() }.into());
            }
        }
        let mut parts = Multipart::new(body.into_data_stream(), &boundary, s.svc.cfg.body_timeout);
        form_a(&s, &a, &mut parts).await?
    } else if q.get("name").is_some()
        || matches!(essence.as_str(), "" | "application/x-www-form-urlencoded" | "application/octet-stream")
    {
        form_b(&s, &a, &headers, &q, body).await?
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type {essence:?}: use multipart/form-data"),
        ));
    };
    Ok((StatusCode::CREATED, Json(res)))
}

async fn form_b(
    s: &AppState,
    a: &Access,
    headers: &HeaderMap,
    q: &RawQuery,
    body: Body,
) -> Result<UploadResponse, ApiError> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::MissingQueryParameter, "the name query parameter is required"))?;
    let len = content_length(headers)
        .ok_or_else(|| ApiError::new(ErrorCode::LengthRequired, "a raw upload needs a Content-Length"))?;
    let target = s.svc.prepare_upload(a, q.get("folder"), name, Some(len)).await?;
    let mut sink = Sink::new(s, a, Some(len)).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = next_chunk(&mut stream, s.svc.cfg.body_timeout).await? {
        sink.write(&chunk).await?;
    }
    if sink.written != len {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("body of {} bytes, Content-Length {len}", sink.written),
        ));
    }
    let stored = sink.commit().await?;
    Ok(s.svc.finish_upload(a, target, stored).await?)
}

async fn form_a(s: &AppState, a: &Access, p: &mut Multipart) -> Result<UploadResponse, ApiError> {
    p.start().await?;
    let mut desc: Option<UploadDescription> = None;
    while let Some(h) = p.next_part().await? {
        if h.name.as_deref() == Some("description") {
            desc = Some(parse_json(&p.read_small().await?)?);
            continue;
        }
        if h.name.as_deref() != Some("file") && h.filename.is_none() {
            p.read_small().await?;
            continue;
        }
        // The description's name is authoritative (spec §3.9); the part's filename is the
        // fallback of clients that send no description.
        let name = desc
            .as_ref()
            .map(|d| d.name.clone())
            .or(h.filename.clone())
            .ok_or_else(|| ApiError::new(ErrorCode::MissingBodyField, "no file name: send a description part"))?;
        let declared = match desc.as_ref().map(|d| d.size.trim()) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::new(ErrorCode::InvalidBodyField, format!("description size {v:?} is not a byte count"))
            })?),
        };
        let folder = desc.as_ref().and_then(|d| d.folder.as_deref());
        let target = s.svc.prepare_upload(a, folder, &name, declared).await?;
        let mut sink = Sink::new(s, a, declared).await?;
        match declared {
            Some(n) => p.stream_exact(n, &mut sink).await?,
            None => p.stream_until_delimiter(&mut sink).await?,
        }
        let stored = sink.commit().await?;
        return Ok(s.svc.finish_upload(a, target, stored).await?);
    }
    Err(ApiError::new(ErrorCode::MissingBodyField, "the multipart body has no file part"))
}

/// Where a file part's bytes go: a blob ([`Sink`]) or, for fuzzing, memory.
pub(crate) trait PartSink: Send {
    /// Takes the next bytes of the part.
    fn write(&mut self, chunk: &[u8]) -> impl std::future::Future<Output = Result<(), ApiError>> + Send;
}

impl PartSink for Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        Sink::write(self, chunk).await
    }
}

impl PartSink for Vec<u8> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// Writes into a new blob, refusing to go over the declared size, the upload limit or the
/// free space. Dropping it discards the blob.
pub(crate) struct Sink {
    writer: Option<Box<dyn BlobWriter>>,
    written: u64,
    /// The first bytes, for sniffing (see [`HEAD`]).
    head: Vec<u8>,
    declared: Option<u64>,
    max: u64,
    free: u64,
    /// The blob store and the free disk to keep (`--min-free-disk`).
    blobs: std::sync::Arc<dyn crate::blobs::Blobs>,
    reserve: u64,
    next_disk_check: u64,
}

/// How often a streaming upload checks the free disk against the reserve.
const DISK_CHECK_EVERY: u64 = 1 << 20;

impl Sink {
    pub(crate) async fn new(s: &AppState, a: &Access, declared: Option<u64>) -> Result<Sink, ApiError> {
        let reserve = s.svc.cfg.min_free_disk;
        check_disk(s.svc.blobs.as_ref(), reserve, declared.unwrap_or(0))?;
        let writer = s.svc.new_blob().await?;
        Ok(Sink {
            writer: Some(writer),
            written: 0,
            head: Vec::new(),
            declared,
            max: s.svc.settings.max_upload_size(),
            free: s.svc.freespace(a),
            blobs: s.svc.blobs.clone(),
            reserve,
            next_disk_check: DISK_CHECK_EVERY,
        })
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        let total = self.written + chunk.len() as u64;
        if let Some(d) = self.declared
            && total > d
        {
            return Err(ApiError::new(ErrorCode::InvalidBodyField, format!("more than the declared {d} bytes")));
        }
        if total > self.max {
            return Err(Error::TooLarge { size: total, max: self.max }.into());
        }
        if total > self.free {
            return Err(Error::QuotaExceeded { needed: total, free: self.free }.into());
        }
        if total >= self.next_disk_check {
            check_disk(self.blobs.as_ref(), self.reserve, 0)?;
            self.next_disk_check = total + DISK_CHECK_EVERY;
        }
        if self.head.len() < HEAD {
            self.head.extend_from_slice(&chunk[..chunk.len().min(HEAD - self.head.len())]);
        }
        self.writer.as_mut().expect("sink open").write(chunk).await.map_err(Error::from)?;
        self.written = total;
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<StoredBlob, ApiError> {
        let key = self.writer.take().expect("sink open").commit().await.map_err(Error::from)?;
        Ok(StoredBlob { key, size: self.written, head: std::mem::take(&mut self.head) })
    }
}

/// Refuses to store `more` bytes when the free disk would go under `reserve`.
fn check_disk(blobs: &dyn crate::blobs::Blobs, reserve: u64, more: u64) -> Result<(), ApiError> {
    match blobs.available() {
        Some(free) if free < reserve.saturating_add(more) => Err(Error::DiskFull(format!(
            "{free} bytes free on the content disk, {more} to store, {reserve} kept for the database"
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Headers of one part.
#[derive(Debug, Default)]
pub(crate) struct PartHeaders {
    pub(crate) name: Option<String>,
    pub(crate) filename: Option<String>,
}

/// A lenient streaming `multipart/form-data` reader.
pub(crate) struct Multipart {
    stream: BodyDataStream,
    buf: BytesMut,
    dash_boundary: Vec<u8>,
    idle: std::time::Duration,
    eof: bool,
}

fn bad(why: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, format!("multipart body: {why}"))
}

/// Length of a line ending just before `i` (CRLF, LF or none).
fn line_end_before(buf: &[u8], i: usize) -> usize {
    if buf[..i].ends_with(b"\r\n") {
        i - 2
    } else if buf[..i].ends_with(b"\n") {
        i - 1
    } else {
        i
    }
}

impl Multipart {
    pub(crate) fn new(stream: BodyDataStream, boundary: &str, idle: std::time::Duration) -> Multipart {
        Multipart {
            stream,
            buf: BytesMut::new(),
            dash_boundary: format!("--{boundary}").into_bytes(),
            idle,
            eof: false,
        }
    }

    async fn fill(&mut self) -> Result<bool, ApiError> {
        if self.eof {
            return Ok(false);
        }
        match next_chunk(&mut self.stream, self.idle).await? {
            Some(b) => {
                self.buf.extend_from_slice(&b);
                Ok(true)
            }
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    fn find(&self) -> Option<usize> {
        memchr::memmem::find(&self.buf, &self.dash_boundary)
    }

    /// Skips the preamble (a stray CRLF included) through the first boundary.
    pub(crate) async fn start(&mut self) -> Result<(), ApiError> {
        loop {
            if let Some(i) = self.find() {
                self.buf.advance(i + self.dash_boundary.len());
                return Ok(());
            }
            if self.buf.len() > SMALL_PART_MAX {
                return Err(bad("no boundary in the first 64 KiB"));
            }
            if !self.fill().await? {
                return Err(bad("no boundary"));
            }
        }
    }

    /// After a boundary: the next part's headers, or `None` at the closing delimiter or the
    /// end of the body.
    pub(crate) async fn next_part(&mut self) -> Result<Option<PartHeaders>, ApiError> {
        while self.buf.len() < 2 && self.fill().await? {}
        if self.buf.is_empty() || self.buf.starts_with(b"--") {
            return Ok(None);
        }
        loop {
            let text = &self.buf[..];
            let start = text.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            let text = &text[start..];
            let first = if text.starts_with(b"\r\n") {
                2
            } else if text.starts_with(b"\n") {
                1
            } else {
                0
            };
            let rest = &text[first..];
            let end = if rest.starts_with(b"\r\n") {
                Some((0, 2))
            } else if rest.starts_with(b"\n") {
                Some((0, 1))
            } else {
                memchr::memmem::find(rest, b"\r\n\r\n")
                    .map(|i| (i, 4))
                    .into_iter()
                    .chain(memchr::memmem::find(rest, b"\n\n").map(|i| (i, 2)))
                    .min_by_key(|(i, _)| *i)
            };
            if let Some((i, sep)) = end {
                let headers = parse_part_headers(&String::from_utf8_lossy(&rest[..i]));
                let consumed = start + first + i + sep;
                self.buf.advance(consumed);
                return Ok(Some(headers));
            }
            if self.buf.len() > 16 * 1024 {
                return Err(bad("part headers over 16 KiB"));
            }
            if !self.fill().await? {
                return Err(bad("body ends inside part headers"));
            }
        }
    }

    /// A small part's whole content, through the next boundary.
    pub(crate) async fn read_small(&mut self) -> Result<Bytes, ApiError> {
        loop {
            if let Some(i) = self.find() {
                let end = line_end_before(&self.buf, i);
                let data = self.buf.split_to(i).freeze().slice(..end);
                self.buf.advance(self.dash_boundary.len());
                return Ok(data);
            }
            if self.buf.len() > SMALL_PART_MAX + self.dash_boundary.len() {
                return Err(ApiError::new(ErrorCode::PayloadTooLarge, "a form field is over 64 KiB"));
            }
            if !self.fill().await? {
                return Ok(self.buf.split().freeze());
            }
        }
    }

    /// Exactly `n` bytes of file content, then whatever ends the part: CRLF or LF or
    /// nothing, and a boundary or the end of the body.
    pub(crate) async fn stream_exact<S: PartSink>(&mut self, n: u64, sink: &mut S) -> Result<(), ApiError> {
        let shorter = || {
            ApiError::new(ErrorCode::InvalidBodyField, format!("the file part is shorter than the declared {n} bytes"))
        };
        let mut remaining = n;
        // The boundary never occurs inside content (RFC 7578): meeting it means the declared
        // size runs past the part. `seam` catches it across chunk edges.
        let keep = self.dash_boundary.len() - 1;
        let mut seam: Vec<u8> = Vec::with_capacity(keep * 2);
        // The content's last two bytes: a CR or LF there may be the delimiter's own.
        let mut tail = [0u8; 2];
        while remaining > 0 {
            if self.buf.is_empty() && !self.fill().await? {
                return Err(shorter());
            }
            let take = remaining.min(self.buf.len() as u64) as usize;
            let chunk = self.buf.split_to(take);
            seam.extend_from_slice(&chunk[..chunk.len().min(keep)]);
            if memchr::memmem::find(&seam, &self.dash_boundary).is_some()
                || memchr::memmem::find(&chunk, &self.dash_boundary).is_some()
            {
                return Err(shorter());
            }
            seam.clear();
            seam.extend_from_slice(&chunk[chunk.len().saturating_sub(keep)..]);
            tail = match chunk.len() {
                1 => [tail[1], chunk[0]],
                _ => [chunk[chunk.len() - 2], chunk[chunk.len() - 1]],
            };
            sink.write(&chunk).await?;
            remaining -= take as u64;
        }
        while self.buf.len() < self.dash_boundary.len() + 2 && self.fill().await? {}
        // A declared size one or two bytes too large swallows the CRLF (or LF) that belongs to
        // the delimiter: the CRLF before a boundary is the delimiter's (RFC 2046), never content.
        // Only a CRLF counts: content ending in a bare LF right before the boundary is the
        // quirk of clients that leave out the CRLF (a text file's last newline).
        let swallowed = (n >= 2 && tail == *b"\r\n" && self.buf.starts_with(&self.dash_boundary))
            || (n >= 1
                && tail[1] == b'\r'
                && self.buf.starts_with(b"\n")
                && self.buf[1..].starts_with(&self.dash_boundary));
        if swallowed {
            return Err(shorter());
        }
        let skip = if self.buf.starts_with(b"\r\n") {
            2
        } else if self.buf.starts_with(b"\n") {
            1
        } else {
            0
        };
        let rest = &self.buf[skip..];
        let ends_well = rest.starts_with(&self.dash_boundary) || (self.eof && self.dash_boundary.starts_with(rest));
        if !ends_well {
            return Err(ApiError::new(
                ErrorCode::InvalidBodyField,
                format!("the file part is longer than the declared {n} bytes"),
            ));
        }
        Ok(())
    }

    /// File content up to the next boundary (or the end of the body).
    pub(crate) async fn stream_until_delimiter<S: PartSink>(&mut self, sink: &mut S) -> Result<(), ApiError> {
        let hold = self.dash_boundary.len() + 2;
        loop {
            if let Some(i) = self.find() {
                let end = line_end_before(&self.buf, i);
                let data = self.buf.split_to(i);
                sink.write(&data[..end]).await?;
                self.buf.advance(self.dash_boundary.len());
                return Ok(());
            }
            if self.buf.len() > hold {
                let data = self.buf.split_to(self.buf.len() - hold);
                sink.write(&data).await?;
            }
            if !self.fill().await? {
                let data = self.buf.split();
                return sink.write(&data).await;
            }
        }
    }
}

/// The value of `name=` among the `;`-separated parameters of a header value, unquoted.
pub(crate) fn param(value: &str, name: &str) -> Option<String> {
    let mut rest = value;
    while let Some(semi) = rest.find(';') {
        rest = rest[semi + 1..].trim_start();
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n)
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &q[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(val);
        }
        rest = next;
    }
    None
}

fn parse_part_headers(text: &str) -> PartHeaders {
    let mut h = PartHeaders::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("content-disposition") {
            h.name = param(v, "name");
            h.filename = param(v, "filename*")
                .and_then(|ext| ext.split_once("''").map(|(_, enc)| percent_decode(enc)))
                .or_else(|| param(v, "filename"));
        }
    }
    h
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_headers() {
        assert_eq!(
            param("multipart/form-data; boundary=UploadBoundary", "boundary").as_deref(),
            Some("UploadBoundary")
        );
        assert_eq!(param("multipart/form-data; boundary=\"a b\"", "boundary").as_deref(), Some("a b"));
        let h = parse_part_headers(
            "Content-Disposition: form-data; name=\"file\"; filename=\"été \\\"x\\\".jpg\"\r\nContent-Type: image/jpeg",
        );
        assert_eq!(h.name.as_deref(), Some("file"));
        assert_eq!(h.filename.as_deref(), Some("été \"x\".jpg"));
        let h = parse_part_headers("content-disposition: form-data; name=file; filename*=UTF-8''caf%C3%A9+1.txt");
        assert_eq!(h.filename.as_deref(), Some("café+1.txt"));
        assert_eq!(line_end_before(b"ab\r\n--", 4), 2);
        assert_eq!(line_end_before(b"ab--", 2), 2);
    }
}
