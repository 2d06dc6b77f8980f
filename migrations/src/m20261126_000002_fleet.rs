//! The fleet schema: sites, devices and their media profiles, encrypted
//! camera credentials, users, roles and site scoping, sessions, API tokens,
//! the audit log, and discovery runs with their unadopted results.
//!
//! Written for both SQLite and PostgreSQL: integer keys, text/JSON columns,
//! timestamps with time zone (stored as UTC).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Sites {
    Table,
    Id,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum Credentials {
    Table,
    Id,
    Username,
    /// key id (1 byte) ‖ nonce (12) ‖ AES-256-GCM ciphertext of the password.
    Sealed,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum Devices {
    Table,
    Id,
    EndpointUuid,
    Mac,
    Serial,
    Manufacturer,
    Model,
    Firmware,
    HardwareId,
    Hostname,
    Name,
    DeviceUrl,
    Xaddrs,
    Status,
    LastSeen,
    AuthMode,
    ClockOffsetMs,
    Quirks,
    Policy,
    MediaVersion,
    SiteId,
    CredentialId,
    Location,
    PurchaseOrder,
    PurchaseDate,
    Supplier,
    CostCents,
    WarrantyEnd,
    EndOfLife,
    AssetTag,
    Notes,
    AdoptedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum DeviceProfiles {
    Table,
    Id,
    DeviceId,
    Token,
    Name,
    Encoding,
    Width,
    Height,
    FrameRate,
    BitrateKbps,
    StreamUri,
    SnapshotUri,
}

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Role,
    Disabled,
    FailedLogins,
    LockedUntil,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
pub enum UserSites {
    Table,
    UserId,
    SiteId,
}

#[derive(DeriveIden)]
pub enum Sessions {
    Table,
    Id,
    Data,
    ExpiresAt,
}

#[derive(DeriveIden)]
pub enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
pub enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    TargetKind,
    TargetId,
    Before,
    After,
    Ip,
}

#[derive(DeriveIden)]
pub enum DiscoveryRuns {
    Table,
    Id,
    Kind,
    Params,
    StartedBy,
    StartedAt,
    FinishedAt,
    Status,
    Found,
}

#[derive(DeriveIden)]
pub enum DiscoveryResults {
    Table,
    Id,
    RunId,
    Endpoint,
    Xaddrs,
    Scopes,
    Source,
    Via,
    DeviceId,
    Classification,
}

fn fk(
    name: &str,
    from: (impl IntoIden + 'static, impl IntoIden + 'static),
    to: (impl IntoIden + 'static, impl IntoIden + 'static),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sites::Table)
                .if_not_exists()
                .col(pk_auto(Sites::Id))
                .col(string_uniq(Sites::Name))
                .col(text(Sites::Description).default(""))
                .col(timestamp_with_time_zone(Sites::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Credentials::Table)
                .if_not_exists()
                .col(pk_auto(Credentials::Id))
                .col(string(Credentials::Username))
                .col(blob(Credentials::Sealed))
                .col(timestamp_with_time_zone(Credentials::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Devices::Table)
                .if_not_exists()
                .col(pk_auto(Devices::Id))
                .col(string_null(Devices::EndpointUuid))
                .col(string_null(Devices::Mac))
                .col(string_null(Devices::Serial))
                .col(string(Devices::Manufacturer).default(""))
                .col(string(Devices::Model).default(""))
                .col(string(Devices::Firmware).default(""))
                .col(string(Devices::HardwareId).default(""))
                .col(string(Devices::Hostname).default(""))
                .col(string(Devices::Name).default(""))
                .col(string(Devices::DeviceUrl))
                .col(json(Devices::Xaddrs))
                .col(string(Devices::Status))
                .col(timestamp_with_time_zone_null(Devices::LastSeen))
                .col(string_null(Devices::AuthMode))
                .col(big_integer_null(Devices::ClockOffsetMs))
                .col(json(Devices::Quirks))
                .col(json(Devices::Policy))
                .col(string_null(Devices::MediaVersion))
                .col(integer_null(Devices::SiteId))
                .col(integer_null(Devices::CredentialId))
                .col(text(Devices::Location).default(""))
                .col(string(Devices::PurchaseOrder).default(""))
                .col(date_null(Devices::PurchaseDate))
                .col(string(Devices::Supplier).default(""))
                .col(big_integer_null(Devices::CostCents))
                .col(date_null(Devices::WarrantyEnd))
                .col(date_null(Devices::EndOfLife))
                .col(string(Devices::AssetTag).default(""))
                .col(text(Devices::Notes).default(""))
                .col(timestamp_with_time_zone(Devices::AdoptedAt))
                .col(timestamp_with_time_zone(Devices::UpdatedAt))
                .foreign_key(&mut fk(
                    "fk_devices_site",
                    (Devices::Table, Devices::SiteId),
                    (Sites::Table, Sites::Id),
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut fk(
                    "fk_devices_credential",
                    (Devices::Table, Devices::CredentialId),
                    (Credentials::Table, Credentials::Id),
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_devices_endpoint", Devices::EndpointUuid),
            ("idx_devices_mac", Devices::Mac),
            ("idx_devices_serial", Devices::Serial),
            ("idx_devices_site", Devices::SiteId),
            ("idx_devices_status", Devices::Status),
            ("idx_devices_model", Devices::Model),
            ("idx_devices_firmware", Devices::Firmware),
            ("idx_devices_manufacturer", Devices::Manufacturer),
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
        m.create_table(
            Table::create()
                .table(DeviceProfiles::Table)
                .if_not_exists()
                .col(pk_auto(DeviceProfiles::Id))
                .col(integer(DeviceProfiles::DeviceId))
                .col(string(DeviceProfiles::Token))
                .col(string(DeviceProfiles::Name).default(""))
                .col(string(DeviceProfiles::Encoding).default(""))
                .col(integer_null(DeviceProfiles::Width))
                .col(integer_null(DeviceProfiles::Height))
                .col(double_null(DeviceProfiles::FrameRate))
                .col(integer_null(DeviceProfiles::BitrateKbps))
                .col(text_null(DeviceProfiles::StreamUri))
                .col(text_null(DeviceProfiles::SnapshotUri))
                .foreign_key(&mut fk(
                    "fk_profiles_device",
                    (DeviceProfiles::Table, DeviceProfiles::DeviceId),
                    (Devices::Table, Devices::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_profiles_device")
                .table(DeviceProfiles::Table)
                .col(DeviceProfiles::DeviceId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(pk_auto(Users::Id))
                .col(string_uniq(Users::Username))
                .col(string(Users::PasswordHash))
                .col(string(Users::Role))
                .col(boolean(Users::Disabled).default(false))
                .col(integer(Users::FailedLogins).default(0))
                .col(timestamp_with_time_zone_null(Users::LockedUntil))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserSites::Table)
                .if_not_exists()
                .col(integer(UserSites::UserId))
                .col(integer(UserSites::SiteId))
                .primary_key(
                    Index::create()
                        .col(UserSites::UserId)
                        .col(UserSites::SiteId),
                )
                .foreign_key(&mut fk(
                    "fk_user_sites_user",
                    (UserSites::Table, UserSites::UserId),
                    (Users::Table, Users::Id),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "fk_user_sites_site",
                    (UserSites::Table, UserSites::SiteId),
                    (Sites::Table, Sites::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string(Sessions::Id).primary_key())
                .col(blob(Sessions::Data))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(pk_auto(ApiTokens::Id))
                .col(integer(ApiTokens::UserId))
                .col(string(ApiTokens::Name))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                .foreign_key(&mut fk(
                    "fk_api_tokens_user",
                    (ApiTokens::Table, ApiTokens::UserId),
                    (Users::Table, Users::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(pk_auto(AuditLog::Id))
                .col(timestamp_with_time_zone(AuditLog::At))
                .col(string(AuditLog::Actor))
                .col(string(AuditLog::Action))
                .col(string(AuditLog::TargetKind).default(""))
                .col(string(AuditLog::TargetId).default(""))
                .col(json_null(AuditLog::Before))
                .col(json_null(AuditLog::After))
                .col(string_null(AuditLog::Ip))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_audit_at")
                .table(AuditLog::Table)
                .col(AuditLog::At)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DiscoveryRuns::Table)
                .if_not_exists()
                .col(pk_auto(DiscoveryRuns::Id))
                .col(string(DiscoveryRuns::Kind))
                .col(json(DiscoveryRuns::Params))
                .col(string(DiscoveryRuns::StartedBy))
                .col(timestamp_with_time_zone(DiscoveryRuns::StartedAt))
                .col(timestamp_with_time_zone_null(DiscoveryRuns::FinishedAt))
                .col(string(DiscoveryRuns::Status))
                .col(integer(DiscoveryRuns::Found).default(0))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DiscoveryResults::Table)
                .if_not_exists()
                .col(pk_auto(DiscoveryResults::Id))
                .col(integer(DiscoveryResults::RunId))
                .col(string(DiscoveryResults::Endpoint))
                .col(json(DiscoveryResults::Xaddrs))
                .col(json(DiscoveryResults::Scopes))
                .col(string(DiscoveryResults::Source))
                .col(string(DiscoveryResults::Via))
                .col(integer_null(DiscoveryResults::DeviceId))
                .col(string(DiscoveryResults::Classification))
                .foreign_key(&mut fk(
                    "fk_results_run",
                    (DiscoveryResults::Table, DiscoveryResults::RunId),
                    (DiscoveryRuns::Table, DiscoveryRuns::Id),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "fk_results_device",
                    (DiscoveryResults::Table, DiscoveryResults::DeviceId),
                    (Devices::Table, Devices::Id),
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents.
        for t in [
            DiscoveryResults::Table.into_iden(),
            DiscoveryRuns::Table.into_iden(),
            AuditLog::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            UserSites::Table.into_iden(),
            Users::Table.into_iden(),
            DeviceProfiles::Table.into_iden(),
            Devices::Table.into_iden(),
            Credentials::Table.into_iden(),
            Sites::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
