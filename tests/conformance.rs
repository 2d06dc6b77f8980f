//! Every ONVIF operation camfleet sends, sent once against the simulator
//! with its capture on: the adopt sequence (Media2, Media1 and a camera
//! without GetServices), a poll, every device read and provisioning write
//! (users, network, NTP/DNS, hostname, scopes, discovery mode, clock,
//! encoder configurations), events, recording search and replay, both
//! firmware paths (the HTTP upload and the MTOM UpgradeSystemFirmware), the
//! configuration backup, the reboot and a WS-Discovery Probe.
//!
//! Here it checks that each operation declared in `wsdl/` went on the wire.
//! With `CAMFLEET_CONFORMANCE_OUT=DIR` it also writes every exchange there,
//! for `tests/conformance/run.sh`, which validates each request and each
//! answer against the official ONVIF schemas. The files are written by this
//! test; the product never writes SOAP bodies anywhere.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use camfleet::clock::SharedClock;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::inventory::Inventory;
use camfleet::fleet::poller::{Poller, PollerConfig};
use camfleet::onvif::config::{self, UserWrite};
use camfleet::onvif::media::{self, MediaVersion};
use camfleet::onvif::session::{DevicePolicy, DeviceSession};
use camfleet::onvif::types::NetworkHost;
use camfleet::onvif::{AuthMode, device, encoder, events, firmware, recording};
use camfleet::secrets::SecretBox;
use camfleet::sim::capture::{Capture, Exchange};
use camfleet::sim::{FleetConfig, Quirks, WsdConfig};
use common::*;

fn quirks(spec: &str) -> Quirks {
    let mut q = Quirks::default();
    q.apply(spec).unwrap();
    q
}

fn session(url: &str, clock: &SharedClock) -> DeviceSession {
    DeviceSession::new(
        transport(),
        clock.clone(),
        url::Url::parse(url).unwrap(),
        Some(admin()),
        DevicePolicy {
            auth_mode: Some(AuthMode::WsSecurity),
            ..DevicePolicy::default()
        },
    )
}

/// The operations `wsdl/` declares.
fn declared_operations() -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for entry in std::fs::read_dir("wsdl").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wsdl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for part in text.split("operation name=\"").skip(1) {
            if let Some(name) = part.split('"').next() {
                ops.insert(name.to_string());
            }
        }
    }
    ops
}

/// The local name of a request's body element (the root part of an MTOM
/// request), found by text: the checker parses properly.
fn operation_of(e: &Exchange) -> Option<String> {
    let text = String::from_utf8_lossy(&e.request);
    let body = &text[text.find(":Body")?..];
    let start = body[1..].find('<')? + 2;
    let tag = &body[start..];
    let end = tag.find([' ', '>', '/'])?;
    let name = &tag[..end];
    Some(name.rsplit(':').next().unwrap_or(name).to_string())
}

#[tokio::test]
async fn every_declared_operation_goes_on_the_wire_and_is_captured() {
    let clock = system_clock();
    let capture = Capture::default();
    let wsd_port = free_udp_port();
    let mut cfg = FleetConfig::new(7, 0);
    cfg.capture = Some(capture.clone());
    cfg.wsd = Some(WsdConfig {
        port: wsd_port,
        max_delay: Duration::ZERO,
        ..WsdConfig::default()
    });
    // 0: the default camera (Media2, WS-Security); 1: Media1 only;
    // 2: no GetServices (GetCapabilities instead); 3: the legacy firmware
    // path (MTOM UpgradeSystemFirmware); 4: a backup inlined as base64 (a
    // deliberate deviation, listed in the checker); 5: a clock without
    // UTCDateTime; 6: unusual namespace prefixes, SOAP 1.1.
    let specs = [
        "",
        "media1",
        "no-getservices",
        "legacy-firmware",
        "inline-backup",
        "no-utc",
        "prefixes,soap11",
    ];
    for (i, spec) in specs.iter().enumerate().skip(1) {
        cfg.overrides.insert(i as u32, quirks(spec));
    }
    let fleet = fleet_with(cfg).await;
    let t = transport();

    // WS-Discovery: a directed Probe (no multicast needed).
    let probe = camfleet::discovery::probe::ProbeConfig {
        port: wsd_port,
        window: Duration::from_millis(800),
        send_at: vec![Duration::ZERO],
        ..Default::default()
    };
    let found = camfleet::discovery::probe::unicast(&probe, std::net::Ipv4Addr::LOCALHOST, |_| {})
        .await
        .unwrap();
    assert!(found.devices.len() >= specs.len(), "{found:?}");

    // The adopt sequence on each kind of camera.
    let mut adopted = Vec::new();
    for i in 0..specs.len() {
        adopted.push(
            camfleet::onvif::adopt(&t, &clock, request(fleet.device_url(i), Some(admin())))
                .await
                .unwrap(),
        );
    }

    // A poll, as the poller sends it (identity included).
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[9u8; 32]));
    let inv = Inventory::new(db.clone(), secrets.clone(), clock.clone());
    inv.record_adoption(
        &adopted[0],
        Some("urn:uuid:conformance-0"),
        &[],
        Some(&admin()),
        None,
        &Actor::system(),
    )
    .await
    .unwrap();
    let poller = Poller::new(
        db.clone(),
        secrets,
        transport(),
        clock.clone(),
        PollerConfig {
            info_interval: Duration::ZERO,
            ..PollerConfig::default()
        },
    );
    let targets = camfleet::fleet::poller::targets(&db).await.unwrap();
    let r = poller.poll_devices(targets).await.unwrap();
    assert_eq!(r.answered, 1);

    // Every device read and write, on camera 0.
    let s = session(&fleet.device_url(0), &clock);
    device::get_capabilities(&s).await.unwrap();
    device::get_hostname(&s).await.unwrap();
    let nics = device::get_network_interfaces(&s).await.unwrap();
    device::get_ntp(&s).await.unwrap();
    device::get_dns(&s).await.unwrap();
    device::get_users(&s).await.unwrap();
    device::get_scopes(&s).await.unwrap();
    config::get_discovery_mode(&s).await.unwrap();
    config::set_hostname(&s, "lobby-cam-01").await.unwrap();
    config::set_hostname_from_dhcp(&s, false).await.unwrap();
    config::set_ntp(
        &s,
        false,
        &[
            NetworkHost::Dns("ntp.example.net".into()),
            NetworkHost::Ipv4("192.0.2.123".into()),
        ],
    )
    .await
    .unwrap();
    config::set_ntp(&s, true, &[]).await.unwrap();
    config::set_dns(
        &s,
        false,
        &["example.net".into()],
        &[NetworkHost::Ipv4("192.0.2.53".into())],
    )
    .await
    .unwrap();
    config::set_system_date_and_time(
        &s,
        false,
        Some("CET-1CEST,M3.5.0,M10.5.0/3"),
        Some(chrono::Utc::now()),
    )
    .await
    .unwrap();
    config::set_system_date_and_time(&s, true, None, None)
        .await
        .unwrap();
    let operator = UserWrite {
        username: "operator7".into(),
        password: "Op3rator-pass".into(),
        level: "Operator".into(),
    };
    config::create_users(&s, std::slice::from_ref(&operator))
        .await
        .unwrap();
    config::set_user(
        &s,
        &UserWrite {
            password: "Op3rator-pass-2".into(),
            ..operator.clone()
        },
    )
    .await
    .unwrap();
    config::delete_users(&s, &["operator7".into()])
        .await
        .unwrap();
    config::set_discovery_mode(&s, false).await.unwrap();
    config::set_discovery_mode(&s, true).await.unwrap();
    config::set_scopes(
        &s,
        &[
            "onvif://www.onvif.org/name/lobby".into(),
            "onvif://www.onvif.org/location/north".into(),
        ],
    )
    .await
    .unwrap();
    let nic = nics.first().expect("an interface");
    config::set_ipv4(
        &s,
        &nic.token,
        false,
        Some(("127.0.0.1".parse().unwrap(), 8)),
    )
    .await
    .unwrap();
    config::set_ipv4(&s, &nic.token, true, None).await.unwrap();

    // Encoder configurations, Media2 on camera 0 and Media1 on camera 1.
    for (cam, v) in [(0, MediaVersion::V20), (1, MediaVersion::V10)] {
        let s = session(&fleet.device_url(cam), &clock);
        let encoders = media::get_video_encoder_configurations(&s, v)
            .await
            .unwrap();
        let e = encoders.first().expect("an encoder").clone();
        encoder::get_options(&s, v, &e.token).await.unwrap();
        encoder::set_encoder(&s, v, &e).await.unwrap();
    }

    // Events: subscribe, pull, renew, unsubscribe.
    let events_url = url::Url::parse(&format!(
        "http://{}/onvif/events_service",
        fleet.cameras()[0].addr
    ))
    .unwrap();
    let sub = events::create_pull_point(&s, &events_url, "PT60S")
        .await
        .unwrap();
    // Two notifications to carry (the answer's NotificationMessage too).
    let cam = &fleet.cameras()[0];
    cam.events.push(
        camfleet::sim::events::SimEvent::storage_failure(true),
        cam.camera_now(),
    );
    cam.events.push(
        camfleet::sim::events::SimEvent::tamper(true),
        cam.camera_now(),
    );
    let pulled =
        events::pull_messages(&s, &sub, Duration::from_secs(1), 10, Duration::from_secs(5))
            .await
            .unwrap();
    assert!(pulled.messages.len() >= 2, "{pulled:?}");
    events::renew(&s, &sub, "PT120S").await.unwrap();
    events::unsubscribe(&s, &sub).await.unwrap();

    // Recording search and replay.
    let recordings = recording::get_recordings(&s).await.unwrap();
    recording::get_recording_summary(&s).await.unwrap();
    recording::find_recordings(&s, 4).await.unwrap();
    recording::get_replay_uri(&s, recordings.first().expect("a recording"))
        .await
        .unwrap();

    // The configuration backup (MTOM, and inline on camera 4), and the
    // restore of the MTOM one (its files as MTOM attachments).
    let backup = config::get_system_backup(&s).await.unwrap();
    config::get_system_backup(&session(&fleet.device_url(4), &clock))
        .await
        .unwrap();
    config::restore_system(&s, backup, Duration::from_secs(30))
        .await
        .unwrap();

    // Firmware: the HTTP upload path, and MTOM on the legacy camera.
    let image = Bytes::from(camfleet::sim::config::sim_image("9.9.9", 64 * 1024));
    let ticket = firmware::start_firmware_upgrade(&s).await.unwrap();
    firmware::upload(&s, &ticket, image.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    let legacy = session(&fleet.device_url(3), &clock);
    firmware::upgrade_system_firmware(&legacy, image, Duration::from_secs(30))
        .await
        .unwrap();

    // A reboot (camera 0 restarts with its new firmware).
    config::system_reboot(&session(&fleet.device_url(1), &clock))
        .await
        .unwrap();

    let exchanges = capture.take();
    let sent: BTreeSet<String> = exchanges.iter().filter_map(operation_of).collect();
    let missing: Vec<_> = declared_operations()
        .into_iter()
        .filter(|op| !sent.contains(op))
        .collect();
    assert!(missing.is_empty(), "never sent: {missing:?}");
    assert!(exchanges.iter().any(|e| e.transport == "udp"));

    if let Ok(dir) = std::env::var("CAMFLEET_CONFORMANCE_OUT") {
        write_out(std::path::Path::new(&dir), &exchanges, &specs);
    }
    fleet.shutdown().await;
}

/// `DIR/index.json` and one file per request and answer.
fn write_out(dir: &std::path::Path, exchanges: &[Exchange], specs: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut index = Vec::new();
    for (n, e) in exchanges.iter().enumerate() {
        let req = format!("{n:04}.req");
        let resp = format!("{n:04}.resp");
        std::fs::write(dir.join(&req), &e.request).unwrap();
        std::fs::write(dir.join(&resp), &e.response).unwrap();
        let quirks = specs.get(e.camera as usize).copied().unwrap_or("");
        index.push(serde_json::json!({
            "n": n,
            "camera": e.camera,
            "quirks": quirks,
            "transport": e.transport,
            "path": e.path,
            "request": req,
            "request_type": e.request_type,
            "status": e.status,
            "response": resp,
            "response_type": e.response_type,
        }));
    }
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
}
