//! A conversation with one device: its endpoints, credentials, detected auth
//! mode, clock anchor and quirks seen. Every typed operation goes through
//! [`DeviceSession::call`].
//!
//! Auth detection (first authenticated call): send without credentials and
//! read what the device asks for: success → no auth; HTTP 401 with a
//! challenge → Digest (then WS-Security too if the SOAP layer still refuses);
//! a SOAP auth fault → WS-Security (then Digest too if HTTP refuses). An
//! unauthenticated request is not a wrong password, so this never counts
//! toward a lockout. A refused password is reported once, never retried in a
//! loop; a WS-Security refusal first re-reads the camera clock, once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use http_auth::PasswordClient;
use url::Url;

use super::conn::DeviceConn;
use super::envelope::{self, Reply, SoapVersion};
use super::error::{OnvifError, OnvifResult};
use super::fault::{self, Fault, FaultClass, classify};
use super::httpauth;
use super::ops::{self, Operation, Service};
use super::time::{ClockAnchor, ClockJump, parse_system_date_time};
use super::transport::{Transport, TransportError};
use super::types::{AuthMode, CameraTime, Quirk};
use super::wsse;
use crate::clock::SharedClock;
use crate::xml::Element;

/// A clock jump larger than this between two readings is reported.
pub const CLOCK_JUMP_THRESHOLD_MS: i64 = 5_000;
/// Offsets larger than this are recorded as a quirk.
pub const CLOCK_SKEW_QUIRK_MS: i64 = 5_000;

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, even in debug output.
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// Per-device behaviour chosen by an operator or remembered from detection.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DevicePolicy {
    /// Known auth mode; `None` means detect on first use.
    pub auth_mode: Option<AuthMode>,
    /// Send the password in clear text inside WS-Security. Off unless enabled.
    pub allow_password_text: bool,
    /// Answer a Basic challenge (snapshots on some cameras).
    pub allow_basic: bool,
    /// Per-request deadline override for slow devices.
    pub timeout_ms: Option<u64>,
}

/// What one exchange produced, before classification.
enum Outcome {
    Body(Element),
    Fault {
        status: u16,
        fault: Option<Fault>,
    },
    /// HTTP 401 with a challenge, to a request without HTTP credentials.
    Challenge(http::HeaderMap),
    /// HTTP 401 to a request that answered a fresh challenge: wrong credentials.
    Refused,
}

#[derive(Default)]
struct State {
    auth_mode: Option<AuthMode>,
    anchor: Option<ClockAnchor>,
    digest: Option<PasswordClient>,
    /// The stored Digest client was built from a challenge no request has
    /// answered yet (a refusal to it means wrong credentials).
    digest_fresh: bool,
    endpoints: HashMap<Service, Url>,
    quirks: BTreeSet<Quirk>,
    jumps: Vec<ClockJump>,
    /// The HTTP `Date` of the last answer, with our monotonic time then.
    http_date: Option<(chrono::DateTime<chrono::Utc>, Duration)>,
}

/// Where one call goes: the URL, WS-Addressing (with the ReferenceParameters
/// to echo) when the call needs it, and its deadline.
struct Dest {
    url: Url,
    addressing: Option<Vec<String>>,
    timeout: Option<Duration>,
    /// Sent as MTOM/XOP attachments, the first as
    /// `cid:attachment@camfleet`, the others by [`attachment_cid`].
    attachments: Vec<bytes::Bytes>,
}

/// The Content-ID of the (first) MTOM attachment, for
/// `xop:Include href="cid:…"`.
pub const ATTACHMENT_CID: &str = "attachment@camfleet";

/// The Content-ID of the `i`-th attachment of an MTOM request.
pub fn attachment_cid(i: usize) -> String {
    if i == 0 {
        ATTACHMENT_CID.to_string()
    } else {
        format!("attachment-{i}@camfleet")
    }
}

/// An MTOM (SOAP 1.2 + XOP) multipart body: the envelope, then each
/// attachment. Returns (Content-Type, body).
fn mtom(envelope: &str, attachments: &[bytes::Bytes], action: &str) -> (String, bytes::Bytes) {
    let boundary = format!("uuid:{}", uuid::Uuid::new_v4());
    let ct = format!(
        "multipart/related; type=\"application/xop+xml\"; start=\"<root@camfleet>\"; start-info=\"application/soap+xml\"; boundary=\"{boundary}\"; action=\"{action}\""
    );
    let size: usize = attachments.iter().map(|a| a.len() + 160).sum();
    let mut b = Vec::with_capacity(envelope.len() + size + 512);
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <root@camfleet>\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(envelope.as_bytes());
    for (i, a) in attachments.iter().enumerate() {
        b.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n",
                attachment_cid(i)
            )
            .as_bytes(),
        );
        b.extend_from_slice(a);
    }
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (ct, bytes::Bytes::from(b))
}

pub struct DeviceSession {
    transport: Transport,
    conn: DeviceConn,
    clock: SharedClock,
    creds: Option<Credentials>,
    device_url: Url,
    policy: DevicePolicy,
    state: Mutex<State>,
}

impl std::fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSession")
            .field("device_url", &self.device_url.as_str())
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl DeviceSession {
    pub fn new(
        transport: Transport,
        clock: SharedClock,
        device_url: Url,
        creds: Option<Credentials>,
        policy: DevicePolicy,
    ) -> Self {
        let state = State {
            auth_mode: policy.auth_mode,
            ..State::default()
        };
        Self {
            conn: DeviceConn::new(transport.clone()),
            transport,
            clock,
            creds,
            device_url,
            policy,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn device_url(&self) -> &Url {
        &self.device_url
    }

    /// Close the camera connection this session keeps (reopened on the
    /// next request): the event scheduler does between two short pulls.
    pub fn release_connection(&self) {
        self.conn.release();
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.creds.as_ref()
    }

    pub fn policy(&self) -> &DevicePolicy {
        &self.policy
    }

    pub fn auth_mode(&self) -> Option<AuthMode> {
        self.lock().auth_mode
    }

    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.lock().anchor.map(|a| a.offset_ms)
    }

    pub fn quirks(&self) -> Vec<Quirk> {
        self.lock().quirks.iter().cloned().collect()
    }

    /// Start from what earlier sessions learned about this device.
    pub fn seed_quirks(&self, quirks: impl IntoIterator<Item = Quirk>) {
        self.lock().quirks.extend(quirks);
    }

    pub fn note_quirk(&self, q: Quirk) {
        self.lock().quirks.insert(q);
    }

    /// Clock jumps seen since the last call (drained).
    pub fn take_clock_jumps(&self) -> Vec<ClockJump> {
        std::mem::take(&mut self.lock().jumps)
    }

    pub fn set_endpoint(&self, service: Service, url: Url) {
        self.lock().endpoints.insert(service, url);
    }

    pub fn endpoint(&self, service: Service) -> Option<Url> {
        self.lock().endpoints.get(&service).cloned()
    }

    /// The camera's current time by our anchor, or our own time before a sync.
    pub fn camera_now(&self) -> chrono::DateTime<chrono::Utc> {
        let anchor = self.lock().anchor;
        match anchor {
            Some(a) => a.camera_now(self.clock.monotonic()),
            None => self.clock.now_utc(),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.policy.timeout_ms.map(Duration::from_millis)
    }

    fn dest_for(&self, op: Operation) -> Dest {
        Dest {
            url: self.url_for(op.service),
            addressing: None,
            timeout: self.timeout(),
            attachments: Vec::new(),
        }
    }

    fn url_for(&self, service: Service) -> Url {
        if service == Service::Device {
            return self.device_url.clone();
        }
        // Many cameras answer every service at the device address; use it
        // when the device did not advertise the service.
        self.endpoint(service)
            .unwrap_or_else(|| self.device_url.clone())
    }

    /// Read the camera's clock (no auth first, with auth if refused) and
    /// re-anchor. Reports a jump if the clock moved against the old anchor.
    pub async fn sync_clock(&self) -> OnvifResult<CameraTime> {
        let op = ops::GET_SYSTEM_DATE_AND_TIME;
        let body = format!(
            r#"<tds:GetSystemDateAndTime xmlns:tds="{}"/>"#,
            op.namespace
        );
        let dest = self.dest_for(op);
        let el = match self.exchange(op, &body, AuthMode::None, &dest).await? {
            Outcome::Body(el) => el,
            other => {
                let err = self.outcome_error(op, other);
                if err.class != FaultClass::Unauthorized || self.creds.is_none() {
                    return Err(err);
                }
                self.note_quirk(Quirk::DateTimeNeedsAuth);
                // Without the camera's clock our `Created` may be far off. The
                // refusal's HTTP Date header is the camera's clock to the
                // second: anchor on it provisionally when we have nothing better.
                self.anchor_on_http_date();
                self.call_inner(op, &body, false, &dest).await?
            }
        };
        let t = parse_system_date_time(&el).ok_or_else(|| {
            OnvifError::malformed(op.name, "no valid UTCDateTime or LocalDateTime")
        })?;
        if t.derived_from_local {
            self.note_quirk(Quirk::UtcFromLocalTime);
        }
        let mono = self.clock.monotonic();
        let anchor = ClockAnchor::new(t.utc, self.clock.now_utc(), mono);
        let mut st = self.lock();
        if let Some(old) = st.anchor {
            let expected = old.camera_now(mono);
            let jump_ms = (t.utc - expected).num_milliseconds();
            if jump_ms.abs() > CLOCK_JUMP_THRESHOLD_MS {
                st.jumps.push(ClockJump {
                    expected,
                    found: t.utc,
                    jump_ms,
                });
            }
        }
        if anchor.offset_ms.abs() > CLOCK_SKEW_QUIRK_MS {
            st.quirks.retain(|q| !matches!(q, Quirk::ClockSkew { .. }));
            st.quirks.insert(Quirk::ClockSkew {
                offset_ms: anchor.offset_ms,
            });
        }
        st.anchor = Some(anchor);
        Ok(t)
    }

    fn anchor_on_http_date(&self) {
        let mut st = self.lock();
        if st.anchor.is_some() {
            return;
        }
        if let Some((date, mono)) = st.http_date {
            let local = self.clock.now_utc()
                - chrono::Duration::from_std(self.clock.monotonic().saturating_sub(mono))
                    .unwrap_or_default();
            st.anchor = Some(ClockAnchor::new(date, local, mono));
            st.quirks.insert(Quirk::ClockFromHttpDate);
        }
    }

    /// Call an operation with authentication as the device needs it.
    pub async fn call(&self, op: Operation, body: &str) -> OnvifResult<Element> {
        self.call_inner(op, body, true, &self.dest_for(op)).await
    }

    /// Call an operation at an address of the camera's choosing (an event
    /// subscription) with WS-Addressing headers: `To`, `Action`, a fresh
    /// `MessageID`, and the subscription's ReferenceParameters echoed, as
    /// the WS-BaseNotification operations require. `timeout` replaces the
    /// device's deadline (a PullMessages long-poll outlasts it).
    pub async fn call_addressed(
        &self,
        op: Operation,
        body: &str,
        to: &Url,
        reference_parameters: &[String],
        timeout: Option<Duration>,
    ) -> OnvifResult<Element> {
        let dest = Dest {
            url: to.clone(),
            addressing: Some(reference_parameters.to_vec()),
            timeout: timeout.or(self.timeout()),
            attachments: Vec::new(),
        };
        self.call_inner(op, body, true, &dest).await
    }

    /// Call with binary attachments sent by MTOM/XOP (the body refers to
    /// the `i`-th as `cid:` [`attachment_cid`]`(i)`); e.g. the legacy
    /// UpgradeSystemFirmware, RestoreSystem.
    pub async fn call_mtom(
        &self,
        op: Operation,
        body: &str,
        attachments: Vec<bytes::Bytes>,
        timeout: Option<Duration>,
    ) -> OnvifResult<Element> {
        let dest = Dest {
            url: self.url_for(op.service),
            addressing: None,
            timeout: timeout.or(self.timeout()),
            attachments,
        };
        self.call_inner(op, body, true, &dest).await
    }

    async fn call_inner(
        &self,
        op: Operation,
        body: &str,
        may_resync: bool,
        dest: &Dest,
    ) -> OnvifResult<Element> {
        if self.creds.is_none() {
            return match self.exchange(op, body, AuthMode::None, dest).await? {
                Outcome::Body(el) => Ok(el),
                other => Err(self.outcome_error(op, other)),
            };
        }
        let mode = match self.auth_mode() {
            Some(m) => m,
            None => return self.detect_and_call(op, body, may_resync, dest).await,
        };
        match self.exchange(op, body, mode, dest).await? {
            Outcome::Body(el) => Ok(el),
            other => {
                let err = self.outcome_error(op, other);
                if mode == AuthMode::None {
                    // Anonymous worked for something else. Whatever this
                    // answer says, it may mean "authenticate": climb the
                    // ladder unless a subcode names another cause.
                    if err.fault.as_ref().is_some_and(fault::names_non_auth_cause) {
                        return Err(err);
                    }
                    self.lock().auth_mode = None;
                    return self.detect_and_call(op, body, may_resync, dest).await;
                }
                if err.class != FaultClass::Unauthorized {
                    return Err(err);
                }
                if mode.uses_wsse() && may_resync && self.resync_after_auth_fault().await {
                    return match self.exchange(op, body, mode, dest).await? {
                        Outcome::Body(el) => Ok(el),
                        other => Err(self.outcome_error(op, other)),
                    };
                }
                Err(err)
            }
        }
    }

    /// Re-read the clock after a WS-Security refusal. True when the anchor
    /// was refreshed (so one retry makes sense).
    async fn resync_after_auth_fault(&self) -> bool {
        Box::pin(self.sync_clock()).await.is_ok()
    }

    /// The authentication ladder, for a device whose mode is not known yet.
    ///
    /// An anonymous request first. Any answer to it other than success or
    /// a transport failure — a fault with or without subcode, in any
    /// wording or language, a 400/401/403/500 with or without a body —
    /// leads on, since cameras word "authenticate first" in every way:
    /// WS-Security, then HTTP Digest, then both, each once (HTTP Digest
    /// first when the anonymous answer was a Digest challenge), with one
    /// clock re-read after the first WS-Security refusal. The first mode
    /// that succeeds is kept. An authenticated answer that says the
    /// operation is not offered, or whose subcode names another cause
    /// (invalid argument), ends the ladder with that answer. When every
    /// mode fails, the error is `unauthorized` and
    /// names each mode's answer.
    async fn detect_and_call(
        &self,
        op: Operation,
        body: &str,
        may_resync: bool,
        dest: &Dest,
    ) -> OnvifResult<Element> {
        let mut answers: Vec<(AuthMode, OnvifError)> = Vec::new();
        let ladder = match self.exchange(op, body, AuthMode::None, dest).await? {
            Outcome::Body(el) => {
                self.lock().auth_mode = Some(AuthMode::None);
                return Ok(el);
            }
            Outcome::Challenge(h) => {
                self.take_challenge(&h);
                answers.push((
                    AuthMode::None,
                    self.outcome_error(op, Outcome::Challenge(h)),
                ));
                [AuthMode::HttpDigest, AuthMode::WsSecurity, AuthMode::Both]
            }
            other => {
                answers.push((AuthMode::None, self.outcome_error(op, other)));
                [AuthMode::WsSecurity, AuthMode::HttpDigest, AuthMode::Both]
            }
        };
        let mut resynced = !may_resync;
        for mode in ladder {
            loop {
                let outcome = match self.exchange(op, body, mode, dest).await {
                    Ok(o) => o,
                    Err(e) if matches!(e.class, FaultClass::Transport | FaultClass::Timeout) => {
                        return Err(e);
                    }
                    // A 401 with no challenge we can answer (Basic not
                    // allowed, say): this mode's answer.
                    Err(e) => {
                        answers.push((mode, e));
                        break;
                    }
                };
                match outcome {
                    Outcome::Body(el) => {
                        self.lock().auth_mode = Some(mode);
                        return Ok(el);
                    }
                    Outcome::Challenge(h) => {
                        // The HTTP layer wants Digest as well: kept for the
                        // modes that use it.
                        self.take_challenge(&h);
                        answers.push((mode, self.outcome_error(op, Outcome::Challenge(h))));
                        break;
                    }
                    other => {
                        let e = self.outcome_error(op, other);
                        // Past authentication: the operation is not offered
                        // (by subcode or in words), or its arguments were
                        // refused by subcode. Another mode would hear the same.
                        if e.class == FaultClass::NotSupported
                            || e.fault.as_ref().is_some_and(fault::names_non_auth_cause)
                        {
                            return Err(e);
                        }
                        if mode.uses_wsse() && !resynced {
                            resynced = true;
                            if self.resync_after_auth_fault().await {
                                continue;
                            }
                        }
                        answers.push((mode, e));
                        break;
                    }
                }
            }
        }
        Err(ladder_error(op, &answers))
    }

    /// One request/answer, including the Digest handshake when `mode` uses
    /// it. Transport failures come back as errors; everything the device said
    /// comes back as an [`Outcome`].
    async fn exchange(
        &self,
        op: Operation,
        body: &str,
        mode: AuthMode,
        dest: &Dest,
    ) -> OnvifResult<Outcome> {
        let url = &dest.url;
        let content_type = format!(
            "application/soap+xml; charset=utf-8; action=\"{}\"",
            op.action()
        );
        let mut fresh_challenge = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let envelope_text = self.envelope(op, body, mode, dest);
            let (content_type, payload) = if dest.attachments.is_empty() {
                (content_type.clone(), bytes::Bytes::from(envelope_text))
            } else {
                mtom(&envelope_text, &dest.attachments, &op.action())
            };
            let authorization = if mode.uses_digest() {
                let (a, fresh) = self.digest_authorization(url, &payload);
                fresh_challenge |= fresh;
                a
            } else {
                None
            };
            let reply = self
                .conn
                .post(
                    url,
                    &content_type,
                    payload,
                    authorization.as_deref(),
                    dest.timeout,
                )
                .await
                .map_err(|e| transport_error(op, e))?;
            if let Some(d) = reply
                .headers
                .get(http::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            {
                self.lock().http_date =
                    Some((d.with_timezone(&chrono::Utc), self.clock.monotonic()));
            }
            // A 401 without a challenge is a SOAP fault sent with status
            // 401 (some firmware does that for every fault): read it as one.
            if reply.status == 401 && reply.headers.contains_key(http::header::WWW_AUTHENTICATE) {
                if !mode.uses_digest() {
                    return Ok(Outcome::Challenge(reply.headers));
                }
                if attempts >= 3 {
                    return Ok(Outcome::Refused);
                }
                let used_cached = authorization.is_some() && !fresh_challenge;
                match httpauth::choose(&reply.headers, self.policy.allow_basic) {
                    Ok((client, _scheme)) => {
                        let stale = httpauth::is_stale(&client);
                        {
                            let mut st = self.lock();
                            st.digest = Some(client);
                            st.digest_fresh = true;
                        }
                        // Retry when we had not answered a challenge yet, when
                        // our cached nonce expired, or the server wants a fresh one.
                        if authorization.is_none() || used_cached || stale {
                            continue;
                        }
                        return Ok(Outcome::Refused);
                    }
                    Err(e) => {
                        return Err(OnvifError {
                            class: FaultClass::Unauthorized,
                            operation: op.name.into(),
                            message: format!("HTTP 401 with no usable challenge: {e}"),
                            http_status: Some(401),
                            fault: None,
                        });
                    }
                }
            }
            // MTOM answers (GetSystemBackup): the envelope is the root
            // part; attachments are inlined where they are referenced.
            let content_type = reply
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if content_type
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/related")
            {
                let Some((root, parts)) = super::mtom::split_multipart(content_type, &reply.body)
                else {
                    return Err(OnvifError::malformed(op.name, "unreadable MTOM answer"));
                };
                return Ok(match self.read_reply(op, reply.status, &root) {
                    Outcome::Body(mut el) => {
                        super::mtom::inline_attachments(&mut el, &parts);
                        Outcome::Body(el)
                    }
                    other => other,
                });
            }
            return Ok(self.read_reply(op, reply.status, &reply.body));
        }
    }

    fn read_reply(&self, op: Operation, status: u16, body: &[u8]) -> Outcome {
        match envelope::parse(body) {
            Ok(parsed) => {
                if parsed.version == SoapVersion::Soap11 {
                    self.note_quirk(Quirk::Soap11Answers);
                }
                match parsed.reply {
                    Reply::Body(el) if (200..300).contains(&status) => Outcome::Body(el),
                    Reply::Body(_) => Outcome::Fault {
                        status,
                        fault: None,
                    },
                    Reply::Fault(f) => {
                        if status != 400 && status != 500 {
                            self.note_quirk(Quirk::FaultStatus { status });
                        }
                        Outcome::Fault {
                            status,
                            fault: Some(f),
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(op = op.name, status, error = %e, "unreadable answer");
                if (200..300).contains(&status) {
                    // A 2xx we cannot read is malformed, not a device fault.
                    Outcome::Fault {
                        status: 0,
                        fault: Some(Fault {
                            code: "Malformed".into(),
                            reason: e.to_string(),
                            ..Fault::default()
                        }),
                    }
                } else {
                    Outcome::Fault {
                        status,
                        fault: None,
                    }
                }
            }
        }
    }

    fn envelope(&self, op: Operation, body: &str, mode: AuthMode, dest: &Dest) -> String {
        let mut header = match (&self.creds, mode.uses_wsse()) {
            (Some(c), true) => wsse::security_header(
                &c.username,
                &c.password,
                self.camera_now(),
                self.policy.allow_password_text,
            ),
            _ => String::new(),
        };
        if let Some(params) = &dest.addressing {
            header.push_str(&envelope::addressing(
                &op.action(),
                dest.url.as_str(),
                &uuid::Uuid::new_v4().to_string(),
                params,
            ));
        }
        envelope::request(&header, body)
    }

    /// The Authorization header from the stored Digest client, and whether
    /// that client's challenge was fresh (unanswered until now).
    fn digest_authorization(&self, url: &Url, body: &[u8]) -> (Option<String>, bool) {
        let Some(creds) = self.creds.as_ref() else {
            return (None, false);
        };
        let mut st = self.lock();
        let fresh = std::mem::take(&mut st.digest_fresh);
        let Some(client) = st.digest.as_mut() else {
            return (None, false);
        };
        let header = httpauth::respond(
            client,
            &creds.username,
            &creds.password,
            "POST",
            &httpauth::request_target(url),
            Some(body),
        )
        .ok();
        (header, fresh)
    }

    /// Keep the challenge from an anonymous 401 so the next request answers
    /// it straight away instead of asking again.
    fn take_challenge(&self, h: &http::HeaderMap) {
        if let Ok((client, _)) = httpauth::choose(h, self.policy.allow_basic) {
            let mut st = self.lock();
            st.digest = Some(client);
            st.digest_fresh = true;
        }
    }

    fn outcome_error(&self, op: Operation, o: Outcome) -> OnvifError {
        match o {
            Outcome::Body(_) => OnvifError::malformed(op.name, "unexpected body"),
            Outcome::Challenge(_) | Outcome::Refused => OnvifError {
                class: FaultClass::Unauthorized,
                operation: op.name.into(),
                message: "HTTP 401: credentials refused".into(),
                http_status: Some(401),
                fault: None,
            },
            Outcome::Fault { status: 0, fault } => OnvifError {
                class: FaultClass::Malformed,
                operation: op.name.into(),
                message: fault.map(|f| f.reason).unwrap_or_default(),
                http_status: None,
                fault: None,
            },
            Outcome::Fault { status, fault } => {
                let class = classify(status, fault.as_ref());
                let message = match &fault {
                    Some(f) => f.to_string(),
                    None => format!("HTTP {status} without a SOAP fault"),
                };
                OnvifError {
                    class,
                    operation: op.name.into(),
                    message,
                    http_status: Some(status),
                    fault,
                }
            }
        }
    }
}

fn transport_error(op: Operation, e: TransportError) -> OnvifError {
    OnvifError::new(e.class(), op.name, e.to_string())
}

/// What a failed authentication ladder reports: `unauthorized` (or
/// `malformed` when every answer was an unreadable success), with each
/// mode's answer in the order tried, e.g. "no authentication mode was
/// accepted: anonymous: HTTP 500 without a SOAP fault; ws_security: Sender:
/// Nicht autorisiert; http_digest: HTTP 401: credentials refused; …".
fn ladder_error(op: Operation, answers: &[(AuthMode, OnvifError)]) -> OnvifError {
    let mut message = String::from("no authentication mode was accepted");
    for (i, (mode, e)) in answers.iter().enumerate() {
        message.push_str(if i == 0 { ": " } else { "; " });
        message.push_str(if *mode == AuthMode::None {
            "anonymous"
        } else {
            mode.as_str()
        });
        message.push_str(": ");
        let text: String = e.message.chars().take(200).collect();
        message.push_str(if text.is_empty() {
            "(empty answer)"
        } else {
            &text
        });
    }
    let last = answers.last().map(|(_, e)| e);
    // A device that answered every mode with an unreadable 2xx is broken,
    // not refusing: no refusal comes as a success status.
    let class = if answers
        .iter()
        .all(|(_, e)| e.class == FaultClass::Malformed)
    {
        FaultClass::Malformed
    } else {
        FaultClass::Unauthorized
    };
    OnvifError {
        class,
        operation: op.name.into(),
        message,
        http_status: last.and_then(|e| e.http_status),
        fault: last.and_then(|e| e.fault.clone()),
    }
}
