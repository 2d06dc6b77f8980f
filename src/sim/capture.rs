//! An in-memory record of every SOAP exchange a simulated fleet has: what
//! the client sent and what the camera answered, byte for byte. A test hands
//! the fleet one ([`super::FleetConfig::capture`]) to check both sides
//! against the official ONVIF schemas (`tests/conformance.rs`); without one
//! nothing is kept. Nothing here writes anywhere.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The camera's index in its fleet.
    pub camera: u32,
    /// `http` (SOAP over HTTP) or `udp` (WS-Discovery).
    pub transport: &'static str,
    /// The HTTP path asked for (empty for UDP).
    pub path: String,
    /// The request's Content-Type (`multipart/related…` for MTOM).
    pub request_type: String,
    pub request: Bytes,
    pub status: u16,
    pub response_type: String,
    pub response: Bytes,
}

/// Shared by every camera of a fleet.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Exchange>>>);

impl Capture {
    pub fn push(&self, e: Exchange) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }

    /// Everything so far, emptying the record.
    pub fn take(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
