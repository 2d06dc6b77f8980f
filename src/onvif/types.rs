//! Typed values read from devices. Every field a camera may omit or garble is
//! optional; parsers fill what they can and keep the rest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ops::Service;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInformation {
    pub manufacturer: String,
    pub model: String,
    pub firmware_version: String,
    pub serial_number: String,
    pub hardware_id: String,
}

/// How a device authenticates SOAP calls, as detected (or configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// The device accepts calls without credentials.
    None,
    WsSecurity,
    HttpDigest,
    /// HTTP Digest on the transport *and* a UsernameToken in the envelope.
    Both,
}

impl AuthMode {
    pub fn uses_wsse(self) -> bool {
        matches!(self, AuthMode::WsSecurity | AuthMode::Both)
    }
    pub fn uses_digest(self) -> bool {
        matches!(self, AuthMode::HttpDigest | AuthMode::Both)
    }
    pub fn parse(s: &str) -> Option<AuthMode> {
        [
            AuthMode::None,
            AuthMode::WsSecurity,
            AuthMode::HttpDigest,
            AuthMode::Both,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::WsSecurity => "ws_security",
            AuthMode::HttpDigest => "http_digest",
            AuthMode::Both => "ws_security+http_digest",
        }
    }
}

/// A behaviour seen on a device that differs from the specification or the
/// common case. Stored with the device and shown on its page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "quirk", rename_all = "snake_case")]
pub enum Quirk {
    /// Answers in SOAP 1.1 although asked in 1.2.
    Soap11Answers,
    /// Returns faults with this HTTP status (the spec says 400/500).
    FaultStatus { status: u16 },
    /// GetSystemDateAndTime refused without credentials.
    DateTimeNeedsAuth,
    /// The clock could only be read after authenticating; the first anchor
    /// came from the HTTP `Date` header.
    ClockFromHttpDate,
    /// GetSystemDateAndTime had no usable UTCDateTime; derived from local time + TZ.
    UtcFromLocalTime,
    /// Camera clock differs from ours by more than 5 s.
    ClockSkew { offset_ms: i64 },
    /// An address the device reports about itself was rewritten.
    AddressRewritten { field: String, reported: String },
    /// GetServices is missing; GetCapabilities was used instead.
    NoGetServices,
    /// The first XAddr(s) from discovery did not answer; a later one did.
    XAddrFallback { used: String },
    /// Answers had to be read past broken XML.
    MalformedXmlTolerated,
    /// Event subscriptions mishandle relative (`PT600S`) termination
    /// times; absolute times are sent instead.
    BrokenRelativeTime,
}

/// One advertised service endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub namespace: String,
    /// Which of our known services this is, if any.
    pub service: Option<Service>,
    pub xaddr: String,
    pub version: Option<(u32, u32)>,
    /// Capability attributes (`name=value`) when the device returned them.
    pub capabilities: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes {
    pub raw: Vec<String>,
    pub name: Option<String>,
    pub hardware: Option<String>,
    pub location: Option<String>,
    pub mac: Option<String>,
    pub types: Vec<String>,
    pub profiles: Vec<String>,
}

impl Scopes {
    /// Decode ONVIF scope URIs (`onvif://www.onvif.org/name/Front%20Door`).
    pub fn from_uris<I: IntoIterator<Item = String>>(uris: I) -> Scopes {
        let mut s = Scopes::default();
        for raw in uris {
            let lower = raw.to_ascii_lowercase();
            let Some(rest) = lower
                .strip_prefix("onvif://www.onvif.org/")
                .map(|_| &raw["onvif://www.onvif.org/".len()..])
            else {
                s.raw.push(raw);
                continue;
            };
            let (kind, value) = rest.split_once('/').unwrap_or((rest, ""));
            let value = percent_decode(value);
            match kind.to_ascii_lowercase().as_str() {
                "name" => s.name = Some(value),
                "hardware" => s.hardware = Some(value),
                "location" => {
                    s.location = Some(match s.location.take() {
                        Some(prev) => format!("{prev}/{value}"),
                        None => value,
                    })
                }
                "mac" => s.mac = Some(value),
                "type" => s.types.push(value),
                "profile" => s.profiles.push(value),
                _ => {}
            }
            s.raw.push(raw);
        }
        s
    }
}

/// `%XX` escapes decoded (scope values, MTOM `cid:` references). Works
/// on bytes, so a `%` before a multi-byte character (`%a\u{e9}`) is kept
/// as text instead of slicing inside the character; invalid UTF-8 in the
/// result is replaced, never trusted.
pub(crate) fn percent_decode(s: &str) -> String {
    fn hex(b: Option<&u8>) -> Option<u8> {
        b.and_then(|b| (*b as char).to_digit(16)).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hostname {
    pub name: Option<String>,
    pub from_dhcp: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub token: String,
    pub enabled: bool,
    pub name: Option<String>,
    /// Normalised `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    pub ipv4: Vec<String>,
    pub ipv4_dhcp: bool,
}

/// An NTP or DNS server as ONVIF's NetworkHost/IPAddress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum NetworkHost {
    Ipv4(String),
    Ipv6(String),
    Dns(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NtpInfo {
    pub from_dhcp: bool,
    pub servers: Vec<NetworkHost>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsInfo {
    pub from_dhcp: bool,
    pub search_domains: Vec<String>,
    pub servers: Vec<NetworkHost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoEncoder {
    pub token: String,
    pub name: String,
    pub encoding: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate_limit: Option<f32>,
    pub bitrate_limit_kbps: Option<u32>,
    pub gov_length: Option<u32>,
    pub quality: Option<f32>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaProfile {
    pub token: String,
    pub name: String,
    pub fixed: bool,
    pub video_source_token: Option<String>,
    pub encoder: Option<VideoEncoder>,
    pub stream_uri: Option<String>,
    pub snapshot_uri: Option<String>,
}

/// A reading of the camera's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraTime {
    pub utc: DateTime<Utc>,
    /// `true` when the device synchronises by NTP (DateTimeType=NTP).
    pub ntp: bool,
    pub tz: Option<String>,
    /// UTC was derived from LocalDateTime + TZ.
    pub derived_from_local: bool,
}
