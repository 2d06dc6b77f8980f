//! One node: its heartbeat, its leases (both kinds), its leaderships.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, Statement, TransactionTrait,
};
use tokio::sync::watch;

use super::plan::{LeaseRow, Peer, plan};
use super::{
    DB_DEADLINE, DEAD_AFTER_MS, HEARTBEAT, JOBS_LOCK, LEASE_MS, Lead, LeaseKind, NOTIFY_LOCK,
    NodeConfig, Roles, STOP_WORK_AFTER_MS, Share,
};
use crate::clock::SharedClock;
use crate::db::entities::{device_lease, node, site};
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, sea_orm::FromQueryResult)]
struct KindRow {
    kind: String,
    device_id: i32,
    site_id: Option<i32>,
    node: Option<String>,
    expires_ms: i64,
    since_ms: i64,
}

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
