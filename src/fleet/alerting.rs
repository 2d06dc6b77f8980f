//! Alerting: turns the poller's notices (state transitions, events) into
//! alerts with a lifecycle — open → acknowledged → resolved, with history —
//! and into notifications in the delivery outbox.
//!
//! - **Dedup**: at most one open (or acknowledged) alert per rule and device.
//! - **Cooldown**: an alert that resolved less than the rule's cooldown ago
//!   is reopened quietly instead of notifying again (a flapping camera).
//! - **Grouping**: alerts a cycle opens (or resolves) for the same rule and
//!   site become one notification listing the devices — 30 cameras of a
//!   site dropping at once is one "site outage" message, not 30.
//! - Notifications are rows in `deliveries`, sent by the notifier with
//!   retries; nothing here waits on a mail server or a trap receiver.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde_json::json;

use super::health::{HealthEvent, HealthState};
use super::poller::Notice;
use crate::clock::SharedClock;
use crate::db::entities::{
    alert, alert_history, alert_rule, delivery, device, notify_channel, site,
};
use crate::error::{Error, ErrorKind, Result};

pub const KINDS: [&str; 10] = [
    "offline",
    "unauthorized",
    "replaced",
    "firmware_changed",
    "drift",
    "rebooted",
    "event_topic",
    "config_drift",
    "firmware_failed",
    "recording_stopped",
];
pub const SEVERITIES: [&str; 4] = ["critical", "major", "minor", "info"];

/// Rule id, site id, and whether the alerts opened (or resolved).
type GroupKey = (i32, Option<i32>, bool);
/// Alert id, device id, summary.
type Grouped = (i32, i32, String);

/// What one batch of notices did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertReport {
    pub opened: Vec<i32>,
    pub reopened: Vec<i32>,
    pub resolved: Vec<i32>,
    /// Delivery rows queued.
    pub queued: usize,
}

pub struct Alerting {
    db: DatabaseConnection,
    clock: SharedClock,
    /// Link base for notifications, e.g. `https://camfleet.example`.
    base_url: std::sync::RwLock<String>,
    /// One batch at a time, so two overlapping poll batches cannot both
    /// open the same rule's alert for a device.
    serial: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Dev {
    name: String,
    site_id: Option<i32>,
    address: String,
    serial: String,
    status: String,
    reason: String,
}

/// A rule's kind and the notice that triggers it (open), or resolves it.
fn opens(rule: &alert_rule::Model, n: &Notice) -> Option<String> {
    match (rule.kind.as_str(), n) {
        (
            "offline",
            Notice::Transition {
                to: HealthState::Offline,
                reason,
                ..
            },
        )
        | (
            "unauthorized",
            Notice::Transition {
                to: HealthState::Unauthorized,
                reason,
                ..
            },
        )
        | (
            "replaced",
            Notice::Transition {
                to: HealthState::Replaced,
                reason,
                ..
            },
        ) => Some(reason.clone()),
        (
            "firmware_changed",
            Notice::Event {
                event: HealthEvent::FirmwareChanged { from, to },
                ..
            },
        ) => Some(format!("firmware changed from {from} to {to}")),
        (
            "drift",
            Notice::Event {
                event: HealthEvent::DriftHigh { drift_ms },
                ..
            },
        ) if drift_ms.abs() > rule.threshold_ms.unwrap_or(5_000) => {
            Some(format!("camera clock off by {} s", drift_ms / 1000))
        }
        (
            "rebooted",
            Notice::Event {
                event: HealthEvent::Rebooted { jump_ms },
                ..
            },
        ) => Some(format!(
            "camera clock jumped {} s (reboot or time reset)",
            jump_ms / 1000
        )),
        (
            "event_topic",
            Notice::Event {
                event:
                    HealthEvent::CameraEvent {
                        topic,
                        active,
                        summary,
                    },
                ..
            },
        ) if topic_matches(&rule.topic, topic) && *active != Some(false) => Some(summary.clone()),
        (
            "config_drift",
            Notice::Event {
                event:
                    HealthEvent::ConfigDrift {
                        summary,
                        drifted: true,
                    },
                ..
            },
        ) => Some(format!("configuration drifted: {summary}")),
        (
            "firmware_failed",
            Notice::Event {
                event: HealthEvent::FirmwareUpgradeFailed { version, reason },
                ..
            },
        ) => Some(format!("firmware upgrade to {version} failed: {reason}")),
        (
            "recording_stopped",
            Notice::Event {
                event: HealthEvent::RecordingStopped { reason },
                ..
            },
        ) => Some(format!("recording stopped: {reason}")),
        _ => None,
    }
}

/// A rule's topic is a prefix on `/` boundaries; empty matches every
/// watched topic. Case as the camera sends it is ignored.
fn topic_matches(rule_topic: &str, topic: &str) -> bool {
    let want = rule_topic.trim().trim_matches('/');
    if want.is_empty() {
        return true;
    }
    let (w, t) = (want.to_ascii_lowercase(), topic.to_ascii_lowercase());
    t == w || t.starts_with(&format!("{w}/"))
}

fn resolves(rule: &alert_rule::Model, n: &Notice) -> bool {
    if let Notice::Event {
        event: HealthEvent::RecordingResumed,
        ..
    } = n
    {
        return rule.kind == "recording_stopped";
    }
    if let Notice::Event {
        event: HealthEvent::ConfigDrift { drifted, .. },
        ..
    } = n
    {
        return rule.kind == "config_drift" && !drifted;
    }
    if let Notice::Event {
        event: HealthEvent::CameraEvent { topic, active, .. },
        ..
    } = n
    {
        return rule.kind == "event_topic"
            && *active == Some(false)
            && topic_matches(&rule.topic, topic);
    }
    let Notice::Transition { from, to, .. } = n else {
        return false;
    };
    match rule.kind.as_str() {
        "offline" => *from == HealthState::Offline && *to != HealthState::Offline,
        "unauthorized" => *from == HealthState::Unauthorized && *to != HealthState::Unauthorized,
        "drift" => *to == HealthState::Online,
        _ => false,
    }
}

fn device_of(n: &Notice) -> i32 {
    match n {
        Notice::Transition { device_id, .. } | Notice::Event { device_id, .. } => *device_id,
    }
}

impl Alerting {
    pub fn new(db: DatabaseConnection, clock: SharedClock, base_url: String) -> Self {
        Self {
            db,
            clock,
            base_url: std::sync::RwLock::new(base_url),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Where links in notifications point (`--public-url`).
    pub fn set_base_url(&self, url: &str) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) = url.to_string();
    }

    fn link(&self, device_id: i32) -> String {
        let base = self.base_url.read().unwrap_or_else(|e| e.into_inner());
        format!("{}/devices/{device_id}", base.trim_end_matches('/'))
    }

    /// The rules a fresh installation starts with (every enabled channel).
    pub async fn ensure_default_rules(&self) -> Result<()> {
        if alert_rule::Entity::find().one(&self.db).await?.is_some() {
            return Ok(());
        }
        let now = self.clock.now_utc();
        for (name, kind, severity, threshold, topic) in [
            ("Camera offline", "offline", "critical", None, ""),
            ("Credentials refused", "unauthorized", "major", None, ""),
            ("Camera replaced", "replaced", "major", None, ""),
            ("Firmware changed", "firmware_changed", "info", None, ""),
            ("Clock drift", "drift", "minor", Some(5_000), ""),
            (
                "Camera storage failure",
                "event_topic",
                "major",
                None,
                "Device/HardwareFailure/StorageFailure",
            ),
            (
                "Camera tampering",
                "event_topic",
                "minor",
                None,
                "VideoSource",
            ),
            ("Configuration drift", "config_drift", "minor", None, ""),
            (
                "Firmware upgrade failed",
                "firmware_failed",
                "major",
                None,
                "",
            ),
            ("Recording stopped", "recording_stopped", "major", None, ""),
        ] {
            alert_rule::ActiveModel {
                name: Set(name.into()),
                kind: Set(kind.into()),
                severity: Set(severity.into()),
                site_ids: Set(json!([])),
                threshold_ms: Set(threshold),
                channel_ids: Set(json!([])),
                cooldown_s: Set(600),
                enabled: Set(true),
                created_at: Set(now),
                topic: Set(topic.into()),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
        }
        Ok(())
    }

    /// Apply a batch of notices: open, reopen, resolve, and queue grouped
    /// notifications. One transaction.
    pub async fn process(&self, notices: &[Notice]) -> Result<AlertReport> {
        let mut report = AlertReport::default();
        if notices.is_empty() {
            return Ok(report);
        }
        let _one_at_a_time = self.serial.lock().await;
        let now = self.clock.now_utc();
        let rules: Vec<alert_rule::Model> = alert_rule::Entity::find()
            .filter(alert_rule::Column::Enabled.eq(true))
            .all(&self.db)
            .await?;
        if rules.is_empty() {
            return Ok(report);
        }
        let ids: Vec<i32> = notices.iter().map(device_of).collect();
        let devs: HashMap<i32, Dev> = device::Entity::find()
            .filter(device::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| {
                (
                    d.id,
                    Dev {
                        name: crate::fleet::inventory::display_name(&d),
                        site_id: d.site_id,
                        address: d.device_url,
                        serial: d.serial.unwrap_or_default(),
                        status: d.status,
                        reason: d.state_reason,
                    },
                )
            })
            .collect();
        // Latest alert per (rule, device) among these devices. Only live
        // alerts (dedup) and ones resolved within the longest cooldown
        // (reopening) matter; a device's older history is not loaded.
        let longest = rules.iter().map(|r| r.cooldown_s).max().unwrap_or(0);
        let recent = now - chrono::Duration::seconds(i64::from(longest));
        let mut latest: HashMap<(i32, i32), alert::Model> = HashMap::new();
        for a in alert::Entity::find()
            .filter(alert::Column::DeviceId.is_in(ids.iter().copied()))
            .filter(
                sea_orm::Condition::any()
                    .add(alert::Column::ResolvedAt.is_null())
                    .add(alert::Column::ResolvedAt.gte(recent)),
            )
            .order_by_asc(alert::Column::Id)
            .all(&self.db)
            .await?
        {
            latest.insert((a.rule_id, a.device_id), a);
        }
        let txn = self.db.begin().await?;
        // (rule id, site id, opened?) → alerts, for grouping.
        let mut groups: BTreeMap<GroupKey, Vec<Grouped>> = BTreeMap::new();
        for n in notices {
            let dev_id = device_of(n);
            let Some(dev) = devs.get(&dev_id) else {
                continue;
            };
            for rule in &rules {
                // Fail closed: a list that cannot be read matches nothing.
                let Some(sites) = rule.sites() else {
                    tracing::warn!(
                        rule = rule.id,
                        "alert rule's site list is unreadable; it matches nothing"
                    );
                    continue;
                };
                if !sites.is_empty() && !dev.site_id.is_some_and(|s| sites.contains(&s)) {
                    continue;
                }
                let key = (rule.id, dev_id);
                let current = latest.get(&key).cloned();
                let live = current.as_ref().filter(|a| a.state != "resolved");
                if let Some(summary) = opens(rule, n) {
                    if live.is_some() {
                        continue; // deduplicated
                    }
                    let cooled = current
                        .as_ref()
                        .and_then(|a| a.resolved_at)
                        .is_some_and(|r| {
                            now - r < chrono::Duration::seconds(i64::from(rule.cooldown_s))
                        });
                    if cooled && let Some(prev) = current.clone() {
                        let mut am = prev.into_active_model();
                        am.state = Set("open".into());
                        am.resolved_at = Set(None);
                        am.summary = Set(summary.clone());
                        let a = am.update(&txn).await?;
                        self.history(
                            &txn,
                            a.id,
                            "reopened",
                            "system",
                            "within the cooldown: not notified again",
                        )
                        .await?;
                        report.reopened.push(a.id);
                        latest.insert(key, a);
                        continue;
                    }
                    let a = alert::ActiveModel {
                        rule_id: Set(rule.id),
                        device_id: Set(dev_id),
                        site_id: Set(dev.site_id),
                        state: Set("open".into()),
                        severity: Set(rule.severity.clone()),
                        summary: Set(summary.clone()),
                        opened_at: Set(now),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await?;
                    self.history(&txn, a.id, "opened", "system", &summary)
                        .await?;
                    report.opened.push(a.id);
                    groups
                        .entry((rule.id, dev.site_id, true))
                        .or_default()
                        .push((a.id, dev_id, summary));
                    latest.insert(key, a);
                } else if resolves(rule, n)
                    && let Some(a) = live.cloned()
                {
                    let id = a.id;
                    let mut am = a.into_active_model();
                    am.state = Set("resolved".into());
                    am.resolved_at = Set(Some(now));
                    let a = am.update(&txn).await?;
                    let why = match n {
                        Notice::Event {
                            event:
                                HealthEvent::CameraEvent { summary, .. }
                                | HealthEvent::ConfigDrift { summary, .. },
                            ..
                        } => summary.clone(),
                        _ => "the device recovered".into(),
                    };
                    self.history(&txn, id, "resolved", "system", &why).await?;
                    report.resolved.push(id);
                    groups
                        .entry((rule.id, dev.site_id, false))
                        .or_default()
                        .push((id, dev_id, format!("now {}", dev.status)));
                    latest.insert(key, a);
                }
            }
        }
        // One notification per rule, site and direction, to each channel.
        let channels: Vec<notify_channel::Model> = notify_channel::Entity::find()
            .filter(notify_channel::Column::Enabled.eq(true))
            .all(&txn)
            .await?;
        let site_names: HashMap<i32, String> = site::Entity::find()
            .all(&txn)
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        for ((rule_id, site_id, opened), items) in groups {
            let Some(rule) = rules.iter().find(|r| r.id == rule_id) else {
                continue;
            };
            let Some(wanted) = rule.channels() else {
                tracing::warn!(
                    rule = rule.id,
                    "alert rule's channel list is unreadable; nothing sent"
                );
                continue;
            };
            let targets: Vec<&notify_channel::Model> = channels
                .iter()
                .filter(|c| wanted.is_empty() || wanted.contains(&c.id))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let site_name = site_id
                .and_then(|s| site_names.get(&s).cloned())
                .unwrap_or_else(|| "(no site)".into());
            let what = if opened {
                rule.name.clone()
            } else {
                format!("{} — resolved", rule.name)
            };
            let subject = if items.len() == 1 {
                let d = &devs[&items[0].1];
                format!("[{}] {what}: {} ({site_name})", rule.severity, d.name)
            } else {
                format!(
                    "[{}] {what}: {} devices at site {site_name}",
                    rule.severity,
                    items.len()
                )
            };
            let devices: Vec<serde_json::Value> = items
                .iter()
                .map(|(alert_id, dev_id, summary)| {
                    let d = &devs[dev_id];
                    json!({
                        "alert_id": alert_id, "device_id": dev_id, "name": d.name,
                        "address": d.address, "serial": d.serial, "site": site_name,
                        "state": d.status, "reason": if d.reason.is_empty() { summary } else { &d.reason },
                        "link": self.link(*dev_id),
                    })
                })
                .collect();
            let payload = json!({
                "event": if opened { "alert" } else { "resolved" },
                "rule": rule.name, "kind": rule.kind, "severity": rule.severity,
                "site": site_name, "at": now, "devices": devices,
            });
            let alert_ids: Vec<i32> = items.iter().map(|(a, _, _)| *a).collect();
            for c in targets {
                delivery::ActiveModel {
                    channel_id: Set(c.id),
                    alert_ids: Set(json!(alert_ids)),
                    subject: Set(subject.clone()),
                    payload: Set(payload.clone()),
                    status: Set("pending".into()),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    last_error: Set(String::new()),
                    created_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                report.queued += 1;
            }
        }
        txn.commit().await?;
        Ok(report)
    }

    async fn history(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        alert_id: i32,
        action: &str,
        actor: &str,
        note: &str,
    ) -> Result<()> {
        alert_history::ActiveModel {
            alert_id: Set(alert_id),
            at: Set(self.clock.now_utc()),
            action: Set(action.into()),
            actor: Set(actor.into()),
            note: Set(note.chars().take(2000).collect()),
            ..Default::default()
        }
        .insert(db)
        .await?;
        Ok(())
    }

    /// A person takes an alert: acknowledged (still open until resolved).
    pub async fn acknowledge(&self, id: i32, who: &str, note: &str) -> Result<alert::Model> {
        let a = alert::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no alert {id}")))?;
        if a.state != "open" {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("alert {id} is {}, not open", a.state),
            ));
        }
        let mut am = a.into_active_model();
        am.state = Set("acknowledged".into());
        am.acked_at = Set(Some(self.clock.now_utc()));
        am.acked_by = Set(Some(who.into()));
        let a = am.update(&self.db).await?;
        self.history(&self.db, id, "acknowledged", who, note)
            .await?;
        Ok(a)
    }

    /// A person closes an alert by hand (e.g. a replaced camera confirmed).
    pub async fn resolve(&self, id: i32, who: &str, note: &str) -> Result<alert::Model> {
        let a = alert::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no alert {id}")))?;
        if a.state == "resolved" {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("alert {id} is already resolved"),
            ));
        }
        let mut am = a.into_active_model();
        am.state = Set("resolved".into());
        am.resolved_at = Set(Some(self.clock.now_utc()));
        let a = am.update(&self.db).await?;
        self.history(&self.db, id, "resolved", who, note).await?;
        Ok(a)
    }
}

/// A notification about camfleet itself rather than a device (storage
/// running low): queued to every enabled channel, at most once per
/// `quiet` for the same subject. Returns the deliveries queued.
pub async fn queue_system_notice(
    db: &DatabaseConnection,
    now: chrono::DateTime<chrono::Utc>,
    subject: &str,
    severity: &str,
    reason: &str,
    quiet: chrono::Duration,
) -> Result<usize> {
    let recent = delivery::Entity::find()
        .filter(delivery::Column::Subject.eq(subject))
        .filter(delivery::Column::CreatedAt.gte(now - quiet))
        .one(db)
        .await?;
    if recent.is_some() {
        return Ok(0);
    }
    let channels = notify_channel::Entity::find()
        .filter(notify_channel::Column::Enabled.eq(true))
        .all(db)
        .await?;
    let payload = json!({
        "event": "alert", "rule": subject, "kind": "system", "severity": severity,
        "site": "", "at": now,
        "devices": [{"name": "camfleet", "reason": reason, "state": "", "address": "", "serial": "", "alert_id": 0}],
    });
    for c in &channels {
        delivery::ActiveModel {
            channel_id: Set(c.id),
            alert_ids: Set(json!([])),
            subject: Set(subject.into()),
            payload: Set(payload.clone()),
            status: Set("pending".into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(String::new()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(channels.len())
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn rule_topics_match_on_path_boundaries() {
        assert!(topic_matches("", "Device/HardwareFailure/StorageFailure"));
        assert!(topic_matches(
            "VideoSource",
            "VideoSource/GlobalSceneChange/ImagingService"
        ));
        assert!(topic_matches(
            "/videosource/",
            "VideoSource/ImageTooBlurry/AnalyticsService"
        ));
        assert!(topic_matches(
            "Device/HardwareFailure/StorageFailure",
            "Device/HardwareFailure/StorageFailure"
        ));
        assert!(!topic_matches("Video", "VideoSource/GlobalSceneChange"));
        assert!(!topic_matches(
            "Device/HardwareFailure/Storage",
            "Device/HardwareFailure/StorageFailure"
        ));
    }
}
