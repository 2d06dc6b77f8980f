//! Camera events (PullPoint): where each device's event service is and how
//! its subscription fares, the notifications received (the topics camfleet
//! watches, kept 30 days), and a topic filter on alert rules for the
//! `event_topic` kind.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    EventsUrl,
    EventsStatus,
}

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Topic,
}

#[derive(DeriveIden)]
enum DeviceEvents {
    Table,
    Id,
    DeviceId,
    At,
    Topic,
    Operation,
    Source,
    Data,
    Active,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // NULL: not looked up yet; empty: the device has no event service.
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(ColumnDef::new(Devices::EventsUrl).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(
                    ColumnDef::new(Devices::EventsStatus)
                        .text()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AlertRules::Table)
                .add_column(
                    ColumnDef::new(AlertRules::Topic)
                        .text()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeviceEvents::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(DeviceEvents::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(DeviceEvents::DeviceId).integer().not_null())
                .col(
                    ColumnDef::new(DeviceEvents::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(DeviceEvents::Topic).text().not_null())
                .col(ColumnDef::new(DeviceEvents::Operation).string().not_null())
                .col(ColumnDef::new(DeviceEvents::Source).json().not_null())
                .col(ColumnDef::new(DeviceEvents::Data).json().not_null())
                .col(ColumnDef::new(DeviceEvents::Active).boolean().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_device_events_device")
                .table(DeviceEvents::Table)
                .col(DeviceEvents::DeviceId)
                .col(DeviceEvents::At)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_device_events_at")
                .table(DeviceEvents::Table)
                .col(DeviceEvents::At)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(DeviceEvents::Table)
                .if_exists()
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AlertRules::Table)
                .drop_column(AlertRules::Topic)
                .to_owned(),
        )
        .await?;
        for c in [Devices::EventsUrl, Devices::EventsStatus] {
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
