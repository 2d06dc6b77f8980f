use sea_orm::entity::prelude::*;

/// A login session. `id` is the SHA-256 (hex) of the cookie token, so a
/// leaked database does not hand out live sessions; `data` is JSON.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub data: Vec<u8>,
    pub expires_at: DateTimeUtc,
    pub user_id: Option<i32>,
    /// Last request seen with this session (idle timeout).
    pub last_seen_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
