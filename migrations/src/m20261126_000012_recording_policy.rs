//! Recording policy per device: which media profile to record (none: not
//! recorded), and how its recording fares, for the health view.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    RecordProfile,
    RecordingStatus,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(ColumnDef::new(Devices::RecordProfile).string().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(
                    ColumnDef::new(Devices::RecordingStatus)
                        .text()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in [Devices::RecordProfile, Devices::RecordingStatus] {
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
