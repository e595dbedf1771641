//! Uploads (spec §3.9): both forms, the multipart quirks of real clients, non-ASCII names,
//! clash renaming, size mismatches.

use crate::harness::*;

#[tokio::test]
async fn multipart_quirks_of_real_clients() {
    let s = Server::start(&[]);
    let api = s.api();
    let content = b"line one\r\n--not a boundary\r\nend\r\n".to_vec();
    let no_eol = &content[..content.len() - 2];
    let quirks = [
        ("plain.txt", Quirks::default(), &content[..]),
        ("ios.txt", Quirks { leading_crlf: true, ..Default::default() }, &content[..]),
        ("android.txt", Quirks { no_closing: true, ..Default::default() }, &content[..]),
        ("pyorange.txt", Quirks { no_crlf_before_closing: true, ..Default::default() }, no_eol),
        ("all.txt", Quirks { leading_crlf: true, no_closing: true, no_crlf_before_closing: true }, &content[..]),
    ];
    for (name, q, content) in quirks {
        let desc = format!("{{\"name\": \"{name}\", \"size\": \"{}\"}}", content.len());
        let body = multipart_body("UploadBoundary", &desc, name, content, q);
        let r = api.upload_raw("multipart/form-data; boundary=UploadBoundary", body).await.ok();
        assert_eq!(r["fileName"], name);
        assert_eq!(api.download(r["fileId"].as_str().unwrap()).await.as_ref(), content, "{name}");
    }
    // Content ending in CRLF with no CRLF before the delimiter reads exactly like a size
    // declared two bytes too large: the CRLF is the delimiter's (RFC 2046, and Orange's parser
    // was strict about it: spec §3.9), so the upload is refused, never stored with a stray CRLF.
    let desc = format!("{{\"name\": \"eol.txt\", \"size\": \"{}\"}}", content.len());
    let q = Quirks { no_crlf_before_closing: true, ..Default::default() };
    let body = multipart_body("UploadBoundary", &desc, "eol.txt", &content, q);
    api.upload_raw("multipart/form-data; boundary=UploadBoundary", body).await.assert_error(400, 24);
    // Pretty-printed description (iOS), numeric size, quoted boundary.
    let desc = "{\n  \"name\" : \"pretty.txt\",\n  \"size\" : 3\n}";
    let body = multipart_body("x-y", desc, "pretty.txt", b"abc", Quirks::default());
    let r = api.upload_raw("multipart/form-data; boundary=\"x-y\"", body).await.ok();
    assert_eq!(api.download(r["fileId"].as_str().unwrap()).await.as_ref(), b"abc");
}

#[tokio::test]
async fn non_ascii_names_and_clashes() {
    let s = Server::start(&[]);
    let api = s.api();
    // antechrestos: ASCII-only JSON (\u escapes) and raw UTF-8 in filename; the JSON wins.
    let desc = r#"{"name": "\u00e9t\u00e9 \u2603.jpg", "size": "2"}"#;
    let body = multipart_body("UploadBoundary", desc, "raw-été ☃.jpg", b"ab", Quirks::default());
    let r = api.upload_raw("multipart/form-data; boundary=UploadBoundary", body).await.ok();
    assert_eq!(r["fileName"], "été ☃.jpg");
    assert_eq!(r["fileId"], id(&format!("{APP}été ☃.jpg")));
    // Clashes: stem(n).ext.
    for expected in ["upload.jpg", "upload(1).jpg", "upload(2).jpg"] {
        assert_eq!(api.upload("upload.jpg", b"x", None).await.ok()["fileName"], expected);
    }
    assert_eq!(api.upload("README", b"x", None).await.ok()["fileName"], "README");
    assert_eq!(api.upload("README", b"x", None).await.ok()["fileName"], "README(1)");
    // Without a description part, the part's filename names the file.
    let mut body =
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"only-file.txt\"\r\n\r\nhello\r\n--B--\r\n"
            .to_vec();
    let r = api.upload_raw("multipart/form-data; boundary=B", body.clone()).await.ok();
    assert_eq!(r["fileName"], "only-file.txt");
    assert_eq!(api.download(r["fileId"].as_str().unwrap()).await.as_ref(), b"hello");
    // …even with no closing delimiter.
    body.truncate(body.len() - "\r\n--B--\r\n".len());
    let r = api.upload_raw("multipart/form-data; boundary=B", body).await.ok();
    assert_eq!(api.download(r["fileId"].as_str().unwrap()).await.as_ref(), b"hello");
}

#[tokio::test]
async fn raw_form_b() {
    let s = Server::start(&[]);
    let api = s.api();
    let folder = api.mkdir("in", None).await;
    let fid = folder["id"].as_str().unwrap();
    let data = vec![7u8; 300_000];
    let r = Api::send(
        api.req(reqwest::Method::POST, &format!("/cloud/v1/files/content?name=raw é.bin&folder={fid}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(data.clone()),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = r.json();
    assert_eq!(r["fileId"], id(&format!("{APP}in/raw é.bin")));
    assert_eq!(sha256(&api.download(r["fileId"].as_str().unwrap()).await), sha256(&data));
}

#[tokio::test]
async fn size_mismatches_store_nothing() {
    let s = Server::start(&[]);
    let api = s.api();
    let free = api.freespace().await;
    // Declared more than sent.
    let body = multipart_body("B", r#"{"name":"short.txt","size":"10"}"#, "short.txt", b"abc", Quirks::default());
    api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 24);
    // Declared one or two bytes more: the delimiter's CRLF (or LF) must not become content.
    for size in ["4", "5"] {
        let desc = format!(r#"{{"name":"over.txt","size":"{size}"}}"#);
        let body = multipart_body("B", &desc, "over.txt", b"abc", Quirks::default());
        api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 24);
    }
    // A bare LF before the boundary is content: the last newline of a text file sent by a
    // client that leaves out the delimiter's CRLF.
    let lf = b"--B\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{\"name\":\"lf.txt\",\"size\":\"4\"}\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"lf.txt\"\r\n\r\nabc\n--B--\r\n";
    let r = api.upload_raw("multipart/form-data; boundary=B", lf.to_vec()).await.ok();
    assert_eq!(api.download(r["fileId"].as_str().unwrap()).await.as_ref(), b"abc\n");
    assert_eq!(api.delete(&format!("/cloud/v1/files/{}", r["fileId"].as_str().unwrap())).await.status, 204);
    // Declared less than sent.
    let body = multipart_body("B", r#"{"name":"long.txt","size":"2"}"#, "long.txt", b"abcdef", Quirks::default());
    api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 24);
    // Size not a number; description not JSON; no name.
    let body = multipart_body("B", r#"{"name":"n.txt","size":"ten"}"#, "n.txt", b"abc", Quirks::default());
    api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 24);
    let body = multipart_body("B", r#"{"name":"#, "n.txt", b"abc", Quirks::default());
    api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 22);
    let body = multipart_body("B", r#"{"size":"3"}"#, "n.txt", b"abc", Quirks::default());
    api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 23);
    // No file part; no boundary at all.
    let body = b"--B\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{\"name\":\"a\",\"size\":\"1\"}\r\n--B--\r\n".to_vec();
    api.upload_raw("multipart/form-data; boundary=B", body).await.assert_error(400, 23);
    api.upload_raw("multipart/form-data; boundary=B", b"garbage".to_vec()).await.assert_error(400, 22);
    api.upload_raw("multipart/form-data", b"--B--".to_vec()).await.assert_error(400, 26);
    assert_eq!(api.freespace().await, free);
    assert_eq!(api.root("").await["files"], serde_json::json!([]));
    assert_eq!(temp_files(&s.data).len(), 0, "no temp file left");
}
