//! Subcommands. Each parses its flags, calls the library, prints a table or JSON.

mod accounts;
mod bench;
pub use bench::PROCESS_START;
mod discover;
pub mod memory;
mod ops;
mod probe;
mod provision;
mod record;
mod serve;
mod simulate;
mod table;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "camfleet",
    version,
    about = "Manage a fleet of ONVIF IP cameras"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start simulated cameras and discover and adopt them, printing a table.
    Demo(simulate::DemoArgs),
    /// Run simulated ONVIF cameras on loopback until interrupted.
    Simulate(simulate::SimulateArgs),
    /// Find cameras: multicast WS-Discovery, or a unicast sweep of a CIDR.
    Discover(discover::DiscoverArgs),
    /// Read everything camfleet needs from one camera (the adopt sequence).
    Probe(probe::ProbeArgs),
    /// Run the web app.
    Serve(Box<serve::ServeArgs>),
    /// Apply a provisioning profile to devices (or show the plan).
    Provision(provision::ProvisionArgs),
    /// Record one camera's stream into the storage tier until Ctrl-C.
    Record(record::RecordArgs),
    /// Fill gaps in recorded devices' video from their cameras' own
    /// recordings (ONVIF Profile G), once.
    Backfill(record::BackfillArgs),
    /// Manage users.
    #[command(subcommand)]
    User(accounts::UserCommand),
    /// Make API tokens.
    #[command(subcommand)]
    Token(accounts::TokenCommand),
    /// Check the settings, or print an example settings file.
    #[command(subcommand)]
    Config(ops::ConfigCommand),
    /// Bring the database schema up to date (for `serve --no-migrate`).
    Migrate(ops::MigrateArgs),
    /// Back up the database (SQLite) and the secret key into a directory.
    Backup(ops::BackupArgs),
    /// Restore a backup into a fresh data directory.
    Restore(ops::RestoreArgs),
    /// Print CAMFLEET-MIB (optionally under your own enterprise number).
    Mib(ops::MibArgs),
    /// Ask a running camfleet's health check (exit 0 when healthy).
    Health(ops::HealthArgs),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl Cli {
    /// Commands that print a result and end, where `| head` should end
    /// them quietly (SIGPIPE default). Servers must not: a client closing
    /// its connection mid-answer would kill the whole process.
    pub fn is_short_lived(&self) -> bool {
        matches!(
            self.command,
            Command::Discover(_)
                | Command::Probe(_)
                | Command::User(_)
                | Command::Token(_)
                | Command::Config(_)
                | Command::Mib(_)
                | Command::Health(_)
                | Command::Migrate(_)
                | Command::Backup(_)
                | Command::Restore(_)
        )
    }

    /// How log lines are written: `serve` reads it from its settings (an
    /// unreadable file is reported later, by the command itself).
    pub fn log_format(&self) -> crate::config::LogFormat {
        match &self.command {
            Command::Serve(a) => a.settings().map(|s| s.log_format).unwrap_or_default(),
            _ => std::env::var("CAMFLEET_LOG_FORMAT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    raise_fd_limit();
    match cli.command {
        Command::Demo(a) => simulate::demo(a).await,
        Command::Simulate(a) => simulate::simulate(a).await,
        Command::Discover(a) => discover::discover(a).await,
        Command::Probe(a) => probe::probe(a).await,
        Command::Bench(b) => bench::run(b).await,
        Command::Serve(a) => serve::serve(*a).await,
        Command::Provision(a) => provision::provision(a).await,
        Command::Record(a) => record::record(a).await,
        Command::Backfill(a) => record::backfill(a).await,
        Command::User(c) => accounts::user(c).await,
        Command::Token(c) => accounts::token(c).await,
        Command::Config(c) => ops::config(c).await,
        Command::Migrate(a) => ops::migrate(a).await,
        Command::Backup(a) => ops::backup(a).await,
        Command::Restore(a) => ops::restore(a).await,
        Command::Mib(a) => ops::mib(a),
        Command::Health(a) => ops::health(a).await,
    }
}

/// Credentials from flags: a password, a file holding it, or none.
#[derive(Args, Debug, Clone)]
pub struct CredentialArgs {
    /// Camera user name.
    #[arg(long, short = 'u', env = "CAMFLEET_USER")]
    pub user: Option<String>,
    /// Camera password (prefer --password-file or CAMFLEET_PASSWORD).
    #[arg(
        long,
        env = "CAMFLEET_PASSWORD",
        hide_env_values = true,
        conflicts_with = "password_file"
    )]
    pub password: Option<String>,
    /// File whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

impl CredentialArgs {
    pub fn credentials(&self) -> anyhow::Result<Option<camfleet_onvif::Credentials>> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("reading password file {}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            (None, None) => {
                anyhow::bail!("--user needs --password, --password-file or CAMFLEET_PASSWORD")
            }
        };
        Ok(Some(camfleet_onvif::Credentials {
            username: user.clone(),
            password,
        }))
    }
}

use crate::onvif as camfleet_onvif;

/// The work was done for some and failed for others (some devices, some
/// gaps, some hosts): the process exits with [`PARTIAL_EXIT_CODE`], so a
/// script can tell it from a total failure (1) and from success (0).
#[derive(Debug)]
pub struct PartialFailure(pub String);

impl std::fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PartialFailure {}

pub const PARTIAL_EXIT_CODE: u8 = 3;

/// Wait for Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Thousands of simulated cameras, or adopting a large fleet, need one socket
/// each: raise the soft open-files limit to the hard limit.
fn raise_fd_limit() {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit/setrlimit on a struct we own.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0
            && lim.rlim_cur < lim.rlim_max
        {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
                tracing::debug!("could not raise the open-files limit");
            }
        }
    }
}
