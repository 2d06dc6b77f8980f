//! Access control and background discovery: sessions name their user (so a
//! password change or a disabled account ends every session of that user),
//! discovery runs name the site their cameras are adopted into, and each
//! result keeps its adoption outcome (adoption runs as a background task).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum DiscoveryRuns {
    Table,
    SiteId,
}

#[derive(DeriveIden)]
enum DiscoveryResults {
    Table,
    Outcome,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    WarrantyEnd,
    EndOfLife,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .add_column(ColumnDef::new(Sessions::UserId).integer().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_sessions_user")
                .table(Sessions::Table)
                .col(Sessions::UserId)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(DiscoveryRuns::Table)
                .add_column(ColumnDef::new(DiscoveryRuns::SiteId).integer().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(DiscoveryResults::Table)
                .add_column(ColumnDef::new(DiscoveryResults::Outcome).text().null())
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_devices_warranty_end", Devices::WarrantyEnd),
            ("idx_devices_end_of_life", Devices::EndOfLife),
        ] {
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

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_devices_warranty_end", "idx_devices_end_of_life"] {
            m.drop_index(Index::drop().name(name).table(Devices::Table).to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(DiscoveryResults::Table)
                .drop_column(DiscoveryResults::Outcome)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(DiscoveryRuns::Table)
                .drop_column(DiscoveryRuns::SiteId)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("idx_sessions_user")
                .table(Sessions::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .drop_column(Sessions::UserId)
                .to_owned(),
        )
        .await
    }
}
