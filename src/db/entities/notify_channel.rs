use sea_orm::entity::prelude::*;

/// Where notifications go. `config` holds the non-secret settings;
/// `sealed` the secrets (SMTP password, webhook key, community), sealed
/// with the data directory's key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notify_channels")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    /// `email`, `snmp`, `webhook`.
    pub kind: String,
    pub config: Json,
    pub sealed: Option<Vec<u8>>,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
