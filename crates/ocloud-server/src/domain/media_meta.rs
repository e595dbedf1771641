//! Metadata of pictures, audio and video (spec §3.1), read from the file's headers only: never
//! by decoding pixels or samples. Runs in the background job after an upload; a damaged or
//! unknown header gives no metadata, never an error (every reader is also guarded against
//! panics).
//!
//! - pictures: `shootingDate` (EXIF DateTimeOriginal, with OffsetTimeOriginal or `+0000`) and
//!   `rotationAngle` (EXIF Orientation: `ZERO`, `NINETY`, `ONE_HUNDRED_EIGHTY`,
//!   `TWO_HUNDRED_SEVENTY`, the clockwise turn that shows the picture upright; mirrored
//!   orientations fold onto these), via kamadak-exif;
//! - audio: `duration` (whole seconds), `albumName`, `trackName`, `artistName`, `hasCover`,
//!   via lofty (MP3, M4A, FLAC, Ogg, WAV…);
//! - video (MP4, MOV, 3GP, M4V): `duration`, `width`, `height`, from the `moov` box alone.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Map, Value};

/// Metadata keys and values.
pub type Meta = Map<String, Value>;

/// Header bytes a metadata reader may read of one file, whatever the file says: metadata
/// lives in headers, and memory must stay bounded.
const READ_BUDGET: u64 = 16 << 20;

impl super::Service {
    /// Reads the metadata of a new picture, audio or video file in the background and adds it
    /// to what the upload recorded (width and height of pictures), for every file with this
    /// content. Nothing found, nothing written.
    pub fn schedule_metadata(&self, node: &crate::store::Node) {
        use ocloud_wire::model::FileType;
        let (Some(blob), Some(kind)) = (node.blob.clone(), node.file_type) else { return };
        // Buffered: each read of the blob reader is a ranged read of the backend.
        type Reader = BufReader<crate::blobs::SyncReader>;
        let read: fn(Reader) -> Meta = match kind {
            FileType::Picture => picture,
            FileType::Audio => audio,
            FileType::Video => video,
            _ => return,
        };
        let (svc, size) = (self.clone(), node.size);
        let mut meta: Meta = node.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
        tokio::spawn(async move {
            let Ok(_permit) = svc.renders.acquire().await else { return };
            let reader = crate::blobs::SyncReader::new(svc.blobs.clone(), &blob, size).with_budget(READ_BUDGET);
            let reader = BufReader::with_capacity(64 << 10, reader);
            let Ok(found) = tokio::task::spawn_blocking(move || read(reader)).await else { return };
            if found.is_empty() {
                return;
            }
            meta.extend(found);
            let json = Value::Object(meta).to_string();
            if let Err(e) = svc.meta.set_blob_metadata(&blob, &json).await {
                tracing::warn!(blob = %blob, error = %crate::logsafe::Esc(&e), "recording metadata");
            }
        });
    }
}

fn guarded(f: impl FnOnce() -> Option<Meta>) -> Meta {
    catch_unwind(AssertUnwindSafe(f)).ok().flatten().unwrap_or_default()
}

/// `shootingDate` (EXIF DateTimeOriginal, `yyyy-MM-ddTHH:mm:ss±hhmm`, OffsetTimeOriginal or
/// +0000) and `rotationAngle` (only when an Orientation tag exists).
pub fn picture<R: BufRead + Seek>(mut r: R) -> Meta {
    use exif::{In, Tag, Value as V};
    guarded(|| {
        // JPEG, PNG (eXIf), HEIF/AVIF, WebP, TIFF. Stops at the EXIF block when there is one.
        let exif = exif::Reader::new().read_from_container(&mut r).ok()?;
        let ascii = |tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
            Some(V::Ascii(v)) => v.first().cloned(),
            _ => None,
        };
        let mut m = Meta::new();
        if let Some(Ok(mut dt)) = ascii(Tag::DateTimeOriginal).map(|a| exif::DateTime::from_ascii(&a)) {
            if let Some(off) = ascii(Tag::OffsetTimeOriginal) {
                let _ = dt.parse_offset(&off); // "+02:00"; ignored when malformed
            }
            if let Some(s) = orange_date(&dt) {
                m.insert("shootingDate".into(), s.into());
            }
        }
        let orientation = exif.get_field(Tag::Orientation, In::PRIMARY).and_then(|f| f.value.get_uint(0));
        if let Some(name) = orientation.and_then(rotation_angle) {
            m.insert("rotationAngle".into(), name.into());
        }
        Some(m)
    })
}

/// EXIF Orientation → clockwise rotation that displays the picture upright; mirrored values
/// fold like Android's `ExifInterface.getRotationDegrees`.
pub fn rotation_angle(orientation: u32) -> Option<&'static str> {
    Some(match orientation {
        1 | 2 => "ZERO",
        6 | 7 => "NINETY",
        3 | 4 => "ONE_HUNDRED_EIGHTY",
        8 | 5 => "TWO_HUNDRED_SEVENTY",
        _ => return None,
    })
}

fn orange_date(d: &exif::DateTime) -> Option<String> {
    // kamadak only checks digits: reject "0000:00:00 00:00:00" and other out-of-range values.
    let ok = d.year > 0 && (1..=12).contains(&d.month) && (1..=31).contains(&d.day);
    if !ok || d.hour > 23 || d.minute > 59 || d.second > 60 {
        return None;
    }
    let off = d.offset.unwrap_or(0);
    let (sign, off) = (if off < 0 { '-' } else { '+' }, off.unsigned_abs());
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}{:02}",
        d.year,
        d.month,
        d.day,
        d.hour,
        d.minute,
        d.second,
        off / 60,
        off % 60
    ))
}

/// `duration` (whole seconds, floored; omitted when unknown), `albumName`, `trackName`,
/// `artistName` (omitted when absent/blank), `hasCover`. MP3/FLAC/M4A/OGG/Opus/WAV/AIFF/APE…
pub fn audio<R: Read + Seek>(mut r: R) -> Meta {
    use lofty::config::ParseOptions;
    use lofty::file::{AudioFile, TaggedFileExt};
    use lofty::probe::Probe;
    use lofty::tag::Accessor;
    guarded(|| {
        // Format is sniffed from the content. If the stream properties are broken (e.g. an ID3
        // tag followed by no MPEG frame), retry for the tags alone.
        let mut read = |opts: ParseOptions| {
            r.seek(SeekFrom::Start(0)).ok()?;
            Probe::new(&mut r).options(opts).guess_file_type().ok()?.read().ok()
        };
        let tags_only = ParseOptions::new().read_properties(false);
        // (the retry must find a tag: lofty's sniffer takes e.g. a JPEG's FF E1 for MPEG sync)
        let file = read(ParseOptions::new()).or_else(|| read(tags_only).filter(|f| !f.tags().is_empty()))?;
        let mut m = Meta::new();
        let secs = file.properties().duration().as_secs();
        if secs > 0 {
            m.insert("duration".into(), secs.into());
        }
        if let Some(tag) = file.primary_tag().or_else(|| file.first_tag()) {
            for (key, v) in [("albumName", tag.album()), ("trackName", tag.title()), ("artistName", tag.artist())] {
                if let Some(v) = v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                    m.insert(key.into(), v.into());
                }
            }
        }
        let has_cover = file.tags().iter().any(|t| !t.pictures().is_empty());
        m.insert("hasCover".into(), has_cover.into());
        Some(m)
    })
}

/// MP4/MOV/3GP/M4V: `duration` (whole seconds, from `mvhd`), `width`/`height` (from the first
/// video track's `tkhd`). Only the `moov` box is read; `mdat` is seeked over.
pub fn video<R: Read + Seek>(mut r: R) -> Meta {
    guarded(|| {
        let moov = top_level_box_body(&mut r, b"moov", 64 << 20)?;
        let mut m = Meta::new();
        if let Some((timescale, dur)) = child(&moov, b"mvhd").and_then(timescale_duration) {
            // all-ones duration = "unknown"; timescale 0 → checked_div None
            if dur != u64::from(u32::MAX)
                && dur != u64::MAX
                && let Some(secs) = dur.checked_div(timescale)
            {
                m.insert("duration".into(), secs.into());
            }
        }
        let video_trak = boxes(&moov).filter(|(k, _)| k == b"trak").map(|(_, t)| t).find(|trak| {
            let hdlr = child(trak, b"mdia").and_then(|mdia| child(mdia, b"hdlr"));
            hdlr.and_then(|h| h.get(8..12)) == Some(b"vide")
        });
        if let Some(tkhd) = video_trak.and_then(|t| child(t, b"tkhd")) {
            let at = if *tkhd.first()? == 1 { 88 } else { 76 }; // 16.16 fixed point
            let (w, h) = (be32(tkhd, at)? >> 16, be32(tkhd, at + 4)? >> 16);
            if w > 0 && h > 0 {
                m.insert("width".into(), w.into());
                m.insert("height".into(), h.into());
            }
        }
        Some(m)
    })
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?).into())
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// (box size, header length) from the first 16 bytes of a box; size 0 = "to the end".
fn box_size(h: &[u8], remaining: u64) -> Option<(u64, u64)> {
    match be32(h, 0)? {
        1 => Some((be64(h, 8)?, 16)),
        0 => Some((remaining, 8)),
        n => Some((n, 8)),
    }
    .filter(|&(size, hdr)| size >= hdr && size <= remaining)
}

/// Child boxes of a box body, as (fourcc, body).
fn boxes(mut b: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        let (size, hdr) = box_size(b, b.len() as u64)?;
        let (kind, body) = (b.get(4..8)?, &b[hdr as usize..size as usize]);
        b = &b[size as usize..];
        Some((kind, body))
    })
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(b).find(|(k, _)| k == kind).map(|(_, body)| body)
}

/// (timescale, duration) of an `mvhd` (or `mdhd`) full box, versions 0 and 1.
fn timescale_duration(b: &[u8]) -> Option<(u64, u64)> {
    if *b.first()? == 1 { Some((be32(b, 20)?, be64(b, 24)?)) } else { Some((be32(b, 12)?, be32(b, 16)?)) }
}

/// Body of the first top-level box `kind`, seeking over the others (so `mdat` is never read).
fn top_level_box_body<R: Read + Seek>(r: &mut R, kind: &[u8; 4], max: u64) -> Option<Vec<u8>> {
    let end = r.seek(SeekFrom::End(0)).ok()?;
    let mut pos = 0;
    while pos + 8 <= end {
        r.seek(SeekFrom::Start(pos)).ok()?;
        let mut h = [0u8; 16];
        let n = (end - pos).min(16) as usize;
        r.read_exact(&mut h[..n]).ok()?;
        let (size, hdr) = box_size(&h[..n], end - pos)?;
        if &h[4..8] == kind {
            if size - hdr > max {
                return None;
            }
            let mut body = vec![0; (size - hdr) as usize];
            r.seek(SeekFrom::Start(pos + hdr)).ok()?;
            r.read_exact(&mut body).ok()?;
            return Some(body);
        }
        pos += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fixture(name: &str) -> std::io::Cursor<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media").join(name);
        std::io::Cursor::new(std::fs::read(path).unwrap())
    }

    fn j(m: Meta) -> Value {
        Value::Object(m)
    }

    #[test]
    fn pictures() {
        let exp = json!({"shootingDate": "2016-04-30T18:00:00+0000", "rotationAngle": "NINETY"});
        assert_eq!(j(picture(fixture("exif.jpg"))), exp);
        assert_eq!(j(picture(fixture("exif.png"))), exp);
        assert_eq!(j(picture(fixture("offset.jpg"))), json!({"shootingDate": "2016-04-30T18:00:00+0200"}));
        assert_eq!(j(picture(fixture("plain.jpg"))), json!({}));
        assert_eq!(j(picture(fixture("tags.mp3"))), json!({}));
        assert_eq!(rotation_angle(3), Some("ONE_HUNDRED_EIGHTY"));
        assert_eq!(rotation_angle(8), Some("TWO_HUNDRED_SEVENTY"));
        assert_eq!(rotation_angle(9), None);
    }

    #[test]
    fn audio_tags() {
        let cases = [
            (
                "tags.mp3",
                json!({"duration": 3, "albumName": "Ninja Tuna", "trackName": "Kalimba", "artistName": "Mr. Scruff", "hasCover": true}),
            ),
            (
                "tags.m4a",
                json!({"duration": 3, "albumName": "Night Visions", "trackName": "Demons", "artistName": "Imagine Dragons", "hasCover": true}),
            ),
            (
                "tags.flac",
                json!({"duration": 3, "albumName": "Flac Album", "trackName": "Flac Title", "artistName": "Flac Artist", "hasCover": true}),
            ),
            (
                "tags.ogg",
                json!({"duration": 3, "albumName": "Ogg Album", "trackName": "Ogg Title", "artistName": "Ogg Artist", "hasCover": false}),
            ),
            ("notags.mp3", json!({"duration": 3, "hasCover": false})),
        ];
        for (f, exp) in cases {
            assert_eq!(j(audio(fixture(f))), exp, "{f}");
        }
        assert_eq!(j(audio(fixture("video.mp4"))), json!({}));
        assert_eq!(j(audio(fixture("exif.jpg"))), json!({}));
    }

    #[test]
    fn video_header() {
        assert_eq!(j(video(fixture("video.mp4"))), json!({"duration": 2, "width": 320, "height": 240}));
        assert_eq!(j(video(fixture("exif.jpg"))), json!({}));
    }

    #[test]
    fn damaged_headers_give_nothing_and_never_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "py") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            for n in 0..data.len() {
                for flip in [None, Some(n)] {
                    let mut b = data[..if flip.is_some() { data.len() } else { n }].to_vec();
                    if let Some(i) = flip {
                        b[i] ^= 0xFF;
                    }
                    let c = || std::io::Cursor::new(b.clone());
                    let _ = (picture(c()), audio(c()), video(c()));
                }
            }
        }
    }
}
