//! Any WWW-Authenticate header value(s): choosing and answering a challenge
//! must return, never panic.
#![no_main]
use camfleet::onvif::httpauth;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for part in data.split(|b| *b == b'\n').take(4) {
        if let Ok(v) = http::HeaderValue::from_bytes(part) {
            headers.append(http::header::WWW_AUTHENTICATE, v);
        }
    }
    if let Ok((mut client, _)) = httpauth::choose(&headers, true) {
        let _ = httpauth::respond(&mut client, "admin", "pw", "POST", "/onvif/device_service", Some(b"<x/>"));
    }
});
