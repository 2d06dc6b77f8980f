use sea_orm::entity::prelude::*;

/// A scheduled maintenance job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    /// One of `fleet::jobs::KINDS`.
    pub kind: String,
    /// Cron: 5 fields (minute first) or 6/7 (seconds first).
    pub schedule: String,
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub params: Json,
    pub enabled: bool,
    /// `skip` or `run_once`: what happens to runs missed while down.
    pub missed_policy: String,
    /// The last schedule slot handled (run or skipped).
    pub last_scheduled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
