//! A simulated ONVIF camera fleet: N cameras in one process on loopback, each
//! with device + media (ver10/ver20) SOAP, snapshots, per-camera quirk
//! profiles and state, plus a WS-Discovery responder. Used by `camfleet
//! demo`, the tests and the benchmarks — and never the only peer we test with.

pub mod capture;
pub mod clip;
pub mod config;
pub mod events;
pub mod http;
pub mod quirks;
pub mod recordings;
pub mod rtsp;
pub mod state;
pub mod wsd;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use self::http::SimCamera;
pub use quirks::{Quirks, SimAuth};
pub use wsd::WsdConfig;

use crate::clock::{SharedClock, SystemClock};
use crate::shutdown::{self, ShutdownTrigger};

/// How each camera's quirks are chosen.
#[derive(Debug, Clone)]
pub enum QuirkPlan {
    /// Every camera behaves the same.
    Uniform(Quirks),
    /// Deterministic mix from a seed (see [`Quirks::mixed`]).
    Mixed { seed: u64 },
}

#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub count: u32,
    /// First HTTP port; camera i listens on base_port + i (or, with
    /// `spread`, on base_port at the i-th host of that range).
    pub base_port: u16,
    pub bind: Ipv4Addr,
    /// Give each camera its own loopback address from this range.
    pub spread: Option<Ipv4Net>,
    pub username: String,
    pub password: String,
    pub plan: QuirkPlan,
    /// Per-camera overrides, applied on top of the plan.
    pub overrides: HashMap<u32, Quirks>,
    pub wsd: Option<WsdConfig>,
    /// The fleet's RTSP server (live streams and replays); 0 takes an
    /// ephemeral port.
    pub rtsp_port: u16,
    pub seed: u64,
    pub clock: SharedClock,
    /// Keep every SOAP exchange here (conformance tests); None: keep none.
    pub capture: Option<capture::Capture>,
}

impl FleetConfig {
    pub fn new(count: u32, base_port: u16) -> Self {
        Self {
            count,
            base_port,
            bind: Ipv4Addr::LOCALHOST,
            spread: None,
            username: "admin".into(),
            password: "admin".into(),
            plan: QuirkPlan::Uniform(Quirks::default()),
            overrides: HashMap::new(),
            wsd: None,
            rtsp_port: 0,
            seed: 1,
            clock: SystemClock::shared(),
            capture: None,
        }
    }

    fn quirks_for(&self, i: u32) -> Quirks {
        if let Some(q) = self.overrides.get(&i) {
            return q.clone();
        }
        self.plan_quirks(i)
    }

    /// The quirks the plan gives camera `i`, ignoring overrides.
    pub fn plan_quirks(&self, i: u32) -> Quirks {
        match &self.plan {
            QuirkPlan::Uniform(q) => q.clone(),
            QuirkPlan::Mixed { seed } => Quirks::mixed(*seed, i),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("camera {index} on {addr}: {source}")]
    Bind {
        index: u32,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("RTSP server on {addr}: {source}")]
    Rtsp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("WS-Discovery responder: {0}")]
    Discovery(std::io::Error),
}

/// A running simulated fleet. Dropping it without `shutdown` aborts its tasks.
pub struct Fleet {
    cameras: Arc<Vec<Arc<SimCamera>>>,
    trigger: ShutdownTrigger,
    tasks: JoinSet<()>,
    wsd: Option<WsdConfig>,
    rtsp_port: u16,
}

impl Fleet {
    pub async fn start(cfg: FleetConfig) -> Result<Fleet, SimError> {
        let (trigger, sd) = shutdown::channel();
        let mut tasks = JoinSet::new();
        let mut cams = Vec::with_capacity(cfg.count as usize);
        let rtsp_addr = SocketAddr::from((cfg.bind, cfg.rtsp_port));
        let rtsp = TcpListener::bind(rtsp_addr)
            .await
            .map_err(|source| SimError::Rtsp {
                addr: rtsp_addr,
                source,
            })?;
        let rtsp_port = rtsp.local_addr().map(|a| a.port()).unwrap_or(cfg.rtsp_port);
        let spread_hosts: Option<Vec<Ipv4Addr>> = cfg
            .spread
            .map(|n| n.hosts().take(cfg.count as usize).collect());
        if let Some(h) = &spread_hosts {
            if h.len() < cfg.count as usize {
                return Err(SimError::Config(format!(
                    "{} has fewer than {} hosts",
                    cfg.spread.unwrap_or_default(),
                    cfg.count
                )));
            }
        } else if cfg.base_port as u32 + cfg.count > 65_536 {
            return Err(SimError::Config("port range exceeds 65535".into()));
        }
        for i in 0..cfg.count {
            let addr = match &spread_hosts {
                Some(h) => SocketAddr::from((h[i as usize], cfg.base_port)),
                // base_port 0: every camera takes an ephemeral port (tests).
                None if cfg.base_port == 0 => SocketAddr::from((cfg.bind, 0)),
                None => SocketAddr::from((cfg.bind, cfg.base_port + i as u16)),
            };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::Bind {
                    index: i,
                    addr,
                    source,
                })?;
            let addr = listener.local_addr().unwrap_or(addr);
            let state = state::CameraState::new(i, cfg.seed, &cfg.username, &cfg.password);
            let mut cam =
                SimCamera::new(state, cfg.quirks_for(i), addr, rtsp_port, cfg.clock.clone());
            cam.capture = cfg.capture.clone();
            let cam = Arc::new(cam);
            tasks.spawn(http::serve(cam.clone(), listener, sd.clone()));
            cams.push(cam);
        }
        let cameras = Arc::new(cams);
        tasks.spawn(rtsp::serve(cameras.clone(), rtsp, sd.clone()));
        if let Some(w) = &cfg.wsd {
            let sock = crate::discovery::socket::listener(
                w.interface,
                Ipv4Addr::UNSPECIFIED,
                w.port,
                true,
            )
            .map_err(SimError::Discovery)?;
            tasks.spawn(wsd::respond(sock, cameras.clone(), w.max_delay, sd.clone()));
            if spread_hosts.is_some() {
                for c in cameras.iter() {
                    let SocketAddr::V4(a) = c.addr else { continue };
                    let sock =
                        crate::discovery::socket::listener(w.interface, *a.ip(), w.port, false)
                            .map_err(SimError::Discovery)?;
                    tasks.spawn(wsd::respond(
                        sock,
                        Arc::new(vec![c.clone()]),
                        w.max_delay,
                        sd.clone(),
                    ));
                }
            }
        }
        Ok(Fleet {
            cameras,
            trigger,
            tasks,
            wsd: cfg.wsd,
            rtsp_port,
        })
    }

    /// The port of the fleet's RTSP server.
    pub fn rtsp_port(&self) -> u16 {
        self.rtsp_port
    }

    pub fn cameras(&self) -> &[Arc<SimCamera>] {
        &self.cameras
    }

    pub fn device_url(&self, i: usize) -> String {
        self.cameras[i].device_url()
    }

    /// Multicast Hello (or Bye) for every camera.
    pub async fn announce(&self, bye: bool) -> std::io::Result<()> {
        let w = self.wsd.clone().unwrap_or_default();
        wsd::announce(&self.cameras, w.interface, w.port, bye).await
    }

    pub async fn shutdown(mut self) {
        self.trigger.fire();
        while self.tasks.join_next().await.is_some() {}
    }
}
