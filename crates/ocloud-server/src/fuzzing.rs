//! Entry points for the fuzz targets (`fuzz/`): each parser the service runs on client bytes,
//! with the properties that must hold whatever the input. Not part of the API.

use std::time::Duration;

use bytes::Bytes;

use crate::http::content::{ByteRange, parse_range};
use crate::http::extract::{RawQuery, parse_json};
use crate::http::upload::Multipart;

/// The multipart reader on `data` (boundary `B`), cut into chunks where `data` says, with a
/// declared size or none: it never panics, and what it accepts as a file of `n` bytes is
/// exactly `n` bytes.
pub fn multipart(data: &[u8]) {
    let Some((&ctl, body)) = data.split_first() else { return };
    // The control byte picks the chunk size and whether a size is declared.
    let chunk = 1 + usize::from(ctl & 0x1f);
    let declared = (ctl & 0x20 != 0).then(|| u64::from(ctl >> 6) * 3);
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let stream = axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_data_stream();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    rt.block_on(async {
        let mut p = Multipart::new(stream, "B", Duration::from_secs(5));
        if p.start().await.is_err() {
            return;
        }
        while let Ok(Some(h)) = p.next_part().await {
            if h.name.as_deref() != Some("file") {
                if p.read_small().await.is_err() {
                    return;
                }
                continue;
            }
            let mut file = Vec::new();
            match declared {
                Some(n) => {
                    if p.stream_exact(n, &mut file).await.is_ok() {
                        assert_eq!(file.len() as u64, n, "a part accepted with another size than declared");
                    }
                }
                None => {
                    let _ = p.stream_until_delimiter(&mut file).await;
                }
            }
            return;
        }
    });
}

/// The upload description's JSON: parsed or refused with a table code, never a panic.
pub fn description(data: &[u8]) {
    let _ = parse_json::<ocloud_wire::model::UploadDescription>(data);
}

/// A legacy form body and the action it names.
pub fn legacy_form(data: &[u8]) {
    let q = RawQuery(form_urlencoded::parse(data).into_owned().collect());
    let _ = crate::http::legacy::action(&q);
}

/// Names: what `validate` accepts is at most 255 bytes, without `/` or control characters,
/// and every clash rename of it is accepted too.
pub fn names(name: &str) {
    let Ok(nfc) = crate::domain::names::validate(name) else { return };
    assert!(nfc.len() <= 255 && !nfc.contains('/') && !nfc.chars().any(|c| c < ' ' || c == '\u{7f}'));
    for n in [1, 9, 10, 1000] {
        let clash = crate::domain::names::clash_name(&nfc, n);
        assert!(crate::domain::names::validate(&clash).is_ok(), "{clash:?} refused");
    }
}

/// Range headers: a part is always within the content.
pub fn range(value: &str, size: u64) {
    if let ByteRange::Part(first, last) = parse_range(Some(value), size) {
        assert!(first <= last && last < size, "{value:?} on {size} bytes gave {first}-{last}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_points_take_ordinary_and_odd_input() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--B--\r\n";
        for ctl in [0u8, 3, 0x20 | 0x40, 0xff] {
            let mut data = vec![ctl];
            data.extend_from_slice(body);
            super::multipart(&data);
        }
        super::multipart(b"");
        super::description(br#"{"name":"a","size":"1"}"#);
        super::legacy_form(b"actio%C3%A9x&action");
        for name in ["a.txt", &"\u{e9}".repeat(127), ".x", "x(1)"] {
            super::names(name);
        }
        for (v, size) in [("bytes=0-", 10), ("bytes=-5", 3), ("bytes=9-20", 10), ("bytes=-0", 0)] {
            super::range(v, size);
        }
    }
}
