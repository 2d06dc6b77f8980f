//! How a device's stream is pulled: RTP interleaved in the RTSP connection
//! (`tcp`, the default) or RTP over UDP (`udp`).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    RecordTransport,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(
                    ColumnDef::new(Devices::RecordTransport)
                        .string()
                        .not_null()
                        .default("tcp"),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .drop_column(Devices::RecordTransport)
                .to_owned(),
        )
        .await
    }
}
