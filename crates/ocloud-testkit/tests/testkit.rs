//! The test kit as a user of it writes tests: the real client against an in-process emulator.

use ocloud_client::{ApiManager, Endpoints, RetryPolicy};
use ocloud_testkit::Emulator;
use serde_json::json;

fn client(emu: &Emulator, token: &str) -> ApiManager {
    let api = ApiManager::builder("unused", "unused", "http://127.0.0.1:9/cb")
        .endpoints(Endpoints::single(emu.url()))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    api.init_with_access_token(token);
    api
}

#[tokio::test]
async fn seed_faults_clock_and_journal_assertions() {
    let emu = Emulator::builder()
        .user("alice", "secret")
        .app("my-app", "my-client-id", "my-client-secret", "http://127.0.0.1:9/cb")
        .token_scoped("alice", "my-app", "OFR-alice", "openid cloud cloudfullwrite")
        .file("alice", "notes/todo.txt", "milk")
        .clock("2030-01-01T00:00:00Z")
        .fault(json!({"match": {"op": "freespace.get"}, "when": {"times": 1}, "action": {"error": 5}}))
        .start()
        .await;
    let api = client(&emu, "OFR-alice");
    // The fault, then the real answer.
    let err = api.freespace().await.unwrap_err();
    assert_eq!(err.api().map(|e| (e.status, e.code)), Some((503, Some(5))));
    assert!(api.freespace().await.is_ok());
    emu.assert_requests(json!({"op": "freespace.get"}), 2).await;
    emu.assert_requests(json!({"op": "freespace.get", "status": 503}), 1).await;
    // The seeded tree, dated by the frozen clock.
    let root = api.folders().get(None, &Default::default()).await.unwrap();
    let notes = root.subfolders.iter().find(|f| f.name == "notes").expect("the seeded folder");
    let folder = api.folders().get(Some(&notes.id), &Default::default()).await.unwrap();
    assert_eq!(folder.files[0].name, "todo.txt");
    // Snapshot, change, restore.
    let snap = emu.snapshot().await;
    api.files().delete(&folder.files[0].id).await.unwrap();
    emu.restore(&snap).await;
    let again = api.folders().get(Some(&notes.id), &Default::default()).await.unwrap();
    assert_eq!(again.files.len(), 1);
    // The clock expires the token.
    emu.advance(3601.0).await;
    let err = api.freespace().await.unwrap_err();
    assert_eq!(err.api().map(|e| e.status), Some(401));
    // A failed assertion lists the journal.
    let lost = tokio::spawn(async move {
        emu.assert_requests(json!({"op": "files.upload"}), 1).await;
    })
    .await
    .unwrap_err();
    let why = lost.into_panic();
    let why = why.downcast_ref::<String>().unwrap();
    assert!(why.contains("found 0") && why.contains("freespace.get"), "{why}");
}
