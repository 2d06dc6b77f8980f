//! Alerting: rules (what, severity, scope, channels, cooldown), channels
//! (email, SNMP, webhook; secrets sealed), alerts with their lifecycle and
//! history, and the delivery outbox (retried, visible, never blocking the
//! poller).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Id,
    Name,
    Kind,
    Severity,
    SiteIds,
    ThresholdMs,
    ChannelIds,
    CooldownS,
    Enabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum NotifyChannels {
    Table,
    Id,
    Name,
    Kind,
    Config,
    Sealed,
    Enabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    RuleId,
    DeviceId,
    SiteId,
    State,
    Severity,
    Summary,
    OpenedAt,
    AckedAt,
    AckedBy,
    ResolvedAt,
}

#[derive(DeriveIden)]
enum AlertHistory {
    Table,
    Id,
    AlertId,
    At,
    Action,
    Actor,
    Note,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    ChannelId,
    AlertIds,
    Subject,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    SentAt,
}

fn id(c: impl IntoIden) -> ColumnDef {
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
                .table(AlertRules::Table)
                .if_not_exists()
                .col(id(AlertRules::Id))
                .col(ColumnDef::new(AlertRules::Name).string().not_null())
                .col(ColumnDef::new(AlertRules::Kind).string().not_null())
                .col(ColumnDef::new(AlertRules::Severity).string().not_null())
                .col(ColumnDef::new(AlertRules::SiteIds).json().not_null())
                .col(ColumnDef::new(AlertRules::ThresholdMs).big_integer().null())
                .col(ColumnDef::new(AlertRules::ChannelIds).json().not_null())
                .col(ColumnDef::new(AlertRules::CooldownS).integer().not_null())
                .col(ColumnDef::new(AlertRules::Enabled).boolean().not_null())
                .col(
                    ColumnDef::new(AlertRules::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotifyChannels::Table)
                .if_not_exists()
                .col(id(NotifyChannels::Id))
                .col(ColumnDef::new(NotifyChannels::Name).string().not_null())
                .col(ColumnDef::new(NotifyChannels::Kind).string().not_null())
                .col(ColumnDef::new(NotifyChannels::Config).json().not_null())
                .col(ColumnDef::new(NotifyChannels::Sealed).blob().null())
                .col(ColumnDef::new(NotifyChannels::Enabled).boolean().not_null())
                .col(
                    ColumnDef::new(NotifyChannels::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Alerts::Table)
                .if_not_exists()
                .col(id(Alerts::Id))
                .col(ColumnDef::new(Alerts::RuleId).integer().not_null())
                .col(ColumnDef::new(Alerts::DeviceId).integer().not_null())
                .col(ColumnDef::new(Alerts::SiteId).integer().null())
                .col(ColumnDef::new(Alerts::State).string().not_null())
                .col(ColumnDef::new(Alerts::Severity).string().not_null())
                .col(ColumnDef::new(Alerts::Summary).text().not_null())
                .col(
                    ColumnDef::new(Alerts::OpenedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Alerts::AckedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Alerts::AckedBy).string().null())
                .col(
                    ColumnDef::new(Alerts::ResolvedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            (
                "idx_alerts_rule_device",
                vec![Alerts::RuleId, Alerts::DeviceId],
            ),
            ("idx_alerts_state", vec![Alerts::State]),
        ] {
            let mut idx = Index::create();
            idx.if_not_exists().name(name).table(Alerts::Table);
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx.to_owned()).await?;
        }
        m.create_table(
            Table::create()
                .table(AlertHistory::Table)
                .if_not_exists()
                .col(id(AlertHistory::Id))
                .col(ColumnDef::new(AlertHistory::AlertId).integer().not_null())
                .col(
                    ColumnDef::new(AlertHistory::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(AlertHistory::Action).string().not_null())
                .col(ColumnDef::new(AlertHistory::Actor).string().not_null())
                .col(ColumnDef::new(AlertHistory::Note).text().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_alert_history_alert")
                .table(AlertHistory::Table)
                .col(AlertHistory::AlertId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Deliveries::Table)
                .if_not_exists()
                .col(id(Deliveries::Id))
                .col(ColumnDef::new(Deliveries::ChannelId).integer().not_null())
                .col(ColumnDef::new(Deliveries::AlertIds).json().not_null())
                .col(ColumnDef::new(Deliveries::Subject).text().not_null())
                .col(ColumnDef::new(Deliveries::Payload).json().not_null())
                .col(ColumnDef::new(Deliveries::Status).string().not_null())
                .col(ColumnDef::new(Deliveries::Attempts).integer().not_null())
                .col(
                    ColumnDef::new(Deliveries::NextAttemptAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(Deliveries::LastError).text().not_null())
                .col(
                    ColumnDef::new(Deliveries::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Deliveries::SentAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_deliveries_status")
                .table(Deliveries::Table)
                .col(Deliveries::Status)
                .col(Deliveries::NextAttemptAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Deliveries::Table.into_iden(),
            AlertHistory::Table.into_iden(),
            Alerts::Table.into_iden(),
            NotifyChannels::Table.into_iden(),
            AlertRules::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
