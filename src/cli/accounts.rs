//! `camfleet user add|passwd` and `camfleet token create`: accounts from
//! the host's command line (the operator holds the data directory, so
//! acts with full rights, as `cli` in the audit log).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::serve::DataArgs;
use crate::app;
use crate::fleet::audit::Actor;
use crate::fleet::users::{NewUser, Role};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user. Without --password-file a password is generated,
    /// shown once, and must be changed at first login.
    Add(UserAdd),
    /// Set a user's password (ends their sessions, revokes their tokens).
    /// Without --password-file one is generated, shown once, and must be
    /// changed at the next login.
    Passwd(UserPasswd),
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
    /// A site the user sees (by name; repeat for several).
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// The user sees every site, including ones added later.
    #[arg(long)]
    pub all_sites: bool,
    /// File whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Debug)]
pub struct UserPasswd {
    pub name: String,
    /// File whose first line is the new password (not forced to change).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make an API token for a user; it is printed once (for scripts and
    /// Prometheus: `Authorization: Bearer <token>`).
    Create(TokenCreate),
}

#[derive(Args, Debug)]
pub struct TokenCreate {
    /// The user the token acts as (with their role and sites).
    pub user: String,
    /// What the token is for.
    #[arg(long, default_value = "command line")]
    pub name: String,
    /// Days until it expires (default: never).
    #[arg(long)]
    pub days: Option<u32>,
    #[command(flatten)]
    pub data: DataArgs,
}

fn read_password(f: &std::path::Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(f)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn generated() -> String {
    crate::fleet::sessions::random_token()[..20].to_string()
}

pub async fn user(c: UserCommand) -> anyhow::Result<()> {
    let op = Actor::operator("cli");
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
                Some(f) => (read_password(f)?, false),
                None => (generated(), true),
            };
            let state = app::build(&a.data.app_config()?).await?;
            let mut sites = Vec::new();
            for name in &a.sites {
                let s = state
                    .sites
                    .by_name(name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no site {name:?}"))?;
                sites.push(s.id);
            }
            let u = state
                .users
                .create_with(
                    &a.name,
                    &password,
                    role,
                    NewUser {
                        all_sites: a.all_sites,
                        sites,
                        must_change_password: generated,
                    },
                    &op,
                )
                .await?;
            println!("created user {} ({})", u.username, u.role);
            if role != Role::Admin && !a.all_sites && a.sites.is_empty() {
                println!(
                    "note: {} sees no devices until given sites (--site NAME or --all-sites, or on the users page)",
                    u.username
                );
            }
            if generated {
                println!("password (shown once; to be changed at first login): {password}");
            }
            Ok(())
        }
        UserCommand::Passwd(a) => {
            let (password, generated) = match &a.password_file {
                Some(f) => (read_password(f)?, false),
                None => (generated(), true),
            };
            let state = app::build(&a.data.app_config()?).await?;
            state
                .users
                .set_password(&a.name, &password, generated, &op)
                .await?;
            println!(
                "password of {} set; their sessions and tokens are ended",
                a.name
            );
            if generated {
                println!("password (shown once; to be changed at next login): {password}");
            }
            Ok(())
        }
    }
}

pub async fn token(c: TokenCommand) -> anyhow::Result<()> {
    match c {
        TokenCommand::Create(a) => {
            let state = app::build(&a.data.app_config()?).await?;
            let u = state
                .users
                .list(&Actor::operator("cli"))
                .await?
                .into_iter()
                .find(|u| u.username == a.user)
                .ok_or_else(|| anyhow::anyhow!("no user {:?}", a.user))?;
            let (token, _) = state
                .tokens
                .create(u.id, &a.name, a.days, &Actor::operator("cli"))
                .await?;
            println!("{token}");
            Ok(())
        }
    }
}
