//! Indexes for the device list, so a page (and its keyset cursor) is read
//! in index order instead of sorted: each keyset sort column with the id
//! that breaks its ties (PostgreSQL's indexes do not carry the row id as
//! SQLite's do), and the common filter + sort pairs — status by name,
//! model by firmware, and a site's devices by name (every user limited to
//! sites filters by site).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    Status,
    Name,
    Model,
    Firmware,
    Manufacturer,
    SiteId,
}

fn indexes() -> Vec<(&'static str, Vec<Devices>)> {
    use Devices::*;
    vec![
        ("idx_devices_name_id", vec![Name, Id]),
        ("idx_devices_model_id", vec![Model, Id]),
        ("idx_devices_firmware_id", vec![Firmware, Id]),
        ("idx_devices_status_id", vec![Status, Id]),
        ("idx_devices_manufacturer_id", vec![Manufacturer, Id]),
        ("idx_devices_status_name", vec![Status, Name, Id]),
        ("idx_devices_model_firmware", vec![Model, Firmware, Id]),
        ("idx_devices_site_name", vec![SiteId, Name, Id]),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, cols) in indexes() {
            let mut i = Index::create();
            i.if_not_exists().name(name).table(Devices::Table);
            for c in cols {
                i.col(c);
            }
            m.create_index(i.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in indexes() {
            m.drop_index(Index::drop().name(name).table(Devices::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
