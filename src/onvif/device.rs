//! Device management service (tds), read side. Each operation is a request
//! builder plus a tolerant parser; parsers are public so fixtures and fuzz
//! targets can exercise them without a network.

use super::error::OnvifResult;
use super::ops::{self, Service};
use super::session::DeviceSession;
use super::types::*;
use crate::xml::Element;

fn req(op: ops::Operation, inner: &str) -> String {
    if inner.is_empty() {
        format!(r#"<tds:{0} xmlns:tds="{1}"/>"#, op.name, op.namespace)
    } else {
        format!(
            r#"<tds:{0} xmlns:tds="{1}">{2}</tds:{0}>"#,
            op.name, op.namespace, inner
        )
    }
}

pub async fn get_device_information(s: &DeviceSession) -> OnvifResult<DeviceInformation> {
    let op = ops::GET_DEVICE_INFORMATION;
    Ok(parse_device_information(&s.call(op, &req(op, "")).await?))
}

pub fn parse_device_information(e: &Element) -> DeviceInformation {
    let t = |n: &str| e.text_at(&[n]).unwrap_or_default();
    DeviceInformation {
        manufacturer: t("Manufacturer"),
        model: t("Model"),
        firmware_version: t("FirmwareVersion"),
        serial_number: t("SerialNumber"),
        hardware_id: t("HardwareId"),
    }
}

pub async fn get_services(s: &DeviceSession) -> OnvifResult<Vec<ServiceInfo>> {
    let op = ops::GET_SERVICES;
    let body = req(op, "<tds:IncludeCapability>true</tds:IncludeCapability>");
    Ok(parse_services(&s.call(op, &body).await?))
}

pub fn parse_services(e: &Element) -> Vec<ServiceInfo> {
    e.children_local("Service")
        .filter_map(|svc| {
            let namespace = svc.text_at(&["Namespace"])?;
            let xaddr = svc.text_at(&["XAddr"])?;
            let version = svc.child_local("Version").and_then(|v| {
                Some((
                    v.text_at(&["Major"])?.parse().ok()?,
                    v.text_at(&["Minor"])?.parse().unwrap_or(0),
                ))
            });
            let mut capabilities = Vec::new();
            if let Some(caps) = svc.child_local("Capabilities") {
                for c in &caps.children {
                    for a in &c.attrs {
                        capabilities.push((a.local.clone(), a.value.clone()));
                    }
                    for cc in &c.children {
                        for a in &cc.attrs {
                            capabilities
                                .push((format!("{}.{}", cc.local, a.local), a.value.clone()));
                        }
                    }
                }
            }
            Some(ServiceInfo {
                service: Service::from_namespace(&namespace),
                namespace,
                xaddr,
                version,
                capabilities,
            })
        })
        .collect()
}

pub async fn get_capabilities(s: &DeviceSession) -> OnvifResult<Vec<ServiceInfo>> {
    let op = ops::GET_CAPABILITIES;
    let body = req(op, "<tds:Category>All</tds:Category>");
    Ok(parse_capabilities(&s.call(op, &body).await?))
}

/// GetCapabilities, mapped onto the GetServices shape so callers merge one list.
pub fn parse_capabilities(e: &Element) -> Vec<ServiceInfo> {
    let caps = e.child_local("Capabilities").unwrap_or(e);
    let mut out = Vec::new();
    let mut push = |svc: Service, el: &Element| {
        if let Some(x) = el.text_at(&["XAddr"]) {
            out.push(ServiceInfo {
                namespace: svc.namespace().to_string(),
                service: Some(svc),
                xaddr: x,
                version: None,
                capabilities: Vec::new(),
            });
        }
    };
    for (name, svc) in [
        ("Device", Service::Device),
        ("Media", Service::Media),
        ("Events", Service::Events),
        ("Imaging", Service::Imaging),
        ("PTZ", Service::Ptz),
        ("Analytics", Service::Analytics),
    ] {
        if let Some(el) = caps.child_local(name) {
            push(svc, el);
        }
    }
    if let Some(ext) = caps.child_local("Extension") {
        for (name, svc) in [
            ("DeviceIO", Service::DeviceIo),
            ("Recording", Service::Recording),
            ("Search", Service::Search),
            ("Replay", Service::Replay),
        ] {
            if let Some(el) = ext.child_local(name) {
                push(svc, el);
            }
        }
    }
    out
}

pub async fn get_scopes(s: &DeviceSession) -> OnvifResult<Scopes> {
    let op = ops::GET_SCOPES;
    Ok(parse_scopes(&s.call(op, &req(op, "")).await?))
}

pub fn parse_scopes(e: &Element) -> Scopes {
    Scopes::from_uris(e.children_local("Scopes").filter_map(|sc| {
        sc.text_at(&["ScopeItem"])
            .or_else(|| sc.text_trimmed().map(String::from))
    }))
}

pub async fn get_hostname(s: &DeviceSession) -> OnvifResult<Hostname> {
    let op = ops::GET_HOSTNAME;
    Ok(parse_hostname(&s.call(op, &req(op, "")).await?))
}

pub fn parse_hostname(e: &Element) -> Hostname {
    let h = e.child_local("HostnameInformation").unwrap_or(e);
    Hostname {
        name: h.text_at(&["Name"]),
        from_dhcp: h.text_at(&["FromDHCP"]).is_some_and(|v| is_true(&v)),
    }
}

pub async fn get_network_interfaces(s: &DeviceSession) -> OnvifResult<Vec<NetworkInterface>> {
    let op = ops::GET_NETWORK_INTERFACES;
    Ok(parse_network_interfaces(&s.call(op, &req(op, "")).await?))
}

pub fn parse_network_interfaces(e: &Element) -> Vec<NetworkInterface> {
    e.children_local("NetworkInterfaces")
        .map(|ni| {
            let ipv4 = ni.child_local("IPv4");
            let cfg = ipv4.and_then(|i| i.child_local("Config"));
            let mut addrs = Vec::new();
            if let Some(cfg) = cfg {
                for key in ["Manual", "FromDHCP", "LinkLocal"] {
                    for a in cfg.children_local(key) {
                        if let Some(addr) = a.text_at(&["Address"]) {
                            let prefix = a.text_at(&["PrefixLength"]).unwrap_or_default();
                            addrs.push(if prefix.is_empty() {
                                addr
                            } else {
                                format!("{addr}/{prefix}")
                            });
                        }
                    }
                }
            }
            NetworkInterface {
                token: ni.attr("token").unwrap_or_default().to_string(),
                enabled: ni.text_at(&["Enabled"]).is_none_or(|v| is_true(&v)),
                name: ni.text_at(&["Info", "Name"]),
                mac: ni
                    .text_at(&["Info", "HwAddress"])
                    .and_then(|m| normalise_mac(&m)),
                ipv4: addrs,
                ipv4_dhcp: cfg
                    .and_then(|c| c.text_at(&["DHCP"]))
                    .is_some_and(|v| is_true(&v)),
            }
        })
        .collect()
}

/// `AA-BB-CC-DD-EE-FF`, `aabbccddeeff`, `aa:bb:…` → `aa:bb:cc:dd:ee:ff`.
pub fn normalise_mac(m: &str) -> Option<String> {
    let hex: String = m.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if hex.len() != 12 {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &lower[i * 2..i * 2 + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}

pub async fn get_ntp(s: &DeviceSession) -> OnvifResult<NtpInfo> {
    let op = ops::GET_NTP;
    Ok(parse_ntp(&s.call(op, &req(op, "")).await?))
}

pub fn parse_ntp(e: &Element) -> NtpInfo {
    let n = e.child_local("NTPInformation").unwrap_or(e);
    let mut servers = Vec::new();
    for key in ["NTPManual", "NTPFromDHCP"] {
        servers.extend(n.children_local(key).filter_map(parse_network_host));
    }
    NtpInfo {
        from_dhcp: n.text_at(&["FromDHCP"]).is_some_and(|v| is_true(&v)),
        servers,
    }
}

pub async fn get_dns(s: &DeviceSession) -> OnvifResult<DnsInfo> {
    let op = ops::GET_DNS;
    Ok(parse_dns(&s.call(op, &req(op, "")).await?))
}

pub fn parse_dns(e: &Element) -> DnsInfo {
    let d = e.child_local("DNSInformation").unwrap_or(e);
    let mut servers = Vec::new();
    for key in ["DNSManual", "DNSFromDHCP"] {
        servers.extend(d.children_local(key).filter_map(parse_network_host));
    }
    DnsInfo {
        from_dhcp: d.text_at(&["FromDHCP"]).is_some_and(|v| is_true(&v)),
        search_domains: d
            .children_local("SearchDomain")
            .filter_map(|s| s.text_trimmed().map(String::from))
            .collect(),
        servers,
    }
}

/// ONVIF NetworkHost / IPAddress: Type plus one of IPv4Address, IPv6Address, DNSname.
pub fn parse_network_host(e: &Element) -> Option<NetworkHost> {
    if let Some(v) = e.text_at(&["DNSname"]) {
        return Some(NetworkHost::Dns(v));
    }
    if let Some(v) = e.text_at(&["IPv4Address"]) {
        return Some(NetworkHost::Ipv4(v));
    }
    if let Some(v) = e.text_at(&["IPv6Address"]) {
        return Some(NetworkHost::Ipv6(v));
    }
    None
}

pub async fn get_users(s: &DeviceSession) -> OnvifResult<Vec<User>> {
    let op = ops::GET_USERS;
    Ok(parse_users(&s.call(op, &req(op, "")).await?))
}

pub fn parse_users(e: &Element) -> Vec<User> {
    e.children_local("User")
        .filter_map(|u| {
            Some(User {
                username: u.text_at(&["Username"])?,
                level: u.text_at(&["UserLevel"]).unwrap_or_default(),
            })
        })
        .collect()
}

pub(crate) fn is_true(v: &str) -> bool {
    let v = v.trim();
    v.eq_ignore_ascii_case("true") || v == "1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_normalised() {
        assert_eq!(
            normalise_mac("AA-BB-CC-00-11-22").as_deref(),
            Some("aa:bb:cc:00:11:22")
        );
        assert_eq!(
            normalise_mac("aabbcc001122").as_deref(),
            Some("aa:bb:cc:00:11:22")
        );
        assert_eq!(normalise_mac("nonsense"), None);
    }
}
