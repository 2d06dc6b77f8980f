//! The simulator's WS-Discovery side: one responder answers multicast (and
//! unicast) Probes on behalf of every camera, each reply after a random delay
//! up to APP_MAX_DELAY as SOAP-over-UDP asks; in spread mode each camera also
//! answers unicast Probes on its own address. Hello and Bye announcements.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::http::SimCamera;
use crate::discovery::message::{self, MessageKind};
use crate::discovery::socket;
use crate::onvif::ns;
use crate::shutdown::Shutdown;
use crate::xml::escape;

#[derive(Debug, Clone)]
pub struct WsdConfig {
    /// Interface to join the multicast group on (loopback by default).
    pub interface: Ipv4Addr,
    pub port: u16,
    /// Replies are spread over [0, max_delay).
    pub max_delay: Duration,
}

impl Default for WsdConfig {
    fn default() -> Self {
        Self {
            interface: Ipv4Addr::LOCALHOST,
            port: socket::PORT,
            max_delay: Duration::from_millis(500),
        }
    }
}

static MESSAGE_NUMBER: AtomicU64 = AtomicU64::new(1);

fn instance_id() -> u64 {
    // Stable for the process lifetime, different after a restart.
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| chrono::Utc::now().timestamp() as u64)
}

fn matches_types(types: &[String]) -> bool {
    types.is_empty()
        || types.iter().any(|t| {
            let local = t.rsplit(':').next().unwrap_or(t);
            local == "NetworkVideoTransmitter" || local == "Device"
        })
}

fn match_body(cam: &SimCamera) -> (String, String) {
    let st = cam.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut xaddrs = Vec::new();
    if cam.quirks.extra_xaddrs {
        xaddrs.push(format!(
            "http://[fe80::2cf:1]:{}/onvif/device_service",
            cam.addr.port()
        ));
        xaddrs.push(format!(
            "http://127.0.0.254:{}/onvif/device_service",
            cam.addr.port()
        ));
    }
    xaddrs.push(cam.device_url());
    let scopes = st.scopes().join(" ");
    (
        st.endpoint.clone(),
        format!(
            "<a:EndpointReference><a:Address>{}</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>{}</d:Scopes><d:XAddrs>{}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>",
            escape(&st.endpoint),
            escape(&scopes),
            escape(&xaddrs.join(" "))
        ),
    )
}

fn envelope(cam: &SimCamera, action: &str, relates_to: Option<&str>, body: &str) -> String {
    let env_ns = if cam.quirks.soap11 {
        ns::SOAP11
    } else {
        ns::SOAP12
    };
    let relates = relates_to
        .map(|r| format!("<a:RelatesTo>{}</a:RelatesTo>", escape(r)))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{env_ns}" xmlns:a="{wsa}" xmlns:d="{wsd}" xmlns:dn="{dn}" xmlns:tds="{tds}"><s:Header><a:Action>{action}</a:Action><a:MessageID>{mid}</a:MessageID>{relates}<a:To>{anon}</a:To><d:AppSequence InstanceId="{iid}" MessageNumber="{num}"/></s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        wsa = ns::WSA_2004,
        wsd = ns::WSD,
        dn = ns::DN,
        tds = ns::TDS,
        mid = message::new_message_id(),
        anon = message::TO_ANONYMOUS,
        iid = instance_id(),
        num = MESSAGE_NUMBER.fetch_add(1, Ordering::Relaxed),
    )
}

pub fn probe_match(cam: &SimCamera, relates_to: &str) -> String {
    let (_, inner) = match_body(cam);
    let body = if cam.quirks.no_probe_wrapper {
        format!("<d:ProbeMatch>{inner}</d:ProbeMatch>")
    } else {
        format!("<d:ProbeMatches><d:ProbeMatch>{inner}</d:ProbeMatch></d:ProbeMatches>")
    };
    envelope(cam, message::ACTION_PROBE_MATCHES, Some(relates_to), &body)
}

pub fn hello(cam: &SimCamera) -> String {
    let (_, inner) = match_body(cam);
    envelope(
        cam,
        message::ACTION_HELLO,
        None,
        &format!("<d:Hello>{inner}</d:Hello>"),
    )
}

pub fn bye(cam: &SimCamera) -> String {
    let endpoint = cam
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .endpoint
        .clone();
    envelope(
        cam,
        message::ACTION_BYE,
        None,
        &format!(
            "<d:Bye><a:EndpointReference><a:Address>{}</a:Address></a:EndpointReference></d:Bye>",
            escape(&endpoint)
        ),
    )
}

/// Remembers recent probe MessageIDs: retransmissions get one answer.
struct Recent(VecDeque<String>, HashSet<String>);

impl Recent {
    fn new() -> Self {
        Recent(VecDeque::new(), HashSet::new())
    }
    fn first_time(&mut self, id: &str) -> bool {
        if self.1.contains(id) {
            return false;
        }
        if self.0.len() >= 256
            && let Some(old) = self.0.pop_front()
        {
            self.1.remove(&old);
        }
        self.0.push_back(id.to_string());
        self.1.insert(id.to_string());
        true
    }
}

/// Answer Probes for `cams` on `sock` until shutdown.
pub async fn respond(
    sock: UdpSocket,
    cams: Arc<Vec<Arc<SimCamera>>>,
    max_delay: Duration,
    mut shutdown: Shutdown,
) {
    let sock = Arc::new(sock);
    let mut recent = Recent::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = tokio::select! {
            _ = shutdown.wait() => return,
            r = sock.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
        };
        let Ok(msg) = message::parse(&buf[..n]) else {
            continue;
        };
        let MessageKind::Probe { types } = msg.kind else {
            continue;
        };
        let Some(mid) = msg.message_id else { continue };
        if !matches_types(&types) || !recent.first_time(&mid) {
            continue;
        }
        // Schedule every camera's answer at a random delay, sent in order by one task.
        // A camera set to NonDiscoverable does not answer probes.
        let mut plan: Vec<(Duration, usize)> = (0..cams.len())
            .filter(|i| {
                cams[*i]
                    .state
                    .lock()
                    .map(|s| s.discoverable)
                    .unwrap_or(true)
            })
            .map(|i| {
                let ms = max_delay.as_millis() as u64;
                let d = if ms == 0 {
                    0
                } else {
                    rand::random::<u64>() % ms
                };
                (Duration::from_millis(d), i)
            })
            .collect();
        plan.sort();
        let cams = cams.clone();
        let sock = sock.clone();
        let sd = shutdown.clone();
        let probe = bytes::Bytes::copy_from_slice(&buf[..n]);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (d, i) in plan {
                if sd.is_fired() {
                    return;
                }
                tokio::time::sleep_until(start + d).await;
                let reply = probe_match(&cams[i], &mid);
                let _ = sock.send_to(reply.as_bytes(), from).await;
                if let Some(c) = &cams[i].capture {
                    c.push(super::capture::Exchange {
                        camera: cams[i].state.lock().map(|s| s.index).unwrap_or(0),
                        transport: "udp",
                        path: String::new(),
                        request_type: "application/soap+xml".into(),
                        request: probe.clone(),
                        status: 0,
                        response_type: "application/soap+xml".into(),
                        response: bytes::Bytes::from(reply),
                    });
                }
            }
        });
    }
}

/// Multicast a Hello (or Bye) for each camera from `interface`.
pub async fn announce(
    cams: &[Arc<SimCamera>],
    interface: Ipv4Addr,
    port: u16,
    bye_instead: bool,
) -> std::io::Result<()> {
    let (sock, _) = socket::prober(Some(interface), 1)?;
    let dest: SocketAddr = socket::multicast_target(port);
    for c in cams {
        let m = if bye_instead { bye(c) } else { hello(c) };
        sock.send_to(m.as_bytes(), dest).await?;
    }
    Ok(())
}
