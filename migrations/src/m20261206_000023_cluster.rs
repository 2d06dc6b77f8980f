//! Several nodes on one database (issue 18): the nodes and their
//! heartbeats, one lease per device (which node polls, subscribes and
//! records it), claims on deliveries (each sent by one node), and the node
//! that started each job run and provisioning task (a starting node
//! recovers only its own), and a value sealed with the secret key (every
//! node must hold the same key). Times are milliseconds since the epoch, compared
//! the same way on SQLite and PostgreSQL.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Name,
    Roles,
    Sites,
    StartedMs,
    HeartbeatMs,
    StoppedMs,
    Recording,
    Leader,
    Version,
}

#[derive(DeriveIden)]
enum DeviceLeases {
    Table,
    DeviceId,
    Kind,
    Node,
    ExpiresMs,
    SinceMs,
}

#[derive(DeriveIden)]
enum ClusterMeta {
    Table,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    ClaimedBy,
    ClaimedUntilMs,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Node,
}

#[derive(DeriveIden)]
enum ProvisionTasks {
    Table,
    Node,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Nodes::Table)
                .if_not_exists()
                .col(string(Nodes::Name).primary_key())
                .col(string(Nodes::Roles).default(""))
                .col(string(Nodes::Sites).default(""))
                .col(big_integer(Nodes::StartedMs))
                .col(big_integer(Nodes::HeartbeatMs))
                .col(big_integer_null(Nodes::StoppedMs))
                .col(integer(Nodes::Recording).default(0))
                .col(string(Nodes::Leader).default(""))
                .col(string(Nodes::Version).default(""))
                .to_owned(),
        )
        .await?;
        // What every node must agree on: today a value sealed with the
        // secret key, so a node with another key refuses to start.
        m.create_table(
            Table::create()
                .table(ClusterMeta::Table)
                .if_not_exists()
                .col(string(ClusterMeta::Key).primary_key())
                .col(binary(ClusterMeta::Value))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeviceLeases::Table)
                .if_not_exists()
                .col(integer(DeviceLeases::DeviceId))
                // `poll` or `record`: leased apart (a node may do one).
                .col(string_len(DeviceLeases::Kind, 16))
                .col(string_null(DeviceLeases::Node))
                .col(big_integer(DeviceLeases::ExpiresMs).default(0))
                .col(big_integer(DeviceLeases::SinceMs).default(0))
                .primary_key(
                    Index::create()
                        .col(DeviceLeases::DeviceId)
                        .col(DeviceLeases::Kind),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_device_leases_device")
                        .from(DeviceLeases::Table, DeviceLeases::DeviceId)
                        .to(Devices::Table, Devices::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_device_leases_node")
                .table(DeviceLeases::Table)
                .col(DeviceLeases::Node)
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite adds one at a time.
        m.alter_table(
            Table::alter()
                .table(Deliveries::Table)
                .add_column(string_null(Deliveries::ClaimedBy))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Deliveries::Table)
                .add_column(big_integer_null(Deliveries::ClaimedUntilMs))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(JobRuns::Table)
                .add_column(string_null(JobRuns::Node))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ProvisionTasks::Table)
                .add_column(string_null(ProvisionTasks::Node))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (t, c) in [
            (
                ProvisionTasks::Table.into_iden(),
                ProvisionTasks::Node.into_iden(),
            ),
            (JobRuns::Table.into_iden(), JobRuns::Node.into_iden()),
            (
                Deliveries::Table.into_iden(),
                Deliveries::ClaimedUntilMs.into_iden(),
            ),
            (
                Deliveries::Table.into_iden(),
                Deliveries::ClaimedBy.into_iden(),
            ),
        ] {
            m.alter_table(Table::alter().table(t).drop_column(c).to_owned())
                .await?;
        }
        m.drop_table(Table::drop().table(DeviceLeases::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(ClusterMeta::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Nodes::Table).to_owned())
            .await
    }
}
