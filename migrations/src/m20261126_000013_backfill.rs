//! Edge backfill: where each recorded segment came from (`live` from the
//! stream, `edge` replayed from the camera's own recording), and one row
//! per gap a backfill tried to fill, so a gap the camera cannot fill is not
//! asked for again and again.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Origin,
}

#[derive(DeriveIden)]
enum Backfills {
    Table,
    Id,
    DeviceId,
    Profile,
    GapStart,
    GapEnd,
    State,
    Attempts,
    Frames,
    Segments,
    Bytes,
    Error,
    AttemptedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Recordings::Table)
                .add_column(
                    ColumnDef::new(Recordings::Origin)
                        .string()
                        .not_null()
                        .default("live"),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Backfills::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Backfills::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Backfills::DeviceId).integer().not_null())
                .col(ColumnDef::new(Backfills::Profile).string().not_null())
                .col(
                    ColumnDef::new(Backfills::GapStart)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Backfills::GapEnd)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(Backfills::State).string().not_null())
                .col(
                    ColumnDef::new(Backfills::Attempts)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(Backfills::Frames)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(Backfills::Segments)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(Backfills::Bytes)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(Backfills::Error)
                        .text()
                        .not_null()
                        .default(""),
                )
                .col(
                    ColumnDef::new(Backfills::AttemptedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_backfills_gap")
                .table(Backfills::Table)
                .col(Backfills::DeviceId)
                .col(Backfills::Profile)
                .col(Backfills::GapStart)
                .col(Backfills::GapEnd)
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Backfills::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Recordings::Table)
                .drop_column(Recordings::Origin)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
