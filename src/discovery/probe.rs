//! Multicast and unicast Probe rounds: send both typed probes, retransmit
//! within the window, match replies by RelatesTo, deduplicate by endpoint.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::message::{self, MessageKind, ProbeMatch};
use super::socket;

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The interface address probes leave from. Loopback unless an operator
    /// names another: discovery never picks an interface by itself.
    pub interface: Ipv4Addr,
    pub ttl: u32,
    /// How long to listen for answers.
    pub window: Duration,
    /// Send times of each probe, relative to the start (retransmissions reuse
    /// the MessageID, as SOAP-over-UDP requires).
    pub send_at: Vec<Duration>,
    /// Destination port (3702; tests may use another).
    pub port: u16,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
            window: Duration::from_secs(3),
            send_at: vec![
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_millis(1000),
            ],
            port: socket::PORT,
        }
    }
}

/// A device found by discovery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discovered {
    pub endpoint: String,
    /// XAddrs in the order to try them.
    pub xaddrs: Vec<String>,
    pub scopes: crate::onvif::types::Scopes,
    pub types: Vec<String>,
    /// Where the answer came from.
    pub source: SocketAddr,
    pub metadata_version: Option<u64>,
    /// How it was found: `multicast`, `unicast`, `http`, `hello`.
    pub via: &'static str,
    /// The local interface the answer came in on (`eth0 10.0.0.5/24`),
    /// filled in by whoever knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl Discovered {
    pub fn from_match(m: ProbeMatch, source: SocketAddr, via: &'static str) -> Self {
        Self {
            xaddrs: message::order_xaddrs(&m.xaddrs, Some(source.ip())),
            endpoint: m.endpoint,
            scopes: m.scopes,
            types: m.types,
            source,
            metadata_version: m.metadata_version,
            via,
            interface: None,
        }
    }
}

/// Collects answers, keyed by endpoint; merges XAddrs seen in several replies.
#[derive(Default)]
pub struct Collector {
    by_endpoint: HashMap<String, Discovered>,
    order: Vec<String>,
    /// Datagrams that did not parse or did not relate to our probes.
    pub ignored: usize,
}

impl Collector {
    /// Feed one datagram. Returns the device when it is new.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        ours: &HashSet<String>,
        via: &'static str,
    ) -> Option<Discovered> {
        let Ok(msg) = message::parse(bytes) else {
            self.ignored += 1;
            return None;
        };
        // Match by RelatesTo; a missing RelatesTo is forgiven (some firmware
        // omits it), a foreign one is someone else's probe.
        if let Some(r) = &msg.relates_to
            && !ours.contains(r.trim())
        {
            self.ignored += 1;
            return None;
        }
        let MessageKind::ProbeMatches(matches) = msg.kind else {
            self.ignored += 1;
            return None;
        };
        let mut first_new = None;
        for m in matches {
            match self.by_endpoint.get_mut(&m.endpoint) {
                Some(existing) => {
                    for x in &m.xaddrs {
                        if !existing.xaddrs.contains(x) {
                            existing.xaddrs.push(x.clone());
                        }
                    }
                }
                None => {
                    let d = Discovered::from_match(m, from, via);
                    self.order.push(d.endpoint.clone());
                    self.by_endpoint.insert(d.endpoint.clone(), d.clone());
                    first_new.get_or_insert(d);
                }
            }
        }
        first_new
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn contains_source(&self, ip: IpAddr) -> bool {
        self.by_endpoint.values().any(|d| d.source.ip() == ip)
    }

    pub fn into_vec(mut self) -> Vec<Discovered> {
        self.order
            .iter()
            .filter_map(|e| self.by_endpoint.remove(e))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("discovery socket on {interface}: {source}")]
    Socket {
        interface: Ipv4Addr,
        source: std::io::Error,
    },
}

/// Result of a probe round.
#[derive(Debug, Default)]
pub struct ProbeReport {
    pub devices: Vec<Discovered>,
    pub ignored_datagrams: usize,
    pub rcvbuf_bytes: usize,
}

/// One multicast round on the configured interface. `on_found` is called as
/// each new device answers (for live progress).
pub async fn multicast(
    cfg: &ProbeConfig,
    on_found: impl FnMut(&Discovered),
) -> Result<ProbeReport, ProbeError> {
    run(
        cfg,
        Some(cfg.interface),
        socket::multicast_target(cfg.port),
        "multicast",
        on_found,
    )
    .await
}

/// A directed probe to one host (cameras on other subnets). It leaves the
/// way the routing table says; `cfg.interface` is not used.
pub async fn unicast(
    cfg: &ProbeConfig,
    host: Ipv4Addr,
    on_found: impl FnMut(&Discovered),
) -> Result<ProbeReport, ProbeError> {
    run(
        cfg,
        None,
        SocketAddr::from((host, cfg.port)),
        "unicast",
        on_found,
    )
    .await
}

async fn run(
    cfg: &ProbeConfig,
    interface: Option<Ipv4Addr>,
    dest: SocketAddr,
    via: &'static str,
    mut on_found: impl FnMut(&Discovered),
) -> Result<ProbeReport, ProbeError> {
    let (sock, rcvbuf) =
        socket::prober(interface, cfg.ttl).map_err(|source| ProbeError::Socket {
            interface: interface.unwrap_or(Ipv4Addr::UNSPECIFIED),
            source,
        })?;
    let (probes, ours) = message::probe_set();
    let start = Instant::now();
    let deadline = start + cfg.window;
    let mut sends: Vec<Instant> = cfg
        .send_at
        .iter()
        .map(|d| start + *d)
        .filter(|t| *t < deadline)
        .collect();
    sends.sort();
    let mut collector = Collector::default();
    let mut buf = vec![0u8; 65536];
    loop {
        while sends.first().is_some_and(|t| *t <= Instant::now()) {
            sends.remove(0);
            send_probes(&sock, &probes, dest).await;
        }
        let wake = sends.first().copied().unwrap_or(deadline).min(deadline);
        if Instant::now() >= deadline {
            break;
        }
        match tokio::time::timeout_at(wake, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                if let Some(d) = collector.feed(&buf[..n], from, &ours, via) {
                    on_found(&d);
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "discovery recv"),
            Err(_) => {}
        }
    }
    Ok(ProbeReport {
        ignored_datagrams: collector.ignored,
        devices: collector.into_vec(),
        rcvbuf_bytes: rcvbuf,
    })
}

pub(crate) async fn send_probes(sock: &UdpSocket, probes: &[String], dest: SocketAddr) {
    for body in probes {
        if let Err(e) = sock.send_to(body.as_bytes(), dest).await {
            tracing::warn!(%dest, error = %e, "sending probe");
        }
    }
}
