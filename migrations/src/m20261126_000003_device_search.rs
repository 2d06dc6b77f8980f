//! Device list speed: a lowercased search column maintained on write (one
//! LIKE over one column instead of eight `lower()` calls per row), and
//! indexes for the list's sort keys.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    SearchText,
    Name,
    LastSeen,
}

/// The expression `inventory::search_text` computes in Rust, for rows that
/// existed before this migration.
const BACKFILL: &str = "UPDATE devices SET search_text = lower(name || ' ' || model || ' ' || manufacturer || ' ' || coalesce(serial, '') || ' ' || coalesce(mac, '') || ' ' || hostname || ' ' || device_url || ' ' || asset_tag)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(
                    ColumnDef::new(Devices::SearchText)
                        .text()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        m.get_connection().execute_unprepared(BACKFILL).await?;
        for (name, col) in [
            ("idx_devices_name", Devices::Name),
            ("idx_devices_last_seen", Devices::LastSeen),
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
        for name in ["idx_devices_name", "idx_devices_last_seen"] {
            m.drop_index(Index::drop().name(name).table(Devices::Table).to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .drop_column(Devices::SearchText)
                .to_owned(),
        )
        .await
    }
}
