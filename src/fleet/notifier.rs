//! The delivery worker: sends the outbox (`deliveries`) through each
//! channel, retrying with backoff; a failure is recorded with its exact
//! error and shown on the alerts page. It runs apart from the poller, so a
//! dead mail server never slows polling.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use crate::clock::SharedClock;
use crate::db::entities::{delivery, notify_channel};
use crate::error::{Error, ErrorKind, Result};
use crate::notify::{self, Message};
use crate::secrets::SecretBox;

/// Waits before the 2nd, 3rd, … attempt; after the last, the delivery fails.
pub const BACKOFF_SECS: [i64; 7] = [30, 120, 300, 900, 1800, 3600, 3600];
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claim on a delivery holds: four times the longest send, so a
/// node that dies while sending delays that one message by at most this.
const CLAIM_MS: i64 = 4 * SEND_TIMEOUT.as_millis() as i64;

pub struct Notifier {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    clock: SharedClock,
    http: reqwest::Client,
    snmp_enterprise: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

impl Notifier {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        clock: SharedClock,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("HTTP client: {e}")))?;
        Ok(Self {
            snmp_enterprise: crate::config::DEFAULT_ENTERPRISE,
            db,
            secrets,
            clock,
            http,
        })
    }

    /// Send SNMP notifications under this enterprise number.
    pub fn with_snmp_enterprise(mut self, n: u32) -> Self {
        self.snmp_enterprise = n;
        self
    }

    fn secret(&self, c: &notify_channel::Model) -> Option<String> {
        c.sealed
            .as_ref()
            .and_then(|s| self.secrets.open_string(s).ok())
    }

    /// Send one message through one channel now; the exact error if not.
    pub async fn send(
        &self,
        c: &notify_channel::Model,
        msg: &Message,
    ) -> std::result::Result<(), String> {
        let secret = self.secret(c);
        match ChannelConfig::of(&c.kind, &c.config)? {
            ChannelConfig::Webhook(cfg) => {
                notify::webhook::send(
                    &self.http,
                    &cfg,
                    secret.unwrap_or_default().as_bytes(),
                    msg,
                    self.clock.now_utc().timestamp(),
                    SEND_TIMEOUT,
                )
                .await
            }
            ChannelConfig::Email(cfg) => {
                notify::email::send(&cfg, secret.as_deref(), msg, SEND_TIMEOUT).await
            }
            ChannelConfig::Snmp(cfg) => {
                notify::snmp::send(
                    &cfg,
                    secret.as_deref().unwrap_or(""),
                    msg,
                    SEND_TIMEOUT,
                    self.snmp_enterprise,
                )
                .await
            }
        }
    }

    /// A test message through a channel, for the "send test" button.
    pub async fn send_test(&self, channel_id: i32) -> Result<std::result::Result<(), String>> {
        let c = notify_channel::Entity::find_by_id(channel_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no channel {channel_id}")))?;
        let msg = Message {
            subject: format!("[test] camfleet channel {:?}", c.name),
            payload: json!({"event": "test", "rule": "test", "severity": "info",
                "site": "", "at": self.clock.now_utc(), "devices": []}),
            delivery_id: 0,
        };
        Ok(self.send(&c, &msg).await)
    }

    /// Send every delivery that is due; returns what happened.
    pub async fn deliver_due(&self) -> Result<SendReport> {
        let now = self.clock.now_utc();
        let now_ms = now.timestamp_millis();
        let due = delivery::Entity::find()
            .filter(delivery::Column::Status.eq("pending"))
            .filter(delivery::Column::NextAttemptAt.lte(now))
            .filter(
                sea_orm::Condition::any()
                    .add(delivery::Column::ClaimedUntilMs.is_null())
                    .add(delivery::Column::ClaimedUntilMs.lte(now_ms)),
            )
            .order_by_asc(delivery::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?;
        let channels: std::collections::HashMap<i32, notify_channel::Model> =
            notify_channel::Entity::find()
                .all(&self.db)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
        let mut report = SendReport::default();
        let me = super::cluster::this_node();
        for d in due {
            // Claimed before it is sent: a delivery another node (a leader
            // before a failover) is sending is skipped, and each claim
            // holds long enough for the slowest send.
            if !self.claim(d.id, &me).await? {
                continue;
            }
            let outcome = match channels.get(&d.channel_id) {
                Some(c) if c.enabled => {
                    let msg = Message {
                        subject: d.subject.clone(),
                        payload: d.payload.clone(),
                        delivery_id: i64::from(d.id),
                    };
                    self.send(c, &msg).await
                }
                Some(_) => Err("the channel is disabled".into()),
                None => Err("the channel was deleted".into()),
            };
            let attempts = d.attempts + 1;
            let mut am = d.into_active_model();
            am.attempts = Set(attempts);
            am.claimed_by = Set(None);
            am.claimed_until_ms = Set(None);
            match outcome {
                Ok(()) => {
                    am.status = Set("sent".into());
                    am.sent_at = Set(Some(self.clock.now_utc()));
                    am.last_error = Set(String::new());
                    report.sent += 1;
                }
                Err(e) => {
                    am.last_error = Set(e.chars().take(1000).collect());
                    match BACKOFF_SECS.get(attempts as usize - 1) {
                        Some(wait) => {
                            am.next_attempt_at =
                                Set(self.clock.now_utc() + chrono::Duration::seconds(*wait));
                            report.retrying += 1;
                        }
                        None => {
                            am.status = Set("failed".into());
                            report.failed += 1;
                        }
                    }
                    metrics::counter!("camfleet_delivery_failures_total").increment(1);
                }
            }
            am.update(&self.db).await?;
        }
        Ok(report)
    }

    /// Claim one delivery for `node` (compare-and-set: pending and not
    /// claimed by anyone, or the claim ran out). False: someone else has it.
    async fn claim(&self, id: i32, node: &str) -> Result<bool> {
        let now_ms = self.clock.now_utc().timestamp_millis();
        let r = delivery::Entity::update_many()
            .col_expr(
                delivery::Column::ClaimedBy,
                sea_orm::sea_query::Expr::value(node.to_string()),
            )
            .col_expr(
                delivery::Column::ClaimedUntilMs,
                sea_orm::sea_query::Expr::value(now_ms + CLAIM_MS),
            )
            .filter(delivery::Column::Id.eq(id))
            .filter(delivery::Column::Status.eq("pending"))
            .filter(
                sea_orm::Condition::any()
                    .add(delivery::Column::ClaimedUntilMs.is_null())
                    .add(delivery::Column::ClaimedUntilMs.lte(now_ms)),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Run until shutdown, looking for due deliveries every two seconds
    /// while `lead` says this node leads the notifier.
    pub async fn run(
        self: Arc<Self>,
        lead: super::cluster::Lead,
        mut shutdown: crate::shutdown::Shutdown,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {}
            }
            if !lead.is_leader() {
                continue;
            }
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e, "delivering notifications failed");
            }
        }
    }
}

/// A channel's settings, by kind: the stored `kind` name and JSON `config`
/// read once into the type its sender takes.
#[derive(Debug, Clone)]
pub enum ChannelConfig {
    Webhook(notify::webhook::WebhookConfig),
    Email(notify::email::EmailConfig),
    Snmp(notify::snmp::SnmpConfig),
}

impl ChannelConfig {
    pub fn of(kind: &str, config: &serde_json::Value) -> std::result::Result<Self, String> {
        let bad = |e: serde_json::Error| format!("channel settings: {e}");
        Ok(match kind {
            "webhook" => {
                ChannelConfig::Webhook(serde_json::from_value(config.clone()).map_err(bad)?)
            }
            "email" => ChannelConfig::Email(serde_json::from_value(config.clone()).map_err(bad)?),
            "snmp" => ChannelConfig::Snmp(serde_json::from_value(config.clone()).map_err(bad)?),
            other => return Err(format!("no sender for channel kind {other:?}")),
        })
    }
}
