//! Alerts as people see and handle them: lists filtered by state,
//! severity and device within the actor's sites, one alert with its
//! history, acknowledge and resolve (one or many) with a note.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;

use super::{Console, Page, not_found, page_size};
use crate::db::entities::{alert, alert_history, alert_rule, delivery, device};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::alerting::Alerting;
use crate::fleet::audit::{Actor, Entry};
use crate::fleet::users::Role;

/// Which alerts a list shows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Open or acknowledged.
    #[default]
    Active,
    Open,
    Acknowledged,
    Resolved,
    All,
}

impl StateFilter {
    pub fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "acknowledged" => Self::Acknowledged,
            "resolved" => Self::Resolved,
            "all" => Self::All,
            _ => Self::Active,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    #[serde(default)]
    #[param(inline)]
    pub state: StateFilter,
    /// `critical`, `warning` or `info`.
    pub severity: Option<String>,
    pub device_id: Option<i32>,
    /// Alerts with an id below this one (the previous page's `next`).
    pub after: Option<i32>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u64>,
}

/// One alert in a list.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    pub id: i32,
    pub device_id: i32,
    pub device: String,
    pub site_id: Option<i32>,
    pub rule_id: i32,
    pub rule: String,
    pub severity: String,
    pub state: String,
    pub summary: String,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub acked_by: Option<String>,
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct AlertList {
    pub page: Page<AlertRow>,
    /// The notification outbox (only for those who see every site).
    pub deliveries: Vec<delivery::Model>,
}

/// One alert and what happened to it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertRow,
    pub history: Vec<AlertEvent>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AlertEvent {
    pub at: chrono::DateTime<chrono::Utc>,
    pub action: String,
    pub actor: String,
    pub note: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    Acknowledge,
    Resolve,
}

impl AlertAction {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "acknowledge" => Ok(Self::Acknowledge),
            "resolve" => Ok(Self::Resolve),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                "action: acknowledge or resolve",
            )),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Resolve => "resolve",
        }
    }
}

/// What a bulk action did to each alert.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    pub id: i32,
    pub ok: bool,
    pub detail: String,
}

/// Alerts not yet resolved, within the actor's sites: the navigation's
/// badge and the dashboard's panel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AlertSummary {
    /// Open (nobody acknowledged them yet).
    pub open: u64,
    pub acknowledged: u64,
    /// Unresolved, by severity.
    pub critical: u64,
    pub warning: u64,
    pub info: u64,
    /// Cameras in service that need someone (offline, unauthorized,
    /// degraded, replaced): the dashboard reloads its panels when this
    /// changes.
    pub problems: u64,
}

fn scoped(actor: &Actor) -> Condition {
    actor.scope.on(alert::Column::SiteId)
}

impl Console {
    /// Counts of unresolved alerts (any logged-in user sees alerts).
    pub async fn alert_summary(&self, actor: &Actor) -> Result<AlertSummary> {
        let rows: Vec<(String, String, i64)> = alert::Entity::find()
            .filter(scoped(actor))
            .filter(alert::Column::State.ne("resolved"))
            .select_only()
            .column(alert::Column::State)
            .column(alert::Column::Severity)
            .column_as(alert::Column::Id.count(), "n")
            .group_by(alert::Column::State)
            .group_by(alert::Column::Severity)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut s = AlertSummary::default();
        for (state, severity, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "open" => s.open += n,
                _ => s.acknowledged += n,
            }
            match severity.as_str() {
                "critical" => s.critical += n,
                "warning" => s.warning += n,
                _ => s.info += n,
            }
        }
        s.problems = super::overview::problem_devices(actor)
            .count(&self.db)
            .await?;
        Ok(s)
    }

    pub async fn alerts(&self, actor: &Actor, q: &AlertQuery) -> Result<AlertList> {
        let mut cond = scoped(actor);
        cond = match q.state {
            StateFilter::Active => cond.add(alert::Column::State.ne("resolved")),
            StateFilter::All => cond,
            s => cond.add(alert::Column::State.eq(s.as_str())),
        };
        if let Some(s) = &q.severity {
            cond = cond.add(alert::Column::Severity.eq(s.as_str()));
        }
        if let Some(d) = q.device_id {
            cond = cond.add(alert::Column::DeviceId.eq(d));
        }
        if let Some(a) = q.after {
            cond = cond.add(alert::Column::Id.lt(a));
        }
        let limit = page_size(q.limit);
        let mut list = alert::Entity::find()
            .filter(cond)
            .order_by_desc(alert::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let more = list.len() as u64 > limit;
        list.truncate(limit as usize);
        let items = self.rows(list).await?;
        let next = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        // The outbox is fleet-wide: only for those who see every site.
        let deliveries = if actor.scope.is_all() {
            delivery::Entity::find()
                .order_by_desc(delivery::Column::Id)
                .limit(50)
                .all(&self.db)
                .await?
        } else {
            Vec::new()
        };
        Ok(AlertList {
            page: Page { items, next },
            deliveries,
        })
    }

    async fn rows(&self, list: Vec<alert::Model>) -> Result<Vec<AlertRow>> {
        let rules: HashMap<i32, String> = alert_rule::Entity::find()
            .select_only()
            .column(alert_rule::Column::Id)
            .column(alert_rule::Column::Name)
            .into_tuple::<(i32, String)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        let dev_ids: Vec<i32> = list.iter().map(|a| a.device_id).collect();
        let names: HashMap<i32, String> = device::Entity::find()
            .filter(device::Column::Id.is_in(dev_ids))
            .select_only()
            .column(device::Column::Id)
            .column(device::Column::Name)
            .into_tuple::<(i32, String)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(list
            .into_iter()
            .map(|a| AlertRow {
                rule: rules.get(&a.rule_id).cloned().unwrap_or_default(),
                device: names
                    .get(&a.device_id)
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("device {}", a.device_id)),
                id: a.id,
                device_id: a.device_id,
                site_id: a.site_id,
                rule_id: a.rule_id,
                severity: a.severity,
                state: a.state,
                summary: a.summary,
                opened_at: a.opened_at,
                acked_by: a.acked_by,
                resolved_at: a.resolved_at,
            })
            .collect())
    }

    async fn alert_in_scope(&self, actor: &Actor, id: i32) -> Result<alert::Model> {
        alert::Entity::find_by_id(id)
            .filter(scoped(actor))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("alert", id))
    }

    pub async fn alert(&self, actor: &Actor, id: i32) -> Result<AlertDetail> {
        let a = self.alert_in_scope(actor, id).await?;
        let history = alert_history::Entity::find()
            .filter(alert_history::Column::AlertId.eq(id))
            .order_by_asc(alert_history::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|h| AlertEvent {
                at: h.at,
                action: h.action,
                actor: h.actor,
                note: h.note,
            })
            .collect();
        let alert = self
            .rows(vec![a])
            .await?
            .pop()
            .ok_or_else(|| not_found("alert", id))?;
        Ok(AlertDetail { alert, history })
    }

    /// Acknowledge or resolve one alert, with a note (technicians, admins).
    pub async fn alert_act(
        &self,
        alerting: &Alerting,
        actor: &Actor,
        id: i32,
        action: AlertAction,
        note: &str,
    ) -> Result<AlertRow> {
        actor.require(Role::can_handle_alerts)?;
        self.alert_in_scope(actor, id).await?;
        let note: String = note.chars().take(2000).collect();
        let a = match action {
            AlertAction::Acknowledge => alerting.acknowledge(id, &actor.name, &note).await?,
            AlertAction::Resolve => alerting.resolve(id, &actor.name, &note).await?,
        };
        self.audit(
            actor,
            Entry {
                action: &format!("alert.{}", action.as_str()),
                target_kind: "alert",
                target_id: id.to_string(),
                before: None,
                after: Some(json!({"note": note})),
            },
        )
        .await?;
        self.rows(vec![a])
            .await?
            .pop()
            .ok_or_else(|| not_found("alert", id))
    }

    /// The same action on many alerts; each succeeds or fails on its own
    /// (one already resolved does not stop the rest).
    pub async fn alerts_bulk(
        &self,
        alerting: &Alerting,
        actor: &Actor,
        ids: &[i32],
        action: AlertAction,
        note: &str,
    ) -> Result<Vec<BulkOutcome>> {
        actor.require(Role::can_handle_alerts)?;
        if ids.len() > 1000 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "ids: at most 1000 alerts at once",
            ));
        }
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let r = self.alert_act(alerting, actor, id, action, note).await;
            out.push(BulkOutcome {
                id,
                ok: r.is_ok(),
                detail: match r {
                    Ok(a) => a.state,
                    Err(e) => e.message,
                },
            });
        }
        Ok(out)
    }
}
