use sea_orm::entity::prelude::*;

/// One stored segment: the byte ledger retention works from.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "recordings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub device_id: i32,
    pub site_id: Option<i32>,
    /// Media profile token.
    pub profile: String,
    pub start_at: DateTimeUtc,
    pub end_at: DateTimeUtc,
    pub bytes: i64,
    pub codec: String,
    /// SHA-256 of the stored object.
    pub checksum: String,
    /// Storage tier name (`hot`, `cold`, …).
    pub tier: String,
    pub storage_key: String,
    pub created_at: DateTimeUtc,
    /// `live` (the stream) or `edge` (replayed from the camera's card).
    pub origin: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
