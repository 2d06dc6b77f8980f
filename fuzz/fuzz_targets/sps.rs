//! Sequence parameter sets: the H.265 SPS reader directly, and the H.264
//! one through the sample entry it feeds (with a fixed PPS).
#![no_main]
use camfleet::recorder::depack::{VideoCodec, VideoDepacketizer};
use camfleet::recorder::hevc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(info) = hevc::sps_info(data) {
        let _ = hevc::hvcc(&info, data, data, data);
    }
    let mut d = VideoDepacketizer::from_fmtp(VideoCodec::H264, "");
    d.sps = Some(data.to_vec());
    d.pps = Some(vec![0x68, 0xce, 0x38, 0x80]);
    let _ = d.sample_entry();
});
