//! Wiring: from a data directory (or a database URL) to the running
//! services the web app and the CLI share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::secrets::SecretBox;
use crate::web::AppState;

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
    let db = crate::db::connect_with(&cfg.database_url(), cfg.migrate).await?;
    let secrets = Arc::new(SecretBox::load_or_create(&cfg.data_dir)?);
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
    let state = Arc::new(state);
    state.alerting.ensure_default_rules().await?;
    // Tasks that were running when camfleet stopped are interrupted now;
    // the task page offers to resume them.
    state.jobs.ensure_defaults().await?;
    let lost = state.jobs.recover().await?;
    if lost > 0 {
        tracing::warn!(runs = lost, "job runs interrupted by a restart");
    }
    let interrupted = state.provisioner.recover().await?;
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
    let poller = Arc::new(crate::fleet::poller::Poller::new(
        state.db.clone(),
        state.inventory.secrets(),
        crate::fleet::poller::poll_transport()
            .unwrap_or_else(|_| state.discovery.transport().clone()),
        state.clock.clone(),
        config,
    ));
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
    let manager = Arc::new(crate::fleet::events::EventManager::new(
        state.db.clone(),
        state.inventory.secrets(),
        state.discovery.transport().clone(),
        state.clock.clone(),
        config,
    ));
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
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
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
    let m = Arc::new(crate::fleet::recording::RecordingManager::new(
        state.db.clone(),
        state.inventory.secrets(),
        state.storage.clone(),
        state.clock.clone(),
        spool,
    ));
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
    tokio::spawn(
        state
            .jobs
            .clone()
            .run_loop(std::time::Duration::from_secs(20), shutdown),
    )
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
    Ok(tokio::spawn(n.run(shutdown)))
}
