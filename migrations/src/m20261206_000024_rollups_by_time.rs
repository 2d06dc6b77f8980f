//! Health rollups by time: the retention that runs with every rollup
//! (every 5 minutes) deletes rollups older than 400 days by `bucket_ms`
//! alone. The primary key leads with the device, so without this index the
//! delete scanned every rollup ever kept — 12,000 rows an hour at 1,000
//! cameras, a billion after a year at 10,000.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HealthRollups {
    Table,
    BucketMs,
}

const NAME: &str = "idx_health_rollups_bucket";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(NAME)
                .table(HealthRollups::Table)
                .col(HealthRollups::BucketMs)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name(NAME)
                .table(HealthRollups::Table)
                .to_owned(),
        )
        .await
    }
}
