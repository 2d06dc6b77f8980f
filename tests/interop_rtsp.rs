//! The recorder against the GStreamer RTSP server (H.264, with and without
//! Digest auth): segments land in the storage tier and the ledger, each is
//! a playable MP4 by ffprobe (codec, duration, no errors), and what the
//! ledger says matches what is stored. Run by the interop suite, which
//! starts the servers and sets `CAMFLEET_RTSP` / `CAMFLEET_RTSP_AUTH`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::db::entities::recording;
use camfleet::recorder::{RecordOptions, RecordStats, Recorder, StreamId};
use camfleet::storage::Storage;
use common::*;
use sea_orm::{EntityTrait, QueryOrder};
use sha2::Digest;

async fn record_for(
    url: &str,
    creds: Option<(String, String)>,
    secs: u64,
) -> (Vec<recording::Model>, Arc<Storage>, RecordStats) {
    let db = test_db().await;
    let store = Arc::new(Storage::memory());
    let rec = Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(db.clone())),
        store.clone(),
        system_clock(),
    );
    let spool = common::scratch("spool");
    let mut opts = RecordOptions::new(spool.clone());
    opts.segment = Duration::from_secs(2);
    let (stop, stopped) = camfleet::shutdown::channel();
    let stream = StreamId {
        device_id: 1,
        site_id: None,
        profile: "Profile_1".into(),
    };
    let u = url::Url::parse(url).unwrap();
    let task = tokio::spawn(async move {
        let mut stats = RecordStats::default();
        let r = rec
            .record(&stream, u, creds, &opts, &mut stats, stopped)
            .await;
        (r, stats)
    });
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.fire();
    let (r, stats) = task.await.unwrap();
    r.unwrap();
    let rows = recording::Entity::find()
        .order_by_asc(recording::Column::StartAt)
        .all(&db)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&spool);
    (rows, store, stats)
}

fn ffprobe(bytes: &[u8]) -> String {
    let path = common::scratch("seg").join("seg.mp4");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,duration,nb_frames",
            "-of",
            "default=nw=1",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.stderr.is_empty(),
        "ffprobe errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn check(url: &str, creds: Option<(String, String)>) {
    check_codecs(url, creds, &["h264"], "avc1").await;
}

/// Record a few seconds; every segment holds these streams (ffprobe
/// names) and the ledger names the video codec.
async fn check_codecs(url: &str, creds: Option<(String, String)>, streams: &[&str], codec: &str) {
    let (rows, store, stats) = record_for(url, creds, 7).await;
    assert!(rows.len() >= 2, "segments: {rows:?} {stats:?}");
    assert_eq!(stats.segments as usize, rows.len());
    for r in &rows {
        let bytes = store.get(&r.storage_key).await.unwrap();
        assert_eq!(bytes.len() as i64, r.bytes);
        assert_eq!(
            camfleet::fleet::recordings::hex(&sha2::Sha256::digest(&bytes)),
            r.checksum
        );
        let probe = ffprobe(&bytes);
        for want in streams {
            assert!(
                probe.contains(&format!("codec_name={want}")),
                "{want}: {probe}"
            );
        }
        let dur: f64 = probe
            .lines()
            .find_map(|l| l.strip_prefix("duration="))
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0);
        // Segments are cut at the first keyframe after 2 s (one a second);
        // the last one ends when the recording is stopped, at any point.
        let last = r.id == rows[rows.len() - 1].id;
        assert!(
            dur < 4.0 && (dur > 1.5 || (last && dur > 0.0)),
            "duration {dur}: {probe}"
        );
        assert_eq!(r.codec, codec);
    }
    // The segments joined into one file (the range download) play too.
    let mut c = camfleet::recorder::mp4::Concat::new();
    let (from, to) = (rows[0].start_at, rows[rows.len() - 1].end_at);
    for r in &rows {
        let bytes = store.get(&r.storage_key).await.unwrap();
        c.add(
            || Ok(std::io::Cursor::new(Vec::new())),
            &bytes,
            r.start_at.timestamp_millis(),
            from.timestamp_millis(),
            to.timestamp_millis(),
        )
        .unwrap();
    }
    let joined = c.finish().unwrap().expect("a joined file").into_inner();
    let probe = ffprobe(&joined);
    for want in streams {
        assert!(
            probe.contains(&format!("codec_name={want}")),
            "joined, {want}: {probe}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the GStreamer RTSP server; run by tests/interop/run.sh"]
async fn records_h264_from_gstreamer_into_playable_segments() {
    let url = std::env::var("CAMFLEET_RTSP").expect("CAMFLEET_RTSP");
    check(&url, None).await;
}

#[tokio::test]
#[ignore = "needs the GStreamer RTSP server; run by tests/interop/run.sh"]
async fn records_h264_with_aac_audio_into_two_track_segments() {
    let url = std::env::var("CAMFLEET_RTSP").expect("CAMFLEET_RTSP");
    check_codecs(&format!("{url}aac"), None, &["h264", "aac"], "avc1").await;
}

#[tokio::test]
#[ignore = "needs the GStreamer RTSP server; run by tests/interop/run.sh"]
async fn records_h265() {
    let url = std::env::var("CAMFLEET_RTSP").expect("CAMFLEET_RTSP");
    check_codecs(&url.replace("/h264", "/h265"), None, &["hevc"], "hvc1").await;
}

/// (pts, dts) of every video packet, and the frames' presentation times
/// in the order a decoder shows them, by ffprobe.
fn packets_and_frames(bytes: &[u8]) -> (Vec<(f64, f64)>, Vec<f64>) {
    let path = common::scratch("b").join("b.mp4");
    std::fs::write(&path, bytes).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-of", "csv=p=0"])
            .args(args)
            .arg(&path)
            .output()
            .expect("ffprobe");
        assert!(
            out.stderr.is_empty(),
            "ffprobe errors: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let packets = run(&["-show_entries", "packet=pts_time,dts_time"])
        .lines()
        .filter_map(|l| {
            let (p, d) = l.split_once(',')?;
            Some((p.parse().ok()?, d.trim_end_matches(',').parse().ok()?))
        })
        .collect();
    let frames = run(&["-show_entries", "frame=pts_time"])
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    let _ = std::fs::remove_file(&path);
    (packets, frames)
}

/// A camera that sends B-frames: every segment and the joined file carry
/// composition offsets, so ffprobe sees decode times that never go back,
/// presentation times that differ from them, and frames shown in order.
#[tokio::test]
#[ignore = "needs the GStreamer RTSP server; run by tests/interop/run.sh"]
async fn records_b_frames_with_composition_offsets() {
    let url = std::env::var("CAMFLEET_RTSP").expect("CAMFLEET_RTSP");
    let (rows, store, stats) = record_for(&url.replace("/h264", "/h264b"), None, 7).await;
    assert!(rows.len() >= 2, "segments: {rows:?} {stats:?}");
    let mut reordered = 0;
    let mut parts = Vec::new();
    for r in &rows {
        let bytes = store.get(&r.storage_key).await.unwrap();
        let (packets, frames) = packets_and_frames(&bytes);
        assert!(packets.len() > 10, "{packets:?}");
        assert!(
            packets.windows(2).all(|w| w[1].1 > w[0].1),
            "decode times strictly increase: {packets:?}"
        );
        assert!(packets.iter().all(|(p, d)| p >= d), "shown after decoded");
        reordered += packets.iter().filter(|(p, d)| (p - d).abs() > 1e-6).count();
        assert!(
            frames.windows(2).all(|w| w[1] > w[0]),
            "frames shown in order: {frames:?}"
        );
        // About 25 fps: the frames span their count in 40 ms steps.
        let span = frames[frames.len() - 1] - frames[0];
        let expect = (frames.len() - 1) as f64 * 0.04;
        assert!(
            (span - expect).abs() < 0.1,
            "span {span} for {} frames",
            frames.len()
        );
        parts.push((bytes, r.start_at.timestamp_millis()));
    }
    assert!(reordered > 0, "the source sent no B-frames");
    let mut c = camfleet::recorder::mp4::Concat::new();
    let (from, to) = (rows[0].start_at, rows[rows.len() - 1].end_at);
    for (bytes, start) in &parts {
        c.add(
            || Ok(std::io::Cursor::new(Vec::new())),
            bytes,
            *start,
            from.timestamp_millis(),
            to.timestamp_millis(),
        )
        .unwrap();
    }
    let joined = c.finish().unwrap().expect("a joined file").into_inner();
    let (packets, frames) = packets_and_frames(&joined);
    assert!(packets.windows(2).all(|w| w[1].1 > w[0].1));
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "joined: {frames:?}");
}

#[tokio::test]
#[ignore = "needs the GStreamer RTSP server; run by tests/interop/run.sh"]
async fn records_from_a_digest_protected_server() {
    let url = std::env::var("CAMFLEET_RTSP_AUTH").expect("CAMFLEET_RTSP_AUTH");
    check(&url, Some(("cam".into(), "secret-pw".into()))).await;
    // Wrong password: a clear error, nothing recorded.
    let db = test_db().await;
    let rec = Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(db.clone())),
        Arc::new(Storage::memory()),
        system_clock(),
    );
    let mut stats = RecordStats::default();
    let (_stop, stopped) = camfleet::shutdown::channel();
    let e = rec
        .record(
            &StreamId {
                device_id: 1,
                site_id: None,
                profile: "p".into(),
            },
            url::Url::parse(&url).unwrap(),
            Some(("cam".into(), "wrong".into())),
            &RecordOptions::new(std::env::temp_dir().join("camfleet-spool-wrong")),
            &mut stats,
            stopped,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("DESCRIBE"), "{e}");
    assert!(recording::Entity::find().all(&db).await.unwrap().is_empty());
}

/// The fleet path: a device whose policy says "record Profile_1" is
/// recorded by the manager, and its status says so.
#[tokio::test]
#[ignore = "needs the GStreamer RTSP server; run by tests/interop/run.sh"]
async fn the_recording_manager_records_a_device_by_its_policy() {
    use camfleet::db::entities::{device, device_profile};
    use sea_orm::{ActiveModelTrait, Set};
    let url = std::env::var("CAMFLEET_RTSP").expect("CAMFLEET_RTSP");
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
        stream_uri: Set(Some(url)),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let store = Arc::new(Storage::memory());
    let spool = common::scratch("spool");
    let mut m = camfleet::fleet::recording::RecordingManager::new(
        db.clone(),
        Arc::new(camfleet::secrets::SecretBox::from_key(1, &[1u8; 32])),
        store.clone(),
        system_clock(),
        spool.clone(),
    );
    m.segment = Duration::from_secs(1);
    m.reconcile_every = Duration::from_millis(200);
    m.stats_every = Duration::from_millis(500);
    let metrics = camfleet::web::metrics::handle().expect("a metrics recorder");
    let (stop, stopped) = camfleet::shutdown::channel();
    let task = tokio::spawn(Arc::new(m).run(stopped, |_| {}));
    let t = tokio::time::Instant::now();
    loop {
        let n = recording::Entity::find().all(&db).await.unwrap().len();
        if n >= 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no segments recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Per-stream metrics, labelled by device (and by node: every counter
    // of the metrics facade carries the node's name).
    let label = format!(
        "{{node=\"{}\",device=\"{}\"}}",
        camfleet::fleet::cluster::this_node(),
        d.id
    );
    let want = [
        "camfleet_recorded_segments_total",
        "camfleet_recording_fps",
        "camfleet_recording_bitrate_bits_per_second",
        "camfleet_recording_frames_lost_total",
        "camfleet_recording_reconnects_total",
    ];
    loop {
        let text = metrics.render();
        if want.iter().all(|m| text.contains(&format!("{m}{label}"))) {
            let fps: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("camfleet_recording_fps{label} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            assert!(fps > 5.0, "fps {fps}: {text}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "metrics: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.recording_status.starts_with("recording"),
        "{}",
        row.recording_status
    );
    stop.fire();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&spool);
}
