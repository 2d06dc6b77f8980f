//! A full disk under the recorder: a 3 MiB tmpfs holds the spool and the
//! storage tier, nearly full of older recordings and of a file that is not
//! ours. Recording a simulated camera fills the rest: the recorder reports
//! the failure (what the "recording stopped" alert is raised from) and
//! leaves no half-written segment; the emergency purge frees space by
//! deleting the oldest ledger segments only (the other file stays); the
//! recording resumes; every segment in the ledger is whole.
//!
//! Mounting a tmpfs needs root: the interop suite runs this test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::db::entities::recording;
use camfleet::fleet::recordings::{Ledger, RetentionPolicy};
use camfleet::recorder::mp4::{Mp4Writer, top_boxes};
use camfleet::recorder::{RecEvent, RecordOptions, Recorder, StreamId};
use camfleet::storage::Storage;
use common::*;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn old_segment(bytes: usize) -> Vec<u8> {
    let entry = {
        let mut b = vec![0, 0, 0, 86];
        b.extend_from_slice(b"avc1");
        b.extend_from_slice(&[0u8; 78]);
        b
    };
    let mut w =
        Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (320, 240), 90_000).unwrap();
    w.push(0, &vec![7u8; bytes], true).unwrap();
    w.finish().unwrap().into_inner()
}

async fn wait_for(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<RecEvent>,
    what: &str,
    pred: impl Fn(&RecEvent) -> bool,
) -> RecEvent {
    let t = tokio::time::Instant::now();
    loop {
        let left = Duration::from_secs(60).saturating_sub(t.elapsed());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => continue,
            _ => panic!("no {what} within 60 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a tmpfs (needs root); run by tests/interop/run.sh"]
async fn a_full_disk_stops_recording_cleanly_and_the_purge_brings_it_back() {
    let dir = common::scratch("full");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting a tmpfs failed (root needed)");
    let _mount = Mount(dir.clone());
    let store = Arc::new(Storage::local(&dir.join("storage")).unwrap());
    let db = test_db().await;
    let ledger = Ledger::new(db.clone());
    // Four older segments in the ledger, 400 KB each.
    let t0 = chrono::Utc::now() - chrono::Duration::days(2);
    for i in 0..4 {
        let bytes = old_segment(400_000);
        let key = format!("recordings/1/Profile_1/old-{i}.mp4");
        store
            .put(&key, bytes::Bytes::from(bytes.clone()))
            .await
            .unwrap();
        recording::ActiveModel {
            device_id: Set(1),
            site_id: Set(None),
            profile: Set("Profile_1".into()),
            start_at: Set(t0 + chrono::Duration::minutes(i)),
            end_at: Set(t0 + chrono::Duration::minutes(i + 1)),
            bytes: Set(bytes.len() as i64),
            codec: Set("avc1".into()),
            checksum: Set(camfleet::storage::sha256_hex(&bytes)),
            tier: Set("hot".into()),
            storage_key: Set(key),
            created_at: Set(t0),
            origin: Set("live".into()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
    }
    // Someone else's file takes all but ~40 KB of what is left.
    let free = store.free_bytes().unwrap();
    let other = dir.join("not-ours.bin");
    std::fs::write(&other, vec![1u8; free.saturating_sub(40_000) as usize]).unwrap();

    let fleet = one_camera("digest").await;
    let url =
        url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam0/main", fleet.rtsp_port())).unwrap();
    let rec = Arc::new(Recorder::new(
        Arc::new(Ledger::new(db.clone())),
        store.clone(),
        system_clock(),
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = RecordOptions::new(dir.join("spool"));
    opts.segment = Duration::from_secs(1);
    opts.backoff = [Duration::from_millis(200); 4];
    opts.events = Some(tx);
    let (stop, stopped) = camfleet::shutdown::channel();
    let stream = StreamId {
        device_id: 1,
        site_id: None,
        profile: "Profile_1".into(),
    };
    let task = tokio::spawn(rec.clone().run(
        stream,
        url,
        Some(("admin".into(), "admin".into())),
        opts,
        stopped,
    ));
    let e = wait_for(&mut rx, "a failure for want of space", |e| {
        matches!(e, RecEvent::Interrupted { error, .. } if error.contains("No space left") || error.contains("space"))
    })
    .await;
    eprintln!("recorder said: {e:?}");

    // The emergency purge: the oldest segments go until 1 MB is free.
    let report = ledger
        .sweep(
            &store,
            &RetentionPolicy {
                tier: "hot".into(),
                max_age_days: None,
                max_bytes_per_device: None,
                max_bytes_per_site: None,
                max_bytes_tier: None,
                min_free_bytes: Some(1_000_000),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert!(report.low_space, "{report:?}");
    assert!(report.deleted >= 2, "{report:?}");
    assert!(other.exists(), "a file outside the ledger was deleted");
    assert!(store.free_bytes().unwrap() >= 1_000_000);

    // Recording comes back on its own.
    wait_for(&mut rx, "a segment after the purge", |e| {
        matches!(e, RecEvent::Segment { .. })
    })
    .await;
    stop.fire();
    task.await.unwrap();
    let spool: Vec<String> = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        spool.iter().all(|f| !f.ends_with(".partial")),
        "half-written segments left: {spool:?}"
    );
    for r in recording::Entity::find().all(&db).await.unwrap() {
        let bytes = store.get(&r.storage_key).await.unwrap();
        assert_eq!(
            camfleet::storage::sha256_hex(&bytes),
            r.checksum,
            "{}",
            r.storage_key
        );
        let kinds: Vec<[u8; 4]> = top_boxes(&bytes).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [*b"ftyp", *b"moov", *b"free", *b"mdat"],
            "{}",
            r.storage_key
        );
    }
    fleet.shutdown().await;
}
