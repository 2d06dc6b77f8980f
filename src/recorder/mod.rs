//! Recording: one camera stream pulled over RTSP (retina, TCP interleaved)
//! into playable MP4 segments cut at keyframes. Video is never decoded.
//!
//! Each segment is written to a spool directory as `.partial`, finished
//! (`moov` written), fsynced, renamed, its directory fsynced, a sidecar
//! with its metadata written the same way; then it is put into the storage
//! tier and its ledger row committed, and only then removed from the spool.
//! A crash loses at most the segment in progress: [`reconcile`] discards
//! `.partial` files and commits finished segments the ledger lacks.

pub mod depack;
pub mod hevc;
pub mod live;
pub mod mp4;
pub mod replay;
pub mod rtsp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::error::{Error, ErrorKind, Result};
use crate::shutdown::Shutdown;
use crate::storage::Storage;

/// What a running recording reports (to the health view and alerting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecEvent {
    /// Playing: frames are coming.
    Recording,
    /// A segment was stored.
    Segment { bytes: u64 },
    /// The stream failed; the next try is in `retry_in`.
    Interrupted { error: String, retry_in: Duration },
    /// How the stream fares, every 10 s while it plays.
    Stats {
        /// Frames per second over the last period, in tenths.
        fps_x10: u32,
        kbit_s: u32,
        /// Since the recording task started.
        frames_lost: u64,
        reconnects: u64,
    },
}

#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Segment length; cut at the first keyframe after it.
    pub segment: Duration,
    /// No frame for this long: reconnect.
    pub frame_timeout: Duration,
    pub spool: PathBuf,
    pub tier: String,
    /// `live` (the stream) or `edge` (replayed from the camera).
    pub origin: String,
    /// RTP over UDP instead of interleaved in the RTSP connection.
    pub udp: bool,
    /// Waits before reconnecting after the 1st, 2nd, 3rd and later failures.
    pub backoff: [Duration; 4],
    /// How often the stream's rates are reported.
    pub stats_every: Duration,
    /// Where progress is reported, if anywhere.
    pub events: Option<tokio::sync::mpsc::UnboundedSender<RecEvent>>,
    /// Live view of this stream: its frames go to the viewers too (no
    /// second session to the camera).
    pub live: Option<Arc<live::Channel>>,
}

impl RecordOptions {
    pub fn new(spool: PathBuf) -> Self {
        Self {
            segment: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(20),
            spool,
            tier: "hot".into(),
            origin: "live".into(),
            udp: false,
            backoff: [1, 5, 10, 60].map(Duration::from_secs),
            stats_every: Duration::from_secs(10),
            events: None,
            live: None,
        }
    }
}

/// What a stream is recorded as.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamId {
    pub device_id: i32,
    pub site_id: Option<i32>,
    pub profile: String,
}

/// A finished segment's metadata (the spool sidecar, then the ledger row).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    stream: StreamId,
    start_ms: i64,
    end_ms: i64,
    codec: String,
    key: String,
    #[serde(default = "live")]
    origin: String,
}

fn live() -> String {
    "live".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordStats {
    pub frames: u64,
    pub segments: u64,
    pub bytes: u64,
    /// Frames reported lost by the RTP layer.
    pub lost: u64,
    /// When the first frame arrived (rates are measured from it).
    #[serde(skip)]
    pub first_frame: Option<std::time::Instant>,
    /// Times the stream was lost and reconnected.
    pub reconnects: u64,
    /// Video bytes received (for the bitrate).
    pub video_bytes: u64,
}

/// A finished segment, as it is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub stream: StreamId,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub bytes: u64,
    pub codec: String,
    /// SHA-256 of the stored bytes, hex.
    pub checksum: String,
    pub tier: String,
    pub key: String,
    pub origin: String,
    /// When it was filed (the recorder's clock).
    pub filed_at: chrono::DateTime<chrono::Utc>,
}

/// Where finished segments are filed: the recordings ledger, which lives
/// with the fleet (`fleet::recordings::Ledger`); the recorder knows no
/// database.
pub trait SegmentLedger: Send + Sync {
    /// Is a segment with this storage key filed already?
    fn contains<'a>(&'a self, key: &'a str) -> futures::future::BoxFuture<'a, Result<bool>>;
    fn file<'a>(&'a self, seg: &'a Filed) -> futures::future::BoxFuture<'a, Result<()>>;
}

pub struct Recorder {
    ledger: Arc<dyn SegmentLedger>,
    store: Arc<Storage>,
    clock: SharedClock,
    /// Segments being put into the tier at once.
    commits: tokio::sync::Semaphore,
    /// One retina session group per stream: a reconnect first lets the
    /// previous session's TEARDOWN go through (or it expires), so a camera
    /// that allows few sessions is not left holding a stale one.
    groups: std::sync::Mutex<
        std::collections::HashMap<(i32, String), Arc<retina::client::SessionGroup>>,
    >,
}

fn rec_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, format!("recording: {what}: {e}"))
}

/// Drop a segment that cannot be completed (its spool file goes).
fn discard(open: Option<Open>) {
    if let Some(o) = open {
        let path = o.path.clone();
        drop(o);
        let _ = std::fs::remove_file(path);
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A frame on its way into a segment.
struct SegFrame<'a> {
    /// 90 kHz, rising within the stream.
    ts: i64,
    /// Wall time of the frame (names a new segment and is its start).
    wall_ms: i64,
    data: &'a [u8],
    key: bool,
    /// Start a new segment here (new parameters, a gap).
    cut_before: bool,
}

/// What a backfill filed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillStats {
    pub frames: u64,
    pub segments: u64,
    pub bytes: u64,
    /// Frames lost to missing packets.
    pub dropped: u64,
    pub first: Option<chrono::DateTime<chrono::Utc>>,
    pub last: Option<chrono::DateTime<chrono::Utc>>,
}

/// A spool file written in 256 KiB pieces: frames arrive a few KiB at a
/// time, and a write call each was one system call per frame per camera on
/// the async runtime. Reads and seeks (the moov at the end) write the
/// pending piece first.
struct SpoolFile {
    file: std::fs::File,
    pending: Vec<u8>,
}

const SPOOL_PIECE: usize = 256 * 1024;

impl SpoolFile {
    fn new(file: std::fs::File) -> Self {
        Self {
            file,
            pending: Vec::with_capacity(SPOOL_PIECE),
        }
    }

    fn write_pending(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Everything written, then on disk.
    fn sync_all(mut self) -> std::io::Result<()> {
        self.write_pending()?;
        self.file.sync_all()
    }
}

impl std::io::Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.pending.len() + buf.len() > SPOOL_PIECE {
            self.write_pending()?;
        }
        if buf.len() >= SPOOL_PIECE {
            return self.file.write(buf);
        }
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_pending()?;
        self.file.flush()
    }
}

impl std::io::Seek for SpoolFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.write_pending()?;
        self.file.seek(pos)
    }
}

impl std::io::Read for SpoolFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.write_pending()?;
        self.file.read(buf)
    }
}

struct Open {
    writer: mp4::Mp4Writer<SpoolFile>,
    path: PathBuf,
    start_ms: i64,
    first_ts: i64,
    codec: String,
    /// The audio track and the timestamp of its first frame, once audio
    /// arrived in this segment.
    audio: Option<(usize, i64)>,
}

/// One AAC frame into the open segment (its track is added on the first).
fn put_audio(
    o: &mut Open,
    params: &retina::codec::AudioParameters,
    ts: i64,
    data: &[u8],
) -> std::io::Result<()> {
    let (track, first) = match o.audio {
        Some(a) => a,
        None => {
            let Ok(entry) = params.mp4_sample_entry().build() else {
                return Ok(()); // a codec MP4 cannot carry: video only
            };
            let frame = params.frame_length().map_or(1024, |n| n.get());
            let t = o.writer.add_audio(entry, params.clock_rate(), frame);
            o.audio = Some((t, ts));
            (t, ts)
        }
    };
    o.writer.push_to(track, ts - first, data, true)
}

/// A playing RTSP session: the demuxed frames, the video stream's index
/// and the audio stream's, when AAC audio was set up.
pub(crate) struct Playing {
    pub demuxed: retina::client::Demuxed,
    pub video: usize,
    pub audio: Option<usize>,
}

/// DESCRIBE, SETUP (video, and AAC audio when `audio` and the camera sends
/// it) and PLAY, over TCP interleaved or UDP. The group's previous session
/// (a reconnect) is first given up to 15 s to be torn down, so a camera that
/// allows few sessions is not left holding a stale one.
pub(crate) async fn play(
    url: url::Url,
    creds: Option<(String, String)>,
    udp: bool,
    group: Arc<retina::client::SessionGroup>,
    audio: bool,
    device_id: i32,
) -> Result<Playing> {
    use retina::client::{
        Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
        Transport, UdpTransportOptions,
    };
    let stale = group.stale_sessions();
    if stale.num_sessions > 0 {
        tracing::debug!(
            device = device_id,
            sessions = stale.num_sessions,
            "waiting for stale RTSP sessions"
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(15), group.await_stale_sessions(&stale)).await;
    }
    let options = SessionOptions::default()
        .creds(creds.map(|(username, password)| Credentials { username, password }))
        .user_agent(concat!("camfleet/", env!("CARGO_PKG_VERSION")).into())
        .session_group(group)
        .teardown(retina::client::TeardownPolicy::Always);
    let mut session =
        tokio::time::timeout(Duration::from_secs(10), Session::describe(url, options))
            .await
            .map_err(|_| rec_err("DESCRIBE", "no answer within 10 s"))?
            .map_err(|e| rec_err("DESCRIBE", e))?;
    let vi = session
        .streams()
        .iter()
        .position(|s| s.media() == "video")
        .ok_or_else(|| rec_err("DESCRIBE", "no video stream"))?;
    let transport = || {
        if udp {
            Transport::Udp(UdpTransportOptions::default())
        } else {
            Transport::Tcp(TcpTransportOptions::default())
        }
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        session.setup(vi, SetupOptions::default().transport(transport())),
    )
    .await
    .map_err(|_| rec_err("SETUP", "no answer within 10 s"))?
    .map_err(|e| rec_err("SETUP", e))?;
    // AAC audio, when the camera sends it, goes into the segment too; a
    // camera whose audio cannot be set up is recorded without it.
    let mut ai = if audio {
        session
            .streams()
            .iter()
            .position(|s| s.media() == "audio" && s.encoding_name() == "mpeg4-generic")
    } else {
        None
    };
    if let Some(i) = ai {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            session.setup(i, SetupOptions::default().transport(transport())),
        )
        .await;
        if !matches!(r, Ok(Ok(_))) {
            tracing::info!(
                device = device_id,
                "recording without audio: its SETUP failed"
            );
            ai = None;
        }
    }
    let playing = tokio::time::timeout(
        Duration::from_secs(10),
        session.play(PlayOptions::default()),
    )
    .await
    .map_err(|_| rec_err("PLAY", "no answer within 10 s"))?
    .map_err(|e| rec_err("PLAY", e))?;
    let demuxed = playing.demuxed().map_err(|e| rec_err("demux", e))?;
    Ok(Playing {
        demuxed,
        video: vi,
        audio: ai,
    })
}

impl Recorder {
    pub fn new(ledger: Arc<dyn SegmentLedger>, store: Arc<Storage>, clock: SharedClock) -> Self {
        Self {
            ledger,
            store,
            clock,
            commits: tokio::sync::Semaphore::new(8),
            groups: Default::default(),
        }
    }

    fn session_group(&self, stream: &StreamId) -> Arc<retina::client::SessionGroup> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((stream.device_id, stream.profile.clone()))
            .or_insert_with(|| {
                Arc::new(
                    retina::client::SessionGroup::default()
                        .named(format!("device {} {}", stream.device_id, stream.profile)),
                )
            })
            .clone()
    }

    /// Record until `stop`, the stream ends, or no frame arrives within the
    /// frame timeout (an error: the caller reconnects).
    pub async fn record(
        &self,
        stream: &StreamId,
        url: url::Url,
        creds: Option<(String, String)>,
        opts: &RecordOptions,
        stats: &mut RecordStats,
        mut stop: Shutdown,
    ) -> Result<()> {
        std::fs::create_dir_all(&opts.spool).map_err(|e| rec_err("spool", e))?;
        let Playing {
            mut demuxed,
            video: vi,
            audio: ai,
        } = play(
            url,
            creds,
            opts.udp,
            self.session_group(stream),
            true,
            stream.device_id,
        )
        .await?;
        if let Some(tx) = &opts.events {
            let _ = tx.send(RecEvent::Recording);
        }
        if let Some(live) = &opts.live {
            live.restart();
        }
        let mut open: Option<Open> = None;
        // retina counts only IDR pictures as random access points; x265 and
        // many cameras send CRA pictures as their periodic keyframes.
        let hevc = demuxed.streams()[vi].encoding_name() == "h265";
        // Rates are measured over real time, not the injected clock.
        let stats_every = opts.stats_every;
        let mut period = std::time::Instant::now();
        let (mut period_frames, mut period_bytes) = (stats.frames, stats.video_bytes);
        let result = loop {
            let item = tokio::select! {
                _ = stop.wait() => break Ok(()),
                r = tokio::time::timeout(opts.frame_timeout, demuxed.next()) => r,
            };
            let frame = match item {
                Err(_) => {
                    break Err(rec_err(
                        "stream",
                        format!("no frames for {}", human_duration(opts.frame_timeout)),
                    ));
                }
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => break Err(rec_err("stream", e)),
                Ok(Some(Ok(retina::codec::CodecItem::VideoFrame(f)))) => f,
                Ok(Some(Ok(retina::codec::CodecItem::AudioFrame(f)))) => {
                    if Some(f.stream_id()) == ai
                        && let Some(o) = open.as_mut()
                        && let Some(retina::codec::ParametersRef::Audio(a)) =
                            demuxed.streams()[f.stream_id()].parameters()
                    {
                        put_audio(o, a, f.timestamp().elapsed(), f.data())
                            .map_err(|e| rec_err("spool", e))?;
                    }
                    continue;
                }
                Ok(Some(Ok(_))) => continue,
            };
            stats.frames += 1;
            stats
                .first_frame
                .get_or_insert_with(std::time::Instant::now);
            stats.lost += u64::from(frame.loss());
            stats.video_bytes += frame.data().len() as u64;
            if period.elapsed() >= stats_every {
                let secs = period.elapsed().as_secs_f64();
                if let Some(tx) = &opts.events {
                    let _ = tx.send(RecEvent::Stats {
                        fps_x10: ((stats.frames - period_frames) as f64 * 10.0 / secs) as u32,
                        kbit_s: ((stats.video_bytes - period_bytes) as f64 * 8.0 / 1000.0 / secs)
                            as u32,
                        frames_lost: stats.lost,
                        reconnects: stats.reconnects,
                    });
                }
                period = std::time::Instant::now();
                period_frames = stats.frames;
                period_bytes = stats.video_bytes;
            }
            let params = demuxed.streams()[vi].parameters();
            let put = SegFrame {
                ts: frame.timestamp().elapsed(),
                wall_ms: self.clock.now_utc().timestamp_millis(),
                data: frame.data(),
                key: frame.is_random_access_point() || (hevc && depack::h265_irap(frame.data())),
                cut_before: frame.has_new_parameters(),
            };
            if let Some(live) = &opts.live {
                let video = match params {
                    Some(retina::codec::ParametersRef::Video(v)) => Some(v),
                    _ => None,
                };
                live.video(video, put.ts, put.data, put.key);
            }
            let entry = || match params {
                Some(retina::codec::ParametersRef::Video(v)) => {
                    let codec = v
                        .rfc6381_codec()
                        .split('.')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    v.mp4_sample_entry()
                        .build()
                        .ok()
                        .map(|e| (e, v.pixel_dimensions(), codec))
                }
                _ => None,
            };
            if let Err(e) = self.put(&mut open, put, entry, stream, opts, stats).await {
                discard(open.take());
                return Err(e);
            }
        };
        if let Some(o) = open.take() {
            self.finish(o, stream, opts, stats).await?;
        }
        result
    }

    /// Put one frame into the open segment: cut first when a keyframe
    /// comes after the segment length (or a forced cut), open a segment
    /// only at a keyframe. `entry` gives a new segment's sample entry,
    /// picture size and codec.
    async fn put(
        &self,
        open: &mut Option<Open>,
        f: SegFrame<'_>,
        entry: impl FnOnce() -> Option<(Vec<u8>, (u32, u32), String)>,
        stream: &StreamId,
        opts: &RecordOptions,
        stats: &mut RecordStats,
    ) -> Result<()> {
        let cut = open.as_ref().is_some_and(|o| {
            f.key && (f.cut_before || (f.ts - o.first_ts) as u64 >= opts.segment.as_secs() * 90_000)
        }) || (f.cut_before && !f.key && open.is_some());
        if cut && let Some(o) = open.take() {
            self.finish(o, stream, opts, stats).await?;
        }
        if open.is_none() {
            if !f.key {
                return Ok(()); // a segment starts at a keyframe
            }
            let Some((entry, dims, codec)) = entry() else {
                return Ok(());
            };
            let path = opts.spool.join(format!(
                "{}-{}-{}.mp4.partial",
                stream.device_id, stream.profile, f.wall_ms
            ));
            let file = std::fs::File::create(&path).map_err(|e| rec_err("spool", e))?;
            *open = Some(Open {
                // Room for the moov of a segment a GOP longer than asked.
                writer: mp4::Mp4Writer::with_reserve(
                    SpoolFile::new(file),
                    entry,
                    dims,
                    90_000,
                    mp4::moov_reserve_for(opts.segment.as_secs() + 10),
                )
                .map_err(|e| rec_err("spool", e))?,
                path,
                start_ms: f.wall_ms,
                first_ts: f.ts,
                codec,
                audio: None,
            });
        }
        if let Some(o) = open.as_mut() {
            o.writer
                .push(f.ts - o.first_ts, f.data, f.key)
                .map_err(|e| rec_err("spool", e))?;
        }
        Ok(())
    }

    /// Fill `[from, to)` of a stream from the camera's own recording (an
    /// ONVIF replay, faster than real time), into segments stamped with
    /// the camera's frame times. Returns what was filed.
    pub async fn backfill(
        &self,
        stream: &StreamId,
        req: replay::ReplayRequest,
        opts: &RecordOptions,
        mut stop: Shutdown,
    ) -> Result<BackfillStats> {
        std::fs::create_dir_all(&opts.spool).map_err(|e| rec_err("spool", e))?;
        // Frames before `from` are ours already (a segment ends after its
        // last frame).
        let wanted_from = req.from;
        let mut session = replay::ReplaySession::open(req)
            .await
            .map_err(|e| rec_err("replay", e))?;
        let mut stats = RecordStats::default();
        let mut out = BackfillStats::default();
        let mut open: Option<Open> = None;
        let mut t0: Option<chrono::DateTime<chrono::Utc>> = None;
        // The replay starts at the keyframe before `from`: that GOP is
        // held back until a frame at or after `from` shows it is needed,
        // so a stretch the camera lacks too files nothing twice.
        let mut held: Vec<replay::ReplayedFrame> = Vec::new();
        let (mut held_bytes, mut early) = (0usize, 0u64);
        const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;
        const MAX_EARLY_FRAMES: u64 = 10_000;
        let mut reached = false;
        let result = loop {
            let next = tokio::select! {
                _ = stop.wait() => break Ok(()),
                n = session.next_frame() => n,
            };
            let f = match next {
                Ok(Some(f)) => f,
                Ok(None) => break Ok(()),
                Err(e) => break Err(rec_err("replay", e)),
            };
            if !reached {
                if f.at < wanted_from {
                    early += 1;
                    if early > MAX_EARLY_FRAMES {
                        // A camera that ignores the range and replays from
                        // the start of its card would keep us busy for hours.
                        break Err(rec_err(
                            "replay",
                            "the camera sends frames from before the requested range (Range: clock= ignored?)",
                        ));
                    }
                    if f.key {
                        held.clear();
                        held_bytes = 0;
                    }
                    held_bytes += f.data.len();
                    if held_bytes > MAX_HELD_BYTES {
                        // No keyframe for far too long: keep nothing until one.
                        held.clear();
                        held_bytes = 0;
                        continue;
                    }
                    held.push(f);
                    continue;
                }
                reached = true;
            }
            for f in held.drain(..).chain(std::iter::once(f)) {
                stats.frames += 1;
                out.first = out.first.min(Some(f.at)).or(Some(f.at));
                out.last = out.last.max(Some(f.at));
                let base = *t0.get_or_insert(f.at);
                let put = SegFrame {
                    ts: (f.at - base).num_microseconds().unwrap_or(0) * 9 / 100,
                    wall_ms: f.at.timestamp_millis(),
                    data: &f.data,
                    key: f.key,
                    cut_before: f.discontinuity,
                };
                // Built only when a segment opens, not per frame.
                let entry = || {
                    let codec = session.codec().to_string();
                    session.sample_entry().map(|(e, d)| (e, d, codec))
                };
                if let Err(e) = self
                    .put(&mut open, put, entry, stream, opts, &mut stats)
                    .await
                {
                    discard(open.take());
                    session.close().await;
                    return Err(e);
                }
            }
        };
        if let Some(o) = open.take() {
            self.finish(o, stream, opts, &mut stats).await?;
        }
        out.frames = stats.frames;
        out.segments = stats.segments;
        out.bytes = stats.bytes;
        out.dropped = session.dropped();
        session.close().await;
        result.map(|()| out)
    }

    /// Finish a segment: moov, fsync, rename, sidecar; then store and commit.
    async fn finish(
        &self,
        o: Open,
        stream: &StreamId,
        opts: &RecordOptions,
        stats: &mut RecordStats,
    ) -> Result<()> {
        if o.writer.samples() == 0 {
            let _ = std::fs::remove_file(&o.path);
            return Ok(());
        }
        let partial = o.path.clone();
        let writer = o.writer;
        // moov, fsync and rename are blocking file work: off the async
        // runtime, which the other cameras' frames are waiting on. A
        // segment that cannot be finished (a full disk) is removed, not
        // left half-written.
        let finished = tokio::task::spawn_blocking(move || {
            let dur_ms = (writer.duration() / 90) as i64;
            let done = partial.with_extension(""); // drop ".partial"
            let r = writer
                .finish()
                .and_then(|file| file.sync_all())
                .map_err(|e| rec_err("finishing", e))
                .and_then(|()| std::fs::rename(&partial, &done).map_err(|e| rec_err("rename", e)));
            if r.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            r.map(|()| (done, dur_ms))
        })
        .await
        .map_err(|e| rec_err("finishing", e))?;
        let (done, dur_ms) = finished?;
        let day = chrono::DateTime::from_timestamp_millis(o.start_ms)
            .unwrap_or_default()
            .format("%Y/%m/%d");
        let side = Sidecar {
            stream: stream.clone(),
            start_ms: o.start_ms,
            end_ms: o.start_ms + dur_ms,
            codec: o.codec,
            origin: opts.origin.clone(),
            key: format!(
                "recordings/{}/{}/{day}/{}.mp4",
                stream.device_id, stream.profile, o.start_ms
            ),
        };
        let side_path = done.with_extension("json");
        let (json, spool) = (
            serde_json::to_vec(&side).unwrap_or_default(),
            opts.spool.clone(),
        );
        let sp = side_path.clone();
        let sidecar = tokio::task::spawn_blocking(move || {
            std::fs::write(&sp, json)
                .and_then(|()| std::fs::File::open(&sp)?.sync_all())
                .and_then(|()| fsync_dir(&spool))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = &sidecar {
            // The spool is full: file the finished segment straight from
            // memory; if that fails too it stays for a person to look at.
            tracing::warn!(file = %done.display(), error = %e, "segment metadata not written to the spool");
            let _ = std::fs::remove_file(&side_path);
        }
        let bytes = self.commit(&done, &side, &opts.tier).await?;
        if let Some(tx) = &opts.events {
            let _ = tx.send(RecEvent::Segment { bytes });
        }
        stats.segments += 1;
        stats.bytes += bytes;
        Ok(())
    }

    /// Put a finished spool segment into the tier and the ledger; then
    /// remove it from the spool. Idempotent by storage key.
    async fn commit(&self, path: &Path, side: &Sidecar, tier: &str) -> Result<u64> {
        let mut bytes = std::fs::metadata(path)
            .map_err(|e| rec_err("spool", e))?
            .len();
        if !self.ledger.contains(&side.key).await? {
            // A few at a time, streamed: segments of many cameras finish
            // together and must not all sit in memory at once.
            let _permit = self.commits.acquire().await;
            // A local tier on the spool's filesystem takes the file by
            // rename (hashed once, never copied); others get a copy.
            let stored = self.store.adopt_file(&side.key, path).await?;
            bytes = stored.bytes;
            let checksum = stored.sha256;
            let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            let filed = self
                .ledger
                .file(&Filed {
                    stream: side.stream.clone(),
                    start: at(side.start_ms),
                    end: at(side.end_ms),
                    bytes,
                    codec: side.codec.clone(),
                    checksum,
                    tier: tier.into(),
                    key: side.key.clone(),
                    origin: side.origin.clone(),
                    filed_at: self.clock.now_utc(),
                })
                .await;
            if let Err(e) = filed {
                // Back into the spool, where the retry finds it.
                if stored.moved
                    && let Err(back) = self.store.unadopt_file(&side.key, path)
                {
                    tracing::warn!(key = %side.key, error = %back, "segment left in the tier without a ledger entry");
                }
                return Err(e);
            }
        }
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("json"));
        Ok(bytes)
    }

    /// Commit finished segments whose commit failed (the storage tier was
    /// full or unreachable) and that have waited at least `min_age`. Safe
    /// while recording: segments being written (`.partial`) are not
    /// touched. Returns how many were committed.
    pub async fn retry_pending(&self, spool: &Path, tier: &str, min_age: Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(spool) else {
            return 0;
        };
        let mut committed = 0;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("mp4") {
                continue;
            }
            let old_enough = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            let side: Option<Sidecar> = std::fs::read(p.with_extension("json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let (true, Some(s)) = (old_enough, side) {
                match self.commit(&p, &s, tier).await {
                    Ok(_) => committed += 1,
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "pending segment still not stored");
                        break; // the tier is still unwell; try again later
                    }
                }
            }
        }
        committed
    }

    /// Start-up: `.partial` segments are discarded (counted), finished ones
    /// the ledger lacks are committed. Returns (discarded, committed).
    pub async fn reconcile(&self, spool: &Path, tier: &str) -> Result<(usize, usize)> {
        let Ok(entries) = std::fs::read_dir(spool) else {
            return Ok((0, 0));
        };
        let (mut discarded, mut committed) = (0, 0);
        for e in entries.flatten() {
            let p = e.path();
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if name.ends_with(".partial") {
                tracing::warn!(file = %p.display(), "discarding a segment cut off by a crash");
                let _ = std::fs::remove_file(&p);
                discarded += 1;
            } else if name.ends_with(".mp4") {
                let side: Option<Sidecar> = std::fs::read(p.with_extension("json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                match side {
                    Some(s) => {
                        self.commit(&p, &s, tier).await?;
                        committed += 1;
                    }
                    None => {
                        // Finished but its sidecar was lost: without its
                        // metadata it cannot be filed; keep it for a person.
                        tracing::warn!(file = %p.display(), "finished segment without metadata kept in the spool");
                    }
                }
            }
        }
        Ok((discarded, committed))
    }

    /// Record a stream until `stop`, reconnecting with backoff (1 s, 5 s,
    /// 10 s, then every 60 s) after every failure.
    pub async fn run(
        self: Arc<Self>,
        stream: StreamId,
        url: url::Url,
        creds: Option<(String, String)>,
        opts: RecordOptions,
        mut stop: Shutdown,
    ) -> RecordStats {
        let mut stats = RecordStats::default();
        let mut failures = 0usize;

        loop {
            let before = stats.frames;
            let r = self
                .record(
                    &stream,
                    url.clone(),
                    creds.clone(),
                    &opts,
                    &mut stats,
                    stop.clone(),
                )
                .await;
            if stop.is_fired() {
                return stats;
            }
            if stats.frames > before {
                failures = 0;
            }
            stats.reconnects += 1;
            let backoff = &opts.backoff;
            let pause = backoff[failures.min(backoff.len() - 1)];
            failures += 1;
            let error = match r {
                Err(e) => e.to_string(),
                Ok(()) => "the stream ended".into(),
            };
            tracing::warn!(device = stream.device_id, error = %error, retry_in_ms = pause.as_millis() as u64, "recording interrupted");
            if let Some(tx) = &opts.events {
                let _ = tx.send(RecEvent::Interrupted {
                    error,
                    retry_in: pause,
                });
            }
            tokio::select! {
                _ = stop.wait() => return stats,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// `20 s`, or `300 ms` under a second.
fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}
