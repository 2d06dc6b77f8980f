//! WS-Discovery against the simulator, on loopback only: every socket here
//! names 127.0.0.1 as its multicast interface, and each test uses its own
//! port so parallel tests do not hear each other.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use camfleet::discovery::hello::{Announcement, HelloListener};
use camfleet::discovery::{self, ProbeConfig, SweepConfig};
use camfleet::sim::{FleetConfig, QuirkPlan, Quirks, WsdConfig};
use common::*;

fn wsd(port: u16) -> Option<WsdConfig> {
    Some(WsdConfig {
        port,
        max_delay: Duration::from_millis(100),
        ..WsdConfig::default()
    })
}

fn probe_cfg(port: u16) -> ProbeConfig {
    ProbeConfig {
        port,
        window: Duration::from_millis(1200),
        ..ProbeConfig::default()
    }
}

#[tokio::test]
async fn multicast_round_finds_every_camera_once() {
    let port = free_udp_port();
    let mut cfg = FleetConfig::new(30, 0);
    cfg.plan = QuirkPlan::Mixed { seed: 3 };
    cfg.wsd = wsd(port);
    let f = fleet_with(cfg).await;
    let r = discovery::probe::multicast(&probe_cfg(port), |_| {})
        .await
        .unwrap();
    assert_eq!(
        r.devices.len(),
        30,
        "{:?}",
        r.devices.iter().map(|d| &d.endpoint).collect::<Vec<_>>()
    );
    let eps: HashSet<_> = r.devices.iter().map(|d| d.endpoint.clone()).collect();
    assert_eq!(eps.len(), 30, "deduplicated by endpoint");
    let urls: HashSet<_> = (0..30).map(|i| f.device_url(i)).collect();
    for d in &r.devices {
        assert!(
            urls.contains(&d.xaddrs[0]),
            "first XAddr is the reachable one: {:?}",
            d.xaddrs
        );
        assert!(
            d.scopes
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("SimCam-"))
        );
        assert!(d.scopes.hardware.is_some());
    }
    assert!(r.rcvbuf_bytes >= 4 * 1024 * 1024 || r.rcvbuf_bytes > 0);
    f.shutdown().await;
}

#[tokio::test]
async fn probe_match_without_wrapper_and_soap11_are_found() {
    let port = free_udp_port();
    let mut cfg = FleetConfig::new(2, 0);
    let mut q = Quirks::default();
    q.apply("no-wrapper,soap11,extra-xaddrs").unwrap();
    cfg.plan = QuirkPlan::Uniform(q);
    cfg.wsd = wsd(port);
    let f = fleet_with(cfg).await;
    let r = discovery::probe::multicast(&probe_cfg(port), |_| {})
        .await
        .unwrap();
    assert_eq!(r.devices.len(), 2);
    for d in &r.devices {
        // The link-local and the unreachable address are listed, but last.
        assert_eq!(d.xaddrs.len(), 3);
        assert!(
            d.xaddrs[0].starts_with("http://127.0.0.1:"),
            "{:?}",
            d.xaddrs
        );
        assert!(d.xaddrs[2].contains("[fe80::"), "{:?}", d.xaddrs);
    }
    f.shutdown().await;
}

#[tokio::test]
async fn unicast_probe_reaches_one_host() {
    let port = free_udp_port();
    let mut cfg = FleetConfig::new(3, 0);
    cfg.wsd = wsd(port);
    let f = fleet_with(cfg).await;
    let r = discovery::probe::unicast(&probe_cfg(port), std::net::Ipv4Addr::LOCALHOST, |_| {})
        .await
        .unwrap();
    assert_eq!(r.devices.len(), 3);
    assert!(r.devices.iter().all(|d| d.via == "unicast"));
    f.shutdown().await;
}

#[tokio::test]
async fn cidr_sweep_finds_cameras_by_unicast_probe() {
    let port = free_udp_port();
    let http = free_udp_port(); // any free number works as a TCP port too, on distinct IPs
    let mut cfg = FleetConfig::new(5, http);
    cfg.spread = Some("127.77.1.0/29".parse().unwrap());
    cfg.wsd = wsd(port);
    let f = fleet_with(cfg).await;
    let mut sweep = SweepConfig::new("127.77.1.0/28".parse().unwrap());
    sweep.wsd_port = port;
    sweep.wsd_wait = Duration::from_millis(600);
    sweep.http_ports = vec![];
    let mut progress_calls = 0;
    let found = discovery::sweep::sweep(&sweep, |_, _| progress_calls += 1)
        .await
        .unwrap();
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found.iter().all(|d| d.via == "unicast"));
    assert!(progress_calls >= 6);
    f.shutdown().await;
}

#[tokio::test]
async fn cidr_sweep_falls_back_to_http_when_discovery_is_off() {
    let http = free_udp_port();
    let mut cfg = FleetConfig::new(4, http);
    cfg.spread = Some("127.78.2.0/29".parse().unwrap());
    let f = fleet_with(cfg).await; // no WS-Discovery responder at all
    let mut sweep = SweepConfig::new("127.78.2.0/29".parse().unwrap());
    sweep.wsd_port = free_udp_port();
    sweep.wsd_wait = Duration::from_millis(200);
    sweep.http_ports = vec![http, 1]; // port 1: refused, costs nothing
    let found = discovery::sweep::sweep(&sweep, |_, _| {}).await.unwrap();
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.iter().all(|d| d.via == "http"));
    let want: HashSet<_> = (0..4).map(|i| f.device_url(i)).collect();
    for d in &found {
        assert!(want.contains(&d.xaddrs[0]), "{:?}", d.xaddrs);
    }
    f.shutdown().await;
}

#[tokio::test]
async fn sweep_refuses_ranges_past_a_slash_16() {
    let sweep = SweepConfig::new("127.0.0.0/15".parse().unwrap());
    assert!(discovery::sweep::sweep(&sweep, |_, _| {}).await.is_err());
}

#[tokio::test]
async fn hello_and_bye_are_heard() {
    let port = free_udp_port();
    let mut cfg = FleetConfig::new(3, 0);
    cfg.wsd = Some(WsdConfig {
        port,
        ..WsdConfig::default()
    });
    let f = fleet_with(cfg).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (trigger, sd) = camfleet::shutdown::channel();
    let listener = tokio::spawn(
        HelloListener {
            interface: std::net::Ipv4Addr::LOCALHOST,
            port,
        }
        .run(tx, sd),
    );
    // Give the listener a moment to join the group (bounded by the timeout below).
    let mut hellos = HashSet::new();
    for _ in 0..20 {
        f.announce(false).await.unwrap();
        while let Ok(Some(a)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            if let Announcement::Hello(d) = a {
                hellos.insert(d.endpoint);
            }
        }
        if hellos.len() == 3 {
            break;
        }
    }
    assert_eq!(hellos.len(), 3);
    f.announce(true).await.unwrap();
    let mut byes = HashSet::new();
    while let Ok(Some(a)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        if let Announcement::Bye { endpoint, .. } = a {
            byes.insert(endpoint);
        }
    }
    assert_eq!(byes, hellos);
    trigger.fire();
    listener.await.unwrap().unwrap();
    f.shutdown().await;
}
