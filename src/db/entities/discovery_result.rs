use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "discovery_results")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    pub endpoint: String,
    pub xaddrs: Json,
    pub scopes: Json,
    pub source: String,
    pub via: String,
    /// The managed device this answer belongs to, if any.
    pub device_id: Option<i32>,
    /// `new`, `managed` or `moved`.
    pub classification: String,
    /// The adoption outcome (JSON `AdoptOutcome`), once adopted or failed.
    pub outcome: Option<String>,
    /// The interface the answer came in on (`eth0 10.0.0.5`), when known.
    pub interface: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
