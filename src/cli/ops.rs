//! Operating an installation: `config check|example`, `migrate`,
//! `backup`, `restore`, `mib`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::serve::{DataArgs, ServeArgs};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Read the settings (file < CAMFLEET_* environment < flags), check
    /// every value, and print the effective settings with secrets
    /// redacted. Exits non-zero on any error.
    Check(Box<ServeArgs>),
    /// Print a commented example settings file.
    Example,
}

pub async fn config(c: ConfigCommand) -> anyhow::Result<()> {
    match c {
        ConfigCommand::Example => {
            print!("{}", crate::config::EXAMPLE);
            Ok(())
        }
        ConfigCommand::Check(a) => {
            let s = a.settings()?;
            // Interfaces are checked against this host, as serve would.
            let ifaces = super::serve::discovery_interfaces(&s)?;
            if let Some((cert, key)) = &s.tls {
                crate::tls::load(cert, key).map_err(anyhow::Error::msg)?;
            }
            match &s.file {
                Some(f) => println!("# settings file: {}", f.display()),
                None => println!(
                    "# no settings file ({} does not exist); defaults, environment and flags",
                    crate::config::DEFAULT_PATH
                ),
            }
            if !ifaces.is_empty() {
                println!(
                    "# discovery on: {}",
                    crate::discovery::interfaces::describe(&ifaces)
                );
            }
            print!("{}", s.to_redacted_toml());
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn migrate(a: MigrateArgs) -> anyhow::Result<()> {
    let cfg = a.data.app_config()?;
    crate::app::ensure_data_dir(&cfg.data_dir)?;
    let n = crate::db::migrate(&cfg.database_url()).await?;
    println!(
        "database {}: {n} migration(s) applied",
        crate::config::redact_url(&cfg.database_url())
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The directory to put the backup in (a new subdirectory is made).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let cfg = a.data.app_config()?;
    // No migration: a backup reads the database as it is.
    let db = crate::db::connect_with(&cfg.database_url(), false).await?;
    let now = chrono::Utc::now();
    let r = crate::fleet::backup::backup(&db, &cfg.data_dir, &a.to, now).await?;
    println!(
        "backup in {} ({} database, {} devices, files: {})",
        r.dir.display(),
        r.manifest.database,
        r.manifest.devices,
        r.manifest
            .files
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &r.manifest.notes {
        println!("note: {n}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A backup directory made by `camfleet backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// Overwrite a database or key already in the data directory.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let cfg = a.data.app_config()?;
    let m = crate::fleet::backup::restore(&a.from, &cfg.data_dir, a.force)?;
    println!(
        "restored a backup of {} ({} devices, camfleet {}) into {}",
        m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        m.devices,
        m.camfleet_version,
        cfg.data_dir.display()
    );
    for n in &m.notes {
        println!("note: {n}");
    }
    println!("start camfleet on it; it migrates the database if this version is newer");
    Ok(())
}

#[derive(Args, Debug)]
pub struct MibArgs {
    /// Your organisation's IANA Private Enterprise Number (default 32473,
    /// the documentation number of RFC 5612).
    #[arg(long, default_value_t = crate::config::DEFAULT_ENTERPRISE)]
    pub enterprise: u32,
}

pub fn mib(a: MibArgs) -> anyhow::Result<()> {
    if a.enterprise == 0 {
        anyhow::bail!("--enterprise: an IANA Private Enterprise Number, not 0");
    }
    print!("{}", crate::notify::snmp::mib_for(a.enterprise));
    Ok(())
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The health check URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
}

/// Exit 0 when the health check answers 200 within 5 s (container
/// HEALTHCHECKs, monitoring scripts without curl).
pub async fn health(a: HealthArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resp = client.get(&a.url).send().await?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    println!("{status} {}", body.trim());
    if !status.is_success() {
        anyhow::bail!("unhealthy: {status}");
    }
    Ok(())
}
