//! Health polling: per-device health state (flap-suppressed), its
//! transitions with reasons, raw poll samples (kept 48 h) and 5-minute
//! rollups (kept for the charts and beyond). Timestamps of samples are
//! integer Unix milliseconds to keep rows small.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    StateReason,
    StateSince,
    PollFailures,
    PollSuccesses,
    LatencyMs,
    DriftMs,
    LastPollAt,
    LastInfoAt,
    PollIntervalS,
}

#[derive(DeriveIden)]
enum Sites {
    Table,
    PollIntervalS,
}

#[derive(DeriveIden)]
enum DeviceTransitions {
    Table,
    Id,
    DeviceId,
    At,
    FromState,
    ToState,
    Reason,
}

#[derive(DeriveIden)]
enum HealthSamples {
    Table,
    DeviceId,
    AtMs,
    Ok,
    LatencyMs,
    DriftMs,
    ErrorClass,
}

#[derive(DeriveIden)]
enum HealthRollups {
    Table,
    DeviceId,
    BucketMs,
    Samples,
    OkSamples,
    LatencySumMs,
    LatencyMaxMs,
    DriftMinMs,
    DriftMaxMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let cols: Vec<ColumnDef> = vec![
            ColumnDef::new(Devices::StateReason)
                .text()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Devices::StateSince)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Devices::PollFailures)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Devices::PollSuccesses)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Devices::LatencyMs)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Devices::DriftMs)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Devices::LastPollAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Devices::LastInfoAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Devices::PollIntervalS)
                .integer()
                .null()
                .to_owned(),
        ];
        // SQLite adds one column per ALTER.
        for mut c in cols {
            m.alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(&mut c)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Sites::Table)
                .add_column(ColumnDef::new(Sites::PollIntervalS).integer().null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeviceTransitions::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(DeviceTransitions::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(DeviceTransitions::DeviceId)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeviceTransitions::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeviceTransitions::FromState)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeviceTransitions::ToState)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(DeviceTransitions::Reason).text().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_transitions_device")
                .table(DeviceTransitions::Table)
                .col(DeviceTransitions::DeviceId)
                .col(DeviceTransitions::At)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(HealthSamples::Table)
                .if_not_exists()
                .col(ColumnDef::new(HealthSamples::DeviceId).integer().not_null())
                .col(ColumnDef::new(HealthSamples::AtMs).big_integer().not_null())
                .col(ColumnDef::new(HealthSamples::Ok).boolean().not_null())
                .col(ColumnDef::new(HealthSamples::LatencyMs).integer().null())
                .col(ColumnDef::new(HealthSamples::DriftMs).big_integer().null())
                .col(ColumnDef::new(HealthSamples::ErrorClass).string().null())
                .primary_key(
                    Index::create()
                        .col(HealthSamples::DeviceId)
                        .col(HealthSamples::AtMs),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(HealthRollups::Table)
                .if_not_exists()
                .col(ColumnDef::new(HealthRollups::DeviceId).integer().not_null())
                .col(
                    ColumnDef::new(HealthRollups::BucketMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(HealthRollups::Samples).integer().not_null())
                .col(
                    ColumnDef::new(HealthRollups::OkSamples)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(HealthRollups::LatencySumMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(HealthRollups::LatencyMaxMs)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(HealthRollups::DriftMinMs)
                        .big_integer()
                        .null(),
                )
                .col(
                    ColumnDef::new(HealthRollups::DriftMaxMs)
                        .big_integer()
                        .null(),
                )
                .primary_key(
                    Index::create()
                        .col(HealthRollups::DeviceId)
                        .col(HealthRollups::BucketMs),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            HealthRollups::Table.into_iden(),
            HealthSamples::Table.into_iden(),
            DeviceTransitions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Sites::Table)
                .drop_column(Sites::PollIntervalS)
                .to_owned(),
        )
        .await?;
        for c in [
            Devices::StateReason,
            Devices::StateSince,
            Devices::PollFailures,
            Devices::PollSuccesses,
            Devices::LatencyMs,
            Devices::DriftMs,
            Devices::LastPollAt,
            Devices::LastInfoAt,
            Devices::PollIntervalS,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .drop_column(c)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
