use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// WS-Discovery EndpointReference (`urn:uuid:…`), the strongest identity.
    pub endpoint_uuid: Option<String>,
    /// Normalised `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub hardware_id: String,
    pub hostname: String,
    pub name: String,
    /// The device-service URL that answered.
    pub device_url: String,
    /// Every XAddr seen, in the order to try.
    pub xaddrs: Json,
    pub status: String,
    pub last_seen: Option<DateTimeUtc>,
    pub auth_mode: Option<String>,
    pub clock_offset_ms: Option<i64>,
    pub quirks: Json,
    pub policy: Json,
    pub media_version: Option<String>,
    pub site_id: Option<i32>,
    pub credential_id: Option<i32>,
    pub location: String,
    pub purchase_order: String,
    pub purchase_date: Option<Date>,
    pub supplier: String,
    pub cost_cents: Option<i64>,
    pub warranty_end: Option<Date>,
    pub end_of_life: Option<Date>,
    pub asset_tag: String,
    pub notes: String,
    pub adopted_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Lowercased identity and address text for the list's search box
    /// (`fleet::inventory::search_text`).
    #[serde(skip)]
    pub search_text: String,
    /// Why the device is in its `status` (migration 6, the poller).
    pub state_reason: String,
    pub state_since: Option<DateTimeUtc>,
    /// Consecutive failed / successful polls (flap suppression).
    pub poll_failures: i32,
    pub poll_successes: i32,
    pub latency_ms: Option<i32>,
    /// Camera clock minus ours at the last poll.
    pub drift_ms: Option<i64>,
    pub last_poll_at: Option<DateTimeUtc>,
    /// When identity and firmware were last read.
    pub last_info_at: Option<DateTimeUtc>,
    /// Per-device poll interval override (seconds).
    pub poll_interval_s: Option<i32>,
    /// The event service (migration 8): None until looked up, empty when
    /// the device has none.
    pub events_url: Option<String>,
    /// How the event subscription fares, for the device page.
    pub events_status: String,
    /// The provisioning profile last applied (migration 9).
    pub profile_id: Option<i32>,
    /// What differs from that profile at the last check; empty: matches.
    pub config_drift: String,
    pub drift_checked_at: Option<DateTimeUtc>,
    /// The media profile recorded (migration 12); None: not recorded.
    pub record_profile: Option<String>,
    /// How its recording fares, for the health view.
    pub recording_status: String,
    /// `tcp` (RTP interleaved, the default) or `udp` (migration 14).
    pub record_transport: String,
    /// Retired (migration 17): kept in the inventory, no longer polled,
    /// recorded or alerted on.
    pub retired_at: Option<DateTimeUtc>,
    pub retired_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::site::Entity",
        from = "Column::SiteId",
        to = "super::site::Column::Id",
        on_delete = "SetNull"
    )]
    Site,
    #[sea_orm(has_many = "super::device_profile::Entity")]
    Profile,
}

impl Related<super::site::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Site.def()
    }
}

impl Related<super::device_profile::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Profile.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
