//! The settings of a camfleet installation: a TOML file, `CAMFLEET_*`
//! environment variables and command-line flags, in that order of strength
//! (a flag beats the environment, which beats the file, which beats the
//! built-in default).
//!
//! The file is parsed with `deny_unknown_fields`, so a misspelt key is an
//! error that names the key and its line, not a setting silently ignored.
//! Flags and environment variables arrive through clap (each flag names its
//! variable) as a second [`FileConfig`] laid over the file's.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Read when no `--config` is given and the file exists.
pub const DEFAULT_PATH: &str = "/etc/camfleet/camfleet.toml";

/// `enterprises.32473`: the number RFC 5612 sets aside for documentation.
/// A site with its own IANA Private Enterprise Number sets `[snmp]
/// enterprise` and loads the MIB that `camfleet mib --enterprise N` prints.
pub const DEFAULT_ENTERPRISE: u32 = 32473;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log_format: text or json, not {other:?}")),
        }
    }
}

/// A duration in whole seconds (`60`) or with a unit (`"90s"`, `"5m"`, `"1h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Seconds {
    Number(u64),
    Text(#[serde(with = "seconds_text")] u64),
}

mod seconds_text {
    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let t = <String as serde::Deserialize>::deserialize(d)?;
        super::parse_seconds(&t).map_err(serde::de::Error::custom)
    }
}

impl Seconds {
    pub fn secs(self) -> u64 {
        match self {
            Seconds::Number(n) | Seconds::Text(n) => n,
        }
    }
}

impl std::str::FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_seconds(s).map(Seconds::Number)
    }
}

/// `60`, `60s`, `5m`, `1h`.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a duration (seconds, or a number with s, m or h)"))
}

/// Every key the file may hold. All optional: what is missing comes from a
/// weaker layer or the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the SQLite database, the secret key, the spool and the local
    /// storage tier live.
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub storage_url: Option<String>,
    pub cold_storage_url: Option<String>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub secure_cookies: Option<bool>,
    pub poll_interval: Option<Seconds>,
    /// Poll device health (false: a node that only serves the UI).
    pub poll: Option<bool>,
    /// Subscribe to camera events (PullPoint).
    pub events: Option<bool>,
    /// Run database migrations at start (false: `camfleet migrate` does).
    pub migrate: Option<bool>,
    pub log_format: Option<LogFormat>,
    /// This server's name among the nodes sharing one database (default:
    /// the host name).
    pub node_name: Option<String>,
    /// What this node does: `web`, `poll`, `record`, `jobs`, `notify`
    /// (default all).
    pub roles: Option<Vec<String>>,
    /// Pin this node to these sites (names): it polls and records only their
    /// cameras. Default: every site.
    pub sites: Option<Vec<String>>,
    pub discovery: Option<DiscoveryFile>,
    pub tls: Option<TlsFile>,
    pub snmp: Option<SnmpFile>,
    pub live: Option<LiveFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryFile {
    /// IPv4 addresses of this host's interfaces, or `["auto"]`.
    pub interfaces: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnmpFile {
    /// The IANA Private Enterprise Number under which traps are sent.
    pub enterprise: Option<u32>,
}

/// Caps on live view (each viewer is one HTTP stream; each camera watched
/// but not recorded is one RTSP session from this server).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LiveFile {
    pub viewers_per_camera: Option<usize>,
    pub viewers: Option<usize>,
    pub sessions: Option<usize>,
}

macro_rules! overlay {
    ($base:ident, $top:ident; $($f:ident),*) => {
        $( if $top.$f.is_some() { $base.$f = $top.$f; } )*
    };
}

impl FileConfig {
    /// Parse a file's text; `origin` names it in errors. toml reports the
    /// line and column of an unknown key or a wrong value.
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("{origin}: {e}"))
    }

    /// `top`'s settings win where it has them.
    pub fn overlay(mut self, top: FileConfig) -> FileConfig {
        overlay!(self, top; data_dir, listen, database_url, storage_url, cold_storage_url,
            public_url, trusted_proxies, secure_cookies, poll_interval, poll, events, migrate,
            log_format, node_name, roles, sites);
        if let Some(d) = top.discovery
            && d.interfaces.is_some()
        {
            self.discovery = Some(d);
        }
        if let Some(t) = top.tls {
            let mut mine = self.tls.take().unwrap_or_default();
            overlay!(mine, t; cert, key);
            self.tls = Some(mine);
        }
        if let Some(s) = top.snmp {
            let mut mine = self.snmp.take().unwrap_or_default();
            overlay!(mine, s; enterprise);
            self.snmp = Some(mine);
        }
        if let Some(l) = top.live {
            let mut mine = self.live.take().unwrap_or_default();
            overlay!(mine, l; viewers_per_camera, viewers, sessions);
            self.live = Some(mine);
        }
        self
    }
}

/// Read the file named with `--config`, or the default path when it exists.
/// Returns the path read (if any) and its settings.
pub fn load_file(explicit: Option<&Path>) -> Result<(Option<PathBuf>, FileConfig), String> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(DEFAULT_PATH);
            if !p.exists() {
                return Ok((None, FileConfig::default()));
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading config file {}: {e}", path.display()))?;
    let cfg = FileConfig::parse(&text, &path.display().to_string())?;
    Ok((Some(path), cfg))
}

/// Which interfaces discovery multicasts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InterfaceChoice {
    /// None configured: nothing is multicast; the discovery page says how.
    #[default]
    Unset,
    /// Every up, non-loopback IPv4 interface that has multicast.
    Auto,
    List(Vec<Ipv4Addr>),
}

impl InterfaceChoice {
    pub fn parse(words: &[String]) -> Result<Self, String> {
        let words: Vec<&str> = words
            .iter()
            .map(|w| w.trim())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Ok(InterfaceChoice::Unset);
        }
        if words.contains(&"auto") {
            if words.len() > 1 {
                return Err(
                    "discovery interfaces: `auto` stands alone (it means every interface)".into(),
                );
            }
            return Ok(InterfaceChoice::Auto);
        }
        let mut out = Vec::new();
        for w in words {
            let ip: Ipv4Addr = w.parse().map_err(|_| {
                format!(
                    "discovery interfaces: {w:?} is not an IPv4 address of this host (or `auto`)"
                )
            })?;
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        Ok(InterfaceChoice::List(out))
    }
}

/// The effective settings, defaults applied and every value checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file these came from, if any.
    pub file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: Option<String>,
    pub storage_url: Option<String>,
    pub cold_storage_url: Option<String>,
    pub public_url: Option<url::Url>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub secure_cookies: bool,
    pub poll_interval: Duration,
    pub poll: bool,
    pub events: bool,
    pub migrate: bool,
    pub log_format: LogFormat,
    pub discovery_interfaces: InterfaceChoice,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub snmp_enterprise: u32,
    pub live: crate::recorder::live::Limits,
    pub node_name: String,
    pub roles: crate::fleet::cluster::Roles,
    pub sites: Vec<String>,
}

impl Settings {
    /// Apply defaults and check every value; the error names the key.
    pub fn resolve(file: Option<PathBuf>, c: FileConfig) -> Result<Settings, String> {
        let public_url = match &c.public_url {
            None => None,
            Some(s) => {
                let u = url::Url::parse(s.trim())
                    .map_err(|e| format!("public_url: {s:?} is not a URL ({e})"))?;
                if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    return Err(format!(
                        "public_url: {s:?} must be http:// or https:// with a host"
                    ));
                }
                Some(u)
            }
        };
        let mut trusted_proxies = Vec::new();
        for p in c.trusted_proxies.iter().flatten() {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let net = p
                .parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("trusted_proxies: {p:?} is not an IP address or CIDR"))?;
            trusted_proxies.push(net);
        }
        let tls = match c.tls.clone().unwrap_or_default() {
            TlsFile {
                cert: Some(cert),
                key: Some(key),
            } => Some((cert, key)),
            TlsFile {
                cert: None,
                key: None,
            } => None,
            _ => return Err("tls: give both cert and key (PEM files), or neither".into()),
        };
        let poll_interval = c.poll_interval.map(Seconds::secs).unwrap_or(60);
        if !(5..=86_400).contains(&poll_interval) {
            return Err(format!(
                "poll_interval: {poll_interval} s is outside 5 s ..= 1 day"
            ));
        }
        let enterprise = c
            .snmp
            .as_ref()
            .and_then(|s| s.enterprise)
            .unwrap_or(DEFAULT_ENTERPRISE);
        if enterprise == 0 {
            return Err("snmp.enterprise: an IANA Private Enterprise Number, not 0".into());
        }
        let discovery_interfaces = InterfaceChoice::parse(
            c.discovery
                .as_ref()
                .and_then(|d| d.interfaces.as_deref())
                .unwrap_or(&[]),
        )?;
        let live_default = crate::recorder::live::Limits::default();
        let lf = c.live.clone().unwrap_or_default();
        let live = crate::recorder::live::Limits {
            viewers_per_camera: lf
                .viewers_per_camera
                .unwrap_or(live_default.viewers_per_camera),
            viewers: lf.viewers.unwrap_or(live_default.viewers),
            sessions: lf.sessions.unwrap_or(live_default.sessions),
        };
        for (key, v) in [
            ("live.viewers_per_camera", live.viewers_per_camera),
            ("live.viewers", live.viewers),
            ("live.sessions", live.sessions),
        ] {
            if !(1..=10_000).contains(&v) {
                return Err(format!("{key}: {v} is outside 1 ..= 10000"));
            }
        }
        for (key, v) in [
            ("database_url", &c.database_url),
            ("storage_url", &c.storage_url),
            ("cold_storage_url", &c.cold_storage_url),
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(format!("{key}: empty; leave the key out for the default"));
            }
        }
        let node_name = crate::fleet::cluster::check_node_name(
            &c.node_name
                .clone()
                .unwrap_or_else(crate::fleet::cluster::host_name),
        )?;
        let roles = match &c.roles {
            None => crate::fleet::cluster::Roles::ALL,
            Some(r) => crate::fleet::cluster::Roles::parse(&r.join(","))?,
        };
        let mut sites: Vec<String> = Vec::new();
        for name in c.sites.iter().flatten().flat_map(|s| s.split(',')) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if name.len() > 100 {
                return Err(format!("sites: {name:?} is longer than a site name can be"));
            }
            if !sites.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                sites.push(name.to_string());
            }
        }
        if !sites.is_empty() && !roles.leases() {
            return Err(
                "sites: only a node that polls or records is pinned to sites (roles poll, record)"
                    .into(),
            );
        }
        Ok(Settings {
            node_name,
            roles,
            sites,
            file,
            data_dir: c.data_dir.clone().unwrap_or_else(|| PathBuf::from("data")),
            listen: c
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: c.database_url.clone(),
            storage_url: c.storage_url.clone(),
            cold_storage_url: c.cold_storage_url.clone(),
            // Under TLS cookies are Secure whatever the file says.
            secure_cookies: c.secure_cookies.unwrap_or(false) || tls.is_some(),
            public_url,
            trusted_proxies,
            poll_interval: Duration::from_secs(poll_interval),
            poll: c.poll.unwrap_or(true),
            events: c.events.unwrap_or(true),
            migrate: c.migrate.unwrap_or(true),
            log_format: c.log_format.unwrap_or_default(),
            discovery_interfaces,
            tls,
            snmp_enterprise: enterprise,
            live,
        })
    }

    /// The effective settings as TOML, secrets redacted: what `camfleet
    /// config check` prints.
    pub fn to_redacted_toml(&self) -> String {
        let c = FileConfig {
            data_dir: Some(self.data_dir.clone()),
            listen: Some(self.listen),
            database_url: self.database_url.as_deref().map(redact_url),
            storage_url: self.storage_url.as_deref().map(redact_url),
            cold_storage_url: self.cold_storage_url.as_deref().map(redact_url),
            public_url: self.public_url.as_ref().map(|u| u.to_string()),
            trusted_proxies: Some(self.trusted_proxies.iter().map(|n| n.to_string()).collect()),
            secure_cookies: Some(self.secure_cookies),
            poll_interval: Some(Seconds::Number(self.poll_interval.as_secs())),
            poll: Some(self.poll),
            events: Some(self.events),
            migrate: Some(self.migrate),
            log_format: Some(self.log_format),
            node_name: Some(self.node_name.clone()),
            roles: Some(self.roles.names().iter().map(|r| r.to_string()).collect()),
            sites: Some(self.sites.clone()),
            discovery: Some(DiscoveryFile {
                interfaces: Some(match &self.discovery_interfaces {
                    InterfaceChoice::Unset => vec![],
                    InterfaceChoice::Auto => vec!["auto".into()],
                    InterfaceChoice::List(l) => l.iter().map(|i| i.to_string()).collect(),
                }),
            }),
            tls: Some(TlsFile {
                cert: self.tls.as_ref().map(|t| t.0.clone()),
                key: self.tls.as_ref().map(|t| t.1.clone()),
            }),
            snmp: Some(SnmpFile {
                enterprise: Some(self.snmp_enterprise),
            }),
            live: Some(LiveFile {
                viewers_per_camera: Some(self.live.viewers_per_camera),
                viewers: Some(self.live.viewers),
                sessions: Some(self.live.sessions),
            }),
        };
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

/// A URL with its password (and any secret-looking query value) replaced.
pub fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let secret = ["secret", "password", "key", "token"]
                        .iter()
                        .any(|w| k.to_ascii_lowercase().contains(w));
                    (
                        k.into_owned(),
                        if secret {
                            "REDACTED".into()
                        } else {
                            v.into_owned()
                        },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not a URL (a directory): nothing to hide.
        Err(_) => s.to_string(),
    }
}

/// A commented example file: what `camfleet config example` prints.
pub const EXAMPLE: &str = include_str!("../packaging/camfleet.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_an_error_naming_key_and_line() {
        let e = FileConfig::parse("listen = \"0.0.0.0:8080\"\npol_interval = 30\n", "x.toml")
            .unwrap_err();
        assert!(e.contains("pol_interval"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e =
            FileConfig::parse("[discovery]\ninterface = [\"10.0.0.5\"]\n", "x.toml").unwrap_err();
        assert!(e.contains("interface") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn the_example_file_parses_and_resolves() {
        let c = FileConfig::parse(EXAMPLE, "example").unwrap();
        Settings::resolve(None, c).unwrap();
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = FileConfig::parse(
            "listen = \"0.0.0.0:80\"\npoll_interval = \"2m\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
            "f",
        )
        .unwrap();
        let env_and_flags = FileConfig {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            tls: Some(TlsFile {
                cert: Some("/other.pem".into()),
                key: None,
            }),
            ..Default::default()
        };
        let s = Settings::resolve(None, file.overlay(env_and_flags)).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.poll_interval, Duration::from_secs(120));
        assert_eq!(
            s.tls,
            Some((PathBuf::from("/other.pem"), PathBuf::from("/k.pem")))
        );
        assert!(s.secure_cookies, "TLS makes cookies Secure");
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad =
            |t: &str| Settings::resolve(None, FileConfig::parse(t, "f").unwrap()).unwrap_err();
        assert!(bad("trusted_proxies = [\"nginx\"]").starts_with("trusted_proxies"));
        assert!(bad("public_url = \"camfleet.example\"").starts_with("public_url"));
        assert!(bad("poll_interval = 1").starts_with("poll_interval"));
        assert!(bad("[tls]\ncert = \"/c\"").starts_with("tls"));
        assert!(bad("[discovery]\ninterfaces = [\"eth0\"]").starts_with("discovery"));
        assert!(bad("[discovery]\ninterfaces = [\"auto\", \"10.0.0.1\"]").contains("auto"));
        assert!(FileConfig::parse("poll_interval = \"soon\"", "f").is_err());
        assert!(bad("node_name = \"rec north\"").starts_with("node_name"));
        assert!(bad("roles = [\"web\", \"record-only\"]").starts_with("roles"));
        assert!(bad("roles = [\"web\"]\nsites = [\"North\"]").starts_with("sites"));
    }

    #[test]
    fn node_settings_from_file_and_their_defaults() {
        let s = Settings::resolve(
            None,
            FileConfig::parse(
                "node_name = \"rec-north-1\"\nroles = [\"poll\", \"record\"]\nsites = [\"North\", \"north\", \"South\"]",
                "f",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(s.node_name, "rec-north-1");
        assert_eq!(s.roles.to_string(), "poll,record");
        assert_eq!(s.sites, ["North", "South"], "names once, as first written");
        let d = Settings::resolve(None, FileConfig::default()).unwrap();
        assert_eq!(d.roles, crate::fleet::cluster::Roles::ALL);
        assert!(d.sites.is_empty());
        assert!(!d.node_name.is_empty());
        // What `config check` prints reads back the same.
        let again = Settings::resolve(
            None,
            FileConfig::parse(&s.to_redacted_toml(), "again").unwrap(),
        )
        .unwrap();
        assert_eq!(
            (again.node_name, again.roles, again.sites),
            (s.node_name, s.roles, s.sites)
        );
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_url("postgres://cf:hunter2@db.example/camfleet"),
            "postgres://cf:REDACTED@db.example/camfleet"
        );
        let s = redact_url("s3://bucket/p?endpoint=http://s3:9000&secret_access_key=abc");
        assert!(!s.contains("abc") && s.contains("endpoint"), "{s}");
        assert_eq!(redact_url("/srv/cold"), "/srv/cold");
        let c = FileConfig {
            database_url: Some("postgres://u:pw@h/d".into()),
            ..Default::default()
        };
        let out = Settings::resolve(None, c).unwrap().to_redacted_toml();
        assert!(!out.contains(":pw@"), "{out}");
        // What check prints is itself a valid file.
        FileConfig::parse(&out, "printed").unwrap();
    }

    #[test]
    fn proxies_take_addresses_and_cidrs() {
        let c = FileConfig::parse(
            "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\"]",
            "f",
        )
        .unwrap();
        let s = Settings::resolve(None, c).unwrap();
        assert_eq!(s.trusted_proxies.len(), 3);
        assert!(s.trusted_proxies[1].contains(&"10.9.8.7".parse::<std::net::IpAddr>().unwrap()));
    }
}
