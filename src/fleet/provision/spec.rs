//! What a profile asks for, a plan and its results, and the pure helpers
//! that render patterns and compare settings.

use super::*;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSpec {
    /// NTP (true) or manual time set from camfleet's clock.
    pub ntp: bool,
    /// POSIX TZ, e.g. `CET-1CEST,M3.5.0,M10.5.0/3`; None leaves it.
    pub tz: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServersSpec {
    pub from_dhcp: bool,
    pub servers: Vec<String>,
    #[serde(default)]
    pub search_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSpec {
    pub username: String,
    /// Administrator, Operator or User.
    pub level: String,
    /// Sealed with the installation key, base64.
    pub password_sealed: String,
}

/// Desired state; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileSpec {
    pub time: Option<TimeSpec>,
    pub ntp: Option<ServersSpec>,
    pub dns: Option<ServersSpec>,
    /// Pattern with `{site}`, `{model}`, `{serial}`, `{mac}`, `{name}`, `{id}`.
    pub hostname: Option<String>,
    #[serde(default)]
    pub users: Vec<UserSpec>,
    #[serde(default)]
    pub rotate_admin_password: bool,
    pub discoverable: Option<bool>,
    /// Patterns, as for the hostname.
    pub name_scope: Option<String>,
    pub location_scope: Option<String>,
    pub main_encoder: Option<EncoderWant>,
    pub sub_encoder: Option<EncoderWant>,
}

/// What to do about one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "why", rename_all = "snake_case")]
pub enum Action {
    Same,
    Change,
    /// The camera cannot take it (outside its options, not supported).
    Cannot(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingPlan {
    /// Step name, e.g. `ntp`, `encoder:main`, `user:operator`.
    pub key: String,
    pub current: String,
    pub desired: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePlan {
    pub device_id: i32,
    pub name: String,
    pub settings: Vec<SettingPlan>,
    /// The camera could not be read at all.
    pub error: Option<String>,
}

/// How one setting ended in an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingResult {
    pub key: String,
    pub before: String,
    pub after: String,
    /// `changed`, `already`, `cannot`, `failed`, `not_run`.
    pub result: String,
    pub message: String,
}

/// What the plan needs to know about a device besides the camera.
#[derive(Debug, Clone)]
pub struct Target {
    pub device: device::Model,
    pub site: String,
    pub creds: Option<Credentials>,
}

/// Fill a pattern's placeholders and make it a valid hostname when asked.
pub fn render(pattern: &str, t: &device::Model, site: &str, hostname: bool) -> String {
    let mac = t.mac.clone().unwrap_or_default().replace(':', "");
    let out = pattern
        .replace("{site}", site)
        .replace("{model}", &t.model)
        .replace("{serial}", t.serial.as_deref().unwrap_or(""))
        .replace("{mac}", &mac)
        .replace("{name}", &t.name)
        .replace("{id}", &t.id.to_string());
    if !hostname {
        return out;
    }
    let mut h: String = out
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while h.contains("--") {
        h = h.replace("--", "-");
    }
    h.trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

pub(super) fn hosts_text(v: &[NetworkHost]) -> String {
    v.iter().map(|h| h.text()).collect::<Vec<_>>().join(", ")
}

pub(super) fn norm_set<'a>(v: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    v.into_iter()
        .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

pub(super) fn encoder_text(e: &VideoEncoder) -> String {
    format!(
        "{} {}×{} {} fps {} kbit/s GOP {} {}",
        e.encoding,
        e.width.unwrap_or(0),
        e.height.unwrap_or(0),
        e.frame_rate_limit.unwrap_or(0.0),
        e.bitrate_limit_kbps.unwrap_or(0),
        e.gov_length.unwrap_or(0),
        e.profile.as_deref().unwrap_or("")
    )
}

/// Does `current` already have every field `want` sets?
pub(super) fn encoder_matches(current: &VideoEncoder, want: &EncoderWant) -> bool {
    want.encoding
        .as_ref()
        .is_none_or(|v| v.eq_ignore_ascii_case(&current.encoding))
        && want.width.is_none_or(|v| Some(v) == current.width)
        && want.height.is_none_or(|v| Some(v) == current.height)
        && want.frame_rate.is_none_or(|v| {
            current
                .frame_rate_limit
                .is_some_and(|c| (c - v).abs() < 0.01)
        })
        && want
            .bitrate_kbps
            .is_none_or(|v| Some(v) == current.bitrate_limit_kbps)
        && want
            .gov_length
            .is_none_or(|v| Some(v) == current.gov_length)
        && want.profile.as_ref().is_none_or(|v| {
            current
                .profile
                .as_ref()
                .is_some_and(|c| c.eq_ignore_ascii_case(v))
        })
}

pub(super) fn not_supported(e: &OnvifError) -> bool {
    e.class == FaultClass::NotSupported
}

/// The order in which steps run. Users and the admin password go last so
/// every earlier step uses credentials known to work.
pub(super) const ORDER: [&str; 9] = [
    "time",
    "ntp",
    "dns",
    "hostname",
    "discovery",
    "scopes",
    "encoder",
    "user",
    "admin_password",
];

pub(super) fn order_of(key: &str) -> usize {
    let head = key.split(':').next().unwrap_or(key);
    ORDER.iter().position(|k| *k == head).unwrap_or(ORDER.len())
}
