//! Alert settings (admins): notification channels — webhook, email and
//! SNMP, their secrets sealed, each with a "send test" that reports
//! success or the exact error — and the rules: severity, scope (sites),
//! channels, cooldown, threshold, on/off. Every change is audited.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;

use super::{Console, Fields, not_found};
use crate::db::entities::{alert_rule, delivery, notify_channel};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::{Actor, Entry};
use crate::fleet::users::Role;

pub struct ChannelRow {
    pub c: notify_channel::Model,
    /// Where it sends, in words (no secrets).
    pub target: String,
    /// Its health: the last delivery that went out, deliveries that gave
    /// up and waiting ones, the last error.
    pub last_sent: Option<chrono::DateTime<chrono::Utc>>,
    pub failed: u64,
    pub waiting: u64,
    pub last_error: String,
    /// The last test started from the page, if any.
    pub test: Option<ChannelTest>,
}

/// A channel test run in the background (a slow receiver keeps no page
/// waiting): when it started, and its outcome once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTest {
    pub started: chrono::DateTime<chrono::Utc>,
    /// None while it runs; then Ok(text) or Err(why).
    pub outcome: Option<std::result::Result<String, String>>,
}

/// Channel tests of this node, by channel.
pub type ChannelTests =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i32, ChannelTest>>>;

pub struct AlertSettings {
    pub channels: Vec<ChannelRow>,
    pub rules: Vec<alert_rule::Model>,
}

/// What a channel action did, in words for the page.
pub enum ChannelOutcome {
    Done(String),
    /// A test that did not get through: the exact error.
    TestFailed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelAction {
    Test,
    Enable,
    Disable,
    Delete,
}

impl ChannelAction {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "test" => Self::Test,
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            "delete" => Self::Delete,
            _ => return Err(invalid("action: test, enable, disable or delete")),
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Delete => "delete",
        }
    }
}

impl Console {
    pub async fn alert_settings(&self, actor: &Actor) -> Result<AlertSettings> {
        actor.require(Role::can_manage_users)?;
        let channels = notify_channel::Entity::find()
            .order_by_asc(notify_channel::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| ChannelRow {
                target: match c.kind.as_str() {
                    "webhook" => c.config["url"].as_str().unwrap_or("").to_string(),
                    "snmp" => format!(
                        "{} {} to {}:{}{}",
                        if c.config["version"].as_str() == Some("3") {
                            "SNMPv3"
                        } else {
                            "SNMPv2c"
                        },
                        if c.config["inform"].as_bool() == Some(true) {
                            "INFORM"
                        } else {
                            "TRAP"
                        },
                        c.config["host"].as_str().unwrap_or(""),
                        c.config["port"],
                        match (c.config["version"].as_str(), c.config["user"].as_str()) {
                            (Some("3"), Some(u)) => format!(
                                " as {u} ({}/{}), engine ID 0x{}",
                                c.config["auth_protocol"].as_str().unwrap_or(""),
                                c.config["priv_protocol"].as_str().unwrap_or(""),
                                c.config["engine_id"].as_str().unwrap_or("")
                            ),
                            _ => String::new(),
                        }
                    ),
                    "email" => format!(
                        "{} via {}:{} ({})",
                        c.config["to"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default(),
                        c.config["host"].as_str().unwrap_or(""),
                        c.config["port"],
                        c.config["security"].as_str().unwrap_or("")
                    ),
                    _ => String::new(),
                },
                last_sent: None,
                failed: 0,
                waiting: 0,
                last_error: String::new(),
                test: None,
                c,
            })
            .collect::<Vec<_>>();
        let mut channels = channels;
        for row in &mut channels {
            let id = row.c.id;
            let of = || delivery::Entity::find().filter(delivery::Column::ChannelId.eq(id));
            row.last_sent = of()
                .filter(delivery::Column::Status.eq("sent"))
                .order_by_desc(delivery::Column::Id)
                .one(&self.db)
                .await?
                .and_then(|d| d.sent_at);
            row.failed = of()
                .filter(delivery::Column::Status.eq("failed"))
                .count(&self.db)
                .await?;
            row.waiting = of()
                .filter(delivery::Column::Status.is_not_in(["sent", "failed"]))
                .count(&self.db)
                .await?;
            row.last_error = of()
                .filter(delivery::Column::LastError.ne(""))
                .order_by_desc(delivery::Column::Id)
                .one(&self.db)
                .await?
                .map(|d| d.last_error)
                .unwrap_or_default();
            row.test = self
                .channel_tests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .cloned();
        }
        let rules = alert_rule::Entity::find()
            .order_by_asc(alert_rule::Column::Id)
            .all(&self.db)
            .await?;
        Ok(AlertSettings { channels, rules })
    }

    pub async fn channel_create(
        &self,
        actor: &Actor,
        f: &dyn Fields,
    ) -> Result<notify_channel::Model> {
        actor.require(Role::can_manage_users)?;
        let name = f.get("name").trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid("name: 1–100 characters"));
        }
        let (kind, config, secret) = channel_from(f)?;
        let now = self.clock.now_utc();
        let c = notify_channel::ActiveModel {
            name: Set(name),
            kind: Set(kind),
            config: Set(config.clone()),
            sealed: Set((!secret.is_empty()).then(|| self.secrets.seal(secret.as_bytes()))),
            enabled: Set(true),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        self.audit(
            actor,
            Entry {
                action: "channel.create",
                target_kind: "channel",
                target_id: c.id.to_string(),
                before: None,
                after: Some(json!({"name": c.name, "kind": c.kind, "config": config})),
            },
        )
        .await?;
        Ok(c)
    }

    /// Start a channel's test in the background; the settings page shows
    /// its outcome with the channel. One test per channel at a time.
    pub async fn channel_test_start(&self, actor: &Actor, id: i32) -> Result<String> {
        actor.require(Role::can_manage_users)?;
        let c = notify_channel::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("channel", id))?;
        {
            let mut tests = self.channel_tests.lock().unwrap_or_else(|e| e.into_inner());
            if tests.get(&id).is_some_and(|t| t.outcome.is_none()) {
                return Ok(format!("A test of {:?} is still running.", c.name));
            }
            tests.insert(
                id,
                ChannelTest {
                    started: self.clock.now_utc(),
                    outcome: None,
                },
            );
        }
        let n = crate::fleet::notifier::Notifier::new(
            self.db.clone(),
            self.secrets.clone(),
            self.clock.clone(),
        )?
        .with_snmp_enterprise(self.snmp_enterprise);
        let tests = self.channel_tests.clone();
        let name = c.name.clone();
        tokio::spawn(async move {
            let outcome = match n.send_test(id).await {
                Ok(Ok(())) => Ok(format!("test sent through {name:?}")),
                Ok(Err(e)) => Err(format!("test through {name:?} failed: {e}")),
                Err(e) => Err(format!("test through {name:?} failed: {e}")),
            };
            if let Some(t) = tests.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&id) {
                t.outcome = Some(outcome);
            }
        });
        self.audit(
            actor,
            Entry {
                action: "channel.test",
                target_kind: "channel",
                target_id: id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        Ok(format!(
            "Test of {:?} started; its outcome shows with the channel (reload the page).",
            c.name
        ))
    }

    pub async fn channel_act(
        &self,
        actor: &Actor,
        id: i32,
        action: ChannelAction,
    ) -> Result<ChannelOutcome> {
        actor.require(Role::can_manage_users)?;
        let c = notify_channel::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("channel", id))?;
        let outcome = match action {
            ChannelAction::Test => {
                let n = crate::fleet::notifier::Notifier::new(
                    self.db.clone(),
                    self.secrets.clone(),
                    self.clock.clone(),
                )?
                .with_snmp_enterprise(self.snmp_enterprise);
                return Ok(match n.send_test(id).await? {
                    Ok(()) => ChannelOutcome::Done(format!("Test sent through {:?}.", c.name)),
                    Err(e) => {
                        ChannelOutcome::TestFailed(format!("Test through {:?} failed: {e}", c.name))
                    }
                });
            }
            ChannelAction::Enable | ChannelAction::Disable => {
                let mut am = c.clone().into_active_model();
                am.enabled = Set(action == ChannelAction::Enable);
                am.update(&self.db).await?;
                ChannelOutcome::Done(format!("Channel {:?} {}d.", c.name, action.as_str()))
            }
            ChannelAction::Delete => {
                notify_channel::Entity::delete_by_id(id)
                    .exec(&self.db)
                    .await?;
                ChannelOutcome::Done(format!("Channel {:?} deleted.", c.name))
            }
        };
        self.audit(
            actor,
            Entry {
                action: &format!("channel.{}", action.as_str()),
                target_kind: "channel",
                target_id: id.to_string(),
                before: Some(json!({"name": c.name, "enabled": c.enabled})),
                after: None,
            },
        )
        .await?;
        Ok(outcome)
    }

    pub async fn rule_update(
        &self,
        actor: &Actor,
        id: i32,
        f: &dyn Fields,
    ) -> Result<alert_rule::Model> {
        actor.require(Role::can_manage_users)?;
        let rule = alert_rule::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("rule", id))?;
        let severity = f.get("severity");
        let topic = f.get("topic").trim().trim_matches('/').to_string();
        let cooldown = f.get("cooldown_s").trim().parse::<i32>();
        let threshold = f.get("threshold_ms");
        let threshold = if threshold.trim().is_empty() {
            Ok(None)
        } else {
            threshold.trim().parse::<i64>().map(Some)
        };
        let error = if !crate::fleet::alerting::SEVERITIES.contains(&severity.as_str()) {
            "severity: critical, major, minor or info"
        } else if !cooldown.as_ref().is_ok_and(|c| (0..=86_400).contains(c)) {
            "cooldown: 0–86400 seconds"
        } else if !threshold.as_ref().is_ok_and(|t| t.is_none_or(|t| t > 0)) {
            "threshold: a positive number of milliseconds"
        } else if rule.kind == "event_topic" && !valid_topic(&topic) {
            TOPIC_RULE
        } else {
            ""
        };
        if !error.is_empty() {
            return Err(invalid(format!("Rule {:?} not saved — {error}", rule.name)));
        }
        let before = json!({"severity": rule.severity, "site_ids": rule.site_ids, "channel_ids": rule.channel_ids,
            "cooldown_s": rule.cooldown_s, "threshold_ms": rule.threshold_ms, "enabled": rule.enabled, "topic": rule.topic});
        let is_event = rule.kind == "event_topic";
        let mut am = rule.into_active_model();
        if is_event {
            am.topic = Set(topic);
        }
        am.severity = Set(severity);
        am.cooldown_s = Set(cooldown.unwrap_or(600));
        am.threshold_ms = Set(threshold.unwrap_or(None));
        am.enabled = Set(f.get("enabled") == "on" || f.get("enabled") == "true");
        am.site_ids = Set(json!(f.ids("site")));
        am.channel_ids = Set(json!(f.ids("channel")));
        am.problem = Set(String::new());
        let r = am.update(&self.db).await?;
        self.audit(
            actor,
            Entry {
                action: "rule.update",
                target_kind: "rule",
                target_id: id.to_string(),
                before: Some(before),
                after: Some(
                    json!({"severity": r.severity, "site_ids": r.site_ids, "channel_ids": r.channel_ids,
                    "cooldown_s": r.cooldown_s, "threshold_ms": r.threshold_ms, "enabled": r.enabled, "topic": r.topic}),
                ),
            },
        )
        .await?;
        Ok(r)
    }

    /// A new camera-event rule (the other kinds exist once each).
    pub async fn rule_create(&self, actor: &Actor, f: &dyn Fields) -> Result<alert_rule::Model> {
        actor.require(Role::can_manage_users)?;
        let name = f.get("name").trim().to_string();
        let topic = f.get("topic").trim().trim_matches('/').to_string();
        let severity = f.get("severity");
        let error = if name.is_empty() || name.chars().count() > 100 {
            "name: required, at most 100 characters"
        } else if !crate::fleet::alerting::SEVERITIES.contains(&severity.as_str()) {
            "severity: critical, major, minor or info"
        } else if !valid_topic(&topic) {
            TOPIC_RULE
        } else {
            ""
        };
        if !error.is_empty() {
            return Err(invalid(format!("Rule not added — {error}")));
        }
        let now = self.clock.now_utc();
        let r = alert_rule::ActiveModel {
            name: Set(name),
            kind: Set("event_topic".into()),
            severity: Set(severity),
            site_ids: Set(json!([])),
            threshold_ms: Set(None),
            channel_ids: Set(json!([])),
            cooldown_s: Set(600),
            enabled: Set(true),
            created_at: Set(now),
            topic: Set(topic),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        self.audit(
            actor,
            Entry {
                action: "rule.create",
                target_kind: "rule",
                target_id: r.id.to_string(),
                before: None,
                after: Some(
                    json!({"name": r.name, "kind": r.kind, "topic": r.topic, "severity": r.severity}),
                ),
            },
        )
        .await?;
        Ok(r)
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, m)
}

/// Validate a new channel's form into (kind, config, secret).
fn channel_from(f: &dyn Fields) -> Result<(String, serde_json::Value, String), Error> {
    match f.get("kind").as_str() {
        "webhook" => {
            let url = f.get("url").trim().to_string();
            let full = "URL: a full address with http:// or https:// and a host, for example https://noc.example/hooks/camfleet";
            let u = url::Url::parse(&url).map_err(|_| invalid(full))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
                return Err(invalid(full));
            }
            let secret = f.get("secret");
            if secret.len() < 16 {
                return Err(invalid(
                    "secret: at least 16 characters (the receiver checks signatures with it)",
                ));
            }
            Ok(("webhook".into(), json!({"url": url}), secret))
        }
        "email" => {
            let host = f.get("host").trim().to_string();
            if host.is_empty() {
                return Err(invalid("host: the SMTP server"));
            }
            let port: u16 = f
                .get("port")
                .trim()
                .parse()
                .map_err(|_| invalid("port: 1–65535"))?;
            let security = f.get("security");
            if !["none", "starttls", "tls"].contains(&security.as_str()) {
                return Err(invalid("security: none, starttls or tls"));
            }
            let from = f.get("from").trim().to_string();
            from.parse::<lettre::message::Mailbox>()
                .map_err(|e| invalid(format!("from: {e}")))?;
            let to: Vec<String> = f
                .get("to")
                .split([',', ';', '\n'])
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if to.is_empty() {
                return Err(invalid("to: at least one address"));
            }
            for t in &to {
                t.parse::<lettre::message::Mailbox>()
                    .map_err(|e| invalid(format!("to {t:?}: {e}")))?;
            }
            let ca_pem = f.get("ca_pem").trim().to_string();
            crate::notify::email::check_ca_pem(&ca_pem).map_err(invalid)?;
            Ok((
                "email".into(),
                json!({"host": host, "port": port, "security": security,
                    "username": f.get("username").trim(), "from": from, "to": to, "ca_pem": ca_pem}),
                f.get("password"),
            ))
        }
        "snmp" => {
            let host = f.get("host").trim().to_string();
            if host.is_empty() {
                return Err(invalid("host: the trap receiver"));
            }
            let port: u16 = f
                .get("port")
                .trim()
                .parse()
                .map_err(|_| invalid("port: 1–65535"))?;
            let inform = f.get("inform") == "on";
            match f.get("version").as_str() {
                "" | "2c" => {
                    let community = f.get("community");
                    Ok((
                        "snmp".into(),
                        json!({"host": host, "port": port, "inform": inform, "version": "2c"}),
                        if community.is_empty() {
                            "public".into()
                        } else {
                            community
                        },
                    ))
                }
                "3" => {
                    use crate::notify::snmp::{SnmpConfig, SnmpVersion, V3Secret};
                    let cfg = SnmpConfig {
                        host,
                        port,
                        inform,
                        version: SnmpVersion::V3,
                        user: f.get("user").trim().to_string(),
                        auth_protocol: f.get("auth_protocol").trim().to_string(),
                        priv_protocol: f.get("priv_protocol").trim().to_string(),
                        engine_id: crate::notify::snmp::new_engine_id(),
                    };
                    let secret = V3Secret {
                        auth: f.get("auth_password"),
                        privacy: f.get("priv_password"),
                    };
                    crate::notify::snmp::check_v3(&cfg, &secret).map_err(invalid)?;
                    Ok((
                        "snmp".into(),
                        serde_json::to_value(&cfg).map_err(|e| invalid(e.to_string()))?,
                        serde_json::to_string(&secret).map_err(|e| invalid(e.to_string()))?,
                    ))
                }
                _ => Err(invalid("version: 2c or 3")),
            }
        }
        _ => Err(invalid("kind: webhook, email or snmp")),
    }
}

const TOPIC_RULE: &str = "topic: a topic path such as Device/HardwareFailure/StorageFailure (letters, digits, / _ - . only, at most 200)";

/// An event topic path (without namespace prefix); empty means every
/// watched topic.
fn valid_topic(t: &str) -> bool {
    t.len() <= 200
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
}
