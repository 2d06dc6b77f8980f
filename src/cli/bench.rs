//! `camfleet bench …`: whole-system benchmarks whose figures go into
//! BENCHMARKS.md. The simulated fleet runs in another process (`camfleet
//! simulate`), so the CPU and memory measured here are the client's alone.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::clock::SystemClock;
use crate::discovery::{self, ProbeConfig};
use crate::onvif::{self, AdoptRequest, Credentials, DevicePolicy, Transport, TransportConfig};

/// Set by `main` as early as possible: "start-up" for time-to-first-result.
pub use crate::clock::PROCESS_START;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Adopt N cameras at 127.0.0.1:base-port+i with bounded concurrency.
    Adopt(AdoptBench),
    /// One multicast probe round; report how many answered and how fast.
    Discovery(DiscoveryBench),
    /// Fill a data directory with N synthetic devices (and a bench user).
    Seed(SeedBench),
    /// Load a running `camfleet serve` with concurrent logged-in requests.
    Web(WebBench),
    /// Health poll cycles over N cameras of a running `camfleet simulate`.
    Poll(PollBench),
    /// Record N streams of one RTSP source for a while; CPU per stream.
    Record(RecordBench),
    /// Replay a stretch of a camera's on-board recording (ONVIF replay)
    /// into segments: how much faster than real time, at what CPU.
    Replay(ReplayBench),
    /// A CIDR sweep exactly as the discovery form runs it (unicast probes,
    /// then the HTTP fallback on ports 80, 8080, 8000, 8899 for hosts that
    /// stayed silent): how long, and how many cameras it found.
    Sweep(SweepBench),
}

#[derive(Args, Debug)]
pub struct SweepBench {
    /// The range (at most a /16).
    #[arg(long)]
    pub cidr: String,
    /// How many cameras should be found (fails otherwise).
    #[arg(long, default_value_t = 0)]
    pub expect: usize,
}

async fn sweep_bench(a: SweepBench) -> anyhow::Result<()> {
    let kind =
        crate::fleet::discovery::RunKind::parse("cidr", &a.cidr, "").map_err(anyhow::Error::msg)?;
    let crate::fleet::discovery::RunKind::Cidr { cidr, http_ports } = kind else {
        anyhow::bail!("not a CIDR");
    };
    let mut cfg = crate::discovery::SweepConfig::new(cidr);
    cfg.http_ports = http_ports;
    let u0 = usage();
    let t0 = Instant::now();
    let found = crate::discovery::sweep::sweep(&cfg, |_, _| {}).await?;
    let wall = t0.elapsed();
    let u1 = usage();
    let mut endpoints: Vec<&str> = found
        .iter()
        .filter(|d| d.via != "http")
        .map(|d| d.endpoint.as_str())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let report = serde_json::json!({
        "bench": "sweep",
        "cidr": cidr.to_string(),
        "hosts": cidr.hosts().count(),
        "http_ports": cfg.http_ports,
        "found": endpoints.len(),
        "answers": found.len(),
        "expected": a.expect,
        "wall_s": wall.as_secs_f64(),
        "cpu_s": (u1.cpu - u0.cpu).as_secs_f64(),
        "max_rss_mib": u1.max_rss_kib / 1024,
    });
    println!("{}", serde_json::to_string(&report)?);
    if endpoints.len() < a.expect {
        anyhow::bail!("found {} of {}", endpoints.len(), a.expect);
    }
    Ok(())
}

/// RTSP login, if the source asks for one.
#[derive(Args, Debug, Clone)]
pub struct RtspLogin {
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long, default_value = "")]
    pub password: String,
}

impl RtspLogin {
    fn creds(&self) -> Option<(String, String)> {
        self.user.clone().map(|u| (u, self.password.clone()))
    }
}

#[derive(Args, Debug)]
pub struct ReplayBench {
    /// The replay address (the simulator's `rtsp://127.0.0.1:8554/cam0/replay/SD_Main`).
    #[arg(long)]
    pub url: String,
    #[command(flatten)]
    pub login: RtspLogin,
    /// Minutes of recording to replay, ending this long before now.
    #[arg(long, default_value_t = 10)]
    pub minutes: i64,
    /// Read cap in Mbit/s.
    #[arg(long, default_value_t = 1000)]
    pub mbps: u64,
}

#[derive(Args, Debug)]
pub struct RecordBench {
    /// The RTSP source (e.g. the GStreamer test server). `{i}` is replaced
    /// by the stream's number, for one source per stream (the simulator's
    /// `rtsp://127.0.0.1:8554/cam{i}/main`).
    #[arg(long)]
    pub url: String,
    #[command(flatten)]
    pub login: RtspLogin,
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    #[arg(long, default_value_t = 60)]
    pub segment: u64,
}

#[derive(Args, Debug)]
pub struct PollBench {
    #[arg(long, default_value_t = 10_000)]
    pub count: u32,
    #[arg(long, default_value_t = 20000)]
    pub base_port: u16,
    /// The simulators' `--spread` ranges, all on base-port (past 65,535
    /// cameras, or past one process's descriptor limit: several
    /// simulators, one range each, the cameras split evenly over them in
    /// order; repeat or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub spread: Vec<ipnet::Ipv4Net>,
    /// Polls in flight at once.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Deadline of one poll, ms.
    #[arg(long, default_value_t = 5000)]
    pub deadline_ms: u64,
    /// Cycles to run (the first also reads identity; later ones only the clock).
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Expected misbehaving share (the simulator's --misbehave), to check
    /// the classification.
    #[arg(long, default_value_t = 0)]
    pub misbehave: u32,
    #[arg(long, default_value = "admin")]
    pub user: String,
    #[arg(long, default_value = "admin")]
    pub password: String,
    /// After the cycles, keep event subscriptions (PullPoint) to every
    /// answering camera for this many seconds and report their cost.
    #[arg(long, default_value_t = 0)]
    pub events_secs: u64,
}

#[derive(Args, Debug)]
pub struct SeedBench {
    #[arg(long, default_value_t = 10_000)]
    pub devices: u32,
    #[command(flatten)]
    pub data: super::serve::DataArgs,
}

#[derive(Args, Debug)]
pub struct WebBench {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Paths to request, round robin.
    #[arg(long, default_value = "/devices")]
    pub path: Vec<String>,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    #[arg(long, default_value = "bench")]
    pub user: String,
    #[arg(long, default_value = "bench-password")]
    pub password: String,
}

#[derive(Args, Debug)]
pub struct AdoptBench {
    #[arg(long, default_value_t = 1000)]
    pub count: u32,
    #[arg(long, default_value_t = 20000)]
    pub base_port: u16,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value = "admin")]
    pub user: String,
    #[arg(long, default_value = "admin")]
    pub password: String,
}

#[derive(Args, Debug)]
pub struct DiscoveryBench {
    /// How many devices should answer.
    #[arg(long, default_value_t = 1000)]
    pub expect: usize,
    #[arg(long, default_value_t = 3702)]
    pub port: u16,
    #[arg(long, default_value_t = 3000)]
    pub window_ms: u64,
}

pub async fn run(b: BenchCommand) -> anyhow::Result<()> {
    match b {
        BenchCommand::Adopt(a) => adopt(a).await,
        BenchCommand::Discovery(d) => discovery_round(d).await,
        BenchCommand::Seed(a) => seed(a).await,
        BenchCommand::Web(a) => web(a).await,
        BenchCommand::Poll(a) => poll(a).await,
        BenchCommand::Record(a) => record(a).await,
        BenchCommand::Replay(a) => replay(a).await,
        BenchCommand::Sweep(a) => sweep_bench(a).await,
    }
}

struct Usage {
    cpu: Duration,
    max_rss_kib: i64,
}

fn usage() -> Usage {
    // SAFETY: getrusage fills a plain struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss,
    }
}

async fn adopt(a: AdoptBench) -> anyhow::Result<()> {
    let start = *PROCESS_START.get_or_init(Instant::now);
    let transport = Transport::new(TransportConfig::default())?;
    let setup_done = start.elapsed();
    let clock = SystemClock::shared();
    let creds = Credentials {
        username: a.user.clone(),
        password: a.password.clone(),
    };
    let requests: Vec<AdoptRequest> = (0..a.count)
        .map(|i| AdoptRequest {
            xaddrs: vec![format!(
                "http://127.0.0.1:{}/onvif/device_service",
                a.base_port as u32 + i
            )],
            credentials: Some(creds.clone()),
            policy: DevicePolicy::default(),
        })
        .collect();
    let cpu_before = usage().cpu;
    let t0 = Instant::now();
    let mut first: Option<Duration> = None;
    let mut ok = 0usize;
    let mut failures: std::collections::BTreeMap<String, usize> = Default::default();
    onvif::adopt::adopt_many(
        &transport,
        &clock,
        requests,
        a.concurrency,
        |_, r| match r {
            Ok(_) => {
                ok += 1;
                first.get_or_insert_with(|| start.elapsed());
            }
            Err(e) => {
                *failures
                    .entry(format!("{}: {}", e.step, e.error.class))
                    .or_default() += 1
            }
        },
    )
    .await;
    let wall = t0.elapsed();
    let u = usage();
    let cpu_adopt = u.cpu.saturating_sub(cpu_before);
    let report = serde_json::json!({
        "bench": "adopt",
        "cameras": a.count,
        "concurrency": a.concurrency,
        "adopted": ok,
        "failures": failures,
        "wall_s": wall.as_secs_f64(),
        "first_adopted_ms_after_start": first.map(|d| d.as_secs_f64() * 1000.0),
        "setup_done_ms_after_start": setup_done.as_secs_f64() * 1000.0,
        "client_cpu_s_total": u.cpu.as_secs_f64(),
        "client_cpu_ms_per_camera": cpu_adopt.as_secs_f64() * 1000.0 / a.count.max(1) as f64,
        "peak_rss_mib": u.max_rss_kib as f64 / 1024.0,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if ok < a.count as usize {
        anyhow::bail!(
            "{} of {} cameras not adopted",
            a.count as usize - ok,
            a.count
        );
    }
    Ok(())
}

async fn discovery_round(d: DiscoveryBench) -> anyhow::Result<()> {
    let cfg = ProbeConfig {
        port: d.port,
        window: Duration::from_millis(d.window_ms),
        ..ProbeConfig::default()
    };
    let t0 = Instant::now();
    let mut all_at: Option<Duration> = None;
    let mut n = 0usize;
    let r = discovery::probe::multicast(&cfg, |_| {
        n += 1;
        if n == d.expect {
            all_at = Some(t0.elapsed());
        }
    })
    .await?;
    let report = serde_json::json!({
        "bench": "discovery",
        "expected": d.expect,
        "found": r.devices.len(),
        "all_found_after_ms": all_at.map(|x| x.as_secs_f64() * 1000.0),
        "window_ms": d.window_ms,
        "ignored_datagrams": r.ignored_datagrams,
        "rcvbuf_bytes": r.rcvbuf_bytes,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if r.devices.len() < d.expect {
        anyhow::bail!("found {} of {}", r.devices.len(), d.expect);
    }
    Ok(())
}

async fn seed(a: SeedBench) -> anyhow::Result<()> {
    use crate::db::entities::device;
    use crate::fleet::audit::Actor;
    use crate::fleet::users::Role;
    use sea_orm::{EntityTrait, Set};
    let cfg = crate::app::AppConfig {
        storage_url: None,
        cold_storage_url: None,
        ..a.data.app_config()?
    };
    let state = crate::app::build(&cfg).await?;
    if state.users.count().await? == 0 {
        state
            .users
            .create_with(
                "bench",
                "bench-password",
                Role::Viewer,
                crate::fleet::users::NewUser {
                    all_sites: true,
                    ..Default::default()
                },
                &Actor::operator("bench"),
            )
            .await?;
    }
    let now = chrono::Utc::now();
    const MODELS: [(&str, &str); 6] = [
        ("Simvision", "SV-2CD2143"),
        ("Simvision", "SV-DS-2DE"),
        ("Acme Optics", "AO-IPC-B2"),
        ("Northcam", "NC-P1455"),
        ("Northcam", "NC-M3106"),
        ("Lumen", "LX-200"),
    ];
    let t0 = Instant::now();
    for chunk in (0..a.devices).collect::<Vec<_>>().chunks(500) {
        let rows = chunk.iter().map(|&i| {
            let (mf, model) = MODELS[i as usize % MODELS.len()];
            let name = format!("Camera {i:05}");
            let serial = format!("BENCH{i:07}");
            let mac = format!(
                "02:be:00:{:02x}:{:02x}:{:02x}",
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8
            );
            let url = format!(
                "http://10.{}.{}.{}/onvif/device_service",
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8
            );
            let hostname = format!("cam-{i:05}");
            let tag = format!("A{i:06}");
            let search = crate::fleet::inventory::search_text(
                &name,
                model,
                mf,
                Some(&serial),
                Some(&mac),
                &hostname,
                &url,
                &tag,
            );
            device::ActiveModel {
                search_text: Set(search),
                endpoint_uuid: Set(Some(format!("urn:uuid:00000000-0000-4000-8000-{i:012}"))),
                mac: Set(Some(mac)),
                serial: Set(Some(serial)),
                manufacturer: Set(mf.into()),
                model: Set(model.into()),
                firmware: Set(format!("V5.{}.{}", i % 4, i % 9)),
                hardware_id: Set(String::new()),
                hostname: Set(hostname),
                name: Set(name),
                device_url: Set(url),
                xaddrs: Set(serde_json::json!([])),
                status: Set(
                    ["online", "online", "online", "offline", "degraded"][i as usize % 5].into(),
                ),
                last_seen: Set(Some(now)),
                quirks: Set(serde_json::json!([])),
                policy: Set(serde_json::json!({})),
                location: Set(String::new()),
                purchase_order: Set(String::new()),
                supplier: Set(String::new()),
                asset_tag: Set(tag),
                notes: Set(String::new()),
                adopted_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
        });
        device::Entity::insert_many(rows).exec(&state.db).await?;
    }
    // Statistics, as a database in service has them (PostgreSQL's
    // autovacuum, the maintenance job's ANALYZE or PRAGMA optimize):
    // without them PostgreSQL plans a fresh 10,000-row table as if it
    // held a handful of rows.
    sea_orm::ConnectionTrait::execute_unprepared(&state.db, "ANALYZE").await?;
    println!(
        "seeded {} devices in {:.2?} into {}",
        a.devices,
        t0.elapsed(),
        cfg.data_dir.display()
    );
    Ok(())
}

async fn web(a: WebBench) -> anyhow::Result<()> {
    use futures::StreamExt;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    // Log in through the form like a browser.
    let r = client.get(format!("{}/login", a.url)).send().await?;
    let csrf = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("camfleet_login_csrf="))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no login CSRF cookie"))?
        .to_string();
    let r = client
        .post(format!("{}/login", a.url))
        .header(
            reqwest::header::COOKIE,
            format!("camfleet_login_csrf={csrf}"),
        )
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!(
            "username={}&password={}&csrf={csrf}",
            a.user, a.password
        ))
        .send()
        .await?;
    let session = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("camfleet_session="))
        .and_then(|v| v.split(';').next())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("login failed: HTTP {}", r.status()))?
        .to_string();
    let cookie = format!("camfleet_session={session}");
    let t0 = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..a.requests)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}{}", a.url, a.path[i % a.path.len()]);
            let cookie = cookie.clone();
            async move {
                let t = Instant::now();
                let ok = match client
                    .get(url)
                    .header(reqwest::header::COOKIE, cookie)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                (ok, t.elapsed())
            }
        })
        .buffer_unordered(a.concurrency)
        .filter_map(|(ok, d)| async move { ok.then_some(d) })
        .collect()
        .await;
    let wall = t0.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    let report = serde_json::json!({
        "bench": "web",
        "paths": a.path,
        "requests": a.requests,
        "ok": latencies.len(),
        "concurrency": a.concurrency,
        "wall_s": wall.as_secs_f64(),
        "requests_per_s": latencies.len() as f64 / wall.as_secs_f64(),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies.last().map(|d| d.as_secs_f64() * 1000.0),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if latencies.len() < a.requests {
        anyhow::bail!(
            "{} of {} requests failed",
            a.requests - latencies.len(),
            a.requests
        );
    }
    Ok(())
}

async fn poll(a: PollBench) -> anyhow::Result<()> {
    use crate::db::entities::{credential, device};
    use crate::fleet::health::HealthState;
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};

    let clock = SystemClock::shared();
    // A database file, as in production (an in-memory one would count
    // the whole database in the RSS measured here).
    let dir = std::env::temp_dir().join(format!("camfleet-bench-poll-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = crate::db::connect(&crate::db::sqlite_url(&dir)).await?;
    let secrets = std::sync::Arc::new(crate::secrets::SecretBox::from_key(1, &rand_key()));
    let now = chrono::Utc::now();
    let cred = credential::ActiveModel {
        username: Set(a.user.clone()),
        sealed: Set(secrets.seal(a.password.as_bytes())),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let rows: Vec<device::ActiveModel> = (0..a.count)
        .map(|i| {
            let url = format!("http://{}/onvif/device_service", bench_camera(&a, i));
            device::ActiveModel {
                device_url: Set(url.clone()),
                xaddrs: Set(serde_json::json!([url])),
                status: Set("online".into()),
                quirks: Set(serde_json::json!([])),
                policy: Set(serde_json::json!({})),
                credential_id: Set(Some(cred.id)),
                adopted_at: Set(now),
                updated_at: Set(now),
                name: Set(format!("cam-{i}")),
                ..Default::default()
            }
        })
        .collect();
    for chunk in rows.chunks(500) {
        device::Entity::insert_many(chunk.to_vec())
            .exec(&db)
            .await?;
    }
    let secrets_for_events = secrets.clone();
    let poller = crate::fleet::poller::Poller::new(
        db.clone(),
        secrets,
        crate::fleet::poller::poll_transport()?,
        clock,
        crate::fleet::poller::PollerConfig {
            concurrency: a.concurrency,
            deadline: Duration::from_millis(a.deadline_ms),
            ..Default::default()
        },
    );
    println!(
        "{} cameras from 127.0.0.1:{}, concurrency {}, deadline {} ms",
        a.count, a.base_port, a.concurrency, a.deadline_ms
    );
    for c in 1..=a.cycles {
        let devices = crate::fleet::poller::targets(&db).await?;
        let cpu0 = usage().cpu;
        let t0 = Instant::now();
        let r = poller.poll_devices(devices).await?;
        let wall = t0.elapsed();
        let cpu = usage().cpu - cpu0;
        let mut failed: Vec<_> = r.failed_by_class.iter().collect();
        failed.sort();
        println!(
            "cycle {c}: {} polled in {:.2?} (CPU {:.2?}), {} answered, failed {:?}, peak RSS {} MiB",
            r.polled,
            wall,
            cpu,
            r.answered,
            failed,
            usage().max_rss_kib / 1024
        );
    }
    // Classification against what the simulator was told.
    let devices = device::Entity::find().all(&db).await?;
    let mut by_state: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut wrong = 0usize;
    for (i, d) in devices.iter().enumerate() {
        let s = HealthState::parse(&d.status);
        *by_state.entry(s.as_str()).or_default() += 1;
        let want = match super::simulate::misbehaviour(i as u32, a.misbehave) {
            None => HealthState::Online,
            Some("skew=3600") => HealthState::Degraded,
            Some("refuse") => HealthState::Unauthorized,
            Some(_) => HealthState::Offline,
        };
        if s != want {
            wrong += 1;
            if wrong <= 5 {
                println!(
                    "camera {i}: {} ({}), expected {}",
                    s.as_str(),
                    d.state_reason,
                    want.as_str()
                );
            }
        }
    }
    println!("states: {by_state:?}; misclassified: {wrong}");
    if a.events_secs > 0 {
        events(&db, &secrets_for_events, &a).await?;
    }
    // Peak RSS counts mapped database pages too; split what is resident now.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let pick: Vec<&str> = status
            .lines()
            .filter(|l| {
                l.starts_with("RssAnon") || l.starts_with("RssFile") || l.starts_with("VmRSS")
            })
            .collect();
        println!(
            "now: {}",
            pick.join(", ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let size: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("database files: {} MiB", size / 1024 / 1024);
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        println!("open file descriptors: {}", fds.count());
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Subscribe to every answering camera's events and hold the subscriptions
/// (long-polls) for `--events-secs`: how many get subscribed, how fast, and
/// what they cost in memory and file descriptors.
async fn events(
    db: &sea_orm::DatabaseConnection,
    secrets: &std::sync::Arc<crate::secrets::SecretBox>,
    a: &PollBench,
) -> anyhow::Result<()> {
    use crate::db::entities::device;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    // The simulator serves events at the device address's host and port.
    for d in device::Entity::find().all(db).await? {
        let url = d
            .device_url
            .replace("/onvif/device_service", "/onvif/events_service");
        device::Entity::update_many()
            .col_expr(
                device::Column::EventsUrl,
                sea_orm::sea_query::Expr::value(url),
            )
            .filter(device::Column::Id.eq(d.id))
            .exec(db)
            .await?;
    }
    let eligible = device::Entity::find()
        .filter(device::Column::Status.is_in(["online", "degraded"]))
        .count(db)
        .await?;
    let manager = std::sync::Arc::new(crate::fleet::events::EventManager::new(
        db.clone(),
        secrets.clone(),
        crate::fleet::events::transport()?,
        SystemClock::shared(),
        crate::fleet::events::EventConfig {
            start_spread: Duration::from_secs(10),
            reconcile_every: Duration::from_secs(5),
            ..Default::default()
        },
    ));
    let (stop, shutdown) = crate::shutdown::channel();
    let cpu0 = usage().cpu;
    let t0 = Instant::now();
    let task = tokio::spawn(manager.run(shutdown, |_| {}));
    let mut all_at = None;
    while t0.elapsed() < Duration::from_secs(a.events_secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let subscribed = device::Entity::find()
            .filter(device::Column::EventsStatus.like("subscribed%"))
            .count(db)
            .await?;
        if all_at.is_none() && subscribed >= eligible {
            all_at = Some(t0.elapsed());
        }
    }
    let subscribed = device::Entity::find()
        .filter(device::Column::EventsStatus.like("subscribed%"))
        .count(db)
        .await?;
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let cpu = usage().cpu - cpu0;
    let mut others: std::collections::BTreeMap<String, usize> = Default::default();
    for d in device::Entity::find()
        .filter(device::Column::EventsStatus.not_like("subscribed%"))
        .all(db)
        .await?
    {
        // "retrying at HH:MM:SS UTC: class: message" → "class: message".
        let why = d
            .events_status
            .split_once(" UTC: ")
            .map(|(_, w)| w)
            .unwrap_or(&d.events_status);
        *others.entry(why.chars().take(80).collect()).or_default() += 1;
    }
    if !others.is_empty() {
        println!("events: not subscribed: {others:?}");
    }
    println!(
        "events: {subscribed} of {eligible} answering cameras subscribed{}; held {} s: CPU {:.2?}, peak RSS {} MiB, open fds {fds}",
        all_at
            .map(|t| format!(" (all within {t:.1?}, starts spread over 10 s)"))
            .unwrap_or_default(),
        a.events_secs,
        cpu,
        usage().max_rss_kib / 1024
    );
    let t1 = Instant::now();
    stop.fire();
    let _ = task.await;
    println!("events: stopped (unsubscribing) in {:.2?}", t1.elapsed());
    // What the cameras saw: PullMessages per camera over the hold (the
    // simulator's own count), so the cadence is checked from outside.
    let pulls = sim_event_pulls(a).await;
    if let (Some(min), Some(max)) = (pulls.iter().min(), pulls.iter().max()) {
        println!(
            "events: PullMessages per camera over {} s: min {min}, max {max}, total {} (from {} cameras' counters)",
            a.events_secs,
            pulls.iter().sum::<u64>(),
            pulls.len()
        );
    }
    Ok(())
}

/// Where simulated camera `i` answers: `127.0.0.1:base+i`, or with
/// `--spread` ranges the (i mod per-range)-th host of range i / per-range
/// on base-port.
fn bench_camera(a: &PollBench, i: u32) -> String {
    if a.spread.is_empty() {
        return format!("127.0.0.1:{}", u32::from(a.base_port) + i);
    }
    let per = a.count.div_ceil(a.spread.len() as u32).max(1);
    let net = a.spread[((i / per) as usize).min(a.spread.len() - 1)];
    // As `Ipv4Net::hosts` counts them (the network address is not a host
    // below /31), without walking the range each time.
    let first = u32::from(net.network()) + u32::from(net.prefix_len() < 31);
    format!(
        "{}:{}",
        std::net::Ipv4Addr::from(first.wrapping_add(i % per)),
        a.base_port
    )
}

/// Each simulated camera's PullMessages count (its `/sim/stats`); cameras
/// that do not answer are left out.
async fn sim_event_pulls(a: &PollBench) -> Vec<u64> {
    use futures::StreamExt;
    // No idle connections kept: 10,000 of them would be the bench's own
    // memory, not camfleet's.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    futures::stream::iter(0..a.count)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "http://{}{}",
                bench_camera(a, i),
                crate::sim::http::STATS_PATH
            );
            async move {
                let body = http
                    .get(url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .ok()?
                    .bytes()
                    .await
                    .ok()?;
                let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
                v["event_pulls"].as_u64()
            }
        })
        .buffer_unordered(64)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// Record `streams` sources into a throw-away local tier and SQLite
/// ledger; report CPU per stream, frames (per stream over the requested
/// time) and losses.
async fn record(a: RecordBench) -> anyhow::Result<()> {
    use crate::recorder::{RecordOptions, RecordStats, Recorder, StreamId};
    let dir = std::env::temp_dir().join(format!("camfleet-bench-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = crate::db::connect(&crate::db::sqlite_url(&dir)).await?;
    // A local tier, as in production: segments are written, fsynced,
    // hashed and renamed into it, so disk work is part of the figure.
    let store = std::sync::Arc::new(crate::storage::Storage::local(&dir.join("storage"))?);
    let rec = std::sync::Arc::new(Recorder::new(
        std::sync::Arc::new(crate::fleet::recordings::Ledger::new(db)),
        store,
        SystemClock::shared(),
    ));
    let (stop, stopped) = crate::shutdown::channel();
    let cpu0 = usage().cpu;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..a.streams {
        let rec = rec.clone();
        let mut opts = RecordOptions::new(dir.join("spool"));
        opts.segment = Duration::from_secs(a.segment.max(1));
        let url = url::Url::parse(&a.url.replace("{i}", &i.to_string()))?;
        let creds = a.login.creds();
        let stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = RecordStats::default();
            let stream = StreamId {
                device_id: i as i32 + 1,
                site_id: None,
                profile: "bench".into(),
            };
            let r = rec
                .record(&stream, url, creds, &opts, &mut stats, stopped)
                .await;
            (r, stats)
        }));
    }
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let stopped_at = std::time::Instant::now();
    stop.fire();
    let mut total = RecordStats::default();
    let mut failed = 0;
    let mut slowest = f64::MAX;
    for t in tasks {
        let (r, s) = t.await?;
        if let Err(e) = r {
            failed += 1;
            eprintln!("stream failed: {e}");
        }
        // Each stream's own rate, from its first frame to the stop.
        if let Some(first) = s.first_frame {
            let secs = stopped_at.saturating_duration_since(first).as_secs_f64();
            if secs > 0.0 {
                slowest = slowest.min(s.frames as f64 / secs);
            }
        }
        total.frames += s.frames;
        total.segments += s.segments;
        total.bytes += s.bytes;
        total.lost += s.lost;
    }
    let wall = t0.elapsed();
    let cpu = usage().cpu - cpu0;
    println!(
        "{} streams for {:.1?}: CPU {:.2?} ({:.2} % of one core per stream), {} frames ({:.1} fps per stream, slowest stream {:.1}), {} lost, {} segments, {} MiB, {failed} failed, peak RSS {} MiB",
        a.streams,
        wall,
        cpu,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0 / a.streams as f64,
        total.frames,
        total.frames as f64 / a.secs as f64 / a.streams as f64,
        if slowest == f64::MAX { 0.0 } else { slowest },
        total.lost,
        total.segments,
        total.bytes / 1_048_576,
        usage().max_rss_kib / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Replay `minutes` of a camera's recording into a throw-away local tier.
async fn replay(a: ReplayBench) -> anyhow::Result<()> {
    use crate::recorder::{RecordOptions, StreamId, replay::ReplayRequest};
    let dir = std::env::temp_dir().join(format!("camfleet-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = crate::db::connect(&crate::db::sqlite_url(&dir)).await?;
    let store = std::sync::Arc::new(crate::storage::Storage::local(&dir.join("storage"))?);
    let rec = crate::fleet::recordings::recorder(db, store, SystemClock::shared());
    let now = chrono::Utc::now();
    let req = ReplayRequest {
        uri: url::Url::parse(&a.url)?,
        creds: a.login.creds(),
        from: now - chrono::Duration::minutes(a.minutes.max(1) + 1),
        to: now - chrono::Duration::minutes(1),
        max_bytes_per_s: a.mbps.max(1) * 125_000,
        idle_timeout: Duration::from_secs(15),
        camera_offset: chrono::Duration::zero(),
    };
    let mut opts = RecordOptions::new(dir.join("spool"));
    opts.origin = "edge".into();
    let stream = StreamId {
        device_id: 1,
        site_id: None,
        profile: "bench".into(),
    };
    let cpu0 = usage().cpu;
    let t0 = Instant::now();
    let st = rec
        .backfill(&stream, req, &opts, crate::shutdown::never())
        .await?;
    let wall = t0.elapsed();
    let cpu = usage().cpu - cpu0;
    let covered = match (st.first, st.last) {
        (Some(f), Some(l)) => (l - f).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    println!(
        "replayed {covered:.0} s of recording in {wall:.2?} ({:.0}x real time): {} frames, {} segments, {} MiB ({:.0} Mbit/s), {} dropped; CPU {cpu:.2?}, peak RSS {} MiB",
        covered / wall.as_secs_f64().max(0.001),
        st.frames,
        st.segments,
        st.bytes / 1_048_576,
        st.bytes as f64 * 8.0 / 1e6 / wall.as_secs_f64().max(0.001),
        st.dropped,
        usage().max_rss_kib / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn rand_key() -> [u8; 32] {
    use rand::Rng;
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}
