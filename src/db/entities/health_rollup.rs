use sea_orm::entity::prelude::*;

/// Five minutes of one device's polls, summarised.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "health_rollups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: i32,
    /// Start of the bucket, Unix milliseconds (a multiple of 300,000).
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_ms: i64,
    pub samples: i32,
    pub ok_samples: i32,
    pub latency_sum_ms: i64,
    pub latency_max_ms: i32,
    pub drift_min_ms: Option<i64>,
    pub drift_max_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
