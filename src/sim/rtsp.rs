//! The simulated fleet's RTSP server (RFC 2326), one listener for every
//! camera: `/cam{i}/main` and `/cam{i}/sub` stream the clip live (10 fps,
//! real time), `/cam{i}/replay/{token}` replays the camera's on-board
//! recording as the ONVIF Streaming Specification (§6) says:
//!
//! - every request of a replay session must carry `Require: onvif-replay`
//!   (refused otherwise); an unknown `Require` tag gets `551` and an
//!   `Unsupported` header;
//! - `PLAY` takes `Range: clock=<start>-[<end>]` (ISO 8601 basic format) and
//!   starts at the keyframe at or before `start`;
//! - `Rate-Control: no` sends as fast as the client reads; otherwise at
//!   real time;
//! - every RTP packet carries the ONVIF header extension (0xABAC): the NTP
//!   time of the frame, C (clean point), E (last frame before a gap),
//!   D (first frame after a gap), T (last packet of the range) and the low
//!   byte of the PLAY's CSeq.
//!
//! Digest authentication is asked for unless the camera has no auth at all.
//! Transport: RTP over the RTSP connection (interleaved) or UDP to the
//! client's ports on the address it connected from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::recorder::replay::{clock as clock_str, parse_clock};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::SimCamera;
use super::clip::{self, FRAME_MS, FRAME_TICKS};
use super::quirks::SimAuth;
use crate::recorder::depack::VideoCodec;
use crate::shutdown::Shutdown;

const MAX_HEAD: usize = 16 * 1024;
const MTU_PAYLOAD: usize = 1400;
const SESSION_TIMEOUT_S: u64 = 60;

/// Accept RTSP connections until shutdown.
pub async fn serve(cams: Arc<Vec<Arc<SimCamera>>>, listener: TcpListener, mut shutdown: Shutdown) {
    loop {
        let (sock, peer) = tokio::select! {
            _ = shutdown.wait() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let cams = cams.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut stop2 = stop.clone();
            tokio::select! {
                _ = stop2.wait() => {}
                _ = connection(cams, sock, peer) => {}
            }
        });
    }
}

struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn cseq(&self) -> String {
        self.header("CSeq").unwrap_or("0").trim().to_string()
    }
}

/// What a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Live { cam: usize, profile: String },
    Replay { cam: usize, token: String },
}

fn target(url: &str) -> Option<Target> {
    let u = url::Url::parse(url).ok()?;
    let mut parts: Vec<&str> = u.path().split('/').filter(|s| !s.is_empty()).collect();
    if parts.last().is_some_and(|p| p.starts_with("trackID=")) {
        parts.pop();
    }
    let cam: usize = parts.first()?.strip_prefix("cam")?.parse().ok()?;
    match parts.as_slice() {
        [_, p @ ("main" | "sub")] => Some(Target::Live {
            cam,
            profile: p.to_string(),
        }),
        [_, "replay", token] => Some(Target::Replay {
            cam,
            token: token.to_string(),
        }),
        _ => None,
    }
}

enum Transport {
    Interleaved(u8),
    Udp {
        sock: Arc<UdpSocket>,
        to: SocketAddr,
    },
}

struct Session {
    id: String,
    target: Target,
    transport: Transport,
    ssrc: u32,
    streaming: Option<tokio::task::JoinHandle<()>>,
}

/// Outgoing bytes for the connection; `None` closes it.
type Out = mpsc::Sender<Option<Bytes>>;

async fn connection(cams: Arc<Vec<Arc<SimCamera>>>, sock: TcpStream, peer: SocketAddr) {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(64);
    let writer = tokio::spawn(async move {
        while let Some(Some(b)) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut rd = BufReader::new(rd);
    let mut session: Option<Session> = None;
    loop {
        let req = match tokio::time::timeout(
            Duration::from_secs(SESSION_TIMEOUT_S),
            read_request(&mut rd),
        )
        .await
        {
            Ok(Ok(Some(r))) => r,
            _ => break,
        };
        let (status, headers, body) = handle(&cams, &req, &mut session, peer, &tx).await;
        let mut out = format!("RTSP/1.0 {status}\r\nCSeq: {}\r\n", req.cseq());
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        if tx.send(Some(Bytes::from(out))).await.is_err() {
            break;
        }
        if req.method == "TEARDOWN" {
            break;
        }
    }
    if let Some(h) = session.and_then(|s| s.streaming) {
        h.abort();
    }
    let _ = tx.send(None).await;
    let _ = writer.await;
}

/// The next request; interleaved data from the client (RTCP) is skipped.
async fn read_request<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
) -> std::io::Result<Option<Request>> {
    loop {
        let buf = rd.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] == b'$' {
            let mut head = [0u8; 4];
            rd.read_exact(&mut head).await?;
            let len = u16::from_be_bytes([head[2], head[3]]) as usize;
            let mut skip = vec![0u8; len];
            rd.read_exact(&mut skip).await?;
            continue;
        }
        break;
    }
    let Some(head) = crate::recorder::rtsp::read_head(rd, MAX_HEAD).await? else {
        return Ok(None);
    };
    let mut first = head.first.split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let url = first.next().unwrap_or("").to_string();
    let len = head.content_length();
    let headers = head.headers;
    if len > 64 * 1024 {
        return Err(std::io::Error::other("request body too large"));
    }
    let mut body = vec![0u8; len];
    rd.read_exact(&mut body).await?;
    Ok(Some(Request {
        method,
        url,
        headers,
    }))
}

type Reply = (&'static str, Vec<(String, String)>, String);

fn reply(status: &'static str) -> Reply {
    (status, Vec::new(), String::new())
}

async fn handle(
    cams: &Arc<Vec<Arc<SimCamera>>>,
    req: &Request,
    session: &mut Option<Session>,
    peer: SocketAddr,
    tx: &Out,
) -> Reply {
    if req.method == "OPTIONS" {
        return (
            "200 OK",
            vec![(
                "Public".into(),
                "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER".into(),
            )],
            String::new(),
        );
    }
    if matches!(req.method.as_str(), "GET_PARAMETER" | "SET_PARAMETER") {
        return reply("200 OK");
    }
    let Some(t) = target(&req.url) else {
        return reply("404 Not Found");
    };
    let idx = match &t {
        Target::Live { cam, .. } | Target::Replay { cam, .. } => *cam,
    };
    let Some(cam) = cams.get(idx).cloned() else {
        return reply("404 Not Found");
    };
    if cam
        .down_until()
        .is_some_and(|until| cam.clock.now_utc() < until)
    {
        return reply("503 Service Unavailable");
    }
    // Require: only onvif-replay is known; a replay needs it.
    let required: Vec<&str> = req
        .header("Require")
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    if let Some(bad) = required.iter().find(|r| **r != "onvif-replay") {
        return (
            "551 Option not supported",
            vec![("Unsupported".into(), bad.to_string())],
            String::new(),
        );
    }
    let is_replay = matches!(t, Target::Replay { .. });
    if is_replay && !required.contains(&"onvif-replay") {
        return reply("400 Bad Request (replay needs Require: onvif-replay)");
    }
    if let Target::Replay { token, .. } = &t
        && (token != super::recordings::RECORDING_TOKEN || cam.quirks.no_recording)
    {
        return reply("404 Not Found");
    }
    if cam.quirks.auth != SimAuth::None {
        match super::http::check_digest_value(
            &cam,
            &req.method,
            &req.url,
            req.header("Authorization"),
        ) {
            super::http::DigestCheck::Ok => {}
            super::http::DigestCheck::Challenge { stale } => {
                return (
                    "401 Unauthorized",
                    vec![(
                        "WWW-Authenticate".into(),
                        super::http::challenge_value(&cam, stale),
                    )],
                    String::new(),
                );
            }
        }
    }
    match req.method.as_str() {
        "DESCRIBE" => {
            let c = clip_of(&cam);
            let base = req.url.trim_end_matches('/');
            let range = match &t {
                Target::Replay { .. } => {
                    let since = cam
                        .recording
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .since;
                    format!("a=range:clock={}-\r\n", clock_str(since))
                }
                Target::Live { .. } => String::new(),
            };
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=camfleet simulated camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n{range}m=video 0 RTP/AVP 96\r\na=rtpmap:96 {}\r\na=fmtp:96 {}\r\na=control:trackID=0\r\na=recvonly\r\n",
                c.rtpmap(),
                c.fmtp()
            );
            (
                "200 OK",
                vec![
                    ("Content-Type".into(), "application/sdp".into()),
                    ("Content-Base".into(), format!("{base}/")),
                ],
                sdp,
            )
        }
        "SETUP" => {
            let spec = req.header("Transport").unwrap_or("");
            let ssrc: u32 = rand::random();
            let (transport, answer) = if spec.contains("RTP/AVP/TCP") {
                let ch = param(spec, "interleaved")
                    .and_then(|v| v.split('-').next().and_then(|n| n.parse::<u8>().ok()))
                    .unwrap_or(0);
                (
                    Transport::Interleaved(ch),
                    format!(
                        "RTP/AVP/TCP;unicast;interleaved={ch}-{};ssrc={ssrc:08X}",
                        ch + 1
                    ),
                )
            } else {
                let Some(port) = param(spec, "client_port")
                    .and_then(|v| v.split('-').next().and_then(|n| n.parse::<u16>().ok()))
                else {
                    return reply("461 Unsupported Transport");
                };
                let Ok(sock) = UdpSocket::bind((peer.ip(), 0)).await else {
                    return reply("500 Internal Server Error");
                };
                let sp = sock.local_addr().map(|a| a.port()).unwrap_or(0);
                (
                    Transport::Udp {
                        sock: Arc::new(sock),
                        to: SocketAddr::new(peer.ip(), port),
                    },
                    format!(
                        "RTP/AVP;unicast;client_port={port}-{};server_port={sp}-{};ssrc={ssrc:08X}",
                        port + 1,
                        sp + 1
                    ),
                )
            };
            let id = format!("{:016X}", rand::random::<u64>());
            *session = Some(Session {
                id: id.clone(),
                target: t,
                transport,
                ssrc,
                streaming: None,
            });
            (
                "200 OK",
                vec![
                    ("Transport".into(), answer),
                    (
                        "Session".into(),
                        format!("{id};timeout={SESSION_TIMEOUT_S}"),
                    ),
                ],
                String::new(),
            )
        }
        "PLAY" => {
            let Some(s) = session.as_mut() else {
                return reply("455 Method Not Valid in This State");
            };
            if req
                .header("Session")
                .map(|v| v.split(';').next().unwrap_or("").trim())
                != Some(s.id.as_str())
            {
                return reply("454 Session Not Found");
            }
            if let Some(h) = s.streaming.take() {
                h.abort();
            }
            let seq0: u16 = rand::random();
            let ts0: u32 = rand::random();
            let sink = match &s.transport {
                Transport::Interleaved(ch) => Sink::Tcp(tx.clone(), *ch),
                Transport::Udp { sock, to } => Sink::Udp(sock.clone(), *to, tx.clone()),
            };
            let mut headers = vec![
                ("Session".into(), s.id.clone()),
                (
                    "RTP-Info".into(),
                    format!(
                        "url={}/trackID=0;seq={seq0};rtptime={ts0}",
                        req.url.trim_end_matches('/')
                    ),
                ),
            ];
            match s.target.clone() {
                Target::Live { .. } => {
                    headers.push(("Range".into(), "npt=now-".into()));
                    if !cam.quirks.rtsp_silent {
                        s.streaming = Some(tokio::spawn(live(cam, sink, s.ssrc, seq0, ts0)));
                    }
                }
                Target::Replay { .. } => {
                    let rec = {
                        let mut r = cam.recording.lock().unwrap_or_else(|e| e.into_inner());
                        let range = req.header("Range").map(parse_clock_range);
                        if let Some(Some(range)) = range {
                            r.served.push(range);
                        }
                        r.clone()
                    };
                    let (from, to) = match req.header("Range").map(parse_clock_range) {
                        Some(Some(r)) => r,
                        Some(None) => return reply("457 Invalid Range"),
                        None => (rec.since, None),
                    };
                    let (from, to) = if cam.quirks.ignore_range {
                        (rec.since, None)
                    } else {
                        (from, to)
                    };
                    let paced = !req
                        .header("Rate-Control")
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"));
                    // The card is stamped in the camera's own time.
                    let now = cam.camera_now();
                    let frames: Vec<_> = rec.frames(from, to, now).collect();
                    let Some(first) = frames.first() else {
                        return reply("457 Invalid Range");
                    };
                    headers.push((
                        "Range".into(),
                        format!(
                            "clock={}-{}",
                            clock_str(first.at),
                            to.map(clock_str).unwrap_or_default()
                        ),
                    ));
                    let cseq = req.cseq().parse::<u32>().unwrap_or(0) as u8;
                    s.streaming = Some(tokio::spawn(replay(
                        clip_of(&cam),
                        frames,
                        sink,
                        (s.ssrc, seq0, ts0),
                        ReplayMode { paced, cseq },
                    )));
                }
            }
            ("200 OK", headers, String::new())
        }
        "TEARDOWN" => {
            if let Some(h) = session.take().and_then(|s| s.streaming) {
                h.abort();
            }
            reply("200 OK")
        }
        _ => reply("405 Method Not Allowed"),
    }
}

fn param<'a>(spec: &'a str, name: &str) -> Option<&'a str> {
    spec.split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}

/// `clock=START-[END]`
fn parse_clock_range(v: &str) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let r = v.trim().strip_prefix("clock=")?;
    let (a, b) = r.split_once('-')?;
    let from = parse_clock(a)?;
    let to = if b.trim().is_empty() {
        None
    } else {
        Some(parse_clock(b)?)
    };
    Some((from, to))
}

enum Sink {
    Tcp(Out, u8),
    Udp(Arc<UdpSocket>, SocketAddr, Out),
}

impl Sink {
    async fn send(&self, pkt: Vec<u8>) -> bool {
        match self {
            Sink::Tcp(tx, ch) => {
                let mut framed = Vec::with_capacity(pkt.len() + 4);
                framed.push(b'$');
                framed.push(*ch);
                framed.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
                framed.extend_from_slice(&pkt);
                tx.send(Some(Bytes::from(framed))).await.is_ok()
            }
            Sink::Udp(sock, to, _) => sock.send_to(&pkt, to).await.is_ok(),
        }
    }

    /// Close the RTSP connection (the camera went away).
    async fn close(&self) {
        let tx = match self {
            Sink::Tcp(tx, _) | Sink::Udp(_, _, tx) => tx,
        };
        let _ = tx.send(None).await;
    }
}

/// The ONVIF replay header extension of one packet.
#[derive(Clone, Copy, Default)]
struct Ext {
    ntp: u64,
    clean: bool,
    end: bool,
    discontinuity: bool,
    terminal: bool,
    cseq: u8,
}

fn ntp_of(t: DateTime<Utc>) -> u64 {
    const NTP_UNIX_OFFSET: i64 = 2_208_988_800;
    let secs = (t.timestamp() + NTP_UNIX_OFFSET) as u64;
    let frac = (u64::from(t.timestamp_subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn rtp_packet(
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    ext: Option<Ext>,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload.len() + 28);
    p.push(0x80 | if ext.is_some() { 0x10 } else { 0 });
    p.push(if marker { 0x80 } else { 0 } | 96);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(e) = ext {
        p.extend_from_slice(&0xABACu16.to_be_bytes());
        p.extend_from_slice(&3u16.to_be_bytes());
        p.extend_from_slice(&e.ntp.to_be_bytes());
        let flags = (u8::from(e.clean) << 7)
            | (u8::from(e.end) << 6)
            | (u8::from(e.discontinuity) << 5)
            | (u8::from(e.terminal) << 4);
        p.extend_from_slice(&[flags, e.cseq, 0, 0]);
    }
    p.extend_from_slice(payload);
    p
}

/// RTP payloads of one access unit: single NAL units, and fragmentation
/// units for the large ones (H.264 FU-A, RFC 6184; H.265 FU, RFC 7798).
fn payloads(codec: VideoCodec, frame: &clip::Frame) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for nal in &frame.nals {
        if nal.len() <= MTU_PAYLOAD {
            out.push(nal.clone());
            continue;
        }
        let (header, kind, body): (Vec<u8>, u8, &[u8]) = match codec {
            VideoCodec::H264 => (vec![(nal[0] & 0xe0) | 28], nal[0] & 0x1f, &nal[1..]),
            VideoCodec::H265 => (
                vec![(nal[0] & 0x81) | (49 << 1), nal[1]],
                (nal[0] >> 1) & 0x3f,
                &nal[2..],
            ),
        };
        let chunks: Vec<&[u8]> = body.chunks(MTU_PAYLOAD - 3).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut fu = Vec::with_capacity(c.len() + 3);
            fu.extend_from_slice(&header);
            let mut h = kind;
            if i == 0 {
                h |= 0x80;
            }
            if i + 1 == chunks.len() {
                h |= 0x40;
            }
            fu.push(h);
            fu.extend_from_slice(c);
            out.push(fu);
        }
    }
    out
}

/// What a camera sends: the H.265 clip with the `h265` quirk.
fn clip_of(cam: &SimCamera) -> &'static clip::Clip {
    if cam.quirks.h265 {
        clip::clip_h265()
    } else {
        clip::clip()
    }
}

/// Counts a live stream while it plays (also when its task is aborted).
struct Playing(Arc<SimCamera>);

impl Playing {
    fn new(cam: &Arc<SimCamera>) -> Self {
        use std::sync::atomic::Ordering;
        let now = cam.live_streams.fetch_add(1, Ordering::AcqRel) + 1;
        cam.max_live_streams.fetch_max(now, Ordering::AcqRel);
        cam.live_plays.fetch_add(1, Ordering::AcqRel);
        Self(cam.clone())
    }
}

impl Drop for Playing {
    fn drop(&mut self) {
        self.0
            .live_streams
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

async fn live(cam: Arc<SimCamera>, sink: Sink, ssrc: u32, mut seq: u16, ts0: u32) {
    let _playing = Playing::new(&cam);
    let c = clip_of(&cam);
    let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut k: u64 = 0;
    loop {
        tick.tick().await;
        if cam
            .down_until()
            .is_some_and(|until| cam.clock.now_utc() < until)
        {
            sink.close().await;
            return;
        }
        let ts = ts0.wrapping_add((k as u32).wrapping_mul(FRAME_TICKS));
        let parts = payloads(c.codec, c.frame(k));
        let n = parts.len();
        for (i, p) in parts.into_iter().enumerate() {
            if !sink
                .send(rtp_packet(seq, ts, ssrc, i + 1 == n, None, &p))
                .await
            {
                return;
            }
            seq = seq.wrapping_add(1);
        }
        k += 1;
    }
}

/// How a replay is sent: pacing and the PLAY's CSeq for the extension.
struct ReplayMode {
    paced: bool,
    cseq: u8,
}

async fn replay(
    c: &'static clip::Clip,
    frames: Vec<super::recordings::ReplayFrame>,
    sink: Sink,
    (ssrc, mut seq, ts0): (u32, u16, u32),
    ReplayMode { paced, cseq }: ReplayMode,
) {
    let start = frames.first().map(|f| f.at).unwrap_or_default();
    let began = tokio::time::Instant::now();
    let total = frames.len();
    for (fi, f) in frames.into_iter().enumerate() {
        let offset_ms = (f.at - start).num_milliseconds().max(0);
        if paced {
            tokio::time::sleep_until(began + Duration::from_millis(offset_ms as u64)).await;
        }
        let ts = ts0.wrapping_add((offset_ms as u32).wrapping_mul(90));
        let parts = payloads(c.codec, c.frame(f.k));
        let n = parts.len();
        for (i, p) in parts.into_iter().enumerate() {
            let ext = Ext {
                ntp: ntp_of(f.at),
                clean: f.key,
                end: f.before_gap && i + 1 == n,
                discontinuity: f.after_gap && i == 0,
                terminal: fi + 1 == total && i + 1 == n,
                cseq,
            };
            if !sink
                .send(rtp_packet(seq, ts, ssrc, i + 1 == n, Some(ext), &p))
                .await
            {
                return;
            }
            seq = seq.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ranges_parse_in_the_basic_format() {
        let t = parse_clock("19961108T143720.25Z").unwrap();
        assert_eq!(t.to_rfc3339(), "1996-11-08T14:37:20.250+00:00");
        assert_eq!(clock_str(t), "19961108T143720.250Z");
        let (a, b) = parse_clock_range("clock=20261126T101500Z-20261126T101600Z").unwrap();
        assert_eq!((b.unwrap() - a).num_seconds(), 60);
        assert_eq!(
            parse_clock_range("clock=20261126T101500Z-").unwrap().1,
            None
        );
        assert!(parse_clock_range("npt=0-").is_none());
        assert!(parse_clock("2026-11-26T10:15:00Z").is_none());
    }

    #[test]
    fn urls_name_live_streams_and_replays() {
        assert_eq!(
            target("rtsp://127.0.0.1:8554/cam3/main/trackID=0"),
            Some(Target::Live {
                cam: 3,
                profile: "main".into()
            })
        );
        assert_eq!(
            target("rtsp://127.0.0.1:8554/cam0/replay/SD_Main"),
            Some(Target::Replay {
                cam: 0,
                token: "SD_Main".into()
            })
        );
        assert_eq!(target("rtsp://127.0.0.1:8554/elsewhere"), None);
    }

    #[test]
    fn large_nal_units_go_as_fu_a() {
        let f = clip::Frame {
            nals: vec![vec![0x65; 3000], vec![0x68, 1, 2]],
            key: true,
        };
        let p = payloads(VideoCodec::H264, &f);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0][0] & 0x1f, 28);
        assert_eq!(p[0][1], 0x80 | 5);
        assert_eq!(p[2][1], 0x40 | 5);
        assert_eq!(p[3], vec![0x68, 1, 2]);
        let total: usize = p[..3].iter().map(|x| x.len() - 2).sum();
        assert_eq!(total, 2999);
    }
}
