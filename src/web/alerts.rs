//! The alerts page: open, acknowledged and resolved alerts (within the
//! user's sites), acknowledge and resolve with a note, each alert's
//! history, and the delivery outbox with its failures. Everything is read
//! and changed through [`crate::fleet::console`].

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, RawQuery, State as AxState};
use axum::response::{IntoResponse, Redirect, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::delivery;
use crate::fleet::console::alerts::{AlertAction, AlertQuery, AlertRow, StateFilter};

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub me: CurrentUser,
    pub state: String,
    pub alerts: Vec<AlertRow>,
    pub next: Option<i32>,
    pub deliveries: Vec<delivery::Model>,
    pub can_act: bool,
}

pub async fn alerts(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(raw.as_deref().unwrap_or("").as_bytes());
    let q = AlertQuery {
        state: StateFilter::parse(&f.get("state")),
        severity: Some(f.get("severity")).filter(|s| !s.is_empty()),
        device_id: f.get("device").parse().ok(),
        after: f.get("after").parse().ok(),
        limit: Some(500),
    };
    let list = state.console.alerts(&me.actor(), &q).await?;
    Ok(AlertsPage {
        can_act: me.role.can_handle_alerts(),
        me,
        state: q.state.as_str().into(),
        alerts: list.page.items,
        next: list.page.next,
        deliveries: list.deliveries,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "alert.html")]
pub struct AlertPage {
    pub me: CurrentUser,
    pub a: AlertRow,
    pub history: Vec<crate::fleet::console::alerts::AlertEvent>,
    pub can_act: bool,
}

pub async fn alert_page(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let d = state.console.alert(&me.actor(), id).await?;
    Ok(AlertPage {
        can_act: me.role.can_handle_alerts(),
        me,
        a: d.alert,
        history: d.history,
    }
    .into_response())
}

/// Acknowledge or resolve (technicians and admins), with a note.
pub async fn alert_action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let action = AlertAction::parse(&f.get("action"))?;
    state
        .console
        .alert_act(&state.alerting, &me.actor(), id, action, &f.get("note"))
        .await?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}
