//! Content URLs: download with Range, HEAD, validators and conditional requests, renditions.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn download_range_head_and_validators() {
    let s = Server::start(&[]);
    let api = s.api();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let f = api.upload("data.bin", &data, None).await.ok();
    let info = api.get(&format!("/cloud/v1/files/{}", f["fileId"].as_str().unwrap())).await;
    let etag = info.header("etag").unwrap().to_owned();
    let last_modified = info.header("last-modified").unwrap().to_owned();
    let info = info.ok();
    assert_eq!(info["size"], 100_000);
    assert!(info.get("thumbUrl").is_none(), "no rendition for a non-picture");
    let url = info["downloadUrl"].as_str().unwrap().to_owned();
    // Another kind than content, thumb or preview is no resource, whatever the headers
    // (schemathesis found it answered 412 to a failed If-Match first).
    let bogus = url.replace("/content/", "/null,null/");
    Api::send(api.req(reqwest::Method::GET, &bogus).header("if-match", "\"x\"")).await.assert_error(404, 60);

    let full = api.get(&url).await;
    assert_eq!(full.status, 200);
    assert_eq!(sha256(&full.body), sha256(&data));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("etag"), Some(etag.as_str()));

    let part = Api::send(api.req(reqwest::Method::GET, &url).header("range", "bytes=1000-1999")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/100000"));
    assert_eq!(part.body.as_ref(), &data[1000..2000]);
    let tail = Api::send(api.req(reqwest::Method::GET, &url).header("range", "bytes=99990-")).await;
    assert_eq!(tail.body.as_ref(), &data[99_990..]);
    let suffix = Api::send(api.req(reqwest::Method::GET, &url).header("range", "bytes=-10")).await;
    assert_eq!(suffix.body.as_ref(), &data[99_990..]);
    let past = Api::send(api.req(reqwest::Method::GET, &url).header("range", "bytes=100000-")).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */100000"));
    // If-Range with another ETag: the whole content.
    let stale =
        Api::send(api.req(reqwest::Method::GET, &url).header("range", "bytes=0-9").header("if-range", "\"other\""))
            .await;
    assert_eq!((stale.status, stale.body.len()), (200, 100_000));

    let head = Api::send(api.req(reqwest::Method::HEAD, &url)).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("100000"));
    assert!(head.body.is_empty());

    // Conditional GETs: 304 on a match, content otherwise.
    let nm = Api::send(api.req(reqwest::Method::GET, &url).header("if-none-match", &etag)).await;
    assert_eq!((nm.status, nm.body.len()), (304, 0));
    let ims = Api::send(api.req(reqwest::Method::GET, &url).header("if-modified-since", &last_modified)).await;
    assert_eq!(ims.status, 304);
    let other = Api::send(api.req(reqwest::Method::GET, &url).header("if-none-match", "\"nope\"")).await;
    assert_eq!(other.status, 200);
    Api::send(api.req(reqwest::Method::GET, &url).header("if-match", "\"nope\"")).await.assert_error(412, 65);
    Api::send(api.req(reqwest::Method::GET, &url).header("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT"))
        .await
        .assert_error(412, 65);
    // On changes, every failed precondition is 412/65 and nothing happens.
    let file_url = format!("/cloud/v1/files/{}", f["fileId"].as_str().unwrap());
    Api::send(api.req(reqwest::Method::DELETE, &file_url).header("if-match", "\"nope\"")).await.assert_error(412, 65);
    Api::send(api.req(reqwest::Method::DELETE, &file_url).header("if-none-match", &etag)).await.assert_error(412, 65);
    Api::send(
        api.req(reqwest::Method::POST, &file_url)
            .header("if-modified-since", &last_modified)
            .json(&json!({"name": "x"})),
    )
    .await
    .assert_error(412, 65);
    Api::send(
        api.req(reqwest::Method::POST, &file_url)
            .header("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT")
            .json(&json!({"name": "x"})),
    )
    .await
    .assert_error(412, 65);
    assert_eq!(api.get(&file_url).await.status, 200, "still there");
    let r = Api::send(api.req(reqwest::Method::DELETE, &file_url).header("if-match", &etag)).await;
    assert_eq!(r.status, 204);

    // Content URLs need the token, and a wrong opaque part is not found.
    let anon = reqwest::get(&url).await.unwrap();
    assert_eq!(anon.status(), 401);
    api.get(&url).await.assert_error(404, 60);
}

/// Large downloads go out with `sendfile` on a plain connection (`http/sendfile.rs`): the
/// bytes must be the file's exactly, whole or by a large range (both across the 4 MiB
/// stand-ins), with small ranges (read normally) between them on the same keep-alive
/// connection, and a client leaving half-way must not disturb the next one.
#[tokio::test]
async fn large_downloads_are_exact_whole_by_range_and_back_to_back() {
    let s = Server::start(&[]);
    let api = s.api();
    let size = 9 * 1024 * 1024 + 5;
    let data: Vec<u8> = (0..size as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let f = api.upload("big.bin", &data, None).await.ok();
    let fid = f["fileId"].as_str().unwrap();
    let url = api.get(&format!("/cloud/v1/files/{fid}")).await.ok()["downloadUrl"].as_str().unwrap().to_owned();
    let range = |r: &str| Api::send(api.req(reqwest::Method::GET, &url).header("range", r));
    let whole = api.get(&url).await;
    assert_eq!((whole.status, whole.body.len()), (200, size));
    assert!(whole.body == data, "whole file differs");
    let four = 4 << 20;
    let across = range(&format!("bytes={}-{}", four - 10, four + 9)).await;
    assert_eq!((across.status, across.body.as_ref()), (206, &data[four - 10..four + 10]));
    let deep = range("bytes=8388608-8388615").await;
    assert_eq!(deep.body.as_ref(), &data[8_388_608..8_388_616]);
    let rest = range("bytes=5000000-").await;
    assert!(rest.body.as_ref() == &data[5_000_000..], "tail differs");
    // Something else on the same connection, then the whole file again.
    assert_eq!(api.get("/cloud/v1/freespace").await.status, 200);
    let head = Api::send(api.req(reqwest::Method::HEAD, &url)).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert!(api.get(&url).await.body == data, "second download differs");
    // A client gone after the first bytes.
    {
        use std::io::{Read, Write};
        let path = url.trim_start_matches(&s.url);
        let mut c = connect(&s.addr());
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", api.token);
        c.write_all(req.as_bytes()).unwrap();
        let mut buf = vec![0u8; 100_000];
        c.read_exact(&mut buf).unwrap();
    }
    assert!(api.get(&url).await.body == data, "download after an abandoned one differs");
    // The real CLI, whose client writes through its own buffers.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["download", &format!("id:{fid}"), dir.path().join("big.bin").to_str().unwrap(), "--quiet"])
        .env("OCLOUD_API_URL", &s.url)
        .env("OCLOUD_TOKEN", &api.token)
        .env("OCLOUD_CONFIG", dir.path().join("cli.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(dir.path().join("big.bin")).unwrap() == data, "CLI download differs");
}

#[tokio::test]
async fn pictures_get_thumbnails_and_previews() {
    let s = Server::start(&[]);
    let api = s.api();
    let f = api.upload("big.png", &png(1600, 1000), None).await.ok();
    let info = api.get(&format!("/cloud/v1/files/{}", f["fileId"].as_str().unwrap())).await.ok();
    assert_eq!(info["type"], "PICTURE");
    assert_eq!(info["metadata"], json!({"width": 1600, "height": 1000}));
    for (key, bound) in [("thumbUrl", 144), ("previewUrl", 800)] {
        let r = api.get(info[key].as_str().unwrap()).await;
        assert_eq!(r.status, 200, "{key}");
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        let img = image::load_from_memory(&r.body).unwrap();
        assert_eq!(img.width(), bound, "{key}");
        assert_eq!(img.height(), bound * 1000 / 1600, "{key} keeps the aspect ratio");
    }
    // A picture named like a document is still recognised from its bytes.
    let g = api.upload("scan.dat", &png(10, 20), None).await.ok();
    let info = api.get(&format!("/cloud/v1/files/{}", g["fileId"].as_str().unwrap())).await.ok();
    assert_eq!((info["type"].as_str(), info["metadata"]["height"].as_u64()), (Some("PICTURE"), Some(20)));
    let small = image::load_from_memory(&api.get(info["previewUrl"].as_str().unwrap()).await.body).unwrap();
    assert_eq!((small.width(), small.height()), (10, 20), "never upscaled");
}
