//! The simulated camera's HTTP side: SOAP device/media endpoints with real
//! authentication checks (WS-Security digest, `Created` window, nonce replay;
//! HTTP Digest MD5/SHA-256 with expiring nonces), snapshots, and the quirks
//! that make it misbehave on purpose.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::Digest as _;
use tokio::net::TcpListener;

use super::quirks::{Quirks, Refusal, SimAuth};
use super::state::{self, Addressing, CameraState, Prefixes, SimFault};
use crate::clock::SharedClock;
use crate::onvif::{ns, wsse};
use crate::shutdown::Shutdown;
use crate::xml;

const REALM: &str = "camfleet-sim";
/// WS-Security `Created` must be within this of the camera's clock.
const CREATED_WINDOW_SECS: i64 = 300;
/// HTTP Digest nonces expire after this.
const NONCE_TTL_SECS: i64 = 300;
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

pub struct SimCamera {
    pub state: Mutex<CameraState>,
    pub quirks: Quirks,
    pub addr: SocketAddr,
    /// The host:port this camera reports in the addresses it hands out.
    pub reported_authority: String,
    pub rtsp_authority: String,
    pub clock: SharedClock,
    /// SOAP and snapshot requests received (tests count retries with it).
    pub requests: std::sync::atomic::AtomicU64,
    /// Live RTSP streams playing now, and started in all (tests count
    /// the sessions a client holds).
    pub live_streams: std::sync::atomic::AtomicUsize,
    pub live_plays: std::sync::atomic::AtomicU64,
    /// The most live streams that ever played at once (a camera recorded
    /// by two cluster nodes at once shows 2).
    pub max_live_streams: std::sync::atomic::AtomicUsize,
    /// GetSystemDateAndTime requests: one per health poll (a camera polled
    /// by two nodes gets twice its share).
    pub time_requests: std::sync::atomic::AtomicU64,
    /// PullPoint subscriptions and the events queued on them.
    pub events: super::events::SimEvents,
    /// Failures tests ask for (writes that do not stick, firmware trouble).
    pub failures: Mutex<super::config::Failures>,
    /// Firmware uploaded and waiting for the reboot.
    pub pending_firmware: Mutex<Option<String>>,
    /// The on-board (SD card) recording, Profile G.
    pub recording: Mutex<super::recordings::SimRecording>,
    /// Where every exchange is recorded (conformance tests), if anywhere.
    pub capture: Option<super::capture::Capture>,
    down: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    nonce_secret: [u8; 16],
    seen_nonces: Mutex<VecDeque<String>>,
}

impl SimCamera {
    pub fn new(
        state: CameraState,
        quirks: Quirks,
        addr: SocketAddr,
        rtsp_port: u16,
        clock: SharedClock,
    ) -> Self {
        let host = if quirks.wrong_host {
            // Unreachable on purpose; a correct client rewrites it.
            "127.0.0.254".to_string()
        } else {
            addr.ip().to_string()
        };
        let reported_authority = if quirks.doubled_port {
            format!("{host}:{0}:{0}", addr.port())
        } else {
            format!("{host}:{}", addr.port())
        };
        let mut nonce_secret = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut nonce_secret);
        // A day on the card already, stamped by the camera's own clock.
        let mut state = state;
        if quirks.h265 {
            for p in &mut state.profiles {
                p.encoder.encoding = "H265".into();
            }
        }
        let card_since = clock.now_utc() + chrono::Duration::seconds(quirks.clock_skew_secs)
            - chrono::Duration::hours(24);
        Self {
            state: Mutex::new(state),
            rtsp_authority: format!("{host}:{rtsp_port}"),
            quirks,
            addr,
            reported_authority,
            clock,
            requests: std::sync::atomic::AtomicU64::new(0),
            live_streams: Default::default(),
            live_plays: Default::default(),
            max_live_streams: Default::default(),
            time_requests: Default::default(),
            events: Default::default(),
            failures: Default::default(),
            pending_firmware: Mutex::new(None),
            recording: Mutex::new(super::recordings::SimRecording::new(card_since)),
            capture: None,
            down: Mutex::new(None),
            nonce_secret,
            seen_nonces: Mutex::new(VecDeque::new()),
        }
    }

    pub fn camera_now(&self) -> chrono::DateTime<chrono::Utc> {
        let set = self.lock().clock_offset_s;
        self.clock.now_utc() + chrono::Duration::seconds(self.quirks.clock_skew_secs + set)
    }

    /// Down (rebooting) until this time of the injected clock, if at all.
    pub fn down_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        *self.down.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Go down for `secs` (a reboot); None: until told otherwise.
    pub fn go_down(&self, secs: Option<i64>) {
        let until = match secs {
            Some(s) => self.clock.now_utc() + chrono::Duration::seconds(s),
            None => chrono::DateTime::<chrono::Utc>::MAX_UTC,
        };
        *self.down.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
        self.events.forget_subscriptions();
    }

    /// Come back now (ends a "never returns" reboot).
    pub fn come_back(&self) {
        *self.down.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CameraState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn device_url(&self) -> String {
        format!("http://{}/onvif/device_service", self.addr)
    }
}

/// Accept connections until shutdown.
pub async fn serve(cam: Arc<SimCamera>, listener: TcpListener, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                let cam = cam.clone();
                let mut sd = shutdown.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(cam.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = sd.wait() => {}
                    }
                });
            }
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;
pub(super) type Resp = Response<Body>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A body of `total` bytes (or without end) produced chunk by chunk, so the
/// simulator never holds it in memory.
fn streamed(total: Option<u64>) -> Body {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b' '; CHUNK]);
    let mut sent = 0u64;
    let stream = futures::stream::poll_fn(move |_| {
        if total.is_some_and(|t| sent >= t) {
            return std::task::Poll::Ready(None);
        }
        sent += CHUNK as u64;
        std::task::Poll::Ready(Some(Ok::<_, Infallible>(hyper::body::Frame::data(
            chunk.clone(),
        ))))
    });
    http_body_util::StreamBody::new(stream).boxed()
}

/// What the simulator counted for this camera, as JSON (for test scripts
/// driving `camfleet simulate` from outside: the cluster test).
pub const STATS_PATH: &str = "/sim/stats";

fn stats(cam: &SimCamera) -> Resp {
    use std::sync::atomic::Ordering::Relaxed;
    let ev = cam.events.stats();
    let body = serde_json::json!({
        "event_pulls": ev.pulls,
        "event_subscriptions": ev.live,
        "requests": cam.requests.load(Relaxed),
        "time_requests": cam.time_requests.load(Relaxed),
        "live_streams": cam.live_streams.load(Relaxed),
        "max_live_streams": cam.max_live_streams.load(Relaxed),
        "live_plays": cam.live_plays.load(Relaxed),
    });
    let mut r = Response::new(full(Bytes::from(body.to_string())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}

pub(super) fn plain(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(cam: Arc<SimCamera>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    cam.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let sent = Mutex::new(None);
    let mut resp = handle_inner(&cam, req, &sent).await;
    if let (Some(capture), Some((request_type, request))) = (
        &cam.capture,
        sent.into_inner().unwrap_or_else(|e| e.into_inner()),
    ) && !cam.quirks.huge_body
        && !cam.quirks.endless_body
    {
        let (parts, body) = resp.into_parts();
        let response = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        capture.push(super::capture::Exchange {
            camera: cam.lock().index,
            transport: "http",
            path,
            request_type,
            request,
            status: parts.status.as_u16(),
            response_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            response: response.clone(),
        });
        resp = Response::from_parts(parts, full(response));
    }
    // Like real cameras, the Date header carries the camera's own clock.
    let date = cam
        .camera_now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(v) = date.parse() {
        resp.headers_mut().insert(http::header::DATE, v);
    }
    Ok(resp)
}

/// `sent` gets the request's Content-Type and body once they are read
/// (for the capture).
async fn handle_inner(
    cam: &Arc<SimCamera>,
    req: Request<Incoming>,
    sent: &Mutex<Option<(String, Bytes)>>,
) -> Resp {
    let cam = cam.clone();
    let q = &cam.quirks;
    if q.hang {
        // Accept, read nothing, answer never (until the client gives up).
        std::future::pending::<()>().await;
    }
    if q.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(q.slow_ms)).await;
    }
    let (parts, body) = req.into_parts();
    if let Some(until) = cam.down_until() {
        if cam.clock.now_utc() < until {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "rebooting");
        }
        cam.come_back();
        super::config::finish_reboot(&cam);
    }
    if parts.method == http::Method::GET && parts.uri.path() == STATS_PATH {
        return stats(&cam);
    }
    if parts.method == http::Method::GET {
        return snapshot(&cam, &parts);
    }
    if parts.uri.path() == super::config::UPLOAD_PATH {
        return super::config::firmware_upload(&cam, &parts, body).await;
    }
    if parts.method != http::Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // MTOM (the legacy firmware upgrade) may carry a whole image.
    let multipart = content_type.starts_with("multipart/related");
    let limit = if multipart {
        64 * 1024 * 1024
    } else {
        MAX_REQUEST_BYTES
    };
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    if cam.capture.is_some() {
        *sent.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((content_type.clone(), body.clone()));
    }
    let (body, attachments) = if multipart {
        match super::config::split_multipart(&content_type, &body) {
            Some(x) => x,
            None => return fault_response(&cam, &SimFault::invalid("unreadable MTOM request")),
        }
    } else {
        (body, Vec::new())
    };
    if q.huge_body || q.endless_body {
        // 100 MB, or no end at all, of whitespace before any XML.
        let total = q.huge_body.then_some(100 * 1024 * 1024);
        let mut r = Response::new(streamed(total));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/soap+xml".parse().expect("static"),
        );
        return r;
    }
    if q.garbage {
        let mut r = Response::new(full(Bytes::from_static(
            b"\x00\x17<html><body>Internal error\xff\xfe<<<</bodyy>",
        )));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/soap+xml".parse().expect("static"),
        );
        return r;
    }
    let Ok(root) = xml::parse(&body) else {
        return fault_response(&cam, &SimFault::invalid("request is not XML"));
    };
    let Some(op) = root.child_local("Body").and_then(|b| b.children.first()) else {
        return fault_response(&cam, &SimFault::invalid("no SOAP body"));
    };
    if op.local == "GetSystemDateAndTime" {
        cam.time_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let exempt = op.local == "GetSystemDateAndTime" && !q.gsdt_needs_auth;
    if !exempt {
        if matches!(
            q.auth,
            SimAuth::DigestMd5 | SimAuth::DigestSha256 | SimAuth::Both
        ) {
            match check_digest(&cam, &parts) {
                DigestCheck::Ok => {}
                DigestCheck::Challenge { stale } => return challenge(&cam, stale),
            }
        }
        if matches!(q.auth, SimAuth::WsSecurity | SimAuth::Both) {
            let header = root.child_local("Header");
            if !check_wsse(&cam, header) {
                return refusal_response(&cam);
            }
        }
    }
    let prefixes = Prefixes::for_quirks(q);
    let addressing = Addressing {
        http_authority: cam.reported_authority.clone(),
        rtsp_authority: cam.rtsp_authority.clone(),
    };
    let now = cam.camera_now();
    if let Some(r) = super::config::handle_write(&cam, op, &attachments) {
        return match r {
            Ok(body) => envelope_response(&cam, StatusCode::OK, &body),
            Err(f) => fault_response(&cam, &f),
        };
    }
    if !q.no_recording {
        let index = cam.lock().index;
        let r = cam
            .recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle(op, now, &cam.rtsp_authority, index);
        if let Some(r) = r {
            return match r {
                Ok(body) => envelope_response(&cam, StatusCode::OK, &body),
                Err(f) => fault_response(&cam, &f),
            };
        }
    }
    if op.local == "GetSystemBackup" && op.ns_uri() == Some(ns::TDS) {
        return system_backup(&cam);
    }
    if super::events::is_event_op(op) && !q.no_events {
        let header = root.child_local("Header");
        return match cam
            .events
            .handle(header, op, now, &cam.reported_authority, q.broken_relative)
            .await
        {
            Ok(body) => envelope_response(&cam, StatusCode::OK, &body),
            Err(f) => fault_response(&cam, &f),
        };
    }
    let result = {
        let st = cam.lock();
        state::handle(&st, q, &prefixes, &addressing, now, op)
    };
    match result {
        Ok(body) => envelope_response(&cam, StatusCode::OK, &body),
        Err(f) => fault_response(&cam, &f),
    }
}

/// GetSystemBackup: one file, the camera's settings as JSON; sent as an
/// MTOM attachment (as the specification has it), or inline base64 with
/// the `inline-backup` quirk.
fn system_backup(cam: &SimCamera) -> Resp {
    use base64::Engine as _;
    let file = {
        let st = cam.lock();
        serde_json::to_vec_pretty(&serde_json::json!({
            "model": st.model,
            "firmware": st.firmware,
            "hostname": st.hostname,
            "ntp": st.ntp_servers,
            "dns": st.dns_servers,
            "users": st.users.iter().map(|u| u.username.clone()).collect::<Vec<_>>(),
        }))
        .unwrap_or_default()
    };
    let tt = Prefixes::for_quirks(&cam.quirks).tt;
    let tds = Prefixes::for_quirks(&cam.quirks).tds;
    if cam.quirks.inline_backup {
        let data = base64::engine::general_purpose::STANDARD.encode(&file);
        return envelope_response(
            cam,
            StatusCode::OK,
            &format!(
                "<{tds}:GetSystemBackupResponse><{tds}:BackupFiles><{tt}:Name>settings.json</{tt}:Name><{tt}:Data>{data}</{tt}:Data></{tds}:BackupFiles></{tds}:GetSystemBackupResponse>"
            ),
        );
    }
    let root = envelope_text(
        cam,
        &format!(
            r#"<{tds}:GetSystemBackupResponse><{tds}:BackupFiles><{tt}:Name>settings.json</{tt}:Name><{tt}:Data xmlns:xmime="http://www.w3.org/2005/05/xmlmime" xmime:contentType="application/json"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:backup-1%40sim"/></{tt}:Data></{tds}:BackupFiles></{tds}:GetSystemBackupResponse>"#
        ),
    );
    let boundary = "sim-mtom-7f3a";
    let mut body = Vec::with_capacity(root.len() + file.len() + 400);
    body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <root@sim>\r\n\r\n").as_bytes());
    body.extend_from_slice(root.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <backup-1@sim>\r\n\r\n").as_bytes());
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut r = Response::new(full(Bytes::from(body)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        format!("multipart/related; type=\"application/xop+xml\"; start=\"<root@sim>\"; start-info=\"application/soap+xml\"; boundary=\"{boundary}\"")
            .parse()
            .expect("static"),
    );
    r
}

fn envelope_response(cam: &SimCamera, status: StatusCode, body: &str) -> Resp {
    let q = &cam.quirks;
    let s = envelope_text(cam, body);
    let ct = if q.soap11 {
        "text/xml; charset=utf-8"
    } else {
        "application/soap+xml; charset=utf-8"
    };
    let mut r = Response::new(full(s));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, ct.parse().expect("static"));
    r
}

fn envelope_text(cam: &SimCamera, body: &str) -> String {
    let q = &cam.quirks;
    let p = Prefixes::for_quirks(q);
    let env_ns = if q.soap11 { ns::SOAP11 } else { ns::SOAP12 };
    let mut s = String::with_capacity(body.len() + 600);
    if q.bom {
        s.push('\u{feff}');
    }
    s.push_str(&format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<{e}:Envelope xmlns:{e}="{env_ns}" xmlns:{tds}="{TDS}" xmlns:{trt}="{TRT}" xmlns:{tr2}="{TR2}" xmlns:{tt}="{TT}" xmlns:ter="{TER}">
  <{e}:Body>{body}</{e}:Body>
</{e}:Envelope>"#,
        e = p.env,
        tds = p.tds,
        trt = p.trt,
        tr2 = p.tr2,
        tt = p.tt,
        TDS = ns::TDS,
        TRT = ns::TRT,
        TR2 = ns::TR2,
        TT = ns::TT,
        TER = ns::TER,
    ));
    s
}

fn fault_response(cam: &SimCamera, f: &SimFault) -> Resp {
    let q = &cam.quirks;
    let e = Prefixes::for_quirks(q).env;
    let status = q.fault_status.unwrap_or(if f.sender { 400 } else { 500 });
    let reason = xml::escape(&f.reason);
    let body = if q.soap11 {
        let code = if f.sender { "Client" } else { "Server" };
        format!(
            "<{e}:Fault><faultcode>{e}:{code}.{sub}</faultcode><faultstring>{reason}</faultstring><detail><ter:Subcode>ter:{sub}</ter:Subcode></detail></{e}:Fault>",
            sub = f.subcode
        )
    } else {
        let code = if f.sender { "Sender" } else { "Receiver" };
        format!(
            "<{e}:Fault><{e}:Code><{e}:Value>{e}:{code}</{e}:Value><{e}:Subcode><{e}:Value>ter:{sub}</{e}:Value></{e}:Subcode></{e}:Code><{e}:Reason><{e}:Text xml:lang=\"en\">{reason}</{e}:Text></{e}:Reason></{e}:Fault>",
            sub = f.subcode
        )
    };
    envelope_response(
        cam,
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &body,
    )
}

/// A refused WS-Security request, answered the way the camera's
/// [`Refusal`] quirk says.
fn refusal_response(cam: &SimCamera) -> Resp {
    let e = Prefixes::for_quirks(&cam.quirks).env;
    let bare = |code: &str, lang: &str, reason: &str| {
        format!(
            "<{e}:Fault><{e}:Code><{e}:Value>{e}:{code}</{e}:Value></{e}:Code><{e}:Reason><{e}:Text xml:lang=\"{lang}\">{reason}</{e}:Text></{e}:Reason></{e}:Fault>"
        )
    };
    match cam.quirks.refusal {
        Refusal::Spec => fault_response(cam, &SimFault::not_authorized()),
        Refusal::Sender500 => envelope_response(
            cam,
            StatusCode::INTERNAL_SERVER_ERROR,
            &bare(
                "Sender",
                "en",
                "WS-Security header required but not provided",
            ),
        ),
        Refusal::Receiver400 => envelope_response(
            cam,
            StatusCode::BAD_REQUEST,
            &bare("Receiver", "en", "Action failed"),
        ),
        Refusal::German => envelope_response(
            cam,
            StatusCode::BAD_REQUEST,
            &bare("Sender", "de", "Zugriff verweigert: Anmeldung erforderlich"),
        ),
        Refusal::Html403 => {
            let mut r = Response::new(full(Bytes::from_static(
                b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>",
            )));
            *r.status_mut() = StatusCode::FORBIDDEN;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                "text/html".parse().expect("static"),
            );
            r
        }
        Refusal::Empty500 => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

fn check_wsse(cam: &SimCamera, header: Option<&xml::Element>) -> bool {
    let Some(tok) = header
        .and_then(|h| h.child_local("Security"))
        .and_then(|s| s.child_local("UsernameToken"))
    else {
        return false;
    };
    let (Some(user), Some(pw_el)) = (tok.text_at(&["Username"]), tok.child_local("Password"))
    else {
        return false;
    };
    let given = pw_el.text.trim();
    let created = tok.text_at(&["Created"]).unwrap_or_default();
    let nonce = tok.text_at(&["Nonce"]).unwrap_or_default();
    let passwords = cam.lock().passwords_of(&user);
    if passwords.is_empty() {
        return false;
    }
    let is_text = pw_el
        .attr("Type")
        .is_some_and(|t| t.ends_with("#PasswordText"));
    if is_text {
        return passwords.iter().any(|p| given == p);
    }
    if cam.quirks.strict_created && !created_is_strict(&created) {
        return false;
    }
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(&created) else {
        return false;
    };
    let skew = (t.with_timezone(&chrono::Utc) - cam.camera_now()).num_seconds();
    if skew.abs() > CREATED_WINDOW_SECS {
        return false;
    }
    if !passwords
        .iter()
        .any(|p| wsse::verify_digest(&nonce, &created, p, given))
    {
        return false;
    }
    // Replay protection: a nonce is good once.
    let mut seen = cam.seen_nonces.lock().unwrap_or_else(|e| e.into_inner());
    if seen.iter().any(|n| *n == nonce) {
        return false;
    }
    if seen.len() >= 64 {
        seen.pop_front();
    }
    seen.push_back(nonce);
    true
}

/// `2026-11-26T03:04:05Z` or `…05.123Z`: no offset, at most milliseconds.
pub fn created_is_strict(c: &str) -> bool {
    let Some(body) = c.strip_suffix('Z') else {
        return false;
    };
    match body.split_once('.') {
        Some((_, frac)) => frac.len() <= 3 && frac.chars().all(|ch| ch.is_ascii_digit()),
        None => true,
    }
}

pub(super) enum DigestCheck {
    Ok,
    Challenge { stale: bool },
}

fn make_nonce(cam: &SimCamera) -> String {
    let ts = cam.clock.now_utc().timestamp();
    format!("{ts:x}-{}", nonce_mac(cam, ts))
}

fn nonce_mac(cam: &SimCamera, ts: i64) -> String {
    let mut h = sha2::Sha256::new();
    h.update(cam.nonce_secret);
    h.update(ts.to_be_bytes());
    hex(&h.finalize()[..12])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `WWW-Authenticate` value of a Digest challenge.
pub(super) fn challenge_value(cam: &SimCamera, stale: bool) -> String {
    let nonce = make_nonce(cam);
    let stale = if stale { ", stale=true" } else { "" };
    match cam.quirks.auth {
        SimAuth::DigestSha256 => format!(
            r#"Digest realm="{REALM}", qop="auth", algorithm=SHA-256, nonce="{nonce}", opaque="sim"{stale}, Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}", opaque="sim"{stale}"#
        ),
        _ => format!(r#"Digest realm="{REALM}", qop="auth", nonce="{nonce}", opaque="sim"{stale}"#),
    }
}

pub(super) fn challenge(cam: &SimCamera, stale: bool) -> Resp {
    let value = challenge_value(cam, stale);
    let mut r = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        value
            .parse()
            .unwrap_or_else(|_| http::HeaderValue::from_static("Digest")),
    );
    r
}

pub(super) fn check_digest(cam: &SimCamera, parts: &http::request::Parts) -> DigestCheck {
    // The digest `uri` must be the request target exactly.
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let auth = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    check_digest_value(cam, parts.method.as_str(), &target, auth)
}

/// Check an `Authorization` value for `method` on `target` (HTTP: the path
/// and query; RTSP: the request URL as sent).
pub(super) fn check_digest_value(
    cam: &SimCamera,
    method: &str,
    target: &str,
    auth: Option<&str>,
) -> DigestCheck {
    let Some(auth) = auth else {
        return DigestCheck::Challenge { stale: false };
    };
    let Some(Ok(c)) = http_auth::parser::ChallengeParser::new(auth).next() else {
        return DigestCheck::Challenge { stale: false };
    };
    if !c.scheme.eq_ignore_ascii_case("Digest") {
        return DigestCheck::Challenge { stale: false };
    }
    let p = |k: &str| {
        c.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.to_unescaped())
            .unwrap_or_default()
    };
    let (user, nonce, uri, response) = (p("username"), p("nonce"), p("uri"), p("response"));
    let (nc, cnonce, qop, algorithm) = (p("nc"), p("cnonce"), p("qop"), p("algorithm"));
    if uri != target {
        return DigestCheck::Challenge { stale: false };
    }
    let Some((ts_hex, mac)) = nonce.split_once('-') else {
        return DigestCheck::Challenge { stale: false };
    };
    let Ok(ts) = i64::from_str_radix(ts_hex, 16) else {
        return DigestCheck::Challenge { stale: false };
    };
    if nonce_mac(cam, ts) != mac {
        return DigestCheck::Challenge { stale: false };
    }
    let passwords = cam.lock().passwords_of(&user);
    let h = |s: &str| -> String {
        if algorithm.eq_ignore_ascii_case("SHA-256") {
            hex(&sha2::Sha256::digest(s.as_bytes()))
        } else {
            hex(&md5::Md5::digest(s.as_bytes()))
        }
    };
    let ha2 = h(&format!("{method}:{uri}"));
    let matches = passwords.iter().any(|password| {
        let ha1 = h(&format!("{user}:{REALM}:{password}"));
        let expected = if qop.is_empty() {
            h(&format!("{ha1}:{nonce}:{ha2}"))
        } else {
            h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
        };
        expected == response
    });
    if !matches {
        return DigestCheck::Challenge { stale: false };
    }
    if cam.clock.now_utc().timestamp() - ts > NONCE_TTL_SECS {
        return DigestCheck::Challenge { stale: true };
    }
    DigestCheck::Ok
}

fn snapshot(cam: &SimCamera, parts: &http::request::Parts) -> Resp {
    if !parts.uri.path().starts_with("/snapshot/") {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if cam.quirks.auth != SimAuth::None
        && let DigestCheck::Challenge { stale } = check_digest(cam, parts)
    {
        return challenge(cam, stale);
    }
    let index = cam.lock().index;
    let mut r = Response::new(full(state::snapshot_bmp(index)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "image/bmp".parse().expect("static"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_created_rules() {
        assert!(created_is_strict("2026-11-26T03:04:05Z"));
        assert!(created_is_strict("2026-11-26T03:04:05.123Z"));
        assert!(!created_is_strict("2026-11-26T03:04:05+00:00"));
        assert!(!created_is_strict("2026-11-26T03:04:05.123456789Z"));
    }
}
