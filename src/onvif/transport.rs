//! HTTP transport shared by the whole fleet: one pooled client, a deadline on
//! every exchange (headers *and* body), and a cap on the body read as a stream,
//! so an endless or oversized answer is an error rather than an OOM.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use url::Url;

use super::fault::FaultClass;

#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Deadline for a whole exchange (connect, send, headers, body).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Largest body accepted; anything longer is an error.
    pub max_body_bytes: usize,
    /// Cameras ship self-signed certificates; accept them unless pinned later.
    pub accept_invalid_certs: bool,
    pub pool_max_idle_per_host: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_body_bytes: 4 * 1024 * 1024,
            accept_invalid_certs: true,
            pool_max_idle_per_host: 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Io(String),
}

impl TransportError {
    pub fn class(&self) -> FaultClass {
        match self {
            TransportError::Timeout(_) => FaultClass::Timeout,
            TransportError::TooLarge(_) => FaultClass::Malformed,
            TransportError::Io(_) => FaultClass::Transport,
        }
    }
}

/// Cheap to clone; all clones share one connection pool.
///
/// The pooled client (TLS, snapshots, sweeps) is built on first use: plain
/// HTTP SOAP goes over each device's own connection (`conn.rs`), and
/// building the TLS stack costs milliseconds at start-up.
#[derive(Clone, Debug)]
pub struct Transport {
    client: std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, TransportError>>>,
    cfg: TransportConfig,
}

impl Transport {
    pub fn new(cfg: TransportConfig) -> Result<Self, TransportError> {
        Ok(Self {
            client: Default::default(),
            cfg,
        })
    }

    fn client(&self) -> Result<&reqwest::Client, TransportError> {
        self.client
            .get_or_init(|| Self::build_client(&self.cfg))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build_client(cfg: &TransportConfig) -> Result<reqwest::Client, TransportError> {
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .http1_only()
            .http1_ignore_invalid_headers_in_responses(true)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(cfg.accept_invalid_certs)
            .user_agent(concat!("camfleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Io(format!("building HTTP client: {e}")))
    }

    pub fn config(&self) -> &TransportConfig {
        &self.cfg
    }

    /// POST a body; `timeout` overrides the default (long polls).
    pub async fn post(
        &self,
        url: &Url,
        content_type: &str,
        body: impl Into<Bytes>,
        authorization: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<HttpReply, TransportError> {
        let mut req = self
            .client()?
            .post(url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.into());
        if let Some(a) = authorization {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        self.exchange(req, timeout, self.cfg.max_body_bytes).await
    }

    /// POST bytes (a firmware image to a camera's UploadUri).
    pub async fn post_bytes(
        &self,
        url: &Url,
        content_type: &str,
        body: Bytes,
        authorization: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<HttpReply, TransportError> {
        let mut req = self
            .client()?
            .post(url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(a) = authorization {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        self.exchange(req, timeout, self.cfg.max_body_bytes).await
    }

    /// GET (snapshots, HTTP probes), with its own body cap.
    pub async fn get(
        &self,
        url: &Url,
        authorization: Option<&str>,
        timeout: Option<Duration>,
        max_body_bytes: usize,
    ) -> Result<HttpReply, TransportError> {
        let mut req = self.client()?.get(url.clone());
        if let Some(a) = authorization {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        self.exchange(req, timeout, max_body_bytes).await
    }

    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Option<Duration>,
        max: usize,
    ) -> Result<HttpReply, TransportError> {
        let deadline = timeout.unwrap_or(self.cfg.timeout);
        match tokio::time::timeout(deadline, Self::send_and_read(req, max)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout(deadline)),
        }
    }

    async fn send_and_read(
        req: reqwest::RequestBuilder,
        max: usize,
    ) -> Result<HttpReply, TransportError> {
        let mut resp = req.send().await.map_err(describe)?;
        if let Some(len) = resp.content_length()
            && len > max as u64
        {
            return Err(TransportError::TooLarge(max));
        }
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        // Most answers arrive in one chunk: keep it as is; copy only when
        // a body comes in pieces.
        let mut body = BodyBuf::new(max);
        while let Some(chunk) = resp.chunk().await.map_err(describe)? {
            body.push(chunk)?;
        }
        let body = body.finish();
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }
}

/// Flatten reqwest's error chain into one readable line.
fn describe(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        return TransportError::Timeout(Duration::ZERO);
    }
    TransportError::Io(error_chain(&e))
}

pub(crate) use crate::error::error_chain;

/// A response body read chunk by chunk under a size cap. Most answers
/// arrive in one chunk, which is kept as is; pieces are copied together.
pub(crate) struct BodyBuf {
    first: Option<Bytes>,
    buf: BytesMut,
    len: usize,
    max: usize,
}

impl BodyBuf {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            first: None,
            buf: BytesMut::new(),
            len: 0,
            max,
        }
    }

    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        self.len += chunk.len();
        if self.len > self.max {
            return Err(TransportError::TooLarge(self.max));
        }
        match self.first.take() {
            None if self.buf.is_empty() => self.first = Some(chunk),
            None => self.buf.extend_from_slice(&chunk),
            Some(f) => {
                self.buf.reserve(f.len() + chunk.len());
                self.buf.extend_from_slice(&f);
                self.buf.extend_from_slice(&chunk);
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.buf.freeze())
    }
}
