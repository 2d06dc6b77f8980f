use sea_orm::entity::prelude::*;

/// A camera notification camfleet watches (PullPoint), as received.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "device_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub device_id: i32,
    /// The camera's UtcTime for the message, or when it arrived.
    pub at: DateTimeUtc,
    /// Without the namespace prefix, e.g. `Device/HardwareFailure/StorageFailure`.
    pub topic: String,
    /// `Initialized`, `Changed`, `Deleted`, or empty.
    pub operation: String,
    /// SimpleItems as `[[name, value], …]`.
    pub source: Json,
    pub data: Json,
    /// Whether the condition is on (failure, tamper, …); None when the
    /// topic has no on/off meaning.
    pub active: Option<bool>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
