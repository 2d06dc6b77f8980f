//! `camfleet record --device ID [--profile TOKEN]`: record one camera's
//! stream into the storage tier and the recordings ledger until Ctrl-C
//! (`serve` records every device by its recording policy).
//! `camfleet backfill [--device ID]`: fill the gaps once, from the cameras.

use clap::Args;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::serve::DataArgs;
use crate::db::entities::{device, device_profile};
use crate::recorder::{RecordOptions, Recorder, StreamId};

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The device's id (see the device list).
    #[arg(long)]
    pub device: i32,
    /// Media profile token; default: the device's first profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Segment length in seconds (cut at the next keyframe).
    #[arg(long, default_value_t = 60)]
    pub segment: u64,
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn record(a: RecordArgs) -> anyhow::Result<()> {
    let cfg = a.data.app_config()?;
    let data_dir = cfg.data_dir.clone();
    let state = crate::app::build(&cfg).await?;
    let d = device::Entity::find_by_id(a.device)
        .one(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no device {}", a.device))?;
    let mut q = device_profile::Entity::find().filter(device_profile::Column::DeviceId.eq(d.id));
    if let Some(p) = &a.profile {
        q = q.filter(device_profile::Column::Token.eq(p.clone()));
    }
    let p = q
        .order_by_asc(device_profile::Column::Id)
        .one(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("device {} has no such media profile", d.id))?;
    let uri = p
        .stream_uri
        .clone()
        .ok_or_else(|| anyhow::anyhow!("profile {} has no stream address", p.token))?;
    let creds = state
        .inventory
        .credentials_of(&d)
        .await?
        .map(|c| (c.username, c.password));
    let spool = data_dir.join("spool");
    let rec = std::sync::Arc::new(Recorder::new(
        std::sync::Arc::new(crate::fleet::recordings::Ledger::new(state.db.clone())),
        state.storage.clone(),
        state.clock.clone(),
    ));
    let (discarded, committed) = rec.reconcile(&spool, "hot").await?;
    if discarded + committed > 0 {
        eprintln!(
            "spool: {discarded} cut-off segments discarded, {committed} finished ones committed"
        );
    }
    let mut opts = RecordOptions::new(spool);
    opts.segment = std::time::Duration::from_secs(a.segment.max(1));
    opts.udp = d.record_transport == "udp";
    let (stop, stopped) = crate::shutdown::channel();
    let stream = StreamId {
        device_id: d.id,
        site_id: d.site_id,
        profile: p.token.clone(),
    };
    println!(
        "recording {uri} into {} (Ctrl-C stops)",
        state.storage.description
    );
    let url = url::Url::parse(&uri)?;
    let task = tokio::spawn(rec.run(stream, url, creds, opts, stopped));
    super::interrupted().await;
    stop.fire();
    let stats = task.await?;
    println!(
        "{} frames, {} segments, {} bytes, {} frames lost",
        stats.frames, stats.segments, stats.bytes, stats.lost
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct BackfillArgs {
    /// Only this device (default: every recorded, reachable device).
    #[arg(long)]
    pub device: Option<i32>,
    /// How far back to look for gaps, in hours.
    #[arg(long, default_value_t = 24)]
    pub hours: i64,
    /// Read at most this many Mbit/s from each camera.
    #[arg(long, default_value_t = 32)]
    pub mbps: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn backfill(a: BackfillArgs) -> anyhow::Result<()> {
    let state = crate::app::build(&a.data.app_config()?).await?;
    let b = state
        .backfill
        .clone()
        .ok_or_else(|| anyhow::anyhow!("edge backfill needs a data directory"))?;
    let mut config = b.config.clone();
    config.window = chrono::Duration::hours(a.hours.max(1));
    config.max_bytes_per_s = a.mbps.max(1) * 125_000;
    let b = b.with_config(config);
    let r = b.run(a.device, crate::shutdown::never()).await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "devices": r.devices, "gaps": r.gaps, "filled": r.filled,
                "partial": r.partial, "empty": r.empty, "failed": r.failed,
                "segments": r.segments, "bytes": r.bytes, "log": r.log,
            }))?
        );
    } else {
        for line in &r.log {
            println!("{line}");
        }
        println!("{}", r.summary());
    }
    if r.failed > 0 && r.failed == r.gaps {
        anyhow::bail!("none of the {} gaps could be filled", r.failed);
    }
    if r.failed > 0 {
        return Err(crate::cli::PartialFailure(format!(
            "{} of {} gaps could not be filled",
            r.failed, r.gaps
        ))
        .into());
    }
    Ok(())
}
