//! Provisioning: profiles (desired state), tasks that apply a profile to
//! devices with a row per device (status, step, per-setting results, a
//! generated password sealed until shown once), and on each device the
//! profile it follows and its configuration drift.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProvisionProfiles {
    Table,
    Id,
    Name,
    Spec,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProvisionTasks {
    Table,
    Id,
    ProfileId,
    Status,
    CreatedBy,
    CreatedAt,
    FinishedAt,
    Summary,
}

#[derive(DeriveIden)]
enum ProvisionItems {
    Table,
    Id,
    TaskId,
    DeviceId,
    Status,
    Step,
    Detail,
    Secret,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    ProfileId,
    ConfigDrift,
    DriftCheckedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ProvisionProfiles::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ProvisionProfiles::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ProvisionProfiles::Name)
                        .string()
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(ProvisionProfiles::Spec).json().not_null())
                .col(
                    ColumnDef::new(ProvisionProfiles::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ProvisionProfiles::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ProvisionTasks::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ProvisionTasks::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ProvisionTasks::ProfileId)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(ProvisionTasks::Status).string().not_null())
                .col(
                    ColumnDef::new(ProvisionTasks::CreatedBy)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ProvisionTasks::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ProvisionTasks::FinishedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(ProvisionTasks::Summary)
                        .text()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ProvisionItems::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ProvisionItems::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(ProvisionItems::TaskId).integer().not_null())
                .col(
                    ColumnDef::new(ProvisionItems::DeviceId)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(ProvisionItems::Status).string().not_null())
                .col(
                    ColumnDef::new(ProvisionItems::Step)
                        .string()
                        .not_null()
                        .default(""),
                )
                .col(ColumnDef::new(ProvisionItems::Detail).json().not_null())
                .col(ColumnDef::new(ProvisionItems::Secret).binary().null())
                .col(
                    ColumnDef::new(ProvisionItems::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_provision_items_task")
                .table(ProvisionItems::Table)
                .col(ProvisionItems::TaskId)
                .to_owned(),
        )
        .await?;
        for mut c in [
            ColumnDef::new(Devices::ProfileId)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Devices::ConfigDrift)
                .text()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Devices::DriftCheckedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(&mut c)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ProvisionItems::Table.into_iden(),
            ProvisionTasks::Table.into_iden(),
            ProvisionProfiles::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        for c in [
            Devices::ProfileId,
            Devices::ConfigDrift,
            Devices::DriftCheckedAt,
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
