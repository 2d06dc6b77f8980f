//! Interop with the Python `wsdiscovery` package (a WS-Discovery stack we did
//! not write). Ignored by default: `tests/interop/run.sh` installs the peer
//! and runs these inside a loopback-only network namespace, because the peer
//! uses the fixed port 3702 and picks interfaces itself.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use camfleet::discovery::hello::{Announcement, HelloListener};
use camfleet::discovery::{self, ProbeConfig};
use camfleet::sim::{FleetConfig, WsdConfig};
use common::*;

/// The peer listens on 3702 only: one scenario at a time.
static PORT_3702: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn python() -> String {
    std::env::var("CAMFLEET_PEER_PYTHON").expect("CAMFLEET_PEER_PYTHON: run tests/interop/run.sh")
}

fn script() -> String {
    format!("{}/tests/interop/wsd_peer.py", env!("CARGO_MANIFEST_DIR"))
}

/// Refuse to multicast anywhere but a namespace whose only interface is lo.
fn assert_loopback_only_namespace() {
    let ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        ifaces,
        vec!["lo".to_string()],
        "run inside a loopback-only namespace (tests/interop/run.sh)"
    );
}

struct Peer(Child);

impl Peer {
    fn publish(name: &str, xaddr: &str) -> Peer {
        let mut child = Command::new(python())
            .args([script().as_str(), "publish", name, xaddr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wsdiscovery publisher");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("published"), "{line}");
        Peer(child)
    }

    /// SIGTERM: the peer sends Bye and exits.
    fn stop(mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test]
#[ignore = "needs the wsdiscovery peer; run tests/interop/run.sh"]
async fn wsdiscovery_publishers_are_found_by_multicast_probe() {
    assert_loopback_only_namespace();
    let _g = PORT_3702.lock().await;
    let a = Peer::publish("PyCam-A", "http://127.0.0.1:18080/onvif/device_service");
    let b = Peer::publish("PyCam-B", "http://127.0.0.1:18081/onvif/device_service");
    let cfg = ProbeConfig {
        window: Duration::from_secs(3),
        ..ProbeConfig::default()
    };
    let r = discovery::probe::multicast(&cfg, |_| {}).await.unwrap();
    let names: HashSet<_> = r
        .devices
        .iter()
        .filter_map(|d| d.scopes.name.clone())
        .collect();
    assert!(
        names.contains("PyCam-A") && names.contains("PyCam-B"),
        "{:?}",
        r.devices
    );
    // wsdiscovery sends every reply twice: still one entry per endpoint.
    assert_eq!(r.devices.len(), 2, "{:?}", r.devices);
    for d in &r.devices {
        assert_eq!(d.scopes.hardware.as_deref(), Some("PY-WSD"));
        assert!(d.xaddrs[0].starts_with("http://127.0.0.1:1808"));
        assert!(d.endpoint.starts_with("urn:uuid:"));
    }
    a.stop();
    b.stop();
}

#[tokio::test]
#[ignore = "needs the wsdiscovery peer; run tests/interop/run.sh"]
async fn wsdiscovery_hello_and_bye_reach_our_listener() {
    assert_loopback_only_namespace();
    let _g = PORT_3702.lock().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (trigger, sd) = camfleet::shutdown::channel();
    let listener = tokio::spawn(
        HelloListener {
            interface: std::net::Ipv4Addr::LOCALHOST,
            port: 3702,
        }
        .run(tx, sd),
    );
    tokio::task::yield_now().await;
    let peer = tokio::task::spawn_blocking(|| {
        Peer::publish("PyCam-H", "http://127.0.0.1:18090/onvif/device_service")
    })
    .await
    .unwrap();
    let hello = loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Announcement::Hello(d))) if d.scopes.name.as_deref() == Some("PyCam-H") => {
                break d;
            }
            Ok(Some(_)) => continue,
            other => panic!("no Hello: {other:?}"),
        }
    };
    tokio::task::spawn_blocking(move || peer.stop())
        .await
        .unwrap();
    let bye = loop {
        match tokio::time::timeout(Duration::from_secs(8), rx.recv()).await {
            Ok(Some(Announcement::Bye { endpoint, .. })) => break endpoint,
            Ok(Some(_)) => continue,
            other => panic!("no Bye: {other:?}"),
        }
    };
    assert_eq!(bye, hello.endpoint);
    trigger.fire();
    listener.await.unwrap().unwrap();
}

#[tokio::test]
#[ignore = "needs the wsdiscovery peer; run tests/interop/run.sh"]
async fn our_simulator_is_found_by_the_wsdiscovery_client() {
    assert_loopback_only_namespace();
    let _g = PORT_3702.lock().await;
    let mut cfg = FleetConfig::new(3, 0);
    cfg.wsd = Some(WsdConfig {
        max_delay: Duration::from_millis(200),
        ..WsdConfig::default()
    });
    let f = fleet_with(cfg).await;
    let out = tokio::task::spawn_blocking(|| {
        Command::new(python())
            .args([script().as_str(), "probe", "3"])
            .stderr(Stdio::null())
            .output()
            .expect("run wsdiscovery client")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for (i, cam) in f.cameras().iter().enumerate() {
        let ep = cam.state.lock().unwrap().endpoint.clone();
        let line = text
            .lines()
            .find(|l| l.starts_with(&ep))
            .unwrap_or_else(|| panic!("camera {i} not found by wsdiscovery:\n{text}"));
        assert!(line.contains(&f.device_url(i)), "{line}");
        assert!(
            line.contains(&format!("onvif://www.onvif.org/name/SimCam-{i:05}")),
            "{line}"
        );
    }
    f.shutdown().await;
}
