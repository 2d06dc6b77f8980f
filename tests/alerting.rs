//! Alerting with an injected clock: dedup, grouping into one notification
//! per site outage, recovery, cooldown against flapping, scope, and the
//! acknowledge/resolve lifecycle with history.

mod common;

use std::time::Duration;

use camfleet::clock::SharedClock;
use camfleet::db::entities::{alert, alert_history, alert_rule, delivery, device, notify_channel};
use camfleet::fleet::alerting::Alerting;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::health::{HealthEvent, HealthState};
use camfleet::fleet::poller::Notice;
use camfleet::fleet::sites::Sites;
use common::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

async fn devices(db: &sea_orm::DatabaseConnection, site: Option<i32>, n: usize) -> Vec<i32> {
    let now = chrono::Utc::now();
    let mut ids = Vec::new();
    for i in 0..n {
        let d = device::ActiveModel {
            name: Set(format!("cam-{site:?}-{i}")),
            device_url: Set(format!(
                "http://127.0.0.1:{}/onvif/device_service",
                30000 + i
            )),
            xaddrs: Set(serde_json::json!([])),
            status: Set("online".into()),
            quirks: Set(serde_json::json!([])),
            policy: Set(serde_json::json!({})),
            site_id: Set(site),
            serial: Set(Some(format!("SER{i}"))),
            adopted_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        ids.push(d.id);
    }
    ids
}

fn went(device_id: i32, from: HealthState, to: HealthState) -> Notice {
    Notice::Transition {
        device_id,
        from,
        to,
        reason: format!("{} polls failed", 3),
    }
}

#[tokio::test]
async fn a_site_outage_is_one_notification_and_flapping_is_quiet() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let sites = Sites::new(db.clone(), shared.clone());
    let north = sites
        .create("North", "", &Actor::system())
        .await
        .unwrap()
        .id;
    let south = sites
        .create("South", "", &Actor::system())
        .await
        .unwrap()
        .id;
    let n_ids = devices(&db, Some(north), 30).await;
    let s_ids = devices(&db, Some(south), 1).await;
    notify_channel::ActiveModel {
        name: Set("noc".into()),
        kind: Set("webhook".into()),
        config: Set(serde_json::json!({"url": "http://127.0.0.1:9/hook"})),
        enabled: Set(true),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let alerting = Alerting::new(db.clone(), shared.clone(), "http://camfleet.test".into());
    alerting.ensure_default_rules().await.unwrap();

    // 30 cameras of North drop in one cycle, and one of South.
    let mut batch: Vec<Notice> = n_ids
        .iter()
        .map(|id| went(*id, HealthState::Degraded, HealthState::Offline))
        .collect();
    batch.push(went(s_ids[0], HealthState::Online, HealthState::Offline));
    let r = alerting.process(&batch).await.unwrap();
    assert_eq!(r.opened.len(), 31);
    assert_eq!(r.queued, 2, "one for North's 30, one for South's 1");
    let queued = delivery::Entity::find().all(&db).await.unwrap();
    let north_msg = queued.iter().find(|d| d.subject.contains("North")).unwrap();
    assert_eq!(
        north_msg.subject,
        "[critical] Camera offline: 30 devices at site North"
    );
    assert_eq!(north_msg.payload["devices"].as_array().unwrap().len(), 30);
    assert!(
        north_msg.payload["devices"][0]["link"]
            .as_str()
            .unwrap()
            .starts_with("http://camfleet.test/devices/")
    );
    // The same notices again: deduplicated, nothing new.
    let r = alerting.process(&batch).await.unwrap();
    assert_eq!((r.opened.len(), r.queued), (0, 0));

    // North comes back: resolved, one grouped recovery message.
    let back: Vec<Notice> = n_ids
        .iter()
        .map(|id| went(*id, HealthState::Offline, HealthState::Online))
        .collect();
    let r = alerting.process(&back).await.unwrap();
    assert_eq!((r.resolved.len(), r.queued), (30, 1));
    // One of them flaps within the cooldown: reopened, not notified.
    clock.advance(Duration::from_secs(120));
    let r = alerting
        .process(&[went(n_ids[0], HealthState::Degraded, HealthState::Offline)])
        .await
        .unwrap();
    assert_eq!((r.reopened.len(), r.opened.len(), r.queued), (1, 0, 0));
    // After the cooldown, a new drop notifies again.
    alerting
        .process(&[went(n_ids[0], HealthState::Offline, HealthState::Online)])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(601));
    let r = alerting
        .process(&[went(n_ids[0], HealthState::Degraded, HealthState::Offline)])
        .await
        .unwrap();
    assert_eq!((r.opened.len(), r.queued), (1, 1));
    let subject = &delivery::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .last()
        .unwrap()
        .subject
        .clone();
    assert_eq!(subject, "[critical] Camera offline: cam-Some(1)-0 (North)");

    // Acknowledge, then resolve by hand; both in the history.
    let id = r.opened[0];
    let a = alerting
        .acknowledge(id, "oncall", "on my way")
        .await
        .unwrap();
    assert_eq!(
        (a.state.as_str(), a.acked_by.as_deref()),
        ("acknowledged", Some("oncall"))
    );
    assert!(
        alerting.acknowledge(id, "oncall", "").await.is_err(),
        "only open alerts"
    );
    alerting
        .resolve(id, "oncall", "cable replaced")
        .await
        .unwrap();
    let h: Vec<String> = alert_history::Entity::find()
        .filter(alert_history::Column::AlertId.eq(id))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|h| format!("{} {}", h.action, h.actor))
        .collect();
    assert_eq!(
        h,
        ["opened system", "acknowledged oncall", "resolved oncall"]
    );
}

#[tokio::test]
async fn rules_follow_their_scope_kinds_and_thresholds() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let sites = Sites::new(db.clone(), shared.clone());
    let north = sites
        .create("North", "", &Actor::system())
        .await
        .unwrap()
        .id;
    let south = sites
        .create("South", "", &Actor::system())
        .await
        .unwrap()
        .id;
    let n = devices(&db, Some(north), 1).await[0];
    let alerting = Alerting::new(db.clone(), shared.clone(), String::new());
    alerting.ensure_default_rules().await.unwrap();
    // The offline rule only covers South now.
    let rule = alert_rule::Entity::find()
        .filter(alert_rule::Column::Kind.eq("offline"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let mut am = rule.into_active_model();
    am.site_ids = Set(serde_json::json!([south]));
    am.update(&db).await.unwrap();
    let r = alerting
        .process(&[went(n, HealthState::Online, HealthState::Offline)])
        .await
        .unwrap();
    assert!(r.opened.is_empty(), "North is out of the rule's scope");
    // Drift: the default threshold is 5 s.
    let drift = |ms| Notice::Event {
        device_id: n,
        event: HealthEvent::DriftHigh { drift_ms: ms },
    };
    assert!(
        alerting
            .process(&[drift(4_000)])
            .await
            .unwrap()
            .opened
            .is_empty()
    );
    assert_eq!(
        alerting
            .process(&[drift(-9_000)])
            .await
            .unwrap()
            .opened
            .len(),
        1
    );
    // Firmware change: an info alert, and no channel means nothing queued.
    let r = alerting
        .process(&[Notice::Event {
            device_id: n,
            event: HealthEvent::FirmwareChanged {
                from: "1".into(),
                to: "2".into(),
            },
        }])
        .await
        .unwrap();
    assert_eq!((r.opened.len(), r.queued), (1, 0));
    let a = alert::Entity::find_by_id(r.opened[0])
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.severity.as_str(), a.summary.as_str()),
        ("info", "firmware changed from 1 to 2")
    );
    // Back online resolves the drift alert.
    let r = alerting
        .process(&[went(n, HealthState::Degraded, HealthState::Online)])
        .await
        .unwrap();
    assert_eq!(r.resolved.len(), 1);
}

/// An alert rule whose stored site or channel list cannot be read matches
/// nothing and sends nothing (it used to mean "every site", "every
/// channel"); saving the rule again makes it work.
#[tokio::test]
async fn unreadable_rule_lists_fail_closed() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let n = devices(&db, None, 1).await[0];
    notify_channel::ActiveModel {
        name: Set("noc".into()),
        kind: Set("webhook".into()),
        config: Set(serde_json::json!({"url": "http://127.0.0.1:9/hook"})),
        enabled: Set(true),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let alerting = Alerting::new(db.clone(), shared.clone(), String::new());
    alerting.ensure_default_rules().await.unwrap();
    let offline = || async {
        alert_rule::Entity::find()
            .filter(alert_rule::Column::Kind.eq("offline"))
            .one(&db)
            .await
            .unwrap()
            .unwrap()
    };
    let mut am = offline().await.into_active_model();
    am.site_ids = Set(serde_json::json!({"north": true}));
    am.update(&db).await.unwrap();
    let r = alerting
        .process(&[went(n, HealthState::Online, HealthState::Offline)])
        .await
        .unwrap();
    assert!(
        r.opened.is_empty(),
        "an unreadable site list matches nothing"
    );

    // Sites readable again, channels not: the alert opens, nothing is sent.
    let mut am = offline().await.into_active_model();
    am.site_ids = Set(serde_json::json!([]));
    am.channel_ids = Set(serde_json::json!("every"));
    am.update(&db).await.unwrap();
    let r = alerting
        .process(&[went(n, HealthState::Degraded, HealthState::Offline)])
        .await
        .unwrap();
    assert_eq!((r.opened.len(), r.queued), (1, 0));
    assert!(delivery::Entity::find().all(&db).await.unwrap().is_empty());
}

/// Migration 20 flags the rules whose lists are broken today, and saving
/// such a rule from the settings clears the flag.
#[tokio::test]
async fn migration_flags_rules_with_unreadable_lists() {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let raw = raw_test_db().await;
    migration::Migrator::up(&raw, Some(19)).await.unwrap();
    for (name, sites, channels) in [
        ("good", "[1, 2]", "[]"),
        ("bad sites", "{\"a\": 1}", "[]"),
        ("bad both", "\"x\"", "[\"3\"]"),
    ] {
        raw.execute_unprepared(&format!(
            "INSERT INTO alert_rules (name, kind, severity, site_ids, channel_ids, cooldown_s, enabled, created_at, topic) \
             VALUES ('{name}', 'offline', 'critical', '{sites}', '{channels}', 600, TRUE, CURRENT_TIMESTAMP, '')"
        ))
        .await
        .unwrap();
    }
    migration::Migrator::up(&raw, None).await.unwrap();
    let rules = alert_rule::Entity::find().all(&raw).await.unwrap();
    let problem = |n: &str| rules.iter().find(|r| r.name == n).unwrap().problem.clone();
    assert_eq!(problem("good"), "");
    assert_eq!(
        problem("bad sites"),
        "its site list is unreadable: the rule matches nothing until it is saved again"
    );
    assert_eq!(
        problem("bad both"),
        "its site list is unreadable and its channel list is unreadable: the rule matches nothing until it is saved again"
    );
}
