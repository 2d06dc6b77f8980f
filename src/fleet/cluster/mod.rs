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
//!
//! The room: `plan` (the pure share arithmetic), `node` (one node's
//! heartbeat, leases and leaderships), `view` (what pages and start-up read
//! of the cluster).

mod node;
mod plan;
mod view;

pub use node::{Beat, Cluster};
pub use plan::{LeasePlan, LeaseRow, Peer, plan, targets};
pub use view::{NodeView, alive_nodes, check_secret_key, nodes};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

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
pub(crate) const STOP_WORK_AFTER_MS: i64 = LEASE_MS - 2 * HEARTBEAT.as_millis() as i64;
/// Advisory lock keys (PostgreSQL) of the leaderships, after the
/// migrations' (`db::MIGRATION_LOCK`).
pub(crate) const LOCK_BASE: i64 = crate::db::MIGRATION_LOCK;
pub(crate) const JOBS_LOCK: i64 = LOCK_BASE + 1;
pub(crate) const NOTIFY_LOCK: i64 = LOCK_BASE + 2;
/// The longest any one database call of a heartbeat may take.
pub(crate) const DB_DEADLINE: Duration = Duration::from_secs(5);

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
