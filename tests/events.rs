//! Camera events (PullPoint) against the simulator: the calls with their
//! WS-Addressing headers and echoed ReferenceParameters, renew timing and
//! the broken-relative-time switch under a ManualClock shared with the
//! camera, the backoff that keeps refusing cameras from a subscribe storm,
//! and the manager end to end: a camera's storage failure opens an alert
//! and its recovery resolves it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::clock::{Clock, SharedClock};
use camfleet::db::entities::{alert, device, device_event};
use camfleet::fleet::alerting::Alerting;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::events::{EventConfig, EventManager, Next, Stepped, Watch};
use camfleet::fleet::health::HealthEvent;
use camfleet::fleet::inventory::Inventory;
use camfleet::fleet::poller::Notice;
use camfleet::onvif::events::{self, Signal};
use camfleet::onvif::{DevicePolicy, DeviceSession, ops};
use camfleet::secrets::SecretBox;
use camfleet::sim::FleetConfig;
use camfleet::sim::events::SimEvent;
use common::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// A session as the event watcher gets one for an adopted camera: with
/// the auth mode stored at adoption (the simulator's default is
/// WS-Security), so a refusal is not met with the detection ladder.
fn session(fleet: &camfleet::sim::Fleet, clock: &SharedClock) -> DeviceSession {
    DeviceSession::new(
        transport(),
        clock.clone(),
        url::Url::parse(&fleet.device_url(0)).unwrap(),
        Some(admin()),
        DevicePolicy {
            auth_mode: Some(camfleet::onvif::AuthMode::WsSecurity),
            ..DevicePolicy::default()
        },
    )
}

/// A session that detects the auth mode on first use (cameras of every
/// authentication scheme).
fn detecting_session(fleet: &camfleet::sim::Fleet, clock: &SharedClock) -> DeviceSession {
    DeviceSession::new(
        transport(),
        clock.clone(),
        url::Url::parse(&fleet.device_url(0)).unwrap(),
        Some(admin()),
        DevicePolicy::default(),
    )
}

fn events_url(fleet: &camfleet::sim::Fleet) -> url::Url {
    url::Url::parse(&format!(
        "http://{}/onvif/events_service",
        fleet.cameras()[0].addr
    ))
    .unwrap()
}

async fn manual_fleet(spec: &str) -> (camfleet::sim::Fleet, Arc<camfleet::clock::ManualClock>) {
    let clock = manual_clock();
    let mut q = camfleet::sim::Quirks::default();
    q.apply(spec).unwrap();
    let mut cfg = FleetConfig::new(1, 0);
    cfg.plan = camfleet::sim::QuirkPlan::Uniform(q);
    cfg.clock = clock.clone();
    (fleet_with(cfg).await, clock)
}

#[tokio::test]
async fn subscribe_pull_renew_unsubscribe_with_reference_parameters_echoed() {
    for spec in ["", "digest", "both,soap11,prefixes"] {
        let fleet = one_camera(spec).await;
        let clock = system_clock();
        let s = detecting_session(&fleet, &clock);
        let cam = &fleet.cameras()[0];
        let sub = events::create_pull_point(&s, &events_url(&fleet), "PT600S")
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert!(sub.address.contains("/onvif/subscription"), "{spec}");
        assert_eq!(sub.reference_parameters.len(), 1, "{spec}");
        let granted = sub.termination_time.unwrap() - sub.current_time.unwrap();
        assert_eq!(granted, chrono::Duration::seconds(600), "{spec}");

        // A fresh subscription starts with the property's current state.
        let first =
            events::pull_messages(&s, &sub, Duration::from_secs(1), 10, Duration::from_secs(5))
                .await
                .unwrap();
        assert_eq!(first.messages.len(), 1, "{spec}");
        assert_eq!(first.messages[0].property_operation, "Initialized");
        assert_eq!(
            events::signal(&first.messages[0]),
            Some(Signal::StorageFailure { failed: false })
        );

        cam.events
            .push(SimEvent::storage_failure(true), cam.camera_now());
        cam.events.push(SimEvent::tamper(true), cam.camera_now());
        let p = events::pull_messages(&s, &sub, Duration::from_secs(5), 10, Duration::from_secs(5))
            .await
            .unwrap();
        let signals: Vec<_> = p.messages.iter().filter_map(events::signal).collect();
        assert_eq!(
            signals,
            [
                Signal::StorageFailure { failed: true },
                Signal::Tamper {
                    kind: "GlobalSceneChange".into(),
                    active: true
                }
            ],
            "{spec}"
        );

        let (cur, term) = events::renew(&s, &sub, "PT300S").await.unwrap();
        assert_eq!(term.unwrap() - cur.unwrap(), chrono::Duration::seconds(300));
        events::unsubscribe(&s, &sub).await.unwrap();
        let st = cam.events.stats();
        assert_eq!(
            (st.creates, st.renews, st.unsubscribes, st.live),
            (1, 1, 1, 0)
        );
        assert_eq!(
            st.refused, 0,
            "{spec}: every call carried Action and the reference"
        );
        assert_eq!(st.requested, ["PT600S", "PT300S"]);
        // The subscription is gone: pulling again is a clear error.
        let gone =
            events::pull_messages(&s, &sub, Duration::from_secs(1), 10, Duration::from_secs(5))
                .await
                .unwrap_err();
        assert!(gone.message.contains("subscription"), "{gone}");
        fleet.shutdown().await;
    }
}

#[tokio::test]
async fn a_call_without_the_reference_parameters_is_refused_by_a_strict_camera() {
    let fleet = one_camera("").await;
    let clock = system_clock();
    let s = session(&fleet, &clock);
    let sub = events::create_pull_point(&s, &events_url(&fleet), "PT60S")
        .await
        .unwrap();
    let body = format!(
        r#"<tev:PullMessages xmlns:tev="{}"><tev:Timeout>PT1S</tev:Timeout><tev:MessageLimit>1</tev:MessageLimit></tev:PullMessages>"#,
        ops::EVENTS_PULL_MESSAGES.namespace
    );
    let url = url::Url::parse(&sub.address).unwrap();
    let e = s
        .call_addressed(ops::EVENTS_PULL_MESSAGES, &body, &url, &[], None)
        .await
        .unwrap_err();
    assert!(e.message.contains("ReferenceParameters"), "{e}");
    assert_eq!(fleet.cameras()[0].events.stats().refused, 1);
    fleet.shutdown().await;
}

/// One long-poll per camera, pulled again at once (the cadence is zero).
fn long_poll() -> EventConfig {
    EventConfig {
        pull_wait: Duration::from_secs(30),
        pull_every: Duration::ZERO,
        ..Default::default()
    }
}

fn watch(fleet: &camfleet::sim::Fleet, clock: &SharedClock, cfg: EventConfig) -> Watch {
    Watch::new(
        7,
        session(fleet, clock),
        events_url(fleet),
        clock.clone(),
        cfg,
        Arc::new(tokio::sync::Semaphore::new(1)),
    )
}

#[tokio::test]
async fn renewal_comes_at_80_percent_of_the_granted_lifetime() {
    let (fleet, clock) = manual_fleet("").await;
    let shared: SharedClock = clock.clone();
    let t0 = clock.now_utc();
    let mut w = watch(&fleet, &shared, long_poll());
    assert_eq!(w.next(), Next::Create);
    assert_eq!(w.step().await, Stepped::Subscribed);
    assert!(!w.broken_relative);
    assert_eq!(w.renew_at(), Some(t0 + chrono::Duration::seconds(480)));
    assert_eq!(w.next(), Next::Pull(Duration::from_secs(30)));
    // Close to the renewal, the long-poll is cut short so it is not late.
    clock.advance(Duration::from_secs(470));
    assert_eq!(w.next(), Next::Pull(Duration::from_secs(10)));
    clock.advance(Duration::from_secs(10));
    assert_eq!(w.next(), Next::Renew);
    assert_eq!(w.step().await, Stepped::Renewed);
    assert_eq!(w.renew_at(), Some(t0 + chrono::Duration::seconds(960)));
    let st = fleet.cameras()[0].events.stats();
    assert_eq!((st.creates, st.renews), (1, 1));
    assert_eq!(st.requested, ["PT600S", "PT600S"]);
    fleet.shutdown().await;
}

#[tokio::test]
async fn short_pulls_come_on_a_cadence_and_a_full_answer_is_pulled_again_at_once() {
    let (fleet, clock) = manual_fleet("").await;
    let shared: SharedClock = clock.clone();
    let cfg = EventConfig {
        message_limit: 2,
        ..Default::default()
    };
    let mut w = watch(&fleet, &shared, cfg.clone());
    assert_eq!(w.step().await, Stepped::Subscribed);
    // The first pull at once, short.
    assert_eq!(w.next(), Next::Pull(cfg.pull_wait));
    assert!(matches!(w.step().await, Stepped::Pulled(_)));
    let t = clock.now_utc();
    assert_eq!(
        w.next(),
        Next::Wait(t + chrono::Duration::from_std(cfg.pull_every).unwrap()),
        "between pulls the watch only waits (no request, no connection held)"
    );
    // Three events queued: a full answer (the limit is 2) is followed at
    // once by another pull, then the cadence again.
    let cam = &fleet.cameras()[0];
    for failed in [true, false, true] {
        cam.events
            .push(SimEvent::storage_failure(failed), cam.camera_now());
    }
    clock.advance(cfg.pull_every);
    assert_eq!(w.next(), Next::Pull(cfg.pull_wait));
    let Stepped::Pulled(m) = w.step().await else {
        panic!("a pull")
    };
    assert_eq!(m.len(), 2);
    assert_eq!(w.next(), Next::Pull(cfg.pull_wait), "more may be queued");
    let Stepped::Pulled(m) = w.step().await else {
        panic!("a pull")
    };
    assert_eq!(m.len(), 1);
    assert!(matches!(w.next(), Next::Wait(_)));
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_camera_that_breaks_relative_times_is_renewed_at_once_with_absolute_ones() {
    // The camera's clock is an hour ahead: the absolute time must be in its clock.
    let (fleet, clock) = manual_fleet("broken-relative,skew=3600").await;
    let shared: SharedClock = clock.clone();
    let s = session(&fleet, &shared);
    s.sync_clock().await.unwrap();
    let mut w = Watch::new(
        7,
        s,
        events_url(&fleet),
        shared.clone(),
        EventConfig::default(),
        Arc::new(tokio::sync::Semaphore::new(1)),
    );
    assert_eq!(w.step().await, Stepped::Subscribed);
    assert!(
        w.broken_relative,
        "TerminationTime == CurrentTime is detected"
    );
    assert_eq!(w.next(), Next::Renew, "renewed at once, not left to expire");
    assert_eq!(w.step().await, Stepped::Renewed);
    let st = fleet.cameras()[0].events.stats();
    assert_eq!(st.requested[0], "PT600S");
    let absolute: chrono::DateTime<chrono::Utc> = st.requested[1].parse().expect("absolute");
    assert_eq!(
        absolute,
        clock.now_utc() + chrono::Duration::seconds(3600 + 600),
        "in the camera's clock"
    );
    // The renewal was honoured: the next one is at 80 % again.
    assert_eq!(
        w.renew_at(),
        Some(clock.now_utc() + chrono::Duration::seconds(480))
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_refusing_camera_is_retried_with_backoff_not_in_a_storm() {
    let (fleet, clock) = manual_fleet("").await;
    let shared: SharedClock = clock.clone();
    let cam = fleet.cameras()[0].clone();
    cam.events.set_refuse_create(true);
    let mut w = watch(&fleet, &shared, long_poll());
    let t0 = clock.now_utc();
    let mut gaps = Vec::new();
    let mut last = t0;
    // Two hours of camera time, driven as fast as the steps go.
    while clock.now_utc() < t0 + chrono::Duration::hours(2) {
        match w.next() {
            Next::Wait(t) => {
                clock.advance((t - clock.now_utc()).to_std().unwrap());
            }
            Next::Create => match w.step().await {
                Stepped::Failed { retry_at, .. } => {
                    gaps.push((retry_at - last).num_seconds());
                    last = retry_at;
                }
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    let creates = cam.events.stats().creates;
    assert!(
        (8..=10).contains(&creates),
        "{creates} creates in two hours"
    );
    // 30 s doubling, capped at 30 min (plus up to 10 % jitter).
    assert!((30..=33).contains(&gaps[0]), "{gaps:?}");
    assert!((60..=66).contains(&gaps[1]), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 1980), "{gaps:?}");
    // The camera recovers: the next try subscribes and the backoff resets.
    cam.events.set_refuse_create(false);
    if let Next::Wait(t) = w.next() {
        clock.advance((t - clock.now_utc()).to_std().unwrap());
    }
    assert_eq!(w.step().await, Stepped::Subscribed);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_lost_subscription_is_recreated_once_at_once() {
    let (fleet, clock) = manual_fleet("").await;
    let shared: SharedClock = clock.clone();
    let cam = fleet.cameras()[0].clone();
    let mut w = watch(&fleet, &shared, long_poll());
    assert_eq!(w.step().await, Stepped::Subscribed);
    // The camera reboots and forgets its subscriptions.
    cam.events.forget_subscriptions();
    match w.step().await {
        Stepped::Failed { retry_at, error } => {
            assert_eq!(retry_at, clock.now_utc(), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(w.next(), Next::Create);
    assert_eq!(w.step().await, Stepped::Subscribed);
    assert_eq!(cam.events.stats().creates, 2);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_camera_without_events_is_marked_unsupported() {
    let fleet = one_camera("no-events").await;
    let clock = system_clock();
    let mut w = watch(&fleet, &clock, long_poll());
    match w.step().await {
        Stepped::Unsupported(why) => assert!(why.contains("CreatePullPointSubscription"), "{why}"),
        other => panic!("unexpected {other:?}"),
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn storage_failure_opens_an_alert_and_recovery_resolves_it() {
    let fleet = one_camera("digest").await;
    let cam = fleet.cameras()[0].clone();
    let clock = system_clock();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[9u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), clock.clone());
    let a = camfleet::onvif::adopt(
        &transport(),
        &clock,
        request(fleet.device_url(0), Some(admin())),
    )
    .await
    .unwrap();
    let (d, _) = inv
        .record_adoption(&a, None, &[], Some(&admin()), None, &Actor::system())
        .await
        .unwrap();
    assert!(
        d.events_url
            .as_deref()
            .unwrap_or("")
            .ends_with("/onvif/events_service"),
        "adoption stores the event service: {:?}",
        d.events_url
    );
    device::Entity::update_many()
        .col_expr(
            device::Column::Status,
            sea_orm::sea_query::Expr::value("online"),
        )
        .exec(&db)
        .await
        .unwrap();
    let alerting = Alerting::new(db.clone(), clock.clone(), "http://camfleet.test".into());
    alerting.ensure_default_rules().await.unwrap();

    let manager = Arc::new(EventManager::new(
        db.clone(),
        secrets,
        transport(),
        clock.clone(),
        EventConfig {
            start_spread: Duration::from_millis(1),
            reconcile_every: Duration::from_millis(200),
            pull_wait: Duration::from_secs(1),
            pull_every: Duration::from_millis(100),
            ..Default::default()
        },
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Notice>>();
    let (stop, shutdown) = camfleet::shutdown::channel();
    let task = tokio::spawn(manager.run(shutdown, move |n| {
        let _ = tx.send(n);
    }));
    // Wait for the subscription, then break the SD card.
    let t = tokio::time::Instant::now();
    while cam.events.stats().live == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "never subscribed");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cam.events
        .push(SimEvent::storage_failure(true), cam.camera_now());
    let notices = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notice")
        .unwrap();
    assert!(matches!(
        &notices[0],
        Notice::Event { event: HealthEvent::CameraEvent { topic, active: Some(true), .. }, .. }
            if topic == "Device/HardwareFailure/StorageFailure"
    ));
    let r = alerting.process(&notices).await.unwrap();
    assert_eq!(r.opened.len(), 1);
    let opened = alert::Entity::find_by_id(r.opened[0])
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.summary, "camera storage failed");
    assert_eq!(opened.severity, "major");

    // The same state again is not news; the recovery is.
    cam.events
        .push(SimEvent::storage_failure(true), cam.camera_now());
    cam.events
        .push(SimEvent::storage_failure(false), cam.camera_now());
    let notices = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notice")
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let r = alerting.process(&notices).await.unwrap();
    assert_eq!(r.resolved, [opened.id]);

    let stored = device_event::Entity::find()
        .filter(device_event::Column::DeviceId.eq(d.id))
        .all(&db)
        .await
        .unwrap();
    // Initialized (OK), failed, OK again: the repeat was not stored.
    let states: Vec<_> = stored.iter().map(|e| e.active).collect();
    assert_eq!(states, [Some(false), Some(true), Some(false)]);
    let dev = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dev.events_status, "subscribed");

    stop.fire();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("clean shutdown")
        .unwrap();
    assert_eq!(
        cam.events.stats().unsubscribes,
        1,
        "unsubscribed on shutdown"
    );
    fleet.shutdown().await;
}
