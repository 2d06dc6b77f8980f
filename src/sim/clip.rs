//! The video every simulated camera sends: a 4 s H.264 clip (320x240,
//! 10 fps, a keyframe every second, Constrained Baseline), looped. It was
//! made here with ffmpeg's `testsrc` and x264:
//!
//! ```sh
//! ffmpeg -f lavfi -i testsrc=size=320x240:rate=10 -t 4 -pix_fmt yuv420p \
//!   -c:v libx264 -profile:v baseline -g 10 -keyint_min 10 -sc_threshold 0 \
//!   -b:v 120k -x264-params repeat-headers=1 -f h264 src/sim/clip.h264
//! ```
//!
//! Each keyframe carries its SPS and PPS, so any loop point at a keyframe
//! is a clean start for a decoder. Cameras with the `h265` quirk send the
//! same pattern as H.265 (`clip265.hevc`, 34 KB):
//!
//! ```sh
//! ffmpeg -f lavfi -i testsrc=size=320x240:rate=10 -t 4 -pix_fmt yuv420p -c:v libx265 \
//!   -x265-params keyint=10:min-keyint=10:scenecut=0:bframes=0:repeat-headers=1:open-gop=0 \
//!   -b:v 120k -f hevc src/sim/clip265.hevc
//! ```

use std::sync::OnceLock;

use base64::Engine as _;

use crate::recorder::depack::VideoCodec;

/// Frames per second of the clip, and so of every simulated stream.
pub const FPS: u32 = 10;
/// One frame, in milliseconds and in 90 kHz RTP units.
pub const FRAME_MS: i64 = 1000 / FPS as i64;
pub const FRAME_TICKS: u32 = 90_000 / FPS;
/// Frames between keyframes.
pub const GOP: u64 = 10;

/// One access unit: its NAL units without start codes.
#[derive(Debug, Clone)]
pub struct Frame {
    pub nals: Vec<Vec<u8>>,
    pub key: bool,
}

#[derive(Debug)]
pub struct Clip {
    pub codec: VideoCodec,
    pub frames: Vec<Frame>,
    /// H.264: SPS, PPS; H.265: VPS, SPS, PPS.
    pub params: Vec<Vec<u8>>,
}

impl Clip {
    /// The frame shown at position `k` of an endless loop.
    pub fn frame(&self, k: u64) -> &Frame {
        &self.frames[(k % self.frames.len() as u64) as usize]
    }

    /// The SDP `rtpmap` encoding.
    pub fn rtpmap(&self) -> &'static str {
        match self.codec {
            VideoCodec::H264 => "H264/90000",
            VideoCodec::H265 => "H265/90000",
        }
    }

    /// The SDP `fmtp` parameters of the stream.
    pub fn fmtp(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let p = |i: usize| b64.encode(self.params.get(i).map(Vec::as_slice).unwrap_or(&[]));
        match self.codec {
            VideoCodec::H264 => {
                let pli: String = self.params[0]
                    .iter()
                    .skip(1)
                    .take(3)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!(
                    "packetization-mode=1;profile-level-id={pli};sprop-parameter-sets={},{}",
                    p(0),
                    p(1)
                )
            }
            VideoCodec::H265 => format!("sprop-vps={};sprop-sps={};sprop-pps={}", p(0), p(1), p(2)),
        }
    }
}

/// Split an Annex B byte stream into NAL units.
fn nal_units(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        let mut nal = &data[s..end];
        while let [rest @ .., 0] = nal {
            nal = rest; // trailing zeros belong to the next start code
        }
        if !nal.is_empty() {
            out.push(nal.to_vec());
        }
    }
    out
}

fn parse(data: &[u8], codec: VideoCodec) -> Clip {
    let mut frames: Vec<Frame> = Vec::new();
    let mut current = Frame {
        nals: Vec::new(),
        key: false,
    };
    let mut has_slice = false;
    let (param_types, sei, key_types): (&[u8], &[u8], std::ops::RangeInclusive<u8>) = match codec {
        VideoCodec::H264 => (&[7, 8], &[6], 5..=5),
        VideoCodec::H265 => (&[32, 33, 34], &[39, 40], 16..=23),
    };
    let mut params: Vec<Vec<u8>> = vec![Vec::new(); param_types.len()];
    for nal in nal_units(data) {
        let (kind, is_slice) = match codec {
            VideoCodec::H264 => (nal[0] & 0x1f, matches!(nal[0] & 0x1f, 1 | 5)),
            VideoCodec::H265 => ((nal[0] >> 1) & 0x3f, (nal[0] >> 1) & 0x3f < 32),
        };
        let starts_unit = param_types.contains(&kind)
            || sei.contains(&kind)
            || (codec == VideoCodec::H264 && kind == 9)
            || (codec == VideoCodec::H265 && kind == 35);
        // A new access unit starts at a slice or a parameter set/SEI that
        // follows the previous unit's slice (one slice per frame here).
        if has_slice && (is_slice || starts_unit) {
            frames.push(std::mem::replace(
                &mut current,
                Frame {
                    nals: Vec::new(),
                    key: false,
                },
            ));
            has_slice = false;
        }
        if let Some(i) = param_types.iter().position(|t| *t == kind)
            && params[i].is_empty()
        {
            params[i] = nal.clone();
        }
        current.key |= key_types.contains(&kind);
        has_slice |= is_slice;
        // The encoder's SEI (its settings) adds nothing for a receiver.
        if !sei.contains(&kind) {
            current.nals.push(nal);
        }
    }
    if has_slice {
        frames.push(current);
    }
    Clip {
        codec,
        frames,
        params,
    }
}

/// The clip; `CAMFLEET_SIM_CLIP` may name another Annex B H.264 file
/// (10 fps, a keyframe every 10 frames, SPS/PPS before each) for
/// benchmarks at camera-like bitrates.
pub fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        if let Ok(path) = std::env::var("CAMFLEET_SIM_CLIP") {
            match std::fs::read(&path).map(|b| parse(&b, VideoCodec::H264)) {
                Ok(c) if !c.frames.is_empty() && c.params.iter().all(|p| !p.is_empty()) => {
                    return c;
                }
                Ok(_) => tracing::warn!(path, "CAMFLEET_SIM_CLIP is not a usable H.264 stream"),
                Err(e) => tracing::warn!(path, error = %e, "CAMFLEET_SIM_CLIP unreadable"),
            }
        }
        parse(include_bytes!("clip.h264"), VideoCodec::H264)
    })
}

/// The H.265 clip (cameras with the `h265` quirk).
pub fn clip_h265() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| parse(include_bytes!("clip265.hevc"), VideoCodec::H265))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clip_is_forty_frames_with_a_keyframe_every_ten() {
        let c = clip();
        assert_eq!(c.frames.len(), 40);
        for (i, f) in c.frames.iter().enumerate() {
            assert_eq!(f.key, (i as u64).is_multiple_of(GOP), "frame {i}");
            if f.key {
                let kinds: Vec<u8> = f.nals.iter().map(|n| n[0] & 0x1f).collect();
                assert_eq!(kinds, [7, 8, 5], "keyframes carry SPS and PPS");
            }
        }
        assert_eq!(c.params[0][0] & 0x1f, 7);
        assert!(c.fmtp().contains("sprop-parameter-sets="));
        let h = clip_h265();
        assert_eq!(h.frames.len(), 40);
        for (i, f) in h.frames.iter().enumerate() {
            assert_eq!(f.key, (i as u64).is_multiple_of(GOP), "H.265 frame {i}");
        }
        let kinds: Vec<u8> = h.frames[0]
            .nals
            .iter()
            .map(|n| (n[0] >> 1) & 0x3f)
            .collect();
        assert_eq!(kinds, [32, 33, 34, 20]);
        assert!(h.fmtp().starts_with("sprop-vps="));
    }
}
