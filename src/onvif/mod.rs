//! The ONVIF SOAP client: envelopes, WS-Security, HTTP Digest, faults, the
//! per-device session, typed device and media operations, and `adopt`.
//!
//! This module knows nothing of the database or the web; it is tested alone
//! against the simulator, the oxvif mock device and recorded fixtures.

pub mod address;
pub mod adopt;
pub mod config;
pub mod conn;
pub mod device;
pub mod encoder;
pub mod envelope;
pub mod error;
pub mod events;
pub mod fault;
pub mod firmware;
pub mod httpauth;
pub mod media;
pub mod mtom;
pub mod ns;
pub mod ops;
pub mod recording;
pub mod session;
pub mod time;
pub mod transport;
pub mod types;
pub mod wsse;

pub use adopt::{AdoptError, AdoptRequest, AdoptStep, AdoptedDevice, adopt};
pub use error::{OnvifError, OnvifResult};
pub use fault::{Fault, FaultClass};
pub use session::{Credentials, DevicePolicy, DeviceSession};
pub use transport::{Transport, TransportConfig};
pub use types::*;
