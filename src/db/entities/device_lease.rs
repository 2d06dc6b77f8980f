use sea_orm::entity::prelude::*;

/// Which node polls (and subscribes to) or records a device, until when.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "device_leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: i32,
    /// `poll` (health and events) or `record`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// None: handed back (free).
    pub node: Option<String>,
    /// Milliseconds since the epoch; past it the lease is free.
    pub expires_ms: i64,
    /// When the holder took it (or when it was handed back).
    pub since_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
