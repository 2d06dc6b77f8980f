use sea_orm::entity::prelude::*;

/// One application of a profile to a set of devices.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "provision_tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub profile_id: i32,
    /// `running`, `done`, `interrupted`.
    pub status: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub summary: String,
    /// The profile's spec as it was when the task was made.
    pub spec: Option<Json>,
    /// The node that ran it (a starting node recovers only its own).
    pub node: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
