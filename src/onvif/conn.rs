//! One camera, one HTTP/1.1 connection, one request at a time.
//!
//! A device session sends its SOAP requests strictly in sequence, so it owns
//! a keep-alive connection instead of checking one out of a shared pool:
//! there is no race between a connection going back to the pool and the next
//! request opening a second one, no hop to a separate connection task, and
//! never two requests in flight to one camera (cheap cameras and NVRs fall
//! over when that happens). The connection is driven inside the caller's own
//! task. HTTPS devices go through the fleet's pooled TLS client instead.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use super::transport::{BodyBuf, HttpReply, Transport, TransportError, error_chain};

type Io = TokioIo<TcpStream>;

struct Live {
    /// `host:port` this connection goes to.
    authority: String,
    sender: SendRequest<Full<Bytes>>,
    conn: Connection<Io, Full<Bytes>>,
    /// Set while a request is outstanding; a connection found busy was
    /// abandoned mid-request (deadline) and cannot be reused.
    busy: bool,
}

/// The connection a [`super::DeviceSession`] talks through.
pub struct DeviceConn {
    transport: Transport,
    slot: tokio::sync::Mutex<Option<Live>>,
}

impl DeviceConn {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Close the kept connection (the next request opens a new one): for
    /// callers that talk to the camera seldom and should not hold a socket
    /// and its buffers in between. A request in flight keeps it.
    pub fn release(&self) {
        if let Ok(mut slot) = self.slot.try_lock() {
            *slot = None;
        }
    }

    /// POST a SOAP body. Plain HTTP goes over this device's own connection
    /// (opened on first use, reopened when the camera closed it); HTTPS goes
    /// through the fleet's pooled client.
    pub async fn post(
        &self,
        url: &Url,
        content_type: &str,
        body: impl Into<Bytes>,
        authorization: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<HttpReply, TransportError> {
        let body: Bytes = body.into();
        if url.scheme() != "http" {
            return self
                .transport
                .post(url, content_type, body, authorization, timeout)
                .await;
        }
        let deadline = timeout.unwrap_or(self.transport.config().timeout);
        match tokio::time::timeout(
            deadline,
            self.post_http(url, content_type, body, authorization),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout(deadline)),
        }
    }

    async fn post_http(
        &self,
        url: &Url,
        content_type: &str,
        body: Bytes,
        authorization: Option<&str>,
    ) -> Result<HttpReply, TransportError> {
        let host = url
            .host_str()
            .ok_or_else(|| TransportError::Io(format!("no host in {url}")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let max = self.transport.config().max_body_bytes;
        let mut slot = self.slot.lock().await;
        // A reused keep-alive connection may have been closed by the camera
        // in the meantime; that failure earns one retry on a fresh one.
        for attempt in 0..2 {
            let reusable = slot
                .as_ref()
                .is_some_and(|l| !l.busy && l.authority == authority && !l.sender.is_closed());
            if !reusable {
                *slot = None;
                *slot = Some(self.connect(host, port, &authority).await?);
            }
            let reused = reusable;
            let live = slot.as_mut().expect("connection just set");
            let mut req = http::Request::builder()
                .method(http::Method::POST)
                .uri(target.as_str())
                .header(http::header::HOST, authority.as_str())
                .header(http::header::CONTENT_TYPE, content_type)
                .header(
                    http::header::USER_AGENT,
                    concat!("camfleet/", env!("CARGO_PKG_VERSION")),
                );
            if let Some(a) = authorization {
                req = req.header(http::header::AUTHORIZATION, a);
            }
            let req = req
                .body(Full::new(body.clone()))
                .map_err(|e| TransportError::Io(format!("building request: {e}")))?;
            live.busy = true;
            match exchange(live, req, max).await {
                Ok(reply) => {
                    live.busy = false;
                    if reply.close {
                        *slot = None;
                    }
                    return Ok(reply.reply);
                }
                Err(Failure::BeforeResponse(e)) if reused && attempt == 0 => {
                    tracing::debug!(%authority, error = %e, "kept-alive connection was closed; reconnecting");
                    *slot = None;
                }
                Err(Failure::BeforeResponse(e) | Failure::After(e)) => {
                    *slot = None;
                    return Err(e);
                }
            }
        }
        Err(TransportError::Io("connection closed twice".into()))
    }

    async fn connect(
        &self,
        host: &str,
        port: u16,
        authority: &str,
    ) -> Result<Live, TransportError> {
        let t = self.transport.config().connect_timeout;
        let stream = match tokio::time::timeout(t, TcpStream::connect((host, port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(TransportError::Io(format!(
                    "connecting to {authority}: {e}"
                )));
            }
            Err(_) => return Err(TransportError::Timeout(t)),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .ignore_invalid_headers_in_responses(true)
            // Headers of a camera answer fit easily; the read buffer is not
            // left to grow to hyper's 400 KiB default on a long-lived
            // connection (one per event subscription).
            .max_buf_size(16 * 1024)
            .writev(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| TransportError::Io(format!("HTTP handshake with {authority}: {e}")))?;
        Ok(Live {
            authority: authority.to_string(),
            sender,
            conn,
            busy: false,
        })
    }
}

enum Failure {
    /// Nothing came back: safe to retry on a new connection.
    BeforeResponse(TransportError),
    After(TransportError),
}

struct Exchanged {
    reply: HttpReply,
    /// The camera asked to close the connection, or it ended.
    close: bool,
}

/// Send one request and read the answer, polling the connection in this task.
async fn exchange(
    live: &mut Live,
    req: http::Request<Full<Bytes>>,
    max: usize,
) -> Result<Exchanged, Failure> {
    let io = |e: hyper::Error| TransportError::Io(describe(&e));
    let Live { sender, conn, .. } = live;
    let mut conn_done = false;
    if let Err(e) = futures::future::poll_fn(|cx| {
        // Keep the connection moving while we wait for it to be ready; a
        // finished connection future must not be polled again.
        if !conn_done && std::pin::Pin::new(&mut *conn).poll(cx).is_ready() {
            conn_done = true;
        }
        sender.poll_ready(cx)
    })
    .await
    {
        return Err(Failure::BeforeResponse(io(e)));
    }
    let resp_fut = sender.send_request(req);
    tokio::pin!(resp_fut);
    let resp = loop {
        tokio::select! {
            biased;
            r = &mut resp_fut => break r,
            _ = &mut *conn, if !conn_done => conn_done = true,
        }
    };
    let resp = resp.map_err(|e| {
        if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
            Failure::BeforeResponse(io(e))
        } else {
            Failure::After(io(e))
        }
    })?;
    let status = resp.status().as_u16();
    let (mut parts, mut body) = resp.into_parts();
    let close = conn_done
        || parts
            .headers
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(Failure::After(TransportError::TooLarge(max)));
    }
    let mut buf = BodyBuf::new(max);
    loop {
        let frame = tokio::select! {
            biased;
            f = body.frame() => f,
            _ = &mut *conn, if !conn_done => { conn_done = true; continue; }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| Failure::After(io(e)))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        buf.push(chunk).map_err(Failure::After)?;
    }
    Ok(Exchanged {
        reply: HttpReply {
            status,
            headers: std::mem::take(&mut parts.headers),
            body: buf.finish(),
        },
        close: close || conn_done,
    })
}

fn describe(e: &hyper::Error) -> String {
    error_chain(e)
}
