//! `camfleet probe URL`: run the adopt sequence against one camera and show
//! what it is, how it authenticates, its clock and its streams.

use std::time::Duration;

use clap::Args;

use super::CredentialArgs;
use crate::clock::SystemClock;
use crate::onvif::adopt::StepOutcome;
use crate::onvif::{self, AdoptRequest, DevicePolicy, Transport, TransportConfig};

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Device service URL, e.g. http://127.0.0.1:18080/onvif/device_service.
    pub url: String,
    #[command(flatten)]
    pub creds: CredentialArgs,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Print the whole record as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn probe(a: ProbeArgs) -> anyhow::Result<()> {
    let transport = Transport::new(TransportConfig {
        timeout: Duration::from_secs_f64(a.timeout.max(0.1)),
        ..TransportConfig::default()
    })?;
    let req = AdoptRequest {
        xaddrs: vec![a.url.clone()],
        credentials: a.creds.credentials()?,
        policy: DevicePolicy::default(),
    };
    let clock = SystemClock::shared();
    match onvif::adopt(&transport, &clock, req).await {
        Ok(d) if a.json => println!("{}", serde_json::to_string_pretty(&d)?),
        Ok(d) => {
            println!("device      {}", d.device_url);
            println!(
                "identity    {} {} firmware {} serial {} hardware {}",
                d.info.manufacturer,
                d.info.model,
                d.info.firmware_version,
                d.info.serial_number,
                d.info.hardware_id
            );
            println!("mac         {}", d.mac.as_deref().unwrap_or("-"));
            if let Some(h) = &d.hostname {
                println!(
                    "hostname    {}{}",
                    h.name.as_deref().unwrap_or("-"),
                    if h.from_dhcp { " (DHCP)" } else { "" }
                );
            }
            println!(
                "auth        {}",
                d.auth_mode.map(|m| m.as_str()).unwrap_or("unknown")
            );
            println!(
                "clock       offset {} ms{}",
                d.clock_offset_ms
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "?".into()),
                d.camera_time
                    .as_ref()
                    .map(|t| format!(", camera UTC {}", t.utc))
                    .unwrap_or_default()
            );
            for s in &d.services {
                let v = s
                    .version
                    .map(|(a, b)| format!(" v{a}.{b}"))
                    .unwrap_or_default();
                println!("service     {}{} {}", s.namespace, v, s.xaddr);
            }
            for p in &d.profiles {
                let enc = p
                    .encoder
                    .as_ref()
                    .map(|e| {
                        format!(
                            "{} {}x{} @{}fps",
                            e.encoding,
                            e.width.unwrap_or(0),
                            e.height.unwrap_or(0),
                            e.frame_rate_limit.unwrap_or(0.0)
                        )
                    })
                    .unwrap_or_default();
                println!("profile     {} ({}) {enc}", p.token, p.name);
                println!("  stream    {}", p.stream_uri.as_deref().unwrap_or("-"));
                println!("  snapshot  {}", p.snapshot_uri.as_deref().unwrap_or("-"));
            }
            for q in &d.quirks {
                println!("quirk       {}", serde_json::to_string(q)?);
            }
            for s in &d.steps {
                match &s.outcome {
                    StepOutcome::Ok => {}
                    StepOutcome::Skipped { reason } => println!("skipped     {}: {reason}", s.step),
                    StepOutcome::Failed { error } => println!("failed      {}: {error}", s.step),
                }
            }
        }
        Err(e) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            anyhow::bail!("{e}");
        }
    }
    Ok(())
}
