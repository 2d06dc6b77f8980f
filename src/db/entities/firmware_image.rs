use sea_orm::entity::prelude::*;

/// A firmware image in the library (bytes in the storage tier).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "firmware_images")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub vendor: String,
    /// Model names it is for: exact, or a `*` wildcard (`SV-2CD*`).
    pub model_pattern: String,
    pub version: String,
    pub sha256: String,
    pub size: i64,
    pub storage_key: String,
    pub notes: String,
    /// The approved version for its models.
    pub approved: bool,
    pub uploaded_by: String,
    pub uploaded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
