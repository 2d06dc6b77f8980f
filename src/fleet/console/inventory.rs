//! Inventory work in bulk: the inventory CSV (the list's filters, or a
//! selection), moving a selection to a site (all or nothing, each device
//! checked against the actor's sites), and one device's inventory form.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use super::Console;
use super::device_list::{DeviceQuery, exact_filters};
use crate::db::entities::{device, site};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::inventory::{InventoryForm, site_name};
use crate::fleet::users::Role;

/// A CSV file to download.
pub struct CsvExport {
    pub filename: String,
    pub body: String,
}

/// What a bulk move did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BulkMove {
    pub selected: usize,
    pub changed: usize,
    /// The target site's name, or "no site".
    pub site: String,
}

/// At most this many devices in one selection.
pub const MAX_SELECTION: usize = 10_000;

fn check_selection(ids: &[i32]) -> Result<()> {
    if ids.is_empty() || ids.len() > MAX_SELECTION {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "devices: select between 1 and 10,000 devices",
        ));
    }
    Ok(())
}

impl Console {
    fn csv_export(&self, devices: &[device::Model], sites: &[site::Model]) -> CsvExport {
        CsvExport {
            filename: format!(
                "camfleet-inventory-{}.csv",
                self.clock.now_utc().format("%Y%m%d")
            ),
            body: csv_of(devices, sites),
        }
    }

    /// The inventory as CSV: every device the list's filters select.
    pub async fn inventory_csv(&self, actor: &Actor, q: &DeviceQuery) -> Result<CsvExport> {
        let devices = device::Entity::find()
            .filter(exact_filters(actor, self.clock.now_utc().date_naive(), q)?)
            .order_by_asc(device::Column::Id)
            .all(&self.db)
            .await?;
        let sites = site::Entity::find().all(&self.db).await?;
        Ok(self.csv_export(&devices, &sites))
    }

    /// The selected devices (those within the actor's sites) as CSV.
    pub async fn selection_csv(&self, actor: &Actor, ids: &[i32]) -> Result<CsvExport> {
        check_selection(ids)?;
        let devices = self.selection(actor, ids).await?;
        let sites = site::Entity::find().all(&self.db).await?;
        Ok(self.csv_export(&devices, &sites))
    }

    async fn selection(&self, actor: &Actor, ids: &[i32]) -> Result<Vec<device::Model>> {
        Ok(device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(device::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Move the selected devices to a site (`None`: no site), all or none.
    /// Devices outside the actor's sites are not part of the selection.
    pub async fn bulk_move(
        &self,
        actor: &Actor,
        ids: &[i32],
        target: Option<i32>,
    ) -> Result<BulkMove> {
        actor.require(Role::can_edit_inventory)?;
        check_selection(ids)?;
        let devices = self.selection(actor, ids).await?;
        let sites = site::Entity::find().all(&self.db).await?;
        let target_name = match target {
            None => String::new(),
            Some(id) => sites
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.name.clone())
                .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "site: choose a site"))?,
        };
        let mut plans = Vec::new();
        for d in &devices {
            let mut form = InventoryForm::from_device(d, site_name(&sites, d.site_id));
            form.site = target_name.clone();
            match self.inventory.plan_edit(d, &form, &sites, &actor.scope) {
                Ok(p) => plans.push(p),
                Err(errors) => {
                    let why: Vec<String> =
                        errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        format!("device {}: {}; nothing was changed", d.id, why.join("; ")),
                    ));
                }
            }
        }
        let txn = self.db.begin().await?;
        let mut changed = 0;
        for p in plans {
            if self
                .inventory
                .write_edit(&txn, p, "device.bulk_site", actor)
                .await?
                .is_some()
            {
                changed += 1;
            }
        }
        txn.commit().await?;
        self.inventory.touch();
        Ok(BulkMove {
            selected: devices.len(),
            changed,
            site: if target_name.is_empty() {
                "no site".into()
            } else {
                target_name
            },
        })
    }

    /// A device and its inventory fields as a form (inventory editors).
    pub async fn inventory_form(
        &self,
        actor: &Actor,
        id: i32,
    ) -> Result<(device::Model, InventoryForm)> {
        actor.require(Role::can_edit_inventory)?;
        let d = self.device_in_scope(actor, id).await?;
        let sites = site::Entity::find().all(&self.db).await?;
        let f = InventoryForm::from_device(&d, site_name(&sites, d.site_id));
        Ok((d, f))
    }
}

/// Devices as the inventory CSV (the import reads the same columns).
fn csv_of(devices: &[device::Model], sites: &[site::Model]) -> String {
    use crate::fleet::csv::row;
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let mut out = row([
        "id",
        "name",
        "site",
        "manufacturer",
        "model",
        "serial",
        "mac",
        "firmware",
        "status",
        "location",
        "asset_tag",
        "purchase_order",
        "purchase_date",
        "supplier",
        "cost",
        "warranty_end",
        "end_of_life",
        "notes",
    ]);
    for d in devices {
        let cost = d
            .cost_cents
            .map(|c| format!("{}.{:02}", c / 100, c % 100))
            .unwrap_or_default();
        out.push_str(&row([
            d.id.to_string().as_str(),
            &d.name,
            crate::fleet::inventory::site_name(sites, d.site_id),
            &d.manufacturer,
            &d.model,
            d.serial.as_deref().unwrap_or(""),
            d.mac.as_deref().unwrap_or(""),
            &d.firmware,
            &d.status,
            &d.location,
            &d.asset_tag,
            &d.purchase_order,
            &date(d.purchase_date),
            &d.supplier,
            &cost,
            &date(d.warranty_end),
            &date(d.end_of_life),
            &d.notes,
        ]));
    }
    out
}
