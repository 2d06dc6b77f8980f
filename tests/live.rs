//! Live view against the simulator's RTSP server: viewers of a camera not
//! recorded share one on-demand session that ends (TEARDOWN) with the last
//! viewer; a recorded camera is watched from its recording with no second
//! session; the bytes are fragmented MP4 that ffprobe reads; the caps and
//! the video permission hold through the HTTP route.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use camfleet::fleet::audit::Actor;
use camfleet::recorder::live::{Limits, LiveHub, Viewer};
use camfleet::recorder::mp4::top_boxes;
use common::http::*;
use common::*;

/// A generous bound on things that happen within a second or two.
const STEP: Duration = Duration::from_secs(20);

/// Wait (polling, bounded) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user with `role` on every site, logged in: the session cookie.
async fn user(
    app: &axum::Router,
    state: &camfleet::app::AppState,
    name: &str,
    role: camfleet::fleet::users::Role,
) -> String {
    state
        .users
        .create_with(
            name,
            "correct-horse",
            role,
            camfleet::fleet::users::NewUser {
                all_sites: true,
                sites: vec![],
                must_change_password: false,
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let (_, h, _) = send(app, get("/login", "")).await;
    let csrf = set_cookie_value(&h, "camfleet_login_csrf").unwrap();
    let (_, h, _) = send(
        app,
        post_form(
            "/login",
            &format!("camfleet_login_csrf={csrf}"),
            &format!("username={name}&password=correct-horse&csrf={csrf}"),
        ),
    )
    .await;
    format!(
        "camfleet_session={}",
        set_cookie_value(&h, "camfleet_session").unwrap()
    )
}

/// Read pieces until `n` media fragments came; every piece whole.
async fn read_fragments(v: &mut Viewer, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut frags = 0;
    while frags < n {
        let b = tokio::time::timeout(STEP, v.next())
            .await
            .expect("a piece within the step")
            .expect("the stream goes on");
        let kinds: Vec<[u8; 4]> = top_boxes(&b).iter().map(|x| x.0).collect();
        assert!(
            kinds == [*b"ftyp", *b"moov"] || kinds == [*b"moof", *b"mdat"],
            "{kinds:?}"
        );
        if kinds[0] == *b"moof" {
            frags += 1;
        } else {
            assert_eq!(frags, 0, "an init only first (the parameters stay)");
        }
        out.extend_from_slice(&b);
    }
    out
}

#[tokio::test]
async fn viewers_share_one_on_demand_session_that_ends_with_the_last_one() {
    let fleet = one_camera("").await;
    let cam = fleet.cameras()[0].clone();
    let (_app, state) = app().await;
    let d = adopt_device(&state, &fleet, 0, None).await;
    let hub = Arc::new(LiveHub::default());
    let actor = Actor::system();

    let mut a = state.console.watch_live(&hub, &actor, d.id).await.unwrap();
    let mut b = state.console.watch_live(&hub, &actor, d.id).await.unwrap();
    let bytes_a = read_fragments(&mut a, 25).await;
    let bytes_b = read_fragments(&mut b, 5).await;
    assert_eq!(hub.sessions(), 1);
    assert_eq!(
        cam.live_streams.load(Ordering::Acquire),
        1,
        "one RTSP session for two viewers"
    );
    assert_eq!(hub.viewers(), 2);
    // Both start at the init segment and a keyframe.
    for bytes in [&bytes_a, &bytes_b] {
        let boxes = top_boxes(bytes);
        assert_eq!(boxes[0].0, *b"ftyp");
        assert_eq!(boxes[2].0, *b"moof");
    }

    // A third viewer, joining late, starts at once from the last keyframe.
    let mut c = state.console.watch_live(&hub, &actor, d.id).await.unwrap();
    read_fragments(&mut c, 1).await;
    assert_eq!(cam.live_plays.load(Ordering::Acquire), 1);
    drop(c);

    // ffprobe reads the stream as H.264 video with the frames received.
    let path = common::scratch("live").join("live.mp4");
    std::fs::write(&path, &bytes_a).unwrap();
    if let Some(out) = ffprobe_output(
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ],
        &path,
    ) {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fields: Vec<&str> = text.trim().split(',').collect();
        assert_eq!(fields[0], "h264", "{text}");
        let frames: u32 = fields[3].parse().unwrap_or(0);
        assert!(frames >= 25, "{text}");
    }
    let _ = std::fs::remove_file(&path);

    // One viewer leaves: the session stays; the last leaves: TEARDOWN.
    drop(a);
    read_fragments(&mut b, 2).await;
    assert_eq!(cam.live_streams.load(Ordering::Acquire), 1);
    drop(b);
    until("the camera's stream closed", || {
        cam.live_streams.load(Ordering::Acquire) == 0
    })
    .await;
    until("the session counted out", || hub.sessions() == 0).await;
    assert_eq!(hub.viewers(), 0);

    // Watching again opens a new session; the viewer gets the init segment
    // (kept from before) first, then the new session's first keyframe.
    let mut again = state.console.watch_live(&hub, &actor, d.id).await.unwrap();
    let bytes = read_fragments(&mut again, 2).await;
    assert_eq!(top_boxes(&bytes)[0].0, *b"ftyp");
    assert_eq!(cam.live_plays.load(Ordering::Acquire), 2);
    drop(again);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_recorded_camera_is_watched_from_its_recording_without_a_second_session() {
    let fleet = one_camera("").await;
    let cam = fleet.cameras()[0].clone();
    let (_app, state) = app().await;
    let d = adopt_device(&state, &fleet, 0, None).await;
    let hub = Arc::new(LiveHub::default());

    let recorder = camfleet::recorder::Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(state.db.clone())),
        state.storage.clone(),
        system_clock(),
    );
    let spool = common::scratch("live-spool");
    let mut opts = camfleet::recorder::RecordOptions::new(spool.clone());
    opts.live = Some(hub.channel(d.id));
    hub.set_recorded(d.id, true);
    let (stop, stopped) = camfleet::shutdown::channel();
    let stream = camfleet::recorder::StreamId {
        device_id: d.id,
        site_id: None,
        profile: "Profile_1".into(),
    };
    let url =
        url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam0/main", fleet.rtsp_port())).unwrap();
    let rec = tokio::spawn(async move {
        let mut stats = camfleet::recorder::RecordStats::default();
        recorder
            .record(
                &stream,
                url,
                Some(("admin".into(), "admin".into())),
                &opts,
                &mut stats,
                stopped,
            )
            .await
    });
    until("the recording plays", || {
        cam.live_streams.load(Ordering::Acquire) == 1
    })
    .await;

    let mut v = state
        .console
        .watch_live(&hub, &Actor::system(), d.id)
        .await
        .unwrap();
    read_fragments(&mut v, 12).await;
    assert_eq!(hub.sessions(), 0, "no on-demand session");
    assert_eq!(
        cam.live_plays.load(Ordering::Acquire),
        1,
        "only the recorder's session"
    );

    // The recording stops while someone watches: an on-demand session
    // takes over, and the viewer's stream goes on.
    stop.fire();
    rec.await.unwrap().unwrap();
    hub.set_recorded(d.id, false);
    read_fragments(&mut v, 12).await;
    assert_eq!(hub.sessions(), 1);
    drop(v);
    until("the on-demand session ends", || hub.sessions() == 0).await;
    let _ = std::fs::remove_dir_all(&spool);
    fleet.shutdown().await;
}

#[tokio::test]
async fn the_route_streams_mp4_and_enforces_caps_and_the_video_permission() {
    use axum::http::StatusCode;
    use camfleet::fleet::users::Role;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let fleet = one_camera("").await;
    let (app, state) = app().await;
    let d = adopt_device(&state, &fleet, 0, None).await;
    let tech = user(&app, &state, "tech", Role::Technician).await;
    let buyer = user(&app, &state, "buyer", Role::Procurement).await;
    let path = format!("/devices/{}/live.mp4", d.id);

    // Procurement does not watch video.
    let (status, _, _) = send(&app, get(&path, &buyer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A technician gets the stream: video/mp4, not cached, not buffered
    // by a proxy, starting with the init segment.
    let resp = app.clone().oneshot(get(&path, &tech)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < 64 * 1024 {
        let frame = tokio::time::timeout(STEP, body.frame())
            .await
            .expect("bytes within the step")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(&got[4..8], b"ftyp");
    assert_eq!(state.live.viewers(), 1);

    // The per-camera cap (the app's default hub: 8), then the route refuses
    // with the reason.
    let mut held = Vec::new();
    for _ in 1..Limits::default().viewers_per_camera {
        let r = app.clone().oneshot(get(&path, &tech)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let (status, _, text) = send(&app, get(&path, &tech)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("already watch this camera"), "{text}");

    // The grid page: a tile per camera for the technician, none of it for
    // procurement.
    let (status, _, page) = send(&app, get(&format!("/live?device={}", d.id), &tech)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("data-mux=\"/live/grid.bin?device={}\"", d.id)),
        "{page}"
    );
    let (status, _, _) = send(&app, get("/live", &buyer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Closing the responses (the browsers leaving) gives the places back.
    drop(held);
    drop(body);
    until("every viewer gone", || state.live.viewers() == 0).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_grid_is_one_response_with_a_frame_per_piece_and_a_reason_for_a_tile_without_video() {
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let fleet = one_camera("").await;
    let (app, state) = app().await;
    let d = adopt_device(&state, &fleet, 0, None).await;
    // A device row with no camera behind it and no stream address.
    let site = make_site(&state, "North").await;
    let bare = seed_device(&state, site, 1).await;
    let cookie = user(
        &app,
        &state,
        "tech",
        camfleet::fleet::users::Role::Technician,
    )
    .await;
    let resp = app
        .clone()
        .oneshot(get(
            &format!("/live/grid.bin?device={bare}&device={}", d.id),
            &cookie,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    // (kind, tile, payload) frames until tile 1 has an init and fragments.
    let mut frames: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    while frames.iter().filter(|f| f.0 == 0 && f.1 == 1).count() < 10 {
        let chunk = tokio::time::timeout(STEP, body.frame())
            .await
            .expect("bytes within the step")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = chunk.into_data() {
            buf.extend_from_slice(&data);
        }
        while buf.len() >= 6 {
            let len = u32::from_be_bytes(buf[2..6].try_into().unwrap()) as usize;
            if buf.len() < 6 + len {
                break;
            }
            frames.push((buf[0], buf[1], buf[6..6 + len].to_vec()));
            buf.drain(..6 + len);
        }
    }
    // Tile 0 (the bare row, in the order asked): the reason, no video.
    assert_eq!((frames[0].0, frames[0].1), (1, 0));
    let why = String::from_utf8_lossy(&frames[0].2).to_string();
    assert!(why.contains("no stream address"), "{why}");
    assert!(!frames.iter().any(|f| f.0 == 0 && f.1 == 0));
    // Tile 1: the camera's MP4, init first.
    let video: Vec<&(u8, u8, Vec<u8>)> = frames.iter().filter(|f| f.1 == 1).collect();
    assert_eq!(&video[0].2[4..8], b"ftyp");
    assert_eq!(state.live.viewers(), 1, "the refused tile holds no place");
    drop(body);
    until("the grid's viewer gone", || state.live.viewers() == 0).await;
    fleet.shutdown().await;
}
