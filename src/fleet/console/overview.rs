//! The dashboard (device counts by status and site, within the actor's
//! sites; recent changes for admins; the last discovery runs) and the
//! audit log (admins; filtered, paged).

use sea_orm::sea_query::LikeExpr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Console;
use crate::db::entities::{audit_log, device, discovery_result, discovery_run, site};
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
    /// Adoptions that failed in the last week and have not been done
    /// since, newest first (at most 10), and how many.
    pub failed_adoptions: Vec<FailedAdoption>,
    pub failed_adoption_count: usize,
}

/// A camera a technician tried to adopt and could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAdoption {
    pub run_id: i32,
    /// The run's start.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The camera's address (its first XAddr), or its endpoint.
    pub address: String,
    /// The step that failed and why.
    pub why: String,
}

/// How far back the dashboard looks for failed adoptions.
const FAILED_ADOPTIONS_DAYS: i64 = 7;

/// The device states the dashboard calls problems.
pub const PROBLEM_STATES: [&str; 4] = ["offline", "unauthorized", "degraded", "replaced"];

/// Cameras in service, within the actor's sites, that need someone.
pub(super) fn problem_devices(actor: &Actor) -> sea_orm::Select<device::Entity> {
    device::Entity::find()
        .filter(actor.scope.devices())
        .filter(device::Column::RetiredAt.is_null())
        .filter(device::Column::Status.is_in(PROBLEM_STATES))
}

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
        // The summary counts the problem cameras (for the badge's stream).
        let alerts = self.alert_summary(actor).await?;
        let problem_count = alerts.problems;
        let problems = problem_devices(actor)
            .order_by_desc(device::Column::StateSince)
            .order_by_asc(device::Column::Id)
            .limit(10)
            .all(&self.db)
            .await?;
        let mut failed_adoptions = self.failed_adoptions(actor).await?;
        let failed_adoption_count = failed_adoptions.len();
        failed_adoptions.truncate(10);
        Ok(Dashboard {
            failed_adoptions,
            failed_adoption_count,
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

    /// Adoptions of the last week's runs (within the actor's sites) that
    /// failed, one per camera (its latest try), leaving out cameras that
    /// are managed now (adopted since, by any run or by address).
    pub async fn failed_adoptions(&self, actor: &Actor) -> Result<Vec<FailedAdoption>> {
        let since = self.clock.now_utc() - chrono::Duration::days(FAILED_ADOPTIONS_DAYS);
        let runs: Vec<(i32, chrono::DateTime<chrono::Utc>)> = discovery_run::Entity::find()
            .filter(actor.scope.on(discovery_run::Column::SiteId))
            .filter(discovery_run::Column::StartedAt.gte(since))
            .select_only()
            .column(discovery_run::Column::Id)
            .column(discovery_run::Column::StartedAt)
            .into_tuple()
            .all(&self.db)
            .await?;
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let started: std::collections::HashMap<i32, chrono::DateTime<chrono::Utc>> =
            runs.iter().copied().collect();
        let rows = discovery_result::Entity::find()
            .filter(discovery_result::Column::RunId.is_in(started.keys().copied()))
            .filter(discovery_result::Column::Outcome.is_not_null())
            .filter(discovery_result::Column::DeviceId.is_null())
            .order_by_desc(discovery_result::Column::Id)
            .limit(500)
            .all(&self.db)
            .await?;
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(FailedAdoption, String, Vec<String>)> = Vec::new();
        for r in rows {
            let Some(why) = r
                .outcome
                .as_deref()
                .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
                .and_then(|o| o.get("failed").and_then(|f| f.as_str()).map(str::to_string))
            else {
                continue;
            };
            // Newest first: a camera's latest try is the one kept.
            if !seen.insert(r.endpoint.clone()) {
                continue;
            }
            let xaddrs: Vec<String> = serde_json::from_value(r.xaddrs.clone()).unwrap_or_default();
            let address = xaddrs
                .first()
                .cloned()
                .unwrap_or_else(|| r.endpoint.clone());
            out.push((
                FailedAdoption {
                    run_id: r.run_id,
                    at: started.get(&r.run_id).copied().unwrap_or(since),
                    address,
                    why,
                },
                r.endpoint,
                xaddrs,
            ));
        }
        if out.is_empty() {
            return Ok(Vec::new());
        }
        // Managed now: by endpoint or by any of the addresses it gave.
        let endpoints: Vec<String> = out.iter().map(|(_, e, _)| e.clone()).collect();
        let urls: Vec<String> = out.iter().flat_map(|(_, _, x)| x.clone()).collect();
        let managed: Vec<(Option<String>, String)> = device::Entity::find()
            .filter(
                Condition::any()
                    .add(device::Column::EndpointUuid.is_in(endpoints))
                    .add(device::Column::DeviceUrl.is_in(urls)),
            )
            .select_only()
            .column(device::Column::EndpointUuid)
            .column(device::Column::DeviceUrl)
            .into_tuple()
            .all(&self.db)
            .await?;
        let managed_endpoints: std::collections::HashSet<String> =
            managed.iter().filter_map(|(e, _)| e.clone()).collect();
        let managed_urls: std::collections::HashSet<String> =
            managed.into_iter().map(|(_, u)| u).collect();
        Ok(out
            .into_iter()
            .filter(|(_, e, x)| {
                !managed_endpoints.contains(e) && !x.iter().any(|u| managed_urls.contains(u))
            })
            .map(|(f, _, _)| f)
            .collect())
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
