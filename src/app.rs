//! Wiring: from a data directory (or a database URL) to the running
//! services the web app and the CLI share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::discovery::DiscoveryService;
use crate::fleet::inventory::Inventory;
use crate::fleet::sessions::Sessions;
use crate::fleet::sites::Sites;
use crate::fleet::tokens::ApiTokens;
use crate::fleet::users::Users;
use crate::secrets::SecretBox;

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; default: SQLite in `data_dir`.
    pub database_url: Option<String>,
    pub secure_cookies: bool,
    pub discovery: crate::fleet::discovery::DiscoveryConfig,
    /// `s3://bucket?endpoint=…` for an S3-compatible tier; default: the
    /// `storage/` directory under `data_dir`.
    pub storage_url: Option<String>,
    /// A second, `cold` tier (an S3 URL or a directory) for tier migration.
    pub cold_storage_url: Option<String>,
    /// Proxies to believe, the public URL, TLS.
    pub web: crate::web::net::WebConfig,
    /// Bring the schema up to date on connect (false: refuse to start on an
    /// old schema; `camfleet migrate` does it).
    pub migrate: bool,
    /// The enterprise number SNMP notifications are sent under.
    pub snmp_enterprise: u32,
    /// Caps on live view.
    pub live: crate::recorder::live::Limits,
    /// This server as a node of a cluster (`serve`): leases, heartbeat,
    /// leadership. None: every device and every leadership is this
    /// process's (the CLI, tests of one service).
    pub node: Option<crate::fleet::cluster::NodeConfig>,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            secure_cookies: false,
            discovery: Default::default(),
            storage_url: None,
            cold_storage_url: None,
            web: Default::default(),
            migrate: true,
            snmp_enterprise: crate::config::DEFAULT_ENTERPRISE,
            live: Default::default(),
            node: None,
        }
    }
}

impl AppConfig {
    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| crate::db::sqlite_url(&self.data_dir))
    }
}

pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::with_source(
            ErrorKind::Internal,
            format!("creating data directory {}", dir.display()),
            e,
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

pub async fn build(cfg: &AppConfig) -> Result<Arc<AppState>> {
    build_with_clock(cfg, SystemClock::shared()).await
}

pub async fn build_with_clock(cfg: &AppConfig, clock: SharedClock) -> Result<Arc<AppState>> {
    ensure_data_dir(&cfg.data_dir)?;
    if let Some(n) = &cfg.node {
        crate::fleet::cluster::set_this_node(&n.name);
    }
    let db = crate::db::connect_with(&cfg.database_url(), cfg.migrate).await?;
    let secrets = Arc::new(SecretBox::load_or_create(&cfg.data_dir)?);
    crate::fleet::cluster::check_secret_key(&db, &secrets).await?;
    let discovery = crate::fleet::discovery::DiscoveryService::new(
        cfg.discovery.clone(),
        crate::onvif::Transport::new(crate::onvif::TransportConfig::default())
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?,
        clock.clone(),
    );
    let storage = match &cfg.storage_url {
        Some(url) => crate::storage::Storage::s3(url)?,
        None => crate::storage::Storage::local(&cfg.data_dir.join("storage"))?,
    };
    let cold = match &cfg.cold_storage_url {
        Some(url) if url.starts_with("s3://") => Some(crate::storage::Storage::s3(url)?),
        Some(dir) => Some(crate::storage::Storage::local(std::path::Path::new(dir))?),
        None => None,
    };
    let mut state = AppState::new(db, secrets, clock, discovery, cfg.secure_cookies)
        .with_storage(storage, cold, Some(cfg.data_dir.clone()))
        .with_web_config(cfg.web.clone());
    state.snmp_enterprise = cfg.snmp_enterprise;
    state.console.snmp_enterprise = cfg.snmp_enterprise;
    state.live = Arc::new(crate::recorder::live::LiveHub::new(cfg.live.clone()));
    state.cluster = cfg
        .node
        .clone()
        .map(|n| crate::fleet::cluster::Cluster::new(state.db.clone(), state.clock.clone(), n));
    let state = Arc::new(state);
    // The default rules and jobs, seeded once: nodes starting together on
    // one PostgreSQL take turns (the migrations' lock), so the second finds
    // them made instead of colliding on their names.
    let seeded = crate::db::with_advisory_lock(&state.db, crate::db::MIGRATION_LOCK, async {
        let r = async {
            state.alerting.ensure_default_rules().await?;
            state.jobs.ensure_defaults().await
        }
        .await;
        Ok::<_, sea_orm::DbErr>(r)
    })
    .await?;
    seeded?;
    // Tasks that were running when camfleet stopped are interrupted now
    // (the task page offers to resume them); other live nodes' are theirs.
    let me = crate::fleet::cluster::this_node();
    let others: Vec<String> =
        crate::fleet::cluster::alive_nodes(&state.db, state.clock.now_utc().timestamp_millis())
            .await?
            .into_iter()
            .filter(|n| *n != me)
            .collect();
    let lost = state.jobs.recover(&others).await?;
    if lost > 0 {
        tracing::warn!(runs = lost, "job runs interrupted by a restart");
    }
    let interrupted = state.provisioner.recover(&others).await?;
    if interrupted > 0 {
        tracing::warn!(interrupted, "provisioning tasks interrupted by a restart");
    }
    Ok(state)
}

/// Start the health poller in the background; it stops when `shutdown`
/// fires. Poll results refresh the list caches; state changes are logged
/// (and, with alerting, notified).
pub fn spawn_poller(
    state: &Arc<AppState>,
    config: crate::fleet::poller::PollerConfig,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    // The metrics recorder first, so the first poll's samples are kept.
    crate::web::metrics::handle();
    let poller = crate::fleet::poller::Poller::new(
        state.db.clone(),
        state.inventory.secrets(),
        crate::fleet::poller::poll_transport()
            .unwrap_or_else(|_| state.discovery.transport().clone()),
        state.clock.clone(),
        config,
    );
    // In a cluster: only this node's cameras, and the rollup is the
    // leader's (`spawn_jobs`).
    let poller = Arc::new(match &state.cluster {
        Some(c) => poller.with_cluster(c.share(crate::fleet::cluster::LeaseKind::Poll)),
        None => poller,
    });
    let st = state.clone();
    tokio::spawn(poller.run(shutdown, move |report| {
        st.inventory.touch();
        if !report.notices.is_empty() {
            let st = st.clone();
            let notices = report.notices.clone();
            tokio::spawn(async move {
                if let Err(e) = st.alerting.process(&notices).await {
                    tracing::warn!(error = %e, "alerting failed");
                }
            });
        }
        crate::web::metrics::record_cycle(&report);
        for n in &report.notices {
            if let crate::fleet::poller::Notice::Transition {
                device_id,
                from,
                to,
                reason,
            } = n
            {
                tracing::info!(
                    device = device_id,
                    from = from.as_str(),
                    to = to.as_str(),
                    reason = reason.as_str(),
                    "device state changed"
                );
            }
        }
    }))
}

/// Start the camera event subscriptions (PullPoint) in the background; their
/// notices go to alerting. Stops when `shutdown` fires (unsubscribing).
pub fn spawn_events(
    state: &Arc<AppState>,
    config: crate::fleet::events::EventConfig,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let manager = Arc::new(
        crate::fleet::events::EventManager::new(
            state.db.clone(),
            state.inventory.secrets(),
            crate::fleet::events::transport()
                .unwrap_or_else(|_| state.discovery.transport().clone()),
            state.clock.clone(),
            config,
        )
        .with_share(state.share(crate::fleet::cluster::LeaseKind::Poll)),
    );
    let st = state.clone();
    tokio::spawn(manager.run(shutdown, move |notices| {
        for n in &notices {
            if let crate::fleet::poller::Notice::Event {
                device_id,
                event: crate::fleet::health::HealthEvent::CameraEvent { topic, summary, .. },
            } = n
            {
                tracing::info!(device = device_id, topic = topic.as_str(), "{summary}");
            }
        }
        let st = st.clone();
        tokio::spawn(async move {
            if let Err(e) = st.alerting.process(&notices).await {
                tracing::warn!(error = %e, "alerting failed");
            }
        });
    }))
}

/// Check provisioned devices against their profiles every `every`, and
/// alert on drift (and on its end).
pub fn spawn_drift_checker(
    state: &Arc<AppState>,
    every: std::time::Duration,
    mut shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let st = state.clone();
    let lead = state.jobs_lead();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if !lead.is_leader() {
                continue;
            }
            match st.provisioner.check_drift(None).await {
                Ok((newly, cleared)) => {
                    let notices = crate::fleet::provision::drift_notices(&newly, &cleared);
                    if let Err(e) = st.alerting.process(&notices).await {
                        tracing::warn!(error = %e, "alerting failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "drift check failed"),
            }
        }
    })
}

/// Drive firmware rollouts (every 5 s); failures go to alerting.
pub fn spawn_rollouts(
    state: &Arc<AppState>,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let st = state.clone();
    tokio::spawn(state.firmware_lib.clone().run(
        std::time::Duration::from_secs(5),
        state.jobs_lead(),
        shutdown,
        move |notices| {
            let st = st.clone();
            tokio::spawn(async move {
                if let Err(e) = st.alerting.process(&notices).await {
                    tracing::warn!(error = %e, "alerting failed");
                }
            });
        },
    ))
}

/// Record every device whose policy says so (spool under `spool`);
/// recordings that stop or resume go to alerting.
pub fn spawn_recordings(
    state: &Arc<AppState>,
    spool: std::path::PathBuf,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let m = Arc::new(
        crate::fleet::recording::RecordingManager::new(
            state.db.clone(),
            state.inventory.secrets(),
            state.storage.clone(),
            state.clock.clone(),
            spool,
        )
        .with_live(state.live.clone())
        .with_cluster(
            state.share(crate::fleet::cluster::LeaseKind::Record),
            state
                .cluster
                .as_ref()
                .map(|c| c.recording_counter())
                .unwrap_or_default(),
        ),
    );
    let st = state.clone();
    tokio::spawn(m.run(shutdown, move |notices| {
        let st = st.clone();
        tokio::spawn(async move {
            if let Err(e) = st.alerting.process(&notices).await {
                tracing::warn!(error = %e, "alerting failed");
            }
        });
    }))
}

/// Listen for WS-Discovery Hello/Bye on every configured interface; a
/// camera that announces itself shows up on the discovery page.
pub fn spawn_hello_listener(
    state: &Arc<AppState>,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let st = state.clone();
    tokio::spawn(async move { st.discovery.listen_hellos(&st.inventory, shutdown).await })
}

/// Run scheduled jobs (checked every 20 s).
pub fn spawn_jobs(
    state: &Arc<AppState>,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let lead = state.jobs_lead();
    let st = state.clone();
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        // The leader also rolls health samples up (whichever node polls)
        // and closes what dead nodes left running.
        let reaper = async {
            let mut last_rollup: Option<std::time::Duration> = None;
            let mut rolled_to: Option<i64> = None;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                if st.cluster.is_none() || !lead.is_leader() {
                    rolled_to = None;
                    continue;
                }
                let now = st.clock.now_utc().timestamp_millis();
                let mono = st.clock.monotonic();
                if last_rollup
                    .is_none_or(|at| mono.saturating_sub(at) >= std::time::Duration::from_secs(300))
                {
                    last_rollup = Some(mono);
                    // A node that just became the leader catches up on
                    // the whole window once (rolled_to is its own).
                    match crate::fleet::samples::rollup_since(&st.db, now, rolled_to).await {
                        Ok((_, end)) => rolled_to = Some(end),
                        Err(e) => tracing::warn!(error = %e, "health rollup failed"),
                    }
                }
                let Ok(alive) = crate::fleet::cluster::alive_nodes(&st.db, now).await else {
                    continue;
                };
                match st.jobs.recover(&alive).await {
                    Ok(n) if n > 0 => {
                        tracing::warn!(runs = n, "job runs of a dead node interrupted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "recovering dead nodes' job runs failed"),
                }
                match st.provisioner.recover(&alive).await {
                    Ok(n) if n > 0 => {
                        tracing::warn!(tasks = n, "provisioning tasks of a dead node interrupted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "recovering dead nodes' tasks failed"),
                }
            }
        };
        tokio::select! {
            _ = stop.wait() => {}
            _ = reaper => {}
        }
    });
    tokio::spawn(state.jobs.clone().run_loop(
        std::time::Duration::from_secs(20),
        state.jobs_lead(),
        shutdown,
    ))
}

/// Start the notification worker (sends the alert outbox) in the background.
pub fn spawn_notifier(
    state: &Arc<AppState>,
    shutdown: crate::shutdown::Shutdown,
) -> Result<tokio::task::JoinHandle<()>> {
    let n = Arc::new(
        crate::fleet::notifier::Notifier::new(
            state.db.clone(),
            state.inventory.secrets(),
            state.clock.clone(),
        )?
        .with_snmp_enterprise(state.snmp_enterprise),
    );
    Ok(tokio::spawn(n.run(state.notify_lead(), shutdown)))
}

/// Start the node's heartbeat (leases, leadership); None outside a cluster.
pub fn spawn_cluster(
    state: &Arc<AppState>,
    shutdown: crate::shutdown::Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let c = state.cluster.clone()?;
    Some(tokio::spawn(c.run(shutdown)))
}

// ---------- the application state: every service, built once ----------

/// Every service the web app, the workers and the CLI share. Built here,
/// in the composition root; `web` only holds an `Arc` of it.
pub struct AppState {
    pub db: sea_orm::DatabaseConnection,
    pub users: Users,
    pub sessions: Sessions,
    pub inventory: Arc<Inventory>,
    pub discovery: Arc<DiscoveryService>,
    pub clock: SharedClock,
    /// Set the cookie `Secure` flag (served over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Proxies to believe, the public URL, TLS (see [`net`]).
    pub web: crate::web::net::WebConfig,
    /// The enterprise number SNMP notifications are sent under.
    pub snmp_enterprise: u32,
    pub auth_cache: crate::web::auth::AuthCache,
    pub sites: Sites,
    pub tokens: ApiTokens,
    pub progress: Arc<crate::fleet::progress::ProgressHub>,
    pub alerting: crate::fleet::alerting::Alerting,
    pub provisioner: Arc<crate::fleet::provision::Provisioner>,
    pub storage: Arc<crate::storage::Storage>,
    /// Every storage tier by name (`hot` is `storage`; `cold` if set up).
    pub tiers: std::collections::HashMap<String, Arc<crate::storage::Storage>>,
    /// Edge backfill, when there is a data directory for its spool.
    pub backfill: Option<Arc<crate::fleet::backfill::Backfill>>,
    pub firmware_lib: Arc<crate::fleet::firmware::Firmware>,
    pub jobs: Arc<crate::fleet::jobs::Jobs>,
    /// What pages and the API read and change, scoped by the actor.
    pub console: crate::fleet::console::Console,
    /// Caps on heavy requests running at once.
    pub limits: Limits,
    /// Live view: every camera's channel on this node.
    pub live: Arc<crate::recorder::live::LiveHub>,
    /// Where uploads are streamed before they are stored.
    pub upload_dir: PathBuf,
    /// This server as a cluster node (`serve`); None: it does everything.
    pub cluster: Option<Arc<crate::fleet::cluster::Cluster>>,
    secrets: Arc<crate::secrets::SecretBox>,
}

impl AppState {
    pub fn new(
        db: sea_orm::DatabaseConnection,
        secrets: Arc<crate::secrets::SecretBox>,
        clock: SharedClock,
        discovery: DiscoveryService,
        secure_cookies: bool,
    ) -> Self {
        // In memory until `with_storage` gives the configured tier.
        let storage = Arc::new(crate::storage::Storage::memory());
        let provisioner = Arc::new(crate::fleet::provision::Provisioner::new(
            db.clone(),
            secrets.clone(),
            discovery.transport().clone(),
            clock.clone(),
        ));
        let firmware = Arc::new(crate::fleet::firmware::Firmware::new(
            db.clone(),
            storage.clone(),
            secrets.clone(),
            discovery.transport().clone(),
            clock.clone(),
        ));
        let inventory = Arc::new(Inventory::new(db.clone(), secrets.clone(), clock.clone()));
        Self {
            users: Users::new(db.clone(), clock.clone()),
            sessions: Sessions::new(db.clone(), clock.clone()),
            storage: storage.clone(),
            tiers: [("hot".to_string(), storage.clone())].into_iter().collect(),
            backfill: None,
            firmware_lib: firmware.clone(),
            secrets: secrets.clone(),
            provisioner: provisioner.clone(),
            jobs: Arc::new(crate::fleet::jobs::Jobs::new(
                crate::fleet::jobs::JobContext {
                    db: db.clone(),
                    clock: clock.clone(),
                    tiers: [("hot".to_string(), storage.clone())].into_iter().collect(),
                    provisioner,
                    firmware: firmware.clone(),
                    discovery: None,
                    data_dir: None,
                    backfill: None,
                },
            )),
            console: crate::fleet::console::Console::new(
                db.clone(),
                clock.clone(),
                secrets.clone(),
                inventory.clone(),
            ),
            limits: Limits::default(),
            live: Default::default(),
            upload_dir: std::env::temp_dir(),
            inventory,
            sites: Sites::new(db.clone(), clock.clone()),
            tokens: ApiTokens::new(db.clone(), clock.clone()),
            alerting: crate::fleet::alerting::Alerting::new(
                db.clone(),
                clock.clone(),
                String::new(),
            ),
            discovery: Arc::new(discovery),
            db,
            clock,
            secure_cookies,
            web: Default::default(),
            snmp_enterprise: crate::config::DEFAULT_ENTERPRISE,
            auth_cache: Default::default(),
            progress: Default::default(),
            cluster: None,
        }
    }
}

impl AppState {
    /// How this server is reached (proxies, public URL, TLS).
    pub fn with_web_config(mut self, web: crate::web::net::WebConfig) -> Self {
        if web.tls {
            self.secure_cookies = true;
        }
        self.web = web;
        self
    }

    /// Use these storage tiers (the local directory or S3 from the
    /// config as `hot`, an optional `cold` one) and this data directory
    /// (database backups).
    pub fn with_storage(
        mut self,
        storage: crate::storage::Storage,
        cold: Option<crate::storage::Storage>,
        data_dir: Option<std::path::PathBuf>,
    ) -> Self {
        // Uploads stream to the data directory (same disk as the data,
        // not a small tmpfs).
        if let Some(d) = &data_dir {
            let up = d.join("uploads");
            if std::fs::create_dir_all(&up).is_ok() {
                self.upload_dir = up;
            }
        }
        let storage = Arc::new(storage);
        self.firmware_lib = Arc::new(crate::fleet::firmware::Firmware::new(
            self.db.clone(),
            storage.clone(),
            self.secrets.clone(),
            self.discovery.transport().clone(),
            self.clock.clone(),
        ));
        let mut tiers: std::collections::HashMap<String, Arc<crate::storage::Storage>> =
            [("hot".to_string(), storage.clone())].into_iter().collect();
        if let Some(c) = cold {
            tiers.insert("cold".into(), Arc::new(c));
        }
        let tiers_for_pages = tiers.clone();
        let backfill = data_dir.as_ref().map(|dir| {
            Arc::new(crate::fleet::backfill::Backfill::new(
                self.db.clone(),
                self.secrets.clone(),
                storage.clone(),
                self.discovery.transport().clone(),
                self.clock.clone(),
                dir.join("spool-backfill"),
            ))
        });
        self.jobs = Arc::new(crate::fleet::jobs::Jobs::new(
            crate::fleet::jobs::JobContext {
                db: self.db.clone(),
                clock: self.clock.clone(),
                tiers,
                provisioner: self.provisioner.clone(),
                firmware: self.firmware_lib.clone(),
                discovery: Some((
                    crate::fleet::discovery::DiscoveryService::new(
                        self.discovery.config.clone(),
                        self.discovery.transport().clone(),
                        self.clock.clone(),
                    ),
                    crate::fleet::inventory::Inventory::new(
                        self.db.clone(),
                        self.secrets.clone(),
                        self.clock.clone(),
                    ),
                )),
                backfill: backfill.clone(),
                data_dir,
            },
        ));
        self.storage = storage;
        self.tiers = tiers_for_pages;
        self.backfill = backfill;
        self
    }

    /// The devices this node polls or records (all of them outside a
    /// cluster).
    pub fn share(&self, kind: crate::fleet::cluster::LeaseKind) -> crate::fleet::cluster::Share {
        self.cluster
            .as_ref()
            .map_or_else(crate::fleet::cluster::Share::all, |c| c.share(kind))
    }

    /// Does this node lead jobs, rollouts and drift checks?
    pub fn jobs_lead(&self) -> crate::fleet::cluster::Lead {
        self.cluster
            .as_ref()
            .map_or_else(crate::fleet::cluster::Lead::always, |c| c.jobs_lead())
    }

    /// Does this node lead the notifier?
    pub fn notify_lead(&self) -> crate::fleet::cluster::Lead {
        self.cluster
            .as_ref()
            .map_or_else(crate::fleet::cluster::Lead::always, |c| c.notify_lead())
    }

    /// What discovery work needs (for the console).
    pub fn discovery_ops(&self) -> crate::fleet::console::discovery::DiscoveryOps {
        crate::fleet::console::discovery::DiscoveryOps {
            discovery: self.discovery.clone(),
            inventory: self.inventory.clone(),
            progress: self.progress.clone(),
        }
    }

    /// The services device actions may need (for the console).
    pub fn device_ops(&self) -> crate::fleet::console::devices::DeviceOps<'_> {
        crate::fleet::console::devices::DeviceOps {
            inventory: &self.inventory,
            provisioner: &self.provisioner,
            backfill: self.backfill.as_ref(),
            backfills: &self.limits.backfills,
        }
    }

    /// A storage tier by name.
    pub fn tier(&self, name: &str) -> crate::error::Result<Arc<crate::storage::Storage>> {
        self.tiers.get(name).cloned().ok_or_else(|| {
            crate::error::Error::new(
                crate::error::ErrorKind::Unavailable,
                format!("no storage tier {name:?} is configured here"),
            )
        })
    }
}

/// At most this many uploads, CSV imports, exports and manual backfills
/// run at once; more get "busy, try again" instead of memory or disk.
pub const MAX_UPLOADS: usize = 2;
pub const MAX_IMPORTS: usize = 2;
pub const MAX_EXPORTS: usize = 4;
pub const MAX_BACKFILLS: usize = 1;

/// Caps on heavy requests (a permit is held for the request's life).
pub struct Limits {
    uploads: Arc<tokio::sync::Semaphore>,
    imports: Arc<tokio::sync::Semaphore>,
    exports: Arc<tokio::sync::Semaphore>,
    /// Taken by the device action (its permit lives with the background run).
    pub(crate) backfills: Arc<tokio::sync::Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        let s = |n| Arc::new(tokio::sync::Semaphore::new(n));
        Self {
            uploads: s(MAX_UPLOADS),
            imports: s(MAX_IMPORTS),
            exports: s(MAX_EXPORTS),
            backfills: s(MAX_BACKFILLS),
        }
    }
}

fn permit(
    s: &Arc<tokio::sync::Semaphore>,
    what: &str,
) -> Result<tokio::sync::OwnedSemaphorePermit> {
    s.clone().try_acquire_owned().map_err(|_| {
        Error::new(
            ErrorKind::ResourceExhausted,
            format!("too many {what} at once; try again in a moment"),
        )
    })
}

impl Limits {
    pub fn upload(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        permit(&self.uploads, "uploads")
    }
    pub fn import(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        permit(&self.imports, "imports")
    }
    pub fn export(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        permit(&self.exports, "exports")
    }
}
