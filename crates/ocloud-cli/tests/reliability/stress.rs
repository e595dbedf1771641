//! Many clients on one tree at once (folders made, files uploaded, renamed, moved, copied,
//! deleted, in random order): no answer is a 5xx, and afterwards the tree invariants hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;
use crate::invariants;

const QUOTA: u64 = 5 << 30;

async fn client(api: Api, task: u64, until: Instant, ops: Arc<AtomicU64>, server_errors: Arc<AtomicU64>) {
    let mut x = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        // A random folder and a random item of it, from a fresh listing.
        let Ok(flat) = api.http.get(api.url("/cloud/v1/folders?flat")).bearer_auth(&api.token).send().await else {
            return;
        };
        let flat: serde_json::Value = flat.json().await.unwrap_or_default();
        let root = flat["id"].as_str().unwrap_or_default().to_owned();
        let folders: Vec<String> = std::iter::once(root.clone())
            .chain(
                flat["subfolders"].as_array().into_iter().flatten().filter_map(|f| f["id"].as_str().map(str::to_owned)),
            )
            .collect();
        let files: Vec<String> = flat["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["id"].as_str().map(str::to_owned))
            .collect();
        let folder = folders[(rnd() % folders.len() as u64) as usize].clone();
        let item = if rnd() % 2 == 0 && !files.is_empty() {
            files[(rnd() % files.len() as u64) as usize].clone()
        } else {
            folders[(rnd() % folders.len() as u64) as usize].clone()
        };
        let kind = if files.contains(&item) { "files" } else { "folders" };
        let name = format!("t{task}-{n}");
        let req = match rnd() % 6 {
            0 => api.http.post(api.url("/cloud/v1/folders")).json(&json!({"name": name, "parentFolderId": folder})),
            1 | 2 => {
                let body = vec![(n % 251) as u8; (rnd() % 20_000) as usize];
                api.http.post(api.url(&format!("/cloud/v1/files/content?name={name}.bin&folder={folder}"))).body(body)
            }
            3 => api.http.post(api.url(&format!("/cloud/v1/{kind}/{item}"))).json(&json!({"name": name})),
            4 => api
                .http
                .post(api.url(&format!("/cloud/v1/{kind}/{item}")))
                .json(&json!({"parentFolderId": folder, "clone": rnd() % 2 == 0})),
            _ => api.http.delete(api.url(&format!("/cloud/v1/{kind}/{item}"))),
        };
        let Ok(r) = req.bearer_auth(&api.token).send().await else { return };
        ops.fetch_add(1, Ordering::Relaxed);
        if r.status().is_server_error() {
            server_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("5xx: {} {:?}", r.status(), r.text().await);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_on_one_tree_keep_every_invariant() {
    let (clients, seconds) = if crate::long() { (16, 60) } else { (4, 3) };
    let s = Server::start(&["--no-dev-account"]);
    let api = s.api();
    let (ops, server_errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> =
        (0..clients).map(|t| tokio::spawn(client(api.clone(), t, until, ops.clone(), server_errors.clone()))).collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server_errors.load(Ordering::Relaxed), 0, "answers 5xx under concurrency");
    let files = invariants::check(&api, QUOTA).await;
    let ops = ops.load(Ordering::Relaxed);
    assert!(ops > clients, "only {ops} operations ran");
    eprintln!(
        "stress: {clients} clients × {seconds} s, {ops} operations, {} files at the end, invariants hold",
        files.len()
    );
}
