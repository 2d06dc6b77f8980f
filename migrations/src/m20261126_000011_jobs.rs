//! Scheduled maintenance jobs (cron expression, time zone, parameters,
//! missed-run policy) with a row per run, and the recordings ledger: the
//! byte ledger of everything camfleet stored, the source of truth for
//! retention (never `du`).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Name,
    Kind,
    Schedule,
    Timezone,
    Params,
    Enabled,
    MissedPolicy,
    LastScheduledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Id,
    JobId,
    Trigger,
    ScheduledFor,
    StartedAt,
    FinishedAt,
    Outcome,
    Log,
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
    DeviceId,
    SiteId,
    Profile,
    StartAt,
    EndAt,
    Bytes,
    Codec,
    Checksum,
    Tier,
    StorageKey,
    CreatedAt,
}

fn ts<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn id<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .if_not_exists()
                .col(id(Jobs::Id))
                .col(ColumnDef::new(Jobs::Name).string().not_null().unique_key())
                .col(ColumnDef::new(Jobs::Kind).string().not_null())
                .col(ColumnDef::new(Jobs::Schedule).string().not_null())
                .col(ColumnDef::new(Jobs::Timezone).string().not_null())
                .col(ColumnDef::new(Jobs::Params).json().not_null())
                .col(ColumnDef::new(Jobs::Enabled).boolean().not_null())
                .col(ColumnDef::new(Jobs::MissedPolicy).string().not_null())
                .col(
                    ColumnDef::new(Jobs::LastScheduledAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ts(Jobs::CreatedAt))
                .col(ts(Jobs::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobRuns::Table)
                .if_not_exists()
                .col(id(JobRuns::Id))
                .col(ColumnDef::new(JobRuns::JobId).integer().not_null())
                .col(ColumnDef::new(JobRuns::Trigger).string().not_null())
                .col(
                    ColumnDef::new(JobRuns::ScheduledFor)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ts(JobRuns::StartedAt))
                .col(
                    ColumnDef::new(JobRuns::FinishedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(JobRuns::Outcome).string().not_null())
                .col(ColumnDef::new(JobRuns::Log).text().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_job_runs_job")
                .table(JobRuns::Table)
                .col(JobRuns::JobId)
                .col(JobRuns::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Recordings::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Recordings::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Recordings::DeviceId).integer().not_null())
                .col(ColumnDef::new(Recordings::SiteId).integer().null())
                .col(ColumnDef::new(Recordings::Profile).string().not_null())
                .col(ts(Recordings::StartAt))
                .col(ts(Recordings::EndAt))
                .col(ColumnDef::new(Recordings::Bytes).big_integer().not_null())
                .col(ColumnDef::new(Recordings::Codec).string().not_null())
                .col(ColumnDef::new(Recordings::Checksum).string().not_null())
                .col(ColumnDef::new(Recordings::Tier).string().not_null())
                .col(ColumnDef::new(Recordings::StorageKey).string().not_null())
                .col(ts(Recordings::CreatedAt))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            (
                "idx_recordings_device",
                vec![Recordings::DeviceId, Recordings::StartAt],
            ),
            (
                "idx_recordings_tier",
                vec![Recordings::Tier, Recordings::StartAt],
            ),
        ] {
            let mut i = Index::create();
            i.if_not_exists().name(name).table(Recordings::Table);
            for c in cols {
                i.col(c);
            }
            m.create_index(i.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Recordings::Table.into_iden(),
            JobRuns::Table.into_iden(),
            Jobs::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
