use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "sites")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub name: String,
    pub description: String,
    pub created_at: DateTimeUtc,
    /// Poll interval for the site's devices (seconds); default when unset.
    pub poll_interval_s: Option<i32>,
    /// The discovery interface (an IPv4 address of this host) the site's
    /// multicast discoveries use by default; unset: every configured one.
    pub discovery_interface: Option<String>,
    /// IANA time zone the site lives in (`UTC` unless set): the
    /// recordings timeline shows its days.
    pub time_zone: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::device::Entity")]
    Device,
}

impl Related<super::device::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Device.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
