//! The plan: which leases a node renews, hands back and takes, computed
//! from the rows every node reads (pure: no database, no clock).

use std::collections::{HashMap, HashSet};

use super::{HANDBACK_GRACE_MS, HANDOFF_MS};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::cluster::{HEARTBEAT, LEASE_MS};

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
