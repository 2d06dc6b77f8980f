//! Hello/Bye listener: devices announce themselves when they join or leave.
//! AppSequence orders a device's messages, so a Bye that was sent before the
//! latest Hello (delayed, or repeated by SOAP-over-UDP) is dropped as stale.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::sync::mpsc;

use super::message::{self, AppSequence, MessageKind};
use super::probe::Discovered;
use super::socket;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    Hello(Box<Discovered>),
    Bye {
        endpoint: String,
        source: SocketAddr,
    },
}

/// Remembers the newest AppSequence per endpoint and recent MessageIDs.
#[derive(Debug, Default)]
pub struct SequenceTracker {
    last: HashMap<String, AppSequence>,
    recent_ids: std::collections::VecDeque<String>,
}

const RECENT_IDS: usize = 512;

impl SequenceTracker {
    /// Whether to act on a message from `endpoint`.
    /// - A MessageID seen before is a SOAP-over-UDP repeat: dropped.
    /// - An AppSequence strictly older than the last one accepted from that
    ///   endpoint arrived late (a Bye from before a reboot): dropped.
    /// - An equal AppSequence is accepted: some stacks (Python wsdiscovery)
    ///   never increment MessageNumber, so Hello and Bye carry the same one.
    /// - Messages without an AppSequence are accepted (many cameras omit it).
    pub fn accept(
        &mut self,
        endpoint: &str,
        message_id: Option<&str>,
        seq: Option<AppSequence>,
    ) -> bool {
        if let Some(id) = message_id {
            if self.recent_ids.iter().any(|x| x == id) {
                return false;
            }
            if self.recent_ids.len() >= RECENT_IDS {
                self.recent_ids.pop_front();
            }
            self.recent_ids.push_back(id.to_string());
        }
        let Some(seq) = seq else { return true };
        match self.last.get(endpoint) {
            Some(prev) if prev.is_newer_than(&seq) => false,
            _ => {
                self.last.insert(endpoint.to_string(), seq);
                true
            }
        }
    }
}

pub struct HelloListener {
    pub interface: Ipv4Addr,
    pub port: u16,
}

impl HelloListener {
    /// Listen until shutdown, sending announcements to `tx`.
    pub async fn run(
        self,
        tx: mpsc::Sender<Announcement>,
        mut shutdown: Shutdown,
    ) -> std::io::Result<()> {
        let sock = socket::listener(self.interface, Ipv4Addr::UNSPECIFIED, self.port, true)?;
        let mut tracker = SequenceTracker::default();
        let mut buf = vec![0u8; 65536];
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                r = sock.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    let Ok(msg) = message::parse(&buf[..n]) else { continue };
                    let ann = match msg.kind {
                        MessageKind::Hello(m) => {
                            if !tracker.accept(&m.endpoint, msg.message_id.as_deref(), msg.app_sequence) { continue }
                            Announcement::Hello(Box::new(Discovered::from_match(*m, from, "hello")))
                        }
                        MessageKind::Bye { endpoint } => {
                            if !tracker.accept(&endpoint, msg.message_id.as_deref(), msg.app_sequence) { continue }
                            Announcement::Bye { endpoint, source: from }
                        }
                        _ => continue,
                    };
                    if tx.send(ann).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(i: u64, n: u64) -> Option<AppSequence> {
        Some(AppSequence {
            instance_id: i,
            message_number: n,
        })
    }

    #[test]
    fn stale_bye_after_newer_hello_is_dropped() {
        let mut t = SequenceTracker::default();
        assert!(t.accept("urn:uuid:a", Some("m1"), seq(7, 2))); // Hello after reboot
        assert!(!t.accept("urn:uuid:a", Some("m0"), seq(6, 9))); // Bye from the previous boot, late
        assert!(!t.accept("urn:uuid:a", Some("m1"), seq(7, 2))); // UDP repeat of the Hello
        assert!(t.accept("urn:uuid:a", Some("m2"), seq(7, 3))); // genuine Bye
        assert!(t.accept("urn:uuid:b", None, None));
    }

    #[test]
    fn equal_sequence_with_new_message_id_is_accepted() {
        // Python wsdiscovery sends Hello and Bye with the same MessageNumber.
        let mut t = SequenceTracker::default();
        assert!(t.accept("urn:uuid:w", Some("hello"), seq(5, 1)));
        assert!(t.accept("urn:uuid:w", Some("bye"), seq(5, 1)));
    }
}
