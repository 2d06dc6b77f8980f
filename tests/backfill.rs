//! Edge backfill against the simulator's Profile G services and its RTSP
//! replay (Digest auth, `Require: onvif-replay`, `Range: clock=`,
//! `Rate-Control: no`, the ONVIF RTP header extension): a gap in our copy
//! is filled from the camera's card into playable segments at the right
//! times, a gap the camera lacks too is asked for once and then left, a
//! camera with a skewed clock is asked in its own time, and a camera
//! without on-board recording is reported, not retried.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::clock::{Clock, SharedClock};
use camfleet::db::entities::{backfill, device, recording};
use camfleet::fleet::audit::Actor;
use camfleet::fleet::backfill::Backfill;
use camfleet::fleet::inventory::Inventory;
use camfleet::recorder::mp4::top_boxes;
use camfleet::recorder::rtsp::{RtspClient, RtspError};
use camfleet::secrets::SecretBox;
use camfleet::sim::{Fleet, FleetConfig, QuirkPlan, Quirks};
use camfleet::storage::Storage;
use chrono::{DateTime, Utc};
use common::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

struct Rig {
    fleet: Fleet,
    db: sea_orm::DatabaseConnection,
    store: Arc<Storage>,
    backfill: Backfill,
    id: i32,
    now: DateTime<Utc>,
    _spool: SpoolDir,
}

/// The backfill's spool directory, removed with the rig.
struct SpoolDir(std::path::PathBuf);

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn rig(spec: &str) -> Rig {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let mut q = Quirks::default();
    q.apply(spec).unwrap();
    let mut cfg = FleetConfig::new(1, 0);
    cfg.plan = QuirkPlan::Uniform(q);
    cfg.clock = shared.clone();
    let fleet = Fleet::start(cfg).await.unwrap();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[7u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), shared.clone());
    let a = camfleet::onvif::adopt(
        &transport(),
        &shared,
        request(fleet.device_url(0), Some(admin())),
    )
    .await
    .unwrap();
    let (d, _) = inv
        .record_adoption(&a, None, &[], Some(&admin()), None, &Actor::system())
        .await
        .unwrap();
    let mut am: device::ActiveModel = d.clone().into();
    am.record_profile = Set(Some("Profile_1".into()));
    am.update(&db).await.unwrap();
    let store = Arc::new(Storage::memory());
    let spool = common::scratch("backfill");
    let mut backfill = Backfill::new(
        db.clone(),
        secrets,
        store.clone(),
        transport(),
        shared.clone(),
        spool.clone(),
    );
    backfill.config.max_bytes_per_s = 1 << 30;
    Rig {
        fleet,
        db,
        store,
        backfill,
        id: d.id,
        now: clock.now_utc(),
        _spool: SpoolDir(spool),
    }
}

fn min(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// A live segment in the ledger, as the recorder files it.
async fn live_segment(r: &Rig, from: DateTime<Utc>, to: DateTime<Utc>) {
    recording::ActiveModel {
        device_id: Set(r.id),
        site_id: Set(None),
        profile: Set("Profile_1".into()),
        start_at: Set(from),
        end_at: Set(to),
        bytes: Set(1000),
        codec: Set("avc1".into()),
        checksum: Set(String::new()),
        tier: Set("hot".into()),
        storage_key: Set(format!("live/{}", from.timestamp())),
        created_at: Set(to),
        origin: Set("live".into()),
        ..Default::default()
    }
    .insert(&r.db)
    .await
    .unwrap();
}

async fn edge_segments(r: &Rig) -> Vec<recording::Model> {
    recording::Entity::find()
        .filter(recording::Column::Origin.eq("edge"))
        .order_by_asc(recording::Column::StartAt)
        .all(&r.db)
        .await
        .unwrap()
}

/// Samples in a segment (the `stsz` count).
fn sample_count(mp4: &[u8]) -> u32 {
    let at = mp4.windows(4).position(|w| w == b"stsz").expect("stsz box");
    u32::from_be_bytes(mp4[at + 12..at + 16].try_into().unwrap())
}

#[tokio::test]
async fn a_gap_is_filled_from_the_card_and_a_gap_the_camera_lacks_is_asked_once() {
    let r = rig("digest").await;
    let now = r.now;
    // We recorded 30–20 and 10–5 minutes ago; the camera lost a minute in
    // between (its SD card was busy), 15–14 minutes ago.
    live_segment(&r, now - min(30), now - min(20)).await;
    live_segment(&r, now - min(10), now - min(5)).await;
    r.fleet.cameras()[0]
        .recording
        .lock()
        .unwrap()
        .add_gap(now - min(15), now - min(14));

    let report = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!(report.gaps, 1, "{report:?}");
    assert_eq!(report.filled, 1, "{report:?}");
    let edge = edge_segments(&r).await;
    assert!(
        edge.len() >= 9,
        "about one segment a minute: {}",
        edge.len()
    );
    assert_eq!(edge.len() as u64, report.segments);
    // The first starts at the keyframe at or before the gap, the last
    // reaches its end; nothing is filed for the camera's own gap.
    assert!(edge[0].start_at <= now - min(20));
    assert!(edge[0].start_at > now - min(20) - chrono::Duration::seconds(1));
    let last_end = edge.iter().map(|s| s.end_at).max().unwrap();
    assert!(last_end >= now - min(10) - chrono::Duration::seconds(1));
    assert!(
        !edge.iter().any(|s| s.start_at < now - min(14)
            && s.end_at > now - min(15) + chrono::Duration::seconds(1)),
        "a segment spans the camera's gap"
    );
    for s in &edge {
        let bytes = r.store.get(&s.storage_key).await.unwrap();
        assert_eq!(bytes.len() as i64, s.bytes);
        let kinds: Vec<[u8; 4]> = top_boxes(&bytes).iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [*b"ftyp", *b"moov", *b"free", *b"mdat"]);
        let secs = (s.end_at - s.start_at).num_milliseconds() as f64 / 1000.0;
        let frames = sample_count(&bytes) as f64;
        assert!(
            (frames / secs - 10.0).abs() < 1.0,
            "10 fps: {frames} frames in {secs} s"
        );
        assert_eq!(camfleet::storage::sha256_hex(&bytes), s.checksum);
    }
    let served = r.fleet.cameras()[0]
        .recording
        .lock()
        .unwrap()
        .served
        .clone();
    assert_eq!(served, vec![(now - min(20), Some(now - min(10)))]);

    // What is left is the camera's own gap: asked for once, found empty.
    let again = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!(
        (again.gaps, again.empty, again.segments),
        (1, 1, 0),
        "{again:?}"
    );
    let third = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!(
        third.gaps, 0,
        "an empty gap is not asked for again: {third:?}"
    );
    let rows = backfill::Entity::find().all(&r.db).await.unwrap();
    let states: Vec<&str> = rows.iter().map(|b| b.state.as_str()).collect();
    assert_eq!(states, ["filled", "empty"]);
    r.fleet.shutdown().await;
}

#[tokio::test]
async fn a_camera_with_a_skewed_clock_is_asked_in_its_own_time() {
    let r = rig("skew=3600").await;
    let now = r.now;
    live_segment(&r, now - min(12), now - min(10)).await;
    live_segment(&r, now - min(8), now - min(6)).await;
    let report = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!(report.filled, 1, "{report:?}");
    let served = r.fleet.cameras()[0]
        .recording
        .lock()
        .unwrap()
        .served
        .clone();
    let hour = chrono::Duration::hours(1);
    assert_eq!(served.len(), 1);
    let (from, to) = served[0];
    // Our clock read the camera's within a second or so.
    assert!(
        (from - (now - min(10) + hour)).num_seconds().abs() <= 2,
        "{from}"
    );
    assert!((to.unwrap() - (now - min(8) + hour)).num_seconds().abs() <= 2);
    // And the segments are filed in our time.
    let edge = edge_segments(&r).await;
    assert!((edge[0].start_at - (now - min(10))).num_seconds().abs() <= 3);
    r.fleet.shutdown().await;
}

#[tokio::test]
async fn a_camera_without_on_board_recording_is_reported_once() {
    let r = rig("no-recording").await;
    let now = r.now;
    live_segment(&r, now - min(12), now - min(10)).await;
    live_segment(&r, now - min(8), now - min(6)).await;
    let report = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!((report.gaps, report.empty, report.segments), (1, 1, 0));
    assert!(
        report.log[0].contains("no on-board recording"),
        "{:?}",
        report.log
    );
    let again = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!(again.gaps, 0);
    r.fleet.shutdown().await;
}

#[tokio::test]
async fn the_replay_server_follows_the_streaming_spec() {
    let fleet = one_camera("wsse").await;
    let port = fleet.rtsp_port();
    let url = format!("rtsp://127.0.0.1:{port}/cam0/replay/SD_Main");
    let u = url::Url::parse(&url).unwrap();
    let creds = Some(("admin".to_string(), "admin".to_string()));
    let mut c = RtspClient::connect(&u, creds.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    // No Require: refused; an unknown Require tag: 551 with Unsupported.
    let e = c.request("DESCRIBE", &url, &[]).await.unwrap_err();
    assert!(matches!(e, RtspError::Status { status: 400, .. }), "{e}");
    let e = c
        .request(
            "DESCRIBE",
            &url,
            &[("Require", "onvif-replay, x-fancy".into())],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RtspError::Status { status: 551, .. }), "{e}");
    // Wrong password: refused after the Digest challenge.
    let mut bad = RtspClient::connect(
        &u,
        Some(("admin".into(), "nope".into())),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let e = bad
        .request("DESCRIBE", &url, &[("Require", "onvif-replay".into())])
        .await
        .unwrap_err();
    assert!(matches!(e, RtspError::Auth(_)), "{e}");
    let ok = c
        .request("DESCRIBE", &url, &[("Require", "onvif-replay".into())])
        .await
        .unwrap();
    let sdp = String::from_utf8_lossy(&ok.body).to_string();
    assert!(sdp.contains("a=range:clock="), "{sdp}");
    assert!(sdp.contains("H264/90000"));
    fleet.shutdown().await;
}

/// A camera that records H.265 on its card: the replay is depacketized
/// (RFC 7798), filed as `hvc1` segments with an `hvcC` built from its
/// VPS/SPS/PPS, and they decode (ffprobe, where installed).
#[tokio::test]
async fn an_h265_card_is_replayed_into_hvc1_segments() {
    let r = rig("h265").await;
    let now = r.now;
    live_segment(&r, now - min(12), now - min(10)).await;
    live_segment(&r, now - min(8), now - min(6)).await;
    let report = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!(report.filled, 1, "{report:?}");
    let edge = edge_segments(&r).await;
    assert!(edge.len() >= 2);
    for s in &edge {
        assert_eq!(s.codec, "hvc1");
        let bytes = r.store.get(&s.storage_key).await.unwrap();
        let tracks = camfleet::recorder::mp4::read_tracks(&bytes).unwrap();
        assert_eq!(&tracks[0].sample_entry[4..8], b"hvc1");
        assert_eq!((tracks[0].width, tracks[0].height), (320, 240));
        let secs = (s.end_at - s.start_at).num_milliseconds() as f64 / 1000.0;
        assert!((tracks[0].samples.len() as f64 / secs - 10.0).abs() < 1.0);
        let path = common::scratch("h265").join("h265.mp4");
        std::fs::write(&path, &bytes).unwrap();
        if let Some(out) = ffprobe_output(
            &[
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,nb_read_frames",
            ],
            &path,
        ) {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("codec_name=hevc"), "{text}");
        }
        let _ = std::fs::remove_file(&path);
    }
    r.fleet.shutdown().await;
}

/// A camera that ignores `Range: clock=` and replays its whole card is
/// given up on (failed, to be tried again later), not followed for hours.
#[tokio::test]
async fn a_camera_that_ignores_the_range_is_given_up_on() {
    let r = rig("ignore-range").await;
    let now = r.now;
    live_segment(&r, now - min(12), now - min(10)).await;
    live_segment(&r, now - min(8), now - min(6)).await;
    let report = r
        .backfill
        .run(None, camfleet::shutdown::never())
        .await
        .unwrap();
    assert_eq!((report.failed, report.segments), (1, 0), "{report:?}");
    assert!(
        report.log.iter().any(|l| l.contains("ignored")),
        "{:?}",
        report.log
    );
    assert!(edge_segments(&r).await.is_empty());
    r.fleet.shutdown().await;
}
