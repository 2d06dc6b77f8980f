//! WS-Discovery: multicast and unicast Probe rounds, CIDR sweeps with an HTTP
//! fallback, and a Hello/Bye listener. Multicast sockets name their
//! interface (never left to the routing table); which interfaces those are
//! is the operator's choice (`interfaces`). Unicast probes and sweeps follow
//! the routing table.

pub mod hello;
pub mod interfaces;
pub mod message;
pub mod neighbours;
pub mod probe;
pub mod socket;
pub mod sweep;

pub use probe::{Discovered, ProbeConfig, ProbeReport};
pub use sweep::{SweepConfig, SweepProgress};
