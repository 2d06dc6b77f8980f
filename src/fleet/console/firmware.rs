//! The firmware overview (which versions run on which models, within the
//! actor's sites), the rollouts the actor may see, one rollout with its
//! devices, and which devices a new rollout would reach.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Console, not_found};
use crate::db::entities::{device, firmware_image, firmware_rollout, rollout_device};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::firmware::{Firmware, RolloutPlan};

pub struct ModelRow {
    pub manufacturer: String,
    pub model: String,
    pub total: i64,
    /// (firmware, count, link to the devices)
    pub versions: Vec<(String, i64, String)>,
    /// The approved version, and how many devices run another one.
    pub approved: Option<String>,
    pub behind: i64,
}

pub struct FirmwareOverview {
    pub rows: Vec<ModelRow>,
    pub images: Vec<firmware_image::Model>,
    /// Rollouts whose devices are all within the actor's sites, with
    /// "model version" of their image.
    pub rollouts: Vec<(firmware_rollout::Model, String)>,
}

pub struct RolloutView {
    pub rollout: firmware_rollout::Model,
    pub image: firmware_image::Model,
    pub plan: RolloutPlan,
    pub devices: Vec<(rollout_device::Model, String)>,
}

/// Which devices a rollout covers, besides the image's models and the
/// actor's sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutTarget {
    /// Only this site's devices.
    pub site: Option<i32>,
    /// Only these devices (picked in the device list); a device of another
    /// model is left out.
    pub devices: Option<Vec<i32>>,
}

impl Console {
    pub async fn firmware_overview(
        &self,
        fw: &Firmware,
        actor: &Actor,
    ) -> Result<FirmwareOverview> {
        let counts: Vec<(String, String, String, i64)> = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::RetiredAt.is_null())
            .select_only()
            .column(device::Column::Manufacturer)
            .column(device::Column::Model)
            .column(device::Column::Firmware)
            .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "n")
            .group_by(device::Column::Manufacturer)
            .group_by(device::Column::Model)
            .group_by(device::Column::Firmware)
            .order_by_asc(device::Column::Manufacturer)
            .order_by_asc(device::Column::Model)
            .order_by_asc(device::Column::Firmware)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut rows: Vec<ModelRow> = Vec::new();
        for (manufacturer, model, fwv, n) in counts {
            let link = {
                let mut s = url::form_urlencoded::Serializer::new(String::new());
                s.append_pair("manufacturer", &manufacturer);
                s.append_pair("model", &model);
                s.append_pair("firmware", &fwv);
                format!("/devices?{}", s.finish())
            };
            match rows.last_mut() {
                Some(r) if r.manufacturer == manufacturer && r.model == model => {
                    r.total += n;
                    r.versions.push((fwv, n, link));
                }
                _ => rows.push(ModelRow {
                    manufacturer,
                    model,
                    total: n,
                    versions: vec![(fwv, n, link)],
                    approved: None,
                    behind: 0,
                }),
            }
        }
        let images = fw.images().await?;
        for r in &mut rows {
            if let Some(a) = Firmware::approved_for(&images, &r.model) {
                r.behind = r
                    .versions
                    .iter()
                    .filter(|(v, _, _)| *v != a.version)
                    .map(|(_, n, _)| n)
                    .sum();
                r.approved = Some(a.version.clone());
            }
        }
        let versions: HashMap<i32, String> = images
            .iter()
            .map(|i| (i.id, format!("{} {}", i.model_pattern, i.version)))
            .collect();
        let mut rollouts = Vec::new();
        for r in firmware_rollout::Entity::find()
            .order_by_desc(firmware_rollout::Column::Id)
            .limit(20)
            .all(&self.db)
            .await?
        {
            if actor.scope.is_all() || actor.scope.covers(fw.rollout_sites(r.id).await?) {
                let v = versions.get(&r.image_id).cloned().unwrap_or_default();
                rollouts.push((r, v));
            }
        }
        Ok(FirmwareOverview {
            rows,
            images,
            rollouts,
        })
    }

    /// One rollout, when every device in it is within the actor's sites.
    pub async fn rollout_view(&self, fw: &Firmware, actor: &Actor, id: i32) -> Result<RolloutView> {
        let rollout = firmware_rollout::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("rollout", id))?;
        if !actor.scope.covers(fw.rollout_sites(id).await?) {
            return Err(not_found("rollout", id));
        }
        let image = fw.image(rollout.image_id).await?;
        let rows = rollout_device::Entity::find()
            .filter(rollout_device::Column::RolloutId.eq(id))
            .order_by_asc(rollout_device::Column::Wave)
            .order_by_asc(rollout_device::Column::Id)
            .all(&self.db)
            .await?;
        let names: HashMap<i32, String> = device::Entity::find()
            .filter(device::Column::Id.is_in(rows.iter().map(|r| r.device_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| (d.id, crate::fleet::inventory::display_name(&d)))
            .collect();
        let devices = rows
            .into_iter()
            .map(|r| {
                let n = names
                    .get(&r.device_id)
                    .cloned()
                    .unwrap_or_else(|| format!("device {} (deleted)", r.device_id));
                (r, n)
            })
            .collect();
        Ok(RolloutView {
            plan: serde_json::from_value(rollout.plan.clone()).unwrap_or_default(),
            rollout,
            image,
            devices,
        })
    }

    /// What a rollout would do, before it starts: each device with its
    /// wave (0: the canary group), or -1 when it is on the version already.
    pub async fn rollout_preview(
        &self,
        fw: &Firmware,
        actor: &Actor,
        image_id: i32,
        target: &RolloutTarget,
        plan: &RolloutPlan,
    ) -> Result<Vec<(i32, device::Model)>> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        let img = fw.image(image_id).await?;
        let ids = self.rollout_devices(actor, &img, target).await?;
        let mut devices = device::Entity::find()
            .filter(device::Column::Id.is_in(ids))
            .all(&self.db)
            .await?;
        devices.sort_by_key(|d| d.id);
        let (todo, already): (Vec<_>, Vec<_>) =
            devices.into_iter().partition(|d| d.firmware != img.version);
        let w = crate::fleet::firmware::waves(todo.len(), plan);
        let mut out: Vec<(i32, device::Model)> = w.into_iter().zip(todo).collect();
        out.extend(already.into_iter().map(|d| (-1, d)));
        Ok(out)
    }

    /// The devices a rollout of the image covers: its model, within the
    /// actor's sites (and the site asked for, and the devices picked from
    /// the list), in service.
    async fn rollout_devices(
        &self,
        actor: &Actor,
        img: &firmware_image::Model,
        target: &RolloutTarget,
    ) -> Result<Vec<i32>> {
        let site = target.site;
        if site.is_some() && !actor.scope.allows_site(site) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "site: not one of your sites",
            ));
        }
        let mut q = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::RetiredAt.is_null());
        if let Some(sid) = site {
            q = q.filter(device::Column::SiteId.eq(sid));
        }
        if let Some(ids) = &target.devices {
            if ids.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "devices: none picked; tick devices in the list, or leave the choice to the image's models",
                ));
            }
            q = q.filter(device::Column::Id.is_in(ids.iter().copied()));
        }
        Ok(q.all(&self.db)
            .await?
            .into_iter()
            .filter(|d| crate::fleet::firmware::model_matches(&img.model_pattern, &d.model))
            .map(|d| d.id)
            .collect())
    }

    /// Start a rollout of an image to every device of its models within
    /// the actor's sites (or one of them).
    pub async fn rollout_start(
        &self,
        fw: &Firmware,
        actor: &Actor,
        image_id: i32,
        target: &RolloutTarget,
        plan: &RolloutPlan,
    ) -> Result<firmware_rollout::Model> {
        let img = fw.image(image_id).await?;
        let ids = self.rollout_devices(actor, &img, target).await?;
        fw.create_rollout(image_id, &ids, plan, actor).await
    }
}
