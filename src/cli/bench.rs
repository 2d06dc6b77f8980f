//! `camfleet bench …`: whole-system benchmarks whose figures go into
//! BENCHMARKS.md. The simulated fleet runs in another process (`camfleet
//! simulate`), so the CPU and memory measured here are the client's alone.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::clock::SystemClock;
use crate::discovery::{self, ProbeConfig};
use crate::onvif::{self, AdoptRequest, Credentials, DevicePolicy, Transport, TransportConfig};

/// Set by `main` as early as possible: "start-up" for time-to-first-result.
pub static PROCESS_START: OnceLock<Instant> = OnceLock::new();

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Adopt N cameras at 127.0.0.1:base-port+i with bounded concurrency.
    Adopt(AdoptBench),
    /// One multicast probe round; report how many answered and how fast.
    Discovery(DiscoveryBench),
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
