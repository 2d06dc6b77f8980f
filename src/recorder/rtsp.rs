//! A small RTSP client (RFC 2326) for what retina does not do: ONVIF replay
//! sessions, which need extra request headers (`Require: onvif-replay`,
//! `Range: clock=…`, `Rate-Control: no`). RTP comes interleaved on the
//! same TCP connection. Digest (or Basic, when that is all a camera
//! offers) authentication uses the same code as the ONVIF client.
//!
//! Every read has a deadline, heads and bodies are capped, and nothing in
//! an answer can make it panic.

use std::time::Duration;

use http_auth::PasswordClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::onvif::httpauth;

const MAX_HEAD: usize = 32 * 1024;
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("{method} answered {status} {reason}")]
    Status {
        method: String,
        status: u16,
        reason: String,
    },
    #[error("unreadable answer: {0}")]
    Protocol(String),
    #[error("authentication: {0}")]
    Auth(String),
}

pub type RtspResult<T> = std::result::Result<T, RtspError>;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server sent next: an answer or an interleaved packet.
#[derive(Debug)]
pub enum Message {
    Response(Response),
    Data { channel: u8, data: Vec<u8> },
}

pub struct RtspClient {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    cseq: u32,
    creds: Option<(String, String)>,
    auth: Option<PasswordClient>,
    pub session: Option<String>,
    pub timeout: Duration,
    /// Interleaved packets that arrived while waiting for an answer.
    pending: std::collections::VecDeque<(u8, Vec<u8>)>,
}

impl RtspClient {
    pub async fn connect(
        url: &url::Url,
        creds: Option<(String, String)>,
        timeout: Duration,
    ) -> RtspResult<Self> {
        let host = url
            .host_str()
            .ok_or_else(|| RtspError::Protocol("URL without a host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(554);
        let sock = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| RtspError::Timeout(timeout.as_secs()))??;
        let _ = sock.set_nodelay(true);
        let (rd, wr) = sock.into_split();
        Ok(Self {
            rd: BufReader::with_capacity(64 * 1024, rd),
            wr,
            cseq: 0,
            creds,
            auth: None,
            session: None,
            timeout,
            pending: Default::default(),
        })
    }

    pub fn last_cseq(&self) -> u32 {
        self.cseq
    }

    /// Send a request and wait for its answer; on 401, answer the
    /// challenge once. Non-2xx answers are errors.
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> RtspResult<Response> {
        for attempt in 0..2 {
            self.send(method, url, headers).await?;
            let resp = self.answer().await?;
            if resp.status == 401 && attempt == 0 {
                if self.creds.is_none() {
                    return Err(RtspError::Auth(format!(
                        "{method}: the camera wants credentials and none are stored"
                    )));
                }
                let mut map = http::HeaderMap::new();
                for (k, v) in &resp.headers {
                    if k.eq_ignore_ascii_case("WWW-Authenticate")
                        && let Ok(v) = http::HeaderValue::from_str(v)
                    {
                        map.append(http::header::WWW_AUTHENTICATE, v);
                    }
                }
                let (client, _) = httpauth::choose(&map, true).map_err(RtspError::Auth)?;
                self.auth = Some(client);
                continue;
            }
            if resp.status == 401 {
                return Err(RtspError::Auth(format!(
                    "{method}: the camera refused the stored credentials"
                )));
            }
            if !(200..300).contains(&resp.status) {
                return Err(RtspError::Status {
                    method: method.into(),
                    status: resp.status,
                    reason: resp.reason,
                });
            }
            if let Some(s) = resp.header("Session") {
                self.session = Some(s.split(';').next().unwrap_or("").trim().to_string());
            }
            return Ok(resp);
        }
        Err(RtspError::Auth(format!("{method}: refused")))
    }

    async fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> RtspResult<()> {
        self.cseq += 1;
        let mut req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: camfleet/{}\r\n",
            self.cseq,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(s) = &self.session {
            req.push_str(&format!("Session: {s}\r\n"));
        }
        if let (Some(client), Some((user, password))) = (self.auth.as_mut(), self.creds.as_ref()) {
            let value = httpauth::respond(client, user, password, method, url, None)
                .map_err(RtspError::Auth)?;
            req.push_str(&format!("Authorization: {value}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tokio::time::timeout(self.timeout, self.wr.write_all(req.as_bytes()))
            .await
            .map_err(|_| RtspError::Timeout(self.timeout.as_secs()))??;
        Ok(())
    }

    /// The answer to the last request; packets before it are kept.
    async fn answer(&mut self) -> RtspResult<Response> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let m = tokio::time::timeout_at(deadline, self.read_message())
                .await
                .map_err(|_| RtspError::Timeout(self.timeout.as_secs()))??;
            match m {
                Message::Response(r) => {
                    let cseq = r.header("CSeq").and_then(|v| v.trim().parse::<u32>().ok());
                    if cseq.is_none_or(|c| c == self.cseq) {
                        return Ok(r);
                    }
                }
                Message::Data { channel, data } => {
                    if self.pending.len() < 4096 {
                        self.pending.push_back((channel, data));
                    }
                }
            }
        }
    }

    /// Send a request without waiting for its answer (keepalive, teardown
    /// while data is flowing).
    pub async fn send_only(&mut self, method: &str, url: &str) -> RtspResult<()> {
        self.send(method, url, &[]).await
    }

    /// The next interleaved packet (answers to `send_only` are dropped);
    /// None at the end of the connection.
    pub async fn next_packet(&mut self) -> RtspResult<Option<(u8, Vec<u8>)>> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(Some(p));
        }
        loop {
            match self.read_message().await {
                Ok(Message::Data { channel, data }) => return Ok(Some((channel, data))),
                Ok(Message::Response(_)) => continue,
                Err(RtspError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_message(&mut self) -> RtspResult<Message> {
        let first = {
            let buf = self.rd.fill_buf().await?;
            if buf.is_empty() {
                return Err(RtspError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            buf[0]
        };
        if first == b'$' {
            let mut head = [0u8; 4];
            self.rd.read_exact(&mut head).await?;
            let len = u16::from_be_bytes([head[2], head[3]]) as usize;
            let mut data = vec![0u8; len];
            self.rd.read_exact(&mut data).await?;
            return Ok(Message::Data {
                channel: head[1],
                data,
            });
        }
        let Some(head) = read_head(&mut self.rd, MAX_HEAD).await? else {
            return Err(RtspError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        };
        let status_line = &head.first;
        let mut parts = status_line.splitn(3, ' ');
        let proto = parts.next().unwrap_or("");
        if !proto.starts_with("RTSP/") {
            return Err(RtspError::Protocol(format!(
                "not an RTSP answer: {:?}",
                status_line.chars().take(60).collect::<String>()
            )));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RtspError::Protocol("no status code".into()))?;
        let reason = parts.next().unwrap_or("").to_string();
        let len = head.content_length();
        let headers = head.headers;
        if len > MAX_BODY {
            return Err(RtspError::Protocol(format!("answer body of {len} bytes")));
        }
        let mut body = vec![0u8; len];
        self.rd.read_exact(&mut body).await?;
        Ok(Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }))
    }
}

/// The head of an RTSP message: the request or status line and the
/// headers.
#[derive(Debug, Clone)]
pub struct Head {
    pub first: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> usize {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Read a message head: lines up to a blank one (blank lines before it are
/// skipped), at most `max` bytes in all. None at the end of the stream.
/// Used by the client and by the simulator's server.
pub async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> std::io::Result<Option<Head>> {
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let mut raw = Vec::new();
        let n = (&mut *rd)
            .take((max - total) as u64 + 1)
            .read_until(b'\n', &mut raw)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if total > max {
            return Err(std::io::Error::other(format!(
                "message head over {max} bytes"
            )));
        }
        let line = String::from_utf8_lossy(&raw).trim_end().to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(line);
    }
    let first = lines.remove(0);
    let headers = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head { first, headers }))
}

/// The video media of an SDP: (control URL, encoding, clock rate, fmtp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpVideo {
    pub control: String,
    pub encoding: String,
    pub clock_rate: u32,
    pub fmtp: String,
}

/// Find the first video media in an SDP and resolve its control URL
/// against `base` (Content-Base, else the request URL).
pub fn sdp_video(sdp: &str, base: &str) -> Option<SdpVideo> {
    let mut in_video = false;
    let mut pt = String::new();
    let mut v = SdpVideo {
        control: String::new(),
        encoding: String::new(),
        clock_rate: 90_000,
        fmtp: String::new(),
    };
    let mut found = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if found {
                break;
            }
            in_video = m.starts_with("video ");
            if in_video {
                found = true;
                pt = m.split_whitespace().nth(3).unwrap_or("").to_string();
            }
            continue;
        }
        if !in_video {
            continue;
        }
        if let Some(r) = line.strip_prefix("a=rtpmap:") {
            let (p, enc) = r.split_once(' ').unwrap_or((r, ""));
            if p == pt {
                let mut it = enc.split('/');
                v.encoding = it.next().unwrap_or("").to_ascii_lowercase();
                v.clock_rate = it.next().and_then(|c| c.parse().ok()).unwrap_or(90_000);
            }
        } else if let Some(f) = line.strip_prefix("a=fmtp:") {
            let (p, params) = f.split_once(' ').unwrap_or((f, ""));
            if p == pt {
                v.fmtp = params.to_string();
            }
        } else if let Some(c) = line.strip_prefix("a=control:") {
            v.control = c.to_string();
        }
    }
    if !found {
        return None;
    }
    v.control = if v.control.is_empty() || v.control == "*" {
        base.to_string()
    } else if v.control.contains("://") {
        v.control.clone()
    } else {
        match url::Url::parse(base).and_then(|b| b.join(&v.control)) {
            Ok(u) => u.to_string(),
            Err(_) => format!("{}/{}", base.trim_end_matches('/'), v.control),
        }
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_video_control_url_is_resolved_against_the_base() {
        let sdp = "v=0\r\na=control:*\r\nm=audio 0 RTP/AVP 97\r\na=control:trackID=1\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n";
        let v = sdp_video(sdp, "rtsp://10.0.0.1/replay/rec/").unwrap();
        assert_eq!(v.control, "rtsp://10.0.0.1/replay/rec/trackID=0");
        assert_eq!(v.encoding, "h264");
        assert_eq!(v.fmtp, "packetization-mode=1");
        let abs = "m=video 0 RTP/AVP 96\na=rtpmap:96 H265/90000\na=control:rtsp://cam/x/track1\n";
        assert_eq!(
            sdp_video(abs, "rtsp://cam/x").unwrap().control,
            "rtsp://cam/x/track1"
        );
        assert!(sdp_video("v=0\nm=audio 0 RTP/AVP 0\n", "rtsp://c/").is_none());
    }
}
