//! ocloud-client against the real service: every call, the OAuth flow through the local
//! listener, refresh and replay, backoff on the rate limit, the legacy error shapes, paths,
//! streaming transfers with progress and resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::TryStreamExt;
use ocloud_client::{ApiManager, Endpoints, Error, FileTokenStore, ListParams, RetryPolicy};

use crate::harness::*;
use crate::oauth::{Setup, admin};

/// A client for `alice` through a bare access token (no OAuth).
fn client_with_token(s: &Server, token: &str) -> ApiManager {
    let api = ApiManager::builder("unused", "unused", "http://127.0.0.1:9/cb")
        .endpoints(Endpoints::single(&s.url))
        .build()
        .unwrap();
    api.init_with_access_token(token);
    api
}

/// Logs in through the real pages and the client's local listener.
async fn login(s: &Setup, api: &ApiManager) {
    let url = api.init_authorize_code_process("st4te").await.unwrap();
    let mut b = s.browser();
    let path = url.as_str().strip_prefix(&s.server.url).unwrap().to_owned();
    let mut page = b.get(&path).await;
    page = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    page = b.submit(&page, "/oauth/v2/consent", &[("decision", "allow")]).await;
    let location = page.header("location").unwrap().to_owned();
    // The browser follows the redirect to the client's listener.
    let visit = tokio::spawn(async move { reqwest::get(location).await.unwrap().text().await.unwrap() });
    let code = api.wait_and_terminate_authorize_code_process(Some(std::time::Duration::from_secs(30))).await.unwrap();
    let answer = visit.await.unwrap();
    assert!(answer.contains("\"state\":\"st4te\""), "the listener answers the parameters as JSON: {answer}");
    api.init_with_authorize_code(&code).await.unwrap();
}

fn oauth_setup(extra: &[&str], rate: Option<&str>) -> (Setup, String) {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let s = Setup::new(extra, "openid cloud offline_access", rate);
    let app: serde_json::Value = serde_json::from_str(&admin(
        &s.server,
        &["app", "add", "client-tests", "--redirect-uri", &redirect, "--json"],
        None,
    ))
    .unwrap();
    let s = Setup {
        client_id: app["client_id"].as_str().unwrap().to_owned(),
        secret: app["client_secret"].as_str().unwrap().to_owned(),
        ..s
    };
    (s, redirect)
}

#[tokio::test]
async fn oauth_flow_through_the_local_listener_and_token_file() {
    let (s, redirect) = oauth_setup(&[], None);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileTokenStore::new(dir.path().join("tokens.json")));
    let api = ApiManager::builder(&s.client_id, &s.secret, &redirect)
        .endpoints(Endpoints::single(&s.server.url))
        .token_store(store.clone())
        .build()
        .unwrap();
    login(&s, &api).await;
    assert_eq!(api.freespace().await.unwrap(), 5 << 30);
    let root = api.folders().get(None, &ListParams::default()).await.unwrap();
    assert_eq!(root.name, "client-tests");
    // A second manager on the same token file needs no login.
    let again = ApiManager::builder(&s.client_id, &s.secret, &redirect)
        .endpoints(Endpoints::single(&s.server.url))
        .token_store(store.clone())
        .build()
        .unwrap();
    assert_eq!(again.freespace().await.unwrap(), 5 << 30);
    // init_with_token starts from a refresh token alone.
    let fresh = ApiManager::builder(&s.client_id, &s.secret, &redirect)
        .endpoints(Endpoints::single(&s.server.url))
        .build()
        .unwrap();
    fresh.init_with_token(&api.refresh_token_value().unwrap()).await.unwrap();
    assert_eq!(fresh.freespace().await.unwrap(), 5 << 30);
    // A denied consent is reported with the service's words.
    admin(&s.server, &["user", "add", "bob", "--password-stdin"], Some("bob pass\n"));
    let denied = ApiManager::builder(&s.client_id, &s.secret, &redirect)
        .endpoints(Endpoints::single(&s.server.url))
        .build()
        .unwrap();
    let url = denied.init_authorize_code_process("x").await.unwrap();
    let mut b = s.browser();
    let mut page = b.get(url.as_str().strip_prefix(&s.server.url).unwrap()).await;
    page = b.submit(&page, "/oauth/v2/login", &[("username", "bob"), ("password", "bob pass")]).await;
    page = b.submit(&page, "/oauth/v2/consent", &[("decision", "deny")]).await;
    let location = page.header("location").unwrap().to_owned();
    let visit = tokio::spawn(async move { reqwest::get(location).await.map(|_| ()) });
    let err = denied.wait_and_terminate_authorize_code_process(None).await.unwrap_err();
    let _ = visit.await;
    assert_eq!(err.to_string(), "authorization failed: access_denied: consent denied");
}

#[tokio::test]
async fn rejected_token_is_refreshed_once_and_replayed() {
    let (s, redirect) = oauth_setup(&[], None);
    let api = ApiManager::builder(&s.client_id, &s.secret, &redirect)
        .endpoints(Endpoints::single(&s.server.url))
        .build()
        .unwrap();
    login(&s, &api).await;
    let before = api.tokens().unwrap();
    // Revoke the access token behind the client's back: the next call gets 401/41.
    let r = http()
        .post(format!("{}/oauth/v2/revoke", s.server.url))
        .basic_auth(&s.client_id, Some(&s.secret))
        .form(&[("token", before.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api.freespace().await.unwrap(), 5 << 30);
    let after = api.tokens().unwrap();
    assert_ne!(after.access_token, before.access_token);
    assert_eq!(after.refresh_token, before.refresh_token, "Orange keeps the refresh token");
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_ahead() {
    let (s, redirect) = oauth_setup(&["--token-ttl", "5"], None);
    let api = ApiManager::builder(&s.client_id, &s.secret, &redirect)
        .endpoints(Endpoints::single(&s.server.url))
        .build()
        .unwrap();
    login(&s, &api).await;
    let first = api.tokens().unwrap().access_token;
    api.freespace().await.unwrap();
    assert_ne!(api.tokens().unwrap().access_token, first, "a token expiring within 30 s is refreshed before use");
}

#[tokio::test]
async fn rate_limit_is_waited_out() {
    let s = Server::start(&[]);
    // An app limited to 30 calls a minute: the 31st waits for Retry-After (2 s) and succeeds.
    admin(&s, &["app", "add", "limited", "--redirect-uri", "http://127.0.0.1:9/cb", "--rate-limit", "30"], None);
    let token = s.admin_token(&["--user", "alice", "--app", "limited"]);
    let strict = ApiManager::builder("x", "y", "http://127.0.0.1:9/cb")
        .endpoints(Endpoints::single(&s.url))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    strict.init_with_access_token(&token);
    // The bucket of 30 refills one call every 2 s: call until it is empty rather than assume
    // 30 calls fit in 2 s on a loaded machine (bounded, so a limit that never bites fails).
    let mut served = 0;
    let err = loop {
        match strict.freespace().await {
            Ok(_) if served < 100 => served += 1,
            Ok(_) => panic!("100 calls and the limit of 30 a minute never refused one"),
            Err(e) => break e,
        }
    };
    assert!(served >= 30, "refused after {served} calls");
    let api_err = err.api().unwrap();
    assert_eq!((api_err.status, api_err.code), (403, Some(53)));
    assert!(err.is_retryable());
    assert!(api_err.retry_after.unwrap() >= 1);
    let patient = client_with_token(&s, &token);
    assert_eq!(patient.freespace().await.unwrap(), 5 << 30);
}

#[tokio::test]
async fn every_call_and_paths() {
    let s = Server::start(&[]);
    let api = client_with_token(&s, &s.admin_token(&["--user", "alice", "--app", "tests"]));
    let root = api.folders().get(None, &ListParams::default()).await.unwrap();
    let a = api.folders().create("a", None).await.unwrap();
    let b = api.folders().create("b", Some(&root.id)).await.unwrap();
    let deep = api.create_folder_all("/a/x/y").await.unwrap();
    assert_eq!(api.resolve("/a/x/y").await.unwrap().id, deep);
    assert_eq!(api.create_folder_all("/a/x/y").await.unwrap(), deep, "idempotent");

    // Upload from a path with progress, then from a reader.
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let up = api
        .files()
        .upload_path(
            &src,
            Some(&deep),
            None,
            Some(Arc::new(move |n: u64| {
                counter.fetch_add(n, Ordering::Relaxed);
            })),
        )
        .await
        .unwrap();
    assert_eq!(up.file_name, "big.bin");
    assert_eq!(sent.load(Ordering::Relaxed), 1_000_000);
    let r = api
        .files()
        .upload_reader(std::io::Cursor::new(b"hello".to_vec()), "été.txt", 5, Some(&a.id), None)
        .await
        .unwrap();
    assert_eq!(r.file_name, "été.txt");
    let e = api.resolve("/a/été.txt").await.unwrap();
    assert_eq!((e.is_dir, e.size), (false, 5));

    // Download to a path, with progress, and to a writer from an offset.
    let dest = dir.path().join("out/big.bin");
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let n = api
        .files()
        .download(
            &up.file_id,
            &dest,
            Some(Arc::new(move |n: u64| {
                g.fetch_add(n, Ordering::Relaxed);
            })),
        )
        .await
        .unwrap();
    assert_eq!(n, 1_000_000);
    assert_eq!(got.load(Ordering::Relaxed), 1_000_000);
    assert_eq!(sha256(&std::fs::read(&dest).unwrap()), sha256(&data));
    let info = api.files().get(&up.file_id).await.unwrap();
    let mut tail = Vec::new();
    api.download_to_writer(info.download_url.as_deref().unwrap(), 999_990, &mut tail, None).await.unwrap();
    assert_eq!(tail, &data[999_990..]);

    // Resume: a part left by an interrupted download is completed with a range.
    let resumed = dir.path().join("resumed.bin");
    std::fs::write(ocloud_client::partial_path(&resumed), &data[..400_000]).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let sn = seen.clone();
    api.download_to_path(
        info.download_url.as_deref().unwrap(),
        &resumed,
        Some(Arc::new(move |n: u64| {
            sn.fetch_add(n, Ordering::Relaxed);
        })),
    )
    .await
    .unwrap();
    assert_eq!(sha256(&std::fs::read(&resumed).unwrap()), sha256(&data));
    assert!(!ocloud_client::partial_path(&resumed).exists());

    // Rename, move, copy for files and folders; ids change and the path cache follows.
    let renamed = api.files().rename(&r.file_id, "ete.txt").await.unwrap();
    assert_eq!(renamed.name, "ete.txt");
    assert!(matches!(api.resolve("/a/été.txt").await, Err(Error::NotFound(_))));
    let moved = api.files().move_to(&renamed.id, &b.id).await.unwrap();
    assert_eq!(api.resolve("/b/ete.txt").await.unwrap().id, moved.id);
    let copied = api.files().copy_to(&moved.id, &a.id, Some("copy.txt")).await.unwrap();
    assert_eq!(copied.parent_id.as_deref(), Some(a.id.as_str()));
    let fr = api.folders().rename(&b.id, "b2").await.unwrap();
    let fm = api.folders().move_to(&fr.id, &a.id).await.unwrap();
    let fc = api.folders().copy_to(&fm.id, &root.id, None).await.unwrap();
    assert_eq!(fc.name, "b2");
    assert_eq!(api.resolve("/a/b2/ete.txt").await.unwrap().size, 5);

    // Walk: every entry once, folders before their content.
    let all: Vec<(String, ocloud_client::Entry)> = api.walk(&root.id).try_collect().await.unwrap();
    let paths: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    for p in ["a/", "b2/", "a/x/", "a/b2/", "a/x/y/", "a/x/y/big.bin", "a/b2/ete.txt", "a/copy.txt", "b2/ete.txt"] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert!(
        paths.iter().position(|p| *p == "a/x/").unwrap() < paths.iter().position(|p| *p == "a/x/y/big.bin").unwrap()
    );

    // Deletes; a listing with parameters.
    api.files().delete(&copied.id).await.unwrap();
    api.folders().delete(&fc.id).await.unwrap();
    let flat = api.folders().get(None, &ListParams { flat: true, tree: true, ..Default::default() }).await.unwrap();
    assert!(flat.files.is_empty() && flat.subfolders.iter().any(|f| f.name == "y"));
    let e = api.files().get(&copied.id).await.unwrap_err();
    assert!(e.api().unwrap().is_not_found());
    assert_eq!(e.api().unwrap().code, Some(60));
    assert!(api.freespace().await.unwrap() < 5 << 30);
}

#[tokio::test]
async fn legacy_error_shapes_are_understood() {
    let s = Server::start(&["--legacy-errors"]);
    let api = client_with_token(&s, &s.admin_token(&["--user", "alice", "--app", "tests"]));
    let e = api.files().get(&id("nope.txt")).await.unwrap_err();
    assert_eq!((e.api().unwrap().status, e.api().unwrap().code), (404, Some(60)), "wrapped shape");
    let bad = client_with_token(&s, "OFR-bad");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let e = bad.files().upload_path(&dir.path().join("f"), None, None, None).await.unwrap_err();
    let a = e.api().unwrap();
    assert!(a.is_token_rejected(), "{a:?}");
    assert_eq!(a.legacy_code.as_deref(), Some("PDK_RP_0004"));
    let e = bad.freespace().await.unwrap_err();
    assert_eq!(e.api().unwrap().code, Some(41));
}
