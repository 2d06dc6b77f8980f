//! Alert settings (admins): notification channels — webhook and email,
//! their secrets sealed, each with a "send test" that reports success or
//! the exact error — and the rules: severity, scope (sites), channels,
//! cooldown, threshold, on/off. Every change is audited.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde_json::json;

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{alert_rule, notify_channel, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Entry;

pub struct ChannelRow {
    pub c: notify_channel::Model,
    pub target: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "alert_settings.html")]
pub struct SettingsPage {
    pub me: CurrentUser,
    pub channels: Vec<ChannelRow>,
    pub rules: Vec<alert_rule::Model>,
    pub sites: Vec<site::Model>,
    pub severities: &'static [&'static str],
    /// Result of the last action (a test, a save), or an error.
    pub notice: String,
    pub error: String,
}

impl SettingsPage {
    pub fn has(&self, list: &serde_json::Value, id: &i32) -> bool {
        list.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_i64() == Some(i64::from(*id))))
    }
}

async fn page(
    state: &State,
    me: CurrentUser,
    notice: String,
    error: String,
) -> Result<SettingsPage, WebError> {
    let channels = notify_channel::Entity::find()
        .order_by_asc(notify_channel::Column::Id)
        .all(&state.db)
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
            c,
        })
        .collect();
    let rules = alert_rule::Entity::find()
        .order_by_asc(alert_rule::Column::Id)
        .all(&state.db)
        .await?;
    Ok(SettingsPage {
        sites: state.sites.list().await?,
        me,
        channels,
        rules,
        severities: &crate::fleet::alerting::SEVERITIES,
        notice,
        error,
    })
}

pub async fn settings(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    me.require(me.role.can_manage_users())?;
    Ok(page(&state, me, String::new(), String::new())
        .await?
        .into_response())
}

fn invalid(m: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, m)
}

/// Validate a new channel's form into (kind, config, secret).
fn channel_from(f: &FormFields) -> Result<(String, serde_json::Value, String), Error> {
    match f.get("kind").as_str() {
        "webhook" => {
            let url = f.get("url").trim().to_string();
            let u = url::Url::parse(&url).map_err(|e| invalid(format!("url: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(invalid("url: http or https"));
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
            Ok((
                "email".into(),
                json!({"host": host, "port": port, "security": security,
                    "username": f.get("username").trim(), "from": from, "to": to}),
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

pub async fn channel_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_manage_users())?;
    let name = f.get("name").trim().to_string();
    let made = if name.is_empty() || name.chars().count() > 100 {
        Err(invalid("name: 1–100 characters"))
    } else {
        channel_from(&f)
    };
    let (kind, config, secret) = match made {
        Ok(v) => v,
        Err(e) => {
            let p = page(&state, me, String::new(), e.message).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
        }
    };
    let now = state.clock.now_utc();
    let c =
        notify_channel::ActiveModel {
            name: Set(name),
            kind: Set(kind),
            config: Set(config.clone()),
            sealed: Set(
                (!secret.is_empty()).then(|| state.inventory.secrets().seal(secret.as_bytes()))
            ),
            enabled: Set(true),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&state.db)
        .await?;
    me.audit(
        &state.db,
        now,
        Entry {
            action: "channel.create",
            target_kind: "channel",
            target_id: c.id.to_string(),
            before: None,
            after: Some(json!({"name": c.name, "kind": c.kind, "config": config})),
        },
    )
    .await?;
    Ok(Redirect::to("/alerts/settings").into_response())
}

pub async fn channel_action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_manage_users())?;
    let c = notify_channel::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no channel {id}"))))?;
    let action = f.get("action");
    let (notice, error) = match action.as_str() {
        "test" => {
            let n = crate::fleet::notifier::Notifier::new(
                state.db.clone(),
                state.inventory.secrets(),
                state.clock.clone(),
            )?
            .with_snmp_enterprise(state.snmp_enterprise);
            match n.send_test(id).await? {
                Ok(()) => (format!("Test sent through {:?}.", c.name), String::new()),
                Err(e) => (
                    String::new(),
                    format!("Test through {:?} failed: {e}", c.name),
                ),
            }
        }
        "enable" | "disable" => {
            let mut am = c.clone().into_active_model();
            am.enabled = Set(action == "enable");
            am.update(&state.db).await?;
            (format!("Channel {:?} {action}d.", c.name), String::new())
        }
        "delete" => {
            notify_channel::Entity::delete_by_id(id)
                .exec(&state.db)
                .await?;
            (format!("Channel {:?} deleted.", c.name), String::new())
        }
        _ => (
            String::new(),
            "action: test, enable, disable or delete".into(),
        ),
    };
    if action != "test" && error.is_empty() {
        me.audit(
            &state.db,
            state.clock.now_utc(),
            Entry {
                action: &format!("channel.{action}"),
                target_kind: "channel",
                target_id: id.to_string(),
                before: Some(json!({"name": c.name, "enabled": c.enabled})),
                after: None,
            },
        )
        .await?;
    }
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, page(&state, me, notice, error).await?).into_response())
}

pub async fn rule_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_manage_users())?;
    let rule = alert_rule::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no rule {id}"))))?;
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
        let p = page(
            &state,
            me,
            String::new(),
            format!("Rule {:?} not saved — {error}", rule.name),
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
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
    am.enabled = Set(f.get("enabled") == "on");
    am.site_ids = Set(json!(f.ids("site")));
    am.channel_ids = Set(json!(f.ids("channel")));
    let r = am.update(&state.db).await?;
    me.audit(
        &state.db,
        state.clock.now_utc(),
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
    Ok(Redirect::to("/alerts/settings").into_response())
}

const TOPIC_RULE: &str = "topic: a topic path such as Device/HardwareFailure/StorageFailure (letters, digits, / _ - . only, at most 200)";

/// An event topic path (without namespace prefix); empty means every
/// watched topic.
fn valid_topic(t: &str) -> bool {
    t.len() <= 200
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
}

/// A new camera-event rule (the other kinds exist once each).
pub async fn rule_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_manage_users())?;
    let name = f.text("name");
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
        let p = page(
            &state,
            me,
            String::new(),
            format!("Rule not added — {error}"),
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
    }
    let now = state.clock.now_utc();
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
    .insert(&state.db)
    .await?;
    me.audit(
        &state.db,
        now,
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
    Ok(Redirect::to("/alerts/settings").into_response())
}
