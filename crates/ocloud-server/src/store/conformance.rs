//! The metadata contract as one test suite, run on every backend: the SQLite unit tests call
//! it on a temp file, the scale suite on a fresh PostgreSQL database. Public (hidden) for that.

use ocloud_wire::model::FileType;

use super::*;

/// Runs every check on an empty database; panics on the first failure.
pub async fn run(db: &dyn Metadata) {
    tree_operations_keep_quota_exact(db).await;
    concurrent_file_records_each_get_their_own_answer(db).await;
    purge_drops_only_expired_rows(db).await;
    blob_keys_are_claimed_released_and_reaped(db).await;
    leases_go_to_one_holder_at_a_time(db).await;
    consents_merge_and_token_pairs_land_together(db).await;
    login_failures_are_kept_where_the_backend_shares_them(db).await;
}

async fn tree_operations_keep_quota_exact(db: &dyn Metadata) {
    let u = db.ensure_user("alice").await.unwrap();
    let root = db.root(u.id).await.unwrap();
    let a = db.create_folder(root.id, "a").await.unwrap();
    assert!(matches!(db.create_folder(root.id, "a").await, Err(StoreError::AlreadyExists(_))));
    db.claim_blobs(&["b1".into(), "b2".into(), "b3".into()], 0).await.unwrap();
    let f = NewFile {
        name: "x.txt".into(),
        size: 10,
        blob: "b1".into(),
        file_type: FileType::File,
        mime: "text/plain".into(),
        metadata: None,
    };
    let f1 = db.insert_file(a.id, f.clone(), 100).await.unwrap();
    let f2 = db.insert_file(a.id, NewFile { blob: "b2".into(), ..f.clone() }, 100).await.unwrap();
    assert_eq!((f1.name.as_str(), f2.name.as_str()), ("x.txt", "x(1).txt"));
    let err = db.insert_file(a.id, NewFile { size: 81, blob: "b3".into(), ..f.clone() }, 100).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { needed: 81, free: 80 }));
    let a2 = db.copy(a.id, root.id, "a2", 100).await.unwrap();
    assert_eq!(db.user(u.id).await.unwrap().unwrap().used, 40);
    assert!(matches!(db.copy(a.id, a.id, "in", 100).await, Err(StoreError::IntoItself)));
    let d = db.descendants(root.id, false).await.unwrap();
    let paths: Vec<String> = d.iter().map(|d| format!("{}{}", d.parent_rel, d.node.name)).collect();
    assert_eq!(paths, ["a", "a/x(1).txt", "a/x.txt", "a2", "a2/x(1).txt", "a2/x.txt"]);
    assert_eq!(db.delete(a.id).await.unwrap(), Vec::<String>::new());
    let mut freed = db.delete(a2.id).await.unwrap();
    freed.sort();
    assert_eq!(freed, ["b1", "b2"]);
    assert_eq!(db.user(u.id).await.unwrap().unwrap().used, 0);
    db.forget_blobs(&["b1".into(), "b2".into(), "b3".into()]).await.unwrap();
}

/// Many file records at once (which a backend may commit together): each gets the answer it
/// would have alone (a clash renamed, the quota exceeded for exactly the ones past it), and
/// none of the failures takes another record down.
async fn concurrent_file_records_each_get_their_own_answer(db: &dyn Metadata) {
    let u = db.ensure_user("burst").await.unwrap();
    let root = db.root(u.id).await.unwrap();
    let dir = db.create_folder(root.id, "burst").await.unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("burst{i}")).collect();
    db.claim_blobs(&keys, 0).await.unwrap();
    let file = |i: usize| NewFile {
        // Two of every name: half the records clash with another one of the burst.
        name: format!("f{}.bin", i / 2),
        size: 10,
        blob: keys[i].clone(),
        file_type: FileType::File,
        mime: "application/octet-stream".into(),
        metadata: None,
    };
    // Room for 30 of the 40: exactly ten are refused, whatever the order they commit in.
    let answers = futures_util::future::join_all((0..40).map(|i| db.insert_file(dir.id, file(i), 300))).await;
    let refused = answers.iter().filter(|a| matches!(a, Err(StoreError::QuotaExceeded { .. }))).count();
    assert_eq!(refused, 10, "{answers:?}");
    assert!(answers.iter().all(|a| a.is_ok() || matches!(a, Err(StoreError::QuotaExceeded { .. }))));
    let q = ChildQuery { dirs: true, files: true, file_type: None, offset: 0, limit: None };
    let mut names: Vec<String> = db.children(dir.id, q).await.unwrap().into_iter().map(|n| n.name).collect();
    let mut answered: Vec<String> = answers.into_iter().filter_map(|a| a.ok()).map(|n| n.name).collect();
    names.sort();
    answered.sort();
    assert_eq!(names, answered, "the records are the ones answered");
    assert_eq!(names.len(), 30);
    assert_eq!(db.user(u.id).await.unwrap().unwrap().used, 300);
    let freed = db.delete(dir.id).await.unwrap();
    assert_eq!(freed.len(), 30);
    db.forget_blobs(&keys).await.unwrap();
}

async fn purge_drops_only_expired_rows(db: &dyn Metadata) {
    let rec = |expires_at| TokenRecord {
        kind: "access".into(),
        user_id: 1,
        app_id: 1,
        scope: "cloud".into(),
        expires_at,
        revoked: false,
        grant: String::new(),
    };
    let week = 7 * 24 * 3600;
    let pair = vec![NewToken { hash: vec![1], record: rec(100) }, NewToken { hash: vec![2], record: rec(300) }];
    db.insert_tokens(pair).await.unwrap();
    db.insert_session("e", 1, 100).await.unwrap();
    assert_eq!(db.purge_expired(200, 200 - week).await.unwrap(), 1, "the session only: tokens get a week");
    assert_eq!(db.purge_expired(200 + week, 200).await.unwrap(), 1);
    assert!(db.token(&[1]).await.unwrap().is_none());
    assert!(db.token(&[2]).await.unwrap().is_some());
}

async fn blob_keys_are_claimed_released_and_reaped(db: &dyn Metadata) {
    let u = db.ensure_user("reaped").await.unwrap();
    let root = db.root(u.id).await.unwrap();
    let file = |blob: &str| NewFile {
        name: "f".into(),
        size: 1,
        blob: blob.into(),
        file_type: FileType::File,
        mime: "x".into(),
        metadata: None,
    };
    // An unclaimed key cannot be recorded.
    assert!(matches!(db.insert_file(root.id, file("never-claimed"), 10).await, Err(StoreError::NotFound(_))));
    db.claim_blobs(&["k-live".into(), "k-stale".into()], 1_000).await.unwrap();
    let n = db.insert_file(root.id, file("k-live"), 10).await.unwrap();
    // Only the unreferenced, old enough key is reaped; then it can no longer be recorded.
    assert_eq!(db.reap_blobs(2_000, 10).await.unwrap(), ["k-stale"]);
    assert!(matches!(db.insert_file(root.id, file("k-stale"), 10).await, Err(StoreError::NotFound(_))));
    let keys = ["k-live".to_owned(), "k-stale".to_owned()];
    assert_eq!(db.pending_blobs(&keys).await.unwrap(), ["k-stale".to_owned()].into());
    db.forget_blobs(&keys).await.unwrap();
    assert!(db.pending_blobs(&keys).await.unwrap().is_empty(), "the referenced key stays, the reaped one is gone");
    assert_eq!(db.file_blobs(None, 10).await.unwrap(), [("k-live".to_owned(), 1)]);
    // A delete releases the key: pending cleanup until forgotten.
    assert_eq!(db.delete(n.id).await.unwrap(), ["k-live"]);
    assert_eq!(db.pending_blobs(&keys).await.unwrap(), ["k-live".to_owned()].into());
    assert!(db.usage_mismatches().await.unwrap().is_empty());
}

async fn leases_go_to_one_holder_at_a_time(db: &dyn Metadata) {
    assert!(db.lease("job", "a", 2_000, 1_000).await.unwrap());
    assert!(!db.lease("job", "b", 3_000, 1_500).await.unwrap(), "held until 2,000");
    assert!(db.lease("job", "b", 3_000, 2_000).await.unwrap(), "expired");
}

async fn consents_merge_and_token_pairs_land_together(db: &dyn Metadata) {
    let u = db.ensure_user("consenting").await.unwrap();
    let app = db.ensure_app("consented", "openid cloud").await.unwrap();
    db.merge_consent(u.id, app.id, &["openid".into(), "cloud".into()]).await.unwrap();
    db.merge_consent(u.id, app.id, &["cloud".into(), "offline_access".into()]).await.unwrap();
    assert_eq!(db.consent(u.id, app.id).await.unwrap().as_deref(), Some("openid cloud offline_access"));
    let rec = |kind: &str| TokenRecord {
        kind: kind.into(),
        user_id: u.id,
        app_id: app.id,
        scope: "cloud".into(),
        expires_at: i64::MAX / 2,
        revoked: false,
        grant: "g1".into(),
    };
    let pair = vec![
        NewToken { hash: vec![9, 1], record: rec("access") },
        NewToken { hash: vec![9, 2], record: rec("refresh") },
    ];
    db.insert_tokens(pair).await.unwrap();
    // A request's authentication reads the token with its user and app.
    let found = db.token_access(&[9, 1]).await.unwrap().expect("the access token");
    assert_eq!(found.token, rec("access"));
    assert_eq!(found.user.map(|x| x.name).as_deref(), Some("consenting"));
    assert_eq!(found.app.map(|x| x.name).as_deref(), Some("consented"));
    assert!(db.token_access(&[9, 9]).await.unwrap().is_none(), "an unknown hash");
    assert!(db.revoke_token(&[9, 2], app.id, true).await.unwrap());
    assert!(db.token(&[9, 1]).await.unwrap().unwrap().revoked, "the grant went with its refresh token");
    assert!(!db.revoke_token(&[9, 1], app.id + 1, false).await.unwrap(), "another app's token is not found");
    // Ending an app's access: its consent forgotten, every token of the user's revoked.
    db.insert_tokens(vec![NewToken { hash: vec![9, 3], record: TokenRecord { grant: "g2".into(), ..rec("access") } }])
        .await
        .unwrap();
    assert_eq!(db.consents_of(u.id).await.unwrap(), [(app.id, "openid cloud offline_access".to_owned())]);
    assert!(db.forget_access(u.id, app.id).await.unwrap());
    assert!(db.consents_of(u.id).await.unwrap().is_empty());
    assert!(db.token(&[9, 3]).await.unwrap().unwrap().revoked);
    assert!(!db.forget_access(u.id, app.id).await.unwrap(), "nothing left to forget");
}

async fn login_failures_are_kept_where_the_backend_shares_them(db: &dyn Metadata) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let keys = ["user:x".to_owned(), "addr:y".to_owned()];
    let seen = AtomicU32::new(u32::MAX);
    let count = |records: &mut [Option<LoginFailures>]| {
        seen.store(records[0].map_or(0, |f| f.count), Ordering::SeqCst);
        for r in records.iter_mut() {
            r.get_or_insert(LoginFailures { count: 0, last: 5, wait_until: 0 }).count += 1;
        }
        Ok(())
    };
    let Some(first) = db.login_failures(&keys, &count).await.unwrap() else {
        // One process only: the service keeps the counts in memory.
        assert!(!db.clear_login_failures(&keys).await.unwrap());
        return;
    };
    assert_eq!((first, seen.load(Ordering::SeqCst)), (Ok(()), 0));
    db.login_failures(&keys, &count).await.unwrap().unwrap().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the first attempt was kept");
    // A refusal keeps the records as they were.
    let refuse = |_: &mut [Option<LoginFailures>]| Err(1_000);
    assert_eq!(db.login_failures(&keys, &refuse).await.unwrap(), Some(Err(1_000)));
    db.login_failures(&keys, &count).await.unwrap().unwrap().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(db.clear_login_failures(&keys).await.unwrap());
    db.login_failures(&keys, &count).await.unwrap().unwrap().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 0, "cleared");
}
