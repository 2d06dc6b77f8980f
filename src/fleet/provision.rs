//! Provisioning: a profile is desired state; a plan compares it with what
//! each camera reports; a task applies it with verify-after-write.
//!
//! - **Plan** (dry run): per device and setting, current → desired, and
//!   whether the camera cannot take it (outside its options, or the
//!   operation is not supported).
//! - **Apply**: the changed settings in a fixed order of named steps, each
//!   written and then read back. A write the camera accepts but does not
//!   keep is a failure ("did not stick"), not a success. The first failure
//!   stops the device: its outcome is `failed` (nothing changed) or
//!   `partial` (which settings changed).
//! - **Admin password rotation** (last step): a password generated per
//!   device. It counts only when the new password works and the old one no
//!   longer does. The stored credential is replaced as soon as the new one
//!   works, so camfleet never locks itself out. The password is sealed on
//!   the task row until someone views it once.
//! - Tasks are rows: a restart marks what was running as interrupted, and
//!   resuming runs those devices again (plans are re-read, so a device
//!   half-done before is finished, not redone blindly).

use std::collections::BTreeSet;
use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::poller::{device_session, open_credentials};
use super::progress::{Progress, ProgressHub, Reporter};
use crate::clock::SharedClock;
use crate::db::entities::{
    credential, device, device_profile, provision_item, provision_profile, provision_task, site,
};
use crate::error::{Error, ErrorKind, Result};
use crate::onvif::config::{self as cfg, UserWrite};
use crate::onvif::encoder::{self, EncoderWant, EncodingOptions};
use crate::onvif::media::MediaVersion;
use crate::onvif::{
    Credentials, DeviceSession, FaultClass, NetworkHost, OnvifError, Transport, VideoEncoder,
    device as dev,
};
use crate::secrets::SecretBox;

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

fn hosts_text(v: &[NetworkHost]) -> String {
    v.iter().map(|h| h.text()).collect::<Vec<_>>().join(", ")
}

fn norm_set<'a>(v: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    v.into_iter()
        .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn encoder_text(e: &VideoEncoder) -> String {
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
fn encoder_matches(current: &VideoEncoder, want: &EncoderWant) -> bool {
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

fn not_supported(e: &OnvifError) -> bool {
    e.class == FaultClass::NotSupported
}

/// The order in which steps run. Users and the admin password go last so
/// every earlier step uses credentials known to work.
const ORDER: [&str; 9] = [
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

fn order_of(key: &str) -> usize {
    let head = key.split(':').next().unwrap_or(key);
    ORDER.iter().position(|k| *k == head).unwrap_or(ORDER.len())
}

/// One device's conversation for plan and apply.
pub struct Provisioning<'a> {
    pub session: DeviceSession,
    pub target: &'a Target,
    pub spec: &'a ProfileSpec,
    pub secrets: &'a SecretBox,
    pub clock: &'a SharedClock,
    pub transport: &'a Transport,
    media: MediaVersion,
}

impl<'a> Provisioning<'a> {
    pub fn new(
        target: &'a Target,
        spec: &'a ProfileSpec,
        secrets: &'a SecretBox,
        clock: &'a SharedClock,
        transport: &'a Transport,
    ) -> std::result::Result<Self, String> {
        let d = &target.device;
        let session = device_session(
            &d.device_url,
            &d.policy,
            d.auth_mode.as_deref(),
            target.creds.clone(),
            transport,
            clock,
        )
        .map_err(|(_, e)| e)?;
        let media = media_of(d);
        Ok(Self {
            session,
            target,
            spec,
            secrets,
            clock,
            transport,
            media,
        })
    }

    fn password(&self, u: &UserSpec) -> std::result::Result<String, String> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&u.password_sealed)
            .map_err(|e| format!("user {}: stored password unreadable: {e}", u.username))?;
        self.secrets
            .open_string(&raw)
            .map_err(|e| format!("user {}: stored password unreadable: {e}", u.username))
    }

    /// The encoder a profile kind points at: the first profile's for main,
    /// the second's for sub.
    async fn encoder(&self, kind: &str) -> std::result::Result<VideoEncoder, OnvifError> {
        let all = crate::onvif::media::get_profiles(&self.session, self.media).await?;
        let idx = if kind == "main" { 0 } else { 1 };
        all.get(idx).and_then(|p| p.encoder.clone()).ok_or_else(|| {
            OnvifError::new(
                FaultClass::NotSupported,
                "GetProfiles",
                format!("no {kind} stream profile"),
            )
        })
    }

    async fn options(&self, token: &str) -> std::result::Result<Vec<EncodingOptions>, OnvifError> {
        encoder::get_options(&self.session, self.media, token).await
    }

    /// Read one setting: (current text, action).
    async fn read(&self, key: &str) -> (String, String, Action) {
        let d = &self.target.device;
        let site = &self.target.site;
        let s = &self.session;
        let spec = self.spec;
        let fail = |e: OnvifError| {
            if not_supported(&e) {
                (
                    String::new(),
                    Action::Cannot(format!("not supported: {}", e.message)),
                )
            } else {
                (format!("unreadable: {e}"), Action::Change)
            }
        };
        let (desired, (current, action)) = match key {
            "time" => {
                let t = spec.time.clone().unwrap_or_default();
                let desired = format!(
                    "{}{}",
                    if t.ntp {
                        "NTP"
                    } else {
                        "manual (camfleet's clock)"
                    },
                    t.tz.as_ref()
                        .map(|z| format!(", TZ {z}"))
                        .unwrap_or_default()
                );
                let r = match s.sync_clock().await {
                    Ok(c) => {
                        let tz_ok =
                            t.tz.as_ref()
                                .is_none_or(|z| c.tz.as_deref() == Some(z.as_str()));
                        let drift = (c.utc - self.clock.now_utc()).num_seconds().abs();
                        let same = c.ntp == t.ntp && tz_ok && (t.ntp || drift <= 5);
                        (
                            format!(
                                "{}{}",
                                if c.ntp { "NTP" } else { "manual" },
                                c.tz.map(|z| format!(", TZ {z}")).unwrap_or_default()
                            ),
                            if same { Action::Same } else { Action::Change },
                        )
                    }
                    Err(e) => fail(e),
                };
                (desired, r)
            }
            "ntp" | "dns" => {
                let want = if key == "ntp" { &spec.ntp } else { &spec.dns };
                let want = want.clone().unwrap_or_default();
                let desired = if want.from_dhcp {
                    "from DHCP".to_string()
                } else {
                    want.servers.join(", ")
                };
                let r = if key == "ntp" {
                    match dev::get_ntp(s).await {
                        Ok(n) => {
                            let same = n.from_dhcp == want.from_dhcp
                                && (want.from_dhcp
                                    || norm_set(n.servers.iter().map(|h| h.text()))
                                        == norm_set(want.servers.iter().map(String::as_str)));
                            (
                                if n.from_dhcp {
                                    "from DHCP".into()
                                } else {
                                    hosts_text(&n.servers)
                                },
                                if same { Action::Same } else { Action::Change },
                            )
                        }
                        Err(e) => fail(e),
                    }
                } else {
                    match dev::get_dns(s).await {
                        Ok(n) => {
                            let same = n.from_dhcp == want.from_dhcp
                                && (want.from_dhcp
                                    || norm_set(n.servers.iter().map(|h| h.text()))
                                        == norm_set(want.servers.iter().map(String::as_str)))
                                && norm_set(n.search_domains.iter().map(String::as_str))
                                    == norm_set(want.search_domains.iter().map(String::as_str));
                            let bad = want
                                .servers
                                .iter()
                                .find(|x| matches!(NetworkHost::from_text(x), NetworkHost::Dns(_)));
                            (
                                format!(
                                    "{}{}",
                                    if n.from_dhcp {
                                        "from DHCP".into()
                                    } else {
                                        hosts_text(&n.servers)
                                    },
                                    if n.search_domains.is_empty() {
                                        String::new()
                                    } else {
                                        format!("; search {}", n.search_domains.join(" "))
                                    }
                                ),
                                match bad {
                                    Some(b) if !want.from_dhcp => Action::Cannot(format!(
                                        "DNS servers must be IP addresses, not {b:?}"
                                    )),
                                    _ if same => Action::Same,
                                    _ => Action::Change,
                                },
                            )
                        }
                        Err(e) => fail(e),
                    }
                };
                (desired, r)
            }
            "hostname" => {
                let want = render(spec.hostname.as_deref().unwrap_or(""), d, site, true);
                let r = match dev::get_hostname(s).await {
                    Ok(h) => {
                        let cur = h.name.clone().unwrap_or_default();
                        let act = if want.is_empty() {
                            Action::Cannot("the pattern renders empty for this device".into())
                        } else if cur == want && !h.from_dhcp {
                            Action::Same
                        } else {
                            Action::Change
                        };
                        (
                            format!("{cur}{}", if h.from_dhcp { " (from DHCP)" } else { "" }),
                            act,
                        )
                    }
                    Err(e) => fail(e),
                };
                (want, r)
            }
            "discovery" => {
                let want = spec.discoverable.unwrap_or(true);
                let txt = |b: bool| {
                    if b {
                        "discoverable"
                    } else {
                        "not discoverable"
                    }
                };
                let r = match cfg::get_discovery_mode(s).await {
                    Ok(c) => (
                        txt(c).to_string(),
                        if c == want {
                            Action::Same
                        } else {
                            Action::Change
                        },
                    ),
                    Err(e) => fail(e),
                };
                (txt(want).to_string(), r)
            }
            "scopes" => {
                let name = spec
                    .name_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false));
                let loc = spec
                    .location_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false));
                let desired = format!(
                    "name {} · location {}",
                    name.as_deref().unwrap_or("(as is)"),
                    loc.as_deref().unwrap_or("(as is)")
                );
                let r = match dev::get_scopes(s).await {
                    Ok(sc) => {
                        let same = name.as_ref().is_none_or(|n| sc.name.as_ref() == Some(n))
                            && loc.as_ref().is_none_or(|l| sc.location.as_ref() == Some(l));
                        (
                            format!(
                                "name {} · location {}",
                                sc.name.unwrap_or_default(),
                                sc.location.unwrap_or_default()
                            ),
                            if same { Action::Same } else { Action::Change },
                        )
                    }
                    Err(e) => fail(e),
                };
                (desired, r)
            }
            k if k.starts_with("encoder:") => {
                let kind = &k["encoder:".len()..];
                let want = if kind == "main" {
                    spec.main_encoder.clone()
                } else {
                    spec.sub_encoder.clone()
                }
                .unwrap_or_default();
                let r = match self.encoder(kind).await {
                    Ok(cur) => {
                        let desired_enc = encoder::merged(&cur, &want);
                        let act = if encoder_matches(&cur, &want) {
                            Action::Same
                        } else {
                            match self.options(&cur.token).await {
                                Ok(opts) => {
                                    let enc = desired_enc.encoding.clone();
                                    let full = EncoderWant {
                                        encoding: Some(enc.clone()),
                                        width: desired_enc.width,
                                        height: desired_enc.height,
                                        frame_rate: desired_enc.frame_rate_limit,
                                        bitrate_kbps: desired_enc.bitrate_limit_kbps,
                                        gov_length: desired_enc.gov_length,
                                        profile: desired_enc.profile.clone(),
                                    };
                                    match opts
                                        .iter()
                                        .find(|o| o.encoding.eq_ignore_ascii_case(&enc))
                                    {
                                        None if !opts.is_empty() => {
                                            Action::Cannot(format!("{enc} is not offered"))
                                        }
                                        None => Action::Change,
                                        Some(o) => match o.refuse(&full) {
                                            Some(why) => Action::Cannot(why),
                                            None => Action::Change,
                                        },
                                    }
                                }
                                // No options to check against: try it.
                                Err(_) => Action::Change,
                            }
                        };
                        return (encoder_text(&desired_enc), encoder_text(&cur), act);
                    }
                    Err(e) => fail(e),
                };
                (format!("{want:?}"), r)
            }
            k if k.starts_with("user:") => {
                let name = &k["user:".len()..];
                let Some(u) = spec.users.iter().find(|u| u.username == name) else {
                    return (String::new(), String::new(), Action::Same);
                };
                let desired = format!("{} ({})", u.username, u.level);
                let r = match dev::get_users(s).await {
                    Ok(users) => match users.iter().find(|x| x.username == u.username) {
                        None => ("absent".to_string(), Action::Change),
                        Some(x) if !x.level.eq_ignore_ascii_case(&u.level) => {
                            (format!("{} ({})", x.username, x.level), Action::Change)
                        }
                        Some(x) => {
                            // Same level: does the profile's password work?
                            let works = match self.password(u) {
                                Ok(pw) => self.login_works(&u.username, &pw).await,
                                Err(_) => Some(false),
                            };
                            (
                                format!("{} ({})", x.username, x.level),
                                if works == Some(true) {
                                    Action::Same
                                } else {
                                    Action::Change
                                },
                            )
                        }
                    },
                    Err(e) => fail(e),
                };
                (desired, r)
            }
            "admin_password" => {
                let user = self
                    .target
                    .creds
                    .as_ref()
                    .map(|c| c.username.clone())
                    .unwrap_or_default();
                let act = if user.is_empty() {
                    Action::Cannot("camfleet has no credentials for this camera".into())
                } else {
                    Action::Change
                };
                (
                    "(a new generated password)".into(),
                    (format!("{user}: current password"), act),
                )
            }
            other => (
                String::new(),
                (
                    String::new(),
                    Action::Cannot(format!("unknown setting {other}")),
                ),
            ),
        };
        (desired, current, action)
    }

    /// The settings this profile touches, in step order.
    pub fn keys(&self) -> Vec<String> {
        let s = self.spec;
        let mut k = Vec::new();
        if s.time.is_some() {
            k.push("time".to_string());
        }
        if s.ntp.is_some() {
            k.push("ntp".into());
        }
        if s.dns.is_some() {
            k.push("dns".into());
        }
        if s.hostname.as_deref().is_some_and(|h| !h.trim().is_empty()) {
            k.push("hostname".into());
        }
        if s.discoverable.is_some() {
            k.push("discovery".into());
        }
        if s.name_scope.is_some() || s.location_scope.is_some() {
            k.push("scopes".into());
        }
        if s.main_encoder.is_some() {
            k.push("encoder:main".into());
        }
        if s.sub_encoder.is_some() {
            k.push("encoder:sub".into());
        }
        for u in &s.users {
            k.push(format!("user:{}", u.username));
        }
        if s.rotate_admin_password {
            k.push("admin_password".into());
        }
        k.sort_by_key(|x| order_of(x));
        k
    }

    pub async fn plan(&self) -> DevicePlan {
        let d = &self.target.device;
        // Service addresses (media, media2) for this session; devices
        // store only their device service.
        if let Err(e) = crate::onvif::adopt::discover_services(&self.session).await {
            return DevicePlan {
                device_id: d.id,
                name: d.name.clone(),
                settings: Vec::new(),
                error: Some(e.to_string()),
            };
        }
        let mut settings = Vec::new();
        for key in self.keys() {
            let (desired, current, action) = self.read(&key).await;
            settings.push(SettingPlan {
                key,
                current,
                desired,
                action,
            });
        }
        DevicePlan {
            device_id: d.id,
            name: crate::fleet::inventory::display_name(d),
            settings,
            error: None,
        }
    }

    /// Can `user` log in with `password` (an authenticated read)? None:
    /// could not tell (not a refusal).
    async fn login_works(&self, user: &str, password: &str) -> Option<bool> {
        let d = &self.target.device;
        let mut policy: crate::onvif::DevicePolicy =
            serde_json::from_value(d.policy.clone()).unwrap_or_default();
        policy.auth_mode = self.session.auth_mode().or_else(|| {
            d.auth_mode
                .as_deref()
                .and_then(crate::onvif::AuthMode::parse)
        });
        let url = url::Url::parse(&d.device_url).ok()?;
        let s = DeviceSession::new(
            self.transport.clone(),
            self.clock.clone(),
            url,
            Some(Credentials {
                username: user.into(),
                password: password.into(),
            }),
            policy,
        );
        match dev::get_device_information(&s).await {
            Ok(_) => Some(true),
            Err(e) if e.class == FaultClass::Unauthorized => Some(false),
            Err(_) => None,
        }
    }

    /// Write one setting (the plan said Change).
    async fn write(&self, key: &str) -> std::result::Result<String, String> {
        let d = &self.target.device;
        let site = &self.target.site;
        let s = &self.session;
        let spec = self.spec;
        let e = |e: OnvifError| e.to_string();
        match key {
            "time" => {
                let t = spec.time.clone().unwrap_or_default();
                let utc = (!t.ntp).then(|| self.clock.now_utc());
                let dropped = cfg::set_system_date_and_time(s, t.ntp, t.tz.as_deref(), utc)
                    .await
                    .map_err(e)?;
                Ok(if dropped {
                    "the camera refused the time zone; set without it".into()
                } else {
                    String::new()
                })
            }
            "ntp" => {
                let w = spec.ntp.clone().unwrap_or_default();
                let hosts: Vec<NetworkHost> = w
                    .servers
                    .iter()
                    .map(|x| NetworkHost::from_text(x))
                    .collect();
                cfg::set_ntp(s, w.from_dhcp, &hosts).await.map_err(e)?;
                Ok(String::new())
            }
            "dns" => {
                let w = spec.dns.clone().unwrap_or_default();
                let hosts: Vec<NetworkHost> = w
                    .servers
                    .iter()
                    .map(|x| NetworkHost::from_text(x))
                    .collect();
                cfg::set_dns(s, w.from_dhcp, &w.search_domains, &hosts)
                    .await
                    .map_err(e)?;
                Ok(String::new())
            }
            "hostname" => {
                let h = dev::get_hostname(s).await.map_err(e)?;
                if h.from_dhcp {
                    cfg::set_hostname_from_dhcp(s, false).await.map_err(e)?;
                }
                let name = render(spec.hostname.as_deref().unwrap_or(""), d, site, true);
                cfg::set_hostname(s, &name).await.map_err(e)?;
                Ok(String::new())
            }
            "discovery" => {
                cfg::set_discovery_mode(s, spec.discoverable.unwrap_or(true))
                    .await
                    .map_err(e)?;
                Ok(String::new())
            }
            "scopes" => {
                let cur = dev::get_scopes(s).await.map_err(e)?;
                let name = spec
                    .name_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false))
                    .or(cur.name);
                let loc = spec
                    .location_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false))
                    .or(cur.location);
                let mut scopes = Vec::new();
                if let Some(n) = name {
                    scopes.push(cfg::scope_uri("name", &n));
                }
                if let Some(l) = loc {
                    scopes.push(cfg::scope_uri("location", &l));
                }
                cfg::set_scopes(s, &scopes).await.map_err(e)?;
                Ok(String::new())
            }
            k if k.starts_with("encoder:") => {
                let kind = &k["encoder:".len()..];
                let want = if kind == "main" {
                    spec.main_encoder.clone()
                } else {
                    spec.sub_encoder.clone()
                }
                .unwrap_or_default();
                let cur = self.encoder(kind).await.map_err(e)?;
                encoder::set_encoder(s, self.media, &encoder::merged(&cur, &want))
                    .await
                    .map_err(e)?;
                Ok(String::new())
            }
            k if k.starts_with("user:") => {
                let name = &k["user:".len()..];
                let u = spec
                    .users
                    .iter()
                    .find(|u| u.username == name)
                    .ok_or("user left the profile")?;
                let w = UserWrite {
                    username: u.username.clone(),
                    password: self.password(u)?,
                    level: u.level.clone(),
                };
                let exists = dev::get_users(s)
                    .await
                    .map_err(e)?
                    .iter()
                    .any(|x| x.username == u.username);
                if exists {
                    cfg::set_user(s, &w).await.map_err(e)?;
                } else {
                    cfg::create_users(s, std::slice::from_ref(&w))
                        .await
                        .map_err(e)?;
                }
                Ok(String::new())
            }
            other => Err(format!("no writer for {other}")),
        }
    }
}

/// The media service version a device was adopted with.
fn media_of(d: &device::Model) -> MediaVersion {
    match d.media_version.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("v20") => MediaVersion::V20,
        _ => MediaVersion::V10,
    }
}

/// A fresh admin password: 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    // 56 symbols: the modulo bias is small and the length makes up for it.
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// How an apply of one device ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// `changed`, `unchanged`, `failed`, `partial`.
    pub status: &'static str,
    /// The failed step, if any.
    pub step: String,
    pub results: Vec<SettingResult>,
    /// A rotated admin password (to seal on the task row).
    pub new_password: Option<String>,
}

pub struct Provisioner {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    transport: Transport,
    clock: SharedClock,
    pub progress: ProgressHub,
    /// Devices worked on at once within a task.
    pub concurrency: usize,
}

impl Provisioner {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        transport: Transport,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            secrets,
            transport,
            clock,
            progress: ProgressHub::default(),
            concurrency: 8,
        }
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    /// Seal a user password for a profile.
    pub fn seal_password(&self, password: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.secrets.seal_str(password))
    }

    pub async fn profiles(&self) -> Result<Vec<provision_profile::Model>> {
        Ok(provision_profile::Entity::find()
            .order_by_asc(provision_profile::Column::Name)
            .all(&self.db)
            .await?)
    }

    pub async fn profile_by_name(&self, name: &str) -> Result<provision_profile::Model> {
        provision_profile::Entity::find()
            .filter(provision_profile::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no profile {name:?}")))
    }

    pub async fn profile(&self, id: i32) -> Result<provision_profile::Model> {
        provision_profile::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no profile {id}")))
    }

    pub fn spec_of(p: &provision_profile::Model) -> Result<ProfileSpec> {
        serde_json::from_value(p.spec.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("profile {:?} is unreadable: {e}", p.name),
            )
        })
    }

    /// Create or replace a profile by name (audited).
    pub async fn save_profile(
        &self,
        id: Option<i32>,
        name: &str,
        spec: &ProfileSpec,
        actor: &Actor,
    ) -> Result<provision_profile::Model> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "name: required, at most 100 characters",
            ));
        }
        let now = self.clock.now_utc();
        let clash = provision_profile::Entity::find()
            .filter(provision_profile::Column::Name.eq(name))
            .one(&self.db)
            .await?;
        if let Some(c) = &clash
            && Some(c.id) != id
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("a profile named {name:?} exists"),
            ));
        }
        let spec_json = serde_json::to_value(spec).unwrap_or(json!({}));
        let (m, before) = match id {
            Some(id) => {
                let old = self.profile(id).await?;
                let before = old.spec.clone();
                let mut am = old.into_active_model();
                am.name = Set(name.into());
                am.spec = Set(spec_json);
                am.updated_at = Set(now);
                (am.update(&self.db).await?, Some(before))
            }
            None => (
                provision_profile::ActiveModel {
                    name: Set(name.into()),
                    spec: Set(spec_json),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&self.db)
                .await?,
                None,
            ),
        };
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: if before.is_some() {
                    "profile.update"
                } else {
                    "profile.create"
                },
                target_kind: "profile",
                target_id: m.id.to_string(),
                before: before.map(redact),
                after: Some(redact(m.spec.clone())),
            },
        )
        .await?;
        Ok(m)
    }

    /// Devices with their site name and opened credentials.
    pub async fn targets(&self, ids: &[i32]) -> Result<Vec<Target>> {
        let devices = device::Entity::find()
            .filter(device::Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(device::Column::Id)
            .all(&self.db)
            .await?;
        let sites: std::collections::HashMap<i32, String> = site::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        let creds: std::collections::HashMap<i32, credential::Model> = credential::Entity::find()
            .filter(credential::Column::Id.is_in(devices.iter().filter_map(|d| d.credential_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        Ok(devices
            .into_iter()
            .map(|d| Target {
                site: d
                    .site_id
                    .and_then(|s| sites.get(&s).cloned())
                    .unwrap_or_default(),
                creds: d
                    .credential_id
                    .and_then(|c| creds.get(&c))
                    .and_then(|c| open_credentials(&self.secrets, c)),
                device: d,
            })
            .collect())
    }

    /// Dry run over these devices (bounded concurrency).
    pub async fn plan(&self, spec: &ProfileSpec, ids: &[i32]) -> Result<Vec<DevicePlan>> {
        use futures::StreamExt;
        let targets = self.targets(ids).await?;
        let plans = futures::stream::iter(targets.into_iter().map(|t| self.plan_one(t, spec)))
            .buffered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(plans)
    }

    async fn plan_one(&self, t: Target, spec: &ProfileSpec) -> DevicePlan {
        match Provisioning::new(&t, spec, &self.secrets, &self.clock, &self.transport) {
            Ok(p) => p.plan().await,
            Err(e) => DevicePlan {
                device_id: t.device.id,
                name: t.device.name.clone(),
                settings: Vec::new(),
                error: Some(e),
            },
        }
    }

    /// Apply to one device: the plan's changes in order, each verified.
    pub async fn apply_one(
        &self,
        t: &Target,
        spec: &ProfileSpec,
        on_step: &(dyn Fn(&str) + Sync),
    ) -> Applied {
        let p = match Provisioning::new(t, spec, &self.secrets, &self.clock, &self.transport) {
            Ok(p) => p,
            Err(e) => {
                return Applied {
                    status: "failed",
                    step: "connect".into(),
                    results: vec![SettingResult {
                        key: "connect".into(),
                        before: String::new(),
                        after: String::new(),
                        result: "failed".into(),
                        message: e,
                    }],
                    new_password: None,
                };
            }
        };
        let plan = p.plan().await;
        if let Some(e) = plan.error {
            return Applied {
                status: "failed",
                step: "connect".into(),
                results: vec![SettingResult {
                    key: "connect".into(),
                    before: String::new(),
                    after: String::new(),
                    result: "failed".into(),
                    message: e,
                }],
                new_password: None,
            };
        }
        let mut results = Vec::new();
        let mut changed = false;
        let mut failed_at: Option<String> = None;
        let mut new_password = None;
        for s in &plan.settings {
            if failed_at.is_some() {
                results.push(SettingResult {
                    key: s.key.clone(),
                    before: s.current.clone(),
                    after: String::new(),
                    result: "not_run".into(),
                    message: String::new(),
                });
                continue;
            }
            on_step(&s.key);
            let (result, after, message) = match &s.action {
                Action::Same => ("already", s.current.clone(), String::new()),
                Action::Cannot(why) => ("cannot", s.current.clone(), why.clone()),
                Action::Change if s.key == "admin_password" => {
                    match self.rotate_admin_password(&p).await {
                        Ok(pw) => {
                            new_password = Some(pw);
                            ("changed", "rotated".into(), String::new())
                        }
                        Err((msg, stored_new)) => {
                            if let Some(pw) = stored_new {
                                new_password = Some(pw);
                                changed = true;
                            }
                            ("failed", String::new(), msg)
                        }
                    }
                }
                Action::Change => match p.write(&s.key).await {
                    Err(msg) => ("failed", String::new(), msg),
                    Ok(note) => {
                        // Verify: read it back.
                        let (_, now, again) = p.read(&s.key).await;
                        match again {
                            Action::Same => ("changed", now, note),
                            _ => (
                                "failed",
                                now.clone(),
                                format!(
                                    "did not stick: the camera accepted it but reads back {now:?}"
                                ),
                            ),
                        }
                    }
                },
            };
            if result == "changed" {
                changed = true;
            }
            if result == "failed" {
                failed_at = Some(s.key.clone());
            }
            results.push(SettingResult {
                key: s.key.clone(),
                before: s.current.clone(),
                after,
                result: result.into(),
                message,
            });
        }
        let status = match (&failed_at, changed) {
            (Some(_), true) => "partial",
            (Some(_), false) => "failed",
            (None, true) => "changed",
            (None, false) => "unchanged",
        };
        Applied {
            status,
            step: failed_at.unwrap_or_default(),
            results,
            new_password,
        }
    }

    /// SetUser on camfleet's own account with a generated password. Ok:
    /// the new one works and the old one is refused. Err carries the new
    /// password when it works (and is stored) although the step failed.
    async fn rotate_admin_password(
        &self,
        p: &Provisioning<'_>,
    ) -> std::result::Result<String, (String, Option<String>)> {
        let t = p.target;
        let Some(old) = t.creds.clone() else {
            return Err(("camfleet has no credentials for this camera".into(), None));
        };
        let users = dev::get_users(&p.session)
            .await
            .map_err(|e| (format!("reading users: {e}"), None))?;
        let level = users
            .iter()
            .find(|u| u.username == old.username)
            .map(|u| u.level.clone())
            .unwrap_or_else(|| "Administrator".into());
        let new = generate_password();
        cfg::set_user(
            &p.session,
            &UserWrite {
                username: old.username.clone(),
                password: new.clone(),
                level,
            },
        )
        .await
        .map_err(|e| (format!("SetUser: {e}"), None))?;
        let new_works = p.login_works(&old.username, &new).await;
        if new_works == Some(true) {
            // Store at once: from here on only the new password may work.
            if let Err(e) = self.store_password(&t.device, &old.username, &new).await {
                return Err((
                    format!("the camera took the new password but storing it failed: {e}"),
                    None,
                ));
            }
            return match p.login_works(&old.username, &old.password).await {
                Some(false) => Ok(new),
                Some(true) => Err((
                    "the camera accepts the new password but the old one still works".into(),
                    Some(new),
                )),
                None => Err((
                    "could not confirm the old password is refused".into(),
                    Some(new),
                )),
            };
        }
        match p.login_works(&old.username, &old.password).await {
            Some(true) => Err(("the camera kept the old password (nothing changed)".into(), None)),
            _ => Err((
                "neither the new nor the old password works now; the stored credential is unchanged"
                    .into(),
                None,
            )),
        }
    }

    async fn store_password(&self, d: &device::Model, user: &str, password: &str) -> Result<()> {
        let now = self.clock.now_utc();
        let c = credential::ActiveModel {
            username: Set(user.into()),
            sealed: Set(self.secrets.seal_str(password)),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        let old = d.credential_id;
        device::Entity::update_many()
            .col_expr(
                device::Column::CredentialId,
                sea_orm::sea_query::Expr::value(c.id),
            )
            .filter(device::Column::Id.eq(d.id))
            .exec(&self.db)
            .await?;
        if let Some(o) = old {
            credential::Entity::delete_by_id(o).exec(&self.db).await?;
        }
        Ok(())
    }

    /// Create a task for these devices (rows only; `run` does the work).
    pub async fn create_task(&self, profile_id: i32, ids: &[i32], actor: &Actor) -> Result<i32> {
        let now = self.clock.now_utc();
        let profile = self.profile(profile_id).await?;
        let task = provision_task::ActiveModel {
            profile_id: Set(profile_id),
            status: Set("running".into()),
            created_by: Set(actor.name.clone()),
            created_at: Set(now),
            summary: Set(String::new()),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        for id in ids {
            provision_item::ActiveModel {
                task_id: Set(task.id),
                device_id: Set(*id),
                status: Set("pending".into()),
                step: Set(String::new()),
                detail: Set(json!([])),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
        }
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "provision.apply",
                target_kind: "profile",
                target_id: profile_id.to_string(),
                before: None,
                after: Some(json!({"task": task.id, "profile": profile.name, "devices": ids})),
            },
        )
        .await?;
        // Registered now, so a page that follows the task sees it queued
        // rather than finished.
        self.progress.begin(
            task.id,
            Progress {
                phase: "queued".into(),
                total: ids.len() as u64,
                ..Default::default()
            },
        );
        Ok(task.id)
    }

    /// Work a task's pending devices, `concurrency` at a time.
    pub async fn run(self: &Arc<Self>, task_id: i32) -> Result<()> {
        use futures::StreamExt;
        let task = provision_task::Entity::find_by_id(task_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no task {task_id}")))?;
        let spec = Self::spec_of(&self.profile(task.profile_id).await?)?;
        let items = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .filter(provision_item::Column::Status.eq("pending"))
            .all(&self.db)
            .await?;
        let total = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .all(&self.db)
            .await?
            .len();
        let reporter = self.progress.begin(
            task_id,
            Progress {
                phase: "applying".into(),
                total: total as u64,
                done: (total - items.len()) as u64,
                ..Default::default()
            },
        );
        let ids: Vec<i32> = items.iter().map(|i| i.device_id).collect();
        let targets = self.targets(&ids).await?;
        let results = futures::stream::iter(items.into_iter().map(|item| {
            let t = targets
                .iter()
                .find(|t| t.device.id == item.device_id)
                .cloned();
            let spec = &spec;
            let reporter = reporter.clone();
            async move {
                self.run_item(item, t, spec, task.profile_id, &reporter)
                    .await
            }
        }))
        .buffer_unordered(self.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        for r in results {
            r?;
        }
        self.finish_task(task_id, &reporter).await
    }

    async fn run_item(
        &self,
        item: provision_item::Model,
        target: Option<Target>,
        spec: &ProfileSpec,
        profile_id: i32,
        reporter: &Reporter,
    ) -> Result<()> {
        let now = self.clock.now_utc();
        let mut am = item.clone().into_active_model();
        am.status = Set("running".into());
        am.updated_at = Set(now);
        am.update(&self.db).await?;
        let applied = match &target {
            Some(t) => {
                let name = t.device.name.clone();
                let step = |s: &str| {
                    reporter.update(|p| p.message = format!("{name}: {s}"));
                };
                self.apply_one(t, spec, &step).await
            }
            None => Applied {
                status: "failed",
                step: "load".into(),
                results: vec![],
                new_password: None,
            },
        };
        let mut am = item.into_active_model();
        am.status = Set(applied.status.into());
        am.step = Set(applied.step.clone());
        am.detail = Set(serde_json::to_value(&applied.results).unwrap_or(json!([])));
        am.secret = Set(applied
            .new_password
            .as_deref()
            .map(|p| self.secrets.seal_str(p)));
        am.updated_at = Set(self.clock.now_utc());
        am.update(&self.db).await?;
        if let Some(t) = &target
            && applied.status != "failed"
        {
            device::Entity::update_many()
                .col_expr(
                    device::Column::ProfileId,
                    sea_orm::sea_query::Expr::value(profile_id),
                )
                .col_expr(
                    device::Column::ConfigDrift,
                    sea_orm::sea_query::Expr::value(if applied.status == "partial" {
                        format!("partly applied; failed at {}", applied.step)
                    } else {
                        String::new()
                    }),
                )
                .filter(device::Column::Id.eq(t.device.id))
                .exec(&self.db)
                .await?;
            // Encoder changes show in the stored profiles at the next re-adoption;
            // keep the copy in step now.
            if applied
                .results
                .iter()
                .any(|r| r.key.starts_with("encoder:") && r.result == "changed")
            {
                self.refresh_profiles(t).await;
            }
        }
        reporter.update(|p| {
            p.done += 1;
            if applied.status == "failed" || applied.status == "partial" {
                p.found += 1; // failures, shown as such
            }
        });
        Ok(())
    }

    async fn refresh_profiles(&self, t: &Target) {
        let Ok(d) = self.session_of(t) else {
            return;
        };
        let media = media_of(&t.device);
        if let Ok(profiles) = crate::onvif::media::get_profiles(&d, media).await {
            for p in profiles {
                if let Some(e) = p.encoder {
                    let _ = device_profile::Entity::update_many()
                        .col_expr(
                            device_profile::Column::Width,
                            sea_orm::sea_query::Expr::value(e.width.map(|v| v as i32)),
                        )
                        .col_expr(
                            device_profile::Column::Height,
                            sea_orm::sea_query::Expr::value(e.height.map(|v| v as i32)),
                        )
                        .col_expr(
                            device_profile::Column::FrameRate,
                            sea_orm::sea_query::Expr::value(e.frame_rate_limit.map(f64::from)),
                        )
                        .col_expr(
                            device_profile::Column::BitrateKbps,
                            sea_orm::sea_query::Expr::value(e.bitrate_limit_kbps.map(|v| v as i32)),
                        )
                        .filter(device_profile::Column::DeviceId.eq(t.device.id))
                        .filter(device_profile::Column::Token.eq(p.token))
                        .exec(&self.db)
                        .await;
                }
            }
        }
    }

    async fn finish_task(&self, task_id: i32, reporter: &Reporter) -> Result<()> {
        let items = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .all(&self.db)
            .await?;
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for i in &items {
            *counts.entry(i.status.clone()).or_default() += 1;
        }
        let summary = counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(t) = provision_task::Entity::find_by_id(task_id)
            .one(&self.db)
            .await?
        {
            let mut am = t.into_active_model();
            am.status = Set("done".into());
            am.finished_at = Set(Some(self.clock.now_utc()));
            am.summary = Set(summary.clone());
            am.update(&self.db).await?;
        }
        reporter.finish("done", summary);
        Ok(())
    }

    /// After a restart: whatever was running is interrupted.
    pub async fn recover(&self) -> Result<usize> {
        let running = provision_task::Entity::find()
            .filter(provision_task::Column::Status.eq("running"))
            .all(&self.db)
            .await?;
        let n = running.len();
        for t in running {
            provision_item::Entity::update_many()
                .col_expr(
                    provision_item::Column::Status,
                    sea_orm::sea_query::Expr::value("interrupted"),
                )
                .filter(provision_item::Column::TaskId.eq(t.id))
                .filter(provision_item::Column::Status.is_in(["pending", "running"]))
                .exec(&self.db)
                .await?;
            let mut am = t.into_active_model();
            am.status = Set("interrupted".into());
            am.update(&self.db).await?;
        }
        Ok(n)
    }

    /// Make an interrupted task's unfinished devices pending again.
    pub async fn resume(&self, task_id: i32, actor: &Actor) -> Result<()> {
        let t = provision_task::Entity::find_by_id(task_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no task {task_id}")))?;
        if t.status != "interrupted" {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("task {task_id} is {}, not interrupted", t.status),
            ));
        }
        provision_item::Entity::update_many()
            .col_expr(
                provision_item::Column::Status,
                sea_orm::sea_query::Expr::value("pending"),
            )
            .filter(provision_item::Column::TaskId.eq(task_id))
            .filter(provision_item::Column::Status.eq("interrupted"))
            .exec(&self.db)
            .await?;
        let now = self.clock.now_utc();
        let mut am = t.into_active_model();
        am.status = Set("running".into());
        am.update(&self.db).await?;
        self.progress.begin(
            task_id,
            Progress {
                phase: "queued".into(),
                ..Default::default()
            },
        );
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "provision.resume",
                target_kind: "task",
                target_id: task_id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Reveal a rotated password once; later calls get None.
    pub async fn reveal_password(&self, item_id: i32, actor: &Actor) -> Result<Option<String>> {
        let Some(item) = provision_item::Entity::find_by_id(item_id)
            .one(&self.db)
            .await?
        else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no item {item_id}"),
            ));
        };
        let Some(sealed) = item.secret.clone() else {
            return Ok(None);
        };
        let pw = self
            .secrets
            .open_string(&sealed)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("sealed password: {e}")))?;
        let device_id = item.device_id;
        let mut am = item.into_active_model();
        am.secret = Set(None);
        am.update(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "provision.password_shown",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        Ok(Some(pw))
    }

    /// Drift: plan each device against the profile it follows; store what
    /// differs. Returns the devices whose drift appeared (device id, what
    /// differs) and those back in line.
    pub async fn check_drift(&self, ids: Option<&[i32]>) -> Result<(Vec<(i32, String)>, Vec<i32>)> {
        let mut q = device::Entity::find().filter(device::Column::ProfileId.is_not_null());
        if let Some(ids) = ids {
            q = q.filter(device::Column::Id.is_in(ids.iter().copied()));
        }
        let devices = q.all(&self.db).await?;
        let mut newly = Vec::new();
        let mut cleared = Vec::new();
        let mut by_profile: std::collections::BTreeMap<i32, Vec<device::Model>> =
            Default::default();
        for d in devices {
            if let Some(p) = d.profile_id {
                by_profile.entry(p).or_default().push(d);
            }
        }
        for (pid, devs) in by_profile {
            let Ok(profile) = self.profile(pid).await else {
                continue;
            };
            let mut spec = Self::spec_of(&profile)?;
            // Rotation is an action, not a state to compare.
            spec.rotate_admin_password = false;
            let ids: Vec<i32> = devs.iter().map(|d| d.id).collect();
            for plan in self.plan(&spec, &ids).await? {
                let drift = match &plan.error {
                    Some(e) => format!("could not check: {e}"),
                    None => plan
                        .settings
                        .iter()
                        .filter(|s| s.action == Action::Change)
                        .map(|s| format!("{}: {} (want {})", s.key, s.current, s.desired))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                let before = devs
                    .iter()
                    .find(|d| d.id == plan.device_id)
                    .map(|d| d.config_drift.clone())
                    .unwrap_or_default();
                if before.is_empty() && !drift.is_empty() && plan.error.is_none() {
                    newly.push((plan.device_id, drift.clone()));
                }
                if !before.is_empty() && drift.is_empty() {
                    cleared.push(plan.device_id);
                }
                device::Entity::update_many()
                    .col_expr(
                        device::Column::ConfigDrift,
                        sea_orm::sea_query::Expr::value(drift),
                    )
                    .col_expr(
                        device::Column::DriftCheckedAt,
                        sea_orm::sea_query::Expr::value(self.clock.now_utc()),
                    )
                    .filter(device::Column::Id.eq(plan.device_id))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok((newly, cleared))
    }
}

/// Alert notices for a drift check's findings.
pub fn drift_notices(newly: &[(i32, String)], cleared: &[i32]) -> Vec<super::poller::Notice> {
    use super::health::HealthEvent;
    use super::poller::Notice;
    newly
        .iter()
        .map(|(id, what)| Notice::Event {
            device_id: *id,
            event: HealthEvent::ConfigDrift {
                summary: what.chars().take(500).collect(),
                drifted: true,
            },
        })
        .chain(cleared.iter().map(|id| Notice::Event {
            device_id: *id,
            event: HealthEvent::ConfigDrift {
                summary: "configuration matches its profile again".into(),
                drifted: false,
            },
        }))
        .collect()
}

impl Provisioner {
    fn session_of(&self, t: &Target) -> Result<DeviceSession> {
        device_session(
            &t.device.device_url,
            &t.device.policy,
            t.device.auth_mode.as_deref(),
            t.creds.clone(),
            &self.transport,
            &self.clock,
        )
        .map_err(|(_, e)| Error::new(ErrorKind::InvalidArgument, e))
    }

    async fn target(&self, device_id: i32) -> Result<Target> {
        self.targets(&[device_id])
            .await?
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no device {device_id}")))
    }

    /// Put a drifting camera clock right: NTP when the camera has NTP
    /// servers (or takes them from DHCP), else camfleet's clock.
    pub async fn sync_time(&self, device_id: i32) -> Result<String> {
        let t = self.target(device_id).await?;
        let s = self.session_of(&t)?;
        let unavailable = |e: OnvifError| Error::new(ErrorKind::Unavailable, e.to_string());
        let ntp = dev::get_ntp(&s).await.ok();
        let use_ntp = ntp
            .as_ref()
            .is_some_and(|n| n.from_dhcp || !n.servers.is_empty());
        let utc = (!use_ntp).then(|| self.clock.now_utc());
        cfg::set_system_date_and_time(&s, use_ntp, None, utc)
            .await
            .map_err(unavailable)?;
        Ok(if use_ntp {
            "switched to NTP".into()
        } else {
            "set to camfleet's clock (the camera has no NTP server)".into()
        })
    }

    /// A snapshot of a camera's settings for the configuration backup.
    /// Unreadable parts are recorded as errors, not fatal; a camera that
    /// cannot be read at all is.
    pub async fn settings_snapshot(&self, device_id: i32) -> Result<serde_json::Value> {
        let t = self.target(device_id).await?;
        let s = self.session_of(&t)?;
        let info = dev::get_device_information(&s)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
        let _ = crate::onvif::adopt::discover_services(&s).await;
        fn part<T: Serialize>(r: std::result::Result<T, OnvifError>) -> serde_json::Value {
            match r {
                Ok(v) => serde_json::to_value(v).unwrap_or(json!(null)),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        let media = media_of(&t.device);
        Ok(json!({
            "device_id": device_id,
            "taken_at": self.clock.now_utc(),
            "information": info,
            "time": part(s.sync_clock().await),
            "hostname": part(dev::get_hostname(&s).await),
            "ntp": part(dev::get_ntp(&s).await),
            "dns": part(dev::get_dns(&s).await),
            "network_interfaces": part(dev::get_network_interfaces(&s).await),
            "users": part(dev::get_users(&s).await),
            "scopes": part(dev::get_scopes(&s).await),
            "discoverable": part(cfg::get_discovery_mode(&s).await),
            "profiles": part(crate::onvif::media::get_profiles(&s, media).await),
        }))
    }

    /// SystemReboot (audited).
    pub async fn reboot(&self, device_id: i32, actor: &Actor) -> Result<String> {
        let s = self.session_of(&self.target(device_id).await?)?;
        let msg = cfg::system_reboot(&s)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.reboot",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: None,
                after: Some(json!({"message": msg})),
            },
        )
        .await?;
        Ok(msg)
    }

    /// Change a camera's IPv4 configuration (DHCP, or a static address),
    /// reboot it when it asks to, then check that it answers at its new
    /// address within `wait`. Only then is the stored address changed; the
    /// outcome says what happened either way (and is audited).
    pub async fn change_network(
        &self,
        device_id: i32,
        dhcp: bool,
        address: Option<(std::net::Ipv4Addr, u8)>,
        wait: std::time::Duration,
        actor: &Actor,
    ) -> Result<String> {
        let t = self.target(device_id).await?;
        let d = &t.device;
        // A session to the device at another address (the new one).
        let session = |url: &str| {
            let mut at = t.clone();
            at.device.device_url = url.to_string();
            self.session_of(&at)
        };
        let s = session(&d.device_url)?;
        let unavailable = |e: OnvifError| Error::new(ErrorKind::Unavailable, e.to_string());
        let ifaces = dev::get_network_interfaces(&s).await.map_err(unavailable)?;
        let iface = ifaces
            .iter()
            .find(|i| i.enabled)
            .or(ifaces.first())
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "the camera lists no interface"))?;
        let before =
            json!({"device_url": d.device_url, "ipv4": iface.ipv4, "dhcp": iface.ipv4_dhcp});
        let reboot = cfg::set_ipv4(&s, &iface.token, dhcp, address)
            .await
            .map_err(unavailable)?;
        if reboot {
            cfg::system_reboot(&s).await.map_err(unavailable)?;
        }
        // Where it should answer now.
        let mut new_url = url::Url::parse(&d.device_url)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, e.to_string()))?;
        if let (false, Some((a, _))) = (dhcp, address) {
            let _ = new_url.set_host(Some(&a.to_string()));
        }
        let started = std::time::Instant::now();
        let mut reachable = false;
        while started.elapsed() < wait {
            let probe = session(new_url.as_str())?;
            let r =
                tokio::time::timeout(std::time::Duration::from_secs(3), probe.sync_clock()).await;
            if matches!(r, Ok(Ok(_))) {
                reachable = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1).min(wait)).await;
        }
        let outcome = if reachable {
            if new_url.as_str() != d.device_url {
                device::Entity::update_many()
                    .col_expr(
                        device::Column::DeviceUrl,
                        sea_orm::sea_query::Expr::value(new_url.to_string()),
                    )
                    .filter(device::Column::Id.eq(device_id))
                    .exec(&self.db)
                    .await?;
            }
            format!("the camera answers at {new_url}")
        } else if dhcp {
            format!(
                "the camera did not answer at {} within {} s after switching to DHCP; it may have a new address: run a discovery",
                d.device_url,
                wait.as_secs()
            )
        } else {
            format!(
                "the camera did not answer at {new_url} within {} s; the stored address is unchanged",
                wait.as_secs()
            )
        };
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.network",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: Some(before),
                after: Some(json!({"dhcp": dhcp, "address": address.map(|(a, p)| format!("{a}/{p}")), "reachable": reachable, "outcome": outcome})),
            },
        )
        .await?;
        if reachable {
            Ok(outcome)
        } else {
            Err(Error::new(ErrorKind::Unavailable, outcome))
        }
    }
}

/// Profile JSON for the audit log: sealed passwords left out.
fn redact(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(users) = v.get_mut("users").and_then(|u| u.as_array_mut()) {
        for u in users {
            if let Some(o) = u.as_object_mut() {
                o.insert("password_sealed".into(), json!("(sealed)"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> device::Model {
        device::Model {
            id: 7,
            endpoint_uuid: None,
            mac: Some("02:cf:00:00:00:07".into()),
            serial: Some("SN 007".into()),
            manufacturer: "Acme".into(),
            model: "AO-IPC/B2".into(),
            firmware: String::new(),
            hardware_id: String::new(),
            hostname: String::new(),
            name: "Gate".into(),
            device_url: String::new(),
            xaddrs: json!([]),
            status: String::new(),
            last_seen: None,
            auth_mode: None,
            clock_offset_ms: None,
            quirks: json!([]),
            policy: json!({}),
            media_version: None,
            site_id: None,
            credential_id: None,
            location: String::new(),
            purchase_order: String::new(),
            purchase_date: None,
            supplier: String::new(),
            cost_cents: None,
            warranty_end: None,
            end_of_life: None,
            asset_tag: String::new(),
            notes: String::new(),
            adopted_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            search_text: String::new(),
            state_reason: String::new(),
            state_since: None,
            poll_failures: 0,
            poll_successes: 0,
            latency_ms: None,
            drift_ms: None,
            last_poll_at: None,
            last_info_at: None,
            poll_interval_s: None,
            events_url: None,
            events_status: String::new(),
            profile_id: None,
            config_drift: String::new(),
            drift_checked_at: None,
            record_profile: None,
            recording_status: String::new(),
        }
    }

    #[test]
    fn patterns_render_to_valid_hostnames() {
        let d = dev();
        assert_eq!(
            render("{site}-{model}-{serial}", &d, "North Gate", true),
            "north-gate-ao-ipc-b2-sn-007"
        );
        assert_eq!(render("cam-{mac}", &d, "", true), "cam-02cf00000007");
        assert_eq!(
            render("{name} at {site}", &d, "North", false),
            "Gate at North"
        );
        assert_eq!(render("--{site}--", &d, "", true), "");
        assert_eq!(render(&"x".repeat(80), &d, "", true).len(), 63);
    }

    #[test]
    fn steps_run_in_a_fixed_order_with_passwords_last() {
        let mut k = vec![
            "admin_password",
            "user:op",
            "encoder:sub",
            "ntp",
            "time",
            "scopes",
        ];
        k.sort_by_key(|x| order_of(x));
        assert_eq!(
            k,
            [
                "time",
                "ntp",
                "scopes",
                "encoder:sub",
                "user:op",
                "admin_password"
            ]
        );
    }

    #[test]
    fn generated_passwords_are_long_and_different() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, generate_password());
    }
}
