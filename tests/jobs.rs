//! Scheduled jobs with a ManualClock: cron slots in a time zone, the
//! missed-run policy, one run at a time, runs recorded with their log,
//! and the storage kinds against the ledger: retention (nothing outside
//! the ledger is touched), scrub, tier migration; plus interrupted runs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use camfleet::clock::{Clock, SharedClock};
use camfleet::db::entities::{job_run, recording};
use camfleet::fleet::audit::Actor;
use camfleet::fleet::firmware::Firmware;
use camfleet::fleet::jobs::{JobContext, Jobs};
use camfleet::fleet::provision::Provisioner;
use camfleet::fleet::recordings::hex;
use camfleet::secrets::SecretBox;
use camfleet::storage::Storage;
use common::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use sha2::Digest;

struct Rig {
    jobs: Arc<Jobs>,
    firmware: Arc<Firmware>,
    clock: Arc<camfleet::clock::ManualClock>,
    db: sea_orm::DatabaseConnection,
    hot: Arc<Storage>,
    cold: Arc<Storage>,
}

async fn rig() -> Rig {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[2u8; 32]));
    let hot = Arc::new(Storage::memory());
    let cold = Arc::new(Storage::memory());
    let firmware = Arc::new(Firmware::new(
        db.clone(),
        hot.clone(),
        secrets.clone(),
        transport(),
        shared.clone(),
    ));
    let jobs = Arc::new(Jobs::new(JobContext {
        db: db.clone(),
        clock: shared.clone(),
        tiers: [
            ("hot".to_string(), hot.clone()),
            ("cold".to_string(), cold.clone()),
        ]
        .into_iter()
        .collect(),
        provisioner: Arc::new(Provisioner::new(
            db.clone(),
            secrets.clone(),
            transport_with_timeout(500),
            shared.clone(),
        )),
        firmware: firmware.clone(),
        discovery: None,
        data_dir: None,
        backfill: None,
    }));
    Rig {
        jobs,
        firmware,
        clock,
        db,
        hot,
        cold,
    }
}

async fn tick_and_wait(r: &Rig) -> usize {
    let started = r.jobs.tick().await.unwrap();
    let n = started.len();
    for h in started {
        h.await.unwrap();
    }
    n
}

async fn runs(r: &Rig, job: i32) -> Vec<job_run::Model> {
    job_run::Entity::find()
        .filter(job_run::Column::JobId.eq(job))
        .order_by_asc(job_run::Column::Id)
        .all(&r.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn jobs_run_on_their_slots_and_missed_runs_follow_the_policy() {
    let r = rig().await;
    let quarter = r
        .jobs
        .save(
            None,
            "rollup",
            "health_rollup",
            "*/15 * * * *",
            "UTC",
            json!({}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    // A bad schedule or zone is refused with the reason.
    let e = r
        .jobs
        .save(
            None,
            "bad",
            "health_rollup",
            "*/15 * * *",
            "UTC",
            json!({}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("4 fields"), "{e}");
    let e = r
        .jobs
        .save(
            None,
            "bad",
            "health_rollup",
            "0 3 * * *",
            "Mars/Base",
            json!({}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown time zone"), "{e}");
    assert_eq!(tick_and_wait(&r).await, 0, "nothing due at creation");
    r.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(tick_and_wait(&r).await, 1);
    r.clock.advance(Duration::from_secs(60));
    assert_eq!(tick_and_wait(&r).await, 0, "one run per slot");
    let done = runs(&r, quarter.id).await;
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].trigger.as_str(), done[0].outcome.as_str()),
        ("schedule", "ok")
    );
    assert!(done[0].log.contains("rolled up"), "{}", done[0].log);

    // Daily at 03:00 Berlin; camfleet is down for three days.
    let skip = r
        .jobs
        .save(
            None,
            "daily-skip",
            "health_rollup",
            "0 3 * * *",
            "Europe/Berlin",
            json!({}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    let once = r
        .jobs
        .save(
            None,
            "daily-once",
            "health_rollup",
            "0 3 * * *",
            "Europe/Berlin",
            json!({}),
            true,
            "run_once",
            &Actor::system(),
        )
        .await
        .unwrap();
    r.clock.advance(Duration::from_secs(3 * 86_400));
    tick_and_wait(&r).await;
    assert!(runs(&r, skip.id).await.is_empty(), "missed runs skipped");
    let caught = runs(&r, once.id).await;
    assert_eq!(caught.len(), 1, "one catch-up run, not three");
    assert_eq!(caught[0].trigger, "catch_up");
    // And the schedule carries on from there.
    let next_slot: chrono::DateTime<chrono::Utc> =
        caught[0].scheduled_for.unwrap() + chrono::Duration::days(1);
    r.clock
        .advance((next_slot - r.clock.now_utc()).to_std().unwrap() + Duration::from_secs(1));
    tick_and_wait(&r).await;
    assert_eq!(runs(&r, skip.id).await.len(), 1);
    assert_eq!(runs(&r, skip.id).await[0].trigger, "schedule");
}

#[tokio::test]
async fn one_run_at_a_time_and_interrupted_runs_are_marked() {
    let r = rig().await;
    // A config backup of a hanging camera takes its full deadline.
    let f = one_camera("hang").await;
    let now = chrono::Utc::now();
    camfleet::db::entities::device::ActiveModel {
        device_url: Set(f.device_url(0)),
        xaddrs: Set(json!([])),
        status: Set("online".into()),
        quirks: Set(json!([])),
        policy: Set(json!({})),
        adopted_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&r.db)
    .await
    .unwrap();
    let j = r
        .jobs
        .save(
            None,
            "backup",
            "config_backup",
            "0 2 * * *",
            "UTC",
            json!({}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    let first = r.jobs.run_now(j.id, &Actor::system()).await.unwrap();
    let second = r.jobs.run_now(j.id, &Actor::system()).await.unwrap_err();
    assert!(second.to_string().contains("already running"), "{second}");
    first.await.unwrap();
    let done = runs(&r, j.id).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, "failed", "{}", done[0].log);
    assert!(done[0].log.contains("saved 0 of 1"), "{}", done[0].log);
    // A run left `running` by a crash is interrupted at start-up.
    job_run::ActiveModel {
        job_id: Set(j.id),
        trigger: Set("schedule".into()),
        started_at: Set(r.clock.now_utc()),
        outcome: Set("running".into()),
        log: Set(String::new()),
        ..Default::default()
    }
    .insert(&r.db)
    .await
    .unwrap();
    assert_eq!(r.jobs.recover(&[]).await.unwrap(), 1);
    assert_eq!(runs(&r, j.id).await[1].outcome, "interrupted");
    f.shutdown().await;
}

async fn segment(
    r: &Rig,
    device: i32,
    hours_ago: i64,
    body: &[u8],
    tier: &str,
) -> recording::Model {
    let start = r.clock.now_utc() - chrono::Duration::hours(hours_ago);
    let key = format!("rec/{device}/{}.mp4", start.timestamp());
    let store = if tier == "hot" { &r.hot } else { &r.cold };
    store.put(&key, Bytes::copy_from_slice(body)).await.unwrap();
    recording::ActiveModel {
        device_id: Set(device),
        site_id: Set(None),
        profile: Set("Profile_1".into()),
        start_at: Set(start),
        end_at: Set(start + chrono::Duration::seconds(60)),
        bytes: Set(body.len() as i64),
        codec: Set("h264".into()),
        checksum: Set(hex(&sha2::Sha256::digest(body))),
        tier: Set(tier.into()),
        storage_key: Set(key),
        created_at: Set(start),
        ..Default::default()
    }
    .insert(&r.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn retention_scrub_and_tier_migration_work_from_the_ledger() {
    let r = rig().await;
    let mp4 = |n: u8| {
        let mut v = vec![0, 0, 0, 24];
        v.extend_from_slice(b"ftypisom");
        v.extend(std::iter::repeat_n(n, 100));
        v
    };
    let old = segment(&r, 1, 24 * 40, &mp4(1), "hot").await;
    let mid = segment(&r, 1, 24 * 10, &mp4(2), "hot").await;
    let new = segment(&r, 1, 1, &mp4(3), "hot").await;
    // Not in the ledger: never deleted.
    r.hot
        .put("rec/1/orphan.mp4", Bytes::from_static(b"unknown"))
        .await
        .unwrap();
    let sweep = r
        .jobs
        .save(
            None,
            "retention",
            "retention_sweep",
            "17 * * * *",
            "UTC",
            json!({"tier": "hot", "max_age_days": 30}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    r.jobs
        .run_now(sweep.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let log = runs(&r, sweep.id).await[0].log.clone();
    assert!(log.contains("deleted 1 segments"), "{log}");
    assert!(r.hot.get(&old.storage_key).await.is_err());
    assert!(r.hot.get("rec/1/orphan.mp4").await.is_ok());
    assert!(
        recording::Entity::find_by_id(old.id)
            .one(&r.db)
            .await
            .unwrap()
            .is_none()
    );
    // Scrub finds a corrupted segment.
    r.hot
        .put(&mid.storage_key, Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    let scrub = r
        .jobs
        .save(
            None,
            "scrub",
            "storage_scrub",
            "0 5 * * *",
            "UTC",
            json!({"tier": "hot", "stride": 1}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    r.jobs
        .run_now(scrub.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let run = runs(&r, scrub.id).await.remove(0);
    assert_eq!(run.outcome, "failed");
    assert!(run.log.contains("checksum mismatch"), "{}", run.log);
    // Migration moves the week-old segment to cold, verified, and only it.
    r.hot
        .put(&mid.storage_key, Bytes::from(mp4(2)))
        .await
        .unwrap();
    let migrate = r
        .jobs
        .save(
            None,
            "to cold",
            "tier_migration",
            "0 1 * * *",
            "UTC",
            json!({"from": "hot", "to": "cold", "after_days": 7}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    r.jobs
        .run_now(migrate.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let run = runs(&r, migrate.id).await.remove(0);
    assert_eq!(run.outcome, "ok", "{}", run.log);
    assert!(run.log.contains("moved 1 segments"), "{}", run.log);
    assert_eq!(
        &r.cold.get(&mid.storage_key).await.unwrap()[..],
        &mp4(2)[..]
    );
    assert!(r.hot.get(&mid.storage_key).await.is_err());
    let moved = recording::Entity::find_by_id(mid.id)
        .one(&r.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.tier, "cold");
    let kept = recording::Entity::find_by_id(new.id)
        .one(&r.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.tier, "hot");
}

#[tokio::test]
async fn low_free_space_purges_oldest_first_and_tells_the_noc_once() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let dir = common::scratch("jobs");
    let hot = Arc::new(Storage::local(&dir).unwrap());
    let secrets = Arc::new(SecretBox::from_key(1, &[2u8; 32]));
    let firmware = Arc::new(Firmware::new(
        db.clone(),
        hot.clone(),
        secrets.clone(),
        transport(),
        shared.clone(),
    ));
    let jobs = Arc::new(Jobs::new(JobContext {
        db: db.clone(),
        clock: shared.clone(),
        tiers: [("hot".to_string(), hot.clone())].into_iter().collect(),
        provisioner: Arc::new(Provisioner::new(
            db.clone(),
            secrets.clone(),
            transport(),
            shared.clone(),
        )),
        firmware: firmware.clone(),
        discovery: None,
        data_dir: None,
        backfill: None,
    }));
    let r = Rig {
        jobs: jobs.clone(),
        firmware,
        clock,
        db: db.clone(),
        hot: hot.clone(),
        cold: Arc::new(Storage::memory()),
    };
    let a = segment(&r, 1, 3, b"\0\0\0\x10ftypisom-oldest", "hot").await;
    let b = segment(&r, 1, 2, b"\0\0\0\x10ftypisom-newer", "hot").await;
    camfleet::db::entities::notify_channel::ActiveModel {
        name: Set("noc".into()),
        kind: Set("webhook".into()),
        config: Set(json!({"url": "http://127.0.0.1:9/hook"})),
        sealed: Set(None),
        enabled: Set(true),
        created_at: Set(r.clock.now_utc()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    // More free space wanted than any disk has: an emergency.
    let free = hot.free_bytes().unwrap() as i64;
    let j = jobs
        .save(
            None,
            "retention",
            "retention_sweep",
            "17 * * * *",
            "UTC",
            json!({"tier": "hot", "min_free_bytes": free * 4}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    jobs.run_now(j.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let run = runs(&r, j.id).await.remove(0);
    assert!(run.log.contains("STORAGE LOW"), "{}", run.log);
    assert!(run.log.contains("deleted 2 segments"), "{}", run.log);
    assert!(run.log.contains("1 notifications queued"), "{}", run.log);
    assert!(hot.get(&a.storage_key).await.is_err() && hot.get(&b.storage_key).await.is_err());
    // A second sweep within the hour does not notify again.
    segment(&r, 1, 1, b"\0\0\0\x10ftypisom-again", "hot").await;
    jobs.run_now(j.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let deliveries = camfleet::db::entities::delivery::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].subject.contains("Storage low on tier hot"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The configuration backup keeps camfleet's settings snapshot and the
/// camera's own backup (GetSystemBackup), whether the camera sends the
/// file as an MTOM attachment or inline.
#[tokio::test]
async fn configuration_backup_keeps_the_cameras_own_backup_files() {
    let r = rig().await;
    let mtom = one_camera("noauth").await;
    let inline = one_camera("noauth,inline-backup").await;
    let mut ids = Vec::new();
    for f in [&mtom, &inline] {
        let now = chrono::Utc::now();
        let d = camfleet::db::entities::device::ActiveModel {
            device_url: Set(f.device_url(0)),
            xaddrs: Set(json!([])),
            status: Set("online".into()),
            quirks: Set(json!([])),
            policy: Set(json!({})),
            adopted_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&r.db)
        .await
        .unwrap();
        ids.push(d.id);
    }
    let j = r
        .jobs
        .save(
            None,
            "backup",
            "config_backup",
            "0 2 * * *",
            "UTC",
            json!({}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    r.jobs
        .run_now(j.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let done = runs(&r, j.id).await;
    assert_eq!(done[0].outcome, "ok", "{}", done[0].log);
    assert!(
        done[0]
            .log
            .contains("saved 2 of 2 configurations and 2 camera backup files"),
        "{}",
        done[0].log
    );
    let keys = r.hot.list("config-backups", 100).await.unwrap();
    for id in ids {
        let file = keys
            .iter()
            .find(|(k, _)| {
                k.starts_with(&format!("config-backups/{id}/")) && k.ends_with("-settings.json")
            })
            .unwrap_or_else(|| panic!("no camera backup for device {id}: {keys:?}"));
        let body = r.hot.get(&file.0).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["hostname"].as_str().is_some_and(|h| !h.is_empty()), "{v}");
    }
    mtom.shutdown().await;
    inline.shutdown().await;
}

/// An installation upgraded to edge backfill gets its default job once
/// (migration 15); a fresh one gets it with the other defaults; a job the
/// user deleted does not come back.
#[tokio::test]
async fn upgraded_installations_get_the_edge_backfill_job_once() {
    use camfleet::db::entities::job;
    use migration::MigratorTrait;
    let raw = raw_test_db().await;
    // The database as the previous release left it: migrations up to 14
    // and the default jobs of that time.
    migration::Migrator::up(&raw, Some(14)).await.unwrap();
    let now = chrono::Utc::now();
    job::ActiveModel {
        name: Set("Retention sweep".into()),
        kind: Set("retention_sweep".into()),
        schedule: Set("17 * * * *".into()),
        timezone: Set("UTC".into()),
        params: Set(json!({"tier": "hot"})),
        enabled: Set(true),
        missed_policy: Set("skip".into()),
        last_scheduled_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&raw)
    .await
    .unwrap();
    migration::Migrator::up(&raw, None).await.unwrap();
    let seeded = job::Entity::find()
        .filter(job::Column::Kind.eq("edge_backfill"))
        .all(&raw)
        .await
        .unwrap();
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].schedule, "*/10 * * * *");
    assert!(seeded[0].enabled);
    assert!((seeded[0].created_at - now).num_seconds().abs() < 120);
    // Deleted by the user: a later start (migrations already applied)
    // does not bring it back.
    job::Entity::delete_by_id(seeded[0].id)
        .exec(&raw)
        .await
        .unwrap();
    migration::Migrator::up(&raw, None).await.unwrap();
    assert!(
        job::Entity::find()
            .filter(job::Column::Kind.eq("edge_backfill"))
            .all(&raw)
            .await
            .unwrap()
            .is_empty()
    );
    // A fresh installation: migration 15 finds no jobs; the defaults,
    // edge backfill among them, come from ensure_defaults.
    let r = rig().await;
    r.jobs.ensure_defaults().await.unwrap();
    assert!(
        r.jobs
            .list()
            .await
            .unwrap()
            .iter()
            .any(|j| j.kind == "edge_backfill")
    );
}

async fn plain_device(
    db: &sea_orm::DatabaseConnection,
    url: &str,
    model: &str,
    firmware: &str,
    drift_ms: Option<i64>,
) -> i32 {
    let now = chrono::Utc::now();
    camfleet::db::entities::device::ActiveModel {
        name: Set(format!("{model}-{firmware}")),
        device_url: Set(url.into()),
        xaddrs: Set(json!([])),
        status: Set("online".into()),
        quirks: Set(json!([])),
        policy: Set(json!({})),
        model: Set(model.into()),
        firmware: Set(firmware.into()),
        drift_ms: Set(drift_ms),
        adopted_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

async fn run_job(r: &Rig, kind: &str, params: serde_json::Value) -> job_run::Model {
    let name = format!("{kind} {}", uuid::Uuid::new_v4());
    let j = r
        .jobs
        .save(
            None,
            &name,
            kind,
            "0 3 * * *",
            "UTC",
            params,
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    r.jobs
        .run_now(j.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    runs(r, j.id).await.pop().unwrap()
}

/// The four job kinds that had no test: firmware audit, time sync check
/// (which reports clocks off as a failed run, and fixes them on request),
/// database maintenance, and rediscovery (a sweep of one address).
#[tokio::test]
async fn firmware_audit_time_sync_maintenance_and_rediscovery_do_their_work() {
    let r = rig().await;
    // Firmware audit: one approved image for NC-*; one camera behind it.
    let img = r
        .firmware
        .upload(
            "Nc",
            "NC-*",
            "2.0",
            "",
            bytes::Bytes::from_static(b"image"),
            &Actor::system(),
        )
        .await
        .unwrap();
    r.firmware.approve(img.id, &Actor::system()).await.unwrap();
    plain_device(
        &r.db,
        "http://127.0.0.1:1/onvif/device_service",
        "NC-P1455",
        "1.0",
        None,
    )
    .await;
    plain_device(
        &r.db,
        "http://127.0.0.1:1/onvif/device_service",
        "NC-P1455",
        "2.0",
        None,
    )
    .await;
    plain_device(
        &r.db,
        "http://127.0.0.1:1/onvif/device_service",
        "LX-200",
        "0.1",
        None,
    )
    .await;
    let run = run_job(&r, "firmware_audit", json!({})).await;
    assert_eq!(run.outcome, "ok", "{}", run.log);
    assert!(
        run.log
            .starts_with("1 of 3 devices behind their approved firmware:"),
        "{}",
        run.log
    );
    assert!(run.log.contains("runs 1.0, approved 2.0"), "{}", run.log);

    // Time sync check: a simulated camera an hour off.
    let cam = one_camera("noauth,skew=3600").await;
    let off = plain_device(&r.db, &cam.device_url(0), "SV", "1", Some(3_600_000)).await;
    let run = run_job(&r, "time_sync_check", json!({"threshold_ms": 5000})).await;
    assert_eq!(
        run.outcome, "failed",
        "clocks off are a problem: {}",
        run.log
    );
    assert!(
        run.log.contains("1 devices off by more than 5000 ms"),
        "{}",
        run.log
    );
    assert!(run.log.contains("3600000 ms"), "{}", run.log);
    let run = run_job(
        &r,
        "time_sync_check",
        json!({"threshold_ms": 5000, "fix": true}),
    )
    .await;
    assert_eq!(run.outcome, "ok", "fixed: {}", run.log);
    assert!(run.log.contains(" → "), "{}", run.log);
    assert!(!run.log.contains("not fixed"), "{}", run.log);
    assert_ne!(
        cam.cameras()[0].state.lock().unwrap().clock_offset_s,
        0,
        "the camera's clock was set"
    );
    let _ = off;

    // Database maintenance on SQLite.
    let run = run_job(&r, "database_maintenance", json!({})).await;
    assert_eq!(run.outcome, "ok", "{}", run.log);
    assert!(
        run.log.contains("PRAGMA optimize done") || run.log.contains("VACUUM (ANALYZE) done"),
        "{}",
        run.log
    );

    // Rediscovery without discovery configured: a clear failure.
    let run = run_job(&r, "rediscovery", json!({"cidr": "127.0.0.1/32"})).await;
    assert_eq!(run.outcome, "failed");
    assert!(
        run.log.contains("discovery is not configured"),
        "{}",
        run.log
    );
    assert!(
        r.jobs
            .save(
                None,
                "bad ports",
                "rediscovery",
                "0 3 * * *",
                "UTC",
                json!({"ports": [0]}),
                true,
                "skip",
                &Actor::system()
            )
            .await
            .is_err()
    );

    // With discovery: a sweep of one address on the camera's port finds it.
    let shared: SharedClock = r.clock.clone();
    let secrets = Arc::new(SecretBox::from_key(1, &[2u8; 32]));
    let swept = Arc::new(Jobs::new(JobContext {
        db: r.db.clone(),
        clock: shared.clone(),
        tiers: [("hot".to_string(), r.hot.clone())].into_iter().collect(),
        provisioner: Arc::new(Provisioner::new(
            r.db.clone(),
            secrets.clone(),
            transport(),
            shared.clone(),
        )),
        firmware: r.firmware.clone(),
        discovery: Some((
            camfleet::fleet::discovery::DiscoveryService::new(
                camfleet::fleet::discovery::DiscoveryConfig::loopback(),
                transport_with_timeout(1000),
                shared.clone(),
            ),
            camfleet::fleet::inventory::Inventory::new(r.db.clone(), secrets, shared),
        )),
        data_dir: None,
        backfill: None,
    }));
    let port = url::Url::parse(&cam.device_url(0)).unwrap().port().unwrap();
    let j = swept
        .save(
            None,
            "sweep",
            "rediscovery",
            "0 3 * * *",
            "UTC",
            json!({"cidr": "127.0.0.1/32", "ports": [port]}),
            true,
            "skip",
            &Actor::system(),
        )
        .await
        .unwrap();
    swept
        .run_now(j.id, &Actor::system())
        .await
        .unwrap()
        .await
        .unwrap();
    let run = runs(&r, j.id).await.pop().unwrap();
    assert_eq!(run.outcome, "ok", "{}", run.log);
    assert!(run.log.contains(": 1 found"), "{}", run.log);
    cam.shutdown().await;
}

/// A segment damaged in the hot tier (its bytes no longer match the
/// ledger's checksum) is not moved: its copy is removed from the cold tier,
/// the original and its row stay, the other segments still move, and the
/// run fails naming it.
#[tokio::test]
async fn tier_migration_leaves_a_damaged_segment_in_place_and_moves_the_rest() {
    let r = rig().await;
    let good = segment(&r, 1, 24 * 40, b"\0\0\0\x10ftypisom-good", "hot").await;
    let bad = segment(&r, 1, 24 * 41, b"\0\0\0\x10ftypisom-bad!", "hot").await;
    // Bit rot in the hot tier.
    r.hot
        .put(
            &bad.storage_key,
            Bytes::from_static(b"\0\0\0\x10ftypisom-b@d!"),
        )
        .await
        .unwrap();
    let run = run_job(
        &r,
        "tier_migration",
        json!({"from": "hot", "to": "cold", "after_days": 30}),
    )
    .await;
    assert_eq!(run.outcome, "failed", "{}", run.log);
    assert!(run.log.contains("moved 1 segments"), "{}", run.log);
    assert!(
        run.log
            .contains(&format!("{}: does not match its checksum", bad.storage_key)),
        "{}",
        run.log
    );
    let tier_of = |id| {
        let db = r.db.clone();
        async move {
            recording::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
                .tier
        }
    };
    assert_eq!(tier_of(good.id).await, "cold");
    assert_eq!(tier_of(bad.id).await, "hot");
    assert!(
        r.cold.get(&bad.storage_key).await.is_err(),
        "the bad copy is gone"
    );
    assert!(
        r.hot.get(&bad.storage_key).await.is_ok(),
        "the original stays"
    );
    assert!(r.cold.get(&good.storage_key).await.is_ok());
}
