//! Discovery as people drive it: runs and their results within the
//! actor's sites, starting a run, adopting from a run, and adopting one
//! camera directly by its address. Runs go on in the background; their
//! progress is published on the [`ProgressHub`].
//!
//! Scope: a run belongs to the site it adopts into. Someone limited to
//! sites sees the runs of their sites and must name one of them to start
//! a run; runs with no site (and Hello announcements) are for those who
//! see every site.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Console, not_found};
use crate::db::entities::{device, discovery_result, discovery_run};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::discovery::{AdoptOutcome, DiscoveryService, RunKind};
use crate::fleet::inventory::Inventory;
use crate::fleet::progress::{Progress, ProgressHub};
use crate::fleet::users::Role;
use crate::onvif::Credentials;

/// What discovery work needs besides the database (shared with the
/// background task a run continues in).
#[derive(Clone)]
pub struct DiscoveryOps {
    pub discovery: Arc<DiscoveryService>,
    pub inventory: Arc<Inventory>,
    pub progress: Arc<ProgressHub>,
}

/// A result as its run page shows it.
pub struct ResultView {
    pub r: discovery_result::Model,
    /// The managed device is outside the actor's sites: its id is hidden.
    pub elsewhere: bool,
    pub outcome: Option<AdoptOutcome>,
}

pub struct RunView {
    pub run: discovery_run::Model,
    pub results: Vec<ResultView>,
}

/// At most this many discovery runs at once in this process: a sweep
/// holds thousands of sockets.
pub const MAX_RUNNING: usize = 4;

impl Console {
    /// The last 50 runs the actor may see.
    pub async fn discovery_runs(&self, actor: &Actor) -> Result<Vec<discovery_run::Model>> {
        Ok(discovery_run::Entity::find()
            .filter(actor.scope.on(discovery_run::Column::SiteId))
            .order_by_desc(discovery_run::Column::Id)
            .limit(50)
            .all(&self.db)
            .await?)
    }

    async fn run_in_scope(&self, actor: &Actor, id: i32) -> Result<discovery_run::Model> {
        discovery_run::Entity::find_by_id(id)
            .filter(actor.scope.on(discovery_run::Column::SiteId))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("discovery run", id))
    }

    pub async fn discovery_run(&self, actor: &Actor, id: i32) -> Result<RunView> {
        let run = self.run_in_scope(actor, id).await?;
        let rows = discovery_result::Entity::find()
            .filter(discovery_result::Column::RunId.eq(id))
            .order_by_asc(discovery_result::Column::Id)
            .all(&self.db)
            .await?;
        let ids: Vec<i32> = rows.iter().filter_map(|r| r.device_id).collect();
        let visible: std::collections::HashSet<i32> = device::Entity::find()
            .filter(device::Column::Id.is_in(ids))
            .filter(actor.scope.devices())
            .select_only()
            .column(device::Column::Id)
            .into_tuple::<i32>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        let results = rows
            .into_iter()
            .map(|mut r| {
                let elsewhere = r.device_id.is_some_and(|d| !visible.contains(&d));
                if elsewhere {
                    r.device_id = None;
                }
                let outcome = r
                    .outcome
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok());
                ResultView {
                    r,
                    elsewhere,
                    outcome,
                }
            })
            .collect();
        Ok(RunView { run, results })
    }

    /// Check who may start a run into which site (site ids in scope; a
    /// limited user must name one), resolving a site's default interface.
    pub async fn discovery_plan(
        &self,
        ops: &DiscoveryOps,
        actor: &Actor,
        mut kind: RunKind,
        site: Option<i32>,
    ) -> Result<(RunKind, Option<i32>)> {
        actor.require(Role::can_operate_devices)?;
        if site.is_none() && !actor.scope.is_all() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "Site: choose one of your sites (its cameras are adopted there)",
            ));
        }
        actor
            .scope
            .check_site(site)
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, "Site: not one of your sites"))?;
        let site = match site {
            Some(id) => Some(
                crate::db::entities::site::Entity::find_by_id(id)
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "Site: no such site"))?,
            ),
            None => None,
        };
        if let (RunKind::Multicast(None), Some(s)) = (&kind, &site)
            && let Some(ip) = s
                .discovery_interface
                .as_deref()
                .and_then(|i| i.parse().ok())
        {
            kind = RunKind::Multicast(Some(ip));
        }
        if let RunKind::Multicast(only) = &kind {
            ops.discovery.multicast_interfaces(*only)?;
        }
        Ok((kind, site.map(|s| s.id)))
    }

    /// Start a run in the background (after [`Self::discovery_plan`]).
    pub async fn discovery_start(
        &self,
        ops: &DiscoveryOps,
        actor: &Actor,
        kind: RunKind,
        site: Option<i32>,
    ) -> Result<discovery_run::Model> {
        let (kind, site) = self.discovery_plan(ops, actor, kind, site).await?;
        if ops.progress.running_count() >= MAX_RUNNING {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "{MAX_RUNNING} discovery runs are going on already; wait for one to finish"
                ),
            ));
        }
        let run = ops
            .discovery
            .create_run(&self.db, &kind, site, actor)
            .await?;
        let reporter = ops.progress.begin(
            run.id,
            Progress {
                phase: "discovering".into(),
                ..Default::default()
            },
        );
        let o = ops.clone();
        let actor = actor.clone();
        let id = run.id;
        let returned = run.clone();
        tokio::spawn(async move {
            if let Err(e) = o
                .discovery
                .execute(&o.inventory, run, kind, &reporter, &actor)
                .await
            {
                tracing::warn!(run = id, error = %e, "discovery run failed");
                reporter.finish("failed", e.message);
            }
        });
        Ok(returned)
    }

    /// Adopt selected results of a run into a site, in the background.
    /// Each camera already managed in a site the actor does not manage is
    /// refused on its own (see `inventory::check_adoption_scope`).
    pub async fn discovery_adopt(
        &self,
        ops: &DiscoveryOps,
        actor: &Actor,
        run_id: i32,
        selection: Vec<(i32, Credentials)>,
        site: Option<i32>,
    ) -> Result<()> {
        actor.require(Role::can_operate_devices)?;
        self.run_in_scope(actor, run_id).await?;
        if site.is_none() && !actor.scope.is_all() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "Site: choose one of your sites",
            ));
        }
        if !actor.scope.allows_site(site) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "Site: choose one of your sites",
            ));
        }
        if selection.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "Devices: select at least one device to adopt",
            ));
        }
        if ops.progress.running(run_id) {
            return Err(Error::new(
                ErrorKind::Conflict,
                "This run is busy; wait for it to finish",
            ));
        }
        let reporter = ops.progress.begin(
            run_id,
            Progress {
                phase: "adopting".into(),
                total: selection.len() as u64,
                ..Default::default()
            },
        );
        let o = ops.clone();
        let actor = actor.clone();
        tokio::spawn(async move {
            if let Err(e) = o
                .discovery
                .adopt(&o.inventory, run_id, &selection, site, &actor, &reporter)
                .await
            {
                tracing::warn!(run = run_id, error = %e, "adoption failed");
                reporter.finish("failed", e.message);
            }
        });
        Ok(())
    }

    /// Adopt one camera by its device service address, now (the API's
    /// "adopt directly"): returns the outcome once it is known.
    pub async fn adopt_direct(
        &self,
        ops: &DiscoveryOps,
        actor: &Actor,
        device_url: &str,
        credentials: Credentials,
        site: Option<i32>,
    ) -> Result<AdoptOutcome> {
        actor.require(Role::can_operate_devices)?;
        if site.is_none() && !actor.scope.is_all() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "site: choose one of your sites",
            ));
        }
        actor.scope.check_site(site)?;
        let url = url::Url::parse(device_url)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("device_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "device_url: the camera's http(s) device service address, e.g. http://192.0.2.10/onvif/device_service",
            ));
        }
        ops.discovery
            .adopt_url(&ops.inventory, url.as_str(), credentials, site, actor)
            .await
    }
}
