//! Any bytes a camera might send as a SOAP answer: the envelope reader and
//! every typed parser must return, never panic.
#![no_main]
use camfleet::onvif::envelope::{self, Reply};
use camfleet::onvif::{device, media, time};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = envelope::parse(data) {
        if let Reply::Body(b) = p.reply {
            let _ = device::parse_device_information(&b);
            let _ = device::parse_services(&b);
            let _ = device::parse_capabilities(&b);
            let _ = device::parse_scopes(&b);
            let _ = device::parse_hostname(&b);
            let _ = device::parse_network_interfaces(&b);
            let _ = device::parse_ntp(&b);
            let _ = device::parse_dns(&b);
            let _ = device::parse_users(&b);
            let _ = media::parse_profiles(&b);
            let _ = media::parse_media_uri(&b);
            let _ = time::parse_system_date_time(&b);
        }
    }
});
