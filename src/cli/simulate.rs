//! `camfleet simulate` and `camfleet demo`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use clap::Args;
use ipnet::Ipv4Net;

use super::table::Table;
use crate::clock::SystemClock;
use crate::discovery::{self, ProbeConfig};
use crate::onvif::{self, AdoptRequest, Credentials, DevicePolicy, Transport, TransportConfig};
use crate::sim::{Fleet, FleetConfig, QuirkPlan, Quirks, WsdConfig};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Number of cameras.
    #[arg(long, default_value_t = 16)]
    pub count: u32,
    /// First HTTP port; camera i answers on base-port + i.
    #[arg(long, default_value_t = 18080)]
    pub base_port: u16,
    /// Address to bind (loopback only unless you mean it).
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    pub bind: Ipv4Addr,
    /// Give each camera its own loopback address from this range (all on base-port).
    #[arg(long)]
    pub spread: Option<Ipv4Net>,
    #[arg(long, default_value = "admin")]
    pub user: String,
    #[arg(
        long,
        default_value = "admin",
        env = "CAMFLEET_SIM_PASSWORD",
        hide_env_values = true
    )]
    pub password: String,
    /// Quirks for every camera, e.g. `digest-sha256,skew=3600,fault200`.
    #[arg(long, default_value = "")]
    pub quirks: String,
    /// Mix quirks per camera from this seed instead.
    #[arg(long)]
    pub mix: Option<u64>,
    /// Per-camera quirks, `INDEX:LIST`, repeatable (e.g. `3:hang`).
    #[arg(long = "camera-quirks")]
    pub camera_quirks: Vec<String>,
    /// WS-Discovery port (0 disables the responder).
    #[arg(long, default_value_t = 3702)]
    pub wsd_port: u16,
    /// Interface the responder joins the multicast group on.
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    pub wsd_interface: Ipv4Addr,
    /// Largest random delay before a ProbeMatch, ms.
    #[arg(long, default_value_t = 500)]
    pub wsd_max_delay_ms: u64,
    /// RTSP port the cameras report in stream URIs.
    #[arg(long, default_value_t = 8554)]
    pub rtsp_port: u16,
    /// Multicast a Hello for each camera at start and a Bye at exit.
    #[arg(long)]
    pub hello: bool,
}

impl SimulateArgs {
    pub fn fleet_config(&self) -> anyhow::Result<FleetConfig> {
        let mut cfg = FleetConfig::new(self.count, self.base_port);
        cfg.bind = self.bind;
        cfg.spread = self.spread;
        cfg.username = self.user.clone();
        cfg.password = self.password.clone();
        cfg.rtsp_port = self.rtsp_port;
        cfg.plan = match self.mix {
            Some(seed) => QuirkPlan::Mixed { seed },
            None => {
                let mut q = Quirks::default();
                q.apply(&self.quirks).map_err(anyhow::Error::msg)?;
                QuirkPlan::Uniform(q)
            }
        };
        for spec in &self.camera_quirks {
            let (idx, list) = spec
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--camera-quirks wants INDEX:LIST, got {spec:?}"))?;
            let idx: u32 = idx
                .parse()
                .map_err(|_| anyhow::anyhow!("bad camera index in {spec:?}"))?;
            let mut q = cfg.plan_quirks(idx);
            q.apply(list).map_err(anyhow::Error::msg)?;
            cfg.overrides.insert(idx, q);
        }
        if self.wsd_port != 0 {
            cfg.wsd = Some(WsdConfig {
                interface: self.wsd_interface,
                port: self.wsd_port,
                max_delay: Duration::from_millis(self.wsd_max_delay_ms),
            });
        }
        Ok(cfg)
    }
}

pub async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let fleet = Fleet::start(a.fleet_config()?).await?;
    let n = fleet.cameras().len();
    println!(
        "{n} simulated cameras: {} .. {} (user {}), started in {:.2?}",
        fleet.device_url(0),
        fleet.device_url(n - 1),
        a.user,
        started.elapsed()
    );
    if a.wsd_port != 0 {
        println!(
            "WS-Discovery responder on udp/{} via {}",
            a.wsd_port, a.wsd_interface
        );
    }
    if a.hello {
        fleet.announce(false).await?;
    }
    super::interrupted().await;
    if a.hello {
        let _ = fleet.announce(true).await;
    }
    fleet.shutdown().await;
    Ok(())
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of simulated cameras.
    #[arg(long, default_value_t = 24)]
    pub cameras: u32,
    #[arg(long, default_value_t = 18080)]
    pub base_port: u16,
    /// Quirk mix seed (each camera misbehaves a little differently).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// WS-Discovery port for the demo (loopback only).
    #[arg(long, default_value_t = 3702)]
    pub wsd_port: u16,
    /// Add two broken cameras (one hangs, one answers garbage) to show failures.
    #[arg(long)]
    pub with_broken: bool,
    /// Keep the simulated fleet running after the table.
    #[arg(long)]
    pub keep_running: bool,
}

pub async fn demo(a: DemoArgs) -> anyhow::Result<()> {
    let mut cfg = FleetConfig::new(a.cameras, a.base_port);
    cfg.plan = QuirkPlan::Mixed { seed: a.seed };
    cfg.seed = a.seed;
    cfg.wsd = Some(WsdConfig {
        port: a.wsd_port,
        max_delay: Duration::from_millis(300),
        ..WsdConfig::default()
    });
    if a.with_broken && a.cameras >= 2 {
        let hang = Quirks {
            hang: true,
            ..Quirks::default()
        };
        let garbage = Quirks {
            garbage: true,
            ..Quirks::default()
        };
        cfg.overrides.insert(a.cameras - 1, hang);
        cfg.overrides.insert(a.cameras - 2, garbage);
    }
    let fleet = Fleet::start(cfg).await?;
    println!(
        "Started {} simulated cameras on 127.0.0.1:{}..{} (admin/admin); discovering on loopback…",
        a.cameras,
        a.base_port,
        a.base_port as u32 + a.cameras - 1
    );
    let probe_cfg = ProbeConfig {
        port: a.wsd_port,
        window: Duration::from_secs(2),
        ..ProbeConfig::default()
    };
    let report = discovery::probe::multicast(&probe_cfg, |_| {}).await?;
    println!(
        "Found {} devices by WS-Discovery; adopting…",
        report.devices.len()
    );
    let transport = Transport::new(TransportConfig {
        timeout: Duration::from_secs(2),
        ..TransportConfig::default()
    })?;
    let clock = SystemClock::shared();
    let creds = Credentials {
        username: "admin".into(),
        password: "admin".into(),
    };
    let requests: Vec<AdoptRequest> = report
        .devices
        .iter()
        .map(|d| AdoptRequest {
            xaddrs: d.xaddrs.clone(),
            credentials: Some(creds.clone()),
            policy: DevicePolicy::default(),
        })
        .collect();
    let started = Instant::now();
    let results = onvif::adopt::adopt_many(&transport, &clock, requests, 32, |_, _| {}).await;
    let mut t = Table::new(&[
        "name", "model", "firmware", "serial", "mac", "auth", "clock", "profiles", "quirks",
        "result",
    ]);
    let mut ok = 0;
    for (d, r) in report.devices.iter().zip(&results) {
        match r {
            Ok(dev) => {
                ok += 1;
                t.row(vec![
                    dev.scopes.name.clone().unwrap_or_default(),
                    format!("{} {}", dev.info.manufacturer, dev.info.model),
                    dev.info.firmware_version.clone(),
                    dev.info.serial_number.clone(),
                    dev.mac.clone().unwrap_or_default(),
                    dev.auth_mode.map(|m| m.as_str()).unwrap_or("?").to_string(),
                    dev.clock_offset_ms
                        .map(|o| format!("{:+.0}s", o as f64 / 1000.0))
                        .unwrap_or_default(),
                    dev.profiles.len().to_string(),
                    dev.quirks.len().to_string(),
                    "adopted".into(),
                ]);
            }
            Err(e) => t.row(vec![
                d.scopes.name.clone().unwrap_or_default(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("failed at {}: {}", e.step, e.error.class),
            ]),
        }
    }
    print!("{}", t.render());
    println!(
        "{ok} of {} adopted in {:.2?}. Try: camfleet probe {} --user admin --password admin",
        results.len(),
        started.elapsed(),
        fleet.device_url(0)
    );
    if a.keep_running {
        println!("Simulated fleet keeps running; Ctrl-C to stop.");
        super::interrupted().await;
    }
    fleet.shutdown().await;
    Ok(())
}
