//! The health poller: every adopted device, on its interval, without pause.
//!
//! Each poll reads the camera clock (GetSystemDateAndTime: reachability,
//! latency, drift, reboots as clock jumps) and, at a lower cadence and
//! right after a device comes back, its identity and firmware
//! (GetDeviceInformation, authenticated: this is also where refused
//! credentials show). The outcome goes through the state machine in
//! [`super::health`]; state, samples and transitions are written in one
//! transaction per batch.
//!
//! One misbehaving camera cannot slow the rest: every poll has a deadline,
//! bodies are capped by the transport, polls run under a global
//! concurrency cap, and a device is never polled again while its previous
//! poll is still out (one request in flight per camera at most). Polls
//! open a fresh connection each time, so 10,000 cameras do not hold
//! 10,000 idle sockets between polls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, Set, TransactionTrait,
};

use super::health::{self, HealthConfig, HealthEvent, HealthState, PollOutcome, Tracker};
use crate::clock::SharedClock;
use crate::db::entities::{credential, device, device_transition, health_sample, site};
use crate::error::Result;
use crate::onvif::{AuthMode, Credentials, DevicePolicy, DeviceSession, FaultClass, Transport};
use crate::secrets::SecretBox;

/// Answers to the poll's requests are 1–3 KiB; a camera sending more is
/// cut off at 64 KiB (not at the transport's general 4 MiB), so hundreds
/// of misbehaving cameras at once cannot balloon memory (measured in
/// BENCHMARKS.md).
pub const POLL_MAX_BODY: usize = 64 * 1024;

/// The transport settings for polling.
pub fn poll_transport() -> std::result::Result<Transport, crate::onvif::transport::TransportError> {
    Transport::new(crate::onvif::TransportConfig {
        max_body_bytes: POLL_MAX_BODY,
        ..Default::default()
    })
}

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub interval: Duration,
    /// How often identity and firmware are read.
    pub info_interval: Duration,
    /// Polls in flight at once, fleet-wide.
    pub concurrency: usize,
    /// Deadline of one whole poll (all its requests).
    pub deadline: Duration,
    /// A clock offset change larger than this between two polls is a jump.
    pub jump_ms: i64,
    pub health: HealthConfig,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            info_interval: Duration::from_secs(600),
            // Mostly waiting on sockets: a hanging camera holds a slot for
            // the whole deadline, so slots are many and cheap.
            concurrency: 512,
            deadline: Duration::from_secs(10),
            jump_ms: 60_000,
            health: HealthConfig::default(),
        }
    }
}

/// What the poller needs of a device: the lean part of its row (no
/// inventory fields, no address lists), so 10,000 of them stay small.
#[derive(Debug, Clone, sea_orm::FromQueryResult)]
pub struct PollTarget {
    pub id: i32,
    pub device_url: String,
    pub policy: serde_json::Value,
    pub auth_mode: Option<String>,
    pub quirks: serde_json::Value,
    pub status: String,
    pub poll_failures: i32,
    pub poll_successes: i32,
    pub serial: Option<String>,
    pub firmware: String,
    pub drift_ms: Option<i64>,
    pub last_info_at: Option<chrono::DateTime<chrono::Utc>>,
    pub poll_interval_s: Option<i32>,
    pub site_id: Option<i32>,
    pub last_poll_at: Option<chrono::DateTime<chrono::Utc>>,
    pub adopted_at: chrono::DateTime<chrono::Utc>,
    pub credential_id: Option<i32>,
}

impl From<device::Model> for PollTarget {
    fn from(d: device::Model) -> Self {
        PollTarget {
            id: d.id,
            device_url: d.device_url,
            policy: d.policy,
            auth_mode: d.auth_mode,
            quirks: d.quirks,
            status: d.status,
            poll_failures: d.poll_failures,
            poll_successes: d.poll_successes,
            serial: d.serial,
            firmware: d.firmware,
            drift_ms: d.drift_ms,
            last_info_at: d.last_info_at,
            poll_interval_s: d.poll_interval_s,
            site_id: d.site_id,
            last_poll_at: d.last_poll_at,
            adopted_at: d.adopted_at,
            credential_id: d.credential_id,
        }
    }
}

/// The stored credential, opened: the one way every worker reads a camera
/// password. A password this process cannot open (the secret key was
/// replaced, the row was damaged) is an error naming the credential and
/// what to do, never "no credentials": calling the camera anonymously
/// instead would report the wrong problem and count against its lockout.
pub(crate) fn open_credentials(
    secrets: &SecretBox,
    c: &credential::Model,
) -> crate::error::Result<Credentials> {
    let password = secrets.open_string(&c.sealed).map_err(|e| {
        crate::error::Error::new(
            crate::error::ErrorKind::Unauthenticated,
            format!(
                "the stored password of credential {} ({}) cannot be opened with this secret key ({e}); enter it again on the device page",
                c.id, c.username
            ),
        )
    })?;
    Ok(Credentials {
        username: c.username.clone(),
        password,
    })
}

/// A device's stored credential, opened (None: it has none; an error: it
/// cannot be opened, see [`open_credentials`]).
pub(crate) async fn stored_credentials(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    credential_id: Option<i32>,
) -> crate::error::Result<Option<Credentials>> {
    let Some(id) = credential_id else {
        return Ok(None);
    };
    match credential::Entity::find_by_id(id).one(db).await? {
        Some(c) => open_credentials(secrets, &c).map(Some),
        None => Ok(None),
    }
}

/// A session to a stored device with its policy and known auth mode.
pub(crate) fn device_session(
    device_url: &str,
    policy: &serde_json::Value,
    auth_mode: Option<&str>,
    quirks: &serde_json::Value,
    creds: Option<Credentials>,
    transport: &Transport,
    clock: &SharedClock,
) -> std::result::Result<DeviceSession, (FaultClass, String)> {
    let url = url::Url::parse(device_url)
        .map_err(|e| (FaultClass::Transport, format!("device URL: {e}")))?;
    let mut policy: DevicePolicy = serde_json::from_value(policy.clone()).unwrap_or_default();
    if policy.auth_mode.is_none() {
        policy.auth_mode = auth_mode.and_then(AuthMode::parse);
    }
    let session = DeviceSession::new(transport.clone(), clock.clone(), url, creds, policy);
    // What earlier sessions learned about this device, so this one acts
    // on it from its first request (see `fleet::policies`).
    session.seed_quirks(super::policies::stored(quirks));
    Ok(session)
}

/// Load poll targets (every device in service, lean columns only).
pub async fn targets(db: &DatabaseConnection) -> Result<Vec<PollTarget>> {
    targets_where(db, Condition::all()).await
}

async fn targets_where(db: &DatabaseConnection, cond: Condition) -> Result<Vec<PollTarget>> {
    Ok(device::Entity::find()
        .filter(cond)
        // A retired device is kept in the inventory, not worked on.
        .filter(device::Column::RetiredAt.is_null())
        .select_only()
        .columns([
            device::Column::Id,
            device::Column::DeviceUrl,
            device::Column::Policy,
            device::Column::Quirks,
            device::Column::AuthMode,
            device::Column::Status,
            device::Column::PollFailures,
            device::Column::PollSuccesses,
            device::Column::Serial,
            device::Column::Firmware,
            device::Column::DriftMs,
            device::Column::LastInfoAt,
            device::Column::PollIntervalS,
            device::Column::SiteId,
            device::Column::LastPollAt,
            device::Column::AdoptedAt,
            device::Column::CredentialId,
        ])
        .into_model::<PollTarget>()
        .all(db)
        .await?)
}

/// What one device's poll produced, before it is written.
#[derive(Debug, Clone)]
pub struct PollResult {
    pub device_id: i32,
    pub outcome: PollOutcome,
    pub at: chrono::DateTime<chrono::Utc>,
    /// When the poll began: the next one is due an interval after this, so
    /// a slow or hung camera keeps its cadence (stamped at the end, a camera
    /// that hangs for the 5 s deadline was polled every 15 s, not every 10).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// What the session knew at its end (auth mode, durable quirks), for
    /// the device's stored policies; None when the poll did not answer.
    pub learned: Option<super::policies::Learned>,
}

/// A state change or a noticed event, for alerting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Transition {
        device_id: i32,
        from: HealthState,
        to: HealthState,
        reason: String,
    },
    Event {
        device_id: i32,
        event: HealthEvent,
    },
}

#[derive(Debug, Default, Clone)]
pub struct CycleReport {
    pub polled: usize,
    pub answered: usize,
    pub failed_by_class: HashMap<&'static str, usize>,
    pub notices: Vec<Notice>,
}

pub struct Poller {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    transport: Transport,
    clock: SharedClock,
    pub config: PollerConfig,
    in_flight: std::sync::Mutex<HashSet<i32>>,
    /// The devices this node polls (its leases in a cluster).
    share: super::cluster::Share,
    /// Whether this poller runs the fleet-wide sample rollup (in a
    /// cluster the node leading jobs does, poller or not).
    rollup: bool,
}

/// How early (ms) a poll may start before its due time; half the tick.
const DUE_EARLY_MS: i64 = 500;

/// Frees a batch's in-flight marks however it ends, and only once its
/// results are written: a device whose own poll finished early in a batch
/// still has its old `last_poll_at` until the batch is stored, and freed
/// earlier it was polled again every second while a hung camera held the
/// batch open (three polls per interval in the soak).
struct InFlight<'a> {
    set: &'a std::sync::Mutex<HashSet<i32>>,
    ids: Vec<i32>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.ids {
            set.remove(id);
        }
    }
}

impl Poller {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        transport: Transport,
        clock: SharedClock,
        config: PollerConfig,
    ) -> Self {
        Self {
            db,
            secrets,
            transport,
            clock,
            config,
            in_flight: Default::default(),
            share: Default::default(),
            rollup: true,
        }
    }

    /// Poll only this node's devices; the rollup is the leader's.
    pub fn with_cluster(mut self, share: super::cluster::Share) -> Self {
        self.share = share;
        self.rollup = false;
        self
    }

    fn interval_of(&self, d: &PollTarget, sites: &HashMap<i32, Option<i32>>) -> Duration {
        let secs = d
            .poll_interval_s
            .or_else(|| d.site_id.and_then(|s| sites.get(&s).copied().flatten()))
            .filter(|s| *s > 0);
        secs.map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.config.interval)
    }

    /// Devices whose poll is due at `now`. A device never polled is due at
    /// an offset within its interval derived from its id, so a fleet
    /// adopted at once is spread over the interval instead of polled in
    /// one burst.
    pub async fn due(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<PollTarget>> {
        let sites: HashMap<i32, Option<i32>> = site::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| (s.id, s.poll_interval_s))
            .collect();
        // The poller asks every second; load only devices that can be due:
        // never polled, or polled longer ago than the shortest interval in
        // use. The exact per-device check follows.
        let shortest_device: Option<Option<i32>> = device::Entity::find()
            .select_only()
            .column_as(device::Column::PollIntervalS.min(), "m")
            .into_tuple()
            .one(&self.db)
            .await?;
        let shortest = [
            sites.values().flatten().copied().min(),
            shortest_device.flatten(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64))
        .chain([self.config.interval])
        .min()
        .unwrap_or(self.config.interval);
        // The poller asks once a second: a device due within the next half
        // second starts now, so polls start on average at their due time
        // and the cadence does not slip by the tick.
        let now = now + chrono::Duration::milliseconds(DUE_EARLY_MS);
        let cutoff = now - chrono::Duration::from_std(shortest).unwrap_or_default();
        let devices = targets_where(
            &self.db,
            Condition::any()
                .add(device::Column::LastPollAt.is_null())
                .add(device::Column::LastPollAt.lte(cutoff)),
        )
        .await?;
        let busy = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(devices
            .into_iter()
            .filter(|d| !busy.contains(&d.id) && self.share.owns(d.id))
            .filter(|d| {
                let interval = self.interval_of(d, &sites);
                let ms = interval.as_millis().max(1) as i64;
                let due = match d.last_poll_at {
                    Some(at) => at + chrono::Duration::milliseconds(ms),
                    None => {
                        let spread = (d.id as i64).wrapping_mul(7_919).rem_euclid(ms);
                        d.adopted_at + chrono::Duration::milliseconds(spread)
                    }
                };
                due <= now
            })
            .collect())
    }

    fn credentials(
        &self,
        d: &PollTarget,
        creds: &HashMap<i32, credential::Model>,
    ) -> crate::error::Result<Option<Credentials>> {
        match d.credential_id.and_then(|id| creds.get(&id)) {
            Some(c) => open_credentials(&self.secrets, c).map(Some),
            None => Ok(None),
        }
    }

    /// Poll one device (network only; nothing is written).
    async fn poll_one(&self, d: &PollTarget, creds: Option<Credentials>) -> PollResult {
        let started_at = self.clock.now_utc();
        let started = self.clock.monotonic();
        let elapsed_ms = |clock: &SharedClock| {
            u32::try_from(clock.monotonic().saturating_sub(started).as_millis()).unwrap_or(u32::MAX)
        };
        let outcome =
            match tokio::time::timeout(self.config.deadline, self.exchange(d, creds)).await {
                Ok(o) => o,
                Err(_) => Err((
                    FaultClass::Timeout,
                    format!("no answer within {} s", self.config.deadline.as_secs()),
                )),
            };
        let latency_ms = elapsed_ms(&self.clock);
        metrics::histogram!("camfleet_poll_latency_seconds").record(f64::from(latency_ms) / 1000.0);
        let mut learned = None;
        let outcome = match outcome {
            Ok((drift_ms, info, clock_latency, l)) => {
                learned = Some(l);
                let jump = d
                    .drift_ms
                    .map(|old| drift_ms - old)
                    .filter(|j| j.abs() > self.config.jump_ms);
                PollOutcome::Answered {
                    latency_ms: clock_latency,
                    drift_ms,
                    info,
                    clock_jump_ms: jump,
                }
            }
            Err((class, message)) => PollOutcome::Failed {
                class,
                message,
                latency_ms,
            },
        };
        PollResult {
            device_id: d.id,
            outcome,
            at: self.clock.now_utc(),
            started_at,
            learned,
        }
    }

    fn wants_info(&self, d: &PollTarget) -> bool {
        let state = HealthState::parse(&d.status);
        let now = self.clock.now_utc();
        let info_due = d.last_info_at.is_none_or(|at| {
            now - at >= chrono::Duration::from_std(self.config.info_interval).unwrap_or_default()
        });
        match state {
            // Right after it comes back (or first seen): who is it now?
            HealthState::Offline | HealthState::Unknown => true,
            // Not more often than the cadence: each try may count against
            // a lockout policy on the camera.
            _ => info_due,
        }
    }

    /// The requests of one poll: (drift ms, identity if read, latency ms
    /// of the clock read) or the failure's class and message.
    async fn exchange(
        &self,
        d: &PollTarget,
        creds: Option<Credentials>,
    ) -> std::result::Result<
        (
            i64,
            Option<crate::onvif::DeviceInformation>,
            u32,
            super::policies::Learned,
        ),
        (FaultClass, String),
    > {
        let session = device_session(
            &d.device_url,
            &d.policy,
            d.auth_mode.as_deref(),
            &d.quirks,
            creds,
            &self.transport,
            &self.clock,
        )?;
        let sent_mono = self.clock.monotonic();
        let sent_utc = self.clock.now_utc();
        let t = session
            .sync_clock()
            .await
            .map_err(|e| (e.class, e.message.clone()))?;
        let rtt = self.clock.monotonic().saturating_sub(sent_mono);
        // The camera read its clock about halfway through the exchange.
        let midpoint = sent_utc + chrono::Duration::from_std(rtt / 2).unwrap_or_default();
        let drift_ms = (t.utc - midpoint).num_milliseconds();
        let latency = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX);
        let info = if self.wants_info(d) {
            match crate::onvif::device::get_device_information(&session).await {
                Ok(i) => Some(i),
                Err(e) => return Err((e.class, e.message.clone())),
            }
        } else {
            None
        };
        Ok((drift_ms, info, latency, super::policies::learned(&session)))
    }

    /// Poll these devices (at most `concurrency` at once) and write the
    /// results. Devices already being polled are skipped.
    pub async fn poll_devices<T: Into<PollTarget>>(
        &self,
        devices: impl IntoIterator<Item = T>,
    ) -> Result<CycleReport> {
        let creds: HashMap<i32, credential::Model> = credential::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let mine: Vec<Arc<PollTarget>> = {
            let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            devices
                .into_iter()
                .map(Into::into)
                .filter(|d: &PollTarget| set.insert(d.id))
                .map(Arc::new)
                .collect()
        };
        let _marks = InFlight {
            set: &self.in_flight,
            ids: mine.iter().map(|d| d.id).collect(),
        };
        let mut results = Vec::with_capacity(mine.len());
        {
            let mut stream = futures::stream::iter(mine.iter().cloned().map(|d| {
                let c = self.credentials(&d, &creds);
                async move {
                    match c {
                        Ok(c) => self.poll_one(&d, c).await,
                        // Not sent to the camera at all (see open_credentials).
                        Err(e) => PollResult {
                            device_id: d.id,
                            outcome: PollOutcome::Failed {
                                class: FaultClass::Unauthorized,
                                message: e.message,
                                latency_ms: 0,
                            },
                            at: self.clock.now_utc(),
                            started_at: self.clock.now_utc(),
                            learned: None,
                        },
                    }
                }
            }))
            .buffer_unordered(self.config.concurrency.max(1));
            while let Some(r) = stream.next().await {
                results.push(r);
            }
        }
        let by_id: HashMap<i32, &PollTarget> = mine.iter().map(|d| (d.id, d.as_ref())).collect();
        self.write(&by_id, results).await
    }

    /// Apply results to the devices' trackers and store everything.
    async fn write(
        &self,
        by_id: &HashMap<i32, &PollTarget>,
        results: Vec<PollResult>,
    ) -> Result<CycleReport> {
        let mut report = CycleReport {
            polled: results.len(),
            ..Default::default()
        };
        for chunk in results.chunks(500) {
            let txn = self.db.begin().await?;
            for r in chunk {
                let Some(&d) = by_id.get(&r.device_id) else {
                    continue;
                };
                let tracker = Tracker {
                    state: HealthState::parse(&d.status),
                    failures: d.poll_failures.max(0) as u32,
                    successes: d.poll_successes.max(0) as u32,
                    serial: d.serial.clone().unwrap_or_default(),
                    firmware: d.firmware.clone(),
                };
                let obs = health::observe(&self.config.health, &tracker, &r.outcome);
                // Only the health columns are written.
                let mut am = device::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(d.id),
                    ..Default::default()
                };
                am.status = Set(obs.tracker.state.as_str().into());
                am.poll_failures = Set(obs.tracker.failures as i32);
                am.poll_successes = Set(obs.tracker.successes as i32);
                am.last_poll_at = Set(Some(r.started_at));
                if let Some(l) = &r.learned
                    && let Some((auth, quirks)) =
                        super::policies::merge(d.auth_mode.as_deref(), &d.quirks, l)
                {
                    am.quirks = Set(quirks);
                    if let Some(a) = auth {
                        am.auth_mode = Set(Some(a));
                    }
                }
                if !obs.reason.is_empty() {
                    am.state_reason = Set(obs.reason.clone());
                }
                let sample = match &r.outcome {
                    PollOutcome::Answered {
                        latency_ms,
                        drift_ms,
                        info,
                        ..
                    } => {
                        report.answered += 1;
                        am.last_seen = Set(Some(r.at));
                        am.latency_ms = Set(Some(*latency_ms as i32));
                        am.drift_ms = Set(Some(*drift_ms));
                        am.clock_offset_ms = Set(Some(*drift_ms));
                        if let Some(i) = info {
                            am.last_info_at = Set(Some(r.at));
                            if obs.tracker.state != HealthState::Replaced
                                && !i.firmware_version.is_empty()
                            {
                                am.firmware = Set(i.firmware_version.clone());
                            }
                        }
                        health_sample::ActiveModel {
                            device_id: Set(d.id),
                            at_ms: Set(r.at.timestamp_millis()),
                            ok: Set(true),
                            latency_ms: Set(Some(*latency_ms as i32)),
                            drift_ms: Set(Some(*drift_ms)),
                            error_class: Set(None),
                        }
                    }
                    PollOutcome::Failed {
                        class, latency_ms, ..
                    } => {
                        *report.failed_by_class.entry(class.as_str()).or_default() += 1;
                        health_sample::ActiveModel {
                            device_id: Set(d.id),
                            at_ms: Set(r.at.timestamp_millis()),
                            ok: Set(false),
                            latency_ms: Set(Some(*latency_ms as i32)),
                            drift_ms: Set(None),
                            error_class: Set(Some(class.as_str().into())),
                        }
                    }
                };
                if let Some(t) = &obs.transition {
                    am.state_since = Set(Some(r.at));
                    device_transition::ActiveModel {
                        device_id: Set(d.id),
                        at: Set(r.at),
                        from_state: Set(t.from.as_str().into()),
                        to_state: Set(t.to.as_str().into()),
                        reason: Set(t.reason.clone()),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await?;
                    report.notices.push(Notice::Transition {
                        device_id: d.id,
                        from: t.from,
                        to: t.to,
                        reason: t.reason.clone(),
                    });
                }
                for e in obs.events {
                    report.notices.push(Notice::Event {
                        device_id: d.id,
                        event: e,
                    });
                }
                am.update(&txn).await?;
                // Two polls in the same millisecond (tests with a frozen
                // clock) keep the first sample.
                health_sample::Entity::insert(sample)
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::columns([
                            health_sample::Column::DeviceId,
                            health_sample::Column::AtMs,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
            }
            txn.commit().await?;
        }
        Ok(report)
    }

    /// Poll whatever is due now; returns what happened.
    pub async fn cycle(&self) -> Result<CycleReport> {
        let due = self.due(self.clock.now_utc()).await?;
        self.poll_devices(due).await
    }

    /// Run until shutdown: every second, start the polls that are due.
    /// Polls run in the background so a slow batch never delays the next
    /// devices' turn; `on_cycle` sees each batch's report (alerting).
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: crate::shutdown::Shutdown,
        on_cycle: impl Fn(CycleReport) + Send + Sync + 'static,
    ) {
        let on_cycle = Arc::new(on_cycle);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tasks = tokio::task::JoinSet::new();
        let mut last_rollup: Option<Duration> = None;
        let mut rolled_to: Option<i64> = None;
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            }
            let mono = self.clock.monotonic();
            if self.rollup
                && last_rollup.is_none_or(|at| mono.saturating_sub(at) >= Duration::from_secs(300))
            {
                last_rollup = Some(mono);
                let now = self.clock.now_utc().timestamp_millis();
                match super::samples::rollup_since(&self.db, now, rolled_to).await {
                    Ok((_, end)) => rolled_to = Some(end),
                    Err(e) => tracing::warn!(error = %e, "health rollup failed"),
                }
            }
            match self.due(self.clock.now_utc()).await {
                Ok(due) if !due.is_empty() => {
                    let me = self.clone();
                    let cb = on_cycle.clone();
                    tasks.spawn(async move {
                        match me.poll_devices(due).await {
                            Ok(r) => cb(r),
                            Err(e) => tracing::warn!(error = %e, "writing poll results failed"),
                        }
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "loading due devices failed"),
            }
        }
        tasks.shutdown().await;
    }
}
