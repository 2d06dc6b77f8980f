//! Live view: a camera's video as fragmented MP4, one fragment per frame,
//! for the browser's Media Source Extensions.
//!
//! Each camera has a [`Channel`]. When the camera is recorded, the
//! recorder's own RTSP session feeds it (no second session to the camera);
//! otherwise the first viewer starts one on-demand session that every
//! later viewer shares, and the last viewer to leave ends it (retina sends
//! the TEARDOWN). A channel does no work while nobody watches.
//!
//! What a viewer gets: the initialisation segment, then the fragments
//! since the last keyframe (so a picture shows at once when others were
//! already watching; the first viewer waits for the next keyframe), then
//! each frame as it comes. A frame is sent when the next one arrives, which
//! gives its duration: one frame of latency. A viewer that falls behind
//! skips to the next keyframe rather than being disconnected.
//!
//! Caps: viewers per camera, viewers per node and on-demand sessions per
//! node ([`Limits`]); past them a viewer is refused with a message that
//! names the limit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::mp4;
use crate::error::{Error, ErrorKind, Result};
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// Fragments are timed in the RTP video clock.
pub const TIMESCALE: u32 = 90_000;
/// Pieces a slow viewer may fall behind before it skips to a keyframe.
const BACKLOG: usize = 256;
/// The fragments kept since the last keyframe, at most (a camera with a
/// very long GOP: later viewers then wait for the next keyframe).
const MAX_GOP_BYTES: usize = 8 * 1024 * 1024;
/// A timestamp jump past this starts a new run of decode times.
const MAX_STEP: i64 = 10 * TIMESCALE as i64;

#[derive(Debug, Clone)]
pub struct Limits {
    pub viewers_per_camera: usize,
    pub viewers: usize,
    /// On-demand RTSP sessions (cameras watched but not recorded).
    pub sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            viewers_per_camera: 8,
            viewers: 64,
            sessions: 16,
        }
    }
}

/// What a piece of the stream is: a viewer that fell behind resumes at an
/// `Init` or a `Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Init,
    Key,
    Delta,
}

#[derive(Debug, Clone)]
pub struct Piece {
    pub kind: PieceKind,
    pub bytes: Bytes,
}

/// Where an on-demand session pulls from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub url: url::Url,
    pub creds: Option<(String, String)>,
    pub udp: bool,
}

/// A frame held until the next one gives its duration.
struct Pending {
    ts: i64,
    data: Vec<u8>,
    key: bool,
}

/// The fragmenter: stream timestamps in, movie fragments out.
#[derive(Default)]
struct Mux {
    /// The sample entry in use and its initialisation segment.
    init: Option<(Vec<u8>, Bytes)>,
    pending: Option<Pending>,
    sequence: u32,
    /// Decode time = stream timestamp + shift (None: the next frame
    /// starts a new run).
    shift: Option<i64>,
    /// Decode time after the last fragment sent.
    next_dts: i64,
    /// The last frame duration seen (used when a step is implausible).
    nominal: u32,
    /// The smallest step between frames seen: the frame interval, which
    /// spaces decode times when frames are reordered.
    min_step: Option<u32>,
    /// The stream reorders frames (B-frames): decode times are then spaced
    /// evenly and the presentation times go into composition offsets.
    reordered: bool,
    gop: Vec<Piece>,
    gop_bytes: usize,
    /// Nothing is sent until a keyframe (after a start or a new init).
    want_key: bool,
}

impl Mux {
    fn new() -> Self {
        Self {
            nominal: TIMESCALE / 25,
            want_key: true,
            ..Default::default()
        }
    }

    /// Forget the stream's state (a new session: new timestamps).
    fn restart(&mut self) {
        self.pending = None;
        self.shift = None;
        self.gop.clear();
        self.gop_bytes = 0;
        self.want_key = true;
    }

    /// One frame in; the pieces to send out.
    fn push(
        &mut self,
        entry: impl FnOnce() -> Option<(Vec<u8>, (u32, u32))>,
        ts: i64,
        data: &[u8],
        key: bool,
    ) -> Vec<Piece> {
        let mut out = Vec::new();
        if key || self.init.is_none() {
            // A keyframe may bring new parameters: a new init segment.
            if let Some((e, dims)) = entry()
                && self.init.as_ref().is_none_or(|(cur, _)| *cur != e)
            {
                // The frame before belongs to the old parameters.
                if let Some(p) = self.pending.take() {
                    out.extend(self.emit(p, self.nominal));
                }
                let init = Bytes::from(mp4::fragmented_init(&e, dims, TIMESCALE));
                self.init = Some((e, init.clone()));
                self.gop.clear();
                self.gop_bytes = 0;
                self.want_key = true;
                out.push(Piece {
                    kind: PieceKind::Init,
                    bytes: init,
                });
            }
        }
        if self.init.is_none() {
            return out;
        }
        if let Some(p) = self.pending.take() {
            let step = ts - p.ts;
            if step < 0 {
                self.reordered = true;
            }
            let plausible = step > 0 && step < MAX_STEP;
            if plausible {
                self.min_step = Some(self.min_step.map_or(step as u32, |m| m.min(step as u32)));
            }
            let duration = if self.reordered {
                self.min_step.unwrap_or(self.nominal)
            } else if plausible {
                self.nominal = step as u32;
                step as u32
            } else {
                self.nominal
            };
            out.extend(self.emit(p, duration));
        }
        self.pending = Some(Pending {
            ts,
            data: data.to_vec(),
            key,
        });
        out
    }

    /// One frame as a fragment (none while waiting for a keyframe).
    fn emit(&mut self, p: Pending, duration: u32) -> Option<Piece> {
        if self.want_key && !p.key {
            return None;
        }
        self.want_key = false;
        let shift = match self.shift {
            Some(s) if (p.ts + s - self.next_dts).abs() < MAX_STEP => s,
            // The first frame of a run, or a jump: on from where the last
            // run ended.
            _ => {
                let s = self.next_dts - p.ts;
                self.shift = Some(s);
                s
            }
        };
        let pts = p.ts + shift;
        let (dts, offset) = if self.reordered {
            (self.next_dts, pts - self.next_dts)
        } else {
            (pts.max(self.next_dts), 0)
        };
        self.sequence = self.sequence.wrapping_add(1);
        let sample = mp4::FragSample {
            duration,
            size: p.data.len() as u32,
            sync: p.key,
            composition_offset: offset.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        };
        let bytes = Bytes::from(mp4::fragment(
            self.sequence,
            dts.max(0) as u64,
            &[sample],
            &p.data,
        ));
        self.next_dts = dts + i64::from(duration);
        let piece = Piece {
            kind: if p.key {
                PieceKind::Key
            } else {
                PieceKind::Delta
            },
            bytes,
        };
        if p.key {
            self.gop.clear();
            self.gop_bytes = 0;
        }
        self.gop_bytes += piece.bytes.len();
        if self.gop_bytes > MAX_GOP_BYTES {
            self.gop.clear();
        } else {
            self.gop.push(piece.clone());
        }
        Some(piece)
    }
}

/// One camera's live stream.
pub struct Channel {
    pub device_id: i32,
    tx: broadcast::Sender<Piece>,
    mux: Mutex<Mux>,
    viewers: AtomicUsize,
    /// A recording feeds it.
    recorded: AtomicBool,
    /// The on-demand session, while one runs.
    on_demand: Mutex<Option<ShutdownTrigger>>,
    /// Where an on-demand session pulls from (the last viewer's).
    source: Mutex<Option<Source>>,
    /// Why the last on-demand session failed, if it did.
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("device_id", &self.device_id)
            .field("viewers", &self.viewers())
            .field("recorded", &self.recorded.load(Ordering::Relaxed))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Channel {
    fn new(device_id: i32) -> Self {
        Self {
            device_id,
            tx: broadcast::channel(BACKLOG).0,
            mux: Mutex::new(Mux::new()),
            viewers: AtomicUsize::new(0),
            recorded: AtomicBool::new(false),
            on_demand: Mutex::new(None),
            source: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// Viewers watching now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Acquire)
    }

    /// A new RTSP session feeds the channel: its timestamps start afresh.
    pub fn restart(&self) {
        lock(&self.mux).restart();
    }

    /// One video frame, in decode order, with its timestamp (90 kHz) and
    /// the stream's parameters. Nothing happens while nobody watches.
    pub fn video(
        &self,
        params: Option<&retina::codec::VideoParameters>,
        ts: i64,
        data: &[u8],
        key: bool,
    ) {
        if self.viewers() == 0 {
            return;
        }
        let entry = || {
            let v = params?;
            Some((v.mp4_sample_entry().build().ok()?, v.pixel_dimensions()))
        };
        let mut mux = lock(&self.mux);
        for piece in mux.push(entry, ts, data, key) {
            // Err: the last viewer left meanwhile.
            let _ = self.tx.send(piece);
        }
    }

    /// The last on-demand failure, for the page.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

/// Every camera's live channel on this node.
pub struct LiveHub {
    channels: Mutex<HashMap<i32, Arc<Channel>>>,
    viewers: AtomicUsize,
    sessions: AtomicUsize,
    pub limits: Limits,
    /// Each camera's on-demand RTSP sessions, so a new one waits for the
    /// last one's TEARDOWN.
    groups: Mutex<HashMap<i32, Arc<retina::client::SessionGroup>>>,
    /// Waits before an on-demand session is tried again (1st, 2nd, later).
    pub backoff: [Duration; 3],
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl LiveHub {
    pub fn new(limits: Limits) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            viewers: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
            limits,
            groups: Mutex::new(HashMap::new()),
            backoff: [1, 5, 10].map(Duration::from_secs),
        }
    }

    /// The camera's channel (made on first use).
    pub fn channel(&self, device_id: i32) -> Arc<Channel> {
        lock(&self.channels)
            .entry(device_id)
            .or_insert_with(|| Arc::new(Channel::new(device_id)))
            .clone()
    }

    fn report(&self) {
        metrics::gauge!("camfleet_live_viewers").set(self.viewers() as f64);
        metrics::gauge!("camfleet_live_sessions").set(self.sessions() as f64);
    }

    /// Viewers on this node now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Acquire)
    }

    /// On-demand RTSP sessions running now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Acquire)
    }

    /// A recording of the camera started (`true`) or stopped. While it
    /// runs it feeds the channel and no on-demand session is needed.
    pub fn set_recorded(self: &Arc<Self>, device_id: i32, on: bool) {
        let ch = self.channel(device_id);
        ch.recorded.store(on, Ordering::Release);
        if on {
            if let Some(stop) = lock(&ch.on_demand).take() {
                stop.fire();
            }
            ch.restart();
        } else if ch.viewers() > 0 {
            ch.restart();
            self.start_on_demand(&ch);
        }
    }

    /// Start watching a camera. `source` is where an on-demand session
    /// would pull from when no recording feeds the channel.
    pub fn watch(self: &Arc<Self>, device_id: i32, source: Option<Source>) -> Result<Viewer> {
        let ch = self.channel(device_id);
        let refused = |msg: String| Error::new(ErrorKind::Unavailable, msg);
        if self.viewers.fetch_add(1, Ordering::AcqRel) >= self.limits.viewers {
            self.viewers.fetch_sub(1, Ordering::AcqRel);
            return Err(refused(format!(
                "live view: {} viewers already watch on this server (the limit)",
                self.limits.viewers
            )));
        }
        // Subscribe and copy the replay under the mux lock: no piece is
        // missed between them or seen twice.
        let (rx, start, skipping) = {
            let mux = lock(&ch.mux);
            if ch.viewers.fetch_add(1, Ordering::AcqRel) >= self.limits.viewers_per_camera {
                ch.viewers.fetch_sub(1, Ordering::AcqRel);
                self.viewers.fetch_sub(1, Ordering::AcqRel);
                return Err(refused(format!(
                    "live view: {} viewers already watch this camera (the limit)",
                    self.limits.viewers_per_camera
                )));
            }
            // The init segment always; the fragments since the last
            // keyframe when there are any, else deltas are skipped until
            // the next keyframe.
            let mut start = VecDeque::new();
            if let Some((_, init)) = &mux.init {
                start.push_back(Piece {
                    kind: PieceKind::Init,
                    bytes: init.clone(),
                });
            }
            let replay = mux.init.is_some() && !mux.want_key && !mux.gop.is_empty();
            if replay {
                start.extend(mux.gop.iter().cloned());
            }
            (ch.tx.subscribe(), start, !replay)
        };
        let mut viewer = Viewer {
            hub: self.clone(),
            channel: ch.clone(),
            skipping,
            start,
            rx,
        };
        if let Some(src) = source {
            *lock(&ch.source) = Some(src);
        }
        if !ch.recorded.load(Ordering::Acquire)
            && lock(&ch.on_demand).is_none()
            && let Err(e) = self.try_start_on_demand(&ch)
        {
            // Dropping the viewer gives its places back.
            viewer.skipping = true;
            drop(viewer);
            return Err(e);
        }
        self.report();
        Ok(viewer)
    }

    fn start_on_demand(self: &Arc<Self>, ch: &Arc<Channel>) {
        if let Err(e) = self.try_start_on_demand(ch) {
            *lock(&ch.last_error) = Some(e.message);
        }
    }

    fn try_start_on_demand(self: &Arc<Self>, ch: &Arc<Channel>) -> Result<()> {
        let mut slot = lock(&ch.on_demand);
        if slot.is_some() {
            return Ok(());
        }
        let Some(src) = lock(&ch.source).clone() else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "live view: the camera reports no stream address",
            ));
        };
        if self.sessions.fetch_add(1, Ordering::AcqRel) >= self.limits.sessions {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "live view: {} cameras are already streamed live from this server (the limit)",
                    self.limits.sessions
                ),
            ));
        }
        let (stop, stopped) = crate::shutdown::channel();
        *slot = Some(stop);
        let group = lock(&self.groups)
            .entry(ch.device_id)
            .or_insert_with(|| {
                Arc::new(
                    retina::client::SessionGroup::default()
                        .named(format!("device {} live", ch.device_id)),
                )
            })
            .clone();
        let hub = self.clone();
        let ch = ch.clone();
        tokio::spawn(async move {
            hub.pull(&ch, src, group, stopped).await;
            hub.sessions.fetch_sub(1, Ordering::AcqRel);
            hub.report();
        });
        Ok(())
    }

    /// The on-demand session: pull until stopped, reconnecting with
    /// backoff while viewers wait.
    async fn pull(
        &self,
        ch: &Channel,
        src: Source,
        group: Arc<retina::client::SessionGroup>,
        mut stop: Shutdown,
    ) {
        let mut failures = 0usize;
        loop {
            let r = tokio::select! {
                _ = stop.wait() => return,
                r = pull_once(ch, &src, group.clone(), &mut failures) => r,
            };
            if let Err(e) = r {
                tracing::info!(device = ch.device_id, error = %e, "live view session failed");
                *lock(&ch.last_error) = Some(e.message);
            }
            let pause = self.backoff[failures.min(self.backoff.len() - 1)];
            failures += 1;
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// A viewer left.
    fn leave(&self, ch: &Channel) {
        self.viewers.fetch_sub(1, Ordering::AcqRel);
        // Under the mux lock, so a viewer arriving now sees a clean state.
        let mut mux = lock(&ch.mux);
        if ch.viewers.fetch_sub(1, Ordering::AcqRel) == 1 {
            mux.restart();
            if let Some(stop) = lock(&ch.on_demand).take() {
                stop.fire();
            }
        }
        drop(mux);
        self.report();
    }
}

/// One RTSP session into the channel, until it fails or ends.
async fn pull_once(
    ch: &Channel,
    src: &Source,
    group: Arc<retina::client::SessionGroup>,
    failures: &mut usize,
) -> Result<()> {
    let super::Playing {
        mut demuxed,
        video: vi,
        ..
    } = super::play(
        src.url.clone(),
        src.creds.clone(),
        src.udp,
        group,
        false,
        ch.device_id,
    )
    .await?;
    ch.restart();
    *lock(&ch.last_error) = None;
    let hevc = demuxed.streams()[vi].encoding_name() == "h265";
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(20), demuxed.next()).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "live view: no frames for 20 s",
                ));
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("live view: {e}"),
                ));
            }
            Ok(Some(Ok(retina::codec::CodecItem::VideoFrame(f)))) => f,
            Ok(Some(Ok(_))) => continue,
        };
        *failures = 0;
        let key =
            frame.is_random_access_point() || (hevc && super::depack::h265_irap(frame.data()));
        let params = match demuxed.streams()[vi].parameters() {
            Some(retina::codec::ParametersRef::Video(v)) => Some(v),
            _ => None,
        };
        ch.video(params, frame.timestamp().elapsed(), frame.data(), key);
    }
}

/// One viewer's stream of MP4 bytes. Dropping it leaves the channel.
pub struct Viewer {
    hub: Arc<LiveHub>,
    channel: Arc<Channel>,
    start: VecDeque<Piece>,
    rx: broadcast::Receiver<Piece>,
    /// Fell behind (or joined without a replay): deltas are dropped until
    /// the next keyframe.
    skipping: bool,
}

impl Viewer {
    /// The next bytes to send; `None` when the channel is gone.
    pub async fn next(&mut self) -> Option<Bytes> {
        if let Some(p) = self.start.pop_front() {
            return Some(p.bytes);
        }
        loop {
            match self.rx.recv().await {
                Ok(p) => {
                    // An init always passes; a keyframe ends the skipping.
                    match p.kind {
                        PieceKind::Delta if self.skipping => continue,
                        PieceKind::Key => self.skipping = false,
                        _ => {}
                    }
                    return Some(p.bytes);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(
                        device = self.channel.device_id,
                        missed = n,
                        "live viewer fell behind"
                    );
                    self.skipping = true;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The camera watched.
    pub fn device_id(&self) -> i32 {
        self.channel.device_id
    }

    /// The bytes as a stream (an HTTP body).
    pub fn into_stream(self) -> impl futures::Stream<Item = Bytes> + Send {
        futures::stream::unfold(self, |mut v| async move { v.next().await.map(|b| (b, v)) })
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.hub.leave(&self.channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(w: u32) -> Option<(Vec<u8>, (u32, u32))> {
        Some((vec![0, 0, 0, 8, b'a', b'v', b'c', b'1', w as u8], (w, 480)))
    }

    /// (kind, decode time, duration, composition offset) of each fragment.
    fn decode(pieces: &[Piece]) -> Vec<(PieceKind, u64, u32, i32)> {
        pieces
            .iter()
            .filter(|p| p.kind != PieceKind::Init)
            .map(|p| {
                let b = &p.bytes;
                let boxes = mp4::top_boxes(b);
                assert_eq!(boxes[0].0, *b"moof");
                assert_eq!(boxes[1].0, *b"mdat");
                // moof: mfhd(16) then traf: tfhd(16) tfdt(20) trun.
                let traf = 8 + 16;
                let tfdt = traf + 8 + 16;
                let dts = u64::from_be_bytes(b[tfdt + 12..tfdt + 20].try_into().unwrap());
                let trun = tfdt + 20;
                assert_eq!(&b[trun + 4..trun + 8], b"trun");
                let s = trun + 20;
                let dur = u32::from_be_bytes(b[s..s + 4].try_into().unwrap());
                let cto = i32::from_be_bytes(b[s + 12..s + 16].try_into().unwrap());
                // The data offset points at the sample, inside the mdat.
                let off = u32::from_be_bytes(b[trun + 16..trun + 20].try_into().unwrap());
                assert_eq!(off as u64, boxes[0].1 + 8);
                (p.kind, dts, dur, cto)
            })
            .collect()
    }

    #[test]
    fn frames_become_fragments_one_frame_late_from_the_first_keyframe() {
        let mut m = Mux::new();
        let mut out = Vec::new();
        // Two deltas before any keyframe: nothing but the init.
        for (i, key) in [(0, false), (1, false), (2, true), (3, false), (4, false)] {
            out.extend(m.push(|| entry(640), 1000 + i * 3600, &[1, 2, 3], key));
        }
        assert_eq!(out[0].kind, PieceKind::Init);
        let boxes = mp4::top_boxes(&out[0].bytes);
        assert_eq!(
            boxes.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![*b"ftyp", *b"moov"]
        );
        let f = decode(&out);
        // Frame 4 waits for the next one.
        assert_eq!(
            f,
            vec![
                (PieceKind::Key, 0, 3600, 0),
                (PieceKind::Delta, 3600, 3600, 0)
            ]
        );
        assert_eq!(m.gop.len(), 2);
    }

    #[test]
    fn reordered_frames_keep_decode_times_rising_with_presentation_in_offsets() {
        let mut m = Mux::new();
        let mut out = Vec::new();
        // I0 P3 B1 B2 P6 B4 B5 I9 (presentation order numbers, 3600 apart).
        for (i, n) in [0i64, 3, 1, 2, 6, 4, 5, 9, 7].iter().enumerate() {
            out.extend(m.push(|| entry(640), n * 3600, &[0; 4], i == 0 || i == 7));
        }
        let f = decode(&out);
        assert_eq!(f.len(), 8);
        let dts: Vec<u64> = f.iter().map(|x| x.1).collect();
        assert!(dts.windows(2).all(|w| w[0] < w[1]), "{dts:?}");
        // Presentation = decode + offset follows the camera's timestamps
        // from the point reordering was seen.
        let pts: Vec<i64> = f.iter().map(|x| x.1 as i64 + i64::from(x.3)).collect();
        assert_eq!(&pts[2..], &[3600, 7200, 21600, 14400, 18000, 32400]);
    }

    #[test]
    fn a_timestamp_jump_or_new_session_continues_the_timeline() {
        let mut m = Mux::new();
        let mut out = Vec::new();
        for i in 0..3 {
            out.extend(m.push(|| entry(640), i * 3000, &[0; 4], i == 0));
        }
        m.restart();
        for i in 0..3 {
            out.extend(m.push(|| entry(640), 5_000_000 + i * 3000, &[0; 4], i == 0));
        }
        let dts: Vec<u64> = decode(&out).iter().map(|x| x.1).collect();
        assert_eq!(dts, vec![0, 3000, 6000, 9000]);
    }

    #[test]
    fn new_parameters_send_a_new_init_and_wait_for_their_keyframe() {
        let mut m = Mux::new();
        let mut out = Vec::new();
        for i in 0..3 {
            out.extend(m.push(|| entry(640), i * 3000, &[0; 4], i == 0));
        }
        out.extend(m.push(|| entry(1280), 9000, &[0; 4], true));
        let kinds: Vec<PieceKind> = out.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                PieceKind::Init,
                PieceKind::Key,
                PieceKind::Delta,
                PieceKind::Delta,
                PieceKind::Init
            ]
        );
        assert!(m.gop.is_empty());
    }

    #[tokio::test]
    async fn viewers_share_a_recorded_channel_within_the_caps() {
        let hub = Arc::new(LiveHub::new(Limits {
            viewers_per_camera: 2,
            viewers: 3,
            sessions: 1,
        }));
        hub.set_recorded(7, true);
        let ch = hub.channel(7);
        let mut a = hub.watch(7, None).unwrap();
        let _b = hub.watch(7, None).unwrap();
        let e = hub.watch(7, None).err().unwrap();
        assert!(
            e.message.contains("2 viewers already watch this camera"),
            "{e}"
        );
        hub.set_recorded(8, true);
        let c = hub.watch(8, None).unwrap();
        let e = hub.watch(8, None).err().unwrap();
        assert!(
            e.message.contains("3 viewers already watch on this server"),
            "{e}"
        );
        drop(c);
        assert_eq!(hub.viewers(), 2);
        // No recording session was needed from the viewers: none started.
        assert_eq!(hub.sessions(), 0);
        // The recorder's frames reach the viewer, from the first keyframe.
        let mut m = Mux::new();
        let mut pieces = Vec::new();
        for i in 0..3 {
            pieces.extend(m.push(|| entry(640), i * 3000, &[0; 4], i == 0));
        }
        {
            let mut mux = lock(&ch.mux);
            for p in pieces.clone() {
                let _ = ch.tx.send(p.clone());
                if p.kind != PieceKind::Init {
                    mux.gop.push(p);
                }
            }
            mux.init = m.init.clone();
            mux.want_key = false;
        }
        assert_eq!(a.next().await.unwrap(), pieces[0].bytes);
        assert_eq!(a.next().await.unwrap(), pieces[1].bytes);
        // A late viewer gets the init and the GOP at once.
        drop(_b);
        let mut late = hub.watch(7, None).unwrap();
        assert_eq!(late.next().await.unwrap(), pieces[0].bytes);
        assert_eq!(late.next().await.unwrap(), pieces[1].bytes);
        assert_eq!(late.next().await.unwrap(), pieces[2].bytes);
    }

    #[tokio::test]
    async fn a_camera_not_recorded_without_a_stream_address_is_refused_cleanly() {
        let hub = Arc::new(LiveHub::default());
        let e = hub.watch(3, None).err().unwrap();
        assert!(e.message.contains("no stream address"), "{e}");
        assert_eq!(hub.viewers(), 0);
        assert_eq!(hub.channel(3).viewers(), 0);
    }
}
