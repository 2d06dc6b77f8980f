//! WS-Discovery (2005/04, WS-Addressing 2004/08) messages: building Probes,
//! reading ProbeMatches, Hello and Bye — with or without the `ProbeMatches`
//! wrapper, SOAP 1.1 or 1.2, any prefixes.

use std::net::IpAddr;

use crate::onvif::ns;
use crate::onvif::types::Scopes;
use crate::xml::{self, Element, XmlError};

pub const ACTION_PROBE: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe";
pub const ACTION_PROBE_MATCHES: &str =
    "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches";
pub const ACTION_HELLO: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Hello";
pub const ACTION_BYE: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Bye";
pub const TO_DISCOVERY: &str = "urn:schemas-xmlsoap-org:ws:2005:04:discovery";
pub const TO_ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// The device types we probe for: ONVIF NVTs, and the generic device type
/// that some recorders and encoders answer to instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeType {
    NetworkVideoTransmitter,
    Device,
}

impl ProbeType {
    pub const ALL: [ProbeType; 2] = [ProbeType::NetworkVideoTransmitter, ProbeType::Device];

    fn qname(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ProbeType::NetworkVideoTransmitter => ("dn", ns::DN, "NetworkVideoTransmitter"),
            ProbeType::Device => ("tds", ns::TDS, "Device"),
        }
    }
}

pub fn new_message_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// One Probe per [`ProbeType`] with fresh MessageIDs, and the set of those
/// IDs for matching answers by RelatesTo.
pub fn probe_set() -> (Vec<String>, std::collections::HashSet<String>) {
    let mut bodies = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for t in ProbeType::ALL {
        let id = new_message_id();
        bodies.push(build_probe(&id, t));
        ids.insert(id);
    }
    (bodies, ids)
}

/// A Probe for one type.
pub fn build_probe(message_id: &str, ty: ProbeType) -> String {
    let (prefix, uri, local) = ty.qname();
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="{soap}" xmlns:a="{wsa}" xmlns:d="{wsd}" xmlns:{prefix}="{uri}">"#,
            r#"<s:Header><a:Action s:mustUnderstand="1">{action}</a:Action>"#,
            r#"<a:MessageID>{mid}</a:MessageID>"#,
            r#"<a:ReplyTo><a:Address>{anon}</a:Address></a:ReplyTo>"#,
            r#"<a:To s:mustUnderstand="1">{to}</a:To></s:Header>"#,
            r#"<s:Body><d:Probe><d:Types>{prefix}:{local}</d:Types></d:Probe></s:Body></s:Envelope>"#
        ),
        soap = ns::SOAP12,
        wsa = ns::WSA_2004,
        wsd = ns::WSD,
        prefix = prefix,
        uri = uri,
        action = ACTION_PROBE,
        mid = xml::escape(message_id),
        anon = TO_ANONYMOUS,
        to = TO_DISCOVERY,
        local = local,
    )
}

/// `AppSequence` header: orders Hello/Bye from one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSequence {
    pub instance_id: u64,
    pub message_number: u64,
}

impl AppSequence {
    /// True when `self` was sent after `other` by the same device.
    pub fn is_newer_than(&self, other: &AppSequence) -> bool {
        (self.instance_id, self.message_number) > (other.instance_id, other.message_number)
    }
}

/// One device as announced in a ProbeMatch or Hello.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeMatch {
    /// EndpointReference address, normally `urn:uuid:…`: the device's identity.
    pub endpoint: String,
    pub types: Vec<String>,
    pub scopes: Scopes,
    pub xaddrs: Vec<String>,
    pub metadata_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    ProbeMatches(Vec<ProbeMatch>),
    Hello(Box<ProbeMatch>),
    Bye { endpoint: String },
    Probe { types: Vec<String> },
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: Option<String>,
    pub relates_to: Option<String>,
    pub reply_to: Option<String>,
    pub app_sequence: Option<AppSequence>,
    pub kind: MessageKind,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("not a SOAP envelope")]
    NotEnvelope,
}

/// Parse any WS-Discovery datagram we care about.
pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
    let root = xml::parse(bytes)?;
    if root.local != "Envelope" {
        return Err(MessageError::NotEnvelope);
    }
    let header = root.child_local("Header");
    let h = |name: &str| header.and_then(|h| h.text_at(&[name]));
    let app_sequence = header
        .and_then(|h| h.child_local("AppSequence"))
        .and_then(|a| {
            Some(AppSequence {
                instance_id: a.attr("InstanceId")?.trim().parse().ok()?,
                message_number: a.attr("MessageNumber")?.trim().parse().ok()?,
            })
        });
    let body = root.child_local("Body").ok_or(MessageError::NotEnvelope)?;
    let action = h("Action").unwrap_or_default();
    let kind = classify_body(body, &action);
    Ok(Message {
        message_id: h("MessageID"),
        relates_to: h("RelatesTo"),
        reply_to: header.and_then(|h| h.text_at(&["ReplyTo", "Address"])),
        app_sequence,
        kind,
    })
}

fn classify_body(body: &Element, action: &str) -> MessageKind {
    if let Some(pm) = body.child_local("ProbeMatches") {
        return MessageKind::ProbeMatches(
            pm.children_local("ProbeMatch")
                .filter_map(read_match)
                .collect(),
        );
    }
    // Some cameras send the ProbeMatch elements straight in the body.
    let bare: Vec<ProbeMatch> = body
        .children_local("ProbeMatch")
        .filter_map(read_match)
        .collect();
    if !bare.is_empty() {
        return MessageKind::ProbeMatches(bare);
    }
    if let Some(hello) = body.child_local("Hello")
        && let Some(m) = read_match(hello)
    {
        return MessageKind::Hello(Box::new(m));
    }
    if let Some(bye) = body.child_local("Bye")
        && let Some(ep) = endpoint_of(bye)
    {
        return MessageKind::Bye { endpoint: ep };
    }
    if let Some(probe) = body.child_local("Probe") {
        return MessageKind::Probe {
            types: probe
                .text_at(&["Types"])
                .map(|t| t.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
        };
    }
    MessageKind::Other(action.to_string())
}

fn endpoint_of(e: &Element) -> Option<String> {
    e.text_at(&["EndpointReference", "Address"])
}

fn read_match(e: &Element) -> Option<ProbeMatch> {
    let endpoint = endpoint_of(e)?;
    let list = |name: &str| -> Vec<String> {
        e.text_at(&[name])
            .map(|t| t.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    };
    Some(ProbeMatch {
        endpoint,
        types: list("Types"),
        scopes: Scopes::from_uris(list("Scopes")),
        xaddrs: list("XAddrs"),
        metadata_version: e.text_at(&["MetadataVersion"]).and_then(|v| v.parse().ok()),
    })
}

/// Order XAddrs for trying: the one on the responder's source address first,
/// then the other routable ones; IPv6 link-local and unparseable ones last.
pub fn order_xaddrs(xaddrs: &[String], source: Option<IpAddr>) -> Vec<String> {
    let mut scored: Vec<(u8, usize, &String)> = xaddrs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let host = url::Url::parse(x).ok().and_then(|u| match u.host() {
                Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
                Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
                _ => None,
            });
            let score = match host {
                Some(IpAddr::V6(a)) if (a.segments()[0] & 0xffc0) == 0xfe80 => 3,
                Some(h) if Some(h) == source => 0,
                Some(_) => 1,
                None if x.starts_with("http") => 2,
                None => 4,
            };
            (score, i, x)
        })
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, _, x)| x.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_wsa_2004_with_type() {
        let p = build_probe("urn:uuid:1", ProbeType::NetworkVideoTransmitter);
        assert!(p.contains(ns::WSA_2004));
        assert!(p.contains("dn:NetworkVideoTransmitter"));
        let m = parse(p.as_bytes()).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("urn:uuid:1"));
        assert!(
            matches!(m.kind, MessageKind::Probe { ref types } if types == &["dn:NetworkVideoTransmitter"])
        );
    }

    #[test]
    fn link_local_goes_last_source_first() {
        let x = vec![
            "http://[fe80::1]/onvif/device_service".to_string(),
            "http://10.0.0.1/onvif/device_service".to_string(),
            "http://127.0.0.1:8080/onvif/device_service".to_string(),
        ];
        let o = order_xaddrs(&x, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(o[0], x[2]);
        assert_eq!(o[1], x[1]);
        assert_eq!(o[2], x[0]);
    }

    #[test]
    fn app_sequence_orders_by_instance_then_number() {
        let a = AppSequence {
            instance_id: 5,
            message_number: 9,
        };
        let b = AppSequence {
            instance_id: 6,
            message_number: 1,
        };
        assert!(b.is_newer_than(&a));
        assert!(!a.is_newer_than(&b));
    }
}
