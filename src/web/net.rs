//! Who is on the other end of a request, believing a reverse proxy only when
//! the connection comes from one the operator trusts (`trusted_proxies`):
//! the client's address for the audit log and the login throttle, whether
//! the browser used HTTPS, and the origin it saw (for the same-origin check
//! of forms). Headers from anyone else are ignored, so a client cannot name
//! its own address or origin.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::State;

/// How this server is reached; set once at start.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The address people use (`https://camfleet.example`): its origin is
    /// always accepted by the same-origin check.
    pub public_url: Option<url::Url>,
    /// Served over TLS by camfleet itself.
    pub tls: bool,
}

impl WebConfig {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// `scheme://host[:port]` of the public URL.
    pub fn public_origin(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| u.origin().ascii_serialization())
    }
}

/// `::ffff:10.0.0.1` is 10.0.0.1 (a dual-stack listener reports it so).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The TCP peer of a connection, for `into_make_service_with_connect_info`
/// (plain TCP and our TLS listener alike).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*s.remote_addr())
    }
}

/// What a request tells of its client, after the proxy rules.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's address: the TCP peer, or, when that is a trusted
    /// proxy, the last untrusted address of `X-Forwarded-For`.
    pub ip: Option<IpAddr>,
    /// The browser spoke HTTPS (to us, or to a trusted proxy that says so).
    pub https: bool,
    /// `X-Forwarded-Host` from a trusted proxy.
    pub forwarded_host: Option<String>,
}

impl ClientInfo {
    pub fn from_parts(cfg: &WebConfig, peer: Option<SocketAddr>, headers: &HeaderMap) -> Self {
        let peer_ip = peer.map(|p| canonical(p.ip()));
        let direct = ClientInfo {
            ip: peer_ip,
            https: cfg.tls,
            forwarded_host: None,
        };
        let Some(peer_ip) = peer_ip else {
            return direct;
        };
        if !cfg.trusts(peer_ip) {
            return direct;
        }
        // Walk X-Forwarded-For from the right: each trusted hop vouches for
        // the one before it; the first address that is not a trusted proxy
        // is the client. Garbage ends the walk (what is left is not
        // believed).
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut client = peer_ip;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !cfg.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        let last = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|s| !s.is_empty())
                .map(str::to_string)
        };
        ClientInfo {
            ip: Some(client),
            https: cfg.tls
                || last("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")),
            forwarded_host: last("x-forwarded-host").filter(|h| valid_authority(h)),
        }
    }

    /// The client address as text for the audit log and the throttle.
    pub fn ip_text(&self) -> Option<String> {
        self.ip.map(|i| i.to_string())
    }
}

/// `10.0.0.1`, `[2001:db8::1]:443`, `10.0.0.1:5555` (some proxies add a port).
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    s.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

fn valid_authority(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// Is a POST's `Origin` this site? Accepted: the public URL's origin, the
/// `Host` the browser sent, or the host a trusted proxy forwarded. A
/// request without `Origin` passes here (not every client sends it); the
/// CSRF token still applies.
pub fn same_origin(cfg: &WebConfig, info: &ClientInfo, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if cfg
        .public_origin()
        .is_some_and(|p| p.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let want_scheme = if info.https { "https" } else { "http" };
    if !scheme.eq_ignore_ascii_case(want_scheme) {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Browsers leave the scheme's default port out of Origin; proxies may
    // put it in (nginx's `$host:$server_port`).
    let default_port = if info.https { ":443" } else { ":80" };
    let bare = |a: &str| -> String {
        a.strip_suffix(default_port)
            .unwrap_or(a)
            .to_ascii_lowercase()
    };
    let origin_host = bare(authority);
    origin_host == bare(host)
        || info
            .forwarded_host
            .as_deref()
            .is_some_and(|f| origin_host == bare(f))
}

/// Puts a [`ClientInfo`] into every request's extensions.
pub async fn client_info(AxState(state): AxState<State>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|c| c.0.0);
    let info = ClientInfo::from_parts(&state.web, peer, req.headers());
    req.extensions_mut().insert(info);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(proxies: &[&str]) -> WebConfig {
        WebConfig {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 40000))
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let i = ClientInfo::from_parts(&cfg(&["127.0.0.1/32"]), peer("10.9.9.9"), &h);
        assert_eq!(i.ip_text().as_deref(), Some("10.9.9.9"));
        assert!(!i.https);
        assert_eq!(i.forwarded_host, None);
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() {
        // The client forged the first entry; nginx appended the real one.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4, 203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let i = ClientInfo::from_parts(&cfg(&["127.0.0.1/32"]), peer("127.0.0.1"), &h);
        assert_eq!(i.ip_text().as_deref(), Some("203.0.113.7"));
        assert!(i.https);
        // Two trusted proxies in a row.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        let i =
            ClientInfo::from_parts(&cfg(&["127.0.0.1/32", "10.0.0.0/8"]), peer("127.0.0.1"), &h);
        assert_eq!(i.ip_text().as_deref(), Some("203.0.113.7"));
        // Garbage stops the walk at the last good hop.
        let h = headers(&[("x-forwarded-for", "<script>, 203.0.113.9")]);
        let i = ClientInfo::from_parts(&cfg(&["127.0.0.1/32"]), peer("127.0.0.1"), &h);
        assert_eq!(i.ip_text().as_deref(), Some("203.0.113.9"));
        // A mapped IPv4 peer is the IPv4 address.
        let i = ClientInfo::from_parts(&cfg(&["127.0.0.1/32"]), peer("::ffff:127.0.0.1"), &h);
        assert_eq!(i.ip_text().as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn same_origin_accepts_public_url_host_and_trusted_forwarded_host() {
        let mut c = cfg(&["127.0.0.1/32"]);
        c.public_url = Some("https://cams.example.com/".parse().unwrap());
        let direct = ClientInfo::from_parts(&c, peer("10.1.1.1"), &HeaderMap::new());
        let h = headers(&[
            ("origin", "https://cams.example.com"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(same_origin(&c, &direct, &h));
        let h = headers(&[
            ("origin", "http://10.0.0.5:8080"),
            ("host", "10.0.0.5:8080"),
        ]);
        assert!(same_origin(&c, &direct, &h));
        let h = headers(&[("origin", "http://evil.example"), ("host", "10.0.0.5:8080")]);
        assert!(!same_origin(&c, &direct, &h));
        // nginx without `proxy_set_header Host`: Host is the upstream; the
        // forwarded host of a trusted proxy is the browser's.
        let fwd = headers(&[
            ("origin", "https://proxy.site:8443"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "proxy.site:8443"),
            ("x-forwarded-proto", "https"),
        ]);
        let via_proxy = ClientInfo::from_parts(&c, peer("127.0.0.1"), &fwd);
        assert!(same_origin(&c, &via_proxy, &fwd));
        // The same headers from an untrusted peer prove nothing.
        let not_proxy = ClientInfo::from_parts(&c, peer("10.1.1.1"), &fwd);
        assert!(!same_origin(&c, &not_proxy, &fwd));
        // The default port, written out by the proxy, is the same origin.
        let fwd443 = headers(&[
            ("origin", "https://cams.site"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "cams.site:443"),
            ("x-forwarded-proto", "https"),
        ]);
        let i = ClientInfo::from_parts(&c, peer("127.0.0.1"), &fwd443);
        assert!(same_origin(&c, &i, &fwd443));
        // A scheme other than the one the browser used is another origin.
        let h = headers(&[
            ("origin", "https://10.0.0.5:8080"),
            ("host", "10.0.0.5:8080"),
        ]);
        assert!(!same_origin(&c, &direct, &h));
    }
}
