//! Firmware: a library of images (stored in the storage tier, with
//! SHA-256), the approved image per model, and staged rollouts with a row
//! per device (its wave, state, deadline and outcome).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FirmwareImages {
    Table,
    Id,
    Vendor,
    ModelPattern,
    Version,
    Sha256,
    Size,
    StorageKey,
    Notes,
    Approved,
    UploadedBy,
    UploadedAt,
}

#[derive(DeriveIden)]
enum FirmwareRollouts {
    Table,
    Id,
    ImageId,
    Status,
    Plan,
    CurrentWave,
    Message,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RolloutDevices {
    Table,
    Id,
    RolloutId,
    DeviceId,
    Wave,
    Status,
    FromVersion,
    NextAt,
    Deadline,
    UploadUri,
    Message,
    UpdatedAt,
}

fn ts<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(FirmwareImages::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(FirmwareImages::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(FirmwareImages::Vendor).string().not_null())
                .col(
                    ColumnDef::new(FirmwareImages::ModelPattern)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(FirmwareImages::Version).string().not_null())
                .col(ColumnDef::new(FirmwareImages::Sha256).string().not_null())
                .col(
                    ColumnDef::new(FirmwareImages::Size)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(FirmwareImages::StorageKey)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(FirmwareImages::Notes).text().not_null())
                .col(
                    ColumnDef::new(FirmwareImages::Approved)
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(FirmwareImages::UploadedBy)
                        .string()
                        .not_null(),
                )
                .col(ts(FirmwareImages::UploadedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(FirmwareRollouts::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(FirmwareRollouts::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(FirmwareRollouts::ImageId)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(FirmwareRollouts::Status).string().not_null())
                .col(ColumnDef::new(FirmwareRollouts::Plan).json().not_null())
                .col(
                    ColumnDef::new(FirmwareRollouts::CurrentWave)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(FirmwareRollouts::Message).text().not_null())
                .col(
                    ColumnDef::new(FirmwareRollouts::CreatedBy)
                        .string()
                        .not_null(),
                )
                .col(ts(FirmwareRollouts::CreatedAt))
                .col(ts(FirmwareRollouts::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RolloutDevices::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(RolloutDevices::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(RolloutDevices::RolloutId)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RolloutDevices::DeviceId)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(RolloutDevices::Wave).integer().not_null())
                .col(ColumnDef::new(RolloutDevices::Status).string().not_null())
                .col(
                    ColumnDef::new(RolloutDevices::FromVersion)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RolloutDevices::NextAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(RolloutDevices::Deadline)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(RolloutDevices::UploadUri).text().not_null())
                .col(ColumnDef::new(RolloutDevices::Message).text().not_null())
                .col(ts(RolloutDevices::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_rollout_devices_rollout")
                .table(RolloutDevices::Table)
                .col(RolloutDevices::RolloutId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            RolloutDevices::Table.into_iden(),
            FirmwareRollouts::Table.into_iden(),
            FirmwareImages::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
