//! Access control by construction (issue 13):
//! - users carry an explicit "all sites" grant; a user with no sites now
//!   sees nothing. Users who today have no sites (and so saw every site)
//!   are turned into all-sites users once, here, so nobody loses access
//!   on upgrade (the upgrade notes say so).
//! - a password camfleet generated must be changed at first login;
//! - sessions remember when they were last used (idle timeout);
//! - login throttling keeps its counters in one table, updated atomically,
//!   keyed by account and by client address;
//! - devices can be retired (kept in the inventory, no longer worked on);
//! - provisioning profiles may belong to a site, and a task keeps the
//!   profile as it was when the task was made.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    AllSites,
    MustChangePassword,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    Key,
    Failures,
    BlockedUntil,
    LastFailureAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    RetiredAt,
    RetiredReason,
}

#[derive(DeriveIden)]
enum ProvisionProfiles {
    Table,
    SiteId,
}

#[derive(DeriveIden)]
enum ProvisionTasks {
    Table,
    Spec,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(
                    ColumnDef::new(Users::AllSites)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(
                    ColumnDef::new(Users::MustChangePassword)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        // Before this step, no sites meant every site.
        m.get_connection()
            .execute_unprepared(
                "UPDATE users SET all_sites = TRUE WHERE role <> 'admin' \
                 AND id NOT IN (SELECT user_id FROM user_sites)",
            )
            .await?;
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .add_column(
                    ColumnDef::new(Sessions::LastSeenAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LoginThrottle::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(LoginThrottle::Key)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(LoginThrottle::Failures)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(LoginThrottle::BlockedUntil)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(LoginThrottle::LastFailureAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        for col in [Devices::RetiredAt] {
            m.alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(ColumnDef::new(col).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(ColumnDef::new(Devices::RetiredReason).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ProvisionProfiles::Table)
                .add_column(ColumnDef::new(ProvisionProfiles::SiteId).integer().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ProvisionTasks::Table)
                .add_column(ColumnDef::new(ProvisionTasks::Spec).json().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProvisionTasks::Table)
                .drop_column(ProvisionTasks::Spec)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ProvisionProfiles::Table)
                .drop_column(ProvisionProfiles::SiteId)
                .to_owned(),
        )
        .await?;
        for col in [Devices::RetiredReason, Devices::RetiredAt] {
            m.alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        m.drop_table(Table::drop().table(LoginThrottle::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .drop_column(Sessions::LastSeenAt)
                .to_owned(),
        )
        .await?;
        for col in [Users::MustChangePassword, Users::AllSites] {
            m.alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
