use sea_orm::entity::prelude::*;

/// A staged firmware rollout.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "firmware_rollouts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub image_id: i32,
    /// `running`, `paused`, `stopped` (failure threshold), `cancelled`, `done`.
    pub status: String,
    /// `fleet::firmware::RolloutPlan` as JSON.
    pub plan: Json,
    /// 0 is the canary group.
    pub current_wave: i32,
    pub message: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
