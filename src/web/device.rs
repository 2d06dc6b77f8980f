//! The device page and its actions: health, events, charts, profiles,
//! history and edge backfill on one page; the POST actions (poll interval,
//! reboot, network, recording policy, backfill now, retire, delete) parse
//! the form into a [`DeviceAction`] and hand it to the console, which
//! checks role and scope.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, State as AxState};
use axum::response::{IntoResponse, Redirect, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{audit_log, device, device_profile};
use crate::error::{Error, ErrorKind};
use crate::fleet::console::devices::{ChartRange, DeviceAction, EventRow};

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
    /// The cluster nodes polling and recording it.
    pub node: Option<String>,
    pub recorded_by: Option<String>,
    pub can_backfill: bool,
    /// The charts' range, and every range as (key, label).
    pub range: &'static str,
    pub ranges: [(&'static str, &'static str); 5],
}

pub async fn device(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Response, WebError> {
    let f = super::form::FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let range = ChartRange::parse(&f.get("range"));
    let v = state.console.device_view(&me.actor(), id, range).await?;
    Ok(DevicePage {
        range: range.key(),
        ranges: ChartRange::ALL.map(|r| (r.key(), r.label())),
        can_backfill: state.backfill.is_some() && v.d.record_profile.is_some(),
        backfills: v.backfills,
        node: v.node,
        recorded_by: v.recorded_by,
        me,
        d: v.d,
        site: v.site,
        transitions: v.transitions,
        events: v.events,
        charts: v.charts,
        drift: v.drift,
        profiles: v.profiles,
        quirks: v.quirks,
        history: v.history,
    }
    .into_response())
}

fn invalid(m: impl Into<String>) -> WebError {
    WebError(Error::new(ErrorKind::InvalidArgument, m.into()))
}

/// Check the form's CSRF token, then run the action.
async fn act(
    state: &State,
    me: &CurrentUser,
    id: i32,
    f: &FormFields,
    action: impl FnOnce(&FormFields) -> Result<DeviceAction, WebError>,
) -> Result<Response, WebError> {
    me.check_csrf(&f.get("csrf"))?;
    let action = action(f)?;
    let outcome = state
        .console
        .device_act(&state.device_ops(), &me.actor(), id, action)
        .await?;
    if !outcome.ok {
        return Err(WebError(Error::new(
            ErrorKind::Unavailable,
            format!("the camera did not do it: {}", outcome.detail),
        )));
    }
    Ok(Redirect::to(&format!("/devices/{id}")).into_response())
}

/// A device's own poll interval (technicians and admins).
pub async fn device_poll(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    act(&state, &me, id, &FormFields::parse(&raw), |f| {
        let seconds = match f.get("poll_interval_s").trim() {
            "" => None,
            v => Some(
                v.parse::<i32>()
                    .map_err(|_| invalid("poll interval: a number of seconds, or empty"))?,
            ),
        };
        Ok(DeviceAction::PollInterval { seconds })
    })
    .await
}

/// Reboot a camera (technicians; a ticked confirmation required).
pub async fn device_reboot(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    act(&state, &me, id, &FormFields::parse(&raw), |f| {
        if f.get("confirm") != "on" {
            return Err(invalid("reboot: tick the confirmation"));
        }
        Ok(DeviceAction::Reboot)
    })
    .await
}

/// Change a camera's IPv4 settings: only with the confirmation ticked, and
/// the stored address follows only when the camera answers there.
pub async fn device_network(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    act(&state, &me, id, &FormFields::parse(&raw), |f| {
        if f.get("confirm") != "on" {
            return Err(invalid(
                "network: tick that you understand the camera may become unreachable",
            ));
        }
        match f.text("mode").as_str() {
            "dhcp" => Ok(DeviceAction::Network {
                dhcp: true,
                address: None,
                prefix: None,
            }),
            "static" => Ok(DeviceAction::Network {
                dhcp: false,
                address: Some(
                    f.text("address")
                        .parse()
                        .map_err(|_| invalid("address: an IPv4 address"))?,
                ),
                prefix: Some(
                    f.text("prefix")
                        .parse()
                        .map_err(|_| invalid("prefix length: 1–32"))?,
                ),
            }),
            _ => Err(invalid("mode: DHCP or static")),
        }
    })
    .await
}

/// Fill this device's gaps from the camera's own recording now (in the
/// background; the device page lists the outcome per gap).
pub async fn device_backfill(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    act(&state, &me, id, &FormFields::parse(&raw), |_| {
        Ok(DeviceAction::Backfill)
    })
    .await
}

/// Recording policy of a device: which media profile to record (empty:
/// none), over TCP or UDP.
pub async fn device_recording(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    act(&state, &me, id, &FormFields::parse(&raw), |f| {
        Ok(DeviceAction::Recording {
            profile: Some(f.text("profile")),
            transport: Some(f.text("transport")),
        })
    })
    .await
}

/// Retire a device, or return it to service.
pub async fn device_lifecycle(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    if f.get("action") == "delete" {
        me.check_csrf(&f.get("csrf"))?;
        if f.get("confirm") != "on" {
            return Err(invalid("delete: tick the confirmation"));
        }
        state.console.device_delete(&me.actor(), id).await?;
        return Ok(Redirect::to("/devices").into_response());
    }
    act(&state, &me, id, &f, |f| match f.get("action").as_str() {
        "retire" => Ok(DeviceAction::Retire {
            reason: f.text("reason"),
        }),
        "unretire" => Ok(DeviceAction::Unretire),
        "reset_policies" => Ok(DeviceAction::ResetPolicies),
        _ => Err(invalid(
            "action: retire, unretire, reset_policies or delete",
        )),
    })
    .await
}
