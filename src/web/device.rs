//! The device page and its actions: health, events, charts, profiles,
//! history and edge backfill on one page; the POST actions (poll interval,
//! reboot, network, recording policy, backfill now) share one preamble:
//! CSRF, the operator role, and the device within the user's sites.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, State as AxState};
use axum::response::{IntoResponse, Redirect, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use super::pages::{device_or_404, human_drift};
use crate::db::entities::{audit_log, device, device_profile};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;

pub struct EventRow {
    pub at: chrono::DateTime<chrono::Utc>,
    pub topic: String,
    pub state: &'static str,
    pub details: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "device.html")]
pub struct DevicePage {
    pub me: CurrentUser,
    pub d: device::Model,
    pub site: String,
    pub transitions: Vec<crate::db::entities::device_transition::Model>,
    /// Camera events on watched topics, newest first: (when, topic, state, details).
    pub events: Vec<EventRow>,
    /// Server-rendered SVG charts: (title, svg).
    pub charts: Vec<(String, String)>,
    pub drift: String,
    pub profiles: Vec<device_profile::Model>,
    pub quirks: Vec<String>,
    pub history: Vec<audit_log::Model>,
    /// Gaps tried from the camera's own recording, newest first.
    pub backfills: Vec<crate::db::entities::backfill::Model>,
    pub can_backfill: bool,
}

pub async fn device(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let d = device_or_404(&state, &me, id).await?;
    let site = match d.site_id {
        Some(sid) => crate::db::entities::site::Entity::find_by_id(sid)
            .one(&state.db)
            .await?
            .map(|s| s.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    let profiles = device_profile::Entity::find()
        .filter(device_profile::Column::DeviceId.eq(id))
        .all(&state.db)
        .await?;
    let quirks = d
        .quirks
        .as_array()
        .map(|a| a.iter().map(|q| q.to_string()).collect())
        .unwrap_or_default();
    let history = audit_log::Entity::find()
        .filter(audit_log::Column::TargetKind.eq("device"))
        .filter(audit_log::Column::TargetId.eq(id.to_string()))
        .order_by_desc(audit_log::Column::Id)
        .limit(50)
        .all(&state.db)
        .await?;
    let transitions = crate::db::entities::device_transition::Entity::find()
        .filter(crate::db::entities::device_transition::Column::DeviceId.eq(id))
        .order_by_desc(crate::db::entities::device_transition::Column::Id)
        .limit(50)
        .all(&state.db)
        .await?;
    let events = crate::db::entities::device_event::Entity::find()
        .filter(crate::db::entities::device_event::Column::DeviceId.eq(id))
        .order_by_desc(crate::db::entities::device_event::Column::Id)
        .limit(30)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|e| {
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
        })
        .collect();
    let charts = health_charts(&state, id).await?;
    let drift = d.drift_ms.map(human_drift).unwrap_or_default();
    let backfills = crate::fleet::backfill::Backfill::history(&state.db, id, 10).await?;
    Ok(DevicePage {
        can_backfill: state.backfill.is_some() && d.record_profile.is_some(),
        backfills,
        me,
        d,
        site,
        transitions,
        events,
        charts,
        drift,
        profiles,
        quirks,
        history,
    }
    .into_response())
}

/// The device page's charts: 24 h from raw samples (5-minute buckets)
/// and 7 days from rollups (hourly), for availability, latency and drift.
async fn health_charts(state: &State, id: i32) -> Result<Vec<(String, String)>, WebError> {
    use crate::fleet::samples::{BUCKET_MS, series, svg_chart};
    let now = state.clock.now_utc().timestamp_millis();
    let mut out = Vec::new();
    for (label, span, bucket, raw) in [
        ("24 h", 24 * 3_600_000_i64, BUCKET_MS, true),
        ("7 days", 7 * 24 * 3_600_000_i64, 3_600_000, false),
    ] {
        let pts = series(&state.db, id, now, span, bucket, raw).await?;
        let x = |p: &crate::fleet::samples::Point| (p.start_ms - (now - span)) as f64 / span as f64;
        let avail: Vec<(f64, Option<f64>)> = pts
            .iter()
            .map(|p| (x(p), p.availability().map(|a| a * 100.0)))
            .collect();
        let lat: Vec<(f64, Option<f64>)> = pts.iter().map(|p| (x(p), p.latency_avg_ms)).collect();
        let drift: Vec<(f64, Option<f64>)> = pts
            .iter()
            .map(|p| (x(p), p.drift_avg_ms.map(|d| d / 1000.0)))
            .collect();
        out.push((
            format!("Availability, {label}"),
            svg_chart(&format!("Availability, {label}"), "%", &avail, Some(100.0)),
        ));
        out.push((
            format!("Latency, {label}"),
            svg_chart(&format!("Latency, {label}"), "ms", &lat, None),
        ));
        out.push((
            format!("Clock drift, {label}"),
            svg_chart(&format!("Clock drift, {label}"), "s", &drift, None),
        ));
    }
    Ok(out)
}

/// What every device action does first: the form, its CSRF token, the
/// operator role, and the device (404 outside the user's sites).
async fn operate(
    state: &State,
    me: &CurrentUser,
    id: i32,
    raw: &[u8],
) -> Result<(device::Model, FormFields), WebError> {
    let f = FormFields::parse(raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    Ok((device_or_404(state, me, id).await?, f))
}

fn back_to(id: i32) -> Response {
    Redirect::to(&format!("/devices/{id}")).into_response()
}

fn invalid(m: impl Into<String>) -> WebError {
    WebError(Error::new(ErrorKind::InvalidArgument, m.into()))
}

/// A device's own poll interval (technicians and admins).
pub async fn device_poll(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let (_, f) = operate(&state, &me, id, &raw).await?;
    let secs = match f.get("poll_interval_s").trim() {
        "" => None,
        v => Some(
            v.parse::<i32>()
                .map_err(|_| invalid("poll interval: a number of seconds, or empty"))?,
        ),
    };
    state
        .inventory
        .set_poll_interval(id, secs, &me.scope, &Actor::user(&me.user.username))
        .await?;
    Ok(back_to(id))
}

/// Reboot a camera (technicians; a ticked confirmation required).
pub async fn device_reboot(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let (_, f) = operate(&state, &me, id, &raw).await?;
    if f.get("confirm") != "on" {
        return Err(invalid("reboot: tick the confirmation"));
    }
    state
        .provisioner
        .reboot(id, &Actor::user(&me.user.username))
        .await?;
    Ok(back_to(id))
}

/// Change a camera's IPv4 settings: only with the confirmation ticked, and
/// the stored address follows only when the camera answers there.
pub async fn device_network(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let (_, f) = operate(&state, &me, id, &raw).await?;
    if f.get("confirm") != "on" {
        return Err(invalid(
            "network: tick that you understand the camera may become unreachable",
        ));
    }
    let (dhcp, address) = match f.text("mode").as_str() {
        "dhcp" => (true, None),
        "static" => {
            let a: std::net::Ipv4Addr = f
                .text("address")
                .parse()
                .map_err(|_| invalid("address: an IPv4 address"))?;
            let p: u8 = f
                .text("prefix")
                .parse()
                .ok()
                .filter(|p| (1..=32).contains(p))
                .ok_or_else(|| invalid("prefix length: 1–32"))?;
            (false, Some((a, p)))
        }
        _ => return Err(invalid("mode: DHCP or static")),
    };
    state
        .provisioner
        .change_network(
            id,
            dhcp,
            address,
            std::time::Duration::from_secs(60),
            &Actor::user(&me.user.username),
        )
        .await?;
    Ok(back_to(id))
}

/// Fill this device's gaps from the camera's own recording now (in the
/// background; the device page lists the outcome per gap).
pub async fn device_backfill(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    operate(&state, &me, id, &raw).await?;
    let Some(b) = state.backfill.clone() else {
        return Err(WebError(Error::new(
            ErrorKind::Unavailable,
            "edge backfill is not configured here",
        )));
    };
    me.audit(
        &state.db,
        state.clock.now_utc(),
        crate::fleet::audit::Entry {
            action: "device.backfill",
            target_kind: "device",
            target_id: id.to_string(),
            before: None,
            after: None,
        },
    )
    .await?;
    tokio::spawn(async move {
        match b.run(Some(id), crate::shutdown::never()).await {
            Ok(r) => tracing::info!(device = id, summary = %r.summary(), "backfill done"),
            Err(e) => tracing::warn!(device = id, error = %e, "backfill failed"),
        }
    });
    Ok(back_to(id))
}

/// Recording policy of a device: which media profile to record (empty:
/// none), over TCP or UDP.
pub async fn device_recording(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let (d, f) = operate(&state, &me, id, &raw).await?;
    let profile = Some(f.text("profile")).filter(|p| !p.is_empty());
    let transport = match f.text("transport").as_str() {
        "" => "tcp".to_string(),
        t => t.to_string(),
    };
    crate::fleet::recording::set_policy(
        &state.db,
        state.clock.now_utc(),
        d,
        profile,
        &transport,
        &Actor::user(&me.user.username),
    )
    .await?;
    Ok(back_to(id))
}
