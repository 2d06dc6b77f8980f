use sea_orm::entity::prelude::*;

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub job_id: i32,
    /// `schedule`, `catch_up` (a missed run), `manual`.
    pub trigger: String,
    pub scheduled_for: Option<DateTimeUtc>,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// `running`, `ok`, `failed`, `interrupted`.
    pub outcome: String,
    pub log: String,
    /// The node that ran it (a starting node recovers only its own).
    pub node: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
