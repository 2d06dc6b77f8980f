//! The storage tier on a third-party S3 server (SeaweedFS, signatures
//! checked, path-style): objects go in and out, a wrong secret is a clear
//! error, a simulated camera is recorded straight into the bucket, tier
//! migration moves segments from a local hot tier into it with their
//! checksums verified, and retention deletes from it only what the ledger
//! holds. The interop suite starts SeaweedFS, creates the bucket and sets
//! `CAMFLEET_S3` and the AWS key variables.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::db::entities::recording;
use camfleet::fleet::recordings::{Ledger, RetentionPolicy};
use camfleet::recorder::{RecEvent, RecordOptions, Recorder, StreamId};
use camfleet::storage::Storage;
use common::*;
use sea_orm::EntityTrait;

fn s3_url() -> String {
    std::env::var("CAMFLEET_S3").expect("CAMFLEET_S3")
}

/// A prefix of our own in the bucket, so runs do not see each other.
fn s3(prefix: &str) -> Arc<Storage> {
    let url = s3_url().replacen("?", &format!("/{prefix}?"), 1);
    Arc::new(Storage::s3(&url).expect("S3 storage"))
}

#[tokio::test]
#[ignore = "needs an S3 server; run by tests/interop/run.sh"]
async fn objects_round_trip_and_a_wrong_secret_is_refused() {
    let store = s3(&format!("t-{}", uuid::Uuid::new_v4().simple()));
    let body = bytes::Bytes::from(vec![42u8; 3 * 1024 * 1024]);
    store.put("recordings/1/a.mp4", body.clone()).await.unwrap();
    store
        .put("recordings/1/b.mp4", bytes::Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(store.get("recordings/1/a.mp4").await.unwrap(), body);
    let mut listed = store.list("recordings", 100).await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("recordings/1/a.mp4".to_string(), body.len() as u64),
            ("recordings/1/b.mp4".to_string(), 1)
        ]
    );
    store.delete("recordings/1/b.mp4").await.unwrap();
    assert!(store.get("recordings/1/b.mp4").await.is_err());
    let wrong = Storage::s3_with_keys(&s3_url(), Some(("fleetkey", "not-the-secret"))).unwrap();
    let e = wrong
        .put("recordings/x.mp4", bytes::Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("SignatureDoesNotMatch") || e.to_string().contains("403"),
        "{e}"
    );
}

/// A file over one 5 MiB part (12 MiB, not a multiple of the part size)
/// goes up as an S3 multipart upload (`put_file`), streamed and hashed on
/// the way; read back, it is byte for byte the file, and the returned
/// SHA-256 is the file's (computed here separately).
#[tokio::test]
#[ignore = "needs an S3 server; run by tests/interop/run.sh"]
async fn a_12_mib_file_goes_up_in_parts_and_comes_back_whole() {
    use sha2::Digest;
    let store = s3(&format!("t-{}", uuid::Uuid::new_v4().simple()));
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = common::scratch("12mib").join("export.mp4");
    std::fs::write(&path, &data).unwrap();
    let (n, sum) = store.put_file("big/export.mp4", &path).await.unwrap();
    let _ = std::fs::remove_file(&path);
    let want: String = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!((n, sum.as_str()), (data.len() as u64, want.as_str()));
    let back = store.get("big/export.mp4").await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back[..] == data[..], "the object differs from the file");
    // A byte range across the first part boundary: only those bytes (a
    // ranged GET, as a player's Range request is served from the tier).
    let at = 5 * 1024 * 1024 - 100;
    let part = store
        .get_range("big/export.mp4", at as u64..at as u64 + 200)
        .await
        .unwrap();
    assert_eq!(&part[..], &data[at..at + 200]);
    let listed = store.list("big", 10).await.unwrap();
    assert_eq!(
        listed,
        vec![("big/export.mp4".to_string(), data.len() as u64)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server; run by tests/interop/run.sh"]
async fn a_camera_is_recorded_into_s3_then_retention_deletes_only_ledger_segments() {
    let store = s3(&format!("t-{}", uuid::Uuid::new_v4().simple()));
    let db = test_db().await;
    let fleet = one_camera("digest").await;
    let rec = Arc::new(Recorder::new(
        Arc::new(Ledger::new(db.clone())),
        store.clone(),
        system_clock(),
    ));
    let spool = common::scratch("s3");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = RecordOptions::new(spool);
    opts.segment = Duration::from_secs(1);
    opts.events = Some(tx);
    let (stop, stopped) = camfleet::shutdown::channel();
    let url =
        url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam0/main", fleet.rtsp_port())).unwrap();
    let task = tokio::spawn(rec.clone().run(
        StreamId {
            device_id: 1,
            site_id: None,
            profile: "Profile_1".into(),
        },
        url,
        Some(("admin".into(), "admin".into())),
        opts,
        stopped,
    ));
    let mut segments = 0;
    while segments < 3 {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(RecEvent::Segment { .. })) => segments += 1,
            Ok(Some(_)) => {}
            other => panic!("no segments: {other:?}"),
        }
    }
    stop.fire();
    task.await.unwrap();
    let rows = recording::Entity::find().all(&db).await.unwrap();
    assert!(rows.len() >= 3);
    for r in &rows {
        let b = store.get(&r.storage_key).await.unwrap();
        assert_eq!(camfleet::storage::sha256_hex(&b), r.checksum);
    }
    // Something in the bucket that the ledger does not know.
    store
        .put(
            "recordings/not-ours.bin",
            bytes::Bytes::from_static(b"keep"),
        )
        .await
        .unwrap();
    let ledger = Ledger::new(db.clone());
    let swept = ledger
        .sweep(
            &store,
            &RetentionPolicy {
                tier: "hot".into(),
                max_age_days: Some(0),
                max_bytes_per_device: None,
                max_bytes_per_site: None,
                max_bytes_tier: None,
                min_free_bytes: None,
            },
            chrono::Utc::now() + chrono::Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(swept.deleted, rows.len(), "{swept:?}");
    let left = store.list("recordings", 100).await.unwrap();
    assert_eq!(left, vec![("recordings/not-ours.bin".to_string(), 4)]);
    assert_eq!(
        ledger.orphans("hot", &store, 100).await.unwrap(),
        left,
        "listed, not deleted"
    );
    fleet.shutdown().await;
}

#[tokio::test]
#[ignore = "needs an S3 server; run by tests/interop/run.sh"]
async fn tier_migration_moves_segments_from_local_disk_into_s3() {
    use sea_orm::{ActiveModelTrait, Set};
    let db = test_db().await;
    let dir = common::scratch("hot");
    let hot = Storage::local(&dir).unwrap();
    let cold = s3(&format!("t-{}", uuid::Uuid::new_v4().simple()));
    let old = chrono::Utc::now() - chrono::Duration::days(10);
    for i in 0..3 {
        let body = vec![i as u8; 100_000 + i];
        let key = format!("recordings/5/Profile_1/seg-{i}.mp4");
        hot.put(&key, bytes::Bytes::from(body.clone()))
            .await
            .unwrap();
        recording::ActiveModel {
            device_id: Set(5),
            site_id: Set(None),
            profile: Set("Profile_1".into()),
            start_at: Set(old + chrono::Duration::minutes(i as i64)),
            end_at: Set(old + chrono::Duration::minutes(i as i64 + 1)),
            bytes: Set(body.len() as i64),
            codec: Set("avc1".into()),
            checksum: Set(camfleet::storage::sha256_hex(&body)),
            tier: Set("hot".into()),
            storage_key: Set(key),
            created_at: Set(old),
            origin: Set("live".into()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
    }
    let (n, bytes) = Ledger::new(db.clone())
        .migrate(("hot", &hot), ("cold", &cold), 7, chrono::Utc::now(), 100)
        .await
        .unwrap();
    assert_eq!((n, bytes), (3, 300_003));
    for r in recording::Entity::find().all(&db).await.unwrap() {
        assert_eq!(r.tier, "cold");
        let b = cold.get(&r.storage_key).await.unwrap();
        assert_eq!(camfleet::storage::sha256_hex(&b), r.checksum);
        assert!(
            hot.get(&r.storage_key).await.is_err(),
            "still on the hot tier"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
