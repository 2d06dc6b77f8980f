//! Several camfleet nodes on one database.
//!
//! Every `serve` is a node: a row in `nodes` with a heartbeat every
//! [`HEARTBEAT`]; one whose heartbeat is older than [`DEAD_AFTER_MS`] is
//! dead. Each device has one lease (`device_leases`): the node holding it
//! polls the device, keeps its event subscription and records it; nobody
//! else does. A lease lasts [`LEASE_MS`] and is renewed on every heartbeat,
//! so a node killed mid-work frees its devices within that time and the
//! others take them on their next heartbeat.
//!
//! Shares are balanced by a pure plan ([`plan`]) every node computes from
//! the same rows: each node's target is its fair part of the devices it may
//! serve (its sites); a node above target hands devices back only to a node
//! below its own, and a handed-back device waits [`HANDBACK_GRACE_MS`] for
//! such a node before anyone may take it, so a joining node gets its share
//! without the others grabbing it back. Taking is a compare-and-set on the
//! row (`FOR UPDATE SKIP LOCKED` on PostgreSQL): two nodes never hold one
//! device.
//!
//! Leadership: the job scheduler, rollouts and drift checks run on one node
//! (the holder of a PostgreSQL advisory lock; the lock goes with the
//! node's connection, so a killed leader frees it at once), and so does the
//! notifier, whose deliveries are moreover claimed row by row. On SQLite
//! there is only ever one server (`db::lock_sqlite`), which leads.
//!
//! Times are the nodes' wall clocks in milliseconds: keep the nodes on NTP
//! (a skew of a few seconds only shortens or lengthens a failover).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, Statement, TransactionTrait,
};
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::db::entities::{device_lease, node, site};
use crate::error::{Error, ErrorKind, Result};

/// How often a node beats (and renews its leases, and rebalances).
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// A node whose last heartbeat is older than this is dead.
pub const DEAD_AFTER_MS: i64 = 15_000;
/// How long a lease holds without renewal.
pub const LEASE_MS: i64 = 12_000;
/// A device handed back to balance the shares waits this long for a node
/// below its share before any node may take it: the hand-off wait, then
/// two heartbeats for the nodes below their share.
pub const HANDBACK_GRACE_MS: i64 = HANDOFF_MS + 2 * HEARTBEAT.as_millis() as i64;
/// A device handed back is taken by no one for this long: the node that
/// gave it up stops its work on it first (a recording stopping finishes its
/// segment), so no camera is ever recorded by two nodes at once.
pub const HANDOFF_MS: i64 = 5_000;
/// A node stops working on its devices when it could not renew their
/// leases for this long (before they expire and another node takes them).
const STOP_WORK_AFTER_MS: i64 = LEASE_MS - 2 * HEARTBEAT.as_millis() as i64;
/// Advisory lock keys (PostgreSQL) of the leaderships, after the
/// migrations' (`db::MIGRATION_LOCK`).
const LOCK_BASE: i64 = crate::db::MIGRATION_LOCK;
const JOBS_LOCK: i64 = LOCK_BASE + 1;
const NOTIFY_LOCK: i64 = LOCK_BASE + 2;
/// The longest any one database call of a heartbeat may take.
const DB_DEADLINE: Duration = Duration::from_secs(5);

/// What a node does. Default: everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves the web UI and the API.
    pub web: bool,
    /// Polls device health and keeps event subscriptions.
    pub poll: bool,
    /// Records.
    pub record: bool,
    /// May lead: job scheduler, rollouts, drift checks.
    pub jobs: bool,
    /// May lead the notifier (sends alerts).
    pub notify: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        web: true,
        poll: true,
        record: true,
        jobs: true,
        notify: true,
    };
    const NAMES: [&'static str; 5] = ["web", "poll", "record", "jobs", "notify"];

    /// `web,poll,record,jobs,notify` (any subset, any order; `all`).
    pub fn parse(s: &str) -> std::result::Result<Roles, String> {
        let mut r = Roles {
            web: false,
            poll: false,
            record: false,
            jobs: false,
            notify: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "all" => r = Roles::ALL,
                "web" => r.web = true,
                "poll" => r.poll = true,
                "record" => r.record = true,
                "jobs" => r.jobs = true,
                "notify" => r.notify = true,
                other => {
                    return Err(format!(
                        "roles: {other:?} is not a role (web, poll, record, jobs, notify, or all)"
                    ));
                }
            }
        }
        if r.names().is_empty() {
            return Err("roles: name at least one of web, poll, record, jobs, notify".into());
        }
        Ok(r)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let on = [self.web, self.poll, self.record, self.jobs, self.notify];
        Self::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Does this node take device leases (poll or record)?
    pub fn leases(&self) -> bool {
        self.poll || self.record
    }
}

impl Default for Roles {
    fn default() -> Self {
        Roles::ALL
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// What a lease is for: polling (health and event subscription) and
/// recording are leased apart, so a node may do one without the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseKind {
    Poll,
    Record,
}

impl LeaseKind {
    pub const ALL: [LeaseKind; 2] = [LeaseKind::Poll, LeaseKind::Record];

    pub fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Poll => "poll",
            LeaseKind::Record => "record",
        }
    }

    /// Does a node with these roles take this kind of lease?
    pub fn taken_by(self, r: Roles) -> bool {
        match self {
            LeaseKind::Poll => r.poll,
            LeaseKind::Record => r.record,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Who this node is and what it may do.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub roles: Roles,
    /// Site names this node is pinned to; empty: every site.
    pub sites: Vec<String>,
}

impl NodeConfig {
    /// A node named after this host, with every role and every site.
    pub fn standalone() -> Self {
        NodeConfig {
            name: host_name(),
            roles: Roles::ALL,
            sites: Vec::new(),
        }
    }
}

/// This host's name (the default node name).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "camfleet".into())
}

static THIS_NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// This process's node name: set once by `serve`, else the host name. Job
/// runs and provisioning tasks are stamped with it, so a starting node
/// recovers only what it (or a dead node) left running.
pub fn this_node() -> String {
    THIS_NODE.get_or_init(host_name).clone()
}

/// Name this process (before anything is stamped; later calls are ignored).
pub fn set_this_node(name: &str) {
    let _ = THIS_NODE.set(name.to_string());
}

/// Check a node name: what people see on the cluster page and in metrics.
pub fn check_node_name(name: &str) -> std::result::Result<String, String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 {
        return Err("node_name: 1 to 64 characters".into());
    }
    if !n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "node_name: {n:?} may hold only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(n.to_string())
}

/// The devices this node works on. `all()` outside a cluster (the CLI,
/// tests of one service): every device.
#[derive(Clone, Debug)]
pub struct Share {
    rx: Option<watch::Receiver<Arc<HashSet<i32>>>>,
}

impl Default for Share {
    fn default() -> Self {
        Share::all()
    }
}

impl Share {
    pub fn all() -> Self {
        Share { rx: None }
    }

    /// Does this node work on `device`?
    pub fn owns(&self, device: i32) -> bool {
        match &self.rx {
            None => true,
            Some(rx) => rx.borrow().contains(&device),
        }
    }

    /// The devices now (None: every device).
    pub fn snapshot(&self) -> Option<Arc<HashSet<i32>>> {
        self.rx.as_ref().map(|rx| rx.borrow().clone())
    }

    /// Wait until the share changes (never, for `all()`).
    pub async fn changed(&mut self) {
        match &mut self.rx {
            None => std::future::pending().await,
            Some(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await
                }
            }
        }
    }
}

/// Whether this node leads one role. `always()` outside a cluster.
#[derive(Clone, Debug)]
pub struct Lead {
    rx: Option<watch::Receiver<bool>>,
}

impl Default for Lead {
    fn default() -> Self {
        Lead::always()
    }
}

impl Lead {
    pub fn always() -> Self {
        Lead { rx: None }
    }

    pub fn is_leader(&self) -> bool {
        self.rx.as_ref().is_none_or(|rx| *rx.borrow())
    }
}

// ---------- the plan: pure, from the rows every node reads ----------

/// A live node that takes leases, as the plan sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    /// Site ids it is pinned to; None: every site.
    pub sites: Option<HashSet<i32>>,
}

impl Peer {
    fn serves(&self, site: Option<i32>) -> bool {
        match &self.sites {
            None => true,
            Some(s) => site.is_some_and(|id| s.contains(&id)),
        }
    }

    fn overlaps(&self, other: &Peer) -> bool {
        match (&self.sites, &other.sites) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => !a.is_disjoint(b),
        }
    }
}

/// One device's lease as read.
#[derive(Debug, Clone, sea_orm::FromQueryResult)]
pub struct LeaseRow {
    pub device_id: i32,
    pub site_id: Option<i32>,
    pub node: Option<String>,
    pub expires_ms: i64,
    pub since_ms: i64,
}

impl LeaseRow {
    fn holder(&self, now_ms: i64) -> Option<&str> {
        self.node.as_deref().filter(|_| self.expires_ms > now_ms)
    }

    /// Since when nobody holds it.
    fn free_since(&self) -> i64 {
        if self.node.is_some() {
            self.expires_ms
        } else {
            self.since_ms
        }
    }
}

#[derive(Debug, Clone, sea_orm::FromQueryResult)]
struct KindRow {
    kind: String,
    device_id: i32,
    site_id: Option<i32>,
    node: Option<String>,
    expires_ms: i64,
    since_ms: i64,
}

/// What one heartbeat changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeasePlan {
    /// Mine, kept.
    pub renew: Vec<i32>,
    /// Mine, handed back (to balance, or no longer mine to serve).
    pub release: Vec<i32>,
    /// Free, to take.
    pub take: Vec<i32>,
    /// This node's fair share.
    pub target: usize,
}

/// Each peer's fair share: the devices it may serve over the live peers
/// that may serve some of the same (rounded up).
pub fn targets(peers: &[Peer], rows: &[LeaseRow]) -> HashMap<String, usize> {
    peers
        .iter()
        .map(|p| {
            let eligible = rows.iter().filter(|r| p.serves(r.site_id)).count();
            let k = peers.iter().filter(|q| p.overlaps(q)).count().max(1);
            (p.name.clone(), eligible.div_ceil(k))
        })
        .collect()
}

/// The heartbeat's plan for node `me` (one of `peers`, the live nodes that
/// take leases) over every device's lease row.
///
/// `prefer`: devices this node would rather hold (the record leases
/// follow the node's poll leases, so one node both polls and records a
/// camera where the shares allow): taken first, handed back last.
pub fn plan(
    me: &str,
    now_ms: i64,
    peers: &[Peer],
    rows: &[LeaseRow],
    prefer: &HashSet<i32>,
) -> LeasePlan {
    let Some(mine) = peers.iter().find(|p| p.name == me) else {
        // Not a lease-taking node (or not yet seen alive): hand all back.
        return LeasePlan {
            release: rows
                .iter()
                .filter(|r| r.node.as_deref() == Some(me))
                .map(|r| r.device_id)
                .collect(),
            ..Default::default()
        };
    };
    let targets = targets(peers, rows);
    let target = targets.get(me).copied().unwrap_or(0);
    let mut held: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        if let Some(h) = r.holder(now_ms) {
            *held.entry(h).or_default() += 1;
        }
    }
    let mut out = LeasePlan {
        target,
        ..Default::default()
    };
    // Mine (even if just expired: nobody took it, the renewal checks).
    let mut kept: Vec<&LeaseRow> = Vec::new();
    for r in rows.iter().filter(|r| r.node.as_deref() == Some(me)) {
        if mine.serves(r.site_id) {
            kept.push(r);
        } else {
            out.release.push(r.device_id);
        }
    }
    // Above my share: hand back to each peer below its own, only devices
    // that peer may serve (highest ids first: a stable choice).
    let mut count = kept.len();
    if count > target {
        kept.sort_by_key(|r| {
            (
                prefer.contains(&r.device_id),
                std::cmp::Reverse(r.device_id),
            )
        });
        for q in peers.iter().filter(|q| q.name != me) {
            // Devices handed back moments ago are on their way to such a
            // node (it takes them once the hand-off wait is over): counted,
            // or the same want would be answered again every heartbeat.
            let incoming = rows
                .iter()
                .filter(|r| r.node.is_none() && r.since_ms > 0)
                .filter(|r| now_ms < r.since_ms + HANDBACK_GRACE_MS && q.serves(r.site_id))
                .count();
            let want = targets
                .get(&q.name)
                .copied()
                .unwrap_or(0)
                .saturating_sub(held.get(q.name.as_str()).copied().unwrap_or(0))
                .saturating_sub(incoming);
            let mut give = want.min(count.saturating_sub(target));
            let mut i = 0;
            while give > 0 && i < kept.len() {
                if q.serves(kept[i].site_id) {
                    out.release.push(kept.remove(i).device_id);
                    give -= 1;
                    count -= 1;
                } else {
                    i += 1;
                }
            }
        }
    }
    out.renew = kept.iter().map(|r| r.device_id).collect();
    out.renew.sort_unstable();
    // Free devices I may serve: up to my share at once; beyond it only
    // once they have waited out the grace (nobody below share wanted them).
    let mut free: Vec<&LeaseRow> = rows
        .iter()
        .filter(|r| r.holder(now_ms).is_none() && r.node.as_deref() != Some(me))
        .filter(|r| mine.serves(r.site_id))
        .collect();
    free.sort_by_key(|r| (!prefer.contains(&r.device_id), r.free_since(), r.device_id));
    let mut room = target.saturating_sub(count);
    for r in free {
        // Handed back moments ago: its last holder may still be stopping.
        if r.node.is_none() && r.since_ms > 0 && now_ms < r.since_ms + HANDOFF_MS {
            continue;
        }
        if room > 0 {
            out.take.push(r.device_id);
            room -= 1;
        } else if r.free_since() + HANDBACK_GRACE_MS <= now_ms {
            out.take.push(r.device_id);
        }
    }
    out
}

// ---------- the node ----------

/// A dedicated PostgreSQL connection that holds (or tries for) one
/// advisory lock.
#[derive(Default)]
struct LockSlot {
    conn: Option<sea_orm::sqlx::PgConnection>,
    held: bool,
}

/// One node: its heartbeat, its leases, its leaderships.
pub struct Cluster {
    db: DatabaseConnection,
    clock: SharedClock,
    pub config: NodeConfig,
    /// Held leases by kind (poll, record).
    shares: [watch::Sender<Arc<HashSet<i32>>>; 2],
    jobs_lead: watch::Sender<bool>,
    notify_lead: watch::Sender<bool>,
    recording: Arc<AtomicUsize>,
    started_ms: i64,
    /// When the leases were last renewed (ms), for the stop-work rule.
    renewed_ms: AtomicI64,
    locks: tokio::sync::Mutex<[LockSlot; 2]>,
}

/// What one heartbeat did (for logs and tests).
#[derive(Debug, Default, Clone)]
pub struct Beat {
    pub held: usize,
    pub taken: usize,
    pub released: usize,
    pub target: usize,
    pub peers: usize,
}

impl Cluster {
    pub fn new(db: DatabaseConnection, clock: SharedClock, config: NodeConfig) -> Arc<Self> {
        let started_ms = clock.now_utc().timestamp_millis();
        Arc::new(Cluster {
            db,
            clock,
            config,
            shares: [
                watch::channel(Arc::new(HashSet::new())).0,
                watch::channel(Arc::new(HashSet::new())).0,
            ],
            jobs_lead: watch::channel(false).0,
            notify_lead: watch::channel(false).0,
            recording: Default::default(),
            started_ms,
            renewed_ms: AtomicI64::new(0),
            locks: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The devices this node polls (or records), as it changes.
    pub fn share(&self, kind: LeaseKind) -> Share {
        Share {
            rx: Some(self.shares[kind.index()].subscribe()),
        }
    }

    /// Leads the job scheduler, rollouts and drift checks?
    pub fn jobs_lead(&self) -> Lead {
        Lead {
            rx: Some(self.jobs_lead.subscribe()),
        }
    }

    /// Leads the notifier?
    pub fn notify_lead(&self) -> Lead {
        Lead {
            rx: Some(self.notify_lead.subscribe()),
        }
    }

    /// Where the recorder reports how many streams it records.
    pub fn recording_counter(&self) -> Arc<AtomicUsize> {
        self.recording.clone()
    }

    /// This node's gauges for `/metrics`, labelled with its name (read
    /// from memory: what its last heartbeat left).
    pub fn metrics_text(&self) -> String {
        let n = &self.config.name;
        let polled = self.shares[LeaseKind::Poll.index()].borrow().len();
        let recorded = self.shares[LeaseKind::Record.index()].borrow().len();
        let recording = self.recording.load(Ordering::Relaxed);
        let jobs = u8::from(*self.jobs_lead.borrow());
        let notify = u8::from(*self.notify_lead.borrow());
        format!(
            "# HELP camfleet_node_devices Devices this node holds a lease on (polls, subscribes, records).
# TYPE camfleet_node_devices gauge
camfleet_node_devices{{node=\"{n}\",lease=\"poll\"}} {polled}\ncamfleet_node_devices{{node=\"{n}\",lease=\"record\"}} {recorded}
\
             # HELP camfleet_node_recording_streams Streams this node records.
# TYPE camfleet_node_recording_streams gauge
camfleet_node_recording_streams{{node=\"{n}\"}} {recording}
\
             # HELP camfleet_node_leader 1 when this node holds the leadership of a role.
# TYPE camfleet_node_leader gauge
camfleet_node_leader{{node=\"{n}\",role=\"jobs\"}} {jobs}
camfleet_node_leader{{node=\"{n}\",role=\"notify\"}} {notify}
"
        )
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_utc().timestamp_millis()
    }

    fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Register and beat until `shutdown`, then hand everything back.
    pub async fn run(self: Arc<Self>, mut shutdown: crate::shutdown::Shutdown) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {}
            }
            match tokio::time::timeout(4 * DB_DEADLINE, self.beat()).await {
                Ok(Ok(b)) => tracing::debug!(
                    held = b.held,
                    taken = b.taken,
                    released = b.released,
                    target = b.target,
                    peers = b.peers,
                    "heartbeat"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "cluster heartbeat failed"),
                Err(_) => tracing::warn!("cluster heartbeat timed out"),
            }
            self.stop_work_if_stale();
        }
        if let Err(e) = self.leave().await {
            tracing::warn!(error = %e, "handing leases back at shutdown failed");
        }
    }

    /// Leases not renewed for too long: stop working on them before
    /// another node may take them (a node cut off from the database).
    fn stop_work_if_stale(&self) {
        let renewed = self.renewed_ms.load(Ordering::Relaxed);
        if renewed > 0 && self.now_ms() - renewed > STOP_WORK_AFTER_MS {
            for share in &self.shares {
                share.send_if_modified(|s| {
                    if s.is_empty() {
                        return false;
                    }
                    tracing::warn!(
                        devices = s.len(),
                        "leases not renewed: stopping work on them"
                    );
                    *s = Arc::new(HashSet::new());
                    true
                });
            }
            self.jobs_lead.send_replace(false);
            self.notify_lead.send_replace(false);
        }
    }

    /// One heartbeat: the node row, the leaderships, the leases.
    pub async fn beat(&self) -> Result<Beat> {
        let now = self.now_ms();
        let leader = self.leaderships().await;
        let leader_names: Vec<&str> = [("jobs", leader.0), ("notify", leader.1)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect();
        self.upsert_node(now, &leader_names.join(",")).await?;
        let (peers, rows) = self.read_leases(now).await?;
        let mut beat = Beat::default();
        for kind in LeaseKind::ALL {
            let b = self.lease(kind, now, &peers, &rows).await?;
            if kind == LeaseKind::Poll {
                beat = b;
            }
        }
        self.renewed_ms.store(now, Ordering::Relaxed);
        Ok(beat)
    }

    async fn upsert_node(&self, now: i64, leader: &str) -> Result<()> {
        let b = self.db.get_database_backend();
        let sql = "INSERT INTO nodes (name, roles, sites, started_ms, heartbeat_ms, stopped_ms, recording, leader, version) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET roles = excluded.roles, sites = excluded.sites, \
             started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms, stopped_ms = NULL, \
             recording = excluded.recording, leader = excluded.leader, version = excluded.version";
        let recording = self
            .recording
            .load(Ordering::Relaxed)
            .min(i32::MAX as usize) as i32;
        self.exec(Statement::from_sql_and_values(
            b,
            sql,
            [
                self.config.name.clone().into(),
                self.config.roles.to_string().into(),
                self.config.sites.join(",").into(),
                self.started_ms.into(),
                now.into(),
                recording.into(),
                leader.to_string().into(),
                env!("CARGO_PKG_VERSION").into(),
            ],
        ))
        .await?;
        Ok(())
    }

    async fn exec(&self, st: Statement) -> Result<u64> {
        match tokio::time::timeout(DB_DEADLINE, self.db.execute_raw(st)).await {
            Ok(r) => Ok(r?.rows_affected()),
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                "the database did not answer within 5 s",
            )),
        }
    }

    /// The live nodes, their roles, with their sites resolved.
    async fn peers(&self, now: i64) -> Result<Vec<(Peer, Roles)>> {
        let site_ids: HashMap<String, i32> = site::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| (s.name.to_lowercase(), s.id))
            .collect();
        let nodes = node::Entity::find()
            .filter(node::Column::HeartbeatMs.gte(now - DEAD_AFTER_MS))
            .filter(node::Column::StoppedMs.is_null())
            .all(&self.db)
            .await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let roles = Roles::parse(&n.roles).ok()?;
                Some((
                    Peer {
                        sites: sites_of(&n.sites, &site_ids),
                        name: n.name,
                    },
                    roles,
                ))
            })
            .collect())
    }

    /// The live peers and every lease row (both kinds), read once a beat.
    async fn read_leases(&self, now: i64) -> Result<(Vec<(Peer, Roles)>, Vec<(String, LeaseRow)>)> {
        let b = self.db.get_database_backend();
        // Every device in service has a poll lease row, and every device
        // a policy records a record lease row (free when new); a device no
        // longer recorded loses its record row.
        for (kind, only) in [
            (LeaseKind::Poll, ""),
            (LeaseKind::Record, " AND d.record_profile IS NOT NULL"),
        ] {
            self.exec(Statement::from_sql_and_values(
                b,
                format!(
                    "INSERT INTO device_leases (device_id, kind, node, expires_ms, since_ms) \
                     SELECT d.id, $1, NULL, 0, 0 FROM devices d \
                     LEFT JOIN device_leases l ON l.device_id = d.id AND l.kind = $1 \
                     WHERE l.device_id IS NULL AND d.retired_at IS NULL{only} ON CONFLICT (device_id, kind) DO NOTHING"
                ),
                [kind.as_str().into()],
            ))
            .await?;
        }
        self.exec(Statement::from_string(
            b,
            "DELETE FROM device_leases WHERE kind = 'record' \
             AND device_id IN (SELECT id FROM devices WHERE record_profile IS NULL)",
        ))
        .await?;
        // Leases on retired devices are handed back (nobody works on them).
        self.exec(Statement::from_sql_and_values(
            b,
            "UPDATE device_leases SET node = NULL, expires_ms = 0, since_ms = $1 WHERE node = $2 \
             AND device_id IN (SELECT id FROM devices WHERE retired_at IS NOT NULL)",
            [now.into(), self.config.name.clone().into()],
        ))
        .await?;
        let rows = KindRow::find_by_statement(Statement::from_string(
            b,
            "SELECT l.kind, l.device_id, d.site_id, l.node, l.expires_ms, l.since_ms \
             FROM device_leases l JOIN devices d ON d.id = l.device_id WHERE d.retired_at IS NULL",
        ))
        .all(&self.db)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.kind,
                LeaseRow {
                    device_id: r.device_id,
                    site_id: r.site_id,
                    node: r.node,
                    expires_ms: r.expires_ms,
                    since_ms: r.since_ms,
                },
            )
        })
        .collect();
        Ok((self.peers(now).await?, rows))
    }

    /// One kind's heartbeat: renew, hand back, take; publish the share.
    async fn lease(
        &self,
        kind: LeaseKind,
        now: i64,
        peers: &[(Peer, Roles)],
        rows: &[(String, LeaseRow)],
    ) -> Result<Beat> {
        let b = self.db.get_database_backend();
        let rows: Vec<LeaseRow> = rows
            .iter()
            .filter(|(k, _)| k == kind.as_str())
            .map(|(_, r)| r.clone())
            .collect();
        let peers: Vec<Peer> = if kind.taken_by(self.config.roles) {
            peers
                .iter()
                .filter(|(_, r)| kind.taken_by(*r))
                .map(|(p, _)| p.clone())
                .collect()
        } else {
            Vec::new()
        };
        let prefer: HashSet<i32> = match kind {
            LeaseKind::Record => (**self.shares[LeaseKind::Poll.index()].borrow()).clone(),
            LeaseKind::Poll => HashSet::new(),
        };
        let p = plan(&self.config.name, now, &peers, &rows, &prefer);
        let me = self.config.name.clone();
        let k = kind.as_str();
        for chunk in p.renew.chunks(500) {
            self.exec(Statement::from_sql_and_values(
                b,
                format!(
                    "UPDATE device_leases SET expires_ms = $1 WHERE node = $2 AND kind = $3 AND device_id IN ({})",
                    id_list(chunk)
                ),
                [(now + LEASE_MS).into(), me.clone().into(), k.into()],
            ))
            .await?;
        }
        let mut released = 0;
        for chunk in p.release.chunks(500) {
            released += self
                .exec(Statement::from_sql_and_values(
                    b,
                    format!(
                        "UPDATE device_leases SET node = NULL, expires_ms = 0, since_ms = $1 WHERE node = $2 AND kind = $3 AND device_id IN ({})",
                        id_list(chunk)
                    ),
                    [now.into(), me.clone().into(), k.into()],
                ))
                .await?;
        }
        let mut taken = 0;
        for chunk in p.take.chunks(500) {
            taken += self.take(kind, now, chunk).await?;
        }
        let held: HashSet<i32> = device_lease::Entity::find()
            .filter(device_lease::Column::Node.eq(me))
            .filter(device_lease::Column::Kind.eq(k))
            .filter(device_lease::Column::ExpiresMs.gt(now))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|l| l.device_id)
            .collect();
        let beat = Beat {
            held: held.len(),
            taken: taken as usize,
            released: released as usize,
            target: p.target,
            peers: peers.len(),
        };
        self.shares[kind.index()].send_if_modified(|s| {
            if **s == held {
                return false;
            }
            *s = Arc::new(held);
            true
        });
        Ok(beat)
    }

    /// Take these free devices: a compare-and-set per row, the rows
    /// locked and skipped if another node is taking them (PostgreSQL).
    async fn take(&self, kind: LeaseKind, now: i64, ids: &[i32]) -> Result<u64> {
        let b = self.db.get_database_backend();
        let free = format!(
            "kind = '{}' AND device_id IN ({}) AND (node IS NULL OR expires_ms <= $1)",
            kind.as_str(),
            id_list(ids)
        );
        let txn = self.db.begin().await?;
        let ids: Vec<i32> = if self.is_postgres() {
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    b,
                    format!(
                        "SELECT device_id FROM device_leases WHERE {free} FOR UPDATE SKIP LOCKED"
                    ),
                    [now.into()],
                ))
                .await?;
            rows.iter()
                .filter_map(|r| r.try_get::<i32>("", "device_id").ok())
                .collect()
        } else {
            ids.to_vec()
        };
        let n = if ids.is_empty() {
            0
        } else {
            txn.execute_raw(Statement::from_sql_and_values(
                b,
                format!(
                    "UPDATE device_leases SET node = $2, expires_ms = $3, since_ms = $1 WHERE kind = '{}' AND device_id IN ({}) AND (node IS NULL OR expires_ms <= $1)",
                    kind.as_str(),
                    id_list(&ids)
                ),
                [
                    now.into(),
                    self.config.name.clone().into(),
                    (now + LEASE_MS).into(),
                ],
            ))
            .await?
            .rows_affected()
        };
        txn.commit().await?;
        Ok(n)
    }

    /// Try for (or keep) the leaderships this node's roles allow:
    /// (jobs, notify).
    async fn leaderships(&self) -> (bool, bool) {
        let roles = self.config.roles;
        if !self.is_postgres() {
            // SQLite: one server per database file, so it leads.
            self.jobs_lead.send_replace(roles.jobs);
            self.notify_lead.send_replace(roles.notify);
            return (roles.jobs, roles.notify);
        }
        let mut slots = self.locks.lock().await;
        let [jobs, notify] = &mut *slots;
        let j = roles.jobs && hold_lock(&self.db, jobs, JOBS_LOCK).await;
        let n = roles.notify && hold_lock(&self.db, notify, NOTIFY_LOCK).await;
        if self.jobs_lead.send_replace(j) != j {
            tracing::info!(node = self.name(), leader = j, "job leadership");
        }
        if self.notify_lead.send_replace(n) != n {
            tracing::info!(node = self.name(), leader = n, "notifier leadership");
        }
        (j, n)
    }

    /// Stopping: hand the leases back, say so, let go of the locks.
    pub async fn leave(&self) -> Result<()> {
        let now = self.now_ms();
        for share in &self.shares {
            share.send_replace(Arc::new(HashSet::new()));
        }
        self.jobs_lead.send_replace(false);
        self.notify_lead.send_replace(false);
        let b = self.db.get_database_backend();
        self.exec(Statement::from_sql_and_values(
            b,
            "UPDATE device_leases SET node = NULL, expires_ms = 0, since_ms = $1 WHERE node = $2",
            [now.into(), self.config.name.clone().into()],
        ))
        .await?;
        node::Entity::update_many()
            .col_expr(node::Column::StoppedMs, Expr::value(now))
            .col_expr(node::Column::Leader, Expr::value(""))
            .filter(node::Column::Name.eq(self.config.name.clone()))
            .exec(&self.db)
            .await?;
        // Let go of the locks before closing: the server may take a moment
        // to notice a closed session, and the next leader should not wait.
        let mut slots = self.locks.lock().await;
        for s in slots.iter_mut() {
            if let Some(mut conn) = s.conn.take() {
                let _ = tokio::time::timeout(
                    DB_DEADLINE,
                    sea_orm::sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut conn),
                )
                .await;
                let _ =
                    tokio::time::timeout(DB_DEADLINE, sea_orm::sqlx::Connection::close(conn)).await;
            }
            s.held = false;
        }
        Ok(())
    }
}

/// `1,2,3` for an `IN (…)` (integers only: nothing to escape).
fn id_list(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// A node's pinned sites by id; names of sites that do not exist (yet)
/// pin it to nothing of theirs. Empty: every site.
fn sites_of(names: &str, ids: &HashMap<String, i32>) -> Option<HashSet<i32>> {
    let names: Vec<String> = names
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(names.iter().filter_map(|n| ids.get(n).copied()).collect())
}

/// Hold (or try for) an advisory lock on a connection of its own: the
/// lock is the session's, so it goes when the connection does.
async fn hold_lock(db: &DatabaseConnection, slot: &mut LockSlot, key: i64) -> bool {
    use sea_orm::sqlx::Connection;
    if slot.conn.is_none() {
        let pool = db.get_postgres_connection_pool();
        match tokio::time::timeout(DB_DEADLINE, pool.acquire()).await {
            Ok(Ok(c)) => {
                slot.conn = Some(c.detach());
                slot.held = false;
            }
            _ => return false,
        }
    }
    let Some(conn) = slot.conn.as_mut() else {
        return false;
    };
    let q = if slot.held {
        // Still ours while the session lives.
        tokio::time::timeout(DB_DEADLINE, conn.ping())
            .await
            .map(|r| r.map(|_| true))
    } else {
        tokio::time::timeout(
            DB_DEADLINE,
            sea_orm::sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *conn),
        )
        .await
    };
    match q {
        Ok(Ok(held)) => {
            slot.held = held;
            held
        }
        _ => {
            // The session is gone or hangs: so is the lock.
            slot.conn = None;
            slot.held = false;
            false
        }
    }
}

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_TEXT: &str = "camfleet secret key check";

/// Every node must open what any other sealed (camera passwords, channel
/// secrets): the first server on a database seals a known text with its
/// key; a server whose key cannot open it refuses to start, instead of
/// failing every camera as "unauthorized".
pub async fn check_secret_key(
    db: &DatabaseConnection,
    secrets: &crate::secrets::SecretBox,
) -> Result<()> {
    let b = db.get_database_backend();
    // Sealed by the first server; then read back, so of two first servers
    // starting at once with different keys, the one that lost sees it.
    db.execute_raw(Statement::from_sql_and_values(
        b,
        "INSERT INTO cluster_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        [
            KEY_CHECK.into(),
            secrets.seal(KEY_CHECK_TEXT.as_bytes()).into(),
        ],
    ))
    .await?;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            b,
            "SELECT value FROM cluster_meta WHERE key = $1",
            [KEY_CHECK.into()],
        ))
        .await?;
    let stored: Option<Vec<u8>> = row.and_then(|r| r.try_get::<Vec<u8>>("", "value").ok());
    match stored.map(|v| secrets.open_string(&v)) {
        Some(Ok(t)) if t == KEY_CHECK_TEXT => Ok(()),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "this server's secret key is not the one this database's secrets were sealed with: give every node the same key (copy {} from the first node's data directory, or set {} on each)",
                crate::secrets::KEY_FILE,
                crate::secrets::KEY_ENV
            ),
        )),
    }
}

/// One node as the cluster page and `GET /api/v1/cluster` show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub name: String,
    /// Heartbeat within the last 15 s and not stopped.
    pub alive: bool,
    pub roles: Vec<String>,
    /// Sites it is pinned to; empty: every site.
    pub sites: Vec<String>,
    /// Cameras it polls (and subscribes to): its poll leases.
    pub devices: u64,
    /// Streams it records.
    pub recording: i32,
    /// Leaderships held: `jobs`, `notify`.
    pub leader: Vec<String>,
    pub last_heartbeat: chrono::DateTime<chrono::Utc>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub version: String,
}

/// Every node known to the database, live ones first.
pub async fn nodes(db: &DatabaseConnection, now_ms: i64) -> Result<Vec<NodeView>> {
    let b = db.get_database_backend();
    let counts: HashMap<String, u64> = db
        .query_all_raw(Statement::from_sql_and_values(
            b,
            "SELECT node, COUNT(*) AS n FROM device_leases WHERE kind = 'poll' AND node IS NOT NULL AND expires_ms > $1 GROUP BY node",
            [now_ms.into()],
        ))
        .await?
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get::<String>("", "node").ok()?,
                r.try_get::<i64>("", "n").ok()? as u64,
            ))
        })
        .collect();
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let mut out: Vec<NodeView> = node::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|n| {
            let alive = n.stopped_ms.is_none() && n.heartbeat_ms >= now_ms - DEAD_AFTER_MS;
            NodeView {
                devices: counts.get(&n.name).copied().unwrap_or(0),
                alive,
                roles: split(&n.roles),
                sites: split(&n.sites),
                recording: if alive { n.recording } else { 0 },
                leader: if alive { split(&n.leader) } else { Vec::new() },
                last_heartbeat: at(n.heartbeat_ms),
                started: at(n.started_ms),
                version: n.version,
                name: n.name,
            }
        })
        .collect();
    out.sort_by(|a, b| b.alive.cmp(&a.alive).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// The nodes alive at `now_ms` (their running work is theirs).
pub async fn alive_nodes(db: &DatabaseConnection, now_ms: i64) -> Result<Vec<String>> {
    Ok(node::Entity::find()
        .filter(node::Column::HeartbeatMs.gte(now_ms - DEAD_AFTER_MS))
        .filter(node::Column::StoppedMs.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, sites: Option<&[i32]>) -> Peer {
        Peer {
            name: name.into(),
            sites: sites.map(|s| s.iter().copied().collect()),
        }
    }

    fn row(id: i32, site: Option<i32>, node: Option<&str>, expires: i64) -> LeaseRow {
        LeaseRow {
            device_id: id,
            site_id: site,
            node: node.map(String::from),
            expires_ms: expires,
            since_ms: 0,
        }
    }

    /// Apply plans for each node in turn, as their heartbeats would.
    fn settle(peers: &[Peer], rows: &mut [LeaseRow], mut now: i64, rounds: usize) -> i64 {
        for _ in 0..rounds {
            for p in peers {
                let plan = plan(&p.name, now, peers, rows, &HashSet::new());
                for r in rows.iter_mut() {
                    if plan.renew.contains(&r.device_id) {
                        r.expires_ms = now + LEASE_MS;
                    }
                    if plan.release.contains(&r.device_id) {
                        r.node = None;
                        r.since_ms = now;
                        r.expires_ms = 0;
                    }
                    if plan.take.contains(&r.device_id) && (r.node.is_none() || r.expires_ms <= now)
                    {
                        r.node = Some(p.name.clone());
                        r.expires_ms = now + LEASE_MS;
                        r.since_ms = now;
                    }
                }
            }
            now += HEARTBEAT.as_millis() as i64;
        }
        now
    }

    fn count(rows: &[LeaseRow], name: &str) -> usize {
        rows.iter()
            .filter(|r| r.node.as_deref() == Some(name))
            .count()
    }

    #[test]
    fn roles_parse_and_name_what_is_wrong() {
        assert_eq!(Roles::parse("all").unwrap(), Roles::ALL);
        let r = Roles::parse(" web, jobs ").unwrap();
        assert!(r.web && r.jobs && !r.poll && !r.leases());
        assert_eq!(r.to_string(), "web,jobs");
        assert!(Roles::parse("web,cook").unwrap_err().contains("\"cook\""));
        assert!(Roles::parse("").is_err());
        assert!(check_node_name("rec-north.1").is_ok());
        assert!(check_node_name("a b").is_err());
    }

    #[test]
    fn one_node_takes_everything_at_once() {
        let peers = [peer("a", None)];
        let rows: Vec<_> = (1..=40).map(|i| row(i, None, None, 0)).collect();
        let p = plan("a", 1_000, &peers, &rows, &HashSet::new());
        assert_eq!(p.take.len(), 40);
        assert_eq!(p.target, 40);
    }

    #[test]
    fn a_joining_node_gets_its_share_without_thrashing() {
        let peers = [peer("a", None)];
        let mut rows: Vec<_> = (1..=40).map(|i| row(i, None, None, 0)).collect();
        let now = settle(&peers, &mut rows, 1_000, 1);
        assert_eq!(count(&rows, "a"), 40);
        let peers = [peer("a", None), peer("b", None)];
        // a hands 20 back at once; b takes them once the hand-off wait
        // is over (two heartbeats later).
        let now = settle(&peers, &mut rows, now, 1);
        assert_eq!((count(&rows, "a"), count(&rows, "b")), (20, 0));
        let now = settle(&peers, &mut rows, now, 1);
        assert_eq!(count(&rows, "b"), 0, "not while a may still be stopping");
        let now = settle(&peers, &mut rows, now, 1);
        assert_eq!((count(&rows, "a"), count(&rows, "b")), (20, 20));
        // Settled: further heartbeats move nothing.
        let before: Vec<_> = rows.iter().map(|r| r.node.clone()).collect();
        settle(&peers, &mut rows, now, 10);
        let after: Vec<_> = rows.iter().map(|r| r.node.clone()).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_dead_nodes_devices_go_to_the_living_after_the_lease() {
        let peers = [peer("a", None), peer("b", None)];
        let mut rows: Vec<_> = (1..=40).map(|i| row(i, None, None, 0)).collect();
        let now = settle(&peers, &mut rows, 1_000, 3);
        assert_eq!(count(&rows, "a"), 20);
        // a stops beating; b alone is alive. Before the lease runs out, b
        // takes nothing of a's; after it, everything.
        let alive = [peer("b", None)];
        let expiry = rows
            .iter()
            .filter(|r| r.node.as_deref() == Some("a"))
            .map(|r| r.expires_ms)
            .max()
            .unwrap();
        assert!(expiry <= now + LEASE_MS);
        let p = plan("b", expiry - 1, &alive, &rows, &HashSet::new());
        assert!(p.take.is_empty());
        let p = plan("b", expiry, &alive, &rows, &HashSet::new());
        assert_eq!(p.take.len(), 20);
    }

    #[test]
    fn a_site_recorder_serves_only_its_sites_and_nothing_is_orphaned() {
        // Sites 1 (10 devices) and 2 (20 devices); "north" is pinned to 1.
        let peers = [peer("central", None), peer("north", Some(&[1]))];
        let mut rows: Vec<_> = (1..=30)
            .map(|i| row(i, Some(if i <= 10 { 1 } else { 2 }), None, 0))
            .collect();
        settle(&peers, &mut rows, 1_000, 10);
        assert!(rows.iter().all(|r| r.node.is_some()), "every device served");
        assert!(
            rows.iter()
                .filter(|r| r.node.as_deref() == Some("north"))
                .all(|r| r.site_id == Some(1))
        );
        assert!(count(&rows, "north") >= 5);
    }

    #[test]
    fn devices_of_no_site_go_only_to_unpinned_nodes() {
        let peers = [peer("north", Some(&[1]))];
        let rows = vec![row(1, None, None, 0), row(2, Some(1), None, 0)];
        let p = plan("north", 1_000, &peers, &rows, &HashSet::new());
        assert_eq!(p.take, vec![2]);
    }

    #[test]
    fn preferred_devices_are_taken_first_and_handed_back_last() {
        let peers = [peer("a", None), peer("b", None)];
        let rows: Vec<_> = (1..=4).map(|i| row(i, None, None, 0)).collect();
        let prefer: HashSet<i32> = [3, 4].into_iter().collect();
        let p = plan("a", 1_000, &peers, &rows, &prefer);
        assert_eq!(p.take, vec![3, 4], "its share is two: the two it prefers");
        // Holding all four with b below its share: a hands back 1 and 2.
        let rows: Vec<_> = (1..=4).map(|i| row(i, None, Some("a"), 99_999)).collect();
        let p = plan("a", 1_000, &peers, &rows, &prefer);
        let mut back = p.release.clone();
        back.sort_unstable();
        assert_eq!(back, vec![1, 2]);
    }

    #[test]
    fn a_node_without_lease_roles_hands_back() {
        let rows = vec![row(1, None, Some("ui"), 99_999)];
        let p = plan("ui", 1_000, &[], &rows, &HashSet::new());
        assert_eq!(p.release, vec![1]);
    }
}
