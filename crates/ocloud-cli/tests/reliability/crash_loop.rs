//! `kill -9` in the middle of concurrent uploads, copies and deletes, round after round. After
//! each kill, before the restart: SQLite's `integrity_check`. After the restart: every
//! acknowledged file is listed and byte-identical, every acknowledged delete stays deleted,
//! a file whose upload was cut is either absent or whole (never partial), no temp file is
//! left, and the tree invariants hold (freespace exact among them).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::invariants;

const QUOTA: u64 = 5 << 30;

/// What the clients know for sure, and what they cannot know (cut by the kill).
#[derive(Default)]
struct Ledger {
    /// Acknowledged and not deleted since: name → sha256.
    live: BTreeMap<String, String>,
    /// Acknowledged deletes: names that must not come back.
    deleted: Vec<String>,
    /// Sent but not acknowledged: name → sha256 of what was sent.
    unknown: BTreeMap<String, String>,
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn client(api: Api, ledger: Arc<Mutex<Ledger>>, round: u32, task: u32) {
    for n in 0u64.. {
        let name = format!("r{round}-t{task}-{n}.bin");
        let seed = (u64::from(round) << 40) ^ (u64::from(task) << 32) ^ n;
        match n % 5 {
            // Copy a live file, or delete one: both acknowledged or not.
            3 | 4 => {
                let pick = {
                    ledger.lock().unwrap().live.iter().nth((seed % 7) as usize).map(|(k, v)| (k.clone(), v.clone()))
                };
                let Some((victim, hash)) = pick else { continue };
                let vid = id(&format!("{APP}{victim}"));
                if n % 5 == 3 {
                    let copy = format!("{name}.copy");
                    ledger.lock().unwrap().unknown.insert(copy.clone(), hash.clone());
                    let body = json!({"name": copy, "clone": true, "parentFolderId": id(APP)});
                    let Ok(r) = api
                        .http
                        .post(api.url(&format!("/cloud/v1/files/{vid}")))
                        .bearer_auth(&api.token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() == 200 {
                        let mut l = ledger.lock().unwrap();
                        l.unknown.remove(&copy);
                        l.live.insert(copy, hash);
                    }
                } else {
                    {
                        let mut l = ledger.lock().unwrap();
                        l.live.remove(&victim);
                        l.unknown.insert(victim.clone(), hash);
                    }
                    let Ok(r) = api
                        .http
                        .delete(api.url(&format!("/cloud/v1/files/{vid}")))
                        .bearer_auth(&api.token)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() == 204 {
                        let mut l = ledger.lock().unwrap();
                        l.unknown.remove(&victim);
                        l.deleted.push(victim);
                    }
                }
            }
            _ => {
                let data = content(seed, 1000 + (seed % 300_000) as usize);
                let hash = sha256(&data);
                ledger.lock().unwrap().unknown.insert(name.clone(), hash.clone());
                let url = api.url(&format!("/cloud/v1/files/content?name={name}"));
                let Ok(r) = api.http.post(url).bearer_auth(&api.token).body(data).send().await else { return };
                if r.status() == 201 {
                    let mut l = ledger.lock().unwrap();
                    l.unknown.remove(&name);
                    l.live.insert(name, hash);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_uploads_copies_and_deletes_loses_nothing_acknowledged() {
    let (rounds, clients) = if crate::long() { (20, 8) } else { (3, 4) };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut token = String::new();
    let mut files_checked = 0;
    for round in 0..rounds {
        let mut s = Server::start_in(&data, &["--no-dev-account"]);
        if token.is_empty() {
            token = s.admin_token(&["--user", "alice", "--app", "tests", "--expires-in", "86400"]);
        }
        let api = Api::new(&s.url, &token);
        // After the restart: the checks of the module docs.
        assert_eq!(temp_files(&data).len(), 0, "temp files left after restart");
        let files = invariants::check(&api, QUOTA).await;
        // A copy of the ledger: the checks below wait on the service.
        let (live, deleted, unknown) = {
            let l = ledger.lock().unwrap();
            (l.live.clone(), l.deleted.clone(), l.unknown.clone())
        };
        for (name, hash) in &live {
            let fid = invariants::find(&files, name).unwrap_or_else(|| panic!("acknowledged {name} lost"));
            assert_eq!(&sha256(&api.download(fid).await), hash, "{name} changed");
            files_checked += 1;
        }
        for name in &deleted {
            assert!(invariants::find(&files, name).is_none(), "deleted {name} came back");
        }
        for (fid, (name, _)) in &files {
            if live.contains_key(name) {
                continue;
            }
            let sent = unknown.get(name).unwrap_or_else(|| panic!("{name}: a file nobody uploaded"));
            assert_eq!(&sha256(&api.download(fid).await), sent, "{name} is partial");
        }
        {
            // What was cut is now known: present (whole, checked above) or absent.
            let mut l = ledger.lock().unwrap();
            let cut: Vec<(String, String)> = std::mem::take(&mut l.unknown).into_iter().collect();
            for (name, hash) in cut {
                if invariants::find(&files, &name).is_some() {
                    l.live.insert(name, hash);
                } else {
                    l.deleted.push(name);
                }
            }
        }
        // Load, then a kill at a moment that varies with the round.
        let tasks: Vec<_> = (0..clients).map(|t| tokio::spawn(client(api.clone(), ledger.clone(), round, t))).collect();
        tokio::time::sleep(Duration::from_millis(150 + u64::from(round % 5) * 90)).await;
        s.kill();
        for t in tasks {
            let _ = tokio::time::timeout(TEST_TIMEOUT, t).await;
        }
        let db = rusqlite::Connection::open(data.join("ocloud.db")).unwrap();
        let integrity: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(integrity, "ok", "round {round}");
    }
    // The last restart, checked as every other.
    let s = Server::start_in(&data, &["--no-dev-account"]);
    let api = Api::new(&s.url, &token);
    let files = invariants::check(&api, QUOTA).await;
    let l = ledger.lock().unwrap();
    for name in l.live.keys() {
        assert!(invariants::find(&files, name).is_some(), "acknowledged {name} lost in the last round");
    }
    eprintln!(
        "crash loop: {rounds} kills, {clients} clients, {} files live, {} deleted, {files_checked} verified byte for byte",
        l.live.len(),
        l.deleted.len()
    );
}
