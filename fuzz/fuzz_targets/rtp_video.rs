//! RTP packets from a camera into the H.264 and H.265 depacketizers
//! (single NAL units, aggregation and fragmentation units), then the MP4
//! sample entry built from whatever parameter sets arrived (which reads
//! the SPS). The input is cut into packets by a 2-byte length prefix.
#![no_main]
use camfleet::recorder::depack::{self, VideoCodec, VideoDepacketizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for codec in [VideoCodec::H264, VideoCodec::H265] {
        let mut d = VideoDepacketizer::from_fmtp(codec, "");
        let mut rest = data;
        while rest.len() >= 2 {
            let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            let packet = &rest[2..2 + n];
            rest = &rest[2 + n..];
            if let Ok(p) = depack::parse_rtp(packet)
                && let Some(au) = d.push(&p)
            {
                let _ = depack::h265_irap(&au.data);
            }
        }
        let _ = d.sample_entry();
    }
});
