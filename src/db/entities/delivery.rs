use sea_orm::entity::prelude::*;

/// A notification to send through one channel: the outbox. Retried with
/// backoff; its status and last error are shown in the UI.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub channel_id: i32,
    pub alert_ids: Json,
    pub subject: String,
    pub payload: Json,
    /// `pending`, `sent`, `failed` (gave up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: String,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// The node sending it now, and until when (ms) that claim holds:
    /// each delivery is sent by one node, even across a failover.
    pub claimed_by: Option<String>,
    pub claimed_until_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
