//! How many addresses the kernel is still resolving by ARP, against the
//! neighbour table's limit, read over rtnetlink (RTM_GETNEIGHTBL and
//! RTM_GETNEIGH), which also answers inside a network namespace where
//! `/proc/net/stat/arp_cache` and the `gc_thresh` sysctls are absent.
//!
//! Why a sweep cares: every probe to an address on a directly connected
//! subnet makes the kernel resolve it by ARP, and an address nobody holds
//! keeps an entry for about three seconds before it fails. Linux refuses
//! new entries past `gc_thresh3` (1,024 by default, one table for the
//! whole kernel) once it cannot reclaim failed or idle ones, and silently
//! drops the datagrams that needed them: a live camera probed then is
//! never asked. The sweep reads the table here and waits for room.

/// The ARP table's hard limit, and how many of this namespace's entries
/// are still being resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourTable {
    /// `gc_thresh3`: past this the kernel refuses new entries, unless it
    /// can reclaim failed or idle ones. Entries still resolving (up to
    /// three seconds each) are the ones it cannot reclaim.
    pub limit: u32,
    /// Entries in INCOMPLETE state (ARP asked, no answer yet).
    pub resolving: u32,
    /// Addresses that answered ARP (REACHABLE, STALE, DELAY, PROBE or
    /// PERMANENT): someone is there.
    pub resolved: Vec<std::net::Ipv4Addr>,
}

impl NeighbourTable {
    /// Room for `n` more addresses to resolve, keeping well below the
    /// limit: the table is one for the whole kernel, shared with other
    /// namespaces and everything else this host talks to.
    pub fn has_room_for(&self, n: u32) -> bool {
        self.resolving.saturating_add(n) <= self.limit / 2
    }
}

/// The ARP table now, or None where rtnetlink cannot say (not Linux, or a
/// kernel that refuses the request): the caller then goes on unthrottled.
#[cfg(target_os = "linux")]
pub fn arp_table() -> Option<NeighbourTable> {
    match query() {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "reading the neighbour table");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn arp_table() -> Option<NeighbourTable> {
    None
}

/// Admits work that will need neighbour entries, `batch` at a time, once
/// the ARP table has room for a batch (or `max_wait` has passed: a table
/// kept full by someone else must not stall a sweep for ever). Shared by
/// concurrent tasks: while one waits for room, the others wait behind it.
///
/// Each look at the table also notes which addresses answered ARP, so the
/// sweep knows afterwards who is on the link even if the kernel has since
/// dropped their entries.
pub struct RoomGate {
    admitted: tokio::sync::Mutex<u64>,
    batch: u32,
    max_wait: std::time::Duration,
    answered_arp: std::sync::Mutex<std::collections::HashSet<std::net::Ipv4Addr>>,
}

impl RoomGate {
    pub fn new(batch: u32, max_wait: std::time::Duration) -> Self {
        Self {
            admitted: tokio::sync::Mutex::new(0),
            batch: batch.max(1),
            max_wait,
            answered_arp: Default::default(),
        }
    }

    /// Look at the table once more and return every address seen
    /// answering ARP since the gate was made.
    pub async fn answered_arp(&self) -> std::collections::HashSet<std::net::Ipv4Addr> {
        if let Some(t) = tokio::task::spawn_blocking(arp_table).await.ok().flatten() {
            self.note(&t);
        }
        self.answered_arp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note(&self, t: &NeighbourTable) {
        self.answered_arp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(t.resolved.iter().copied());
    }

    /// Wait until one more address may be resolved. Returns how long it
    /// waited (zero when the table had room).
    pub async fn admit(&self) -> std::time::Duration {
        let mut n = self.admitted.lock().await;
        *n += 1;
        // The table is read once per batch, not per address.
        if (*n - 1) % u64::from(self.batch) != 0 {
            return std::time::Duration::ZERO;
        }
        let start = tokio::time::Instant::now();
        loop {
            let table = tokio::task::spawn_blocking(arp_table).await.ok().flatten();
            if let Some(t) = &table {
                self.note(t);
            }
            match table {
                Some(t) if !t.has_room_for(self.batch) && start.elapsed() < self.max_wait => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                _ => return start.elapsed(),
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn query() -> std::io::Result<Option<NeighbourTable>> {
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourHeader, NeighbourMessage, NeighbourState,
    };
    use netlink_packet_route::neighbour_table::{
        NeighbourTableAttribute, NeighbourTableHeader, NeighbourTableMessage,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    let mut limit = None;
    let mut table = NeighbourTableMessage::default();
    table.header = NeighbourTableHeader {
        family: AddressFamily::Inet,
    };
    dump(RouteNetlinkMessage::GetNeighbourTable(table), |m| {
        if let RouteNetlinkMessage::NewNeighbourTable(t) = m {
            let named = t
                .attributes
                .iter()
                .any(|a| matches!(a, NeighbourTableAttribute::Name(n) if n == "arp_cache"));
            if named {
                for a in &t.attributes {
                    if let NeighbourTableAttribute::Threshold3(v) = a {
                        limit = Some(*v);
                    }
                }
            }
        }
    })?;
    let Some(limit) = limit.filter(|l| *l > 0) else {
        return Ok(None);
    };
    let mut resolving = 0u32;
    let mut resolved = Vec::new();
    let mut neigh = NeighbourMessage::default();
    neigh.header = NeighbourHeader {
        family: AddressFamily::Inet,
        ..Default::default()
    };
    dump(RouteNetlinkMessage::GetNeighbour(neigh), |m| {
        let RouteNetlinkMessage::NewNeighbour(n) = m else {
            return;
        };
        match n.header.state {
            NeighbourState::Incomplete => resolving += 1,
            NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent => {
                for a in &n.attributes {
                    if let NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) = a {
                        resolved.push(*ip);
                    }
                }
            }
            _ => {}
        }
    })?;
    Ok(Some(NeighbourTable {
        limit,
        resolving,
        resolved,
    }))
}

/// Send one rtnetlink dump request and hand each answer to `each`.
#[cfg(target_os = "linux")]
fn dump(
    request: netlink_packet_route::RouteNetlinkMessage,
    mut each: impl FnMut(netlink_packet_route::RouteNetlinkMessage),
) -> std::io::Result<()> {
    use netlink_packet_core::{
        NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket2::SockRef::from(&socket)
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(request));
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut rx = Vec::with_capacity(64 * 1024);
    // A dump ends with NLMSG_DONE; a table of 65,536 neighbours is a few
    // hundred datagrams, so the count is bounded well above that.
    for _ in 0..4096 {
        rx.clear();
        let n = socket.recv(&mut rx, 0)?;
        let mut off = 0;
        while off < n {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..n])
                .map_err(|e| bad(e.to_string()))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => return Err(bad(format!("rtnetlink: {e:?}"))),
                NetlinkPayload::InnerMessage(inner) => each(inner),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
    Err(bad("rtnetlink dump did not end".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_half_the_table_for_addresses_still_resolving() {
        let t = NeighbourTable {
            limit: 1024,
            resolving: 500,
            resolved: Vec::new(),
        };
        assert!(t.has_room_for(12));
        assert!(!t.has_room_for(13));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_kernel_reports_its_arp_table() {
        let t = arp_table().expect("rtnetlink answers RTM_GETNEIGHTBL");
        assert!(t.limit >= 128, "{t:?}");
    }
}
