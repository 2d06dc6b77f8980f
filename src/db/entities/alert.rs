use sea_orm::entity::prelude::*;

/// One alert: open → acknowledged → resolved. At most one open (or
/// acknowledged) alert per rule and device.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub rule_id: i32,
    pub device_id: i32,
    pub site_id: Option<i32>,
    /// `open`, `acknowledged`, `resolved`.
    pub state: String,
    pub severity: String,
    pub summary: String,
    pub opened_at: DateTimeUtc,
    pub acked_at: Option<DateTimeUtc>,
    pub acked_by: Option<String>,
    pub resolved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
