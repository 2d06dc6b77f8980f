//! Crash safety of the recorder's spool without a camera: a segment cut off
//! mid-write (`.partial`, no moov) is discarded at start-up; a finished
//! segment whose ledger row was never written (a crash between the two) is
//! committed, once; the ledger then matches the storage tier.

mod common;

use std::sync::Arc;

use camfleet::db::entities::recording;
use camfleet::recorder::Recorder;
use camfleet::recorder::mp4::{Mp4Writer, top_boxes};
use camfleet::storage::Storage;
use common::*;
use sea_orm::EntityTrait;
use sha2::Digest;

fn segment() -> Vec<u8> {
    let entry = {
        let mut b = vec![0, 0, 0, 86];
        b.extend_from_slice(b"avc1");
        b.extend_from_slice(&[0u8; 78]);
        b
    };
    let mut w =
        Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (320, 240), 90_000).unwrap();
    for i in 0..25i64 {
        w.push(i * 3600, &[0, 0, 0, 3, 0x65, 0x88, 0x80], i == 0)
            .unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn after_a_crash_partial_segments_go_and_finished_ones_are_committed_once() {
    let db = test_db().await;
    let store = Arc::new(Storage::memory());
    let rec = Recorder::new(db.clone(), store.clone(), system_clock());
    let spool = std::env::temp_dir().join(format!("camfleet-spool-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&spool).unwrap();
    // Killed mid-segment: ftyp and some frames, no moov.
    std::fs::write(
        spool.join("1-Profile_1-1000.mp4.partial"),
        &segment()[..100],
    )
    .unwrap();
    // Finished and fsynced, but the ledger commit never happened.
    let seg = segment();
    assert_eq!(
        top_boxes(&seg).iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [*b"ftyp", *b"mdat", *b"moov"]
    );
    std::fs::write(spool.join("1-Profile_1-2000.mp4"), &seg).unwrap();
    std::fs::write(
        spool.join("1-Profile_1-2000.json"),
        serde_json::to_vec(&serde_json::json!({
            "stream": {"device_id": 1, "site_id": null, "profile": "Profile_1"},
            "start_ms": 2000, "end_ms": 3000, "codec": "avc1",
            "key": "recordings/1/Profile_1/1970/01/01/2000.mp4"
        }))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rec.reconcile(&spool, "hot").await.unwrap(), (1, 1));
    let rows = recording::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    let stored = store.get(&rows[0].storage_key).await.unwrap();
    assert_eq!(&stored[..], &seg[..]);
    assert_eq!(rows[0].bytes as usize, seg.len());
    assert_eq!(
        rows[0].checksum,
        camfleet::fleet::recordings::hex(&sha2::Sha256::digest(&seg))
    );
    // The spool is empty; a second start-up changes nothing.
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    assert_eq!(rec.reconcile(&spool, "hot").await.unwrap(), (0, 0));
    assert_eq!(recording::Entity::find().all(&db).await.unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&spool);
}
