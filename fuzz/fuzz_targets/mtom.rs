//! An MTOM (multipart/related) answer: the first line is the Content-Type
//! header, the rest the body; split into parts, the root parsed as XML and
//! its `xop:Include` references inlined. Must return, never panic.
#![no_main]
use camfleet::onvif::mtom;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let content_type = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    if let Some((root, parts)) = mtom::split_multipart(&content_type, body)
        && let Ok(mut el) = camfleet::xml::parse(&root)
    {
        mtom::inline_attachments(&mut el, &parts);
    }
});
