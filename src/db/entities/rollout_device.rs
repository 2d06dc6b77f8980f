use sea_orm::entity::prelude::*;

/// One device of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "rollout_devices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub rollout_id: i32,
    pub device_id: i32,
    /// 0: canary; 1…: waves.
    pub wave: i32,
    /// `pending`, `uploading` (waiting for UploadDelay), `rebooting`,
    /// `done`, `failed`, `skipped`.
    pub status: String,
    pub from_version: String,
    /// When the next step is due (the upload after UploadDelay).
    pub next_at: Option<DateTimeUtc>,
    /// Back with the new version by then, or failed.
    pub deadline: Option<DateTimeUtc>,
    pub upload_uri: String,
    pub message: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
