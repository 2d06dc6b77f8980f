//! IP-range sweeps for cameras on other VLANs, where multicast does not reach:
//! a unicast Probe to every host of a CIDR, paced, then (optionally) an HTTP
//! GetSystemDateAndTime on common ONVIF ports for hosts that stayed silent.
//! Bounded concurrency and rate; a dead host costs a timeout, never a hang.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use tokio::time::Instant;

use super::message;
use super::neighbours::RoomGate;
use super::probe::{Collector, Discovered, send_probes};
use super::socket;
use crate::onvif::envelope::{self, Reply};
use crate::onvif::ops;
use crate::onvif::transport::{Transport, TransportConfig};

/// Largest range accepted in one sweep (a /16).
pub const MAX_HOSTS: u64 = 65_536;

/// The HTTP ports the fallback tries on hosts that did not answer a Probe.
pub const HTTP_PORTS: [u16; 4] = [80, 8080, 8000, 8899];

/// The widest range a sweep takes (a /16, [`MAX_HOSTS`] addresses).
pub fn check_range(cidr: &Ipv4Net) -> Result<(), String> {
    if cidr.prefix_len() < 16 {
        return Err("at most a /16".into());
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub cidr: Ipv4Net,
    pub wsd_port: u16,
    /// Probes per second (each host gets two datagrams, one per type).
    pub hosts_per_sec: u32,
    /// How long to wait for answers after the last probe.
    pub wsd_wait: Duration,
    /// HTTP fallback ports; empty disables the fallback.
    pub http_ports: Vec<u16>,
    pub http_concurrency: usize,
    pub http_timeout: Duration,
}

impl SweepConfig {
    pub fn new(cidr: Ipv4Net) -> Self {
        Self {
            cidr,
            wsd_port: socket::PORT,
            hosts_per_sec: 4_000,
            wsd_wait: Duration::from_millis(1500),
            http_ports: HTTP_PORTS.to_vec(),
            // Hosts connected to at once in the HTTP fallback (each with
            // one socket per port: 2,048 x 4 = 8,192 descriptors).
            http_concurrency: 2048,
            http_timeout: Duration::from_millis(1500),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SweepProgress {
    pub hosts_total: u64,
    pub probes_sent: u64,
    pub http_checked: u64,
    pub http_total: u64,
    pub found: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0} has {1} hosts; the limit is {MAX_HOSTS}")]
    TooLarge(Ipv4Net, u64),
    #[error("sweep socket: {0}")]
    Socket(std::io::Error),
    #[error("HTTP client: {0}")]
    Transport(String),
}

fn hosts(cidr: &Ipv4Net) -> Vec<Ipv4Addr> {
    if cidr.prefix_len() >= 31 {
        // /31 and /32 have no network/broadcast addresses to skip.
        let start = u32::from(cidr.network());
        let end = u32::from(cidr.broadcast());
        (start..=end).map(Ipv4Addr::from).collect()
    } else {
        cidr.hosts().collect()
    }
}

/// Run a sweep. `progress` is called as it goes, with the new device if any.
pub async fn sweep(
    cfg: &SweepConfig,
    mut progress: impl FnMut(&SweepProgress, Option<&Discovered>),
) -> Result<Vec<Discovered>, SweepError> {
    let total = 1u64 << (32 - cfg.cidr.prefix_len() as u64);
    if total > MAX_HOSTS {
        return Err(SweepError::TooLarge(cfg.cidr, total));
    }
    let targets = hosts(&cfg.cidr);
    let mut p = SweepProgress {
        hosts_total: targets.len() as u64,
        ..Default::default()
    };
    progress(&p, None);

    let started = Instant::now();
    // Phase 1: unicast probes, paced, replies collected as they come. They
    // leave the way the routing table says (the range may be behind a router).
    let (sock, _) = socket::prober(None, 1).map_err(SweepError::Socket)?;
    let sock = Arc::new(sock);
    let (probes, ours) = message::probe_set();
    // Every host of an on-link range needs an ARP entry; both phases go
    // through one gate so the kernel's table is never overrun.
    let gate = Arc::new(RoomGate::new(32, Duration::from_secs(10)));
    let (sent_tx, mut sent_rx) = tokio::sync::watch::channel(0u64);
    let sender = {
        let sock = sock.clone();
        let port = cfg.wsd_port;
        let gap = Duration::from_secs_f64(1.0 / cfg.hosts_per_sec.max(1) as f64);
        let targets = targets.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            // Paced at the configured rate, and never faster than the ARP
            // table can take new addresses (see `neighbours`); time spent
            // waiting for room moves the schedule on.
            let mut next = Instant::now();
            for (i, h) in targets.iter().enumerate() {
                next += gate.admit().await;
                tokio::time::sleep_until(next).await;
                next += gap;
                send_probes(&sock, &probes, SocketAddr::from((*h, port))).await;
                let _ = sent_tx.send(i as u64 + 1);
            }
        })
    };
    let mut collector = Collector::default();
    let mut buf = vec![0u8; 65536];
    let mut sender_done = false;
    let mut wait_until: Option<Instant> = None;
    let mut sender = sender;
    loop {
        if let Some(t) = wait_until
            && Instant::now() >= t
        {
            break;
        }
        let sleep_to = wait_until.unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r
                    && let Some(d) = collector.feed(&buf[..n], from, &ours, "unicast") {
                        p.found += 1;
                        progress(&p, Some(&d));
                    }
            }
            _ = sent_rx.changed(), if !sender_done => {
                p.probes_sent = *sent_rx.borrow();
                if p.probes_sent.is_multiple_of(256) || p.probes_sent == p.hosts_total {
                    progress(&p, None);
                }
            }
            _ = &mut sender, if !sender_done => {
                sender_done = true;
                wait_until = Some(Instant::now() + cfg.wsd_wait);
            }
            _ = tokio::time::sleep_until(sleep_to) => {}
        }
    }

    tracing::debug!(elapsed = ?started.elapsed(), found = collector.len(), "sweep: probes done");
    // Phase 2: HTTP GetSystemDateAndTime on silent hosts.
    // A host on an ARP link that never answered ARP is absent: no TCP
    // connect can reach it, and trying would only resolve it all over
    // again. Hosts behind a router (or on links without ARP) are all tried.
    let arp_links: Vec<Ipv4Net> = super::interfaces::host_interfaces()
        .unwrap_or_default()
        .iter()
        .filter(|i| i.arp && i.up)
        .filter_map(|i| Ipv4Net::new(i.addr, i.prefix_len).ok())
        .collect();
    let answered_arp = gate.answered_arp().await;
    // Without a view of the table (not Linux), nothing is ruled out.
    let arp_known = !answered_arp.is_empty() || super::neighbours::arp_table().is_some();
    let present = |h: &Ipv4Addr| {
        !arp_known || !arp_links.iter().any(|n| n.contains(h)) || answered_arp.contains(h)
    };
    let silent: Vec<Ipv4Addr> = targets
        .into_iter()
        .filter(|h| !collector.contains_source(IpAddr::V4(*h)) && present(h))
        .collect();
    tracing::debug!(silent = silent.len(), "sweep: HTTP fallback candidates");
    let mut found = collector.into_vec();
    if !cfg.http_ports.is_empty() && !silent.is_empty() {
        let transport = Transport::new(TransportConfig {
            timeout: cfg.http_timeout,
            connect_timeout: cfg.http_timeout,
            max_body_bytes: 256 * 1024,
            accept_invalid_certs: true,
            pool_max_idle_per_host: 0,
        })
        .map_err(|e| SweepError::Transport(e.to_string()))?;
        // First a bare TCP connect to every fallback port of each silent
        // host, all ports of a host at once: in a mostly empty range
        // almost every host is absent and costs one connect timeout, not
        // one per port. Only ports that accepted get the SOAP request.
        let ports = cfg.http_ports.clone();
        let timeout = cfg.http_timeout;
        let mut open = futures::stream::iter(silent.clone())
            .map(|h| {
                let ports = ports.clone();
                let gate = gate.clone();
                async move {
                    gate.admit().await;
                    let tries = ports.iter().map(|port| async move {
                        let addr = SocketAddr::from((h, *port));
                        matches!(
                            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                                .await,
                            Ok(Ok(_))
                        )
                        .then_some((h, *port))
                    });
                    futures::future::join_all(tries).await
                }
            })
            .buffer_unordered(cfg.http_concurrency.max(1));
        let mut candidates: Vec<(Ipv4Addr, u16)> = Vec::new();
        p.http_total = silent.len() as u64;
        while let Some(r) = open.next().await {
            p.http_checked += 1;
            candidates.extend(r.into_iter().flatten());
            if p.http_checked.is_multiple_of(256) || p.http_checked == p.http_total {
                progress(&p, None);
            }
        }
        drop(open);
        tracing::debug!(elapsed = ?started.elapsed(), open = candidates.len(), "sweep: connects done");
        p.http_total += candidates.len() as u64;

        progress(&p, None);
        let mut results = futures::stream::iter(candidates)
            .map(|(h, port)| {
                let t = transport.clone();
                async move { http_probe(&t, h, port).await }
            })
            .buffer_unordered(cfg.http_concurrency.max(1));
        let mut seen_hosts: HashSet<Ipv4Addr> = HashSet::new();
        while let Some(r) = results.next().await {
            p.http_checked += 1;
            match r {
                Some(d) => {
                    let ip = match d.source.ip() {
                        IpAddr::V4(a) => a,
                        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                    };
                    // One entry per host even if several ports answer.
                    if seen_hosts.insert(ip) {
                        p.found += 1;
                        progress(&p, Some(&d));
                        found.push(d);
                    }
                }
                None => {
                    if p.http_checked.is_multiple_of(256) || p.http_checked == p.http_total {
                        progress(&p, None);
                    }
                }
            }
        }
    }
    progress(&p, None);
    Ok(found)
}

/// POST an unauthenticated GetSystemDateAndTime; any SOAP envelope back
/// (even a fault) means an ONVIF device answers there.
async fn http_probe(t: &Transport, host: Ipv4Addr, port: u16) -> Option<Discovered> {
    let xaddr = format!("http://{host}:{port}/onvif/device_service");
    let url = url::Url::parse(&xaddr).ok()?;
    let op = ops::GET_SYSTEM_DATE_AND_TIME;
    let body = envelope::request(
        "",
        &format!(
            r#"<tds:GetSystemDateAndTime xmlns:tds="{}"/>"#,
            op.namespace
        ),
    );
    let ct = format!(
        "application/soap+xml; charset=utf-8; action=\"{}\"",
        op.action()
    );
    let reply = t.post(&url, &ct, body, None, None).await.ok()?;
    let parsed = envelope::parse(&reply.body).ok()?;
    let looks_onvif = match &parsed.reply {
        Reply::Body(b) => b.local == "GetSystemDateAndTimeResponse",
        Reply::Fault(_) => true,
    };
    looks_onvif.then(|| Discovered {
        endpoint: xaddr.clone(),
        xaddrs: vec![xaddr],
        scopes: Default::default(),
        types: Vec::new(),
        source: SocketAddr::from((host, port)),
        metadata_version: None,
        via: "http",
        interface: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists() {
        assert_eq!(hosts(&"127.0.0.1/32".parse().unwrap()).len(), 1);
        assert_eq!(hosts(&"127.1.0.0/24".parse().unwrap()).len(), 254);
        assert_eq!(hosts(&"127.1.0.0/31".parse().unwrap()).len(), 2);
    }
}
