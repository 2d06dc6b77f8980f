use sea_orm::entity::prelude::*;

/// One poll, raw (kept 48 h). `at_ms` is Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "health_samples")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub at_ms: i64,
    pub ok: bool,
    pub latency_ms: Option<i32>,
    pub drift_ms: Option<i64>,
    pub error_class: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
