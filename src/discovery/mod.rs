//! WS-Discovery: multicast and unicast Probe rounds, CIDR sweeps with an HTTP
//! fallback, and a Hello/Bye listener. Every socket names its interface; the
//! default everywhere is loopback, so nothing leaves the machine unless an
//! operator names a real interface.

pub mod hello;
pub mod message;
pub mod probe;
pub mod socket;
pub mod sweep;

pub use probe::{Discovered, ProbeConfig, ProbeReport};
pub use sweep::{SweepConfig, SweepProgress};
