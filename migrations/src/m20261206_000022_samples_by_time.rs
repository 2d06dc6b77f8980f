//! Health samples by time: the rollup reads the last two hours and the
//! retention deletes what is older than 48 hours, both by `at_ms` alone.
//! Without this index both scanned every sample of every camera (the
//! primary key leads with the device), every 15 minutes.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HealthSamples {
    Table,
    AtMs,
}

const NAME: &str = "idx_health_samples_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(NAME)
                .table(HealthSamples::Table)
                .col(HealthSamples::AtMs)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name(NAME)
                .table(HealthSamples::Table)
                .to_owned(),
        )
        .await
    }
}
