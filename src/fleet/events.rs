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
//! - [`EventManager`] keeps one watch task per online device, starts new
//!   ones spread over a minute and at most a few Creates at a time, stops
//!   the ones whose device went away or offline, stores the notifications
//!   of watched topics (on/off changes only, kept 30 days) and hands the
//!   notices to alerting.
//!
//! A device's PullMessages long-poll is a second connection to it, beside
//! the poller's: that is how the event service is meant to be used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use tokio::sync::{Semaphore, mpsc};
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
use crate::shutdown::{Shutdown, ShutdownTrigger};

#[derive(Debug, Clone)]
pub struct EventConfig {
    /// Subscription lifetime asked for.
    pub lifetime: Duration,
    /// PullMessages long-poll wait.
    pub pull_wait: Duration,
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
            pull_wait: Duration::from_secs(30),
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
            broken_relative,
            failures: 0,
        }
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

struct Running {
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
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
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: Shutdown,
        on_notices: impl Fn(Vec<Notice>) + Send + Sync + 'static,
    ) {
        let (tx, mut rx) = mpsc::channel::<Report>(1024);
        let mut running: HashMap<i32, Running> = HashMap::new();
        let mut tick = tokio::time::interval(self.config.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Last on/off per (device, topic): only changes are stored.
        let mut last: HashMap<(i32, String), Option<bool>> = HashMap::new();
        let mut share = self.share.clone();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                // A device leased or handed back: at once, not at the tick.
                _ = tick.tick() => self.reconcile_logged(&mut running, &tx).await,
                _ = share.changed() => self.reconcile_logged(&mut running, &tx).await,
                Some(r) = rx.recv() => {
                    match self.absorb(r, &mut last).await {
                        Ok(n) if !n.is_empty() => on_notices(n),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "event subscriptions: storing failed"),
                    }
                }
            }
        }
        for r in running.values() {
            r.stop.fire();
        }
        for (_, r) in running {
            let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
        }
    }

    async fn reconcile_logged(
        &self,
        running: &mut HashMap<i32, Running>,
        tx: &mpsc::Sender<Report>,
    ) {
        if let Err(e) = self.reconcile(running, tx).await {
            tracing::warn!(error = %e, "event subscriptions: reconcile failed");
        }
    }

    async fn reconcile(
        &self,
        running: &mut HashMap<i32, Running>,
        tx: &mpsc::Sender<Report>,
    ) -> Result<()> {
        running.retain(|_, r| !r.task.is_finished());
        let mut want = self.eligible().await?;
        want.retain(|d| self.share.owns(d.id));
        let ids: std::collections::HashSet<i32> = want.iter().map(|d| d.id).collect();
        running.retain(|id, r| {
            let keep = ids.contains(id);
            if !keep {
                r.stop.fire();
            }
            keep
        });
        let new: Vec<EventTarget> = want
            .into_iter()
            .filter(|d| !running.contains_key(&d.id))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let creds: HashMap<i32, credential::Model> = credential::Entity::find()
            .filter(credential::Column::Id.is_in(new.iter().filter_map(|d| d.credential_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let now = self.clock.now_utc();
        let spread_ms = self.config.start_spread.as_millis().max(1) as u64;
        for d in new {
            let c = match d.credential_id.and_then(|id| creds.get(&id)) {
                Some(c) => match open_credentials(&self.secrets, c) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let _ = tx
                            .try_send(Report::Status(d.id, format!("unauthorized: {}", e.message)));
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
                    let _ = tx.try_send(Report::Status(d.id, format!("unsupported: {e}")));
                    continue;
                }
            };
            let offset =
                Duration::from_millis((d.id.unsigned_abs() as u64 * 2_654_435_761) % spread_ms);
            let start = now + chrono::Duration::from_std(offset).unwrap_or_default();
            let (stop, stopped) = crate::shutdown::channel();
            let fut = watch_device(
                d.id,
                d.events_url.clone(),
                session,
                self.clock.clone(),
                self.config.clone(),
                self.creates.clone(),
                start,
                tx.clone(),
                stopped,
            );
            let task = tokio::spawn(fut);
            running.insert(d.id, Running { stop, task });
        }
        // Old notifications go (bounded table).
        device_event::Entity::delete_many()
            .filter(device_event::Column::At.lt(now - self.config.retention))
            .exec(&self.db)
            .await?;
        Ok(())
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

/// One device's watch task: look up the event service if needed, then
/// create, pull and renew until stopped; unsubscribe on the way out.
#[allow(clippy::too_many_arguments)]
async fn watch_device(
    device_id: i32,
    events_url: Option<String>,
    session: DeviceSession,
    clock: SharedClock,
    cfg: EventConfig,
    creates: Arc<Semaphore>,
    start: DateTime<Utc>,
    tx: mpsc::Sender<Report>,
    mut stop: Shutdown,
) {
    let url = match events_url {
        Some(u) => u,
        None => {
            // Adopted before events were watched: ask once.
            let looked_up = tokio::select! {
                _ = stop.wait() => return,
                r = crate::onvif::adopt::discover_services(&session) => r,
            };
            match looked_up {
                Ok(services) => {
                    let u = services
                        .iter()
                        .find(|s| s.service == Some(crate::onvif::ops::Service::Events))
                        .map(|s| s.xaddr.clone())
                        .unwrap_or_default();
                    let _ = tx.send(Report::EventsUrl(device_id, u.clone())).await;
                    u
                }
                Err(e) => {
                    let _ = tx
                        .send(Report::Status(
                            device_id,
                            format!("service lookup failed: {e}"),
                        ))
                        .await;
                    return;
                }
            }
        }
    };
    let url = match Url::parse(&url) {
        Ok(u) => u,
        Err(_) => {
            let _ = tx
                .send(Report::Status(
                    device_id,
                    "unsupported: no event service".into(),
                ))
                .await;
            return;
        }
    };
    let mut w = Watch::new(device_id, session, url, clock.clone(), cfg, creates);
    w.start_at(start);
    let mut status = String::new();
    loop {
        let next = w.next();
        let stepped = match next {
            Next::Wait(t) => {
                let d = (t - clock.now_utc()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop.wait() => break,
                    _ = tokio::time::sleep(d) => continue,
                }
            }
            _ => tokio::select! {
                _ = stop.wait() => break,
                s = w.step() => s,
            },
        };
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
            if tx.send(Report::Status(device_id, s)).await.is_err() {
                break;
            }
            // A change of status is when a watcher learns (the auth mode
            // on its first subscription, broken relative times on a
            // renewal): kept on the device for the next start.
            let learned = super::policies::learned(&w.session);
            if tx.send(Report::Learned(device_id, learned)).await.is_err() {
                break;
            }
        }
        if let Stepped::Unsupported(_) = stepped {
            return;
        }
        if let Stepped::Pulled(m) = stepped
            && !m.is_empty()
            && tx.send(Report::Messages(device_id, m)).await.is_err()
        {
            break;
        }
    }
    w.unsubscribe().await;
}
