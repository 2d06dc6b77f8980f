//! An ONVIF replay session (Streaming Specification §6): DESCRIBE, SETUP
//! and PLAY with `Require: onvif-replay`, `Range: clock=<start>-<end>` and
//! `Rate-Control: no`, so the camera sends its recording as fast as we read
//! it; we read no faster than the bandwidth cap. Frames are placed in time
//! by the NTP stamp of the ONVIF RTP header extension.
//!
//! H.264 and H.265; another codec is refused with a clear error.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::depack::{VideoCodec, VideoDepacketizer, parse_rtp};
use super::rtsp::{RtspClient, RtspError, sdp_video};

#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub uri: url::Url,
    pub creds: Option<(String, String)>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Bytes per second read at most.
    pub max_bytes_per_s: u64,
    /// No packet for this long ends the replay.
    pub idle_timeout: Duration,
    /// The camera's clock minus ours: the range is asked for in the
    /// camera's time and frame times are brought back to ours.
    pub camera_offset: chrono::Duration,
}

/// One replayed frame.
#[derive(Debug, Clone)]
pub struct ReplayedFrame {
    pub at: DateTime<Utc>,
    /// Length-prefixed NAL units.
    pub data: Vec<u8>,
    pub key: bool,
    /// The camera marked a gap before it, or packets were lost.
    pub discontinuity: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Rtsp(#[from] RtspError),
    #[error("{0}")]
    Unsupported(String),
}

pub struct ReplaySession {
    client: RtspClient,
    url: String,
    depack: VideoDepacketizer,
    req: ReplayRequest,
    /// (RTP timestamp, time) of the first frame, for cameras that send no
    /// ONVIF extension.
    anchor: Option<(u32, DateTime<Utc>)>,
    done: bool,
    started: tokio::time::Instant,
    read_bytes: u64,
    last_keepalive: tokio::time::Instant,
    pub frames: u64,
}

fn require() -> (&'static str, String) {
    ("Require", "onvif-replay".into())
}

/// `20261126T101500.250Z`: the ISO 8601 basic form of RTSP clock ranges
/// (RFC 2326 §3.7).
pub fn clock(t: DateTime<Utc>) -> String {
    let ms = t.timestamp_subsec_millis();
    if ms == 0 {
        t.format("%Y%m%dT%H%M%SZ").to_string()
    } else {
        format!("{}.{ms:03}Z", t.format("%Y%m%dT%H%M%S"))
    }
}

/// Read a [`clock`] time (`19961108T143720.25Z`).
pub fn parse_clock(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().strip_suffix('Z')?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let t = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%dT%H%M%S").ok()?;
    let mut ms = 0i64;
    for (i, c) in frac.chars().take(3).enumerate() {
        ms += i64::from(c.to_digit(10)?) * 10i64.pow(2 - i as u32);
    }
    Some(t.and_utc() + chrono::Duration::milliseconds(ms))
}

impl ReplaySession {
    pub async fn open(req: ReplayRequest) -> Result<Self, ReplayError> {
        let timeout = Duration::from_secs(10);
        let mut client = RtspClient::connect(&req.uri, req.creds.clone(), timeout).await?;
        let url = req.uri.to_string();
        let d = client
            .request(
                "DESCRIBE",
                &url,
                &[("Accept", "application/sdp".into()), require()],
            )
            .await?;
        let base = d.header("Content-Base").unwrap_or(&url).to_string();
        let sdp = String::from_utf8_lossy(&d.body).to_string();
        let video = sdp_video(&sdp, &base)
            .ok_or_else(|| ReplayError::Unsupported("the recording has no video track".into()))?;
        let Some(codec) = VideoCodec::from_encoding(&video.encoding) else {
            return Err(ReplayError::Unsupported(format!(
                "replay of {} recordings is not supported (H.264 and H.265 are)",
                video.encoding.to_ascii_uppercase()
            )));
        };
        client
            .request(
                "SETUP",
                &video.control,
                &[
                    ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1".into()),
                    require(),
                ],
            )
            .await?;
        let play_url = if base.ends_with('/') {
            base.trim_end_matches('/').to_string()
        } else {
            base.clone()
        };
        client
            .request(
                "PLAY",
                &play_url,
                &[
                    (
                        "Range",
                        format!(
                            "clock={}-{}",
                            clock(req.from + req.camera_offset),
                            clock(req.to + req.camera_offset)
                        ),
                    ),
                    ("Rate-Control", "no".into()),
                    require(),
                ],
            )
            .await?;
        let now = tokio::time::Instant::now();
        Ok(Self {
            client,
            url: play_url,
            depack: VideoDepacketizer::from_fmtp(codec, &video.fmtp),
            req,
            anchor: None,
            done: false,
            started: now,
            read_bytes: 0,
            last_keepalive: now,
            frames: 0,
        })
    }

    /// The MP4 sample entry and picture size, once known.
    pub fn sample_entry(&self) -> Option<(Vec<u8>, (u32, u32))> {
        self.depack.sample_entry()
    }

    /// `avc1` or `hvc1`.
    pub fn codec(&self) -> &'static str {
        self.depack.codec.mp4_name()
    }

    /// Frames dropped for lost packets.
    pub fn dropped(&self) -> u64 {
        self.depack.dropped
    }

    /// The next frame of the range; None when the range is done.
    pub async fn next_frame(&mut self) -> Result<Option<ReplayedFrame>, ReplayError> {
        while !self.done {
            let pkt = match tokio::time::timeout(self.req.idle_timeout, self.client.next_packet())
                .await
            {
                Err(_) | Ok(Ok(None)) => {
                    self.done = true;
                    break;
                }
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(Some(p))) => p,
            };
            self.pace(pkt.1.len()).await;
            self.keepalive().await?;
            if pkt.0 != 0 {
                continue; // RTCP
            }
            let Ok(rtp) = parse_rtp(&pkt.1) else { continue };
            let terminal = rtp.onvif.is_some_and(|o| o.terminal);
            let au = self.depack.push(&rtp);
            if terminal {
                self.done = true;
            }
            let Some(au) = au else { continue };
            let at = match au.onvif.and_then(|o| o.time()) {
                Some(t) => t - self.req.camera_offset,
                None => {
                    let (ts0, t0) = *self.anchor.get_or_insert((au.rtp_ts, self.req.from));
                    let ticks = au.rtp_ts.wrapping_sub(ts0) as i64;
                    t0 + chrono::Duration::microseconds(ticks * 1_000_000 / 90_000)
                }
            };
            if at >= self.req.to {
                self.done = true;
                break;
            }
            self.frames += 1;
            return Ok(Some(ReplayedFrame {
                at,
                key: au.key || au.onvif.is_some_and(|o| o.clean),
                discontinuity: au.after_loss || au.onvif.is_some_and(|o| o.discontinuity),
                data: au.data,
            }));
        }
        Ok(None)
    }

    /// Read no faster than the cap.
    async fn pace(&mut self, n: usize) {
        self.read_bytes += n as u64 + 4;
        let cap = self.req.max_bytes_per_s.max(1);
        let due = Duration::from_secs_f64(self.read_bytes as f64 / cap as f64);
        let at = self.started + due;
        if at > tokio::time::Instant::now() {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Long replays keep the session alive (servers time out at 60 s).
    async fn keepalive(&mut self) -> Result<(), ReplayError> {
        if self.last_keepalive.elapsed() >= Duration::from_secs(30) {
            self.last_keepalive = tokio::time::Instant::now();
            self.client.send_only("GET_PARAMETER", &self.url).await?;
        }
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.client.send_only("TEARDOWN", &self.url).await;
    }
}
