use sea_orm::entity::prelude::*;

/// When to raise an alert, how bad it is, where, and whom to tell.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "alert_rules")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    /// `offline`, `unauthorized`, `replaced`, `firmware_changed`, `drift`, `rebooted`,
    /// `event_topic`.
    pub kind: String,
    /// `critical`, `major`, `minor`, `info`.
    pub severity: String,
    /// Site ids the rule covers; empty: every site.
    pub site_ids: Json,
    /// For `drift`: the threshold in ms.
    pub threshold_ms: Option<i64>,
    pub channel_ids: Json,
    /// After an alert resolves, the same device and rule do not notify
    /// again for this long (a flapping camera).
    pub cooldown_s: i32,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    /// For `event_topic`: the topic prefix (without namespace prefix),
    /// e.g. `Device/HardwareFailure/StorageFailure`; empty: every watched topic.
    pub topic: String,
    /// Why the rule cannot be applied as stored (an unreadable site or
    /// channel list, flagged by migration 20); empty when it can. Saving
    /// the rule clears it.
    pub problem: String,
}

impl Model {
    /// The site ids the rule covers (empty: every site); None when the
    /// stored list cannot be read, and then the rule matches nothing.
    pub fn sites(&self) -> Option<Vec<i32>> {
        serde_json::from_value(self.site_ids.clone()).ok()
    }

    /// The channel ids to notify (empty: every enabled channel); None when
    /// the stored list cannot be read, and then nothing is sent.
    pub fn channels(&self) -> Option<Vec<i32>> {
        serde_json::from_value(self.channel_ids.clone()).ok()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
