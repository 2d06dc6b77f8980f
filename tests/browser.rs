//! The browser test: real headless Chromium (Debian `chromium` +
//! `chromedriver`), driven over WebDriver (fantoccini), against the real
//! server on loopback and a simulated fleet. A technician logs in, runs a
//! multicast discovery (the page follows it live over SSE and reloads when
//! it ends), adopts the cameras, and opens a device page; then, with a few
//! seconds of a camera recorded, plays its day from the timeline and on
//! across segment boundaries.
//!
//! Ignored by default (it needs Chromium); the interop suite runs it
//! inside a loopback-only network namespace:
//! `cargo test --test browser -- --ignored`.

mod common;

use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use camfleet::app::AppState;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::discovery::{DiscoveryConfig, DiscoveryService};
use camfleet::fleet::users::Role;
use camfleet::secrets::SecretBox;
use camfleet::web;
use common::*;
use fantoccini::{ClientBuilder, Locator};

/// Generous bound for one UI step; waiting polls the page, it never
/// sleeps a fixed time.
const STEP: Duration = Duration::from_secs(30);

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group:
        // end them all, even when the test failed half-way.
        let pgid = self.0.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_count(c: &fantoccini::Client, css: &str, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let found = c
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        if found >= n || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver; run by tests/interop/run.sh"]
async fn technician_discovers_adopts_and_opens_a_device_in_chromium() {
    // The fleet answers WS-Discovery on a private port, loopback only.
    let wsd_port = free_udp_port();
    let mut cfg = camfleet::sim::FleetConfig::new(3, 0);
    cfg.wsd = Some(camfleet::sim::WsdConfig {
        port: wsd_port,
        max_delay: Duration::from_millis(100),
        ..Default::default()
    });
    let fleet = fleet_with(cfg).await;

    let db = test_db().await;
    let clock = system_clock();
    let discovery = DiscoveryService::new(
        DiscoveryConfig {
            port: wsd_port,
            window: Duration::from_millis(1500),
            ..DiscoveryConfig::loopback()
        },
        transport(),
        clock.clone(),
    );
    let db_for_recording = db.clone();
    let state = Arc::new(AppState::new(
        db,
        Arc::new(SecretBox::from_key(1, &[5u8; 32])),
        clock,
        discovery,
        false,
    ));
    state
        .users
        .create_with(
            "tech",
            "correct-horse",
            Role::Technician,
            camfleet::fleet::users::NewUser {
                all_sites: true,
                ..Default::default()
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let storage = state.storage.clone();
    let app_state = state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, web::router(state)).await.unwrap();
    });

    let port = free_tcp_port();
    let _driver = Driver(
        std::process::Command::new(
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium-driver)"),
    );
    let profile = common::scratch("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver takes a moment to listen: retry the session, bounded.
    let deadline = tokio::time::Instant::now() + STEP;
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("chromedriver: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };

    // Log in.
    c.goto(&format!("{base}/discovery")).await.unwrap();
    let form = c.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("username", "tech").await.unwrap();
    form.set_by_name("password", "correct-horse").await.unwrap();
    form.submit().await.unwrap();
    c.wait()
        .at_most(STEP)
        .for_element(Locator::Css("select[name=kind]"))
        .await
        .unwrap_or_else(|e| panic!("the discovery page after login: {e}"));
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/discovery")
    );

    // Run a multicast discovery; the run page follows it and reloads.
    c.find(Locator::Css("form[action='/discovery'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let found = wait_for_count(&c, "input[name=result]", 3).await;
    assert_eq!(found, 3, "{}", c.source().await.unwrap_or_default());

    // Adopt all three with the common credentials.
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::XPath("//button[text()='Adopt selected']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let adopted = wait_for_count(&c, "td.outcome a", 3).await;
    assert_eq!(adopted, 3, "{}", c.source().await.unwrap_or_default());

    // Open a device page.
    c.find(Locator::Css("td.outcome a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = c
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(h1.contains("SimCam"), "{h1}");
    let page = c.source().await.unwrap();
    assert!(page.contains("Device service") && page.contains("/snapshot"));
    assert!(!page.contains("admin:admin@"), "no credentials in the page");

    technicians_day(&c, &base, &app_state, &fleet).await;

    // A few seconds of camera 0 recorded in 2 s segments (the recorder
    // against the simulator's RTSP server, into the app's own tier).
    let dev = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        camfleet::db::entities::device::Entity::find()
            .filter(camfleet::db::entities::device::Column::DeviceUrl.eq(fleet.device_url(0)))
            .one(&db_for_recording)
            .await
            .unwrap()
            .expect("camera 0 adopted")
            .id
    };
    let recorder = camfleet::recorder::Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(
            db_for_recording.clone(),
        )),
        storage.clone(),
        system_clock(),
    );
    let spool = common::scratch("browser-spool");
    let mut opts = camfleet::recorder::RecordOptions::new(spool.clone());
    opts.segment = Duration::from_secs(2);
    let (stop, stopped) = camfleet::shutdown::channel();
    let stream = camfleet::recorder::StreamId {
        device_id: dev,
        site_id: None,
        profile: "Profile_1".into(),
    };
    let rtsp =
        url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam0/main", fleet.rtsp_port())).unwrap();
    let rec = tokio::spawn(async move {
        let mut stats = camfleet::recorder::RecordStats::default();
        recorder
            .record(
                &stream,
                rtsp,
                Some(("admin".into(), "admin".into())),
                &opts,
                &mut stats,
                stopped,
            )
            .await
    });
    // Until three segments are filed (the ledger is the app's database).
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let n = camfleet::db::entities::recording::Entity::find()
            .count(&db_for_recording)
            .await
            .unwrap();
        if n >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no segments recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.fire();
    rec.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&spool);

    // The day's timeline: play from the first stretch's start, and the
    // player moves on to the next segment by itself.
    c.goto(&format!("{base}/devices/{dev}/recordings"))
        .await
        .unwrap();
    c.wait()
        .at_most(STEP)
        .for_element(Locator::Css("#timeline .stretch"))
        .await
        .unwrap_or_else(|e| panic!("the timeline: {e}"));
    c.find(Locator::Css("a.play-at"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state_of = || async {
        let v = c
            .execute(
                "const v = document.getElementById('player'); return [v.dataset.segment || '', v.currentTime, v.error ? v.error.code : 0];",
                vec![],
            )
            .await
            .unwrap();
        let a = v.as_array().cloned().unwrap_or_default();
        (
            a.first().and_then(|x| x.as_str()).unwrap_or("").to_string(),
            a.get(1).and_then(|x| x.as_f64()).unwrap_or(0.0),
            a.get(2).and_then(|x| x.as_i64()).unwrap_or(0),
        )
    };
    let deadline = tokio::time::Instant::now() + STEP;
    let (first, _, _) = loop {
        let s = state_of().await;
        assert_eq!(s.2, 0, "the video element failed: {s:?}");
        if !s.0.is_empty() && s.1 > 0.3 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the video never advanced: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        let s = state_of().await;
        assert_eq!(s.2, 0, "the video element failed: {s:?}");
        if s.0 != first && s.1 > 0.1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the player did not go on to the next segment: {s:?} after {first}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A click on the bar plays from that moment; the cursor shows it.
    c.execute(
        "const b = document.getElementById('timeline'), s = b.querySelector('.stretch').getBoundingClientRect();\
         const x = s.left + s.width / 2, y = s.top + s.height / 2;\
         b.dispatchEvent(new MouseEvent('mousedown', {clientX: x, clientY: y, bubbles: true}));\
         window.dispatchEvent(new MouseEvent('mouseup', {clientX: x, clientY: y, bubbles: true}));",
        vec![],
    )
    .await
    .unwrap();
    let cursor = c
        .execute("return !document.getElementById('cursor').hidden;", vec![])
        .await
        .unwrap();
    assert_eq!(cursor, serde_json::json!(true));

    // Live view on the device page: the camera is not recorded now, so an
    // on-demand session feeds Media Source Extensions; the <video> plays
    // on, near the live edge.
    c.goto(&format!("{base}/devices/{dev}")).await.unwrap();
    let live_of = || async {
        let v = c
            .execute(
                "const v = document.querySelector('video.live-view'); const s = document.querySelector('.live-status');\
                 const end = v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;\
                 return [v.currentTime, end, v.error ? v.error.code : 0, s ? s.textContent : ''];",
                vec![],
            )
            .await
            .unwrap();
        let a = v.as_array().cloned().unwrap_or_default();
        (
            a.first().and_then(|x| x.as_f64()).unwrap_or(0.0),
            a.get(1).and_then(|x| x.as_f64()).unwrap_or(0.0),
            a.get(2).and_then(|x| x.as_i64()).unwrap_or(0),
            a.get(3).and_then(|x| x.as_str()).unwrap_or("").to_string(),
        )
    };
    let deadline = tokio::time::Instant::now() + STEP;
    let mut first: Option<f64> = None;
    loop {
        let s = live_of().await;
        assert_eq!(s.2, 0, "the live video failed: {s:?}");
        match first {
            None if s.0 > 0.2 => first = Some(s.0),
            Some(t) if s.0 > t + 1.0 => {
                eprintln!(
                    "live view: playing at {:.2} s, buffered to {:.2} s",
                    s.0, s.1
                );
                assert!(s.1 - s.0 < 2.5, "live view lags the stream: {s:?}");
                assert_eq!(s.3, "live", "{s:?}");
                break;
            }
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live video never advanced: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The grid plays the same camera over its one multiplexed response.
    c.goto(&format!("{base}/live?device={dev}")).await.unwrap();
    let deadline = tokio::time::Instant::now() + STEP;
    let mut first: Option<f64> = None;
    loop {
        let s = live_of().await;
        assert_eq!(s.2, 0, "the grid's video failed: {s:?}");
        match first {
            None if s.0 > 0.2 => first = Some(s.0),
            Some(t) if s.0 > t + 1.0 => {
                eprintln!("grid: playing at {:.2} s, buffered to {:.2} s", s.0, s.1);
                break;
            }
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grid's video never advanced: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Leaving the page ends the camera's stream (the last viewer left).
    c.goto(&format!("{base}/")).await.unwrap();
    let cam0 = fleet.cameras()[0].clone();
    let deadline = tokio::time::Instant::now() + STEP;
    while cam0.live_streams.load(std::sync::atomic::Ordering::Acquire) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live session outlived its last viewer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every width from a phone to a desktop: no page scrolls sideways
    // (tables scroll inside their box), the navigation folds into a menu
    // under 800 px and opens from it; a screenshot of each for people.
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for width in [360u32, 800, 1400] {
        c.set_window_size(width, 900).await.unwrap();
        for (name, path) in [
            ("dashboard", "/".to_string()),
            ("devices", "/devices".to_string()),
            ("device", format!("/devices/{dev}")),
            ("alerts", "/alerts".to_string()),
            ("discovery", "/discovery".to_string()),
        ] {
            c.goto(&format!("{base}{path}")).await.unwrap();
            let png = c.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("{name}-{width}.png")), png).unwrap();
            // The page's width, the window's, and what sticks out (if anything).
            let fit = c
                .execute(
                    "const w = window.innerWidth; let out = '';\
                     for (const e of document.body.querySelectorAll('*')) { const r = e.getBoundingClientRect();\
                       if (r.right > w + 1 && !out) { out = e.tagName + '.' + e.className + ' ' + Math.round(r.right); } }\
                     return [document.documentElement.scrollWidth, w, out];",
                    vec![],
                )
                .await
                .unwrap();
            let (scroll, inner) = (fit[0].as_f64().unwrap(), fit[1].as_f64().unwrap());
            assert!(
                scroll <= inner + 1.0,
                "{name} at {width} px scrolls sideways: {scroll} > {inner} ({})",
                fit[2]
            );
        }
        let menu = c
            .execute(
                "const b = document.querySelector('.nav-toggle'), n = document.getElementById('main-nav');\
                 const before = getComputedStyle(n).display; const shown = getComputedStyle(b).display !== 'none';\
                 if (shown) { b.click(); }\
                 return [shown, before, getComputedStyle(n).display, b.getAttribute('aria-expanded')];",
                vec![],
            )
            .await
            .unwrap();
        if width <= 800 {
            assert_eq!(
                menu,
                serde_json::json!([true, "none", "flex", "true"]),
                "{width}"
            );
        } else {
            assert_eq!(menu[0], serde_json::json!(false), "{width}: {menu}");
        }
    }

    c.close().await.unwrap();
    server.abort();
    let _ = std::fs::remove_dir_all(profile);
    fleet.shutdown().await;
}

/// Click the first element the CSS selector finds, waiting for it.
async fn click(c: &fantoccini::Client, css: &str) {
    c.wait()
        .at_most(STEP)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// Wait until the page's text holds `text`.
async fn wait_for_text(c: &fantoccini::Client, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let page = c.source().await.unwrap_or_default();
        if page.contains(text) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never showed {text:?}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The journeys of a technician's day on three adopted cameras: a
/// profile planned for two cameras ticked in the list and applied to
/// exactly those two; a refused form that keeps what was typed; two
/// alerts acknowledged at once with a note.
async fn technicians_day(
    c: &fantoccini::Client,
    base: &str,
    state: &Arc<AppState>,
    fleet: &camfleet::sim::Fleet,
) {
    use camfleet::fleet::provision::{ProfileSpec, ServersSpec};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    // Device ids by camera (the three were adopted at once, in any order).
    let devices = camfleet::db::entities::device::Entity::find()
        .all(&state.db)
        .await
        .unwrap();
    let ids: Vec<i32> = (0..3)
        .map(|i| {
            devices
                .iter()
                .find(|d| d.device_url == fleet.device_url(i))
                .unwrap_or_else(|| panic!("camera {i} adopted"))
                .id
        })
        .collect();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let shots = shots.clone();
        async move {
            let png = c.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("{name}.png")), png).unwrap();
        }
    };

    // Plan then apply, from the device list, to the two ticked cameras.
    let spec = ProfileSpec {
        ntp: Some(ServersSpec {
            servers: vec!["192.0.2.77".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    state
        .provisioner
        .save_profile(None, "NTP North", None, &spec, &Actor::system())
        .await
        .unwrap();
    c.goto(&format!("{base}/devices")).await.unwrap();
    for id in [ids[0], ids[2]] {
        click(c, &format!("input[name=device][value='{id}']")).await;
    }
    click(c, "details.bulk-more summary").await;
    click(c, "button[value=provision]").await;
    wait_for_text(c, "Provision with a profile: 2 devices?").await;
    shot("journey-bulk-provision").await;
    click(c, "form[action='/provision/plan'] button").await;
    let page = wait_for_text(c, "Plan for 2 devices").await;
    assert!(page.contains("192.0.2.77"), "the plan shows the wanted NTP");
    shot("journey-plan").await;
    click(c, "button[value=apply]").await;
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let task = camfleet::db::entities::provision_task::Entity::find()
            .one(&state.db)
            .await
            .unwrap();
        if task.as_ref().is_some_and(|t| t.status != "running") {
            assert_eq!(task.unwrap().status, "done");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ntp: Vec<Vec<String>> = fleet
        .cameras()
        .iter()
        .map(|cam| cam.state.lock().unwrap().ntp_servers.clone())
        .collect();
    assert_eq!(ntp[0], ["192.0.2.77"]);
    assert_eq!(ntp[2], ["192.0.2.77"]);
    assert_ne!(ntp[1], ["192.0.2.77"], "the camera not ticked is untouched");

    // A refused form keeps what was typed, the error by its field.
    c.goto(&format!("{base}/provision")).await.unwrap();
    let form = c
        .form(Locator::Css("form[action='/provision/profiles']"))
        .await
        .unwrap();
    form.set_by_name("name", "Typo").await.unwrap();
    form.set_by_name("dns_mode", "manual").await.unwrap();
    form.set_by_name("dns_servers", "not-an-ip").await.unwrap();
    click(c, "form[action='/provision/profiles'] button[type=submit]").await;
    wait_for_text(c, "is not an IP address").await;
    let kept = c
        .execute(
            "return [document.querySelector('input[name=name]').value, document.querySelector('input[name=dns_servers]').value, document.querySelector('select[name=dns_mode]').value];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, serde_json::json!(["Typo", "not-an-ip", "manual"]));
    let beside = c
        .execute(
            "const l = document.querySelector('input[name=dns_servers]').closest('label').nextElementSibling; return l ? l.className + ': ' + l.textContent : '';",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        beside
            .as_str()
            .is_some_and(|t| t.starts_with("field-error: DNS servers")),
        "the error beside its field: {beside}"
    );
    c.execute(
        "document.querySelector('input[name=dns_servers]').scrollIntoView({block: 'center'}); return true;",
        vec![],
    )
    .await
    .unwrap();
    shot("journey-form-error").await;

    // Two alerts, acknowledged at once with a note.
    use camfleet::fleet::health::HealthState;
    use camfleet::fleet::poller::Notice;
    state.alerting.ensure_default_rules().await.unwrap();
    let opened = state
        .alerting
        .process(&[ids[0], ids[1]].map(|id| Notice::Transition {
            device_id: id,
            from: HealthState::Online,
            to: HealthState::Offline,
            reason: "3 polls failed in a row".into(),
        }))
        .await
        .unwrap()
        .opened;
    assert_eq!(opened.len(), 2);
    c.goto(&format!("{base}/alerts")).await.unwrap();
    click(c, "#select-all-alerts").await;
    c.find(Locator::Css("input[name=note]"))
        .await
        .unwrap()
        .send_keys("switch replaced")
        .await
        .unwrap();
    click(c, "button[value=acknowledge]").await;
    wait_for_text(c, "Acknowledged 2 alerts.").await;
    shot("journey-alerts-acknowledged").await;
    let states: Vec<String> = camfleet::db::entities::alert::Entity::find()
        .filter(camfleet::db::entities::alert::Column::Id.is_in(opened.clone()))
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(states, ["acknowledged", "acknowledged"]);

    // The dashboard follows the fleet without a reload: a camera that
    // starts refusing its password appears in the panel.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for_text(c, "Cameras that need someone").await;
    c.execute("window.__stayed = true; return true;", vec![])
        .await
        .unwrap();
    set_device_state(
        &state.db,
        ids[1],
        "unauthorized",
        "the camera refused the stored password (browser test)",
    )
    .await;
    wait_for_text(c, "the camera refused the stored password (browser test)").await;
    let stayed = c
        .execute("return window.__stayed === true;", vec![])
        .await
        .unwrap();
    assert_eq!(stayed, serde_json::json!(true), "the page was not reloaded");
    shot("journey-dashboard-live").await;
}
