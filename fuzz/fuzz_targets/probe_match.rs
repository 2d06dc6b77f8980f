//! Any datagram on the WS-Discovery port: parsing and XAddr ordering must
//! return, never panic.
#![no_main]
use camfleet::discovery::message::{self, MessageKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = message::parse(data) {
        if let MessageKind::ProbeMatches(v) = m.kind {
            for pm in v {
                let _ = message::order_xaddrs(&pm.xaddrs, Some("127.0.0.1".parse().unwrap()));
                for x in &pm.xaddrs {
                    let _ = camfleet::onvif::address::repair(x);
                }
            }
        }
    }
});
