//! Staged firmware rollouts against the simulator, with a ManualClock
//! shared by camfleet and the cameras: a failing canary stops the waves,
//! the maintenance window is respected, the failure threshold stops a
//! rollout, and a restart of camfleet (a new Firmware over the same
//! database) carries on where it stopped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use camfleet::clock::{Clock, ManualClock, SharedClock};
use camfleet::db::entities::{firmware_rollout, rollout_device};
use camfleet::fleet::audit::Actor;
use camfleet::fleet::firmware::{Firmware, MaintenanceWindow, RolloutPlan};
use camfleet::fleet::health::HealthEvent;
use camfleet::fleet::inventory::Inventory;
use camfleet::fleet::poller::Notice;
use camfleet::secrets::SecretBox;
use camfleet::sim::config::sim_image;
use camfleet::sim::{Fleet, FleetConfig};
use camfleet::storage::Storage;
use common::*;
use sea_orm::{EntityTrait, QueryOrder};

struct Rig {
    fleet: Fleet,
    clock: Arc<ManualClock>,
    db: sea_orm::DatabaseConnection,
    fw: Firmware,
    storage: Arc<Storage>,
    secrets: Arc<SecretBox>,
    ids: Vec<i32>,
    image: i32,
}

async fn rig(n: u32) -> Rig {
    rig_with(n, "").await
}

async fn rig_with(n: u32, spec: &str) -> Rig {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let mut cfg = FleetConfig::new(n, 0);
    let mut q = camfleet::sim::Quirks::default();
    q.apply(spec).unwrap();
    cfg.plan = camfleet::sim::QuirkPlan::Uniform(q);
    cfg.clock = shared.clone();
    let fleet = fleet_with(cfg).await;
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[5u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), shared.clone());
    let mut ids = Vec::new();
    for i in 0..n as usize {
        let a = camfleet::onvif::adopt(
            &transport(),
            &shared,
            request(fleet.device_url(i), Some(admin())),
        )
        .await
        .unwrap();
        let (d, _) = inv
            .record_adoption(&a, None, &[], Some(&admin()), None, &Actor::system())
            .await
            .unwrap();
        ids.push(d.id);
    }
    let storage = Arc::new(Storage::memory());
    let fw = Firmware::new(
        db.clone(),
        storage.clone(),
        secrets.clone(),
        transport(),
        shared,
    );
    let img = fw
        .upload(
            "Sim",
            "*",
            "9.9.9",
            "fixes",
            Bytes::from(sim_image("9.9.9", 64 * 1024)),
            &Actor::system(),
        )
        .await
        .unwrap();
    Rig {
        fleet,
        clock,
        db,
        fw,
        storage,
        secrets,
        ids,
        image: img.id,
    }
}

async fn rollout(r: &Rig) -> firmware_rollout::Model {
    firmware_rollout::Entity::find()
        .one(&r.db)
        .await
        .unwrap()
        .unwrap()
}

async fn devices(r: &Rig) -> Vec<rollout_device::Model> {
    rollout_device::Entity::find()
        .order_by_asc(rollout_device::Column::Id)
        .all(&r.db)
        .await
        .unwrap()
}

async fn statuses(r: &Rig) -> Vec<String> {
    devices(r).await.into_iter().map(|d| d.status).collect()
}

fn firmware_of(r: &Rig, i: usize) -> String {
    r.fleet.cameras()[i].state.lock().unwrap().firmware.clone()
}

/// Tick, then move time by `step`, until the rollout leaves `running` or
/// `limit` of camera time passes. Returns the failure notices seen.
async fn drive(fw: &Firmware, r: &Rig, step: Duration, limit: Duration) -> Vec<Notice> {
    let start = r.clock.now_utc();
    let mut notices = Vec::new();
    loop {
        notices.extend(fw.tick().await.unwrap());
        if rollout(r).await.status != "running" {
            return notices;
        }
        if r.clock.now_utc() - start > chrono::Duration::from_std(limit).unwrap() {
            return notices;
        }
        r.clock.advance(step);
    }
}

#[tokio::test]
async fn a_failing_canary_stops_the_waves() {
    let r = rig(5).await;
    r.fleet.cameras()[0]
        .failures
        .lock()
        .unwrap()
        .returns_old_version = true;
    let plan = RolloutPlan {
        canary: 1,
        wave_size: 2,
        ..Default::default()
    };
    r.fw.create_rollout(r.image, &r.ids, &plan, &Actor::system())
        .await
        .unwrap();
    let before: Vec<String> = (0..5).map(|i| firmware_of(&r, i)).collect();
    let notices = drive(
        &r.fw,
        &r,
        Duration::from_secs(10),
        Duration::from_secs(3600),
    )
    .await;
    let ro = rollout(&r).await;
    assert_eq!(ro.status, "stopped", "{ro:?}");
    assert!(ro.message.contains("canary"), "{}", ro.message);
    let d = devices(&r).await;
    assert_eq!(d[0].status, "failed");
    assert!(
        d[0].message.contains("came back with the old version"),
        "{}",
        d[0].message
    );
    assert!(
        d[1..].iter().all(|x| x.status == "pending"),
        "{:?}",
        statuses(&r).await
    );
    assert_eq!(firmware_of(&r, 0), before[0]);
    for (i, was) in before.iter().enumerate().skip(1) {
        assert_eq!(&firmware_of(&r, i), was, "camera {i} was not touched");
    }
    assert!(matches!(
        &notices[..],
        [Notice::Event {
            event: HealthEvent::FirmwareUpgradeFailed { .. },
            ..
        }]
    ));
    r.fleet.shutdown().await;
}

#[tokio::test]
async fn waves_run_inside_the_window_and_survive_a_restart() {
    let r = rig(4).await;
    // Mondays 02:00–04:00 UTC; the clock starts on a Thursday at 10:00.
    let plan = RolloutPlan {
        canary: 1,
        wave_size: 2,
        window: Some(MaintenanceWindow {
            days: vec![0],
            start_hour: 2,
            end_hour: 4,
            utc_offset_minutes: 0,
        }),
        ..Default::default()
    };
    r.fw.create_rollout(r.image, &r.ids, &plan, &Actor::system())
        .await
        .unwrap();
    r.fw.tick().await.unwrap();
    r.clock.advance(Duration::from_secs(6 * 3600));
    r.fw.tick().await.unwrap();
    assert!(
        statuses(&r).await.iter().all(|s| s == "pending"),
        "nothing outside the window"
    );
    // Monday 02:00.
    let monday: chrono::DateTime<chrono::Utc> = "2026-11-30T02:00:00Z".parse().unwrap();
    r.clock
        .advance((monday - r.clock.now_utc()).to_std().unwrap());
    // The canary goes; part-way, camfleet restarts (a new Firmware over
    // the same database and storage) and carries on.
    r.fw.tick().await.unwrap();
    assert_eq!(devices(&r).await[0].status, "uploading");
    let fw2 = Firmware::new(
        r.db.clone(),
        r.storage.clone(),
        r.secrets.clone(),
        transport(),
        r.clock.clone(),
    );
    drive(
        &fw2,
        &r,
        Duration::from_secs(10),
        Duration::from_secs(2 * 3600),
    )
    .await;
    let ro = rollout(&r).await;
    assert_eq!(ro.status, "done", "{ro:?} {:?}", devices(&r).await);
    assert!(statuses(&r).await.iter().all(|s| s == "done"));
    for i in 0..4 {
        assert_eq!(firmware_of(&r, i), "9.9.9");
    }
    // Every device was started inside the window.
    for d in devices(&r).await {
        let started = d.next_at.unwrap();
        assert!(
            plan.window
                .as_ref()
                .unwrap()
                .contains(started - chrono::Duration::seconds(1)),
            "{d:?}"
        );
    }
    r.fleet.shutdown().await;
}

#[tokio::test]
async fn too_many_failures_stop_the_rollout_and_pause_holds_it() {
    let r = rig(5).await;
    r.fleet.cameras()[1].failures.lock().unwrap().never_returns = true;
    r.fleet.cameras()[2]
        .failures
        .lock()
        .unwrap()
        .upload_rejected = true;
    let plan = RolloutPlan {
        canary: 1,
        wave_size: 2,
        max_failures: 1,
        margin_s: 60,
        ..Default::default()
    };
    let ro =
        r.fw.create_rollout(r.image, &r.ids, &plan, &Actor::system())
            .await
            .unwrap();
    // Paused: nothing starts.
    r.fw.control(ro.id, "pause", &Actor::system())
        .await
        .unwrap();
    r.fw.tick().await.unwrap();
    assert!(statuses(&r).await.iter().all(|s| s == "pending"));
    r.fw.control(ro.id, "resume", &Actor::system())
        .await
        .unwrap();
    drive(
        &r.fw,
        &r,
        Duration::from_secs(10),
        Duration::from_secs(3600),
    )
    .await;
    let ro = rollout(&r).await;
    assert_eq!(ro.status, "stopped", "{ro:?}");
    assert!(ro.message.contains("2 devices failed"), "{}", ro.message);
    let d = devices(&r).await;
    assert_eq!(d[0].status, "done");
    assert!(
        d[1].message.contains("did not come back"),
        "{}",
        d[1].message
    );
    assert!(d[2].message.contains("upload refused"), "{}", d[2].message);
    assert!(d[3..].iter().all(|x| x.status == "pending"));
    // Resumed past the failures: the rest of the waves go on, and the
    // threshold counts new failures only.
    r.fw.control(ro.id, "resume", &Actor::system())
        .await
        .unwrap();
    assert!(rollout(&r).await.message.contains("past 2 failed devices"));
    drive(
        &r.fw,
        &r,
        Duration::from_secs(10),
        Duration::from_secs(3600),
    )
    .await;
    let ro = rollout(&r).await;
    assert_eq!(ro.status, "done", "{ro:?}");
    let d = devices(&r).await;
    assert!(d[3..].iter().all(|x| x.status == "done"), "{d:?}");
    assert_eq!(d.iter().filter(|x| x.status == "failed").count(), 2);
    // The cameras are fixed: a retry tries exactly the failed ones again.
    r.fleet.cameras()[1].come_back();
    r.fleet.cameras()[1].failures.lock().unwrap().never_returns = false;
    r.fleet.cameras()[2]
        .failures
        .lock()
        .unwrap()
        .upload_rejected = false;
    r.fw.control(ro.id, "retry", &Actor::system())
        .await
        .unwrap();
    let d = devices(&r).await;
    assert_eq!(
        d.iter().map(|x| x.status.as_str()).collect::<Vec<_>>(),
        ["done", "pending", "pending", "done", "done"]
    );
    drive(
        &r.fw,
        &r,
        Duration::from_secs(10),
        Duration::from_secs(3600),
    )
    .await;
    let ro = rollout(&r).await;
    assert_eq!(ro.status, "done", "{ro:?}");
    assert!(devices(&r).await.iter().all(|x| x.status == "done"));
    // Nothing failed now: nothing to retry, and a finished rollout is not
    // cancelled.
    let e =
        r.fw.control(ro.id, "retry", &Actor::system())
            .await
            .unwrap_err();
    assert!(e.message.contains("nothing to retry"), "{e}");
    assert!(
        r.fw.control(ro.id, "cancel", &Actor::system())
            .await
            .is_err()
    );
    r.fleet.shutdown().await;
}

#[tokio::test]
async fn cameras_with_only_the_legacy_upgrade_get_the_image_by_mtom() {
    for spec in ["legacy-firmware", "legacy-firmware,digest"] {
        let r = rig_with(2, spec).await;
        let plan = RolloutPlan {
            canary: 1,
            wave_size: 1,
            margin_s: 60,
            ..Default::default()
        };
        r.fw.create_rollout(r.image, &r.ids, &plan, &Actor::system())
            .await
            .unwrap();
        drive(
            &r.fw,
            &r,
            Duration::from_secs(10),
            Duration::from_secs(3600),
        )
        .await;
        let ro = rollout(&r).await;
        assert_eq!(ro.status, "done", "{spec}: {ro:?} {:?}", devices(&r).await);
        for i in 0..2 {
            assert_eq!(firmware_of(&r, i), "9.9.9", "{spec}");
        }
        r.fleet.shutdown().await;
    }
}
