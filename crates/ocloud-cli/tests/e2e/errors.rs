//! Every error code of spec §4.1, each produced by the situation it names, with the exact
//! status and body; and the legacy shapes of §4.2 behind `--legacy-errors`.

use std::io::{Read, Write};

use serde_json::json;

use crate::harness::*;

/// Sends raw bytes on a fresh connection and reads the whole answer.
fn raw(addr: &str, request: &[u8]) -> String {
    let mut c = connect(addr);
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[tokio::test]
async fn credentials_40_41_42_26() {
    let s = Server::start(&[]);
    let api = s.api();
    let anon = Api::send(api.http.get(api.url("/cloud/v1/freespace"))).await;
    anon.assert_error(401, 40);
    Api::new(&s.url, "OFR-0000").get("/cloud/v1/freespace").await.assert_error(401, 41);
    let expired = s.admin_token(&["--user", "alice", "--app", "tests", "--expires-in", "0"]);
    // Orange's gateway answered an expired token with 41, and clients refresh only on it.
    Api::new(&s.url, &expired).get("/cloud/v1/freespace").await.assert_error(401, 41);
    Api::send(api.http.get(api.url("/cloud/v1/freespace")).header("authorization", "Basic YTpi"))
        .await
        .assert_error(400, 26);
    // A token without the cloud scope.
    let openid = s.admin_token(&["--user", "alice", "--scope", "openid"]);
    Api::new(&s.url, &openid).get("/cloud/v1/freespace").await.assert_error(403, 50);
    // The refresh token is not an access token.
    let pair: serde_json::Value = serde_json::from_str(&s.admin_token(&["--json"])).unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 3600);
    assert_eq!(Api::new(&s.url, pair["access_token"].as_str().unwrap()).get("/cloud/v1/freespace").await.status, 200);
    Api::new(&s.url, pair["refresh_token"].as_str().unwrap()).get("/cloud/v1/freespace").await.assert_error(401, 41);
}

#[tokio::test]
async fn request_shape_errors() {
    let s = Server::start(&[]);
    let api = s.api();
    let folders = "/cloud/v1/folders";
    // 20: ids that are not ids.
    api.get("/cloud/v1/folders/!!!").await.assert_error(400, 20);
    api.get("/cloud/v1/files/_w").await.assert_error(400, 20);
    // 21, 22, 23, 24, 25, 68: JSON bodies.
    Api::send(api.req(reqwest::Method::POST, folders).header("content-type", "application/json"))
        .await
        .assert_error(400, 21);
    Api::send(api.req(reqwest::Method::POST, folders).header("content-type", "application/json").body("{\"name\":"))
        .await
        .assert_error(400, 22);
    api.post_json(folders, json!({"parentFolderId": "Lw"})).await.assert_error(400, 23);
    api.post_json(folders, json!({"name": 5})).await.assert_error(400, 24);
    Api::send(api.req(reqwest::Method::POST, folders).body("{\"name\":\"a\"}")).await.assert_error(400, 25);
    Api::send(api.req(reqwest::Method::POST, folders).header("content-type", "text/plain").body("{\"name\":\"a\"}"))
        .await
        .assert_error(415, 68);
    // 27: a raw upload without its name.
    Api::send(
        api.req(reqwest::Method::POST, "/cloud/v1/files/content")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x"),
    )
    .await
    .assert_error(400, 27);
    // 68 on the upload: neither multipart nor a raw upload.
    Api::send(api.req(reqwest::Method::POST, "/cloud/v1/files/content").header("content-type", "image/jpeg").body("x"))
        .await
        .assert_error(415, 68);
    // 60: unknown ids and unknown paths; a file id on a folder route.
    api.get(&format!("/cloud/v1/folders/{}", id(&format!("{APP}nope/")))).await.assert_error(404, 60);
    api.get("/cloud/v1/nothing-here").await.assert_error(404, 60);
    let f = api.upload("f.txt", b"x", None).await.ok();
    api.get(&format!("/cloud/v1/folders/{}", f["fileId"].as_str().unwrap())).await.assert_error(404, 60);
    // 61 with Allow.
    let r = Api::send(api.req(reqwest::Method::PUT, "/cloud/v1/freespace")).await;
    r.assert_error(405, 61);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    let r = Api::send(api.req(reqwest::Method::PATCH, "/cloud/v1/files/content")).await;
    r.assert_error(405, 61);
    assert_eq!(r.header("allow"), Some("POST"));
    // 62: an Accept that excludes JSON; content URLs are exempt.
    Api::send(api.req(reqwest::Method::GET, "/cloud/v1/freespace").header("accept", "text/html"))
        .await
        .assert_error(406, 62);
    assert_eq!(
        Api::send(api.req(reqwest::Method::GET, "/cloud/v1/freespace").header("accept", "text/html, */*;q=0.8"))
            .await
            .status,
        200
    );
    // 66: a JSON body over 64 KiB.
    api.post_json(folders, json!({"name": "x".repeat(70_000)})).await.assert_error(413, 66);
    // 67: a URI over 8 KiB (a fresh connection: the 413 above closed the previous one, as
    // its body was never read).
    let fresh = Api::new(&s.url, &api.token);
    fresh.get(&format!("/cloud/v1/folders?x={}", "a".repeat(9000))).await.assert_error(414, 67);
}

#[tokio::test]
async fn length_required_64_and_too_large_66() {
    let s = Server::start(&["--max-upload-size", "1000"]);
    let api = s.api();
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"abc"))]);
    Api::send(
        api.req(reqwest::Method::POST, "/cloud/v1/files/content?name=chunked.bin")
            .body(reqwest::Body::wrap_stream(chunks)),
    )
    .await
    .assert_error(411, 64);
    api.upload("big.bin", &[0; 1001], None).await.assert_error(413, 66);
    assert_eq!(api.upload("ok.bin", &[0; 1000], None).await.status, 201);
}

#[tokio::test]
async fn stalled_body_is_408_63() {
    let s = Server::start(&["--body-timeout", "1"]);
    let token = s.admin_token(&[]);
    let req = format!(
        "POST /cloud/v1/files/content?name=slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\nonly-part"
    );
    // The connection stays open: the service must give up by itself.
    let mut c = connect(&s.addr());
    c.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0; 4096];
    let n = c.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(body_of(&answer)["code"], 63);
    assert_eq!(temp_files(&s.data).len(), 0, "no temp file left");
}

#[tokio::test]
async fn over_capacity_503_6() {
    let s = Server::start(&["--max-concurrent-requests", "1"]);
    let token = s.admin_token(&[]);
    // Hold the only slot: an upload whose handler is waiting for its body. `Expect:
    // 100-continue` makes the service tell us when the handler starts reading.
    let mut held = connect(&s.addr());
    let req = format!(
        "POST /cloud/v1/files/content?name=held.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    );
    held.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0; 256];
    let n = held.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    let answer = raw(
        &s.addr(),
        format!(
            "GET /cloud/v1/freespace HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(answer.split("\r\n\r\n").nth(1).unwrap(), dual_body(ocloud_wire::ErrorCode::OverCapacity));
    // Finish the held upload: it succeeds, and the slot is free again.
    held.write_all(b"0123456789").unwrap();
    let n = held.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 201"));
    assert_eq!(Api::new(&s.url, &token).get("/cloud/v1/freespace").await.status, 200);
}

#[tokio::test]
async fn internal_error_1_leaks_nothing() {
    let s = Server::start_embedded(&[]); // breaks the local content store
    let api = s.api();
    // Make the content store unwritable: its temp dir and its blob dir become plain files
    // (a small upload is written straight into the blob dir, a large one into the temp dir).
    for dir in ["tmp", "blobs"] {
        std::fs::remove_dir_all(s.data.join(dir)).unwrap();
        std::fs::write(s.data.join(dir), b"not a dir").unwrap();
    }
    for size in [3, (1 << 20) + 1] {
        let r = api.upload("a.txt", &vec![b'a'; size], None).await;
        r.assert_error(500, 1);
        assert!(r.header("x-ocloud-detail").is_none(), "no internals on a 500");
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("tmp") && !body.contains("blobs"), "{body}");
    }
}

/// The exact bytes a client sees for a 404 and for an expired token, in each shape; the upload
/// host's answer to a bad token is its own in every shape.
#[tokio::test]
async fn error_shapes_byte_exact() {
    const NOT_FOUND: &str = r#""code":60,"message":"Resource not found","description":"The requested URI or the requested resource does not exist.""#;
    const INVALID: &str = r#""code":41,"message":"Invalid credentials","description":"The requested service needs credentials, but the ones provided were invalid.""#;
    const EXPIRED: &str = r#""code":42,"message":"Expired credentials","description":"The requested service needs credentials, and the ones provided were out-of-date.""#;
    const UPLOAD_HOST: &str =
        r#"{"error":{"code":"PDK_RP_0004","label":"INVALID_TOKEN","details":"OIDC rejected the token"}}"#;
    let cases: [(&[&str], String, String); 5] = [
        (&[], format!("{{{NOT_FOUND},\"error\":{{{NOT_FOUND}}}}}"), format!("{{{INVALID},\"error\":{{{INVALID}}}}}")),
        (&["--error-shape", "flat"], format!("{{{NOT_FOUND}}}"), format!("{{{INVALID}}}")),
        (
            &["--error-shape", "wrapped"],
            format!("{{\"error\":{{{NOT_FOUND}}}}}"),
            format!("{{\"error\":{{{INVALID}}}}}"),
        ),
        (&["--legacy-errors"], format!("{{\"error\":{{{NOT_FOUND}}}}}"), format!("{{\"error\":{{{INVALID}}}}}")),
        (
            &["--error-shape", "flat", "--expired-token-code", "42"],
            format!("{{{NOT_FOUND}}}"),
            format!("{{{EXPIRED}}}"),
        ),
    ];
    for (args, not_found, expired_body) in cases {
        let s = Server::start(args);
        let r = s.api().get(&format!("/cloud/v1/folders/{}", id("nope/"))).await;
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).into_owned()), (404, not_found), "{args:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let expired = Api::new(&s.url, &s.admin_token(&["--expires-in", "0"]));
        let r = expired.get("/cloud/v1/freespace").await;
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).into_owned()), (401, expired_body), "{args:?}");
        // The upload host: missing, unknown and expired tokens all get its own body.
        let anon = Api::new(&s.url, "");
        let missing = Api::send(anon.http.post(anon.url("/cloud/v1/files/content?name=a.txt")).body("x")).await;
        for r in [
            missing,
            Api::new(&s.url, "OFR-bad").upload("a.txt", b"x", None).await,
            expired.upload("a.txt", b"x", None).await,
        ] {
            assert_eq!(
                (r.status, String::from_utf8_lossy(&r.body).into_owned()),
                (401, UPLOAD_HOST.to_owned()),
                "{args:?}"
            );
        }
    }
    let out = std::process::Command::new(BIN).args(["serve", "--error-shape", "round"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("flat, wrapped, both or legacy"));
}

#[tokio::test]
async fn legacy_error_shapes() {
    let s = Server::start(&["--legacy-errors", "--quota", "10"]);
    let api = s.api();
    let r = api.get(&format!("/cloud/v1/folders/{}", id("nope/"))).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"code": 60, "message": "Resource not found", "description": "The requested URI or the requested resource does not exist."}})
    );
    let r = Api::new(&s.url, "OFR-bad").upload("a.txt", b"x", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "PDK_RP_0004", "label": "INVALID_TOKEN", "details": "OIDC rejected the token"}})
    );
    let r = api.upload("big.bin", &[0; 11], None).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["label"], "NO_SPACE_LEFT");
    let reader = s.api_as("alice", "tests", "openid cloudfullread");
    let r = reader.post_json("/cloud/v1/folders", json!({"name": "x", "parentFolderId": "Lw"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"code": 800, "message": "PDK_CW_0003-FORBIDDEN_ACCESS", "description": "Forbidden access for the requested resource"})
    );
}

#[tokio::test]
async fn blocked_app_51_and_user_52() {
    let s = Server::start(&[]);
    let api = s.api();
    let admin = |args: &[&str]| {
        let out = admin_cmd(&s.data).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    admin(&["app", "disable", "tests"]);
    api.get("/cloud/v1/freespace").await.assert_error(403, 51);
    admin(&["app", "enable", "tests"]);
    admin(&["user", "disable", "alice"]);
    api.get("/cloud/v1/freespace").await.assert_error(403, 52);
    admin(&["user", "enable", "alice"]);
    assert_eq!(api.get("/cloud/v1/freespace").await.status, 200);
    let out = admin_cmd(&s.data).args(["user", "disable", "nobody"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named \"nobody\""));
}
