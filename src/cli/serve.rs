//! `camfleet serve` and `camfleet user add`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::app::{self, AppConfig};
use crate::config::{self, FileConfig, Settings};
use crate::discovery::interfaces::HostInterface;
use crate::web::net::WebConfig;

#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// The settings file (TOML); default /etc/camfleet/camfleet.toml when
    /// it exists. Environment variables and flags override it.
    #[arg(long, env = "CAMFLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the SQLite database, the secret key and local data live
    /// (default `data`).
    #[arg(long, env = "CAMFLEET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://user:pass@host/db` to use PostgreSQL instead of SQLite.
    #[arg(long, env = "CAMFLEET_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// `s3://bucket[/prefix]?endpoint=http://host:9000` for an
    /// S3-compatible storage tier (keys from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY); default: `storage/` in the data directory.
    #[arg(long, env = "CAMFLEET_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// A second, `cold` storage tier (an s3:// URL or a directory) that
    /// the tier-migration job moves old recordings to.
    #[arg(long, env = "CAMFLEET_COLD_STORAGE_URL")]
    pub cold_storage_url: Option<String>,
}

impl DataArgs {
    /// The flags and environment as a settings layer.
    fn layer(&self) -> FileConfig {
        FileConfig {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            storage_url: self.storage_url.clone(),
            cold_storage_url: self.cold_storage_url.clone(),
            ..Default::default()
        }
    }

    /// File < environment < flags, checked.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.settings_over(FileConfig::default())
    }

    fn settings_over(&self, extra: FileConfig) -> anyhow::Result<Settings> {
        let (path, file) = config::load_file(self.config.as_deref()).map_err(anyhow::Error::msg)?;
        let merged = file.overlay(self.layer()).overlay(extra);
        Settings::resolve(path, merged).map_err(anyhow::Error::msg)
    }

    /// What the commands other than `serve` build the app from.
    pub(super) fn app_config(&self) -> anyhow::Result<AppConfig> {
        Ok(app_config(&self.settings()?, Vec::new()))
    }
}

/// The app's wiring from effective settings and the resolved interfaces.
pub(super) fn app_config(s: &Settings, interfaces: Vec<HostInterface>) -> AppConfig {
    AppConfig {
        data_dir: s.data_dir.clone(),
        database_url: s.database_url.clone(),
        secure_cookies: s.secure_cookies,
        discovery: crate::fleet::discovery::DiscoveryConfig {
            interfaces,
            ..Default::default()
        },
        storage_url: s.storage_url.clone(),
        cold_storage_url: s.cold_storage_url.clone(),
        web: WebConfig {
            trusted_proxies: s.trusted_proxies.clone(),
            public_url: s.public_url.clone(),
            tls: s.tls.is_some(),
        },
        migrate: s.migrate,
        snmp_enterprise: s.snmp_enterprise,
        live: s.live.clone(),
        node: None,
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "CAMFLEET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Mark cookies Secure and send HSTS (HTTPS behind a proxy); automatic
    /// with --tls-cert.
    #[arg(long, env = "CAMFLEET_SECURE_COOKIES", num_args = 0..=1, default_missing_value = "true")]
    pub secure_cookies: Option<bool>,
    /// Do not poll device health (e.g. a node that only serves the UI).
    #[arg(long)]
    pub no_poll: bool,
    /// Do not subscribe to camera events (PullPoint). Implied by --no-poll.
    #[arg(long)]
    pub no_events: bool,
    /// Do not migrate the database at start (run `camfleet migrate`).
    #[arg(long)]
    pub no_migrate: bool,
    /// The address people reach camfleet at (`https://camfleet.example`):
    /// links in notifications, and the origin forms are accepted from.
    #[arg(long, env = "CAMFLEET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Default poll interval: seconds, or `90s`, `5m` (sites and devices
    /// may override; default 60).
    #[arg(long, env = "CAMFLEET_POLL_INTERVAL")]
    pub poll_interval: Option<config::Seconds>,
    /// Reverse proxies whose X-Forwarded-* headers are believed (IPs or
    /// CIDRs; repeat, or separate with commas).
    #[arg(
        long = "trusted-proxy",
        env = "CAMFLEET_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// An IPv4 address of this host to multicast WS-Discovery on (repeat,
    /// or separate with commas), or `auto` for every up, non-loopback
    /// interface with multicast. None: no multicast discovery.
    #[arg(
        long = "discovery-interface",
        env = "CAMFLEET_DISCOVERY_INTERFACE",
        value_delimiter = ','
    )]
    pub discovery_interfaces: Vec<String>,
    /// `text` or `json` log lines on stderr.
    #[arg(long, env = "CAMFLEET_LOG_FORMAT")]
    pub log_format: Option<config::LogFormat>,
    /// Serve HTTPS with this certificate chain (PEM; reloaded on SIGHUP).
    #[arg(long, env = "CAMFLEET_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "CAMFLEET_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The IANA enterprise number SNMP notifications are sent under.
    #[arg(long, env = "CAMFLEET_SNMP_ENTERPRISE")]
    pub snmp_enterprise: Option<u32>,
    /// This server's name among the nodes sharing one database (default:
    /// the host name).
    #[arg(long, env = "CAMFLEET_NODE_NAME")]
    pub node_name: Option<String>,
    /// What this node does, of web, poll, record, jobs, notify (default
    /// all; separate with commas).
    #[arg(long, env = "CAMFLEET_ROLES", value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Pin this node to these sites (names, separated with commas): it
    /// polls and records only their cameras (a site recorder).
    #[arg(long, env = "CAMFLEET_SITES", value_delimiter = ',')]
    pub sites: Vec<String>,
    /// The settings once resolved: main reads the log format before the
    /// runtime starts, serve the rest; the file is read once.
    #[arg(skip)]
    resolved: std::sync::OnceLock<Result<Settings, String>>,
}

impl ServeArgs {
    fn layer(&self) -> FileConfig {
        FileConfig {
            listen: self.listen,
            secure_cookies: self.secure_cookies,
            poll: self.no_poll.then_some(false),
            events: self.no_events.then_some(false),
            migrate: self.no_migrate.then_some(false),
            public_url: self.public_url.clone(),
            poll_interval: self.poll_interval,
            trusted_proxies: (!self.trusted_proxies.is_empty())
                .then(|| self.trusted_proxies.clone()),
            log_format: self.log_format,
            discovery: (!self.discovery_interfaces.is_empty()).then(|| config::DiscoveryFile {
                interfaces: Some(self.discovery_interfaces.clone()),
            }),
            tls: (self.tls_cert.is_some() || self.tls_key.is_some()).then(|| config::TlsFile {
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
            }),
            snmp: self.snmp_enterprise.map(|e| config::SnmpFile {
                enterprise: Some(e),
            }),
            node_name: self.node_name.clone(),
            roles: (!self.roles.is_empty()).then(|| self.roles.clone()),
            sites: (!self.sites.is_empty()).then(|| self.sites.clone()),
            ..Default::default()
        }
    }

    /// File < environment < flags, checked (resolved once).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.resolved
            .get_or_init(|| {
                self.data
                    .settings_over(self.layer())
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
            .map_err(anyhow::Error::msg)
    }
}

/// The discovery interfaces a choice means on this host; an address this
/// host does not have is an error that lists those it has.
pub(super) fn discovery_interfaces(s: &Settings) -> anyhow::Result<Vec<HostInterface>> {
    let host = crate::discovery::interfaces::host_interfaces()
        .map_err(|e| anyhow::anyhow!("listing this host's interfaces: {e}"))?;
    crate::discovery::interfaces::resolve(&s.discovery_interfaces, &host)
        .map_err(anyhow::Error::msg)
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let settings = a.settings()?;
    if let Some(f) = &settings.file {
        tracing::info!(file = %f.display(), "settings read");
    }
    let interfaces = discovery_interfaces(&settings)?;
    // The certificate first: a bad one should stop us before anything runs.
    let certs = match &settings.tls {
        Some((cert, key)) => Some(crate::tls::Certs::open(cert, key).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut config = app_config(&settings, interfaces);
    // `poll = false` (--no-poll) takes the poll role away: a node must not
    // lease cameras it will not poll.
    let mut roles = settings.roles;
    roles.poll &= settings.poll;
    config.node = Some(crate::fleet::cluster::NodeConfig {
        name: settings.node_name.clone(),
        roles,
        sites: settings.sites.clone(),
    });
    // One server per SQLite file; held until this process ends.
    let _lock = crate::db::lock_sqlite(&config.database_url())?;
    let state = app::build(&config).await?;
    tracing::info!(node = %settings.node_name, roles = %roles, sites = ?settings.sites, "node");
    if settings.database_url.is_some() && settings.storage_url.is_none() && roles.record {
        tracing::warn!(
            "recordings go to this node's local disk: other nodes on this database cannot play them (give every node the same storage_url)"
        );
    }
    // The first heartbeat before any worker: leases known, leadership
    // tried. A node that cannot reach the database does not start.
    if let Some(c) = &state.cluster {
        c.beat().await?;
    }
    if state.users.count().await? == 0 {
        eprintln!(
            "No users yet: create one with `camfleet user add --admin NAME --data-dir {}`",
            settings.data_dir.display()
        );
    }
    let tcp = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", settings.listen))?;
    let local = tcp.local_addr()?;
    let scheme = if certs.is_some() { "https" } else { "http" };
    println!("camfleet listening on {scheme}://{local}");
    if state.discovery.config.interfaces.is_empty() {
        tracing::info!("no discovery interface configured: multicast discovery is off");
    }
    let (stop, shutdown) = crate::shutdown::channel();
    match &settings.public_url {
        Some(url) => state
            .alerting
            .set_base_url(url.as_str().trim_end_matches('/')),
        None => state.alerting.set_base_url(&format!("{scheme}://{local}")),
    }
    let mut workers: Vec<_> = app::spawn_cluster(&state, shutdown.clone())
        .into_iter()
        .collect();
    if roles.notify {
        workers.push(app::spawn_notifier(&state, shutdown.clone())?);
    }
    if roles.jobs {
        workers.push(app::spawn_rollouts(&state, shutdown.clone()));
        workers.push(app::spawn_jobs(&state, shutdown.clone()));
    }
    if roles.record {
        workers.push(app::spawn_recordings(
            &state,
            settings.data_dir.join("spool"),
            shutdown.clone(),
        ));
    }
    if roles.web {
        workers.push(app::spawn_hello_listener(&state, shutdown.clone()));
    }
    if settings.poll && roles.jobs {
        workers.push(app::spawn_drift_checker(
            &state,
            std::time::Duration::from_secs(6 * 3600),
            shutdown.clone(),
        ));
    }
    if settings.poll && roles.poll {
        if settings.events {
            workers.push(app::spawn_events(
                &state,
                Default::default(),
                shutdown.clone(),
            ));
        }
        workers.push(app::spawn_poller(
            &state,
            crate::fleet::poller::PollerConfig {
                interval: settings.poll_interval,
                ..Default::default()
            },
            shutdown,
        ));
    }
    // A node without the web role answers only its health check and
    // metrics (for the load balancer and Prometheus).
    let router = crate::web::router_for(state, roles.web);
    // systemd (Type=notify): ready once the socket is bound and the
    // workers run; a no-op outside systemd.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let served = match certs {
        Some(certs) => {
            certs.reload_on_sighup();
            let tls = crate::tls::TlsListener::new(tcp, certs)?;
            crate::web::server::serve(tls, router, super::interrupted()).await
        }
        None => crate::web::server::serve(tcp, router, super::interrupted()).await,
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    stop.fire();
    for w in workers {
        let _ = w.await;
    }
    served?;
    Ok(())
}
