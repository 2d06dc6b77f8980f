//! Camera events: one PullPoint subscription per answering device that has
//! an event service, kept alive without pause, its watched topics turned
//! into health signals and alert notices.
//!
//! - [`Watch`] is one device's subscription as a small state machine over
//!   the injected clock: `next()` says what is due (create, renew, pull, or
//!   wait), `step()` does it. Renewal is at 80 % of the granted lifetime
//!   (and at least 30 s before it ends). A camera that answers a relative
//!   lifetime (`PT600S`) with nonsense is switched to absolute times in its
//!   own clock, at once. Failures back off exponentially per device (30 s
//!   doubling to 30 min, with per-device jitter), so a fleet of refusing
//!   cameras never becomes a subscribe storm.
//! - [`EventManager`] keeps one watch per online device in one scheduler
//!   (no task per device): a queue by due time and at most `max_in_flight`
//!   steps running at once. Pulls are short (`pull_wait`, 1 s) and come on a
//!   cadence (`pull_every`, 10 s; at once again after a full answer), so a
//!   camera between two pulls costs its watch and nothing else — no task,
//!   no connection. New watches start spread over a minute with at most a
//!   few Creates at a time; the ones whose device went away or offline are
//!   unsubscribed. It stores the notifications of watched topics (on/off
//!   changes only, kept 30 days) and hands the notices to alerting.
//!
//! An event reaches camfleet within `pull_every` (plus the queue's delay
//! when more than `max_in_flight` cameras are due at once). A continuous
//! long-poll per camera (`pull_every` zero, `pull_wait` 30 s) is the
//! alternative: lower latency, but a connection and buffers per camera
//! (~0.7 GiB for 10,000; BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use tokio::sync::Semaphore;
use url::Url;

use super::health::{HealthEvent, HealthState};
use super::poller::{Notice, device_session, open_credentials};
use crate::clock::SharedClock;
use crate::db::entities::{credential, device, device_event};
use crate::error::Result;
use crate::onvif::events::{self, Lifetime, Notification, Signal, Subscription};
use crate::onvif::transport::Transport;
use crate::onvif::{DeviceSession, FaultClass, OnvifError};
use crate::secrets::SecretBox;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct EventConfig {
    /// Subscription lifetime asked for.
    pub lifetime: Duration,
    /// PullMessages wait: how long the camera may hold a pull open when it
    /// has nothing to say.
    pub pull_wait: Duration,
    /// After a pull that emptied the queue, the next one comes this much
    /// later (short pulls on a cadence: no connection held per camera).
    /// Zero: pull again at once (a continuous long-poll per camera).
    pub pull_every: Duration,
    /// Steps (creates, pulls, renewals, lookups) in flight at once,
    /// fleet-wide: what bounds the memory and connections events take.
    pub max_in_flight: usize,
    /// Extra HTTP deadline beyond the long-poll wait.
    pub pull_grace: Duration,
    pub message_limit: u32,
    /// New watches start spread over this (by device id).
    pub start_spread: Duration,
    /// CreatePullPointSubscription calls in flight, fleet-wide.
    pub max_concurrent_creates: usize,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How often the set of watched devices is brought up to date.
    pub reconcile_every: Duration,
    /// Stored notifications are kept this long.
    pub retention: chrono::Duration,
    /// A processor usage at or above this is "on".
    pub cpu_alarm_percent: f64,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(600),
            pull_wait: Duration::from_secs(1),
            pull_every: Duration::from_secs(10),
            max_in_flight: 256,
            pull_grace: Duration::from_secs(10),
            message_limit: 50,
            start_spread: Duration::from_secs(60),
            max_concurrent_creates: 8,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
            reconcile_every: Duration::from_secs(30),
            retention: chrono::Duration::days(30),
            cpu_alarm_percent: 90.0,
        }
    }
}

/// What a watch should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Create,
    Renew,
    Pull(Duration),
    Wait(DateTime<Utc>),
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stepped {
    Subscribed,
    Renewed,
    Pulled(Vec<Notification>),
    Waited,
    /// The device has no event service (or refuses PullPoint for good).
    Unsupported(String),
    /// The step failed; the watch retries at `retry_at`.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
}

/// One device's PullPoint subscription.
pub struct Watch {
    pub device_id: i32,
    session: DeviceSession,
    events_url: Url,
    clock: SharedClock,
    cfg: EventConfig,
    creates: Arc<Semaphore>,
    sub: Option<Subscription>,
    /// Our clock.
    renew_at: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
    /// The next pull (our clock), on the short-pull cadence.
    pull_at: Option<DateTime<Utc>>,
    pub broken_relative: bool,
    failures: u32,
}

impl Watch {
    pub fn new(
        device_id: i32,
        session: DeviceSession,
        events_url: Url,
        clock: SharedClock,
        cfg: EventConfig,
        creates: Arc<Semaphore>,
    ) -> Self {
        // Learned by an earlier session and kept on the device: absolute
        // times from the first subscription on.
        let broken_relative = session
            .quirks()
            .contains(&crate::onvif::Quirk::BrokenRelativeTime);
        Self {
            device_id,
            session,
            events_url,
            clock,
            cfg,
            creates,
            sub: None,
            renew_at: None,
            retry_at: None,
            pull_at: None,
            broken_relative,
            failures: 0,
        }
    }

    pub fn device_session(&self) -> &DeviceSession {
        &self.session
    }

    /// Hold the first Create back until `at` (start spreading).
    pub fn start_at(&mut self, at: DateTime<Utc>) {
        self.retry_at = Some(at);
    }

    pub fn subscription(&self) -> Option<&Subscription> {
        self.sub.as_ref()
    }

    pub fn renew_at(&self) -> Option<DateTime<Utc>> {
        self.renew_at
    }

    pub fn next(&self) -> Next {
        let now = self.clock.now_utc();
        match (&self.sub, self.renew_at) {
            (None, _) => match self.retry_at {
                Some(t) if t > now => Next::Wait(t),
                _ => Next::Create,
            },
            (Some(_), Some(r)) if now >= r => Next::Renew,
            // Between two short pulls: wait for the next (or the renewal).
            (Some(_), r) if self.pull_at.is_some_and(|p| p > now) => {
                let p = self.pull_at.unwrap_or(now);
                Next::Wait(r.map_or(p, |r| r.min(p)))
            }
            (Some(_), r) => {
                let left = r
                    .map(|r| (r - now).to_std().unwrap_or_default())
                    .unwrap_or(self.cfg.pull_wait);
                Next::Pull(self.cfg.pull_wait.min(left).max(Duration::from_secs(1)))
            }
        }
    }

    /// Exponential backoff with per-device jitter (up to +10 %).
    fn backoff(&self) -> chrono::Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let base = self
            .cfg
            .retry_base
            .saturating_mul(1 << exp)
            .min(self.cfg.retry_max);
        let jitter_ms =
            (self.device_id.unsigned_abs() as u64 * 7919) % (base.as_millis() as u64 / 10 + 1);
        chrono::Duration::from_std(base + Duration::from_millis(jitter_ms))
            .unwrap_or(chrono::Duration::minutes(30))
    }

    fn fail(&mut self, e: &OnvifError, lost_subscription: bool) -> Stepped {
        let now = self.clock.now_utc();
        self.failures += 1;
        self.sub = None;
        self.renew_at = None;
        self.pull_at = None;
        // A subscription that was working and got lost (a camera reboot
        // forgets it) is recreated at once, once; then the backoff applies.
        let retry_at = if lost_subscription && self.failures == 1 {
            now
        } else {
            now + self.backoff()
        };
        self.retry_at = Some(retry_at);
        Stepped::Failed {
            error: format!("{}: {}", e.class.as_str(), e.message),
            retry_at,
        }
    }

    fn termination(&self) -> String {
        events::termination_value(
            self.broken_relative,
            self.session.camera_now(),
            chrono::Duration::from_std(self.cfg.lifetime).unwrap_or(chrono::Duration::minutes(10)),
        )
    }

    /// Schedule the renewal from a Create/Renew answer (camera times).
    fn schedule(&mut self, current: Option<DateTime<Utc>>, termination: Option<DateTime<Utc>>) {
        let now = self.clock.now_utc();
        let requested =
            chrono::Duration::from_std(self.cfg.lifetime).unwrap_or(chrono::Duration::minutes(10));
        let current = current.unwrap_or_else(|| self.session.camera_now());
        let fallback = now + requested * 4 / 5;
        self.renew_at = Some(match termination {
            None => fallback,
            Some(t) => match events::judge(current, t, requested) {
                Lifetime::BrokenRelative if !self.broken_relative => {
                    self.broken_relative = true;
                    self.session
                        .note_quirk(crate::onvif::Quirk::BrokenRelativeTime);
                    tracing::info!(
                        device = self.device_id,
                        "relative subscription times are broken on this camera; using absolute"
                    );
                    // Renew at once with an absolute time.
                    now
                }
                // Nonsense even with absolute times: trust our own count.
                Lifetime::BrokenRelative => fallback,
                _ => events::renew_at(now, current, t),
            },
        });
    }

    /// Do what is due (see [`Watch::next`]). Waiting is the caller's part.
    pub async fn step(&mut self) -> Stepped {
        match self.next() {
            Next::Wait(_) => Stepped::Waited,
            Next::Create => {
                let permit = self.creates.clone().acquire_owned().await;
                let termination = self.termination();
                let r =
                    events::create_pull_point(&self.session, &self.events_url, &termination).await;
                drop(permit);
                match r {
                    Ok(sub) => {
                        let (cur, term) = (sub.current_time, sub.termination_time);
                        self.sub = Some(sub);
                        self.pull_at = None;
                        self.retry_at = None;
                        self.failures = 0;
                        self.schedule(cur, term);
                        Stepped::Subscribed
                    }
                    Err(e) if e.class == FaultClass::NotSupported => {
                        self.retry_at = Some(self.clock.now_utc() + chrono::Duration::days(1));
                        Stepped::Unsupported(format!("{}: {}", e.operation, e.message))
                    }
                    Err(e) => self.fail(&e, false),
                }
            }
            Next::Renew => {
                let Some(sub) = self.sub.clone() else {
                    return Stepped::Waited;
                };
                let termination = self.termination();
                match events::renew(&self.session, &sub, &termination).await {
                    Ok((cur, term)) => {
                        self.schedule(cur, term);
                        Stepped::Renewed
                    }
                    Err(e) => self.fail(&e, true),
                }
            }
            Next::Pull(wait) => {
                let Some(sub) = self.sub.clone() else {
                    return Stepped::Waited;
                };
                match events::pull_messages(
                    &self.session,
                    &sub,
                    wait,
                    self.cfg.message_limit,
                    self.cfg.pull_grace,
                )
                .await
                {
                    Ok(p) => {
                        self.failures = 0;
                        // A full answer may leave more queued: pull again
                        // at once; otherwise on the cadence.
                        let full = p.messages.len() >= self.cfg.message_limit as usize;
                        self.pull_at = (!full && !self.cfg.pull_every.is_zero()).then(|| {
                            self.clock.now_utc()
                                + chrono::Duration::from_std(self.cfg.pull_every)
                                    .unwrap_or_default()
                        });
                        Stepped::Pulled(p.messages)
                    }
                    Err(e) => self.fail(&e, true),
                }
            }
        }
    }

    /// Free the camera's subscription slot (best effort, bounded).
    pub async fn unsubscribe(&mut self) {
        if let Some(sub) = self.sub.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(3),
                events::unsubscribe(&self.session, &sub),
            )
            .await;
        }
    }
}

/// The on/off meaning and a one-line summary of a watched notification.
pub fn describe(sig: &Signal, cpu_alarm_percent: f64) -> (Option<bool>, String) {
    match sig {
        Signal::StorageFailure { failed } => (
            Some(*failed),
            if *failed {
                "camera storage failed".into()
            } else {
                "camera storage OK".into()
            },
        ),
        Signal::Tamper { kind, active } => (
            Some(*active),
            format!("{kind} {}", if *active { "detected" } else { "cleared" }),
        ),
        Signal::LastReboot { at } => (
            None,
            match at {
                Some(t) => format!(
                    "camera reports a reboot at {}",
                    t.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => "camera reports a reboot".into(),
            },
        ),
        Signal::ProcessorUsage { percent } => (
            Some(*percent >= cpu_alarm_percent),
            format!("processor at {percent:.0} %"),
        ),
        Signal::RecordingJobState { job, state } => (
            Some(state.eq_ignore_ascii_case("error")),
            format!("recording job {job} {state}"),
        ),
    }
}

/// What a watch task reports to the manager.
#[derive(Debug)]
enum Report {
    Messages(i32, Vec<Notification>),
    Status(i32, String),
    EventsUrl(i32, String),
    /// What the watcher's session learned (kept on the device).
    Learned(i32, super::policies::Learned),
}

/// The transport for event subscriptions: no idle connections kept, so a
/// camera between two short pulls holds no socket or buffers here (each
/// pull opens its connection; on a LAN that is a millisecond).
pub fn transport() -> std::result::Result<Transport, crate::onvif::transport::TransportError> {
    Transport::new(crate::onvif::TransportConfig {
        pool_max_idle_per_host: 0,
        ..Default::default()
    })
}

/// Keeps the fleet's subscriptions.
pub struct EventManager {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    transport: Transport,
    clock: SharedClock,
    pub config: EventConfig,
    creates: Arc<Semaphore>,
    /// The devices this node subscribes to (its leases in a cluster).
    share: super::cluster::Share,
}

#[derive(Debug, Clone, sea_orm::FromQueryResult)]
struct EventTarget {
    id: i32,
    device_url: String,
    policy: serde_json::Value,
    auth_mode: Option<String>,
    quirks: serde_json::Value,
    credential_id: Option<i32>,
    events_url: Option<String>,
}

impl EventManager {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        transport: Transport,
        clock: SharedClock,
        config: EventConfig,
    ) -> Self {
        let creates = Arc::new(Semaphore::new(config.max_concurrent_creates.max(1)));
        Self {
            db,
            secrets,
            transport,
            clock,
            config,
            creates,
            share: Default::default(),
        }
    }

    /// Subscribe only to this node's devices.
    pub fn with_share(mut self, share: super::cluster::Share) -> Self {
        self.share = share;
        self
    }

    /// Devices that should have a subscription: answering, with an event
    /// service (or not looked up yet), not found unsupported.
    async fn eligible(&self) -> Result<Vec<EventTarget>> {
        Ok(device::Entity::find()
            .filter(
                device::Column::Status
                    .is_in([HealthState::Online.as_str(), HealthState::Degraded.as_str()]),
            )
            .filter(
                Condition::any()
                    .add(device::Column::EventsUrl.is_null())
                    .add(device::Column::EventsUrl.ne("")),
            )
            .filter(device::Column::EventsStatus.not_like("unsupported%"))
            .select_only()
            .columns([
                device::Column::Id,
                device::Column::DeviceUrl,
                device::Column::Policy,
                device::Column::AuthMode,
                device::Column::Quirks,
                device::Column::CredentialId,
                device::Column::EventsUrl,
            ])
            .into_model::<EventTarget>()
            .all(&self.db)
            .await?)
    }

    /// Run until shutdown; `on_notices` gets each batch of event notices.
    ///
    /// One scheduler for the whole fleet: each device's subscription is a
    /// [`Watch`] (a state machine, no task of its own) in a queue by due
    /// time; at most `max_in_flight` steps (lookups, creates, short pulls,
    /// renewals) run at once. A device between two pulls holds no
    /// connection and no task, only its watch.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: Shutdown,
        on_notices: impl Fn(Vec<Notice>) + Send + Sync + 'static,
    ) {
        let mut sched = Scheduler::default();
        let mut steps: tokio::task::JoinSet<(i32, Phase, Vec<Report>)> = Default::default();
        let mut tick = tokio::time::interval(self.config.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Last on/off per (device, topic): only changes are stored.
        let mut last: HashMap<(i32, String), Option<bool>> = HashMap::new();
        let mut share = self.share.clone();
        let max = self.config.max_in_flight.max(1);
        loop {
            let now = self.clock.now_utc();
            while steps.len() < max {
                let Some((id, phase)) = sched.pop_due(now) else {
                    break;
                };
                steps.spawn(step(
                    id,
                    phase,
                    self.clock.clone(),
                    self.config.clone(),
                    self.creates.clone(),
                ));
            }
            // Wake for the next due step (rechecked at least every second:
            // the injected clock may move on its own).
            let nap = sched
                .next_due()
                .map(|t| (t - now).to_std().unwrap_or_default())
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.wait() => break,
                // A device leased or handed back: at once, not at the tick.
                _ = tick.tick() => self.reconcile_logged(&mut sched).await,
                _ = share.changed() => self.reconcile_logged(&mut sched).await,
                Some(done) = steps.join_next(), if !steps.is_empty() => {
                    let Ok((id, phase, reports)) = done else { continue };
                    for r in reports {
                        match self.absorb(r, &mut last).await {
                            Ok(n) if !n.is_empty() => on_notices(n),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "event subscriptions: storing failed"),
                        }
                    }
                    if let Some(mut w) = sched.put_back(id, phase, self.clock.now_utc()) {
                        // Removed while its step ran: free the camera's slot.
                        tokio::spawn(async move { w.unsubscribe().await });
                    }
                }
                _ = tokio::time::sleep(nap) => {}
            }
        }
        // Unsubscribe everything (bounded: a few seconds per camera, many at once).
        steps.abort_all();
        while steps.join_next().await.is_some() {}
        let mut ending: tokio::task::JoinSet<()> = Default::default();
        for mut w in sched.drain_watches() {
            while ending.len() >= max {
                let _ = ending.join_next().await;
            }
            ending.spawn(async move { w.unsubscribe().await });
        }
        while ending.join_next().await.is_some() {}
    }

    async fn reconcile_logged(&self, sched: &mut Scheduler) {
        if let Err(e) = self.reconcile(sched).await {
            tracing::warn!(error = %e, "event subscriptions: reconcile failed");
        }
    }

    /// Bring the watched devices up to date: new ones start spread over
    /// `start_spread`; gone ones are unsubscribed.
    async fn reconcile(&self, sched: &mut Scheduler) -> Result<()> {
        let mut want = self.eligible().await?;
        want.retain(|d| self.share.owns(d.id));
        let ids: std::collections::HashSet<i32> = want.iter().map(|d| d.id).collect();
        sched.retain(&ids);
        let new: Vec<EventTarget> = want.into_iter().filter(|d| !sched.contains(d.id)).collect();
        let now = self.clock.now_utc();
        if !new.is_empty() {
            let creds: HashMap<i32, credential::Model> = credential::Entity::find()
                .filter(credential::Column::Id.is_in(new.iter().filter_map(|d| d.credential_id)))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
            let spread_ms = self.config.start_spread.as_millis().max(1) as u64;
            for d in new {
                let c = match d.credential_id.and_then(|id| creds.get(&id)) {
                    Some(c) => match open_credentials(&self.secrets, c) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            self.absorb_status(d.id, format!("unauthorized: {}", e.message))
                                .await;
                            continue;
                        }
                    },
                    None => None,
                };
                let session = match device_session(
                    &d.device_url,
                    &d.policy,
                    d.auth_mode.as_deref(),
                    &d.quirks,
                    c,
                    &self.transport,
                    &self.clock,
                ) {
                    Ok(s) => s,
                    Err((_, e)) => {
                        self.absorb_status(d.id, format!("unsupported: {e}")).await;
                        continue;
                    }
                };
                let offset =
                    Duration::from_millis((d.id.unsigned_abs() as u64 * 2_654_435_761) % spread_ms);
                let start = now + chrono::Duration::from_std(offset).unwrap_or_default();
                let phase = match d.events_url.as_deref().map(Url::parse) {
                    // Adopted before events were watched: look it up first.
                    None => Phase::Lookup(Box::new(session)),
                    Some(Ok(url)) => {
                        let mut w = Watch::new(
                            d.id,
                            session,
                            url,
                            self.clock.clone(),
                            self.config.clone(),
                            self.creates.clone(),
                        );
                        w.start_at(start);
                        Phase::Watching(Box::new(w), String::new())
                    }
                    Some(Err(_)) => {
                        self.absorb_status(d.id, "unsupported: no event service".into())
                            .await;
                        continue;
                    }
                };
                sched.insert(d.id, phase, start);
            }
        }
        // Old notifications go (bounded table).
        device_event::Entity::delete_many()
            .filter(device_event::Column::At.lt(now - self.config.retention))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn absorb_status(&self, id: i32, status: String) {
        let mut none = HashMap::new();
        if let Err(e) = self.absorb(Report::Status(id, status), &mut none).await {
            tracing::warn!(error = %e, "event subscriptions: storing failed");
        }
    }

    /// Store a report; return the notices it makes.
    async fn absorb(
        &self,
        r: Report,
        last: &mut HashMap<(i32, String), Option<bool>>,
    ) -> Result<Vec<Notice>> {
        match r {
            Report::Status(id, status) => {
                device::Entity::update_many()
                    .col_expr(
                        device::Column::EventsStatus,
                        sea_orm::sea_query::Expr::value(status),
                    )
                    .filter(device::Column::Id.eq(id))
                    .exec(&self.db)
                    .await?;
                Ok(Vec::new())
            }
            Report::Learned(id, l) => {
                if let Some(d) = device::Entity::find_by_id(id).one(&self.db).await? {
                    super::policies::remember(&self.db, id, d.auth_mode.as_deref(), &d.quirks, &l)
                        .await?;
                }
                Ok(Vec::new())
            }
            Report::EventsUrl(id, url) => {
                device::Entity::update_many()
                    .col_expr(
                        device::Column::EventsUrl,
                        sea_orm::sea_query::Expr::value(url),
                    )
                    .filter(device::Column::Id.eq(id))
                    .exec(&self.db)
                    .await?;
                Ok(Vec::new())
            }
            Report::Messages(id, messages) => {
                let now = self.clock.now_utc();
                let mut rows = Vec::new();
                let mut notices = Vec::new();
                for m in messages {
                    let Some(sig) = events::signal(&m) else {
                        continue;
                    };
                    let (active, summary) = describe(&sig, self.config.cpu_alarm_percent);
                    let key = (id, m.topic.clone());
                    // Only changes: a camera repeating its state (or a
                    // processor load every few seconds) is not a new event.
                    if active.is_some() && last.get(&key) == Some(&active) {
                        continue;
                    }
                    last.insert(key, active);
                    let pairs = |v: &[(String, String)]| {
                        serde_json::json!(v.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>())
                    };
                    rows.push(device_event::ActiveModel {
                        device_id: Set(id),
                        at: Set(m.utc_time.unwrap_or(now)),
                        topic: Set(m.topic.chars().take(400).collect()),
                        operation: Set(m.property_operation.chars().take(40).collect()),
                        source: Set(pairs(&m.source)),
                        data: Set(pairs(&m.data)),
                        active: Set(active),
                        ..Default::default()
                    });
                    // The state a fresh subscription starts with is not news
                    // unless it is a problem.
                    if m.property_operation == "Initialized" && active != Some(true) {
                        continue;
                    }
                    notices.push(Notice::Event {
                        device_id: id,
                        event: HealthEvent::CameraEvent {
                            topic: m.topic.clone(),
                            active,
                            summary,
                        },
                    });
                }
                if !rows.is_empty() {
                    device_event::Entity::insert_many(rows)
                        .exec(&self.db)
                        .await?;
                }
                Ok(notices)
            }
        }
    }
}

/// Where one device's subscription is.
enum Phase {
    /// The event service address is not known yet: GetServices first.
    Lookup(Box<DeviceSession>),
    /// Subscribed or subscribing; the last status reported.
    Watching(Box<Watch>, String),
    /// Nothing more to do (unsupported, or unsubscribed).
    Done,
}

/// The fleet's watches by due time. A watch whose step is running is out
/// of its slot (`None`); a device removed meanwhile is marked, and its
/// watch is unsubscribed when the step comes back.
#[derive(Default)]
struct Scheduler {
    slots: HashMap<i32, Option<Phase>>,
    due: HashMap<i32, DateTime<Utc>>,
    queue: std::collections::BinaryHeap<std::cmp::Reverse<(DateTime<Utc>, i32)>>,
    removed: std::collections::HashSet<i32>,
}

impl Scheduler {
    fn contains(&self, id: i32) -> bool {
        self.slots.contains_key(&id)
    }

    fn insert(&mut self, id: i32, phase: Phase, at: DateTime<Utc>) {
        self.removed.remove(&id);
        self.slots.insert(id, Some(phase));
        self.schedule(id, at);
    }

    fn schedule(&mut self, id: i32, at: DateTime<Utc>) {
        self.due.insert(id, at);
        self.queue.push(std::cmp::Reverse((at, id)));
    }

    /// Drop devices not in `keep`: idle watches go now (unsubscribed in
    /// the background), running ones when their step returns.
    fn retain(&mut self, keep: &std::collections::HashSet<i32>) {
        let gone: Vec<i32> = self
            .slots
            .keys()
            .filter(|id| !keep.contains(id))
            .copied()
            .collect();
        for id in gone {
            match self.slots.get_mut(&id).and_then(Option::take) {
                Some(Phase::Watching(w, _)) => {
                    self.slots.remove(&id);
                    self.due.remove(&id);
                    tokio::spawn(async move {
                        let mut w = w;
                        w.unsubscribe().await;
                    });
                }
                Some(_) => {
                    self.slots.remove(&id);
                    self.due.remove(&id);
                }
                // Its step is running.
                None => {
                    self.removed.insert(id);
                }
            }
        }
    }

    fn next_due(&mut self) -> Option<DateTime<Utc>> {
        while let Some(std::cmp::Reverse((t, id))) = self.queue.peek().copied() {
            if self.due.get(&id) == Some(&t) && matches!(self.slots.get(&id), Some(Some(_))) {
                return Some(t);
            }
            self.queue.pop();
        }
        None
    }

    /// The next device due by `now`, taken out of its slot.
    fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(i32, Phase)> {
        let t = self.next_due()?;
        if t > now {
            return None;
        }
        let std::cmp::Reverse((_, id)) = self.queue.pop()?;
        self.due.remove(&id);
        let phase = self.slots.get_mut(&id)?.take()?;
        Some((id, phase))
    }

    /// A step came back. Returns the watch to unsubscribe if the device
    /// was removed meanwhile.
    fn put_back(&mut self, id: i32, phase: Phase, now: DateTime<Utc>) -> Option<Box<Watch>> {
        if self.removed.remove(&id) {
            self.slots.remove(&id);
            return match phase {
                Phase::Watching(w, _) => Some(w),
                _ => None,
            };
        }
        match phase {
            Phase::Done => {
                self.slots.remove(&id);
            }
            Phase::Lookup(s) => {
                // The lookup failed: again after the base backoff.
                let at = now + chrono::Duration::seconds(30);
                self.slots.insert(id, Some(Phase::Lookup(s)));
                self.schedule(id, at);
            }
            Phase::Watching(w, status) => {
                let at = match w.next() {
                    Next::Wait(t) => t,
                    _ => now,
                };
                self.slots.insert(id, Some(Phase::Watching(w, status)));
                self.schedule(id, at);
            }
        }
        None
    }

    fn drain_watches(&mut self) -> Vec<Watch> {
        self.slots
            .drain()
            .filter_map(|(_, p)| match p {
                Some(Phase::Watching(w, _)) => Some(*w),
                _ => None,
            })
            .collect()
    }
}

/// One step of one device: what its phase calls for, and what to report.
async fn step(
    id: i32,
    phase: Phase,
    clock: SharedClock,
    cfg: EventConfig,
    creates: Arc<Semaphore>,
) -> (i32, Phase, Vec<Report>) {
    let mut reports = Vec::new();
    match phase {
        Phase::Done => (id, Phase::Done, reports),
        Phase::Lookup(session) => match crate::onvif::adopt::discover_services(&session).await {
            Ok(services) => {
                let u = services
                    .iter()
                    .find(|s| s.service == Some(crate::onvif::ops::Service::Events))
                    .map(|s| s.xaddr.clone())
                    .unwrap_or_default();
                reports.push(Report::EventsUrl(id, u.clone()));
                match Url::parse(&u) {
                    Ok(url) => {
                        let w = Watch::new(id, *session, url, clock, cfg, creates);
                        (id, Phase::Watching(Box::new(w), String::new()), reports)
                    }
                    Err(_) => {
                        reports.push(Report::Status(id, "unsupported: no event service".into()));
                        (id, Phase::Done, reports)
                    }
                }
            }
            Err(e) => {
                reports.push(Report::Status(id, format!("service lookup failed: {e}")));
                (id, Phase::Lookup(session), reports)
            }
        },
        Phase::Watching(mut w, mut status) => {
            let stepped = w.step().await;
            // Only waiting until the next pull: hold no socket meanwhile.
            if matches!(w.next(), Next::Wait(_)) {
                w.session.release_connection();
            }
            let new_status = match &stepped {
                Stepped::Subscribed | Stepped::Renewed => Some(format!(
                    "subscribed{}",
                    if w.broken_relative {
                        " (absolute times: the camera breaks relative ones)"
                    } else {
                        ""
                    }
                )),
                Stepped::Unsupported(e) => Some(format!("unsupported: {e}")),
                Stepped::Failed { error, retry_at } => Some(format!(
                    "retrying at {}: {error}",
                    retry_at.format("%H:%M:%S UTC")
                )),
                Stepped::Pulled(_) | Stepped::Waited => None,
            };
            if let Some(s) = new_status
                && s != status
            {
                status = s.clone();
                reports.push(Report::Status(id, s));
                // A change of status is when a watcher learns (the auth mode
                // on its first subscription, broken relative times on a
                // renewal): kept on the device for the next start.
                reports.push(Report::Learned(id, super::policies::learned(&w.session)));
            }
            match stepped {
                Stepped::Unsupported(_) => (id, Phase::Done, reports),
                Stepped::Pulled(m) => {
                    if !m.is_empty() {
                        reports.push(Report::Messages(id, m));
                    }
                    (id, Phase::Watching(w, status), reports)
                }
                _ => (id, Phase::Watching(w, status), reports),
            }
        }
    }
}
