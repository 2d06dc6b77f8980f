//! Recording policies for the fleet: every device with a profile to record
//! gets one long-lived recorder task (reconnecting on its own); tasks are
//! started and stopped as policies change. Each stream's state goes to the
//! device row (the health view) and, when a recording stops or resumes,
//! to alerting (`recording_stopped`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::health::HealthEvent;
use super::poller::{Notice, stored_credentials};
use crate::clock::SharedClock;
use crate::db::entities::{device, device_profile};
use crate::error::Result;
use crate::recorder::{RecEvent, RecordOptions, Recorder, StreamId};
use crate::secrets::SecretBox;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::storage::Storage;

/// Set a device's recording policy: a media profile it has (None: not
/// recorded) over `tcp` or `udp`. Validated and audited; the manager picks
/// the change up on its next tick.
pub async fn set_policy(
    db: &DatabaseConnection,
    at: chrono::DateTime<chrono::Utc>,
    d: device::Model,
    profile: Option<String>,
    transport: &str,
    actor: &super::audit::Actor,
) -> Result<()> {
    use crate::error::{Error, ErrorKind};
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    if !matches!(transport, "tcp" | "udp") {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("transport: tcp or udp, not {transport:?}"),
        ));
    }
    if let Some(token) = &profile {
        let known = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(d.id))
            .filter(device_profile::Column::Token.eq(token.clone()))
            .one(db)
            .await?;
        if known.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("recording: no media profile {token:?} on this device"),
            ));
        }
    }
    let id = d.id;
    let before =
        serde_json::json!({"record_profile": d.record_profile, "transport": d.record_transport});
    let mut am = d.into_active_model();
    am.record_profile = Set(profile.clone());
    am.record_transport = Set(transport.to_string());
    if profile.is_none() {
        am.recording_status = Set(String::new());
    }
    am.update(db).await?;
    super::audit::record(
        db,
        actor,
        at,
        super::audit::Entry {
            action: "device.recording",
            target_kind: "device",
            target_id: id.to_string(),
            before: Some(before),
            after: Some(serde_json::json!({"record_profile": profile, "transport": transport})),
        },
    )
    .await
}

pub struct RecordingManager {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    recorder: Arc<Recorder>,
    pub spool: PathBuf,
    pub segment: Duration,
    pub reconcile_every: Duration,
    /// How often each stream reports its rates (and per-stream metrics).
    pub stats_every: Duration,
    /// Live view: a recorded camera's viewers are fed from its recording.
    live: Option<Arc<crate::recorder::live::LiveHub>>,
    /// The devices this node records (its leases in a cluster).
    share: super::cluster::Share,
    /// Streams recording now (the node's heartbeat reports it).
    active: Arc<std::sync::atomic::AtomicUsize>,
}

struct Task {
    /// What it records: (profile, stream address, transport).
    what: (String, String, String),
    stop: ShutdownTrigger,
    handle: tokio::task::JoinHandle<()>,
}

impl RecordingManager {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        store: Arc<Storage>,
        clock: SharedClock,
        spool: PathBuf,
    ) -> Self {
        Self {
            recorder: super::recordings::recorder(db.clone(), store, clock),
            db,
            secrets,
            spool,
            segment: Duration::from_secs(60),
            stats_every: Duration::from_secs(10),
            reconcile_every: Duration::from_secs(30),
            live: None,
            share: Default::default(),
            active: Default::default(),
        }
    }

    /// Record only this node's devices, and count the streams into `active`.
    pub fn with_cluster(
        mut self,
        share: super::cluster::Share,
        active: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Self {
        self.share = share;
        self.active = active;
        self
    }

    /// Feed live view from the recordings (no second session to a camera).
    pub fn with_live(mut self, hub: Arc<crate::recorder::live::LiveHub>) -> Self {
        self.live = Some(hub);
        self
    }

    async fn set_status(&self, id: i32, status: &str) -> Result<()> {
        device::Entity::update_many()
            .col_expr(
                device::Column::RecordingStatus,
                sea_orm::sea_query::Expr::value(status.chars().take(500).collect::<String>()),
            )
            .filter(device::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Devices to record: (device, profile token, stream address). Two
    /// queries whatever the fleet's size; credentials are opened only for
    /// streams being started.
    /// Returns those this node records, and every device the policies
    /// want recorded (on any node).
    async fn wanted(&self) -> Result<(Vec<(device::Model, String, String)>, HashSet<i32>)> {
        let mut devices = device::Entity::find()
            .filter(device::Column::RecordProfile.is_not_null())
            .all(&self.db)
            .await?;
        let policy: HashSet<i32> = devices.iter().map(|d| d.id).collect();
        devices.retain(|d| self.share.owns(d.id));
        let mut uris: HashMap<(i32, String), String> = HashMap::new();
        let ids: Vec<i32> = devices.iter().map(|d| d.id).collect();
        for chunk in ids.chunks(1000) {
            for p in device_profile::Entity::find()
                .filter(device_profile::Column::DeviceId.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                if let Some(uri) = p.stream_uri {
                    uris.insert((p.device_id, p.token), uri);
                }
            }
        }
        let mut out = Vec::new();
        for d in devices {
            let token = d.record_profile.clone().unwrap_or_default();
            let Some(uri) = uris.remove(&(d.id, token.clone())) else {
                let status = format!("not recording: profile {token} has no stream address");
                if d.recording_status != status {
                    self.set_status(d.id, &status).await?;
                }
                continue;
            };
            out.push((d, token, uri));
        }
        Ok((out, policy))
    }

    /// Run until shutdown; `on_notices` gets recording stopped/resumed.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: Shutdown,
        on_notices: impl Fn(Vec<Notice>) + Send + Sync + 'static,
    ) {
        match self.recorder.reconcile(&self.spool, "hot").await {
            Ok((d, c)) if d + c > 0 => {
                tracing::warn!(
                    discarded = d,
                    committed = c,
                    "recording spool reconciled after a restart"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconciling the recording spool failed"),
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i32, RecEvent)>();
        let mut tasks: HashMap<i32, Task> = HashMap::new();
        // Devices whose recording is known stopped (alerted).
        let mut stopped: std::collections::HashSet<i32> = Default::default();
        let mut tick = tokio::time::interval(self.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut share = self.share.clone();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                // A device leased or handed back: start or stop at once.
                _ = share.changed() => {
                    if let Err(e) = self.reconcile_tasks(&mut tasks, &tx).await {
                        tracing::warn!(error = %e, "recording policies: reconcile failed");
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.reconcile_tasks(&mut tasks, &tx).await {
                        tracing::warn!(error = %e, "recording policies: reconcile failed");
                    }
                    // Segments the tier refused (full, unreachable) are
                    // filed once it takes them again.
                    let n = self.recorder.retry_pending(&self.spool, "hot", Duration::from_secs(60)).await;
                    if n > 0 {
                        tracing::info!(segments = n, "pending segments stored");
                    }
                }
                Some((id, ev)) = rx.recv() => {
                    let device = id.to_string();
                    let (status, notice) = match &ev {
                        RecEvent::Recording => (
                            "recording".to_string(),
                            stopped.remove(&id).then_some(HealthEvent::RecordingResumed),
                        ),
                        RecEvent::Segment { bytes } => {
                            metrics::counter!("camfleet_recorded_segments_total", "device" => device.clone()).increment(1);
                            metrics::counter!("camfleet_recorded_segment_bytes_total", "device" => device).increment(*bytes);
                            continue;
                        }
                        RecEvent::Stats { fps_x10, kbit_s, frames_lost, reconnects } => {
                            // Per stream: rates as gauges, losses and
                            // reconnects as counters (since the recording
                            // task started; a restart is a counter reset).
                            metrics::gauge!("camfleet_recording_fps", "device" => device.clone())
                                .set(f64::from(*fps_x10) / 10.0);
                            metrics::gauge!("camfleet_recording_bitrate_bits_per_second", "device" => device.clone())
                                .set(f64::from(*kbit_s) * 1000.0);
                            metrics::counter!("camfleet_recording_frames_lost_total", "device" => device.clone())
                                .absolute(*frames_lost);
                            metrics::counter!("camfleet_recording_reconnects_total", "device" => device)
                                .absolute(*reconnects);
                            (
                            format!(
                                "recording: {}.{} fps, {kbit_s} kbit/s, {reconnects} reconnects, {frames_lost} frames lost",
                                fps_x10 / 10,
                                fps_x10 % 10
                            ),
                            None,
                        )
                        }
                        RecEvent::Interrupted { error, retry_in } => {
                            metrics::counter!("camfleet_recording_interruptions_total", "device" => device).increment(1);
                            (
                            format!("retrying in {} s: {error}", retry_in.as_secs().max(1)),
                            stopped.insert(id).then(|| HealthEvent::RecordingStopped { reason: error.clone() }),
                        )
                        }
                    };
                    if let Err(e) = self.set_status(id, &status).await {
                        tracing::warn!(error = %e, "recording status not stored");
                    }
                    if let Some(event) = notice {
                        on_notices(vec![Notice::Event { device_id: id, event }]);
                    }
                }
            }
        }
        for t in tasks.values() {
            t.stop.fire();
        }
        for (_, t) in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t.handle).await;
        }
    }

    async fn reconcile_tasks(
        &self,
        tasks: &mut HashMap<i32, Task>,
        tx: &tokio::sync::mpsc::UnboundedSender<(i32, RecEvent)>,
    ) -> Result<()> {
        let (wanted, policy) = self.wanted().await?;
        let ids: std::collections::HashSet<i32> = wanted.iter().map(|w| w.0.id).collect();
        // Stop what is no longer wanted, or wanted differently.
        let mut gone = Vec::new();
        for (id, t) in tasks.iter() {
            let same = wanted.iter().find(|w| w.0.id == *id).is_some_and(|w| {
                (w.1.clone(), w.2.clone(), w.0.record_transport.clone()) == t.what
            });
            if !ids.contains(id) || !same || t.handle.is_finished() {
                t.stop.fire();
                gone.push(*id);
            }
        }
        for id in gone {
            tasks.remove(&id);
            if let Some(hub) = &self.live {
                hub.set_recorded(id, false);
            }
            // Handed to another node: that node says how it records.
            if !ids.contains(&id) && !policy.contains(&id) {
                self.set_status(id, "").await?;
            }
        }
        for (d, token, uri) in wanted {
            if tasks.contains_key(&d.id) {
                continue;
            }
            let creds = stored_credentials(&self.db, &self.secrets, d.credential_id)
                .await?
                .map(|c| (c.username, c.password));
            let Ok(url) = url::Url::parse(&uri) else {
                self.set_status(d.id, &format!("not recording: bad stream address {uri:?}"))
                    .await?;
                continue;
            };
            let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
            let fwd = tx.clone();
            let id = d.id;
            tokio::spawn(async move {
                while let Some(e) = ev_rx.recv().await {
                    if fwd.send((id, e)).is_err() {
                        break;
                    }
                }
            });
            let mut opts = RecordOptions::new(self.spool.clone());
            opts.segment = self.segment;
            opts.stats_every = self.stats_every;
            opts.udp = d.record_transport == "udp";
            opts.events = Some(ev_tx);
            if let Some(hub) = &self.live {
                opts.live = Some(hub.channel(d.id));
                hub.set_recorded(d.id, true);
            }
            let (stop, stopped) = crate::shutdown::channel();
            let stream = StreamId {
                device_id: d.id,
                site_id: d.site_id,
                profile: token.clone(),
            };
            let rec = self.recorder.clone();
            let handle = tokio::spawn(async move {
                rec.run(stream, url, creds, opts, stopped).await;
            });
            tasks.insert(
                d.id,
                Task {
                    what: (token, uri, d.record_transport.clone()),
                    stop,
                    handle,
                },
            );
        }
        self.active
            .store(tasks.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
