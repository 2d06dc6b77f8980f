use sea_orm::entity::prelude::*;

/// One device of a provisioning task.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "provision_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub task_id: i32,
    pub device_id: i32,
    /// `pending`, `running`, `changed`, `unchanged`, `failed`, `partial`,
    /// `interrupted`.
    pub status: String,
    /// The step running, or the one that failed.
    pub step: String,
    /// Per-setting results (`fleet::provision::SettingResult` list).
    pub detail: Json,
    /// A generated admin password, sealed, until it has been shown once.
    #[serde(skip)]
    pub secret: Option<Vec<u8>>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
