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
    let rec = Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(db.clone())),
        store.clone(),
        system_clock(),
    );
    let spool = common::scratch("spool");
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
        [*b"ftyp", *b"moov", *b"free", *b"mdat"]
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

#[tokio::test]
async fn a_recording_that_cannot_start_is_reported_and_alerted() {
    use camfleet::db::entities::{device, device_profile};
    use camfleet::fleet::health::HealthEvent;
    use camfleet::fleet::poller::Notice;
    use sea_orm::{ActiveModelTrait, Set};
    let db = test_db().await;
    let now = chrono::Utc::now();
    let d = device::ActiveModel {
        device_url: Set("http://127.0.0.1:1/onvif/device_service".into()),
        xaddrs: Set(serde_json::json!([])),
        status: Set("online".into()),
        quirks: Set(serde_json::json!([])),
        policy: Set(serde_json::json!({})),
        adopted_at: Set(now),
        updated_at: Set(now),
        record_profile: Set(Some("Profile_1".into())),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    device_profile::ActiveModel {
        device_id: Set(d.id),
        token: Set("Profile_1".into()),
        name: Set("main".into()),
        encoding: Set("H264".into()),
        // Nothing listens there: connection refused.
        stream_uri: Set(Some("rtsp://127.0.0.1:1/main".into())),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let alerting =
        camfleet::fleet::alerting::Alerting::new(db.clone(), system_clock(), String::new());
    alerting.ensure_default_rules().await.unwrap();
    let spool = common::scratch("spool");
    let mut m = camfleet::fleet::recording::RecordingManager::new(
        db.clone(),
        Arc::new(camfleet::secrets::SecretBox::from_key(1, &[1u8; 32])),
        Arc::new(Storage::memory()),
        system_clock(),
        spool.clone(),
    );
    m.reconcile_every = std::time::Duration::from_millis(100);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Notice>>();
    let (stop, stopped) = camfleet::shutdown::channel();
    let task = tokio::spawn(Arc::new(m).run(stopped, move |n| {
        let _ = tx.send(n);
    }));
    let notices = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
        .await
        .expect("a notice")
        .unwrap();
    assert!(
        matches!(&notices[0], Notice::Event { event: HealthEvent::RecordingStopped { reason }, .. } if reason.contains("DESCRIBE")),
        "{notices:?}"
    );
    let report = alerting.process(&notices).await.unwrap();
    assert_eq!(
        report.opened.len(),
        1,
        "the recording_stopped rule opens an alert"
    );
    let row = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.recording_status.starts_with("retrying in 1 s"),
        "{}",
        row.recording_status
    );
    stop.fire();
    tokio::time::timeout(std::time::Duration::from_secs(15), task)
        .await
        .expect("stops")
        .unwrap();
    let _ = std::fs::remove_dir_all(&spool);
}

/// A simulated camera recorded over RTP/UDP (the option for cameras whose
/// TCP interleaving misbehaves): segments land, and the stream's rates are
/// reported for the health view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_udp_is_recorded_and_its_rates_reported() {
    use camfleet::recorder::{RecEvent, RecordOptions, StreamId};
    let fleet = one_camera("digest").await;
    let db = test_db().await;
    let store = Arc::new(Storage::memory());
    let rec = Arc::new(Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(db.clone())),
        store.clone(),
        system_clock(),
    ));
    let spool = common::scratch("udp");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = RecordOptions::new(spool.clone());
    opts.udp = true;
    opts.segment = std::time::Duration::from_secs(1);
    opts.stats_every = std::time::Duration::from_millis(1500);
    opts.events = Some(tx);
    let (stop, stopped) = camfleet::shutdown::channel();
    let url = url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam0/sub", fleet.rtsp_port())).unwrap();
    let task = tokio::spawn(rec.run(
        StreamId {
            device_id: 1,
            site_id: None,
            profile: "Profile_2".into(),
        },
        url,
        Some(("admin".into(), "admin".into())),
        opts,
        stopped,
    ));
    let (mut segments, mut stats) = (0, None);
    while segments < 2 || stats.is_none() {
        match tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv()).await {
            Ok(Some(RecEvent::Segment { .. })) => segments += 1,
            Ok(Some(s @ RecEvent::Stats { .. })) => stats = Some(s),
            Ok(Some(_)) => {}
            other => panic!("nothing from the recorder: {other:?}"),
        }
    }
    stop.fire();
    let total = task.await.unwrap();
    let Some(RecEvent::Stats {
        fps_x10,
        kbit_s,
        frames_lost,
        reconnects,
    }) = stats
    else {
        unreachable!()
    };
    // The clip is 10 fps and about 80 kbit/s.
    assert!((80..=110).contains(&fps_x10), "{fps_x10}");
    assert!(kbit_s > 20 && kbit_s < 400, "{kbit_s}");
    assert_eq!((frames_lost, reconnects), (0, 0));
    assert_eq!(total.reconnects, 0);
    let rows = recording::Entity::find().all(&db).await.unwrap();
    assert!(rows.len() >= 2);
    for r in rows {
        let b = store.get(&r.storage_key).await.unwrap();
        assert_eq!(
            top_boxes(&b).iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [*b"ftyp", *b"moov", *b"free", *b"mdat"]
        );
    }
    let _ = std::fs::remove_dir_all(&spool);
    fleet.shutdown().await;
}

/// A camera drops mid-stream and comes back: the segment in progress is
/// finished and filed, "recording stopped" is raised and then resolved when
/// frames flow again, and recording carries on into new segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_drops_mid_stream_and_returns_is_recorded_on() {
    use camfleet::db::entities::{device, device_profile};
    use camfleet::fleet::health::HealthEvent;
    use camfleet::fleet::poller::Notice;
    use sea_orm::{ActiveModelTrait, Set};
    let clock = manual_clock();
    let mut cfg = camfleet::sim::FleetConfig::new(1, 0);
    let mut q = camfleet::sim::Quirks::default();
    q.apply("noauth").unwrap();
    cfg.plan = camfleet::sim::QuirkPlan::Uniform(q);
    cfg.clock = clock.clone();
    let fleet = fleet_with(cfg).await;
    let db = test_db().await;
    let now = chrono::Utc::now();
    let d = device::ActiveModel {
        device_url: Set(fleet.device_url(0)),
        xaddrs: Set(serde_json::json!([])),
        status: Set("online".into()),
        quirks: Set(serde_json::json!([])),
        policy: Set(serde_json::json!({})),
        adopted_at: Set(now),
        updated_at: Set(now),
        record_profile: Set(Some("Profile_1".into())),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    device_profile::ActiveModel {
        device_id: Set(d.id),
        token: Set("Profile_1".into()),
        name: Set("main".into()),
        encoding: Set("H264".into()),
        stream_uri: Set(Some(format!(
            "rtsp://127.0.0.1:{}/cam0/main",
            fleet.rtsp_port()
        ))),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let alerting =
        camfleet::fleet::alerting::Alerting::new(db.clone(), system_clock(), String::new());
    alerting.ensure_default_rules().await.unwrap();
    let spool = common::scratch("spool");
    let mut m = camfleet::fleet::recording::RecordingManager::new(
        db.clone(),
        Arc::new(camfleet::secrets::SecretBox::from_key(1, &[1u8; 32])),
        Arc::new(Storage::memory()),
        system_clock(),
        spool.clone(),
    );
    m.segment = std::time::Duration::from_secs(1);
    m.reconcile_every = std::time::Duration::from_millis(100);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Notice>>();
    let (stop, stopped) = camfleet::shutdown::channel();
    let task = tokio::spawn(Arc::new(m).run(stopped, move |n| {
        let _ = tx.send(n);
    }));
    let segments = || async { recording::Entity::find().all(&db).await.unwrap().len() };
    let wait_segments = |n: usize| {
        let segments = &segments;
        async move {
            let t = tokio::time::Instant::now();
            while segments().await < n {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(30),
                    "fewer than {n} segments"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    wait_segments(2).await;
    // The camera drops off the network mid-segment.
    fleet.cameras()[0].go_down(None);
    let notices = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("a notice")
        .unwrap();
    assert!(
        matches!(
            &notices[0],
            Notice::Event {
                event: HealthEvent::RecordingStopped { .. },
                ..
            }
        ),
        "{notices:?}"
    );
    assert_eq!(alerting.process(&notices).await.unwrap().opened.len(), 1);
    let before = segments().await;
    fleet.cameras()[0].come_back();
    let notices = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("a notice")
        .unwrap();
    assert!(
        matches!(
            &notices[0],
            Notice::Event {
                event: HealthEvent::RecordingResumed,
                ..
            }
        ),
        "{notices:?}"
    );
    assert_eq!(alerting.process(&notices).await.unwrap().resolved.len(), 1);
    wait_segments(before + 2).await;
    stop.fire();
    tokio::time::timeout(std::time::Duration::from_secs(15), task)
        .await
        .expect("stops")
        .unwrap();
    // Every segment, the one cut short by the drop included, is whole.
    let store_rows = recording::Entity::find().all(&db).await.unwrap();
    assert!(
        store_rows
            .iter()
            .all(|r| r.bytes > 0 && r.end_at > r.start_at)
    );
    let _ = std::fs::remove_dir_all(&spool);
    fleet.shutdown().await;
}

/// A camera that answers PLAY and then sends nothing: the frame watchdog
/// ends each attempt ("no frames for …"), and the reconnects wait by the
/// backoff table in order, the last step repeating. The outcome does not
/// depend on timing: the camera never sends a frame, and the waits are
/// read from the events, not measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_watchdog_ends_a_silent_stream_and_reconnects_back_off_in_order() {
    use camfleet::recorder::{RecEvent, RecordOptions, StreamId};
    use std::time::Duration;
    let fleet = one_camera("digest,rtsp-silent").await;
    let db = test_db().await;
    let rec = Arc::new(Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(db.clone())),
        Arc::new(Storage::memory()),
        system_clock(),
    ));
    let spool = common::scratch("silent");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = RecordOptions::new(spool.clone());
    opts.frame_timeout = Duration::from_millis(300);
    opts.backoff = [10, 20, 30, 40].map(Duration::from_millis);
    opts.events = Some(tx);
    let (stop, stopped) = camfleet::shutdown::channel();
    let url = url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam0/sub", fleet.rtsp_port())).unwrap();
    let task = tokio::spawn(rec.run(
        StreamId {
            device_id: 1,
            site_id: None,
            profile: "Profile_2".into(),
        },
        url,
        Some(("admin".into(), "admin".into())),
        opts,
        stopped,
    ));
    let mut waits = Vec::new();
    let mut playing = 0;
    while waits.len() < 6 {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(RecEvent::Interrupted { error, retry_in })) => {
                assert!(error.contains("no frames for 300 ms"), "{error}");
                waits.push(retry_in.as_millis() as u64);
            }
            Ok(Some(RecEvent::Recording)) => playing += 1,
            Ok(Some(RecEvent::Segment { .. })) => panic!("a silent camera made a segment"),
            Ok(Some(_)) => {}
            other => panic!("nothing from the recorder: {other:?}"),
        }
    }
    assert_eq!(waits, [10, 20, 30, 40, 40, 40]);
    assert!(playing >= 6, "each attempt got as far as PLAY: {playing}");
    stop.fire();
    let stats = task.await.unwrap();
    assert_eq!(stats.frames, 0);
    assert!(stats.reconnects >= 6);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&spool);
}
