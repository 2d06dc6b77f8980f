use sea_orm::entity::prelude::*;

/// One gap in a device's recording that a backfill tried to fill from the
/// camera's own recording.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "backfills")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub device_id: i32,
    pub profile: String,
    pub gap_start: DateTimeUtc,
    pub gap_end: DateTimeUtc,
    /// `filled`, `partial` (some of it), `empty` (the camera has nothing
    /// there) or `failed` (tried again, up to three times).
    pub state: String,
    pub attempts: i32,
    pub frames: i64,
    pub segments: i32,
    pub bytes: i64,
    pub error: String,
    pub attempted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
