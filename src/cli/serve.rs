//! `camfleet serve` and `camfleet user add`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::app::{self, AppConfig};
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;

#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Where the SQLite database, the secret key and local data live.
    #[arg(long, default_value = "data", env = "CAMFLEET_DATA_DIR")]
    pub data_dir: PathBuf,
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
    pub(super) fn config(&self, secure_cookies: bool) -> AppConfig {
        AppConfig {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            secure_cookies,
            discovery: Default::default(),
            storage_url: self.storage_url.clone(),
            cold_storage_url: self.cold_storage_url.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Mark cookies Secure (set when served over HTTPS, e.g. behind a proxy).
    #[arg(long)]
    pub secure_cookies: bool,
    /// Do not poll device health (e.g. a node that only serves the UI).
    #[arg(long)]
    pub no_poll: bool,
    /// Do not subscribe to camera events (PullPoint). Implied by --no-poll.
    #[arg(long)]
    pub no_events: bool,
    /// The address people reach camfleet at, for links in notifications
    /// (e.g. `https://camfleet.example`).
    #[arg(long, env = "CAMFLEET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Default poll interval in seconds (sites and devices may override).
    #[arg(long, default_value_t = 60)]
    pub poll_interval: u64,
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let state = app::build(&a.data.config(a.secure_cookies)).await?;
    if state.users.count().await? == 0 {
        eprintln!(
            "No users yet: create one with `camfleet user add --admin NAME --data-dir {}`",
            a.data.data_dir.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    println!("camfleet listening on http://{}", listener.local_addr()?);
    let (stop, shutdown) = crate::shutdown::channel();
    if let Some(url) = &a.public_url {
        state.alerting.set_base_url(url);
    }
    let notifier = app::spawn_notifier(&state, shutdown.clone())?;
    let rollouts = app::spawn_rollouts(&state, shutdown.clone());
    let jobs = app::spawn_jobs(&state, shutdown.clone());
    let recordings = app::spawn_recordings(&state, a.data.data_dir.join("spool"), shutdown.clone());
    let drift = (!a.no_poll).then(|| {
        app::spawn_drift_checker(
            &state,
            std::time::Duration::from_secs(6 * 3600),
            shutdown.clone(),
        )
    });
    let events = (!a.no_poll && !a.no_events)
        .then(|| app::spawn_events(&state, Default::default(), shutdown.clone()));
    let poller = (!a.no_poll).then(|| {
        app::spawn_poller(
            &state,
            crate::fleet::poller::PollerConfig {
                interval: std::time::Duration::from_secs(a.poll_interval.max(5)),
                ..Default::default()
            },
            shutdown,
        )
    });
    axum::serve(listener, crate::web::router(state))
        .with_graceful_shutdown(super::interrupted())
        .await?;
    stop.fire();
    if let Some(p) = poller {
        let _ = p.await;
    }
    if let Some(e) = events {
        let _ = e.await;
    }
    if let Some(d) = drift {
        let _ = d.await;
    }
    let _ = rollouts.await;
    let _ = jobs.await;
    let _ = recordings.await;
    let _ = notifier.await;
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user. Without --password-file a password is generated and shown once.
    Add(UserAdd),
}

#[derive(Args, Debug)]
pub struct UserAdd {
    pub name: String,
    /// admin, technician, procurement or viewer.
    #[arg(long, default_value = "viewer")]
    pub role: String,
    /// Shorthand for --role admin.
    #[arg(long)]
    pub admin: bool,
    /// File whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn user(c: UserCommand) -> anyhow::Result<()> {
    match c {
        UserCommand::Add(a) => {
            let role = if a.admin {
                Role::Admin
            } else {
                Role::parse(&a.role).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown role {:?} (admin, technician, procurement, viewer)",
                        a.role
                    )
                })?
            };
            let (password, generated) = match &a.password_file {
                Some(f) => (
                    std::fs::read_to_string(f)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    false,
                ),
                None => (
                    crate::fleet::sessions::random_token()[..20].to_string(),
                    true,
                ),
            };
            let state = app::build(&a.data.config(false)).await?;
            let u = state
                .users
                .create(&a.name, &password, role, &Actor::user("cli"))
                .await?;
            println!("created user {} ({})", u.username, u.role);
            if generated {
                println!("password (shown once): {password}");
            }
            Ok(())
        }
    }
}
