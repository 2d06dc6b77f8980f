//! The alerts page: open, acknowledged and resolved alerts (within the
//! user's sites), acknowledge and resolve with a note, each alert's
//! history, and the delivery outbox with its failures.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, RawQuery, State as AxState};
use axum::response::{IntoResponse, Redirect, Response};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{alert, alert_history, alert_rule, delivery, device};
use crate::error::{Error, ErrorKind};

pub struct AlertRow {
    pub a: alert::Model,
    pub rule: String,
    pub device: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub me: CurrentUser,
    pub state: String,
    pub alerts: Vec<AlertRow>,
    pub deliveries: Vec<delivery::Model>,
    pub can_act: bool,
}

/// Alerts on devices the user may see.
fn scoped(me: &CurrentUser) -> Condition {
    me.scope.on(alert::Column::SiteId)
}

pub async fn alerts(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(raw.as_deref().unwrap_or("").as_bytes());
    let wanted = match f.get("state").as_str() {
        s @ ("open" | "acknowledged" | "resolved" | "all") => s.to_string(),
        _ => "active".to_string(),
    };
    let mut cond = scoped(&me);
    cond = match wanted.as_str() {
        "active" => cond.add(alert::Column::State.ne("resolved")),
        "all" => cond,
        s => cond.add(alert::Column::State.eq(s)),
    };
    let list = alert::Entity::find()
        .filter(cond)
        .order_by_desc(alert::Column::Id)
        .limit(500)
        .all(&state.db)
        .await?;
    let rules = alert_rule::Entity::find().all(&state.db).await?;
    let dev_ids: Vec<i32> = list.iter().map(|a| a.device_id).collect();
    let names: std::collections::HashMap<i32, String> = device::Entity::find()
        .filter(device::Column::Id.is_in(dev_ids))
        .select_only()
        .column(device::Column::Id)
        .column(device::Column::Name)
        .into_tuple::<(i32, String)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect();
    let alerts = list
        .into_iter()
        .map(|a| AlertRow {
            rule: rules
                .iter()
                .find(|r| r.id == a.rule_id)
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            device: names
                .get(&a.device_id)
                .cloned()
                .unwrap_or_else(|| format!("device {}", a.device_id)),
            a,
        })
        .collect();
    // The outbox is fleet-wide: only for those who see every site.
    let deliveries = if me.scope.is_all() {
        delivery::Entity::find()
            .order_by_desc(delivery::Column::Id)
            .limit(50)
            .all(&state.db)
            .await?
    } else {
        Vec::new()
    };
    Ok(AlertsPage {
        can_act: me.role.can_operate_devices(),
        me,
        state: wanted,
        alerts,
        deliveries,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "alert.html")]
pub struct AlertPage {
    pub me: CurrentUser,
    pub a: alert::Model,
    pub rule: String,
    pub history: Vec<alert_history::Model>,
    pub can_act: bool,
}

async fn alert_or_404(state: &State, me: &CurrentUser, id: i32) -> Result<alert::Model, WebError> {
    alert::Entity::find_by_id(id)
        .filter(scoped(me))
        .one(&state.db)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no alert {id}"))))
}

pub async fn alert_page(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let a = alert_or_404(&state, &me, id).await?;
    let rule = alert_rule::Entity::find_by_id(a.rule_id)
        .one(&state.db)
        .await?
        .map(|r| r.name)
        .unwrap_or_default();
    let history = alert_history::Entity::find()
        .filter(alert_history::Column::AlertId.eq(id))
        .order_by_asc(alert_history::Column::Id)
        .all(&state.db)
        .await?;
    Ok(AlertPage {
        can_act: me.role.can_operate_devices(),
        me,
        a,
        rule,
        history,
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
    me.require(me.role.can_operate_devices())?;
    alert_or_404(&state, &me, id).await?;
    let note: String = f.get("note").chars().take(2000).collect();
    let who = &me.user.username;
    match f.get("action").as_str() {
        "acknowledge" => state.alerting.acknowledge(id, who, &note).await?,
        "resolve" => state.alerting.resolve(id, who, &note).await?,
        _ => {
            return Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                "action: acknowledge or resolve",
            )));
        }
    };
    me.audit(
        &state.db,
        state.clock.now_utc(),
        crate::fleet::audit::Entry {
            action: &format!("alert.{}", f.get("action")),
            target_kind: "alert",
            target_id: id.to_string(),
            before: None,
            after: Some(serde_json::json!({"note": note})),
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}
