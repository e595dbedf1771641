//! The legacy Personal Content and Personal Photos APIs (spec §5, §6) against the real
//! service: every action, every listed error, one-time URLs, resizing on decoded images, and
//! what they store seen through the Cloud API.

use ocloud_wire::legacy::{Mum, PhotosAction, StorageXmlEngine, UploadUrlResponse};

use crate::harness::*;

fn xml<T: serde::de::DeserializeOwned>(r: &Resp) -> T {
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{text}");
    quick_xml::de::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn get(s: &Server, path: &str) -> Resp {
    Api::send(http().get(format!("{}{path}", s.url))).await
}

fn multipart(boundary: &str, fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    if let Some((name, filename, data)) = file {
        b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

async fn upload_to(url: &str, cookie: &str, body: Vec<u8>) -> Resp {
    Api::send(
        http()
            .post(url)
            .header("cookie", format!("downloadUploadKey={cookie}"))
            .header("content-type", "multipart/form-data; boundary=BPzi")
            .body(body),
    )
    .await
}

#[tokio::test]
async fn personal_content_two_steps() {
    let s = Server::start(&["--quota", "100000"]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    let data = b"hello world, in two steps".to_vec();
    let r = get(
        &s,
        &format!(
            "/personal/content/v1?action=getContentUploadURL&token={token}&content_name=HelloWorld.jpg&content_size={}",
            data.len()
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-language"), Some("en-US"));
    let granted: UploadUrlResponse = xml(&r);
    let url = granted.url.unwrap();
    let cookie = granted.cookie.unwrap();
    assert_eq!(cookie.name, "downloadUploadKey");
    // GET is refused (and does not spend the URL).
    let g = get(&s, url.strip_prefix(&s.url).unwrap()).await;
    assert_eq!(g.status, 400);
    assert_eq!(xml::<Mum>(&g).response.message, "HTTP Request method must be POST");
    // A wrong cookie spends nothing but is refused.
    let body = multipart("BPzi", &[], Some(("file_content", "HelloWorld.jpg", &data)));
    let ok = upload_to(&url, &cookie.value, body.clone()).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let stored: StorageXmlEngine = xml(&ok);
    let c = stored.uploadcontentdirectlyresponse.content;
    assert_eq!((c.name.as_str(), c.file_size), ("HelloWorld", data.len() as u64));
    assert!(c.creation_date.ends_with("+00:00") && c.creation_date.contains('.'));
    // Visible through the Cloud API, in the app folder.
    let api = Api::new(&s.url, &token);
    let f = api.get(&format!("/cloud/v1/files/{}", id(&format!("{APP}HelloWorld.jpg")))).await.ok();
    assert_eq!(f["size"], data.len());
    assert_eq!(api.download(f["id"].as_str().unwrap()).await.as_ref(), &data[..]);
    // Single use.
    let again = upload_to(&url, &cookie.value, body.clone()).await;
    assert_eq!((again.status, xml::<Mum>(&again).response.message.as_str()), (400, "Can not create content"));
}

#[tokio::test]
async fn personal_content_refusals() {
    let s = Server::start(&["--quota", "1000", "--upload-url-ttl", "0"]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    let ask = |q: String| {
        let s = &s;
        async move { get(s, &format!("/personal/content/v1?{q}")).await }
    };
    for (q, code) in [
        (format!("action=getContentUploadURL&token={token}&content_name=&content_size=3"), "PA003"),
        (format!("action=getContentUploadURL&token={token}&content_name=a/b&content_size=3"), "PA003"),
        (format!("action=getContentUploadURL&token={token}&content_name=a.txt&content_size=x"), "PA004"),
        (format!("action=getContentUploadURL&token={token}&content_name=a.txt"), "PA004"),
        (format!("action=getContentUploadURL&token={token}&content_name=a.txt&content_size=5000"), "MD327"),
        ("action=getContentUploadURL&token=OFR-nope&content_name=a.txt&content_size=3".to_owned(), "MD804"),
        (format!("action=somethingElse&token={token}"), "PA900"),
    ] {
        let r = ask(q.clone()).await;
        assert_eq!(r.status, 500, "{q}");
        let e: UploadUrlResponse = xml(&r);
        assert_eq!(e.error.as_ref().unwrap().code, code, "{q}");
        assert_eq!(e.url.is_some(), code == "MD804", "only MD804 carries the portal URL");
    }
    // Blocked accounts.
    let admin = |args: &[&str]| {
        let out = admin_cmd(&s.data).args(args).output().unwrap();
        assert!(out.status.success());
    };
    let blocked = |code: &'static str| {
        let (s, token) = (&s, token.clone());
        async move {
            let r = get(
                s,
                &format!(
                    "/personal/content/v1?action=getContentUploadURL&token={token}&content_name=a.txt&content_size=3"
                ),
            )
            .await;
            assert_eq!(r.status, 500);
            assert_eq!(xml::<UploadUrlResponse>(&r).error.unwrap().code, code);
        }
    };
    admin(&["user", "disable", "alice"]);
    blocked("MD803").await;
    admin(&["user", "enable", "alice"]);
    admin(&["app", "disable", "tests"]);
    blocked("MD113").await;
    admin(&["app", "enable", "tests"]);
    // Expired (TTL 0): refused on upload.
    let r = ask(format!("action=getContentUploadURL&token={token}&content_name=a.txt&content_size=3")).await;
    let g: UploadUrlResponse = xml(&r);
    let up = upload_to(
        &g.url.unwrap(),
        &g.cookie.unwrap().value,
        multipart("BPzi", &[], Some(("file_content", "a.txt", b"abc"))),
    )
    .await;
    assert_eq!(xml::<Mum>(&up).response.message, "Can not create content");

    let s = Server::start(&[]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    let grant = |name: &str, size: usize| {
        let (s, token, name) = (&s, token.clone(), name.to_owned());
        async move {
            let g: UploadUrlResponse = xml(&get(s, &format!("/personal/content/v1?action=getContentUploadURL&token={token}&content_name={name}&content_size={size}")).await);
            (g.url.unwrap(), g.cookie.unwrap().value)
        }
    };
    // Missing part; size mismatch; wrong cookie.
    let (url, cookie) = grant("a.txt", 3).await;
    let r = upload_to(&url, &cookie, multipart("BPzi", &[("other", "x")], None)).await;
    assert_eq!(xml::<Mum>(&r).response.message, "Parameter file_content is not found in uploadcontent");
    let (url, cookie) = grant("a.txt", 3).await;
    let r = upload_to(&url, &cookie, multipart("BPzi", &[], Some(("file_content", "a.txt", b"abcdef")))).await;
    assert_eq!(xml::<Mum>(&r).response.message, "Error while uploading content");
    let (url, cookie) = grant("a.txt", 3).await;
    let r = upload_to(&url, "wrong", multipart("BPzi", &[], Some(("file_content", "a.txt", b"abc")))).await;
    assert_eq!((r.status, xml::<Mum>(&r).response.message.as_str()), (400, "Can not create content"));
    let no_cookie = http().post(&url).header("content-type", "multipart/form-data; boundary=BPzi");
    let r = Api::send(no_cookie.body(multipart("BPzi", &[], Some(("file_content", "a.txt", b"abc"))))).await;
    assert_eq!((r.status, xml::<Mum>(&r).response.message.as_str()), (400, "Can not create content"));
    assert_eq!(Api::new(&s.url, &token).root("").await["files"], serde_json::json!([]), "nothing stored");
    // Those refusals did not use the URL up: its owner's cookie still works, once.
    let r = upload_to(&url, &cookie, multipart("BPzi", &[], Some(("file_content", "a.txt", b"abc")))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = upload_to(&url, &cookie, multipart("BPzi", &[], Some(("file_content", "a.txt", b"abc")))).await;
    assert_eq!((r.status, xml::<Mum>(&r).response.message.as_str()), (400, "Can not create content"));
}

async fn photos(s: &Server, q: &str) -> (u16, PhotosAction) {
    let r = get(s, &format!("/personal/photos/v1?{q}")).await;
    (r.status, xml(&r))
}

async fn add_photo(
    s: &Server,
    token: &str,
    album: Option<&str>,
    title: &str,
    filename: &str,
    data: &[u8],
) -> (u16, PhotosAction) {
    let mut fields = vec![("action", "AddMediaObj"), ("F_title", title), ("token", token)];
    if let Some(a) = album {
        fields.insert(1, ("Album", a));
    }
    let body = multipart("---------------------------41184676334", &fields, Some(("F", filename, data)));
    let r = Api::send(
        http()
            .post(format!("{}/personal/photos/v1", s.url))
            .header("content-type", "multipart/form-data; boundary=---------------------------41184676334")
            .body(body),
    )
    .await;
    (r.status, xml(&r))
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x % 255) as u8, 10, 200]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

#[tokio::test]
async fn personal_photos_every_action() {
    let s = Server::start(&[]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    let (st, list) = photos(&s, &format!("action=GetAlbumsList&token={token}")).await;
    assert_eq!((st, list.code, list.version.as_str()), (200, 3201, "2.0"));
    assert_eq!(list.albums.unwrap().count, 0);
    let (_, created) = photos(&s, &format!("action=CreateAlbum&TIT=Summer%202024&token={token}")).await;
    assert_eq!(created.code, 100);
    let album = created.album.unwrap();
    assert_eq!(album.title, "Summer 2024");
    let (_, dup) = photos(&s, &format!("action=CreateAlbum&title=Summer%202024&token={token}")).await;
    assert_eq!(dup.album.unwrap().title, "Summer 2024-1");
    // The seed's typo `?actionGetAlbum`, and the lower-case `album`.
    let (_, got) = photos(&s, &format!("actionGetAlbum&album={}&token={token}", album.cyphered_id)).await;
    assert_eq!((got.code, got.album.unwrap().title.as_str()), (105, "Summer 2024"));

    // AddMediaObj: four formats recognised from the bytes, whatever the name.
    let (st, added) = add_photo(&s, &token, Some(&album.cyphered_id), "Beach", "beach.jpg", &jpeg(1200, 600)).await;
    assert_eq!((st, added.code), (200, 3201));
    let m = added.media_object.unwrap();
    assert_eq!((m.width, m.height, m.mime_type.as_str(), m.title.as_str()), (1200, 600, "image/jpeg", "Beach"));
    for (fmt, mime) in [
        (image::ImageFormat::Png, "image/png"),
        (image::ImageFormat::Gif, "image/gif"),
        (image::ImageFormat::Bmp, "image/bmp"),
    ] {
        let mut data = Vec::new();
        image::RgbaImage::new(30, 20).write_to(&mut std::io::Cursor::new(&mut data), fmt).unwrap();
        let (_, a) = add_photo(&s, &token, Some(&album.cyphered_id), mime, "named.dat", &data).await;
        let m = a.media_object.unwrap();
        assert_eq!((m.mime_type.as_str(), m.width, m.height), (mime, 30, 20));
    }
    let (st, bad) = add_photo(&s, &token, Some(&album.cyphered_id), "text", "fake.jpg", b"not a picture at all").await;
    assert_eq!((st, bad.code, bad.error_code), (400, 200, Some(1401)));
    // Without Album: the inbox.
    let (_, inbox) = add_photo(&s, &token, None, "Loose", "loose.png", &png(8, 8)).await;
    let albums = inbox.albums.unwrap();
    assert!(albums.album.iter().any(|a| a.title == "Inbox" && a.media_objects.count == 1));
    assert!(albums.album.iter().any(|a| a.title == "Summer 2024" && a.media_objects.count == 4));

    let (_, list) = photos(&s, &format!("actionGetMediaObjsList&Album={}&token={token}", album.cyphered_id)).await;
    assert_eq!(list.code, 3204);
    let objs = list.media_objects.unwrap().media_object;
    assert_eq!(objs.len(), 4);
    let beach = objs.iter().find(|o| o.title == "Beach").unwrap().clone();
    let (_, one) = photos(&s, &format!("action=GetMediaObj&MOB={}&token={token}", beach.cyphered_id)).await;
    assert_eq!((one.code, one.media_object.unwrap()), (3205, beach.clone()));

    // baseUrl serves the photo; width/height resize, aspect kept, never upscaled.
    let base = format!("{}&token={token}", beach.base_url);
    let original = Api::send(http().get(&base)).await;
    assert_eq!(image::load_from_memory(&original.body).unwrap().width(), 1200);
    for (w, h, ew, eh) in [(100, 100, 100, 50), (500, 500, 500, 250), (300, 1000, 300, 150), (5000, 5000, 1200, 600)] {
        let r = Api::send(http().get(format!("{base}&width={w}&height={h}"))).await;
        assert_eq!(r.status, 200);
        let img = image::load_from_memory(&r.body).unwrap();
        assert_eq!((img.width(), img.height()), (ew, eh), "{w}x{h}");
    }
    let anon = Api::send(http().get(&beach.base_url)).await;
    assert_eq!((anon.status, xml::<PhotosAction>(&anon).error_code), (400, Some(1106)));

    // The Cloud API sees albums as folders and photos as files.
    let api = Api::new(&s.url, &token);
    let folder = api.get(&format!("/cloud/v1/folders/{}", id(&format!("{APP}Photos/Summer 2024/")))).await.ok();
    assert_eq!(folder["files"].as_array().unwrap().len(), 4);
    assert!(folder["files"].as_array().unwrap().iter().any(|f| f["name"] == "beach.jpg" && f["type"] == "PICTURE"));
}

#[tokio::test]
async fn personal_photos_errors() {
    let s = Server::start(&[]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    for (q, status, code) in [
        ("action=GetAlbumsList&token=OFR-bad".to_owned(), 400, 1106),
        ("action=GetAlbumsList".to_owned(), 400, 1106),
        (format!("token={token}"), 400, 1101),
        (format!("action=CreateAlbum&token={token}"), 400, 1101),
        (format!("action=GetAlbum&token={token}"), 400, 1101),
        (format!("action=GetAlbum&Album=ffff&token={token}"), 404, 1201),
        (format!("action=GetMediaObjsList&Album=nothex&token={token}"), 404, 1201),
        (format!("action=GetMediaObj&MOB=ffff&token={token}"), 404, 1301),
        (format!("action=Teleport&token={token}"), 400, 1102),
    ] {
        let (st, a) = photos(&s, &q).await;
        assert_eq!((st, a.code, a.error_code), (status, 200, Some(code)), "{q}");
        assert!(a.error_msg.is_some());
    }
    // Another user's album is unknown to this one.
    let (_, created) = photos(&s, &format!("action=CreateAlbum&TIT=mine&token={token}")).await;
    let bob = s.admin_token(&["--user", "bob", "--app", "tests"]);
    let (st, a) =
        photos(&s, &format!("action=GetAlbum&Album={}&token={bob}", created.album.unwrap().cyphered_id)).await;
    assert_eq!((st, a.error_code), (404, Some(1201)));
}

#[test]
fn photos_and_content_from_the_cli() {
    let s = Server::start(&[]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(BIN)
            .args(args)
            .env("OCLOUD_CONFIG", config.path().join("c.toml"))
            .env("OCLOUD_API_URL", &s.url)
            .env("OCLOUD_TOKEN", &token)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&run(&a)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let pic = dir.path().join("beach.jpg");
    std::fs::write(&pic, jpeg(800, 400)).unwrap();
    let album = json(&["photos", "create-album", "Trip"]);
    let album_id = album["id"].as_str().unwrap().to_owned();
    let added = json(&["photos", "add", pic.to_str().unwrap(), "--album", &album_id, "--title", "Beach"]);
    let media = added[0]["id"].as_str().unwrap().to_owned();
    assert_eq!((added[0]["width"].as_u64(), added[0]["title"].as_str()), (Some(800), Some("Beach")));
    let albums = json(&["photos", "albums"]);
    assert_eq!(albums[0]["mediaObjects"], 1);
    assert_eq!(json(&["photos", "ls", &album_id])[0]["id"], media.as_str());
    assert_eq!(json(&["photos", "info", &media])["mimeType"], "image/jpeg");
    let small = dir.path().join("small.jpg");
    run(&["photos", "get", &media, "--width", "100", "--height", "100", "-o", small.to_str().unwrap()]);
    let img = image::load_from_memory(&std::fs::read(&small).unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (100, 50));

    let doc = dir.path().join("HelloWorld.txt");
    std::fs::write(&doc, b"content api").unwrap();
    let c = json(&["content", "upload", doc.to_str().unwrap()]);
    assert_eq!((c["name"].as_str(), c["fileSize"].as_u64()), (Some("HelloWorld"), Some(11)));
    assert_eq!(run(&["cat", "/HelloWorld.txt"]), "content api");
}

/// Deleting a photo removes its content and every rendition it had: thumb and preview of the
/// Cloud API, 100 and 500 pixels of the Photos API.
#[tokio::test]
async fn deleting_a_photo_leaves_no_rendition() {
    let s = Server::start(&[]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    let (_, added) = add_photo(&s, &token, None, "Beach", "beach.jpg", &jpeg(1200, 600)).await;
    let m = added.media_object.unwrap();
    let base = format!("{}&token={token}", m.base_url);
    for size in [100, 500] {
        let r = Api::send(http().get(format!("{base}&width={size}&height={size}"))).await;
        assert_eq!(r.status, 200);
    }
    let api = Api::new(&s.url, &token);
    let inbox = api.get(&format!("/cloud/v1/folders/{}", id(&format!("{APP}Photos/Inbox/")))).await.ok();
    let file = api.get(&format!("/cloud/v1/files/{}", inbox["files"][0]["id"].as_str().unwrap())).await.ok();
    for url in [&file["thumbUrl"], &file["previewUrl"]] {
        assert_eq!(api.get(url.as_str().unwrap()).await.status, 200);
    }
    let blob_files = || stored_objects(&s.data);
    assert_eq!(blob_files().len(), 5, "content and four renditions: {:?}", blob_files());
    assert_eq!(api.delete(&format!("/cloud/v1/files/{}", file["id"].as_str().unwrap())).await.status, 204);
    assert_eq!(blob_files(), Vec::<String>::new());
}

/// A form body over 64 KiB is refused with a clear error, never cut and read in part.
#[tokio::test]
async fn legacy_form_bodies_over_64_kib_are_refused() {
    let s = Server::start(&[]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    // The token comes last: a reader that stopped at 64 KiB would act without it.
    let body = format!("action=GetAlbumsList&pad={}&token={token}", "x".repeat(70 * 1024));
    let post = |path: &str| {
        http()
            .post(format!("{}{path}", s.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
    };
    let r = Api::send(post("/personal/photos/v1")).await;
    let x: PhotosAction = xml(&r);
    assert_eq!((r.status, x.error_code), (413, Some(1103)));
    assert!(x.error_msg.unwrap_or_default().contains("over 64 KiB"));
    let r = Api::send(post("/personal/content/v1")).await;
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("<code>PA900</code>"));
    assert!(String::from_utf8_lossy(&r.body).contains("form body over 64 KiB"));
    // Under the limit, the same call works.
    let small = format!("action=GetAlbumsList&token={token}");
    let r = Api::send(
        http()
            .post(format!("{}/personal/photos/v1", s.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(small),
    )
    .await;
    assert_eq!((r.status, xml::<PhotosAction>(&r).code), (200, 3201));
}

/// One rate limit per (app, user) for every surface: the legacy APIs spend from the same
/// bucket as the Cloud API, and are refused when it is empty.
#[tokio::test]
async fn legacy_calls_count_against_the_rate_limit() {
    let s = Server::start(&["--rate-limit", "3"]);
    let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
    assert_eq!(Api::new(&s.url, &token).get("/cloud/v1/freespace").await.status, 200);
    let (st, _) = photos(&s, &format!("action=GetAlbumsList&token={token}")).await;
    assert_eq!(st, 200);
    let r = get(
        &s,
        &format!("/personal/content/v1?action=getContentUploadURL&token={token}&content_name=a.txt&content_size=1"),
    )
    .await;
    assert_eq!(r.status, 200);
    // The bucket of 3 is empty now, on every surface.
    let (st, refused) = photos(&s, &format!("action=GetAlbumsList&token={token}")).await;
    assert_eq!((st, refused.error_code), (403, Some(1104)));
    let r = get(
        &s,
        &format!("/personal/content/v1?action=getContentUploadURL&token={token}&content_name=a.txt&content_size=1"),
    )
    .await;
    assert!(String::from_utf8_lossy(&r.body).contains("rate limit exceeded"), "{:?}", r.body);
    Api::new(&s.url, &token).get("/cloud/v1/freespace").await.assert_error(403, 53);
}
