//! RTP for the replay path: packet parsing with the ONVIF replay header
//! extension, and H.264 (RFC 6184) and H.265 (RFC 7798) access units
//! rebuilt from their payloads. retina does this for live streams but keeps
//! its depacketizers private, so replay has its own.

use base64::Engine as _;

/// The ONVIF replay header extension (Streaming Specification §6.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnvifExt {
    /// NTP time (seconds since 1900 in the high 32 bits).
    pub ntp: u64,
    /// C: the access unit is a clean point (keyframe).
    pub clean: bool,
    /// E: the last access unit before a gap.
    pub end: bool,
    /// D: the first access unit after a gap.
    pub discontinuity: bool,
    /// T: the last packet of the requested range.
    pub terminal: bool,
    pub cseq: u8,
}

impl OnvifExt {
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        const NTP_UNIX_OFFSET: i64 = 2_208_988_800;
        let secs = (self.ntp >> 32) as i64 - NTP_UNIX_OFFSET;
        let nanos = ((self.ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
        chrono::DateTime::from_timestamp(secs, nanos as u32)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub onvif: Option<OnvifExt>,
    pub payload: &'a [u8],
}

/// Parse one RTP packet (RFC 3550), padding and CSRCs included.
pub fn parse_rtp(b: &[u8]) -> Result<RtpPacket<'_>, &'static str> {
    if b.len() < 12 {
        return Err("RTP packet shorter than its header");
    }
    if b[0] >> 6 != 2 {
        return Err("not RTP version 2");
    }
    let padding = b[0] & 0x20 != 0;
    let extension = b[0] & 0x10 != 0;
    let csrcs = (b[0] & 0x0f) as usize;
    let mut off = 12 + 4 * csrcs;
    let mut end = b.len();
    if padding {
        let pad = *b.last().unwrap_or(&0) as usize;
        if pad == 0 || pad > end.saturating_sub(off) {
            return Err("bad RTP padding");
        }
        end -= pad;
    }
    let mut onvif = None;
    if extension {
        if off + 4 > end {
            return Err("RTP extension header cut off");
        }
        let profile = u16::from_be_bytes([b[off], b[off + 1]]);
        let words = u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize;
        let body = off + 4;
        if body + 4 * words > end {
            return Err("RTP extension cut off");
        }
        if (profile == 0xABAC || profile == 0xABAD) && words >= 3 {
            let e = &b[body..body + 12];
            let ntp = u64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
            onvif = Some(OnvifExt {
                ntp,
                clean: e[8] & 0x80 != 0,
                end: e[8] & 0x40 != 0,
                discontinuity: e[8] & 0x20 != 0,
                terminal: e[8] & 0x10 != 0,
                cseq: e[9],
            });
        }
        off = body + 4 * words;
    }
    if off > end {
        return Err("RTP header longer than the packet");
    }
    Ok(RtpPacket {
        marker: b[1] & 0x80 != 0,
        payload_type: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        onvif,
        payload: &b[off..end],
    })
}

/// One rebuilt frame: length-prefixed NAL units (as MP4 stores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub rtp_ts: u32,
    pub onvif: Option<OnvifExt>,
    pub data: Vec<u8>,
    /// Holds an IDR slice.
    pub key: bool,
    /// Packets were lost inside it (it was dropped) or before it.
    pub after_loss: bool,
}

/// Largest frame accepted (a corrupt stream must not grow memory).
const MAX_AU: usize = 8 * 1024 * 1024;

/// The video codecs a replay can carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
}

impl VideoCodec {
    /// From the SDP's rtpmap encoding name.
    pub fn from_encoding(name: &str) -> Option<VideoCodec> {
        match name.to_ascii_lowercase().as_str() {
            "h264" => Some(VideoCodec::H264),
            "h265" => Some(VideoCodec::H265),
            _ => None,
        }
    }

    /// The MP4 sample entry's name, which the ledger records as the codec.
    pub fn mp4_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "avc1",
            VideoCodec::H265 => "hvc1",
        }
    }

    fn nal_type(self, nal: &[u8]) -> u8 {
        match self {
            VideoCodec::H264 => nal[0] & 0x1f,
            VideoCodec::H265 => (nal[0] >> 1) & 0x3f,
        }
    }

    /// A picture decoding can start at (H.264 IDR; H.265 BLA/IDR/CRA).
    fn is_random_access(self, t: u8) -> bool {
        match self {
            VideoCodec::H264 => t == 5,
            VideoCodec::H265 => (16..=23).contains(&t),
        }
    }
}

/// Rebuilds access units from RTP: H.264 (RFC 6184: single NAL units,
/// STAP-A, FU-A) or H.265 (RFC 7798: single NAL units, aggregation
/// packets, fragmentation units; no DONL).
#[derive(Debug, Default)]
pub struct VideoDepacketizer {
    pub codec: VideoCodec,
    /// H.265 only.
    pub vps: Option<Vec<u8>>,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
    cur: Option<AccessUnit>,
    fu: Option<Vec<u8>>,
    last_seq: Option<u16>,
    broken: bool,
    loss_pending: bool,
    /// Frames dropped because packets were missing.
    pub dropped: u64,
}

impl VideoDepacketizer {
    /// Start from the SDP's parameter sets, if any (`sprop-parameter-sets`
    /// for H.264; `sprop-vps`, `sprop-sps`, `sprop-pps` for H.265).
    pub fn from_fmtp(codec: VideoCodec, fmtp: &str) -> Self {
        let mut d = Self {
            codec,
            ..Self::default()
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let keys: &[&str] = match codec {
            VideoCodec::H264 => &["sprop-parameter-sets"],
            VideoCodec::H265 => &["sprop-vps", "sprop-sps", "sprop-pps"],
        };
        for (k, v) in fmtp.split(';').filter_map(|p| p.trim().split_once('=')) {
            if !keys.iter().any(|want| k.trim().eq_ignore_ascii_case(want)) {
                continue;
            }
            for s in v.split(',') {
                if let Ok(nal) = b64.decode(s.trim())
                    && nal.len() >= 2
                {
                    d.note_parameters(&nal);
                }
            }
        }
        d
    }

    fn note_parameters(&mut self, nal: &[u8]) {
        let slot = match (self.codec, self.codec.nal_type(nal)) {
            (VideoCodec::H264, 7) | (VideoCodec::H265, 33) => &mut self.sps,
            (VideoCodec::H264, 8) | (VideoCodec::H265, 34) => &mut self.pps,
            (VideoCodec::H265, 32) => &mut self.vps,
            _ => return,
        };
        *slot = Some(nal.to_vec());
    }

    fn add_nal(&mut self, nal: &[u8]) {
        if nal.len() < 2 {
            return;
        }
        self.note_parameters(nal);
        let t = self.codec.nal_type(nal);
        let Some(au) = self.cur.as_mut() else { return };
        if au.data.len() + nal.len() + 4 > MAX_AU {
            self.broken = true;
            return;
        }
        au.key |= self.codec.is_random_access(t);
        au.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        au.data.extend_from_slice(nal);
    }

    /// Aggregated NAL units: 16-bit sizes, then the units.
    fn add_aggregate(&mut self, body: &[u8]) {
        let mut i = 0;
        while i + 2 <= body.len() {
            let n = u16::from_be_bytes([body[i], body[i + 1]]) as usize;
            i += 2;
            if i + n > body.len() {
                self.broken = true;
                break;
            }
            let nal = body[i..i + n].to_vec();
            self.add_nal(&nal);
            i += n;
        }
    }

    /// A fragment: `header` is the rebuilt NAL header, `fu` the FU header
    /// byte (S, E), `data` the piece.
    fn add_fragment(&mut self, header: &[u8], fu: u8, data: &[u8]) {
        let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
        if start {
            let mut nal = Vec::with_capacity(4096);
            nal.extend_from_slice(header);
            nal.extend_from_slice(data);
            self.fu = Some(nal);
        } else if let Some(f) = self.fu.as_mut() {
            if f.len() + data.len() > MAX_AU {
                self.broken = true;
                self.fu = None;
            } else {
                f.extend_from_slice(data);
            }
        } else {
            self.broken = true;
        }
        if end && let Some(nal) = self.fu.take() {
            self.add_nal(&nal);
        }
    }

    /// Feed one packet; a finished frame comes out when the marker bit or
    /// a new timestamp ends it.
    pub fn push(&mut self, p: &RtpPacket<'_>) -> Option<AccessUnit> {
        let mut out = None;
        if let Some(last) = self.last_seq
            && p.seq != last.wrapping_add(1)
        {
            // Lost packets: the frame in progress cannot be trusted.
            self.broken = true;
            self.fu = None;
            self.loss_pending = true;
        }
        self.last_seq = Some(p.seq);
        if self.cur.as_ref().is_some_and(|c| c.rtp_ts != p.timestamp) {
            out = self.finish();
        }
        if self.cur.is_none() {
            self.cur = Some(AccessUnit {
                rtp_ts: p.timestamp,
                onvif: p.onvif,
                data: Vec::new(),
                key: false,
                after_loss: std::mem::take(&mut self.loss_pending),
            });
        }
        let pl = p.payload;
        match self.codec {
            VideoCodec::H264 => match pl.first().map(|h| h & 0x1f) {
                Some(1..=23) => self.add_nal(pl),
                Some(24) => self.add_aggregate(&pl[1..]),
                Some(28) if pl.len() >= 2 => {
                    let header = [(pl[0] & 0xe0) | (pl[1] & 0x1f)];
                    self.add_fragment(&header, pl[1], &pl[2..]);
                }
                Some(28) => self.broken = true,
                _ => {} // STAP-B, MTAP, FU-B: not used by cameras
            },
            VideoCodec::H265 if pl.len() >= 2 => match (pl[0] >> 1) & 0x3f {
                0..=47 => self.add_nal(pl),
                48 => self.add_aggregate(&pl[2..]),
                49 if pl.len() >= 3 => {
                    let header = [(pl[0] & 0x81) | ((pl[2] & 0x3f) << 1), pl[1]];
                    self.add_fragment(&header, pl[2], &pl[3..]);
                }
                49 => self.broken = true,
                _ => {} // PACI and reserved types
            },
            VideoCodec::H265 => self.broken = true,
        }
        if p.marker {
            out = out.or(self.finish());
        }
        out
    }

    fn finish(&mut self) -> Option<AccessUnit> {
        let au = self.cur.take()?;
        if std::mem::take(&mut self.broken) || au.data.is_empty() {
            self.dropped += 1;
            self.loss_pending = true;
            return None;
        }
        Some(au)
    }

    /// The MP4 sample entry (`avc1` with `avcC`, or `hvc1` with `hvcC`)
    /// and the picture size, once the parameter sets are known.
    pub fn sample_entry(&self) -> Option<(Vec<u8>, (u32, u32))> {
        let (sps, pps) = (self.sps.as_ref()?, self.pps.as_ref()?);
        let (kind, config, dims): (&[u8; 4], Vec<u8>, (u32, u32)) = match self.codec {
            VideoCodec::H264 => {
                if sps.len() < 4 {
                    return None;
                }
                let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
                avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
                avcc.extend_from_slice(sps);
                avcc.push(1);
                avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
                avcc.extend_from_slice(pps);
                (b"avc1", sized(b"avcC", &avcc), sps_dimensions(sps)?)
            }
            VideoCodec::H265 => {
                let vps = self.vps.as_ref()?;
                let info = super::hevc::sps_info(sps)?;
                let hvcc = super::hevc::hvcc(&info, vps, sps, pps);
                (b"hvc1", sized(b"hvcC", &hvcc), (info.width, info.height))
            }
        };
        let mut e = Vec::with_capacity(86 + config.len());
        e.extend_from_slice(&[0; 6]); // reserved
        e.extend_from_slice(&1u16.to_be_bytes()); // data reference index
        e.extend_from_slice(&[0; 16]); // pre_defined, reserved
        e.extend_from_slice(&(dims.0 as u16).to_be_bytes());
        e.extend_from_slice(&(dims.1 as u16).to_be_bytes());
        e.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
        e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
        e.extend_from_slice(&[0; 4]);
        e.extend_from_slice(&1u16.to_be_bytes()); // frame count
        e.extend_from_slice(&[0; 32]); // compressor name
        e.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
        e.extend_from_slice(&(-1i16).to_be_bytes());
        e.extend_from_slice(&config);
        Some((sized(kind, &e), dims))
    }
}

fn sized(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

/// Does this H.265 access unit (length-prefixed NAL units) hold an IRAP
/// picture (BLA, IDR or CRA), where decoding can start?
pub fn h265_irap(au: &[u8]) -> bool {
    let mut i = 0usize;
    while i + 5 <= au.len() {
        let n = u32::from_be_bytes([au[i], au[i + 1], au[i + 2], au[i + 3]]) as usize;
        let kind = (au[i + 4] >> 1) & 0x3f;
        if (16..=21).contains(&kind) {
            return true;
        }
        i = i.saturating_add(4).saturating_add(n);
    }
    false
}

/// Picture size from an SPS (h264-reader reads it, cropping included).
fn sps_dimensions(sps: &[u8]) -> Option<(u32, u32)> {
    use h264_reader::nal::{Nal, RefNal, sps::SeqParameterSet};
    let nal = RefNal::new(sps, &[], true);
    let s = SeqParameterSet::from_bits(nal.rbsp_bits()).ok()?;
    s.pixel_dimensions().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32, marker: bool, ext: Option<[u8; 12]>, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80 | if ext.is_some() { 0x10 } else { 0 },
            if marker { 0xe0 } else { 0x60 },
        ];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        if let Some(e) = ext {
            p.extend_from_slice(&[0xab, 0xac, 0, 3]);
            p.extend_from_slice(&e);
        }
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn the_onvif_extension_gives_the_frame_time_and_flags() {
        // 2026-11-26T00:00:00.5Z in NTP.
        let secs: u64 = 1_795_651_200 + 2_208_988_800;
        let ntp = (secs << 32) | (1u64 << 31);
        let mut ext = [0u8; 12];
        ext[..8].copy_from_slice(&ntp.to_be_bytes());
        ext[8] = 0x80 | 0x20 | 0x10;
        ext[9] = 5;
        let raw = packet(1, 900, true, Some(ext), &[0x65, 1, 2]);
        let p = parse_rtp(&raw).unwrap();
        let o = p.onvif.unwrap();
        assert!(o.clean && o.discontinuity && o.terminal && !o.end);
        assert_eq!(o.cseq, 5);
        assert_eq!(
            o.time().unwrap().to_rfc3339(),
            "2026-11-26T00:00:00.500+00:00"
        );
        assert_eq!(p.payload, &[0x65, 1, 2]);
    }

    #[test]
    fn broken_packets_are_refused_not_panicked_on() {
        assert!(parse_rtp(&[0x80, 0x60, 0, 1]).is_err());
        assert!(parse_rtp(&[0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xac, 0, 9]).is_err());
        assert!(parse_rtp(&[0xa0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200]).is_err());
        let mut d = VideoDepacketizer::default();
        for junk in [&[28u8][..], &[28, 0x40, 1], &[24, 0, 200, 1]] {
            let raw = packet(1, 1, true, None, junk);
            let _ = d.push(&parse_rtp(&raw).unwrap());
        }
    }

    #[test]
    fn fu_a_and_stap_a_rebuild_one_frame_and_a_loss_drops_it() {
        let mut d = VideoDepacketizer::default();
        let stap = [24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        assert!(
            d.push(&parse_rtp(&packet(1, 0, false, None, &stap)).unwrap())
                .is_none()
        );
        let fu1 = [0x7c, 0x85, 1, 2, 3];
        let fu2 = [0x7c, 0x45, 4, 5];
        assert!(
            d.push(&parse_rtp(&packet(2, 0, false, None, &fu1)).unwrap())
                .is_none()
        );
        let au = d
            .push(&parse_rtp(&packet(3, 0, true, None, &fu2)).unwrap())
            .unwrap();
        assert!(au.key);
        assert_eq!(
            au.data,
            [
                0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 2, 0x68, 0xce, 0, 0, 0, 6, 0x65, 1, 2, 3, 4, 5
            ]
        );
        assert_eq!(d.sps.as_deref(), Some(&[0x67, 0x42][..]));
        // seq 5 follows 3: the frame is dropped and the next is flagged.
        assert!(
            d.push(&parse_rtp(&packet(5, 9000, true, None, &fu2)).unwrap())
                .is_none()
        );
        let next = d
            .push(&parse_rtp(&packet(6, 18000, true, None, &[0x41, 9])).unwrap())
            .unwrap();
        assert!(next.after_loss && !next.key);
        assert_eq!(d.dropped, 1);
    }

    #[test]
    fn h265_cra_and_idr_pictures_are_random_access_points() {
        let nal = |t: u8, body: &[u8]| {
            let mut v = ((body.len() + 2) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(&[t << 1, 1]);
            v.extend_from_slice(body);
            v
        };
        assert!(
            h265_irap(&[nal(39, &[1, 2]), nal(21, &[3])].concat()),
            "CRA"
        );
        assert!(h265_irap(&nal(19, &[3])), "IDR");
        assert!(!h265_irap(&nal(1, &[3])), "TRAIL_R");
        assert!(!h265_irap(&[0, 0, 0, 200, 2]), "cut short");
        assert!(!h265_irap(&[0, 0, 0]), "shorter than a header");
    }

    #[test]
    fn the_sample_entry_carries_the_picture_size_from_the_sps() {
        let c = crate::sim::clip::clip();
        let mut d = VideoDepacketizer::default();
        d.note_parameters(&c.params[0]);
        d.note_parameters(&c.params[1]);
        let (entry, dims) = d.sample_entry().unwrap();
        assert_eq!(dims, (320, 240));
        assert_eq!(&entry[4..8], b"avc1");
        assert_eq!(
            u32::from_be_bytes(entry[..4].try_into().unwrap()) as usize,
            entry.len()
        );
    }
}
