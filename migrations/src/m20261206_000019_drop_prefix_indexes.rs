//! The single-column indexes on the device list's sort columns are each a
//! prefix of a (column, id) index from migration 18: they cost every
//! device write and gave PostgreSQL's planner worse choices (it picked
//! `idx_devices_model` and sorted, where `idx_devices_model_id` reads the
//! page in order). Dropped; `down` puts them back.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    Status,
    Name,
    Model,
    Firmware,
    Manufacturer,
}

fn indexes() -> Vec<(&'static str, Devices)> {
    use Devices::*;
    vec![
        ("idx_devices_status", Status),
        ("idx_devices_name", Name),
        ("idx_devices_model", Model),
        ("idx_devices_firmware", Firmware),
        ("idx_devices_manufacturer", Manufacturer),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in indexes() {
            m.drop_index(
                Index::drop()
                    .if_exists()
                    .name(name)
                    .table(Devices::Table)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, col) in indexes() {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(Devices::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
