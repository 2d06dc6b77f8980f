//! The health poller against the simulator: a fleet with failing cameras of
//! every kind, polled cycle by cycle (the cycles are driven by the test and
//! the clock is a ManualClock shared with the cameras, so nothing waits on
//! the wall clock; only the hanging camera's deadline is real time).

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::clock::{Clock, SharedClock};
use camfleet::db::entities::{device, device_transition, health_sample};
use camfleet::fleet::audit::Actor;
use camfleet::fleet::health::{HealthEvent, HealthState};
use camfleet::fleet::inventory::Inventory;
use camfleet::fleet::poller::{Notice, Poller, PollerConfig};
use camfleet::secrets::SecretBox;
use camfleet::sim::{FleetConfig, Quirks};
use common::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

fn quirks(spec: &str) -> Quirks {
    let mut q = Quirks::default();
    q.apply(spec).unwrap();
    q
}

#[tokio::test]
async fn a_fleet_with_failing_cameras_is_classified_and_tracked() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let mut cfg = FleetConfig::new(8, 0);
    cfg.clock = shared.clone();
    cfg.overrides.insert(1, quirks("hang"));
    cfg.overrides.insert(2, quirks("garbage"));
    cfg.overrides.insert(3, quirks("skew=3600"));
    let fleet = fleet_with(cfg).await;
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[9u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), shared.clone());
    let t = transport_with_timeout(400);
    let mut ids = Vec::new();
    for i in 0..8 {
        // Camera 1 hangs and 2 speaks garbage: adopt them by hand-made
        // records, as if they had been healthy when adopted.
        let src = if i == 1 || i == 2 { 0 } else { i };
        let mut a =
            camfleet::onvif::adopt(&t, &shared, request(fleet.device_url(src), Some(admin())))
                .await
                .unwrap();
        // Each record its own identity (1 and 2 borrow camera 0's answers).
        a.mac = Some(format!("02:00:00:00:01:{i:02x}"));
        a.info.serial_number = format!("ADOPTED-{i}");
        let (d, _) = inv
            .record_adoption(
                &a,
                Some(&format!("urn:uuid:test-{i}")),
                &[],
                Some(&admin()),
                None,
                &Actor::system(),
            )
            .await
            .unwrap();
        let mut am = d.into_active_model();
        am.device_url = Set(if i == 7 {
            // Nothing listens there: connection refused.
            "http://127.0.0.1:1/onvif/device_service".to_string()
        } else {
            fleet.device_url(i)
        });
        am.serial = Set(Some(format!("SERIAL-{i}")));
        let d = am.update(&db).await.unwrap();
        ids.push(d.id);
    }
    // The real cameras' serials, so only the swapped one changes.
    for (i, id) in ids.iter().enumerate() {
        let serial = fleet.cameras()[i].state.lock().unwrap().serial.clone();
        let d = device::Entity::find_by_id(*id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let mut am = d.into_active_model();
        am.serial = Set(Some(serial));
        am.update(&db).await.unwrap();
    }
    let poller = Poller::new(
        db.clone(),
        secrets,
        t,
        shared.clone(),
        PollerConfig {
            deadline: Duration::from_millis(600),
            info_interval: Duration::ZERO,
            ..PollerConfig::default()
        },
    );
    let all = || async { device::Entity::find().all(&db).await.unwrap() };
    let state_of = |id: i32| {
        let db = db.clone();
        async move {
            let d = device::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            (HealthState::parse(&d.status), d)
        }
    };

    let r1 = poller.poll_devices(all().await).await.unwrap();
    assert_eq!(r1.polled, 8);
    assert_eq!(state_of(ids[0]).await.0, HealthState::Online);
    let (s3, d3) = state_of(ids[3]).await;
    assert_eq!(s3, HealthState::Degraded);
    assert!(
        d3.state_reason.contains("clock off by 3600 s"),
        "{}",
        d3.state_reason
    );
    assert!((d3.drift_ms.unwrap() - 3_600_000).abs() < 2_000);

    // Things change on the cameras.
    fleet.cameras()[4].state.lock().unwrap().users[0].password = "rotated-elsewhere".into();
    fleet.cameras()[5].state.lock().unwrap().serial = "SOMEONE-ELSE".into();
    fleet.cameras()[6].state.lock().unwrap().firmware = "V9.9.9".into();

    let mut notices = Vec::new();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        notices.extend(poller.poll_devices(all().await).await.unwrap().notices);
    }
    for (i, want) in [
        (0, HealthState::Online),
        (1, HealthState::Offline),
        (2, HealthState::Offline),
        (3, HealthState::Degraded),
        (4, HealthState::Unauthorized),
        (5, HealthState::Replaced),
        (6, HealthState::Online),
        (7, HealthState::Offline),
    ] {
        let (s, d) = state_of(ids[i]).await;
        assert_eq!(s, want, "camera {i}: {}", d.state_reason);
    }
    let reason = |i: usize| {
        let id = ids[i];
        let state_of = &state_of;
        async move { state_of(id).await.1.state_reason }
    };
    assert!(
        reason(1).await.contains("last timeout"),
        "{}",
        reason(1).await
    );
    assert!(
        reason(2).await.contains("last malformed"),
        "{}",
        reason(2).await
    );
    assert!(
        reason(7).await.contains("last transport"),
        "{}",
        reason(7).await
    );
    assert!(reason(5).await.contains("SOMEONE-ELSE"));
    // The new firmware is stored, and noticed once.
    assert_eq!(state_of(ids[6]).await.1.firmware, "V9.9.9");
    let fw: Vec<&Notice> = notices
        .iter()
        .filter(|n| {
            matches!(
                n,
                Notice::Event {
                    event: HealthEvent::FirmwareChanged { .. },
                    ..
                }
            )
        })
        .collect();
    assert_eq!(fw.len(), 1, "{notices:?}");
    assert!(notices.contains(&Notice::Event {
        device_id: ids[4],
        event: HealthEvent::CredentialsRefused
    }));
    // Transitions are stored with reasons; a sample per poll.
    let tr = device_transition::Entity::find()
        .filter(device_transition::Column::DeviceId.eq(ids[1]))
        .all(&db)
        .await
        .unwrap();
    // Adoption left it online: one failure degrades, the third takes it offline.
    let path: Vec<(&str, &str)> = tr
        .iter()
        .map(|t| (t.from_state.as_str(), t.to_state.as_str()))
        .collect();
    assert_eq!(
        path,
        [("online", "degraded"), ("degraded", "offline")],
        "{tr:?}"
    );
    let samples = health_sample::Entity::find().all(&db).await.unwrap();
    assert_eq!(samples.len(), 24);
    assert_eq!(
        samples.iter().filter(|s| !s.ok).count(),
        3 * 3 + 2,
        "1, 2, 7 ×3; 4 ×2"
    );

    // Rollups summarise the raw samples; the chart series read either.
    let now_ms = clock.now_utc().timestamp_millis() + 10 * 60 * 1000;
    camfleet::fleet::samples::rollup(&db, now_ms).await.unwrap();
    let raw = camfleet::fleet::samples::series(&db, ids[3], now_ms, 3_600_000, 300_000, true)
        .await
        .unwrap();
    let rolled = camfleet::fleet::samples::series(&db, ids[3], now_ms, 3_600_000, 300_000, false)
        .await
        .unwrap();
    assert_eq!(raw.iter().map(|p| p.samples).sum::<i64>(), 3);
    assert_eq!(rolled.iter().map(|p| p.samples).sum::<i64>(), 3);
    assert_eq!(raw[0].availability(), Some(1.0));
    assert!((rolled[0].drift_avg_ms.unwrap() - 3_600_000.0).abs() < 3_000.0);
    let offline =
        camfleet::fleet::samples::series(&db, ids[1], now_ms, 3_600_000, 3_600_000, false)
            .await
            .unwrap();
    assert_eq!(offline[0].availability(), Some(0.0));
    // Past retention, raw samples go; rollups stay.
    camfleet::fleet::samples::rollup(&db, now_ms + 49 * 3_600_000)
        .await
        .unwrap();
    assert!(
        health_sample::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .is_empty()
    );

    // The password is fixed on the camera: two answered polls with an
    // authenticated read bring it back.
    fleet.cameras()[4].state.lock().unwrap().users[0].password = "admin".into();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        poller.poll_devices(all().await).await.unwrap();
    }
    assert_eq!(state_of(ids[4]).await.0, HealthState::Online);
    fleet.shutdown().await;
}

#[tokio::test]
async fn due_devices_are_spread_over_the_interval_and_polled_again_after_it() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let mut cfg = FleetConfig::new(1, 0);
    cfg.clock = shared.clone();
    let fleet = fleet_with(cfg).await;
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[9u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), shared.clone());
    let t = transport();
    let a = camfleet::onvif::adopt(&t, &shared, request(fleet.device_url(0), Some(admin())))
        .await
        .unwrap();
    // Many records of the one camera, as a large fleet adopted at once.
    for i in 0..60 {
        let (d, _) = inv
            .record_adoption(
                &a,
                Some(&format!("urn:uuid:spread-{i}")),
                &[],
                Some(&admin()),
                None,
                &Actor::system(),
            )
            .await
            .unwrap();
        let mut am = d.into_active_model();
        am.mac = Set(Some(format!("02:00:00:00:00:{i:02x}")));
        am.serial = Set(Some(format!("S{i}")));
        am.update(&db).await.unwrap();
    }
    let poller = Poller::new(
        db.clone(),
        secrets,
        t,
        shared.clone(),
        PollerConfig::default(),
    );
    let now = clock.now_utc();
    let due_now = poller.due(now).await.unwrap().len();
    let due_later = poller
        .due(now + chrono::Duration::seconds(61))
        .await
        .unwrap()
        .len();
    assert!(due_now < 10, "not all at once: {due_now}");
    assert_eq!(due_later, 60, "every device within one interval");
    clock.advance(Duration::from_secs(61));
    let r = poller.cycle().await.unwrap();
    assert_eq!(r.polled, 60);
    assert_eq!(poller.due(clock.now_utc()).await.unwrap().len(), 0);
    assert_eq!(
        poller
            .due(clock.now_utc() + chrono::Duration::seconds(60))
            .await
            .unwrap()
            .len(),
        60
    );
    // A site's interval overrides the default for its devices.
    let sites = camfleet::fleet::sites::Sites::new(db.clone(), shared.clone());
    let slow = sites.create("Slow", "", &Actor::system()).await.unwrap().id;
    sites
        .set_poll_interval(slow, Some(300), &Actor::system())
        .await
        .unwrap();
    for d in device::Entity::find().all(&db).await.unwrap() {
        let mut am = d.into_active_model();
        am.site_id = Set(Some(slow));
        am.update(&db).await.unwrap();
    }
    let later = |s: i64| clock.now_utc() + chrono::Duration::seconds(s);
    assert_eq!(poller.due(later(60)).await.unwrap().len(), 0);
    assert_eq!(poller.due(later(301)).await.unwrap().len(), 60);
    fleet.shutdown().await;
}

/// A stored password this process cannot open (the secret key was
/// replaced) is a failure that says so, for the poller as for every other
/// worker, and the camera is not called anonymously instead.
#[tokio::test]
async fn an_unopenable_password_is_reported_and_the_camera_left_alone() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let mut cfg = FleetConfig::new(1, 0);
    cfg.clock = shared.clone();
    let fleet = fleet_with(cfg).await;
    let db = test_db().await;
    let sealed_with = Arc::new(SecretBox::from_key(1, &[9u8; 32]));
    let inv = Inventory::new(db.clone(), sealed_with, shared.clone());
    let t = transport_with_timeout(400);
    let a = camfleet::onvif::adopt(&t, &shared, request(fleet.device_url(0), Some(admin())))
        .await
        .unwrap();
    let (d, _) = inv
        .record_adoption(
            &a,
            Some("urn:uuid:key-test"),
            &[],
            Some(&admin()),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    // Another key: what a restored database without its key file sees.
    let other_key = Arc::new(SecretBox::from_key(2, &[7u8; 32]));
    let other = Inventory::new(db.clone(), other_key.clone(), shared.clone());
    let e = other.credentials_of(&d).await.unwrap_err();
    assert!(
        e.message.contains("cannot be opened with this secret key"),
        "{e}"
    );
    let poller = Poller::new(
        db.clone(),
        other_key,
        t,
        shared.clone(),
        PollerConfig::default(),
    );
    let before = fleet.cameras()[0]
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let r = poller
        .poll_devices(device::Entity::find().all(&db).await.unwrap())
        .await
        .unwrap();
    assert_eq!((r.polled, r.answered), (1, 0));
    assert_eq!(r.failed_by_class.get("unauthorized"), Some(&1));
    assert_eq!(
        fleet.cameras()[0]
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        before,
        "no anonymous call instead"
    );
    let d = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        d.state_reason.contains("cannot be opened"),
        "{}",
        d.state_reason
    );
    fleet.shutdown().await;
}

/// A device whose poll ends early in a batch stays "in flight" until the
/// batch's results are written: freed earlier, it looked due again (its
/// `last_poll_at` not yet stored) and was polled every second while a hung
/// camera held the batch open — three polls per interval in the soak. And
/// the next poll is due an interval after a poll began, not after it ended.
#[tokio::test]
async fn a_device_is_not_due_again_while_its_batch_waits_for_a_hung_camera() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let mut cfg = FleetConfig::new(1, 0);
    cfg.clock = shared.clone();
    let fleet = fleet_with(cfg).await;
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[9u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), shared.clone());
    let t = transport();
    let a = camfleet::onvif::adopt(&t, &shared, request(fleet.device_url(0), Some(admin())))
        .await
        .unwrap();
    // A "camera" that accepts and then says nothing until the test lets go.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("http://{}/onvif/device_service", hung.local_addr().unwrap());
    let mut ids = Vec::new();
    for (i, url) in [fleet.device_url(0), hung_url].into_iter().enumerate() {
        let (d, _) = inv
            .record_adoption(
                &a,
                Some(&format!("urn:uuid:batch-{i}")),
                &[],
                Some(&admin()),
                None,
                &Actor::system(),
            )
            .await
            .unwrap();
        let mut am = d.into_active_model();
        am.device_url = Set(url);
        am.mac = Set(Some(format!("02:00:00:00:02:{i:02x}")));
        am.serial = Set(Some(format!("B{i}")));
        ids.push(am.update(&db).await.unwrap().id);
    }
    let poller = Arc::new(Poller::new(
        db.clone(),
        secrets,
        t,
        shared.clone(),
        PollerConfig {
            // One at a time, the answering camera first: when the hung one
            // is reached, the first poll has ended.
            concurrency: 1,
            deadline: Duration::from_secs(30),
            ..PollerConfig::default()
        },
    ));
    clock.advance(Duration::from_secs(61));
    let mut batch = camfleet::fleet::poller::targets(&db).await.unwrap();
    batch.sort_by_key(|d| d.id);
    let p = poller.clone();
    let run = tokio::spawn(async move { p.poll_devices(batch).await.unwrap() });
    let (conn, _) = hung.accept().await.unwrap();
    assert!(
        poller.due(clock.now_utc()).await.unwrap().is_empty(),
        "nothing of a batch still being written is due again"
    );
    // The hung camera holds on for 5 s, then drops the connection.
    clock.advance(Duration::from_secs(5));
    drop(conn);
    let r = run.await.unwrap();
    assert_eq!(r.polled, 2);
    assert_eq!(r.answered, 1);
    assert!(poller.due(clock.now_utc()).await.unwrap().is_empty());
    // Both are due one interval (60 s) after their polls began, the slow
    // one too: its cadence does not slip by the time it took.
    let due_later = poller
        .due(clock.now_utc() + chrono::Duration::seconds(55))
        .await
        .unwrap();
    assert_eq!(due_later.len(), 2);
    fleet.shutdown().await;
}

/// The rollup a running node repeats reads only the buckets since its last
/// run (and the one before, for polls that ended after it), not the whole
/// two hours; without a last run it reads the two hours.
#[tokio::test]
async fn a_repeated_rollup_reads_only_the_buckets_since_the_last_and_keeps_late_samples() {
    use camfleet::db::entities::health_rollup;
    use camfleet::fleet::samples::{BUCKET_MS, rollup_since};
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let db = test_db().await;
    let t0 = 1_800_000_000_000i64 - 1_800_000_000_000i64.rem_euclid(BUCKET_MS);
    let put = |at: i64| {
        health_sample::ActiveModel {
            device_id: Set(1),
            at_ms: Set(at),
            ok: Set(true),
            latency_ms: Set(Some(10)),
            drift_ms: Set(Some(0)),
            error_class: Set(None),
        }
        .insert(&db)
    };
    for b in 0..3 {
        put(t0 + b * BUCKET_MS + 1_000).await.unwrap();
    }
    let (n, end) = rollup_since(&db, t0 + 3 * BUCKET_MS + 1_000, None)
        .await
        .unwrap();
    assert_eq!((n, end), (3, t0 + 3 * BUCKET_MS), "the whole window first");
    // After that run: a sample of bucket 2 from a poll that ended late, one
    // in bucket 3, and one in bucket 0, which the next run must not read.
    put(t0 + 2 * BUCKET_MS + 299_000).await.unwrap();
    put(t0 + 3 * BUCKET_MS + 2_000).await.unwrap();
    put(t0 + 500).await.unwrap();
    let (n, end2) = rollup_since(&db, t0 + 4 * BUCKET_MS + 1_000, Some(end))
        .await
        .unwrap();
    assert_eq!((n, end2), (2, t0 + 4 * BUCKET_MS), "buckets 2 and 3 only");
    let samples = |rows: &[health_rollup::Model], b: i64| {
        rows.iter()
            .find(|r| r.bucket_ms == t0 + b * BUCKET_MS)
            .map(|r| r.samples)
    };
    let rows = health_rollup::Entity::find().all(&db).await.unwrap();
    assert_eq!(samples(&rows, 0), Some(1), "bucket 0 was not read again");
    assert_eq!(samples(&rows, 2), Some(2), "the late sample of bucket 2");
    assert_eq!(samples(&rows, 3), Some(1));
    // A node without a last run (just started, or just made leader) reads
    // the two hours again.
    rollup_since(&db, t0 + 4 * BUCKET_MS + 1_000, None)
        .await
        .unwrap();
    let rows = health_rollup::Entity::find().all(&db).await.unwrap();
    assert_eq!(samples(&rows, 0), Some(2));
}
