//! Our MP4 reader (exports and the recordings' own checks read segments
//! back with it): any file is refused with a reason, never a panic.
#![no_main]
use camfleet::recorder::mp4;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mp4::top_boxes(data);
    let _ = mp4::read_tracks(data);
});
