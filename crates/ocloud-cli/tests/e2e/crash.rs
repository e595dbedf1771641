//! Durability: a service killed with SIGKILL in the middle of uploads shows, after restart,
//! every acknowledged file intact and nothing partial; SIGTERM lets an upload in flight finish.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::harness::*;

fn start_upload(addr: &str, token: &str, name: &str, total: usize, sent: &[u8]) -> TcpStream {
    let mut c = connect(addr);
    let head = format!(
        "POST /cloud/v1/files/content?name={name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\nExpect: 100-continue\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 100"));
    c.write_all(sent).unwrap();
    c.flush().unwrap();
    c
}

#[tokio::test]
async fn sigkill_mid_upload_loses_only_unacknowledged_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let api = s.api();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let data: Vec<u8> = (0..(200_000 + i * 1000)).map(|b| (b * 7 + i) as u8).collect();
        let r = api.upload(&format!("done-{i}.bin"), &data, None).await.ok();
        acknowledged.push((r["fileId"].as_str().unwrap().to_owned(), sha256(&data)));
    }
    // Three uploads in flight, each with half its body sent.
    let half = vec![1u8; 500_000];
    let in_flight: Vec<TcpStream> =
        (0..3).map(|i| start_upload(&s.addr(), &api.token, &format!("partial-{i}.bin"), 1_000_000, &half)).collect();
    s.kill();
    drop(in_flight);

    let s2 = Server::start_in(dir.path(), &[]);
    let api2 = Api::new(&s2.url, &api.token);
    let root = api2.root("").await;
    let names: Vec<&str> = root["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["done-0.bin", "done-1.bin", "done-2.bin", "done-3.bin", "done-4.bin"]);
    for (fid, hash) in &acknowledged {
        assert_eq!(&sha256(&api2.download(fid).await), hash);
    }
    assert_eq!(temp_files(dir.path()).len(), 0, "temp files swept at start");
    let used: u64 = acknowledged.len() as u64 * 200_000 + 10_000;
    assert_eq!(api2.freespace().await, (5u64 << 30) - used, "quota counts only stored files");
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let token = s.admin_token(&[]);
    let mut c = start_upload(&s.addr(), &token, "late.bin", 10, b"01234");
    s.signal_term();
    // The service is shutting down but waits for this request.
    c.write_all(b"56789").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(s.wait().success(), "clean exit on SIGTERM");
    let s2 = Server::start_in(dir.path(), &[]);
    let api = Api::new(&s2.url, &token);
    assert_eq!(
        api.download(&id(&format!("{}late.bin", "mes dossiers partenaires/ocloud/"))).await.as_ref(),
        b"0123456789"
    );
}

/// The bytes of a burst upload, from its name: any file found after the crash can be checked.
fn burst_content(name: &str) -> Vec<u8> {
    let seed = name.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    (0..1000 + seed % 4000).map(|i| (i.wrapping_mul(seed) >> 3) as u8).collect()
}

/// Many small uploads at once share their commits (group commit). A SIGKILL while they flow
/// lands with batches half-way (content written, metadata being committed): after restart,
/// every acknowledged upload is there and whole, every file there is whole, the quota counts
/// exactly the files there, and nothing temporary is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_group_commits_keeps_every_acknowledged_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let api = s.api();
    let folder = api.mkdir("burst", None).await["id"].as_str().unwrap().to_owned();
    let free_before = api.freespace().await;
    let (acks, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let uploaders: Vec<_> = (0..48)
        .map(|w| {
            let (api, folder, acks) = (api.clone(), folder.clone(), acks.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("w{w:02}-{i:04}.bin");
                    let sent = api
                        .req(reqwest::Method::POST, &format!("/cloud/v1/files/content?name={name}&folder={folder}"))
                        .body(burst_content(&name))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => acks.send(name).unwrap(),
                        _ => break, // the service is gone
                    }
                }
            })
        })
        .collect();
    drop(acks);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 400 {
        acknowledged.push(acked_rx.recv().await.expect("uploads flow"));
    }
    s.kill();
    for u in uploaders {
        u.await.unwrap();
    }
    while let Some(name) = acked_rx.recv().await {
        acknowledged.push(name);
    }

    let s2 = Server::start_in(dir.path(), &[]);
    let api2 = Api::new(&s2.url, &api.token);
    let listing = api2.get(&format!("/cloud/v1/folders/{folder}?limit=100000")).await.ok();
    let files = listing["files"].as_array().unwrap();
    let present: std::collections::HashMap<&str, &str> =
        files.iter().map(|f| (f["name"].as_str().unwrap(), f["id"].as_str().unwrap())).collect();
    for name in &acknowledged {
        assert!(present.contains_key(name.as_str()), "acknowledged {name} is missing after the crash");
    }
    let mut stored = 0;
    for (name, fid) in &present {
        let want = burst_content(name);
        assert_eq!(api2.download(fid).await.as_ref(), want.as_slice(), "{name} is not whole");
        stored += want.len() as u64;
    }
    assert!(present.len() >= acknowledged.len());
    assert_eq!(api2.freespace().await, free_before - stored, "quota counts exactly the files there");
    assert_eq!(temp_files(dir.path()).len(), 0, "temp files swept at start");
    let fsck = s2.admin().arg("fsck").output().unwrap();
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success() && report.contains(", 0 problems"), "{report}");
}
