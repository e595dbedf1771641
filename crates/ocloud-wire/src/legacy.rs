//! The XML of the legacy "Personal APIs" (spec §5 Personal Content, §6 Personal Photos).
//!
//! Each type deserialises with quick-xml's serde support (CDATA and text alike), for clients,
//! and writes itself with [`ToXml::to_xml`] through quick-xml's writer, for the service: a
//! well-formed declaration (the seed's `"?` typo fixed) and CDATA where the seeds have it.
//!
//! ```
//! use ocloud_wire::legacy::{Cookie, ToXml, UploadUrlResponse};
//! let r = UploadUrlResponse { url: Some("https://h/u?x=1&y=2".into()), cookie: Some(Cookie::upload_key("v")), error: None };
//! let xml = r.to_xml();
//! assert!(xml.contains("<url><![CDATA[https://h/u?x=1&y=2]]></url>"));
//! let back: UploadUrlResponse = quick_xml::de::from_str(&xml).unwrap();
//! assert_eq!(back, r);
//! ```

use quick_xml::Writer;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::{Deserialize, Serialize};

/// Writes a type as a whole XML document.
pub trait ToXml {
    /// The document, with its `<?xml …?>` declaration.
    fn to_xml(&self) -> String;
}

struct W(Writer<Vec<u8>>);

impl W {
    fn new() -> W {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).expect("write to memory");
        W(w)
    }
    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, *v));
        }
        self.0.write_event(Event::Start(s)).expect("write to memory");
    }
    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, *v));
        }
        self.0.write_event(Event::Empty(s)).expect("write to memory");
    }
    fn close(&mut self, name: &str) {
        self.0.write_event(Event::End(BytesEnd::new(name))).expect("write to memory");
    }
    fn text(&mut self, name: &str, text: &str) {
        if text.is_empty() {
            return self.empty(name, &[]);
        }
        self.open(name, &[]);
        self.0.write_event(Event::Text(BytesText::new(text))).expect("write to memory");
        self.close(name);
    }
    fn cdata(&mut self, name: &str, text: &str) {
        self.open(name, &[]);
        // "]]>" cannot appear inside one CDATA section: end the section after "]]" and open
        // another for ">…".
        let parts: Vec<&str> = text.split("]]>").collect();
        for (i, part) in parts.iter().enumerate() {
            let lead = if i > 0 { ">" } else { "" };
            let tail = if i + 1 < parts.len() { "]]" } else { "" };
            self.0.write_event(Event::CData(BytesCData::new(format!("{lead}{part}{tail}")))).expect("write to memory");
        }
        self.close(name);
    }
    fn finish(self) -> String {
        String::from_utf8(self.0.into_inner()).expect("XML written from str is UTF-8")
    }
}

// ---- Personal Content (spec §5) -------------------------------------------------------------

/// The `cookie` of a `getContentUploadURL` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cookie {
    /// Always `downloadUploadKey`.
    pub name: String,
    /// Its value, to send back as `Cookie: downloadUploadKey=<value>`.
    pub value: String,
}

impl Cookie {
    /// The `downloadUploadKey` cookie.
    pub fn upload_key(value: &str) -> Cookie {
        Cookie { name: "downloadUploadKey".into(), value: value.into() }
    }
}

/// The `error` of a failed `getContentUploadURL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentError {
    /// `PA003`, `PA004`, `PA900`, `MD113`, `MD327`, `MD803`, `MD804`.
    pub code: String,
    /// Message.
    pub detail: String,
}

/// Root `getContentUploadURLResponse`: `url` + `cookie` on success; `error` (+ `url` for
/// MD804, the portal) on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "getContentUploadURLResponse")]
pub struct UploadUrlResponse {
    /// The one-time upload URL (CDATA); with MD804, the portal's URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The cookie to send with the upload.
    #[serde(default)]
    pub cookie: Option<Cookie>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<ContentError>,
}

impl ToXml for UploadUrlResponse {
    fn to_xml(&self) -> String {
        let mut w = W::new();
        w.open("getContentUploadURLResponse", &[]);
        if let Some(e) = &self.error {
            w.open("error", &[]);
            w.text("code", &e.code);
            w.text("detail", &e.detail);
            w.close("error");
            if let Some(u) = &self.url {
                w.text("url", u);
            }
        } else {
            if let Some(u) = &self.url {
                w.cdata("url", u);
            }
            if let Some(c) = &self.cookie {
                w.open("cookie", &[]);
                w.text("name", &c.name);
                w.text("value", &c.value);
                w.close("cookie");
            }
        }
        w.close("getContentUploadURLResponse");
        w.finish()
    }
}

/// The stored content of a successful upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Numeric id.
    pub id: String,
    /// Numeric id of the folder.
    pub parent_id: String,
    /// Name without its extension (`HelloWorld` for `HelloWorld.jpg`).
    pub name: String,
    /// Always empty.
    #[serde(default)]
    pub commentary: String,
    /// Always empty.
    #[serde(default)]
    pub file_format: String,
    /// Bytes.
    pub file_size: u64,
    /// `2007-10-31T16:39:57.000+01:00`.
    pub creation_date: String,
    /// Same form.
    pub last_modification_date: String,
}

/// The middle element of [`StorageXmlEngine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadContentDirectlyResponse {
    /// The stored content.
    pub content: Content,
}

/// Root `storagexmlengine`: the answer of a successful upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "storagexmlengine")]
pub struct StorageXmlEngine {
    /// The answer.
    pub uploadcontentdirectlyresponse: UploadContentDirectlyResponse,
}

impl ToXml for StorageXmlEngine {
    fn to_xml(&self) -> String {
        let c = &self.uploadcontentdirectlyresponse.content;
        let mut w = W::new();
        w.open("storagexmlengine", &[]);
        w.open("uploadcontentdirectlyresponse", &[]);
        w.open("content", &[]);
        w.text("id", &c.id);
        w.text("parent_id", &c.parent_id);
        w.text("name", &c.name);
        w.text("commentary", &c.commentary);
        w.text("file_format", &c.file_format);
        w.text("file_size", &c.file_size.to_string());
        w.text("creation_date", &c.creation_date);
        w.text("last_modification_date", &c.last_modification_date);
        w.close("content");
        w.close("uploadcontentdirectlyresponse");
        w.close("storagexmlengine");
        w.finish()
    }
}

/// The `response` of a [`Mum`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MumResponse {
    /// One of the seed's messages.
    pub message: String,
}

/// Root `mum`: an upload error (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "mum")]
pub struct Mum {
    /// Always `uploadcontent`.
    pub action: String,
    /// Echo of the request parameters.
    #[serde(default)]
    pub parameters: String,
    /// The message.
    pub response: MumResponse,
}

impl Mum {
    /// An upload error with this message.
    pub fn new(parameters: &str, message: &str) -> Mum {
        Mum {
            action: "uploadcontent".into(),
            parameters: parameters.into(),
            response: MumResponse { message: message.into() },
        }
    }
}

impl ToXml for Mum {
    fn to_xml(&self) -> String {
        let mut w = W::new();
        w.open("mum", &[]);
        w.text("action", &self.action);
        w.text("parameters", &self.parameters);
        w.open("response", &[]);
        w.text("message", &self.response.message);
        w.close("response");
        w.close("mum");
        w.finish()
    }
}

// ---- Personal Photos (spec §6) --------------------------------------------------------------

/// A `count` attribute holder (`<guests count="2"/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Count {
    /// The count.
    #[serde(rename = "@count")]
    pub count: u64,
}

/// An album in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbumSummary {
    /// Id.
    #[serde(rename = "@cypheredId")]
    pub cyphered_id: String,
    /// Title (CDATA).
    pub title: String,
    /// Unused, 0.
    #[serde(default)]
    pub guests: Count,
    /// Photos in it.
    #[serde(rename = "mediaObjects", default)]
    pub media_objects: Count,
}

/// `albums count=N`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Albums {
    /// Number of albums.
    #[serde(rename = "@count", default)]
    pub count: u64,
    /// The albums.
    #[serde(default)]
    pub album: Vec<AlbumSummary>,
}

/// One album (CreateAlbum, GetAlbum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Album {
    /// Id.
    #[serde(rename = "@cypheredId")]
    pub cyphered_id: String,
    /// Title (CDATA).
    pub title: String,
    /// Epoch milliseconds.
    #[serde(rename = "creationDate")]
    pub creation_date: i64,
}

/// A photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaObject {
    /// Numeric id.
    #[serde(rename = "@id")]
    pub id: String,
    /// Id to use in calls.
    #[serde(rename = "@cypheredId")]
    pub cyphered_id: String,
    /// Title (CDATA).
    pub title: String,
    /// Epoch milliseconds.
    #[serde(rename = "creationDate")]
    pub creation_date: i64,
    /// File name.
    pub filename: String,
    /// Bytes.
    pub filesize: u64,
    /// `image/jpeg`, `image/png`, `image/gif`, `image/bmp`.
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Where the photo is served; add `width`/`height` to resize.
    #[serde(rename = "baseUrl")]
    pub base_url: String,
}

/// `mediaObjects`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MediaObjects {
    /// The photos.
    #[serde(rename = "mediaObject", default)]
    pub media_object: Vec<MediaObject>,
}

/// Root `action version="2.0" code="…"` of every Photos answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "action")]
pub struct PhotosAction {
    /// Always `2.0`.
    #[serde(rename = "@version", default)]
    pub version: String,
    /// 3201 list, 100 created, 105 album, 3204 photos, 3205 photo, 200 error.
    #[serde(rename = "@code")]
    pub code: u32,
    /// GetAlbumsList, AddMediaObj.
    #[serde(default)]
    pub albums: Option<Albums>,
    /// CreateAlbum, GetAlbum.
    #[serde(default)]
    pub album: Option<Album>,
    /// GetMediaObjsList.
    #[serde(rename = "mediaObjects", default)]
    pub media_objects: Option<MediaObjects>,
    /// GetMediaObj; AddMediaObj (our addition: the photo just added).
    #[serde(rename = "mediaObject", default)]
    pub media_object: Option<MediaObject>,
    /// Errors.
    #[serde(rename = "error-code", default)]
    pub error_code: Option<u32>,
    /// Errors.
    #[serde(rename = "error-msg", default)]
    pub error_msg: Option<String>,
}

impl PhotosAction {
    /// An answer of this code.
    pub fn new(code: u32) -> PhotosAction {
        PhotosAction { version: "2.0".into(), code, ..Default::default() }
    }

    /// An error answer (`code="200"`, sic).
    pub fn error(error_code: u32, msg: &str) -> PhotosAction {
        PhotosAction { error_code: Some(error_code), error_msg: Some(msg.into()), ..PhotosAction::new(200) }
    }
}

fn write_media(w: &mut W, m: &MediaObject) {
    w.open("mediaObject", &[("id", &m.id), ("cypheredId", &m.cyphered_id)]);
    w.cdata("title", &m.title);
    w.text("creationDate", &m.creation_date.to_string());
    w.text("filename", &m.filename);
    w.text("filesize", &m.filesize.to_string());
    w.text("mimeType", &m.mime_type);
    w.text("width", &m.width.to_string());
    w.text("height", &m.height.to_string());
    w.text("baseUrl", &m.base_url);
    w.close("mediaObject");
}

impl ToXml for PhotosAction {
    fn to_xml(&self) -> String {
        let mut w = W::new();
        let code = self.code.to_string();
        w.open("action", &[("version", "2.0"), ("code", &code)]);
        if let Some(a) = &self.albums {
            w.open("albums", &[("count", &a.count.to_string())]);
            for al in &a.album {
                w.open("album", &[("cypheredId", &al.cyphered_id)]);
                w.cdata("title", &al.title);
                w.empty("guests", &[("count", &al.guests.count.to_string())]);
                w.empty("mediaObjects", &[("count", &al.media_objects.count.to_string())]);
                w.close("album");
            }
            w.close("albums");
        }
        if let Some(al) = &self.album {
            w.open("album", &[("cypheredId", &al.cyphered_id)]);
            w.cdata("title", &al.title);
            w.text("creationDate", &al.creation_date.to_string());
            w.close("album");
        }
        if let Some(ms) = &self.media_objects {
            w.open("mediaObjects", &[]);
            for m in &ms.media_object {
                write_media(&mut w, m);
            }
            w.close("mediaObjects");
        }
        if let Some(m) = &self.media_object {
            write_media(&mut w, m);
        }
        if let Some(c) = self.error_code {
            w.text("error-code", &c.to_string());
        }
        if let Some(m) = &self.error_msg {
            w.text("error-msg", m);
        }
        w.close("action");
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_round_trip_with_cdata_and_escapes() {
        let m = MediaObject {
            id: "12".into(),
            cyphered_id: "c".into(),
            title: "a <b> & ]]> c".into(),
            creation_date: 1145433318470,
            filename: "p&q.jpg".into(),
            filesize: 3,
            mime_type: "image/jpeg".into(),
            width: 2,
            height: 1,
            base_url: "http://h/p?cid=c&app=x".into(),
        };
        let mut a = PhotosAction::new(3204);
        a.media_objects = Some(MediaObjects { media_object: vec![m.clone(), m] });
        let xml = a.to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(xml.contains("<![CDATA[a <b> & ]]"), "{xml}");
        assert!(xml.contains("cid=c&amp;app=x"));
        let back: PhotosAction = quick_xml::de::from_str(&xml).unwrap();
        assert_eq!(back, a);
        let e = PhotosAction::error(1201, "Album unknown");
        let back: PhotosAction = quick_xml::de::from_str(&e.to_xml()).unwrap();
        assert_eq!((back.code, back.error_code), (200, Some(1201)));
        let mut list = PhotosAction::new(3201);
        list.albums = Some(Albums { count: 0, album: vec![] });
        let back: PhotosAction = quick_xml::de::from_str(&list.to_xml()).unwrap();
        assert_eq!(back.albums.unwrap().count, 0);
    }

    #[test]
    fn content_documents() {
        let e = UploadUrlResponse {
            url: None,
            cookie: None,
            error: Some(ContentError { code: "PA003".into(), detail: "d".into() }),
        };
        let back: UploadUrlResponse = quick_xml::de::from_str(&e.to_xml()).unwrap();
        assert_eq!(back, e);
        let m = Mum::new("k=v", "HTTP Request method must be POST");
        assert_eq!(quick_xml::de::from_str::<Mum>(&m.to_xml()).unwrap(), m);
        let s = StorageXmlEngine {
            uploadcontentdirectlyresponse: UploadContentDirectlyResponse {
                content: Content {
                    id: "1".into(),
                    parent_id: "2".into(),
                    name: "HelloWorld".into(),
                    commentary: String::new(),
                    file_format: String::new(),
                    file_size: 31163,
                    creation_date: "2007-10-31T16:39:57.000+00:00".into(),
                    last_modification_date: "2007-10-31T16:39:57.000+00:00".into(),
                },
            },
        };
        let xml = s.to_xml();
        assert!(xml.contains("<commentary/>"));
        assert_eq!(quick_xml::de::from_str::<StorageXmlEngine>(&xml).unwrap(), s);
    }
}
