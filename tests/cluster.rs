//! Several nodes on one database (issue 18), in one process on the
//! injected clock: leases balance between nodes and go from a dead node to
//! the living; a retired device is handed back; a delivery is sent once
//! however many notifiers look at it; a job slot starts once however many
//! schedulers see it; and on PostgreSQL one node leads. The interop suite
//! runs this file on PostgreSQL too; `tests/interop/cluster.sh` runs three
//! real `serve` processes and kills one.
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camfleet::app::AppState;
use camfleet::clock::{Clock, SharedClock};
use camfleet::db::entities::{delivery, device, job_run, notify_channel};
use camfleet::fleet::cluster::{Cluster, LeaseKind, NodeConfig, Roles};
use camfleet::fleet::discovery::{DiscoveryConfig, DiscoveryService};
use camfleet::secrets::SecretBox;
use common::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

async fn state(clock: SharedClock) -> Arc<AppState> {
    let db = test_db().await;
    let discovery = DiscoveryService::new(DiscoveryConfig::loopback(), transport(), clock.clone());
    Arc::new(AppState::new(
        db,
        Arc::new(SecretBox::from_key(1, &[5u8; 32])),
        clock,
        discovery,
        false,
    ))
}

fn node(name: &str, sites: &[&str]) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        roles: Roles::ALL,
        sites: sites.iter().map(|s| s.to_string()).collect(),
    }
}

fn held(c: &Cluster) -> HashSet<i32> {
    held_kind(c, LeaseKind::Poll)
}

fn held_kind(c: &Cluster, kind: LeaseKind) -> HashSet<i32> {
    c.share(kind)
        .snapshot()
        .map(|s| (*s).clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn leases_balance_and_a_dead_nodes_devices_go_to_the_living_within_30_s() {
    let clock = manual_clock();
    let s = state(clock.clone()).await;
    for n in 0..40u32 {
        seed_named_device(&s, None, n, &format!("cam-{n}")).await;
    }
    let a = Cluster::new(s.db.clone(), clock.clone(), node("node-a", &[]));
    let b = Cluster::new(s.db.clone(), clock.clone(), node("node-b", &[]));
    // a alone: everything at its first heartbeat.
    a.beat().await.unwrap();
    assert_eq!(held(&a).len(), 40);
    // b joins: a hands half back, and b takes it once the hand-off wait
    // (5 s) is over; no device is ever held twice.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(3));
        b.beat().await.unwrap();
        a.beat().await.unwrap();
    }
    let (ha, hb) = (held(&a), held(&b));
    assert_eq!((ha.len(), hb.len()), (20, 20));
    assert!(ha.is_disjoint(&hb));
    // Settled: more heartbeats move nothing.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(3));
        a.beat().await.unwrap();
        b.beat().await.unwrap();
    }
    assert_eq!((held(&a), held(&b)), (ha.clone(), hb.clone()));
    let view = s
        .console
        .cluster(&camfleet::fleet::audit::Actor::system())
        .await;
    let nodes = view.unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n.alive && n.devices == 20));
    // a is killed (no more heartbeats, nothing handed back). b keeps
    // beating every 3 s; count how long until it holds all 40.
    let killed = clock.now_utc();
    let mut waited = Duration::ZERO;
    while held(&b).len() < 40 {
        clock.advance(Duration::from_secs(3));
        waited += Duration::from_secs(3);
        b.beat().await.unwrap();
        assert!(waited <= Duration::from_secs(30), "not re-leased in 30 s");
        // Never a device of a's taken while a's lease held.
        assert!(held(&b).len() == 20 || clock.now_utc() - killed >= chrono::Duration::seconds(12));
    }
    assert!(
        waited <= Duration::from_secs(18),
        "re-leased after {waited:?}"
    );
    let nodes = camfleet::fleet::cluster::nodes(&s.db, clock.now_utc().timestamp_millis())
        .await
        .unwrap();
    let a_view = nodes.iter().find(|n| n.name == "node-a").unwrap();
    assert!(!a_view.alive, "a is dead after 15 s without a heartbeat");
    // A retired device is handed back and nobody takes it.
    let id = *held(&b).iter().min().unwrap();
    let mut d: device::ActiveModel = device::Entity::find_by_id(id)
        .one(&s.db)
        .await
        .unwrap()
        .unwrap()
        .into();
    d.retired_at = Set(Some(clock.now_utc()));
    d.update(&s.db).await.unwrap();
    clock.advance(Duration::from_secs(3));
    b.beat().await.unwrap();
    assert!(!held(&b).contains(&id));
    // b stops cleanly: everything handed back at once, b shown stopped.
    b.leave().await.unwrap();
    let nodes = camfleet::fleet::cluster::nodes(&s.db, clock.now_utc().timestamp_millis())
        .await
        .unwrap();
    assert!(nodes.iter().all(|n| !n.alive && n.devices == 0));
}

#[tokio::test]
async fn polling_and_recording_are_leased_apart_by_role() {
    let clock = manual_clock();
    let s = state(clock.clone()).await;
    let mut recorded = HashSet::new();
    for n in 0..12u32 {
        let id = seed_named_device(&s, None, n, &format!("cam-{n}")).await;
        if n % 3 == 0 {
            let mut d: device::ActiveModel = device::Entity::find_by_id(id)
                .one(&s.db)
                .await
                .unwrap()
                .unwrap()
                .into();
            d.record_profile = Set(Some("Profile_1".into()));
            d.update(&s.db).await.unwrap();
            recorded.insert(id);
        }
    }
    let only = |name: &str, roles: &str| NodeConfig {
        name: name.into(),
        roles: Roles::parse(roles).unwrap(),
        sites: Vec::new(),
    };
    let poller = Cluster::new(s.db.clone(), clock.clone(), only("poller", "web,poll"));
    let recorder = Cluster::new(s.db.clone(), clock.clone(), only("recorder", "record"));
    for _ in 0..3 {
        poller.beat().await.unwrap();
        recorder.beat().await.unwrap();
        clock.advance(Duration::from_secs(3));
    }
    // The poller polls all twelve and records none; the recorder records
    // exactly the four a policy records, and polls none.
    assert_eq!(held_kind(&poller, LeaseKind::Poll).len(), 12);
    assert!(held_kind(&poller, LeaseKind::Record).is_empty());
    assert!(held_kind(&recorder, LeaseKind::Poll).is_empty());
    assert_eq!(held_kind(&recorder, LeaseKind::Record), recorded);
    let d = s
        .console
        .device_detail(
            &camfleet::fleet::audit::Actor::system(),
            *recorded.iter().next().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (d.node.as_deref(), d.recorded_by.as_deref()),
        (Some("poller"), Some("recorder"))
    );
}

#[tokio::test]
async fn a_site_recorder_leases_only_its_sites_cameras() {
    let clock = manual_clock();
    let s = state(clock.clone()).await;
    let actor = camfleet::fleet::audit::Actor::system();
    let north = s.sites.create("North", "", &actor).await.unwrap().id;
    let south = s.sites.create("South", "", &actor).await.unwrap().id;
    let mut north_ids = HashSet::new();
    for n in 0..10u32 {
        north_ids.insert(seed_device(&s, north, n).await);
    }
    for n in 10..30u32 {
        seed_device(&s, south, n).await;
    }
    let central = Cluster::new(s.db.clone(), clock.clone(), node("central", &[]));
    let recorder = Cluster::new(s.db.clone(), clock.clone(), node("rec-north", &["north"]));
    for _ in 0..10 {
        central.beat().await.unwrap();
        recorder.beat().await.unwrap();
        clock.advance(Duration::from_secs(3));
    }
    let (c, r) = (held(&central), held(&recorder));
    assert_eq!(c.len() + r.len(), 30, "every camera served once");
    assert!(c.is_disjoint(&r));
    assert!(!r.is_empty() && r.is_subset(&north_ids), "{r:?}");
}

/// A webhook receiver counting what it got.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn each_delivery_is_sent_once_by_notifiers_racing_for_it() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let s = state(shared.clone()).await;
    let secrets = Arc::new(SecretBox::from_key(1, &[5u8; 32]));
    let (url, seen) = receiver().await;
    let ch = notify_channel::ActiveModel {
        name: Set("hook".into()),
        kind: Set("webhook".into()),
        config: Set(serde_json::json!({"url": url})),
        sealed: Set(Some(secrets.seal(b"secret"))),
        enabled: Set(true),
        created_at: Set(clock.now_utc()),
        ..Default::default()
    }
    .insert(&s.db)
    .await
    .unwrap()
    .id;
    for i in 0..30 {
        delivery::ActiveModel {
            channel_id: Set(ch),
            alert_ids: Set(serde_json::json!([i])),
            subject: Set(format!("alert {i}")),
            payload: Set(serde_json::json!({"event": "alert", "n": i})),
            status: Set("pending".into()),
            attempts: Set(0),
            next_attempt_at: Set(clock.now_utc()),
            last_error: Set(String::new()),
            created_at: Set(clock.now_utc()),
            ..Default::default()
        }
        .insert(&s.db)
        .await
        .unwrap();
    }
    // Three notifiers (three nodes, or a leader and the one taking over)
    // see the same 30 pending deliveries at once.
    let notifiers: Vec<_> = (0..3)
        .map(|_| {
            Arc::new(
                camfleet::fleet::notifier::Notifier::new(
                    s.db.clone(),
                    secrets.clone(),
                    shared.clone(),
                )
                .unwrap(),
            )
        })
        .collect();
    let mut runs = Vec::new();
    for n in &notifiers {
        let n = n.clone();
        runs.push(tokio::spawn(async move { n.deliver_due().await.unwrap() }));
    }
    let mut sent = 0;
    for r in runs {
        sent += r.await.unwrap().sent;
    }
    assert_eq!(sent, 30);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 30, "each delivery reached the receiver once");
    let distinct: HashSet<String> = got.iter().map(|v| v["alert"].to_string()).collect();
    assert_eq!(distinct.len(), 30);
    let pending = delivery::Entity::find()
        .filter(delivery::Column::Status.ne("sent"))
        .all(&s.db)
        .await
        .unwrap();
    assert!(pending.is_empty());
    // A claim left by a node that died while sending holds for a while,
    // then runs out and the delivery goes out once more, not twice.
    let d = delivery::ActiveModel {
        channel_id: Set(ch),
        alert_ids: Set(serde_json::json!([99])),
        subject: Set("stuck".into()),
        payload: Set(serde_json::json!({"n": 99})),
        status: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(clock.now_utc()),
        last_error: Set(String::new()),
        created_at: Set(clock.now_utc()),
        claimed_by: Set(Some("dead-node".into())),
        claimed_until_ms: Set(Some(clock.now_utc().timestamp_millis() + 60_000)),
        ..Default::default()
    }
    .insert(&s.db)
    .await
    .unwrap();
    assert_eq!(notifiers[0].deliver_due().await.unwrap().sent, 0);
    clock.advance(Duration::from_secs(61));
    assert_eq!(notifiers[1].deliver_due().await.unwrap().sent, 1);
    assert_eq!(notifiers[2].deliver_due().await.unwrap().sent, 0);
    let d = delivery::Entity::find_by_id(d.id)
        .one(&s.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status.as_str(), d.claimed_by), ("sent", None));
}

#[tokio::test]
async fn a_job_slot_starts_once_however_many_schedulers_see_it() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let s = state(shared.clone()).await;
    let actor = camfleet::fleet::audit::Actor::system();
    let job = s
        .jobs
        .save(
            None,
            "rollup",
            "health_rollup",
            "*/15 * * * *",
            "UTC",
            serde_json::json!({}),
            true,
            "skip",
            &actor,
        )
        .await
        .unwrap();
    // A second scheduler on the same database (another node).
    let other = Arc::new(camfleet::fleet::jobs::Jobs::new(
        camfleet::fleet::jobs::JobContext {
            db: s.db.clone(),
            clock: shared.clone(),
            tiers: s.tiers.clone(),
            provisioner: s.provisioner.clone(),
            firmware: s.firmware_lib.clone(),
            discovery: None,
            data_dir: None,
            backfill: None,
        },
    ));
    clock.advance(Duration::from_secs(15 * 60));
    let (x, y) = tokio::join!(s.jobs.tick(), other.tick());
    let handles: Vec<_> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    assert_eq!(handles.len(), 1, "one run for the slot");
    for h in handles {
        h.await.unwrap();
    }
    let runs = job_run::Entity::find()
        .filter(job_run::Column::JobId.eq(job.id))
        .all(&s.db)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].node.as_deref(),
        Some(camfleet::fleet::cluster::this_node().as_str())
    );
    // A run left `running` by a node that is alive is not this node's to
    // recover; one left by a node that is gone is.
    let stuck = |node: &str| job_run::ActiveModel {
        job_id: Set(job.id),
        trigger: Set("manual".into()),
        started_at: Set(clock.now_utc()),
        outcome: Set("running".into()),
        log: Set(String::new()),
        node: Set(Some(node.into())),
        ..Default::default()
    };
    let alive_run = stuck("alive-node").insert(&s.db).await.unwrap();
    let dead_run = stuck("dead-node").insert(&s.db).await.unwrap();
    assert_eq!(s.jobs.recover(&["alive-node".into()]).await.unwrap(), 1);
    let get = |id| job_run::Entity::find_by_id(id).one(&s.db);
    assert_eq!(get(alive_run.id).await.unwrap().unwrap().outcome, "running");
    assert_eq!(
        get(dead_run.id).await.unwrap().unwrap().outcome,
        "interrupted"
    );
}

#[tokio::test]
async fn on_postgresql_one_node_leads_and_a_leaving_leader_hands_over() {
    if std::env::var("CAMFLEET_TEST_PG").is_err() {
        // SQLite: one server per database file (`db::lock_sqlite`), which
        // leads; nothing to elect.
        return;
    }
    let clock = system_clock();
    let s = state(clock.clone()).await;
    let a = Cluster::new(s.db.clone(), clock.clone(), node("lead-a", &[]));
    let b = Cluster::new(s.db.clone(), clock.clone(), node("lead-b", &[]));
    a.beat().await.unwrap();
    b.beat().await.unwrap();
    assert!(a.jobs_lead().is_leader() && a.notify_lead().is_leader());
    assert!(!b.jobs_lead().is_leader() && !b.notify_lead().is_leader());
    a.leave().await.unwrap();
    b.beat().await.unwrap();
    assert!(b.jobs_lead().is_leader() && b.notify_lead().is_leader());
    assert!(!a.jobs_lead().is_leader());
}

#[tokio::test]
async fn a_node_with_another_secret_key_refuses_to_start() {
    let base = common::scratch("key");
    let url = camfleet::db::sqlite_url(&base.join("first"));
    let cfg = |dir: &str| camfleet::app::AppConfig {
        data_dir: base.join(dir),
        database_url: Some(url.clone()),
        ..Default::default()
    };
    // The first node seals the check; a second with the same key file
    // starts; one with its own, new key does not, and says why.
    camfleet::app::build(&cfg("first")).await.unwrap();
    std::fs::create_dir_all(base.join("same")).unwrap();
    std::fs::copy(
        base.join("first").join(camfleet::secrets::KEY_FILE),
        base.join("same").join(camfleet::secrets::KEY_FILE),
    )
    .unwrap();
    camfleet::app::build(&cfg("same")).await.unwrap();
    let e = camfleet::app::build(&cfg("other")).await.err().unwrap();
    assert!(e.message.contains("secret key"), "{}", e.message);
    assert!(e.message.contains(camfleet::secrets::KEY_FILE));
    let _ = std::fs::remove_dir_all(&base);
}
