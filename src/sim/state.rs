//! One simulated camera's state and its SOAP operations. State lives behind
//! a mutex so writes (provisioning) can be read back; reads render from it.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::quirks::Quirks;
use crate::onvif::ns;
use crate::xml::{Element, escape};

#[derive(Debug, Clone)]
pub struct SimUser {
    pub username: String,
    pub password: String,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct SimEncoder {
    pub token: String,
    pub encoding: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gov: u32,
    pub profile: String,
}

#[derive(Debug, Clone)]
pub struct SimProfile {
    pub token: String,
    pub name: String,
    pub encoder: SimEncoder,
}

#[derive(Debug, Clone)]
pub struct CameraState {
    pub index: u32,
    pub endpoint: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    pub hardware_id: String,
    pub mac: String,
    pub hostname: String,
    pub hostname_from_dhcp: bool,
    pub ntp_servers: Vec<String>,
    pub ntp_from_dhcp: bool,
    pub dns_servers: Vec<String>,
    pub search_domains: Vec<String>,
    pub users: Vec<SimUser>,
    pub name_scope: String,
    pub location_scope: String,
    pub profiles: Vec<SimProfile>,
    /// WS-Discovery answers (SetDiscoveryMode).
    pub discoverable: bool,
    /// DateTimeType NTP (true) or Manual.
    pub time_ntp: bool,
    pub tz: String,
    /// Added to the camera clock by SetSystemDateAndTime (seconds).
    pub clock_offset_s: i64,
    /// Passwords that still work after a change (a failure mode).
    pub legacy_passwords: Vec<(String, String)>,
    /// IPv4 as configured by SetNetworkInterfaces (None: the address the
    /// camera listens on). The simulator keeps listening where it is.
    pub ipv4: Option<(String, u8)>,
    pub ipv4_dhcp: bool,
}

impl CameraState {
    pub fn new(index: u32, seed: u64, username: &str, password: &str) -> Self {
        const MODELS: [(&str, &str); 4] = [
            ("Simvision", "SV-2CD2143"),
            ("Acme Optics", "AO-IPC-B2"),
            ("Northcam", "NC-P1455"),
            ("Simvision", "SV-DS-2DE"),
        ];
        let (manufacturer, model) = MODELS[(index as usize + seed as usize) % MODELS.len()];
        let main = SimEncoder {
            token: "VideoEncoder_1".into(),
            encoding: "H264".into(),
            width: 1920,
            height: 1080,
            fps: 25,
            bitrate_kbps: 4096,
            gov: 50,
            profile: "Main".into(),
        };
        let sub = SimEncoder {
            token: "VideoEncoder_2".into(),
            encoding: "H264".into(),
            width: 640,
            height: 360,
            fps: 15,
            bitrate_kbps: 512,
            gov: 30,
            profile: "Baseline".into(),
        };
        Self {
            index,
            endpoint: format!("urn:uuid:{}", sim_uuid(seed, index)),
            manufacturer: manufacturer.into(),
            model: model.into(),
            firmware: format!("V5.{}.{}", 4 + index % 3, index % 10),
            serial: format!("SIM{seed:04}{index:07}"),
            hardware_id: format!("HW-{}", 100 + index % 7),
            mac: format!(
                "02:cf:{:02x}:{:02x}:{:02x}:{:02x}",
                (seed & 0xff) as u8,
                (index >> 16) as u8,
                (index >> 8) as u8,
                index as u8
            ),
            hostname: format!("simcam-{index:05}"),
            hostname_from_dhcp: false,
            ntp_servers: vec!["pool.ntp.example".into()],
            ntp_from_dhcp: false,
            dns_servers: vec!["127.0.0.53".into()],
            search_domains: vec!["cams.example".into()],
            users: vec![SimUser {
                username: username.into(),
                password: password.into(),
                level: "Administrator".into(),
            }],
            name_scope: format!("SimCam-{index:05}"),
            location_scope: "lab".into(),
            profiles: vec![
                SimProfile {
                    token: "Profile_1".into(),
                    name: "mainStream".into(),
                    encoder: main,
                },
                SimProfile {
                    token: "Profile_2".into(),
                    name: "subStream".into(),
                    encoder: sub,
                },
            ],
            discoverable: true,
            time_ntp: true,
            tz: "UTC0".into(),
            clock_offset_s: 0,
            legacy_passwords: Vec::new(),
            ipv4: None,
            ipv4_dhcp: false,
        }
    }

    pub fn password_of(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|u| u.username == user)
            .map(|u| u.password.as_str())
    }

    /// Every password that authenticates `user`: the current one and, on a
    /// camera that keeps them, old ones.
    pub fn passwords_of(&self, user: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .password_of(user)
            .map(String::from)
            .into_iter()
            .collect();
        v.extend(
            self.legacy_passwords
                .iter()
                .filter(|(u, _)| u == user)
                .map(|(_, p)| p.clone()),
        );
        v
    }

    pub fn scopes(&self) -> Vec<String> {
        vec![
            "onvif://www.onvif.org/type/video_encoder".into(),
            "onvif://www.onvif.org/Profile/Streaming".into(),
            "onvif://www.onvif.org/Profile/T".into(),
            format!("onvif://www.onvif.org/name/{}", self.name_scope),
            format!("onvif://www.onvif.org/hardware/{}", self.model),
            format!("onvif://www.onvif.org/location/{}", self.location_scope),
            format!("onvif://www.onvif.org/MAC/{}", self.mac),
        ]
    }
}

/// A deterministic UUID per (seed, index) so a restarted simulator keeps
/// its cameras' identities.
fn sim_uuid(seed: u64, index: u32) -> uuid::Uuid {
    let hi = seed.rotate_left(17) ^ 0x5f3c_9d1a_7b2e_4c60;
    let lo = ((index as u64) << 16) | 0x4000_0000_8000;
    uuid::Uuid::from_u64_pair(hi, lo)
}

/// Prefixes used in answers; `odd` ones exercise prefix-agnostic parsing.
pub struct Prefixes {
    pub env: &'static str,
    pub tds: &'static str,
    pub trt: &'static str,
    pub tr2: &'static str,
    pub tt: &'static str,
}

impl Prefixes {
    pub fn for_quirks(q: &Quirks) -> Prefixes {
        if q.odd_prefixes {
            Prefixes {
                env: "SOAP-ENV",
                tds: "ns1",
                trt: "ns7",
                tr2: "media2x",
                tt: "onv",
            }
        } else {
            Prefixes {
                env: "s",
                tds: "tds",
                trt: "trt",
                tr2: "tr2",
                tt: "tt",
            }
        }
    }
}

/// A SOAP fault a handler wants returned.
#[derive(Debug, Clone)]
pub struct SimFault {
    pub sender: bool,
    pub subcode: &'static str,
    pub reason: String,
}

impl SimFault {
    pub fn not_supported(what: &str) -> Self {
        SimFault {
            sender: false,
            subcode: "ActionNotSupported",
            reason: format!("{what} is not supported"),
        }
    }
    pub fn not_authorized() -> Self {
        SimFault {
            sender: true,
            subcode: "NotAuthorized",
            reason: "Sender not Authorized".into(),
        }
    }
    pub fn invalid(reason: &str) -> Self {
        SimFault {
            sender: true,
            subcode: "InvalidArgVal",
            reason: reason.into(),
        }
    }
}

/// Context for rendering addresses the camera reports about itself.
pub struct Addressing {
    /// `host:port` the camera reports for itself (may be wrong on purpose).
    pub http_authority: String,
    pub rtsp_authority: String,
}

/// Handle one operation; returns the body element (without envelope).
pub fn handle(
    st: &CameraState,
    q: &Quirks,
    p: &Prefixes,
    a: &Addressing,
    camera_now: DateTime<Utc>,
    req: &Element,
) -> Result<String, SimFault> {
    let op = req.local.as_str();
    let media2 = req.ns_uri() == Some(ns::TR2);
    let (tds, tt) = (p.tds, p.tt);
    let dev = format!("http://{}/onvif/device_service", a.http_authority);
    let media_x = format!("http://{}/onvif/media_service", a.http_authority);
    let media2_x = format!("http://{}/onvif/media2_service", a.http_authority);
    let events_x = format!("http://{}/onvif/events_service", a.http_authority);
    let recording_x = format!("http://{}/onvif/recording_service", a.http_authority);
    let search_x = format!("http://{}/onvif/search_service", a.http_authority);
    let replay_x = format!("http://{}/onvif/replay_service", a.http_authority);
    Ok(match (op, media2) {
        ("GetSystemDateAndTime", false) => {
            let date = |t: DateTime<Utc>| {
                format!(
                    "<{tt}:Time><{tt}:Hour>{}</{tt}:Hour><{tt}:Minute>{}</{tt}:Minute><{tt}:Second>{}</{tt}:Second></{tt}:Time><{tt}:Date><{tt}:Year>{}</{tt}:Year><{tt}:Month>{}</{tt}:Month><{tt}:Day>{}</{tt}:Day></{tt}:Date>",
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.year(),
                    t.month(),
                    t.day()
                )
            };
            let dtt = if st.time_ntp { "NTP" } else { "Manual" };
            let (tz, local) = if q.no_utc {
                ("CST-8", camera_now + chrono::Duration::hours(8))
            } else {
                (st.tz.as_str(), camera_now)
            };
            let tz = escape(tz);
            let utc = if q.no_utc {
                String::new()
            } else {
                format!("<{tt}:UTCDateTime>{}</{tt}:UTCDateTime>", date(camera_now))
            };
            format!(
                "<{tds}:GetSystemDateAndTimeResponse><{tds}:SystemDateAndTime><{tt}:DateTimeType>{dtt}</{tt}:DateTimeType><{tt}:DaylightSavings>false</{tt}:DaylightSavings><{tt}:TimeZone><{tt}:TZ>{tz}</{tt}:TZ></{tt}:TimeZone>{utc}<{tt}:LocalDateTime>{}</{tt}:LocalDateTime></{tds}:SystemDateAndTime></{tds}:GetSystemDateAndTimeResponse>",
                date(local)
            )
        }
        ("GetDeviceInformation", false) => format!(
            "<{tds}:GetDeviceInformationResponse><{tds}:Manufacturer>{}</{tds}:Manufacturer><{tds}:Model>{}</{tds}:Model><{tds}:FirmwareVersion>{}</{tds}:FirmwareVersion><{tds}:SerialNumber>{}</{tds}:SerialNumber><{tds}:HardwareId>{}</{tds}:HardwareId></{tds}:GetDeviceInformationResponse>",
            escape(&st.manufacturer),
            escape(&st.model),
            escape(&st.firmware),
            escape(&st.serial),
            escape(&st.hardware_id)
        ),
        ("GetServices", false) => {
            if q.no_get_services {
                return Err(SimFault::not_supported("GetServices"));
            }
            let svc = |nsuri: &str, x: &str, caps: &str| {
                format!(
                    "<{tds}:Service><{tds}:Namespace>{nsuri}</{tds}:Namespace><{tds}:XAddr>{x}</{tds}:XAddr>{caps}<{tds}:Version><{tt}:Major>2</{tt}:Major><{tt}:Minor>60</{tt}:Minor></{tds}:Version></{tds}:Service>"
                )
            };
            let with_caps = req
                .text_at(&["IncludeCapability"])
                .is_some_and(|v| v == "true");
            let dcaps = if with_caps {
                format!(
                    "<{tds}:Capabilities><{tds}:Capabilities><{tds}:Network NTP=\"1\" HostnameFromDHCP=\"true\" DynDNS=\"false\"/><{tds}:Security UsernameToken=\"true\" HttpDigest=\"true\"/><{tds}:System DiscoveryBye=\"true\" FirmwareUpgrade=\"true\" HttpSnapshot=\"true\"/></{tds}:Capabilities></{tds}:Capabilities>"
                )
            } else {
                String::new()
            };
            let mut out = format!("<{tds}:GetServicesResponse>");
            out.push_str(&svc(ns::TDS, &dev, &dcaps));
            out.push_str(&svc(ns::TRT, &media_x, ""));
            if q.media2 {
                out.push_str(&svc(ns::TR2, &media2_x, ""));
            }
            if !q.no_events {
                out.push_str(&svc(ns::TEV, &events_x, ""));
            }
            if !q.no_recording {
                out.push_str(&svc(ns::TRC, &recording_x, ""));
                out.push_str(&svc(ns::TSE, &search_x, ""));
                out.push_str(&svc(ns::TRP, &replay_x, ""));
            }
            out.push_str(&format!("</{tds}:GetServicesResponse>"));
            out
        }
        ("GetCapabilities", false) => format!(
            // tt:Capabilities is a sequence: Analytics, Device, Events, Imaging, Media, PTZ.
            "<{tds}:GetCapabilitiesResponse><{tds}:Capabilities><{tt}:Device><{tt}:XAddr>{dev}</{tt}:XAddr></{tt}:Device>{}<{tt}:Media><{tt}:XAddr>{media_x}</{tt}:XAddr><{tt}:StreamingCapabilities><{tt}:RTP_TCP>true</{tt}:RTP_TCP></{tt}:StreamingCapabilities></{tt}:Media></{tds}:Capabilities></{tds}:GetCapabilitiesResponse>",
            if q.no_events {
                String::new()
            } else {
                format!(
                    "<{tt}:Events><{tt}:XAddr>{events_x}</{tt}:XAddr><{tt}:WSSubscriptionPolicySupport>false</{tt}:WSSubscriptionPolicySupport><{tt}:WSPullPointSupport>true</{tt}:WSPullPointSupport><{tt}:WSPausableSubscriptionManagerInterfaceSupport>false</{tt}:WSPausableSubscriptionManagerInterfaceSupport></{tt}:Events>"
                )
            }
        ),
        ("GetScopes", false) => {
            let mut out = format!("<{tds}:GetScopesResponse>");
            for s in st.scopes() {
                out.push_str(&format!(
                    "<{tds}:Scopes><{tt}:ScopeDef>Fixed</{tt}:ScopeDef><{tt}:ScopeItem>{}</{tt}:ScopeItem></{tds}:Scopes>",
                    escape(&s)
                ));
            }
            out.push_str(&format!("</{tds}:GetScopesResponse>"));
            out
        }
        ("GetHostname", false) => format!(
            "<{tds}:GetHostnameResponse><{tds}:HostnameInformation><{tt}:FromDHCP>{}</{tt}:FromDHCP><{tt}:Name>{}</{tt}:Name></{tds}:HostnameInformation></{tds}:GetHostnameResponse>",
            st.hostname_from_dhcp,
            escape(&st.hostname)
        ),
        ("GetNetworkInterfaces", false) => format!(
            "<{tds}:GetNetworkInterfacesResponse><{tds}:NetworkInterfaces token=\"eth0\"><{tt}:Enabled>true</{tt}:Enabled><{tt}:Info><{tt}:Name>eth0</{tt}:Name><{tt}:HwAddress>{}</{tt}:HwAddress><{tt}:MTU>1500</{tt}:MTU></{tt}:Info><{tt}:IPv4><{tt}:Enabled>true</{tt}:Enabled><{tt}:Config><{tt}:Manual><{tt}:Address>{}</{tt}:Address><{tt}:PrefixLength>{}</{tt}:PrefixLength></{tt}:Manual><{tt}:DHCP>{}</{tt}:DHCP></{tt}:Config></{tt}:IPv4></{tds}:NetworkInterfaces></{tds}:GetNetworkInterfacesResponse>",
            st.mac.to_uppercase().replace(':', "-"),
            st.ipv4.as_ref().map(|(a, _)| a.clone()).unwrap_or_else(|| a
                .http_authority
                .split(':')
                .next()
                .unwrap_or("127.0.0.1")
                .to_string()),
            st.ipv4.as_ref().map(|(_, p)| *p).unwrap_or(24),
            st.ipv4_dhcp
        ),
        ("GetNTP", false) => {
            let mut hosts = String::new();
            for s in &st.ntp_servers {
                hosts.push_str(&host_xml(tds, tt, "NTPManual", s));
            }
            format!(
                "<{tds}:GetNTPResponse><{tds}:NTPInformation><{tt}:FromDHCP>{}</{tt}:FromDHCP>{hosts}</{tds}:NTPInformation></{tds}:GetNTPResponse>",
                st.ntp_from_dhcp
            )
        }
        ("GetDNS", false) => {
            let mut inner = String::new();
            for d in &st.search_domains {
                inner.push_str(&format!(
                    "<{tt}:SearchDomain>{}</{tt}:SearchDomain>",
                    escape(d)
                ));
            }
            for s in &st.dns_servers {
                inner.push_str(&host_xml(tds, tt, "DNSManual", s));
            }
            format!(
                "<{tds}:GetDNSResponse><{tds}:DNSInformation><{tt}:FromDHCP>false</{tt}:FromDHCP>{inner}</{tds}:DNSInformation></{tds}:GetDNSResponse>"
            )
        }
        ("GetUsers", false) => {
            let mut out = format!("<{tds}:GetUsersResponse>");
            for u in &st.users {
                out.push_str(&format!(
                    "<{tds}:User><{tt}:Username>{}</{tt}:Username><{tt}:UserLevel>{}</{tt}:UserLevel></{tds}:User>",
                    escape(&u.username),
                    escape(&u.level)
                ));
            }
            out.push_str(&format!("</{tds}:GetUsersResponse>"));
            out
        }
        ("GetProfiles", false) => {
            let trt = p.trt;
            let mut out = format!("<{trt}:GetProfilesResponse>");
            for pr in &st.profiles {
                let e = &pr.encoder;
                out.push_str(&format!(
                    "<{trt}:Profiles token=\"{tok}\" fixed=\"true\"><{tt}:Name>{name}</{tt}:Name><{tt}:VideoSourceConfiguration token=\"VideoSourceConfig_1\"><{tt}:Name>vsc</{tt}:Name><{tt}:UseCount>2</{tt}:UseCount><{tt}:SourceToken>VideoSource_1</{tt}:SourceToken><{tt}:Bounds x=\"0\" y=\"0\" width=\"1920\" height=\"1080\"/></{tt}:VideoSourceConfiguration>{enc}</{trt}:Profiles>",
                    tok = escape(&pr.token),
                    name = escape(&pr.name),
                    enc = encoder_v10(tt, "VideoEncoderConfiguration", e)
                ));
            }
            out.push_str(&format!("</{trt}:GetProfilesResponse>"));
            out
        }
        ("GetProfiles", true) if q.media2 => {
            let tr2 = p.tr2;
            let mut out = format!("<{tr2}:GetProfilesResponse>");
            for pr in &st.profiles {
                out.push_str(&format!(
                    "<{tr2}:Profiles token=\"{tok}\" fixed=\"true\"><{tr2}:Name>{name}</{tr2}:Name><{tr2}:Configurations><{tr2}:VideoSource token=\"VideoSourceConfig_1\"><{tt}:Name>vsc</{tt}:Name><{tt}:UseCount>2</{tt}:UseCount><{tt}:SourceToken>VideoSource_1</{tt}:SourceToken><{tt}:Bounds x=\"0\" y=\"0\" width=\"1920\" height=\"1080\"/></{tr2}:VideoSource>{enc}</{tr2}:Configurations></{tr2}:Profiles>",
                    tok = escape(&pr.token),
                    name = escape(&pr.name),
                    enc = encoder_v20(tr2, tt, "VideoEncoder", &pr.encoder)
                ));
            }
            out.push_str(&format!("</{tr2}:GetProfilesResponse>"));
            out
        }
        ("GetStreamUri", m2) if !m2 || q.media2 => {
            let token = req.text_at(&["ProfileToken"]).unwrap_or_default();
            let pr = st
                .profiles
                .iter()
                .find(|x| x.token == token)
                .ok_or_else(|| SimFault {
                    sender: true,
                    subcode: "NoProfile",
                    reason: format!("no profile {token:?}"),
                })?;
            let uri = format!(
                "rtsp://{}/cam{}/{}",
                a.rtsp_authority,
                st.index,
                if pr.token == "Profile_1" {
                    "main"
                } else {
                    "sub"
                }
            );
            if m2 {
                format!(
                    "<{0}:GetStreamUriResponse><{0}:Uri>{1}</{0}:Uri></{0}:GetStreamUriResponse>",
                    p.tr2,
                    escape(&uri)
                )
            } else {
                format!(
                    "<{0}:GetStreamUriResponse><{0}:MediaUri><{tt}:Uri>{1}</{tt}:Uri><{tt}:InvalidAfterConnect>false</{tt}:InvalidAfterConnect><{tt}:InvalidAfterReboot>false</{tt}:InvalidAfterReboot><{tt}:Timeout>PT0S</{tt}:Timeout></{0}:MediaUri></{0}:GetStreamUriResponse>",
                    p.trt,
                    escape(&uri)
                )
            }
        }
        ("GetSnapshotUri", m2) if !m2 || q.media2 => {
            let token = req.text_at(&["ProfileToken"]).unwrap_or_default();
            if !st.profiles.iter().any(|x| x.token == token) {
                return Err(SimFault {
                    sender: true,
                    subcode: "NoProfile",
                    reason: format!("no profile {token:?}"),
                });
            }
            let uri = format!(
                "http://{}/snapshot/{}.bmp",
                a.http_authority,
                escape(&token)
            );
            if m2 {
                format!(
                    "<{0}:GetSnapshotUriResponse><{0}:Uri>{1}</{0}:Uri></{0}:GetSnapshotUriResponse>",
                    p.tr2, uri
                )
            } else {
                format!(
                    "<{0}:GetSnapshotUriResponse><{0}:MediaUri><{tt}:Uri>{1}</{tt}:Uri><{tt}:InvalidAfterConnect>false</{tt}:InvalidAfterConnect><{tt}:InvalidAfterReboot>false</{tt}:InvalidAfterReboot><{tt}:Timeout>PT0S</{tt}:Timeout></{0}:MediaUri></{0}:GetSnapshotUriResponse>",
                    p.trt, uri
                )
            }
        }
        ("GetVideoEncoderConfigurations", m2) if !m2 || q.media2 => {
            let pre = if m2 { p.tr2 } else { p.trt };
            let mut out = format!("<{pre}:GetVideoEncoderConfigurationsResponse>");
            for pr in &st.profiles {
                out.push_str(&if m2 {
                    encoder_v20(pre, tt, "Configurations", &pr.encoder)
                } else {
                    encoder_v10_in(pre, tt, "Configurations", &pr.encoder)
                });
            }
            out.push_str(&format!("</{pre}:GetVideoEncoderConfigurationsResponse>"));
            out
        }
        (other, _) => return Err(SimFault::not_supported(other)),
    })
}

fn host_xml(tds: &str, tt: &str, elem: &str, value: &str) -> String {
    let _ = tds;
    let v = escape(value);
    if value.parse::<std::net::Ipv4Addr>().is_ok() {
        format!(
            "<{tt}:{elem}><{tt}:Type>IPv4</{tt}:Type><{tt}:IPv4Address>{v}</{tt}:IPv4Address></{tt}:{elem}>"
        )
    } else if value.parse::<std::net::Ipv6Addr>().is_ok() {
        format!(
            "<{tt}:{elem}><{tt}:Type>IPv6</{tt}:Type><{tt}:IPv6Address>{v}</{tt}:IPv6Address></{tt}:{elem}>"
        )
    } else {
        format!(
            "<{tt}:{elem}><{tt}:Type>DNS</{tt}:Type><{tt}:DNSname>{v}</{tt}:DNSname></{tt}:{elem}>"
        )
    }
}

fn encoder_body(tt: &str, e: &SimEncoder) -> String {
    format!(
        "<{tt}:Name>{tok}</{tt}:Name><{tt}:UseCount>1</{tt}:UseCount><{tt}:Encoding>{enc}</{tt}:Encoding><{tt}:Resolution><{tt}:Width>{w}</{tt}:Width><{tt}:Height>{h}</{tt}:Height></{tt}:Resolution><{tt}:Quality>5</{tt}:Quality>",
        tok = escape(&e.token),
        enc = escape(&e.encoding),
        w = e.width,
        h = e.height
    )
}

fn encoder_v10(tt: &str, elem: &str, e: &SimEncoder) -> String {
    encoder_v10_in(tt, tt, elem, e)
}

fn encoder_v10_in(pre: &str, tt: &str, elem: &str, e: &SimEncoder) -> String {
    format!(
        "<{pre}:{elem} token=\"{tok}\">{body}<{tt}:RateControl><{tt}:FrameRateLimit>{fps}</{tt}:FrameRateLimit><{tt}:EncodingInterval>1</{tt}:EncodingInterval><{tt}:BitrateLimit>{br}</{tt}:BitrateLimit></{tt}:RateControl><{tt}:H264><{tt}:GovLength>{gov}</{tt}:GovLength><{tt}:H264Profile>{prof}</{tt}:H264Profile></{tt}:H264><{tt}:Multicast><{tt}:Address><{tt}:Type>IPv4</{tt}:Type><{tt}:IPv4Address>0.0.0.0</{tt}:IPv4Address></{tt}:Address><{tt}:Port>0</{tt}:Port><{tt}:TTL>1</{tt}:TTL><{tt}:AutoStart>false</{tt}:AutoStart></{tt}:Multicast><{tt}:SessionTimeout>PT60S</{tt}:SessionTimeout></{pre}:{elem}>",
        tok = escape(&e.token),
        body = encoder_body(tt, e),
        fps = e.fps,
        br = e.bitrate_kbps,
        gov = e.gov,
        prof = escape(&e.profile)
    )
}

fn encoder_v20(pre: &str, tt: &str, elem: &str, e: &SimEncoder) -> String {
    format!(
        "<{pre}:{elem} token=\"{tok}\" GovLength=\"{gov}\" Profile=\"{prof}\">{body}<{tt}:RateControl ConstantBitRate=\"false\"><{tt}:FrameRateLimit>{fps}</{tt}:FrameRateLimit><{tt}:BitrateLimit>{br}</{tt}:BitrateLimit></{tt}:RateControl></{pre}:{elem}>",
        tok = escape(&e.token),
        body = encoder_body(tt, e),
        fps = e.fps,
        br = e.bitrate_kbps,
        gov = e.gov,
        prof = escape(&e.profile)
    )
}

/// A small BMP test image, tinted per camera.
pub fn snapshot_bmp(index: u32) -> Vec<u8> {
    let (w, h) = (64u32, 48u32);
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0u8; 24]);
    let tint = [(index * 37) as u8, (index * 91) as u8, 160u8];
    for y in 0..h {
        for x in 0..w {
            let v = ((x ^ y) & 8) as u8 * 8;
            b.extend_from_slice(&[tint[0].wrapping_add(v), tint[1], tint[2].wrapping_sub(v)]);
        }
        b.extend(std::iter::repeat_n(0u8, (row - w * 3) as usize));
    }
    b
}
