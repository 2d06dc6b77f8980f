//! `camfleet simulate` and `camfleet demo`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use clap::Args;
use ipnet::Ipv4Net;

use super::table::Table;
use crate::onvif::Credentials;
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
    /// Make this percentage of cameras misbehave, in turn: hang, garbage,
    /// refuse the password (401), 100 MB body, endless body, clock 1 h off.
    #[arg(long, default_value_t = 0)]
    pub misbehave: u32,
}

/// The kinds `--misbehave` cycles through, and which camera gets which.
pub const MISBEHAVIOURS: [&str; 6] = ["hang", "garbage", "refuse", "huge", "endless", "skew=3600"];

pub fn misbehaviour(index: u32, percent: u32) -> Option<&'static str> {
    let bucket = (index as u64).wrapping_mul(7_919) % 100;
    (bucket < u64::from(percent.min(100)))
        .then(|| MISBEHAVIOURS[index as usize % MISBEHAVIOURS.len()])
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
        for i in 0..self.count {
            match misbehaviour(i, self.misbehave) {
                Some("refuse") | None => {}
                Some(spec) => {
                    let mut q = cfg.plan_quirks(i);
                    q.apply(spec).map_err(anyhow::Error::msg)?;
                    cfg.overrides.insert(i, q);
                }
            }
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
    // "refuse": the camera's password was changed behind our back.
    for (i, cam) in fleet.cameras().iter().enumerate() {
        if misbehaviour(i as u32, a.misbehave) == Some("refuse") {
            let mut st = cam.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(u) = st.users.first_mut() {
                u.password = "changed-elsewhere".into();
            }
        }
    }
    if a.misbehave > 0 {
        println!(
            "{}% of cameras misbehave in turn: {}",
            a.misbehave,
            MISBEHAVIOURS.join(", ")
        );
    }
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
    /// Data directory (database, secret key). Default: a fresh temporary one.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Where the web app listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Set everything up, print the table, and exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
}

pub async fn demo(a: DemoArgs) -> anyhow::Result<()> {
    use crate::fleet::audit::Actor;
    use crate::fleet::discovery::{DiscoveryConfig, RunKind};
    use crate::fleet::users::Role;

    // The web listener first: the cameras then take ports around it, so
    // `--listen 127.0.0.1:18088` never collides with camera 8.
    let listener = if a.no_serve {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(a.listen)
                .await
                .map_err(|e| anyhow::anyhow!("--listen {}: {e}", a.listen))?,
        )
    };
    let base_port = camera_base_port(
        a.base_port,
        a.cameras,
        listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|l| l.port()),
    )?;
    let mut cfg = FleetConfig::new(a.cameras, base_port);
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
        "Started {} simulated cameras on 127.0.0.1:{}..{} (camera login admin/admin).",
        a.cameras,
        base_port,
        base_port as u32 + a.cameras - 1
    );
    let data_dir = a.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("camfleet-demo-{}", std::process::id()))
    });
    let state = crate::app::build(&crate::app::AppConfig {
        data_dir: data_dir.clone(),
        discovery: DiscoveryConfig {
            port: a.wsd_port,
            window: Duration::from_secs(2),
            ..DiscoveryConfig::loopback()
        },
        ..Default::default()
    })
    .await?;
    let password = crate::fleet::sessions::random_token()[..16].to_string();
    let system = Actor::operator("demo");
    if state.users.count().await? == 0 {
        state
            .users
            .create("admin", &password, Role::Admin, &system)
            .await?;
    } else {
        state
            .users
            .set_password("admin", &password, false, &system)
            .await?;
    }
    println!("Discovering on loopback and adopting…");
    let started = Instant::now();
    let run = state
        .discovery
        .run(&state.inventory, RunKind::Multicast(None), &system)
        .await?;
    let results = state.discovery.results(&state.db, run.id).await?;
    let ids: Vec<i32> = results
        .iter()
        .filter(|r| r.classification != "managed")
        .map(|r| r.id)
        .collect();
    let creds = Credentials {
        username: "admin".into(),
        password: "admin".into(),
    };
    // Two sites, half the fleet in each, so site limits can be tried out.
    let mut site_ids = Vec::new();
    for name in ["North", "South"] {
        let site = match state.sites.by_name(name).await? {
            Some(s) => s,
            None => state.sites.create(name, "demo site", &system).await?,
        };
        site_ids.push(site.id);
    }
    let half = ids.len().div_ceil(2);
    let mut outcomes = Vec::new();
    for (chunk, site) in ids.chunks(half.max(1)).zip(site_ids) {
        let selection: Vec<(i32, Credentials)> =
            chunk.iter().map(|id| (*id, creds.clone())).collect();
        outcomes.extend(
            state
                .discovery
                .adopt(
                    &state.inventory,
                    run.id,
                    &selection,
                    Some(site),
                    &system,
                    &crate::fleet::progress::Reporter::detached(),
                )
                .await?,
        );
    }
    let mut t = Table::new(&["name", "endpoint", "outcome"]);
    for o in &outcomes {
        let name = results
            .iter()
            .find(|r| r.id == o.result_id)
            .and_then(|r| r.scopes["name"].as_str())
            .unwrap_or("")
            .to_string();
        t.row(vec![
            name,
            o.endpoint.clone(),
            match (&o.failed, o.device_id) {
                (Some(f), _) => f.clone(),
                (None, Some(id)) => format!("adopted as device {id}"),
                (None, None) => String::new(),
            },
        ]);
    }
    print!("{}", t.render());
    let adopted = outcomes.iter().filter(|o| o.failed.is_none()).count();
    println!(
        "{} found, {adopted} adopted in {:.2?}; data in {}",
        run.found,
        started.elapsed(),
        data_dir.display()
    );
    let Some(listener) = listener else {
        fleet.shutdown().await;
        return Ok(());
    };
    println!(
        "\nOpen http://{}  — user admin, password {password}  (Ctrl-C stops the demo)",
        listener.local_addr()?
    );
    // The demo polls every 15 s so state changes show quickly.
    let (stop, shutdown) = crate::shutdown::channel();
    state
        .alerting
        .set_base_url(&format!("http://{}", listener.local_addr()?));
    let notifier = crate::app::spawn_notifier(&state, shutdown.clone())?;
    let events = crate::app::spawn_events(
        &state,
        crate::fleet::events::EventConfig {
            start_spread: Duration::from_secs(5),
            reconcile_every: Duration::from_secs(10),
            ..Default::default()
        },
        shutdown.clone(),
    );
    let storyteller = tokio::spawn(demo_events(fleet.cameras().to_vec(), shutdown.clone()));
    let rollouts = crate::app::spawn_rollouts(&state, shutdown.clone());
    let jobs = crate::app::spawn_jobs(&state, shutdown.clone());
    // Record the first two cameras' main streams; the first loses its
    // network for 40 s every 5 minutes (it keeps recording to its card),
    // and the edge backfill job fills the hole from the card.
    let urls: Vec<String> = fleet
        .cameras()
        .iter()
        .take(2)
        .map(|c| c.device_url())
        .collect();
    let recorded = record_in_demo(&state, &outcomes, &urls).await?;
    if !recorded.is_empty() {
        println!(
            "Recording devices {recorded:?} (see Recordings; edge backfill runs every 10 minutes)."
        );
    }
    let recordings = crate::app::spawn_recordings(&state, data_dir.join("spool"), shutdown.clone());
    let outages = tokio::spawn(demo_outages(fleet.cameras().to_vec(), shutdown.clone()));
    // A firmware image the simulated cameras accept, to try a rollout with.
    if state.firmware_lib.images().await?.is_empty() {
        state
            .firmware_lib
            .upload(
                "Simulated",
                "*",
                "V6.0.0",
                "Demo image: every simulated camera takes it and reboots into V6.0.0.",
                bytes::Bytes::from(crate::sim::config::sim_image("V6.0.0", 256 * 1024)),
                &system,
            )
            .await?;
    }
    let poller = crate::app::spawn_poller(
        &state,
        crate::fleet::poller::PollerConfig {
            interval: Duration::from_secs(15),
            ..Default::default()
        },
        shutdown,
    );
    crate::web::server::serve(listener, crate::web::router(state), super::interrupted()).await?;
    stop.fire();
    let _ = poller.await;
    let _ = events.await;
    let _ = storyteller.await;
    let _ = rollouts.await;
    let _ = jobs.await;
    let _ = recordings.await;
    let _ = outages.await;
    let _ = notifier.await;
    fleet.shutdown().await;
    Ok(())
}

/// The first camera port: `wanted`, or, when the web listener's port falls
/// in the cameras' range, the first range above it.
pub fn camera_base_port(wanted: u16, cameras: u32, listen: Option<u16>) -> anyhow::Result<u16> {
    let fits = |b: u32| b + cameras.max(1) <= 65_536;
    let base = match listen {
        Some(l) if (wanted as u32..wanted as u32 + cameras).contains(&(l as u32)) => l as u32 + 1,
        _ => wanted as u32,
    };
    if !fits(base) {
        anyhow::bail!("no room for {cameras} camera ports from {base}; choose --base-port");
    }
    Ok(base as u16)
}

/// Set a recording policy (the first media profile) on the adopted
/// devices at these addresses.
async fn record_in_demo(
    state: &std::sync::Arc<crate::app::AppState>,
    outcomes: &[crate::fleet::discovery::AdoptOutcome],
    urls: &[String],
) -> anyhow::Result<Vec<i32>> {
    use crate::db::entities::{device, device_profile};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
    let mut ids: Vec<i32> = outcomes.iter().filter_map(|o| o.device_id).collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let Some(d) = device::Entity::find_by_id(id).one(&state.db).await? else {
            continue;
        };
        if !urls.contains(&d.device_url) {
            continue;
        }
        if d.record_profile.is_some() {
            out.push(id);
            continue;
        }
        let Some(p) = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(id))
            .order_by_asc(device_profile::Column::Id)
            .one(&state.db)
            .await?
        else {
            continue;
        };
        let mut am: device::ActiveModel = d.into();
        am.record_profile = Set(Some(p.token));
        am.update(&state.db).await?;
        out.push(id);
    }
    Ok(out)
}

/// The first camera's network drops for 40 s every 5 minutes.
async fn demo_outages(
    cameras: Vec<std::sync::Arc<crate::sim::SimCamera>>,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let Some(cam) = cameras.first() else { return };
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
        cam.go_down(Some(40));
    }
}

/// Something to see in the demo: every 90 s one camera's SD card fails or
/// recovers, and another's view is covered or uncovered, in turn.
async fn demo_events(
    cameras: Vec<std::sync::Arc<crate::sim::SimCamera>>,
    mut shutdown: crate::shutdown::Shutdown,
) {
    use crate::sim::events::SimEvent;
    if cameras.len() < 2 {
        return;
    }
    let mut round = 0usize;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(90)) => {}
        }
        let on = round.is_multiple_of(2);
        let a = &cameras[(round / 2 * 7 + 1) % cameras.len()];
        let b = &cameras[(round / 2 * 11 + 2) % cameras.len()];
        a.events.push(SimEvent::storage_failure(on), a.camera_now());
        b.events.push(SimEvent::tamper(on), b.camera_now());
        round += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::camera_base_port;

    #[test]
    fn demo_cameras_step_around_the_web_port() {
        // --listen 127.0.0.1:18088 falls on camera 8 of 18080..18103.
        assert_eq!(camera_base_port(18080, 24, Some(18088)).unwrap(), 18089);
        assert_eq!(camera_base_port(18080, 24, Some(8080)).unwrap(), 18080);
        assert_eq!(camera_base_port(18080, 24, None).unwrap(), 18080);
        assert_eq!(camera_base_port(18080, 24, Some(18103)).unwrap(), 18104);
        assert!(camera_base_port(65530, 24, None).is_err());
    }
}
