//! `camfleet discover`: multicast WS-Discovery on a named interface (loopback
//! by default), or a unicast sweep of a CIDR with an HTTP fallback.

use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

use clap::Args;
use ipnet::Ipv4Net;

use super::table::Table;
use crate::discovery::sweep::SweepProgress;
use crate::discovery::{self, Discovered, ProbeConfig, SweepConfig};

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// This host's address on the link to multicast on (and to watch for
    /// Hello/Bye on). Needed for multicast: discovery never picks a link by
    /// itself. A sweep (--cidr) follows the routing table instead.
    #[arg(long)]
    pub interface: Option<Ipv4Addr>,
    /// Sweep this range with unicast probes instead of multicasting.
    #[arg(long)]
    pub cidr: Option<Ipv4Net>,
    /// Seconds to listen for answers (multicast) or after the last probe (sweep).
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    /// WS-Discovery port.
    #[arg(long, default_value_t = 3702)]
    pub port: u16,
    /// Multicast TTL (1 keeps probes on the local segment).
    #[arg(long, default_value_t = 1)]
    pub ttl: u32,
    /// Sweep: HTTP fallback ports, comma-separated; empty disables.
    #[arg(long, value_delimiter = ',', default_value = "80,8080,8000,8899")]
    pub http_ports: Vec<u16>,
    /// Sweep: hosts probed per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Print every device with all its XAddrs as JSON.
    #[arg(long)]
    pub json: bool,
    /// After the probe, keep listening for Hello/Bye announcements this many
    /// seconds (0 = until interrupted) and print them as they come.
    #[arg(long)]
    pub watch: Option<u64>,
}

/// The interface multicast and the Hello watch use: named, and one of
/// this host's.
fn named_interface(a: &DiscoverArgs) -> anyhow::Result<Ipv4Addr> {
    let host = crate::discovery::interfaces::host_interfaces()?;
    let Some(ip) = a.interface else {
        anyhow::bail!(
            "multicast needs the link: --interface ADDRESS, one of this host's ({}); or sweep a range with --cidr",
            crate::discovery::interfaces::describe(&host)
        );
    };
    crate::discovery::interfaces::resolve(&crate::config::InterfaceChoice::List(vec![ip]), &host)
        .map_err(anyhow::Error::msg)?;
    Ok(ip)
}

pub async fn discover(a: DiscoverArgs) -> anyhow::Result<()> {
    let watch_on = match a.watch {
        Some(_) => Some(named_interface(&a)?),
        None => None,
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    // What could not be done, for the exit code (a sweep's unchecked
    // hosts; answers that were not understood).
    let mut shortfall: Option<String> = None;
    let devices: Vec<Discovered> = match a.cidr {
        Some(cidr) => {
            let mut cfg = SweepConfig::new(cidr);
            cfg.wsd_port = a.port;
            cfg.wsd_wait = Duration::from_secs_f64(a.timeout.max(0.1));
            cfg.http_ports = a.http_ports.clone();
            cfg.hosts_per_sec = a.rate.max(1);
            let mut last = SweepProgress::default();
            let found = discovery::sweep::sweep(&cfg, |p, _| {
                last = *p;
                if tty {
                    let done = p.probes_sent + p.http_checked;
                    let total = (p.hosts_total + p.http_total).max(1);
                    let width = 30;
                    let filled = (done * width / total).min(width) as usize;
                    eprint!(
                        "\r[{}{}] {done}/{total} checked, {} found ",
                        "=".repeat(filled),
                        " ".repeat(width as usize - filled),
                        p.found
                    );
                    let _ = std::io::stderr().flush();
                }
            })
            .await?;
            if last.hosts_total > 0 && last.probes_sent < last.hosts_total {
                shortfall = Some(format!(
                    "{} of {} hosts could not be probed",
                    last.hosts_total - last.probes_sent,
                    last.hosts_total
                ));
            }
            found
        }
        None => {
            let cfg = ProbeConfig {
                interface: named_interface(&a)?,
                ttl: a.ttl,
                window: Duration::from_secs_f64(a.timeout.max(0.1)),
                port: a.port,
                ..ProbeConfig::default()
            };
            let mut n = 0;
            let r = discovery::probe::multicast(&cfg, |_| {
                n += 1;
                if tty {
                    eprint!("\rlistening… {n} found ");
                    let _ = std::io::stderr().flush();
                }
            })
            .await?;
            if r.ignored_datagrams > 0 {
                shortfall = Some(format!(
                    "{} answers were not understood (see the log)",
                    r.ignored_datagrams
                ));
            }
            if r.rcvbuf_bytes < 4 * 1024 * 1024 {
                tracing::warn!(
                    rcvbuf = r.rcvbuf_bytes,
                    "small receive buffer: answers from large fleets may be lost (run as root or raise net.core.rmem_max)"
                );
            }
            r.devices
        }
    };
    if tty {
        eprintln!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return match shortfall {
            Some(s) => Err(crate::cli::PartialFailure(s).into()),
            None => Ok(()),
        };
    }
    let mut t = Table::new(&["endpoint", "name", "hardware", "xaddr", "via"]);
    for d in &devices {
        t.row(vec![
            d.endpoint.clone(),
            d.scopes.name.clone().unwrap_or_default(),
            d.scopes.hardware.clone().unwrap_or_default(),
            d.xaddrs.first().cloned().unwrap_or_default(),
            d.via.to_string(),
        ]);
    }
    print!("{}", t.render());
    println!("{} device(s)", devices.len());
    if let (Some(secs), Some(interface)) = (a.watch, watch_on) {
        watch(interface, a.port, secs).await?;
    }
    match shortfall {
        Some(s) => Err(crate::cli::PartialFailure(s).into()),
        None => Ok(()),
    }
}

async fn watch(interface: Ipv4Addr, port: u16, secs: u64) -> anyhow::Result<()> {
    use crate::discovery::hello::{Announcement, HelloListener};
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let (trigger, sd) = crate::shutdown::channel();
    let listener = tokio::spawn(HelloListener { interface, port }.run(tx, sd));
    println!("watching for Hello/Bye on udp/{port} via {interface}…");
    let deadline = async {
        if secs == 0 {
            super::interrupted().await
        } else {
            tokio::time::sleep(Duration::from_secs(secs)).await
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            a = rx.recv() => match a {
                Some(Announcement::Hello(d)) => println!(
                    "{} hello {} {} {}",
                    chrono::Utc::now().format("%H:%M:%S"),
                    d.endpoint,
                    d.scopes.name.as_deref().unwrap_or("-"),
                    d.xaddrs.first().map(String::as_str).unwrap_or("-")
                ),
                Some(Announcement::Bye { endpoint, source }) => {
                    println!("{} bye   {endpoint} from {source}", chrono::Utc::now().format("%H:%M:%S"))
                }
                None => break,
            },
        }
    }
    trigger.fire();
    listener.await??;
    Ok(())
}
