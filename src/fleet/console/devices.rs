//! One device as a technician sees it (health, events, charts, profiles,
//! history, backfills) and every action on it, typed: poll interval,
//! reboot, network, recording policy, backfill now, retire, return to
//! service, delete. Each action checks role and scope here.

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde_json::json;

use super::{Console, not_found};
use crate::db::entities::{
    audit_log, backfill, credential, device, device_event, device_profile, device_transition, site,
};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::{Actor, Entry};
use crate::fleet::users::Role;

pub struct EventRow {
    pub at: chrono::DateTime<chrono::Utc>,
    pub topic: String,
    pub state: &'static str,
    pub details: String,
}

pub struct DeviceView {
    pub d: device::Model,
    pub site: String,
    pub transitions: Vec<device_transition::Model>,
    /// Camera events on watched topics, newest first.
    pub events: Vec<EventRow>,
    /// Server-rendered SVG charts: (title, svg).
    pub charts: Vec<(String, String)>,
    pub drift: String,
    pub profiles: Vec<device_profile::Model>,
    pub quirks: Vec<String>,
    pub history: Vec<audit_log::Model>,
    /// Gaps tried from the camera's own recording, newest first.
    pub backfills: Vec<backfill::Model>,
    /// The node that polls it and the one that records it (their live
    /// leases), if any.
    pub node: Option<String>,
    pub recorded_by: Option<String>,
}

/// A device as the API shows it: the row, its media profiles, and the
/// node serving it.
pub struct DeviceDetail {
    pub device: device::Model,
    pub profiles: Vec<device_profile::Model>,
    pub node: Option<String>,
    pub recorded_by: Option<String>,
}

/// The services a device action may need besides the database.
pub struct DeviceOps<'a> {
    pub inventory: &'a crate::fleet::inventory::Inventory,
    pub provisioner: &'a crate::fleet::provision::Provisioner,
    pub backfill: Option<&'a Arc<crate::fleet::backfill::Backfill>>,
    /// At most this many manual backfills at once.
    pub backfills: &'a Arc<tokio::sync::Semaphore>,
}

/// The span a device page's charts show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChartRange {
    Hour,
    SixHours,
    #[default]
    Day,
    Week,
    Month,
}

impl ChartRange {
    pub const ALL: [ChartRange; 5] = [
        Self::Hour,
        Self::SixHours,
        Self::Day,
        Self::Week,
        Self::Month,
    ];

    /// `1h`, `6h`, `24h`, `7d`, `30d` (anything else: 24 h).
    pub fn parse(s: &str) -> Self {
        match s {
            "1h" => Self::Hour,
            "6h" => Self::SixHours,
            "7d" => Self::Week,
            "30d" => Self::Month,
            _ => Self::Day,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::SixHours => "6h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Hour => "1 h",
            Self::SixHours => "6 h",
            Self::Day => "24 h",
            Self::Week => "7 days",
            Self::Month => "30 days",
        }
    }

    /// (span, bucket, from raw samples) in milliseconds. Raw samples are
    /// kept 48 h; rollups are 5-minute buckets kept longer.
    fn spec(self) -> (i64, i64, bool) {
        const H: i64 = 3_600_000;
        match self {
            Self::Hour => (H, 60_000, true),
            Self::SixHours => (6 * H, 5 * 60_000, true),
            Self::Day => (24 * H, 15 * 60_000, true),
            Self::Week => (7 * 24 * H, H, false),
            Self::Month => (30 * 24 * H, 6 * H, false),
        }
    }
}

/// What can be done to one device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DeviceAction {
    /// This device's own poll interval (None: the site's or the default).
    PollInterval {
        seconds: Option<i32>,
    },
    Reboot,
    /// IPv4 settings; the stored address follows only when the camera
    /// answers there within a minute.
    Network {
        dhcp: bool,
        #[schema(value_type = Option<String>)]
        address: Option<std::net::Ipv4Addr>,
        prefix: Option<u8>,
    },
    /// Which media profile to record (None: none), over `tcp` or `udp`.
    Recording {
        profile: Option<String>,
        transport: Option<String>,
    },
    /// Fill recording gaps from the camera's own storage now (background).
    Backfill,
    /// Out of service: no longer polled, recorded or alerted on; kept in
    /// the inventory with the date and reason.
    Retire {
        reason: String,
    },
    /// Back into service.
    Unretire,
    /// Forget what camfleet learned about this camera (its auth mode and
    /// quirks): the next session detects everything afresh. For a camera
    /// whose firmware or settings changed.
    ResetPolicies,
}

impl DeviceAction {
    fn name(&self) -> &'static str {
        match self {
            Self::PollInterval { .. } => "poll_interval",
            Self::Reboot => "reboot",
            Self::Network { .. } => "network",
            Self::Recording { .. } => "recording",
            Self::Backfill => "backfill",
            Self::Retire { .. } => "retire",
            Self::Unretire => "unretire",
            Self::ResetPolicies => "reset_policies",
        }
    }
}

/// What an action did, in words. A camera that could not be reached or
/// refused is an outcome (`ok: false`, and why), not an error of ours.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ActionOutcome {
    pub device_id: i32,
    pub action: String,
    pub ok: bool,
    pub detail: String,
}

pub fn human_drift(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let a = ms.unsigned_abs();
    if a < 1_000 {
        format!("{sign}{a} ms")
    } else if a < 120_000 {
        format!("{sign}{:.1} s", a as f64 / 1000.0)
    } else if a < 7_200_000 {
        format!("{sign}{} min", a / 60_000)
    } else {
        format!("{sign}{} h {} min", a / 3_600_000, (a % 3_600_000) / 60_000)
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, m.into())
}

impl Console {
    /// A device by id, if it exists within the actor's sites (outside them
    /// it answers 404, the same as a missing one).
    pub async fn device_in_scope(&self, actor: &Actor, id: i32) -> Result<device::Model> {
        device::Entity::find_by_id(id)
            .filter(actor.scope.devices())
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("device", id))
    }

    /// A device and its media profiles (the API's device).
    pub async fn device_detail(&self, actor: &Actor, id: i32) -> Result<DeviceDetail> {
        let d = self.device_in_scope(actor, id).await?;
        let profiles = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(id))
            .order_by_asc(device_profile::Column::Id)
            .all(&self.db)
            .await?;
        let (node, recorded_by) = self.lease_holders(id).await?;
        Ok(DeviceDetail {
            node,
            recorded_by,
            device: d,
            profiles,
        })
    }

    /// The nodes holding live leases on the device: (polling, recording).
    async fn lease_holders(&self, id: i32) -> Result<(Option<String>, Option<String>)> {
        use crate::db::entities::device_lease;
        let now = self.clock.now_utc().timestamp_millis();
        let leases = device_lease::Entity::find()
            .filter(device_lease::Column::DeviceId.eq(id))
            .filter(device_lease::Column::ExpiresMs.gt(now))
            .all(&self.db)
            .await?;
        let holder = |kind: &str| {
            leases
                .iter()
                .find(|l| l.kind == kind)
                .and_then(|l| l.node.clone())
        };
        Ok((holder("poll"), holder("record")))
    }

    pub async fn device_view(
        &self,
        actor: &Actor,
        id: i32,
        range: ChartRange,
    ) -> Result<DeviceView> {
        let d = self.device_in_scope(actor, id).await?;
        let (node, recorded_by) = self.lease_holders(id).await?;
        let site = match d.site_id {
            Some(sid) => site::Entity::find_by_id(sid)
                .one(&self.db)
                .await?
                .map(|s| s.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let profiles = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(id))
            .all(&self.db)
            .await?;
        let quirks = crate::fleet::policies::stored(&d.quirks)
            .iter()
            .map(crate::fleet::policies::describe)
            .collect();
        let history = audit_log::Entity::find()
            .filter(audit_log::Column::TargetKind.eq("device"))
            .filter(audit_log::Column::TargetId.eq(id.to_string()))
            .order_by_desc(audit_log::Column::Id)
            .limit(50)
            .all(&self.db)
            .await?;
        let transitions = device_transition::Entity::find()
            .filter(device_transition::Column::DeviceId.eq(id))
            .order_by_desc(device_transition::Column::Id)
            .limit(50)
            .all(&self.db)
            .await?;
        let events = device_event::Entity::find()
            .filter(device_event::Column::DeviceId.eq(id))
            .order_by_desc(device_event::Column::Id)
            .limit(30)
            .all(&self.db)
            .await?
            .into_iter()
            .map(event_row)
            .collect();
        let tz = self.site_tz(d.site_id).await?;
        let charts = self.health_charts(id, range, tz).await?;
        let drift = d.drift_ms.map(human_drift).unwrap_or_default();
        let backfills = crate::fleet::backfill::Backfill::history(&self.db, id, 10).await?;
        Ok(DeviceView {
            d,
            site,
            transitions,
            events,
            charts,
            drift,
            profiles,
            quirks,
            history,
            backfills,
            node,
            recorded_by,
        })
    }

    /// The device page's charts over `range`: availability (with the
    /// range's uptime), latency and clock drift, on a time axis in the
    /// site's time zone; up to 24 h from raw samples, longer from rollups.
    async fn health_charts(
        &self,
        id: i32,
        range: ChartRange,
        tz: chrono_tz::Tz,
    ) -> Result<Vec<(String, String)>> {
        use crate::fleet::samples::{ChartPoint, Point, series, svg_chart};
        let now = self.clock.now_utc().timestamp_millis();
        let (span, bucket, raw) = range.spec();
        let label = range.label();
        let pts = series(&self.db, id, now, span, bucket, raw).await?;
        let start = now - span;
        let x = |p: &Point| (p.start_ms - start) as f64 / span as f64;
        let local = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .with_timezone(&tz)
        };
        let when = |p: &Point| {
            let fmt = if span > 24 * 3_600_000 {
                "%a %d %b %H:%M"
            } else {
                "%H:%M"
            };
            local(p.start_ms).format(fmt).to_string()
        };
        // About six ticks on round times.
        let step = match span {
            s if s <= 3_600_000 => 10 * 60_000,
            s if s <= 6 * 3_600_000 => 3_600_000,
            s if s <= 24 * 3_600_000 => 4 * 3_600_000,
            s if s <= 7 * 24 * 3_600_000 => 24 * 3_600_000,
            _ => 5 * 24 * 3_600_000,
        };
        let offset = chrono::Offset::fix(local(now).offset()).local_minus_utc() as i64 * 1000;
        let mut ticks = Vec::new();
        let mut t = start - (start + offset).rem_euclid(step) + step;
        while t < now {
            let fmt = if step >= 24 * 3_600_000 {
                "%a %d"
            } else {
                "%H:%M"
            };
            ticks.push((
                (t - start) as f64 / span as f64,
                local(t).format(fmt).to_string(),
            ));
            t += step;
        }
        let (samples, ok) = pts
            .iter()
            .fold((0i64, 0i64), |(n, k), p| (n + p.samples, k + p.ok));
        let uptime = if samples > 0 {
            format!(": {:.1} % up", ok as f64 * 100.0 / samples as f64)
        } else {
            ": no samples".to_string()
        };
        let series_of = |f: &dyn Fn(&Point) -> Option<f64>, unit: &str, digits: usize| {
            pts.iter()
                .map(|p| {
                    let y = f(p);
                    ChartPoint {
                        x: x(p),
                        y,
                        label: match y {
                            Some(v) => {
                                format!("{}: {v:.digits$} {unit} ({} polls)", when(p), p.samples)
                            }
                            None => format!("{}: no value", when(p)),
                        },
                    }
                })
                .collect::<Vec<_>>()
        };
        let avail = series_of(&|p| p.availability().map(|a| a * 100.0), "%", 1);
        let lat = series_of(&|p| p.latency_avg_ms, "ms", 0);
        let drift = series_of(&|p| p.drift_avg_ms.map(|d| d / 1000.0), "s", 2);
        let mut out = Vec::new();
        for (title, unit, pts, max) in [
            (
                format!("Availability, {label}{uptime}"),
                "%",
                avail,
                Some(100.0),
            ),
            (format!("Latency, {label}"), "ms", lat, None),
            (format!("Clock drift, {label}"), "s", drift, None),
        ] {
            let svg = svg_chart(&title, unit, &pts, max, &ticks);
            out.push((title, svg));
        }
        Ok(out)
    }

    /// Do one thing to one device (technicians and admins, in their sites).
    pub async fn device_act(
        &self,
        ops: &DeviceOps<'_>,
        actor: &Actor,
        id: i32,
        action: DeviceAction,
    ) -> Result<ActionOutcome> {
        actor.require(Role::can_operate_devices)?;
        let d = self.device_in_scope(actor, id).await?;
        let name = action.name();
        if d.retired_at.is_some() && !matches!(action, DeviceAction::Unretire) {
            return Err(Error::new(
                ErrorKind::Conflict,
                "this device is retired; return it to service first",
            ));
        }
        let result: Result<String> = async {
            Ok(match action {
                DeviceAction::PollInterval { seconds } => {
                    ops.inventory
                        .set_poll_interval(id, seconds, &actor.scope, actor)
                        .await?;
                    match seconds {
                        Some(s) => format!("polled every {s} s"),
                        None => "polled at the site's or the default interval".into(),
                    }
                }
                DeviceAction::Reboot => ops.provisioner.reboot(id, actor).await?,
                DeviceAction::Network {
                    dhcp,
                    address,
                    prefix,
                } => {
                    let address = if dhcp {
                        None
                    } else {
                        let a = address.ok_or_else(|| invalid("address: an IPv4 address"))?;
                        let p = prefix
                            .filter(|p| (1..=32).contains(p))
                            .ok_or_else(|| invalid("prefix length: 1–32"))?;
                        Some((a, p))
                    };
                    ops.provisioner
                        .change_network(
                            id,
                            dhcp,
                            address,
                            std::time::Duration::from_secs(60),
                            actor,
                        )
                        .await?;
                    "network settings changed".into()
                }
                DeviceAction::Recording { profile, transport } => {
                    let profile = profile.filter(|p| !p.is_empty());
                    let transport = transport
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| "tcp".into());
                    let what = match &profile {
                        Some(p) => format!("records profile {p} over {transport}"),
                        None => "not recorded".into(),
                    };
                    crate::fleet::recording::set_policy(
                        &self.db,
                        self.clock.now_utc(),
                        d,
                        profile,
                        &transport,
                        actor,
                    )
                    .await?;
                    what
                }
                DeviceAction::Backfill => {
                    let Some(b) = ops.backfill.cloned() else {
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            "edge backfill is not configured here",
                        ));
                    };
                    let permit = ops.backfills.clone().try_acquire_owned().map_err(|_| {
                        Error::new(
                            ErrorKind::ResourceExhausted,
                            "a backfill is running already; try again when it is done",
                        )
                    })?;
                    self.audit(
                        actor,
                        Entry {
                            action: "device.backfill",
                            target_kind: "device",
                            target_id: id.to_string(),
                            before: None,
                            after: None,
                        },
                    )
                    .await?;
                    tokio::spawn(async move {
                        let _permit = permit;
                        match b.run(Some(id), crate::shutdown::never()).await {
                            Ok(r) => {
                                tracing::info!(device = id, summary = %r.summary(), "backfill done")
                            }
                            Err(e) => tracing::warn!(device = id, error = %e, "backfill failed"),
                        }
                    });
                    "backfill started".into()
                }
                DeviceAction::Retire { reason } => {
                    let reason: String = reason.trim().chars().take(500).collect();
                    if reason.is_empty() {
                        return Err(invalid("reason: why the device is retired"));
                    }
                    let now = self.clock.now_utc();
                    let mut am = d.into_active_model();
                    am.retired_at = Set(Some(now));
                    am.retired_reason = Set(Some(reason.clone()));
                    am.status = Set("retired".into());
                    am.record_profile = Set(None);
                    am.update(&self.db).await?;
                    self.audit(
                        actor,
                        Entry {
                            action: "device.retire",
                            target_kind: "device",
                            target_id: id.to_string(),
                            before: None,
                            after: Some(json!({"reason": reason})),
                        },
                    )
                    .await?;
                    format!("retired: {reason}")
                }
                DeviceAction::ResetPolicies => {
                    let before = json!({"auth_mode": d.auth_mode, "quirks": d.quirks});
                    let mut am = d.into_active_model();
                    am.auth_mode = Set(None);
                    am.quirks = Set(json!([]));
                    am.update(&self.db).await?;
                    self.audit(
                        actor,
                        Entry {
                            action: "device.policies_reset",
                            target_kind: "device",
                            target_id: id.to_string(),
                            before: Some(before),
                            after: None,
                        },
                    )
                    .await?;
                    "learned behaviour forgotten: the next session detects it again".into()
                }
                DeviceAction::Unretire => {
                    if d.retired_at.is_none() {
                        return Ok("already in service".to_string());
                    }
                    let before = json!({"retired_at": d.retired_at, "reason": d.retired_reason});
                    let mut am = d.into_active_model();
                    am.retired_at = Set(None);
                    am.retired_reason = Set(None);
                    am.status = Set("unknown".into());
                    am.update(&self.db).await?;
                    self.audit(
                        actor,
                        Entry {
                            action: "device.unretire",
                            target_kind: "device",
                            target_id: id.to_string(),
                            before: Some(before),
                            after: None,
                        },
                    )
                    .await?;
                    "back in service".into()
                }
            })
        }
        .await;
        match result {
            Ok(detail) => Ok(ActionOutcome {
                device_id: id,
                action: name.into(),
                ok: true,
                detail,
            }),
            // The camera's answer (or silence): the caller's request was fine.
            Err(e) if e.kind == ErrorKind::Unavailable => Ok(ActionOutcome {
                device_id: id,
                action: name.into(),
                ok: false,
                detail: e.message,
            }),
            Err(e) => Err(e),
        }
    }

    /// Remove a device and its health data, events and profiles (admins
    /// only). Its alerts are resolved, its recordings stay until retention
    /// removes them, and the audit log keeps what was deleted. The device's
    /// identity goes into the audit entry, so what was deleted stays known.
    pub async fn device_delete(&self, actor: &Actor, id: i32) -> Result<()> {
        actor.require(Role::can_manage_users)?;
        let d = self.device_in_scope(actor, id).await?;
        let txn = self.db.begin().await?;
        use crate::db::entities::{alert, health_rollup, health_sample};
        device_profile::Entity::delete_many()
            .filter(device_profile::Column::DeviceId.eq(id))
            .exec(&txn)
            .await?;
        health_sample::Entity::delete_many()
            .filter(health_sample::Column::DeviceId.eq(id))
            .exec(&txn)
            .await?;
        health_rollup::Entity::delete_many()
            .filter(health_rollup::Column::DeviceId.eq(id))
            .exec(&txn)
            .await?;
        device_transition::Entity::delete_many()
            .filter(device_transition::Column::DeviceId.eq(id))
            .exec(&txn)
            .await?;
        device_event::Entity::delete_many()
            .filter(device_event::Column::DeviceId.eq(id))
            .exec(&txn)
            .await?;
        // Its alerts are closed, not erased: the NOC's history stays true.
        alert::Entity::update_many()
            .col_expr(
                alert::Column::State,
                sea_orm::sea_query::Expr::value("resolved"),
            )
            .col_expr(
                alert::Column::ResolvedAt,
                sea_orm::sea_query::Expr::value(self.clock.now_utc()),
            )
            .filter(alert::Column::DeviceId.eq(id))
            .filter(alert::Column::State.ne("resolved"))
            .exec(&txn)
            .await?;
        device::Entity::delete_by_id(id).exec(&txn).await?;
        if let Some(c) = d.credential_id {
            credential::Entity::delete_by_id(c).exec(&txn).await?;
        }
        crate::fleet::audit::record(
            &txn,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.delete",
                target_kind: "device",
                target_id: id.to_string(),
                before: Some(json!({"name": d.name, "manufacturer": d.manufacturer,
                    "model": d.model, "serial": d.serial, "mac": d.mac,
                    "device_url": d.device_url, "site_id": d.site_id})),
                after: None,
            },
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}

fn event_row(e: device_event::Model) -> EventRow {
    let items = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some(format!("{}={}", p[0].as_str()?, p[1].as_str()?)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    EventRow {
        at: e.at,
        state: match e.active {
            Some(true) => "on",
            Some(false) => "off",
            None => "",
        },
        details: [items(&e.source), items(&e.data)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" · "),
        topic: if e.operation.is_empty() {
            e.topic
        } else {
            format!("{} ({})", e.topic, e.operation)
        },
    }
}

impl Console {
    /// The devices a bulk action would touch, by name: the selection within
    /// the actor's sites (ids outside them are left out, unnamed).
    pub async fn bulk_preview(&self, actor: &Actor, ids: &[i32]) -> Result<Vec<device::Model>> {
        actor.require(Role::can_operate_devices)?;
        if ids.is_empty() {
            return Err(invalid(
                "Tick devices in the list first (or choose every device matching the filter)",
            ));
        }
        if ids.len() > 10_000 {
            return Err(invalid("at most 10,000 devices at once"));
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(1000) {
            out.extend(
                device::Entity::find()
                    .filter(actor.scope.devices())
                    .filter(device::Column::Id.is_in(chunk.iter().copied()))
                    .all(&self.db)
                    .await?,
            );
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One action on many devices, eight at a time; each device's outcome
    /// on its own (one that refuses does not stop the rest).
    pub async fn bulk_act(
        &self,
        ops: &DeviceOps<'_>,
        actor: &Actor,
        ids: &[i32],
        action: DeviceAction,
    ) -> Result<Vec<ActionOutcome>> {
        use futures::StreamExt;
        actor.require(Role::can_operate_devices)?;
        if matches!(
            action,
            DeviceAction::Network { .. } | DeviceAction::PollInterval { .. }
        ) {
            return Err(invalid(
                "network settings and poll intervals are set per device",
            ));
        }
        let name = action.name();
        let mut out: Vec<ActionOutcome> = futures::stream::iter(ids.iter().copied())
            .map(|id| {
                let action = action.clone();
                async move {
                    match self.device_act(ops, actor, id, action).await {
                        Ok(o) => o,
                        Err(e) => ActionOutcome {
                            device_id: id,
                            action: name.to_string(),
                            ok: false,
                            detail: e.message,
                        },
                    }
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        out.sort_by_key(|o| o.device_id);
        Ok(out)
    }
}
