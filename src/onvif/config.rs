//! Device management writes (tds): time, NTP, DNS, hostname, users,
//! discovery mode, scopes, reboot. Each is a request builder that sends
//! exactly what the Core specification's schema orders; verification
//! (reading back) is the caller's part — see `fleet::provision`.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::error::{OnvifError, OnvifResult};
use super::fault::FaultClass;
use super::ops::{self, Operation};
use super::session::DeviceSession;
use super::types::NetworkHost;
use crate::xml::{Element, escape};

fn req(op: Operation, inner: &str) -> String {
    format!(
        r#"<tds:{0} xmlns:tds="{1}">{2}</tds:{0}>"#,
        op.name, op.namespace, inner
    )
}

/// `<tds:{tag}>…</tds:{tag}>` for each value, escaped.
fn elements(tag: &str, values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("<tds:{tag}>{}</tds:{tag}>", escape(v)))
        .collect()
}

impl NetworkHost {
    /// An address as typed: IPv4, IPv6, or else a DNS name.
    pub fn from_text(s: &str) -> NetworkHost {
        let s = s.trim();
        if s.parse::<std::net::Ipv4Addr>().is_ok() {
            NetworkHost::Ipv4(s.to_string())
        } else if s.parse::<std::net::Ipv6Addr>().is_ok() {
            NetworkHost::Ipv6(s.to_string())
        } else {
            NetworkHost::Dns(s.to_string())
        }
    }

    pub fn text(&self) -> &str {
        match self {
            NetworkHost::Ipv4(v) | NetworkHost::Ipv6(v) | NetworkHost::Dns(v) => v,
        }
    }

    /// `tt:NetworkHost` (NTP) children.
    fn network_host_xml(&self) -> String {
        match self {
            NetworkHost::Ipv4(v) => format!(
                "<tt:Type>IPv4</tt:Type><tt:IPv4Address>{}</tt:IPv4Address>",
                escape(v)
            ),
            NetworkHost::Ipv6(v) => format!(
                "<tt:Type>IPv6</tt:Type><tt:IPv6Address>{}</tt:IPv6Address>",
                escape(v)
            ),
            NetworkHost::Dns(v) => {
                format!(
                    "<tt:Type>DNS</tt:Type><tt:DNSname>{}</tt:DNSname>",
                    escape(v)
                )
            }
        }
    }
}

/// SetSystemDateAndTime. `utc` is required for manual time. When the camera
/// faults on the TimeZone (many accept only their own TZ dialect, some
/// none at all), the call is sent once more without it; the answer says
/// whether the zone was dropped.
pub async fn set_system_date_and_time(
    s: &DeviceSession,
    ntp: bool,
    tz: Option<&str>,
    utc: Option<DateTime<Utc>>,
) -> OnvifResult<bool> {
    let op = ops::SET_SYSTEM_DATE_AND_TIME;
    let body = |tz: Option<&str>| {
        let mut inner = format!(
            "<tds:DateTimeType>{}</tds:DateTimeType><tds:DaylightSavings>false</tds:DaylightSavings>",
            if ntp { "NTP" } else { "Manual" }
        );
        if let Some(tz) = tz {
            inner.push_str(&format!(
                "<tds:TimeZone><tt:TZ>{}</tt:TZ></tds:TimeZone>",
                escape(tz)
            ));
        }
        if let (false, Some(t)) = (ntp, utc) {
            inner.push_str(&format!(
                "<tds:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tds:UTCDateTime>",
                t.hour(), t.minute(), t.second(), t.year(), t.month(), t.day()
            ));
        }
        req(op, &inner)
    };
    if !ntp && utc.is_none() {
        return Err(OnvifError::new(
            FaultClass::InvalidArgument,
            op.name,
            "manual time needs a UTC time",
        ));
    }
    match s.call(op, &body(tz)).await {
        Ok(_) => Ok(false),
        Err(e)
            if tz.is_some()
                && matches!(
                    e.class,
                    FaultClass::InvalidArgument
                        | FaultClass::DeviceError
                        | FaultClass::NotSupported
                ) =>
        {
            tracing::debug!(error = %e, "SetSystemDateAndTime refused with a TimeZone; retrying without");
            s.call(op, &body(None)).await?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

pub async fn set_ntp(
    s: &DeviceSession,
    from_dhcp: bool,
    servers: &[NetworkHost],
) -> OnvifResult<()> {
    let op = ops::SET_NTP;
    let mut inner = format!("<tds:FromDHCP>{from_dhcp}</tds:FromDHCP>");
    if !from_dhcp {
        for h in servers {
            inner.push_str(&format!(
                "<tds:NTPManual>{}</tds:NTPManual>",
                h.network_host_xml()
            ));
        }
    }
    s.call(op, &req(op, &inner)).await?;
    Ok(())
}

pub async fn set_dns(
    s: &DeviceSession,
    from_dhcp: bool,
    search_domains: &[String],
    servers: &[NetworkHost],
) -> OnvifResult<()> {
    let op = ops::SET_DNS;
    let mut inner = format!("<tds:FromDHCP>{from_dhcp}</tds:FromDHCP>");
    for d in search_domains {
        inner.push_str(&format!(
            "<tds:SearchDomain>{}</tds:SearchDomain>",
            escape(d)
        ));
    }
    if !from_dhcp {
        for h in servers {
            // DNS servers are tt:IPAddress: no DNS names.
            let x = match h {
                NetworkHost::Ipv4(v) => format!(
                    "<tt:Type>IPv4</tt:Type><tt:IPv4Address>{}</tt:IPv4Address>",
                    escape(v)
                ),
                NetworkHost::Ipv6(v) => format!(
                    "<tt:Type>IPv6</tt:Type><tt:IPv6Address>{}</tt:IPv6Address>",
                    escape(v)
                ),
                NetworkHost::Dns(v) => {
                    return Err(OnvifError::new(
                        FaultClass::InvalidArgument,
                        op.name,
                        format!("a DNS server must be an IP address, not {v:?}"),
                    ));
                }
            };
            inner.push_str(&format!("<tds:DNSManual>{x}</tds:DNSManual>"));
        }
    }
    s.call(op, &req(op, &inner)).await?;
    Ok(())
}

pub async fn set_hostname(s: &DeviceSession, name: &str) -> OnvifResult<()> {
    let op = ops::SET_HOSTNAME;
    s.call(
        op,
        &req(op, &format!("<tds:Name>{}</tds:Name>", escape(name))),
    )
    .await?;
    Ok(())
}

/// Hostname from DHCP on or off; true when the camera says it must reboot.
pub async fn set_hostname_from_dhcp(s: &DeviceSession, from_dhcp: bool) -> OnvifResult<bool> {
    let op = ops::SET_HOSTNAME_FROM_DHCP;
    let el = s
        .call(
            op,
            &req(op, &format!("<tds:FromDHCP>{from_dhcp}</tds:FromDHCP>")),
        )
        .await?;
    Ok(el
        .text_at(&["RebootNeeded"])
        .is_some_and(|v| super::device::is_true(&v)))
}

/// A user to create or change. `level`: Administrator, Operator, User.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWrite {
    pub username: String,
    pub password: String,
    pub level: String,
}

fn user_xml(u: &UserWrite) -> String {
    format!(
        "<tds:User><tt:Username>{}</tt:Username><tt:Password>{}</tt:Password><tt:UserLevel>{}</tt:UserLevel></tds:User>",
        escape(&u.username),
        escape(&u.password),
        escape(&u.level)
    )
}

pub async fn create_users(s: &DeviceSession, users: &[UserWrite]) -> OnvifResult<()> {
    let op = ops::CREATE_USERS;
    let inner: String = users.iter().map(user_xml).collect();
    s.call(op, &req(op, &inner)).await?;
    Ok(())
}

pub async fn set_user(s: &DeviceSession, user: &UserWrite) -> OnvifResult<()> {
    let op = ops::SET_USER;
    s.call(op, &req(op, &user_xml(user))).await?;
    Ok(())
}

pub async fn delete_users(s: &DeviceSession, usernames: &[String]) -> OnvifResult<()> {
    let op = ops::DELETE_USERS;
    s.call(op, &req(op, &elements("Username", usernames)))
        .await?;
    Ok(())
}

/// True when the camera answers WS-Discovery probes.
pub async fn get_discovery_mode(s: &DeviceSession) -> OnvifResult<bool> {
    let op = ops::GET_DISCOVERY_MODE;
    let el = s.call(op, &req(op, "")).await?;
    parse_discovery_mode(&el)
        .ok_or_else(|| OnvifError::malformed(op.name, "no DiscoveryMode in answer"))
}

pub fn parse_discovery_mode(e: &Element) -> Option<bool> {
    let v = e.text_at(&["DiscoveryMode"])?;
    match v.trim() {
        "Discoverable" => Some(true),
        "NonDiscoverable" => Some(false),
        _ => None,
    }
}

pub async fn set_discovery_mode(s: &DeviceSession, discoverable: bool) -> OnvifResult<()> {
    let op = ops::SET_DISCOVERY_MODE;
    let mode = if discoverable {
        "Discoverable"
    } else {
        "NonDiscoverable"
    };
    s.call(
        op,
        &req(
            op,
            &format!("<tds:DiscoveryMode>{mode}</tds:DiscoveryMode>"),
        ),
    )
    .await?;
    Ok(())
}

/// SetScopes replaces every configurable scope; pass all that should stay.
pub async fn set_scopes(s: &DeviceSession, scopes: &[String]) -> OnvifResult<()> {
    let op = ops::SET_SCOPES;
    s.call(op, &req(op, &elements("Scopes", scopes))).await?;
    Ok(())
}

/// The `onvif://www.onvif.org/{kind}/{value}` scope, value percent-encoded.
pub fn scope_uri(kind: &str, value: &str) -> String {
    let enc: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("onvif://www.onvif.org/{kind}/{enc}")
}

/// IPv4 on one interface: DHCP, or a static address and prefix length.
/// True when the camera says it must reboot for the change.
pub async fn set_ipv4(
    s: &DeviceSession,
    token: &str,
    dhcp: bool,
    address: Option<(std::net::Ipv4Addr, u8)>,
) -> OnvifResult<bool> {
    let op = ops::SET_NETWORK_INTERFACES;
    let manual = match (dhcp, address) {
        (false, Some((a, p))) => format!(
            "<tt:Manual><tt:Address>{a}</tt:Address><tt:PrefixLength>{p}</tt:PrefixLength></tt:Manual>"
        ),
        (false, None) => {
            return Err(OnvifError::new(
                FaultClass::InvalidArgument,
                op.name,
                "a static configuration needs an address",
            ));
        }
        (true, _) => String::new(),
    };
    let inner = format!(
        "<tds:InterfaceToken>{}</tds:InterfaceToken><tds:NetworkInterface><tt:Enabled>true</tt:Enabled><tt:IPv4><tt:Enabled>true</tt:Enabled>{manual}<tt:DHCP>{dhcp}</tt:DHCP></tt:IPv4></tds:NetworkInterface>",
        escape(token)
    );
    let el = s.call(op, &req(op, &inner)).await?;
    Ok(el
        .text_at(&["RebootNeeded"])
        .is_some_and(|v| super::device::is_true(&v)))
}

/// SystemReboot; the camera's message (e.g. "Rebooting in 30 seconds").
pub async fn system_reboot(s: &DeviceSession) -> OnvifResult<String> {
    let op = ops::SYSTEM_REBOOT;
    let el = s.call(op, &req(op, "")).await?;
    Ok(el.text_at(&["Message"]).unwrap_or_default())
}

/// One file of a camera's own configuration backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// GetSystemBackup: the camera's configuration files, whether it sends
/// them inline (base64) or as MTOM attachments.
pub async fn get_system_backup(s: &DeviceSession) -> OnvifResult<Vec<BackupFile>> {
    use base64::Engine as _;
    let op = ops::GET_SYSTEM_BACKUP;
    let body = format!(r#"<tds:GetSystemBackup xmlns:tds="{}"/>"#, op.namespace);
    let el = s.call(op, &body).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (i, f) in el.children_local("BackupFiles").enumerate() {
        let name = f
            .text_at(&["Name"])
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("backup-{i}"));
        let text: String = f
            .text_at(&["Data"])
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let data = b64.decode(text.as_bytes()).map_err(|e| {
            OnvifError::malformed(op.name, format!("backup file {name:?} is not base64: {e}"))
        })?;
        out.push(BackupFile { name, data });
    }
    Ok(out)
}

/// The RestoreSystem request: each file as a `tt:BackupFile` whose data is
/// an `xop:Include` of the MTOM attachment with the same index.
pub fn restore_system_body(files: &[BackupFile]) -> String {
    let mut body = format!(
        r#"<tds:RestoreSystem xmlns:tds="{}" xmlns:tt="{}" xmlns:xop="http://www.w3.org/2004/08/xop/include" xmlns:xmime="http://www.w3.org/2005/05/xmlmime">"#,
        ops::RESTORE_SYSTEM.namespace,
        super::ns::TT
    );
    for (i, f) in files.iter().enumerate() {
        body.push_str(&format!(
            r#"<tds:BackupFiles><tt:Name>{}</tt:Name><tt:Data xmime:contentType="application/octet-stream"><xop:Include href="cid:{}"/></tt:Data></tds:BackupFiles>"#,
            escape(&f.name),
            super::session::attachment_cid(i)
        ));
    }
    body.push_str("</tds:RestoreSystem>");
    body
}

/// RestoreSystem (Core 8.3.11): give the camera back the files of an
/// earlier GetSystemBackup, as MTOM attachments in one call. The camera
/// works on the restored configuration afterwards and may restart to do
/// so; a static address may come back different (the specification allows
/// it).
pub async fn restore_system(
    s: &DeviceSession,
    files: Vec<BackupFile>,
    timeout: std::time::Duration,
) -> OnvifResult<()> {
    let op = ops::RESTORE_SYSTEM;
    if files.is_empty() {
        return Err(OnvifError::new(
            FaultClass::InvalidArgument,
            op.name,
            "no backup files to restore",
        ));
    }
    let body = restore_system_body(&files);
    let parts = files
        .into_iter()
        .map(|f| bytes::Bytes::from(f.data))
        .collect();
    s.call_mtom(op, &body, parts, Some(timeout)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_classified_and_scopes_encoded() {
        assert_eq!(
            NetworkHost::from_text(" 10.0.0.1 "),
            NetworkHost::Ipv4("10.0.0.1".into())
        );
        assert_eq!(
            NetworkHost::from_text("fe80::1"),
            NetworkHost::Ipv6("fe80::1".into())
        );
        assert_eq!(
            NetworkHost::from_text("ntp.example"),
            NetworkHost::Dns("ntp.example".into())
        );
        assert_eq!(
            scope_uri("name", "Front Door/1"),
            "onvif://www.onvif.org/name/Front%20Door%2F1"
        );
    }

    #[test]
    fn restore_names_each_file_and_its_attachment() {
        let files = vec![
            BackupFile {
                name: "settings <1>.json".into(),
                data: b"{}".to_vec(),
            },
            BackupFile {
                name: "users.db".into(),
                data: vec![0, 1, 2],
            },
        ];
        let body = restore_system_body(&files);
        let el = crate::xml::parse(body.as_bytes()).unwrap();
        let names: Vec<String> = el
            .children_local("BackupFiles")
            .map(|f| f.text_at(&["Name"]).unwrap())
            .collect();
        assert_eq!(names, ["settings <1>.json", "users.db"]);
        let hrefs: Vec<String> = el
            .children_local("BackupFiles")
            .map(|f| {
                f.child_local("Data")
                    .and_then(|d| d.child_local("Include"))
                    .and_then(|i| i.attr("href"))
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            hrefs,
            ["cid:attachment@camfleet", "cid:attachment-1@camfleet"]
        );
    }
}
