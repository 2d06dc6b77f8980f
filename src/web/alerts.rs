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
use crate::fleet::console::alerts::{AlertAction, AlertQuery, AlertRow, AlertSummary, StateFilter};

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub me: CurrentUser,
    pub state: String,
    pub alerts: Vec<AlertRow>,
    pub next: Option<i32>,
    pub deliveries: Vec<delivery::Model>,
    pub can_act: bool,
    pub severity: String,
    /// After a bulk action: what it did.
    pub notice: String,
    pub notice_class: &'static str,
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
    let done: usize = f.get("done").parse().unwrap_or(0);
    let failed: usize = f.get("failed").parse().unwrap_or(0);
    let verb = match f.get("did").as_str() {
        "resolve" => "Resolved",
        _ => "Acknowledged",
    };
    let (notice, notice_class) = match (done, failed) {
        (0, 0) => (String::new(), "notice"),
        (d, 0) => (format!("{verb} {d} alert{}.", plural(d)), "notice"),
        (d, f) => (
            format!(
                "{verb} {d} alert{}; {f} could not be (already resolved, or no longer yours).",
                plural(d)
            ),
            if d == 0 {
                "notice bad"
            } else {
                "notice partial"
            },
        ),
    };
    Ok(AlertsPage {
        can_act: me.role.can_handle_alerts(),
        severity: q.severity.clone().unwrap_or_default(),
        notice,
        notice_class,
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Acknowledge or resolve the ticked alerts at once; each succeeds or
/// fails on its own, and the list says how many did.
pub async fn alerts_bulk(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let action = AlertAction::parse(&f.get("action"))?;
    let ids = f.ids("alert");
    if ids.is_empty() {
        return Err(WebError(crate::error::Error::new(
            crate::error::ErrorKind::InvalidArgument,
            "Tick the alerts to act on first",
        )));
    }
    let out = state
        .console
        .alerts_bulk(&state.alerting, &me.actor(), &ids, action, &f.get("note"))
        .await?;
    let done = out.iter().filter(|o| o.ok).count();
    let back = StateFilter::parse(&f.get("state")).as_str();
    Ok(Redirect::to(&format!(
        "/alerts?state={back}&did={}&done={done}&failed={}",
        f.get("action"),
        out.len() - done
    ))
    .into_response())
}

/// Unresolved alert counts as server-sent events (`summary`, JSON): at
/// once, then whenever they change (looked at every 5 s), for the
/// navigation's badge and the dashboard.
pub async fn summary_events(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let actor = me.actor();
    let stream = futures::stream::unfold(
        (state, actor, None::<AlertSummary>),
        |(state, actor, last)| async move {
            let mut first = last.is_none();
            loop {
                if !first {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
                first = false;
                // A database error ends the stream; the browser reconnects.
                let now = state.console.alert_summary(&actor).await.ok()?;
                if last.as_ref() != Some(&now) {
                    let ev = Event::default()
                        .event("summary")
                        .data(serde_json::to_string(&now).unwrap_or_default());
                    return Some((
                        Ok::<_, std::convert::Infallible>(ev),
                        (state, actor, Some(now)),
                    ));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
