//! Indexes for the device list's common filter + sort pairs, so a filtered
//! page (and its keyset cursor) is read in index order instead of sorted:
//! status by name, model by firmware, and a site's devices by name (every
//! user limited to sites filters by site).
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
    SiteId,
}

const INDEXES: [(&str, [Devices; 2]); 3] = [
    ("idx_devices_status_name", [Devices::Status, Devices::Name]),
    (
        "idx_devices_model_firmware",
        [Devices::Model, Devices::Firmware],
    ),
    ("idx_devices_site_name", [Devices::SiteId, Devices::Name]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, [a, b]) in INDEXES {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(Devices::Table)
                    .col(a)
                    .col(b)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            m.drop_index(Index::drop().name(name).table(Devices::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
