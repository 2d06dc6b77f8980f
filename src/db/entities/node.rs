use sea_orm::entity::prelude::*;

/// A camfleet server sharing this database, and its last heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Comma-separated: `web,poll,record,jobs,notify`.
    pub roles: String,
    /// Comma-separated site names it is pinned to; empty: every site.
    pub sites: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    /// Set when it stopped cleanly (its leases were handed back).
    pub stopped_ms: Option<i64>,
    /// Streams it was recording at its last heartbeat.
    pub recording: i32,
    /// The leaderships it held at its last heartbeat (`jobs`, `notify`).
    pub leader: String,
    pub version: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
