use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "discovery_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `multicast`, `unicast` or `cidr`.
    pub kind: String,
    pub params: Json,
    pub started_by: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// `running`, `done`, `failed: …`.
    pub status: String,
    pub found: i32,
    /// Where adopted cameras go (migration 4).
    pub site_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
