//! The dashboard (device counts by status and site, within the actor's
//! sites; recent changes for admins; the last discovery runs) and the
//! audit log (admins; filtered, paged).

use sea_orm::sea_query::LikeExpr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Console;
use crate::db::entities::{audit_log, device, discovery_run, site};
use crate::error::Result;
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;

pub struct SiteCounts {
    pub id: i32,
    pub name: String,
    pub total: i64,
    pub by_status: Vec<(String, i64)>,
}

pub struct Dashboard {
    pub total: u64,
    pub by_status: Vec<(String, i64)>,
    pub by_site: Vec<SiteCounts>,
    pub recent: Vec<audit_log::Model>,
    pub runs: Vec<discovery_run::Model>,
    /// Cameras that need someone: offline, unauthorized, degraded or
    /// replaced (not retired), the most recent first; and how many in all.
    pub problems: Vec<device::Model>,
    pub problem_count: u64,
    pub alerts: super::alerts::AlertSummary,
}

/// The device states the dashboard calls problems.
pub const PROBLEM_STATES: [&str; 4] = ["offline", "unauthorized", "degraded", "replaced"];

#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Who acted (exact user name).
    #[serde(default)]
    pub actor: String,
    /// Prefix, e.g. `device.` or `login`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub target_kind: String,
    #[serde(default)]
    pub target_id: String,
    /// From 1; 100 entries a page.
    pub page: Option<u64>,
}

pub struct AuditPageData {
    pub entries: Vec<audit_log::Model>,
    pub page: u64,
    pub pages: u64,
    pub total: u64,
}

impl Console {
    pub async fn dashboard(&self, actor: &Actor) -> Result<Dashboard> {
        let rows: Vec<(Option<i32>, String, i64)> = device::Entity::find()
            .filter(actor.scope.devices())
            .select_only()
            .column(device::Column::SiteId)
            .column(device::Column::Status)
            .column_as(device::Column::Id.count(), "n")
            .group_by(device::Column::SiteId)
            .group_by(device::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let sites = site::Entity::find().all(&self.db).await?;
        let mut by_status: std::collections::BTreeMap<String, i64> = Default::default();
        let mut per_site: std::collections::BTreeMap<(String, i32), Vec<(String, i64)>> =
            Default::default();
        for (site, status, n) in rows {
            *by_status.entry(status.clone()).or_default() += n;
            let name = crate::fleet::inventory::site_name(&sites, site);
            let name = if name.is_empty() { "(no site)" } else { name };
            per_site
                .entry((name.to_string(), site.unwrap_or(0)))
                .or_default()
                .push((status, n));
        }
        let total = u64::try_from(by_status.values().sum::<i64>()).unwrap_or(0);
        let by_site = per_site
            .into_iter()
            .map(|((name, id), by_status)| SiteCounts {
                id,
                name,
                total: by_status.iter().map(|(_, n)| n).sum(),
                by_status,
            })
            .collect();
        let recent = if actor.role.can_manage_users() {
            audit_log::Entity::find()
                .order_by_desc(audit_log::Column::Id)
                .limit(10)
                .all(&self.db)
                .await?
        } else {
            Vec::new()
        };
        let mut runs = self.discovery_runs(actor).await?;
        runs.truncate(5);
        let problem_q = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::RetiredAt.is_null())
            .filter(device::Column::Status.is_in(PROBLEM_STATES));
        let problem_count = problem_q.clone().count(&self.db).await?;
        let problems = problem_q
            .order_by_desc(device::Column::StateSince)
            .order_by_asc(device::Column::Id)
            .limit(10)
            .all(&self.db)
            .await?;
        let alerts = self.alert_summary(actor).await?;
        Ok(Dashboard {
            problems,
            problem_count,
            alerts,
            total,
            by_status: by_status.into_iter().collect(),
            by_site,
            recent,
            runs,
        })
    }

    /// The audit log, newest first (admins).
    /// The nodes sharing this database: alive, roles, sites, leases held,
    /// streams recorded (technicians and admins).
    pub async fn cluster(&self, actor: &Actor) -> Result<Vec<crate::fleet::cluster::NodeView>> {
        actor.require(Role::can_operate_devices)?;
        crate::fleet::cluster::nodes(&self.db, self.clock.now_utc().timestamp_millis()).await
    }

    pub async fn audit_log(&self, actor: &Actor, q: &AuditQuery) -> Result<AuditPageData> {
        actor.require(Role::can_manage_users)?;
        let mut cond = Condition::all();
        if !q.actor.is_empty() {
            cond = cond.add(audit_log::Column::Actor.eq(q.actor.as_str()));
        }
        if !q.action.is_empty() {
            let prefix = format!(
                "{}%",
                q.action
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            cond = cond
                .add(audit_log::Column::Action.like(LikeExpr::new(prefix.as_str()).escape('\\')));
        }
        if !q.target_kind.is_empty() {
            cond = cond.add(audit_log::Column::TargetKind.eq(q.target_kind.as_str()));
        }
        if !q.target_id.is_empty() {
            cond = cond.add(audit_log::Column::TargetId.eq(q.target_id.as_str()));
        }
        let paginator = audit_log::Entity::find()
            .filter(cond)
            .order_by_desc(audit_log::Column::Id)
            .paginate(&self.db, 100);
        let counts = paginator.num_items_and_pages().await?;
        let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
        let entries = paginator.fetch_page(page - 1).await?;
        Ok(AuditPageData {
            entries,
            page,
            pages: std::cmp::max(counts.number_of_pages, 1),
            total: counts.number_of_items,
        })
    }
}
