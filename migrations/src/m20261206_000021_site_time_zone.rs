//! Each site's time zone (an IANA name such as `Europe/Berlin`): the
//! recordings timeline shows a day as the site lives it. Existing sites
//! get `UTC`, which is what every page showed before.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sites {
    Table,
    TimeZone,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sites::Table)
                .add_column(
                    ColumnDef::new(Sites::TimeZone)
                        .string()
                        .not_null()
                        .default("UTC"),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sites::Table)
                .drop_column(Sites::TimeZone)
                .to_owned(),
        )
        .await
    }
}
