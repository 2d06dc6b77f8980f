//! Provisioning as people see it: the profiles, tasks and drifted devices
//! within the actor's sites, which devices a run selects, one task with
//! its items, and the drift check over the actor's devices.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Console, not_found};
use crate::db::entities::{device, provision_item, provision_profile, provision_task};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::provision::Provisioner;
use crate::fleet::users::Role;

pub struct ProvisionIndex {
    pub profiles: Vec<provision_profile::Model>,
    /// Tasks whose devices are all within the actor's sites, with the
    /// profile's name.
    pub tasks: Vec<(provision_task::Model, String)>,
    pub drifted: Vec<device::Model>,
}

pub struct TaskView {
    pub task: provision_task::Model,
    pub profile: String,
    /// Items with their device's display name (only devices in scope).
    pub items: Vec<(provision_item::Model, String)>,
}

/// Which devices a run or plan is for.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct Selection {
    /// These devices (ids)…
    #[serde(default)]
    pub devices: Vec<i32>,
    /// …or every device of this site…
    #[serde(default)]
    pub site: Option<i32>,
    // …or, with neither, every device the actor may manage.
}

impl Console {
    pub async fn provision_index(&self, p: &Provisioner, actor: &Actor) -> Result<ProvisionIndex> {
        let profiles = p.profiles_for(actor).await?;
        let names: HashMap<i32, String> = p
            .profiles()
            .await?
            .iter()
            .map(|p| (p.id, p.name.clone()))
            .collect();
        let mut tasks = Vec::new();
        for t in provision_task::Entity::find()
            .order_by_desc(provision_task::Column::Id)
            .limit(50)
            .all(&self.db)
            .await?
        {
            if tasks.len() >= 20 {
                break;
            }
            if actor.scope.is_all() || actor.scope.covers(p.task_sites(t.id).await?) {
                let n = names.get(&t.profile_id).cloned().unwrap_or_default();
                tasks.push((t, n));
            }
        }
        let drifted = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::ConfigDrift.ne(""))
            .order_by_asc(device::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?;
        Ok(ProvisionIndex {
            profiles,
            tasks,
            drifted,
        })
    }

    /// The device ids a selection names, within the actor's sites (and
    /// not retired).
    pub async fn select_devices(&self, actor: &Actor, sel: &Selection) -> Result<Vec<i32>> {
        actor.require(Role::can_operate_devices)?;
        let mut q = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::RetiredAt.is_null());
        if !sel.devices.is_empty() {
            if sel.devices.len() > 10_000 {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "devices: at most 10,000",
                ));
            }
            q = q.filter(device::Column::Id.is_in(sel.devices.iter().copied()));
        } else if let Some(sid) = sel.site {
            q = q.filter(device::Column::SiteId.eq(sid));
        }
        let ids: Vec<i32> = q
            .select_only()
            .column(device::Column::Id)
            .order_by_asc(device::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        if ids.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "no devices selected (none in that site, or none you may manage)",
            ));
        }
        Ok(ids)
    }

    pub async fn provision_task(
        &self,
        p: &Provisioner,
        actor: &Actor,
        id: i32,
    ) -> Result<TaskView> {
        actor.require(Role::can_operate_devices)?;
        let task = provision_task::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("task", id))?;
        let items = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(id))
            .order_by_asc(provision_item::Column::Id)
            .all(&self.db)
            .await?;
        let visible: HashMap<i32, String> = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::Id.is_in(items.iter().map(|i| i.device_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| {
                let n = crate::fleet::inventory::display_name(&d);
                (d.id, n)
            })
            .collect();
        if visible.is_empty() && !items.is_empty() {
            return Err(not_found("task", id));
        }
        let items = items
            .into_iter()
            .filter_map(|item| {
                let device = visible.get(&item.device_id)?.clone();
                Some((item, device))
            })
            .collect();
        let profile = p
            .profile(task.profile_id)
            .await
            .map(|p| p.name)
            .unwrap_or_default();
        Ok(TaskView {
            task,
            profile,
            items,
        })
    }

    /// Check drift on the actor's devices now.
    pub async fn drift_check(
        &self,
        p: &Provisioner,
        actor: &Actor,
    ) -> Result<(Vec<(i32, String)>, Vec<i32>)> {
        actor.require(Role::can_operate_devices)?;
        if actor.scope.is_all() {
            return p.check_drift(None).await;
        }
        let ids: Vec<i32> = device::Entity::find()
            .filter(actor.scope.devices())
            .select_only()
            .column(device::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        p.check_drift(Some(&ids)).await
    }
}
