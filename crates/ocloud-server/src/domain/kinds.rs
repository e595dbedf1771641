//! File kinds (spec §3.1 `type`) and MIME types, from the name, corrected by the bytes for
//! pictures; picture dimensions from the image header only (no decode).

use std::io::Cursor;

use ocloud_wire::model::FileType;

/// Kind and MIME type from the file name's extension.
pub fn from_name(name: &str) -> (FileType, &'static str) {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" | "jpe" => (FileType::Picture, "image/jpeg"),
        "png" => (FileType::Picture, "image/png"),
        "gif" => (FileType::Picture, "image/gif"),
        "bmp" => (FileType::Picture, "image/bmp"),
        "webp" => (FileType::Picture, "image/webp"),
        "heic" => (FileType::Picture, "image/heic"),
        "tif" | "tiff" => (FileType::Picture, "image/tiff"),
        "mp4" | "m4v" => (FileType::Video, "video/mp4"),
        "mov" => (FileType::Video, "video/quicktime"),
        "avi" => (FileType::Video, "video/x-msvideo"),
        "mkv" => (FileType::Video, "video/x-matroska"),
        "webm" => (FileType::Video, "video/webm"),
        "3gp" => (FileType::Video, "video/3gpp"),
        "mp3" => (FileType::Audio, "audio/mpeg"),
        "m4a" | "aac" => (FileType::Audio, "audio/mp4"),
        "wav" => (FileType::Audio, "audio/wav"),
        "flac" => (FileType::Audio, "audio/flac"),
        "ogg" | "oga" => (FileType::Audio, "audio/ogg"),
        "txt" => (FileType::File, "text/plain"),
        "pdf" => (FileType::File, "application/pdf"),
        "json" => (FileType::File, "application/json"),
        "html" | "htm" => (FileType::File, "text/html"),
        _ => (FileType::File, "application/octet-stream"),
    }
}

/// Whether bytes start like a picture [`sniff_picture`] knows (its magic number alone).
pub fn may_be_picture(head: &[u8]) -> bool {
    use image::ImageFormat::*;
    matches!(image::guess_format(head), Ok(Jpeg | Png | Gif | Bmp))
}

/// What the first bytes of a picture tell: its MIME type and dimensions, for the formats the
/// service can also render (JPEG, PNG, GIF, BMP).
pub fn sniff_picture(prefix: &[u8]) -> Option<(&'static str, u32, u32)> {
    let format = image::guess_format(prefix).ok()?;
    let mime = match format {
        image::ImageFormat::Jpeg => "image/jpeg",
        image::ImageFormat::Png => "image/png",
        image::ImageFormat::Gif => "image/gif",
        image::ImageFormat::Bmp => "image/bmp",
        _ => return None,
    };
    let (w, h) = image::ImageReader::with_format(Cursor::new(prefix), format).into_dimensions().ok()?;
    Some((mime, w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header_gives_dimensions() {
        let img = image::RgbImage::new(30, 20);
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(sniff_picture(&png), Some(("image/png", 30, 20)));
        assert_eq!(sniff_picture(b"hello"), None);
        assert!(may_be_picture(&png[..16]) && !may_be_picture(b"hello, world"));
        assert_eq!(from_name("A.JPG").0, FileType::Picture);
        assert_eq!(from_name("song.mp3").0, FileType::Audio);
        assert_eq!(from_name("noext").1, "application/octet-stream");
    }
}
