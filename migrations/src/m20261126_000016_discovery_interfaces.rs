//! Discovery on real interfaces: each discovery result remembers the
//! interface it came in on, and a site may carry the interface its
//! discoveries use by default.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DiscoveryResults {
    Table,
    Interface,
}

#[derive(DeriveIden)]
enum Sites {
    Table,
    DiscoveryInterface,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(DiscoveryResults::Table)
                .add_column(ColumnDef::new(DiscoveryResults::Interface).string().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Sites::Table)
                .add_column(ColumnDef::new(Sites::DiscoveryInterface).string().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sites::Table)
                .drop_column(Sites::DiscoveryInterface)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(DiscoveryResults::Table)
                .drop_column(DiscoveryResults::Interface)
                .to_owned(),
        )
        .await
    }
}
