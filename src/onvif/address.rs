//! Rewriting addresses a device reports about itself (XAddrs, service
//! addresses, stream and snapshot URIs) to the host we actually reached.
//!
//! Cameras behind NAT, with several interfaces, or simply misconfigured report
//! addresses we cannot reach. We keep the reported scheme, port and path, and
//! substitute the host. We also repair doubled ports (`host:80:80`), empty
//! hosts (`http:///onvif/...`) and `urn:uuid:` XAddrs.

use url::Url;

/// Why a rewrite happened, for the device's quirk list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub url: Url,
    pub changed: bool,
}

/// Repair the common breakages of a reported URL string, then parse it.
pub fn repair(reported: &str) -> Option<Url> {
    let s = reported.trim();
    if s.is_empty() || s.starts_with("urn:") {
        return None;
    }
    let (scheme, rest) = s.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let hostport = fix_doubled_port(hostport);
    let hostport = if hostport.is_empty() || hostport.starts_with(':') {
        // Empty host: leave a placeholder that `rewrite` replaces.
        format!("0.0.0.0{hostport}")
    } else {
        hostport
    };
    let rebuilt = match userinfo {
        Some(u) => format!("{scheme}://{u}@{hostport}{path}"),
        None => format!("{scheme}://{hostport}{path}"),
    };
    Url::parse(&rebuilt).ok()
}

/// `192.168.1.5:80:80` → `192.168.1.5:80`; IPv6 literals are left alone.
fn fix_doubled_port(hostport: &str) -> String {
    if hostport.starts_with('[') {
        return hostport.to_string();
    }
    let parts: Vec<&str> = hostport.split(':').collect();
    if parts.len() >= 3
        && parts[1..]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        return format!("{}:{}", parts[0], parts[parts.len() - 1]);
    }
    hostport.to_string()
}

/// Rewrite `reported` so its host is the one in `reached`. The reported port
/// and path are kept; a missing port stays missing (the scheme default).
pub fn rewrite(reported: &str, reached: &Url) -> Option<Rewritten> {
    let mut url = repair(reported)?;
    let Some(host) = reached.host_str() else {
        return Some(Rewritten {
            url,
            changed: false,
        });
    };
    let same = url.host_str() == Some(host);
    if !same {
        url.set_host(Some(host)).ok()?;
    }
    let changed = !same || url.as_str() != reported.trim();
    Some(Rewritten { url, changed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached() -> Url {
        Url::parse("http://127.0.0.1:8080/onvif/device_service").unwrap()
    }

    #[test]
    fn host_is_replaced_port_and_path_kept() {
        let r = rewrite("http://10.0.0.5:8081/onvif/media?x=1", &reached()).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8081/onvif/media?x=1");
        assert!(r.changed);
    }

    #[test]
    fn rtsp_keeps_its_port_and_credentials_free_path() {
        let r = rewrite("rtsp://192.168.0.9:554/Streaming/Channels/101", &reached()).unwrap();
        assert_eq!(
            r.url.as_str(),
            "rtsp://127.0.0.1:554/Streaming/Channels/101"
        );
    }

    #[test]
    fn doubled_port_is_repaired() {
        let r = rewrite("http://10.0.0.5:80:80/onvif/device_service", &reached()).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1/onvif/device_service");
    }

    #[test]
    fn empty_host_is_repaired() {
        let r = rewrite("http://:8080/onvif/device_service", &reached()).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8080/onvif/device_service");
        let r = rewrite("http:///onvif/media", &reached()).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1/onvif/media");
    }

    #[test]
    fn urn_xaddr_is_not_a_url() {
        assert!(rewrite("urn:uuid:1234", &reached()).is_none());
    }

    #[test]
    fn unchanged_when_already_right() {
        let r = rewrite("http://127.0.0.1:8080/onvif/device_service", &reached()).unwrap();
        assert!(!r.changed);
    }
}
