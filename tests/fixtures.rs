//! Golden fixtures, one per field quirk, each named after the behaviour it
//! captures (see tests/fixtures/README.md). They run through the same parsers
//! the client uses on the wire.

use camfleet::discovery::message::{self, MessageKind};
use camfleet::onvif::envelope::{self, Reply, SoapVersion};
use camfleet::onvif::fault::{FaultClass, classify};
use camfleet::onvif::{NetworkHost, address, device, media, time, wsse};

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn body(name: &str) -> camfleet::xml::Element {
    match envelope::parse(&fixture(name)).unwrap().reply {
        Reply::Body(b) => b,
        Reply::Fault(f) => panic!("{name}: unexpected fault {f}"),
    }
}

fn fault_class(name: &str, status: u16) -> FaultClass {
    match envelope::parse(&fixture(name)).unwrap().reply {
        Reply::Fault(f) => classify(status, Some(&f)),
        Reply::Body(_) => panic!("{name}: expected a fault"),
    }
}

#[test]
fn fault_as_http_200() {
    assert_eq!(
        fault_class("fault_as_http_200.xml", 200),
        FaultClass::Unauthorized
    );
}

#[test]
fn not_authorized_only_in_reason_text() {
    assert_eq!(
        fault_class("not_authorized_only_in_reason_text.xml", 500),
        FaultClass::Unauthorized
    );
}

#[test]
fn account_locked_after_attempts() {
    assert_eq!(
        fault_class("account_locked_after_attempts.xml", 500),
        FaultClass::Unauthorized
    );
}

#[test]
fn soap11_wsse_failed_authentication() {
    assert_eq!(
        fault_class("soap11_wsse_failed_authentication.xml", 500),
        FaultClass::Unauthorized
    );
}

#[test]
fn soap11_device_information() {
    let p = envelope::parse(&fixture("soap11_device_information.xml")).unwrap();
    assert_eq!(p.version, SoapVersion::Soap11);
    let Reply::Body(b) = p.reply else { panic!() };
    assert_eq!(device::parse_device_information(&b).model, "L-100");
}

#[test]
fn undeclared_prefix_in_body() {
    let info = device::parse_device_information(&body("undeclared_prefix_in_body.xml"));
    assert_eq!(info.manufacturer, "Budget");
    assert_eq!(info.serial_number, "B0001");
}

#[test]
fn bom_before_xml_declaration() {
    let h = device::parse_hostname(&body("bom_before_xml_declaration.xml"));
    assert_eq!(h.name.as_deref(), Some("bom-cam"));
}

#[test]
fn latin1_bytes_in_device_information() {
    let info = device::parse_device_information(&body("latin1_bytes_in_device_information.xml"));
    assert_eq!(info.manufacturer, "C\u{fffd}mara S.A.");
    assert_eq!(info.model, "M1", "the other fields survive");
}

#[test]
fn utc_missing_local_time_with_posix_tz() {
    let t =
        time::parse_system_date_time(&body("utc_missing_local_time_with_posix_tz.xml")).unwrap();
    assert!(t.derived_from_local);
    assert_eq!(t.utc.to_rfc3339(), "2026-11-26T10:30:15+00:00");
}

#[test]
fn invalid_month_in_utc_date() {
    // UTC has month 13: fall back to local time (second 60 clamped) + TZ.
    let t = time::parse_system_date_time(&body("invalid_month_in_utc_date.xml")).unwrap();
    assert!(t.derived_from_local);
    assert_eq!(t.utc.to_rfc3339(), "2026-11-26T10:00:59+00:00");
}

#[test]
fn probe_match_without_wrapper() {
    let m = message::parse(&fixture("probe_match_without_wrapper.xml")).unwrap();
    assert_eq!(m.relates_to.as_deref(), Some("urn:uuid:probe-1"));
    let MessageKind::ProbeMatches(v) = m.kind else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].endpoint, "urn:uuid:cam-nowrap");
    assert_eq!(v[0].scopes.name.as_deref(), Some("Front Door"));
    assert_eq!(v[0].scopes.location.as_deref(), Some("building/2"));
    assert_eq!(v[0].metadata_version, Some(10));
}

#[test]
fn probe_match_soap11_envelope() {
    let m = message::parse(&fixture("probe_match_soap11_envelope.xml")).unwrap();
    let MessageKind::ProbeMatches(v) = m.kind else {
        panic!()
    };
    assert_eq!(v[0].endpoint, "urn:uuid:cam-soap11");
}

#[test]
fn link_local_xaddr_listed_first() {
    let m = message::parse(&fixture("link_local_xaddr_listed_first.xml")).unwrap();
    let MessageKind::ProbeMatches(v) = m.kind else {
        panic!()
    };
    let order = message::order_xaddrs(&v[0].xaddrs, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(order[0], "http://127.0.0.1:8080/onvif/device_service");
    assert!(order[2].contains("fe80"), "{order:?}");
}

#[test]
fn urn_uuid_xaddr() {
    let m = message::parse(&fixture("urn_uuid_xaddr.xml")).unwrap();
    let MessageKind::ProbeMatches(v) = m.kind else {
        panic!()
    };
    let order = message::order_xaddrs(&v[0].xaddrs, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(order[0], "http://127.0.0.1:8081/onvif/device_service");
    assert_eq!(order.last().map(String::as_str), Some("urn:uuid:cam-urn"));
    assert!(address::repair("urn:uuid:cam-urn").is_none());
}

#[test]
fn doubled_port_in_service_xaddr() {
    let reached = url::Url::parse("http://127.0.0.1:8080/onvif/device_service").unwrap();
    let svcs = device::parse_services(&body("doubled_port_in_service_xaddr.xml"));
    let fixed: Vec<String> = svcs
        .iter()
        .map(|s| {
            address::rewrite(&s.xaddr, &reached)
                .unwrap()
                .url
                .to_string()
        })
        .collect();
    assert_eq!(fixed[0], "http://127.0.0.1/onvif/device_service");
    assert_eq!(
        fixed[1], "http://127.0.0.1:8080/onvif/Media",
        "empty host repaired"
    );
    assert_eq!(svcs[0].version, Some((2, 5)));
}

#[test]
fn capabilities_only_old_firmware() {
    let caps = device::parse_capabilities(&body("capabilities_only_old_firmware.xml"));
    use camfleet::onvif::ops::Service::*;
    let kinds: Vec<_> = caps.iter().filter_map(|c| c.service).collect();
    for k in [Device, Events, Media, Recording, Search, Replay] {
        assert!(kinds.contains(&k), "{k:?} in {kinds:?}");
    }
}

#[test]
fn mac_uppercase_with_dashes() {
    let ifs = device::parse_network_interfaces(&body("mac_uppercase_with_dashes.xml"));
    assert_eq!(ifs[0].mac.as_deref(), Some("44:19:b6:0a:0b:0c"));
    assert!(ifs[0].ipv4_dhcp);
    assert_eq!(ifs[0].ipv4, vec!["10.0.0.7/24"]);
}

#[test]
fn ntp_mixed_ipv4_and_dns() {
    let n = device::parse_ntp(&body("ntp_mixed_ipv4_and_dns.xml"));
    assert_eq!(
        n.servers,
        vec![
            NetworkHost::Ipv4("10.0.0.1".into()),
            NetworkHost::Dns("ntp.example.test".into()),
            NetworkHost::Ipv6("2001:db8::1".into())
        ]
    );
}

#[test]
fn media2_encoder_attributes() {
    let p = media::parse_profiles(&body("media2_encoder_attributes.xml"));
    let e = p[0].encoder.as_ref().unwrap();
    assert_eq!(e.encoding, "H265");
    assert_eq!((e.width, e.height), (Some(2688), Some(1520)));
    assert_eq!(e.gov_length, Some(60));
    assert_eq!(e.profile.as_deref(), Some("Main"));
    assert_eq!(e.frame_rate_limit, Some(20.0));
    assert_eq!(p[0].video_source_token.as_deref(), Some("src0"));
}

#[test]
fn mismatched_closing_prefix() {
    let h = device::parse_hostname(&body("mismatched_closing_prefix.xml"));
    assert_eq!(h.name.as_deref(), Some("sloppy"));
}

#[test]
fn html_error_page_with_200() {
    assert!(matches!(
        envelope::parse(&fixture("html_error_page_with_200.xml")),
        Err(envelope::EnvelopeError::NotEnvelope(_))
    ));
}

#[test]
fn hikvision_rejects_offset_timestamps() {
    let text = String::from_utf8(fixture("hikvision_rejects_offset_timestamps.txt")).unwrap();
    let mut lines = text.lines().skip(2);
    let refused: Vec<&str> = lines.by_ref().take_while(|l| *l != "accepted:").collect();
    let accepted: Vec<&str> = lines.collect();
    for r in &refused {
        assert!(
            !camfleet::sim::http::created_is_strict(r),
            "simulator must refuse {r}"
        );
    }
    for a in &accepted {
        assert!(
            camfleet::sim::http::created_is_strict(a),
            "simulator must accept {a}"
        );
    }
    // And what we send is always of the accepted shape.
    let t = chrono::Utc::now();
    assert!(camfleet::sim::http::created_is_strict(
        &wsse::format_created(t)
    ));
}

#[test]
fn www_authenticate_md5_and_sha256() {
    let text = String::from_utf8(fixture("www_authenticate_md5_and_sha256.txt")).unwrap();
    let mut h = http::HeaderMap::new();
    h.append(http::header::WWW_AUTHENTICATE, text.trim().parse().unwrap());
    let (_, scheme) = camfleet::onvif::httpauth::choose(&h, false).unwrap();
    assert_eq!(scheme, camfleet::onvif::httpauth::HttpScheme::DigestSha256);
}
