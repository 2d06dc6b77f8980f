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
    let url = cfg
        .database_url
        .clone()
        .unwrap_or_else(|| crate::db::sqlite_url(&cfg.data_dir));
    let db = crate::db::connect(&url).await?;
    let secrets = Arc::new(SecretBox::load_or_create(&cfg.data_dir)?);
    let discovery = crate::fleet::discovery::DiscoveryService::new(
        cfg.discovery.clone(),
        crate::onvif::Transport::new(crate::onvif::TransportConfig::default())
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?,
        clock.clone(),
    );
    Ok(Arc::new(AppState::new(
        db,
        secrets,
        clock,
        discovery,
        cfg.secure_cookies,
    )))
}
