//! The audit log: every change, who made it, from where, when, before → after.
//!
//! [`Actor`] is also who a fleet service acts for: their role and site
//! scope travel with the name, so a service checks permission and scope
//! itself instead of trusting its caller to have done so.

use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

use super::access::Scope;
use super::users::Role;
use crate::db::entities::audit_log;
use crate::error::{Error, ErrorKind, Result};

/// Who acts: a logged-in user (with role, scope and client address), a
/// local operator at the command line, or `system` for camfleet's own work.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    /// The client address (from the TCP peer or the trusted proxy chain).
    pub ip: Option<String>,
    /// The account, for a logged-in user.
    pub user_id: Option<i32>,
    pub role: Role,
    pub scope: Scope,
}

impl Actor {
    /// camfleet's own work (schedules, the poller): full rights.
    pub fn system() -> Self {
        Self::operator("system")
    }

    /// Someone at this host's command line (`camfleet provision`, `user
    /// add`, the demo): they hold the data directory, so full rights.
    pub fn operator(name: &str) -> Self {
        Self {
            name: name.into(),
            ip: None,
            user_id: None,
            role: Role::Admin,
            scope: Scope::All,
        }
    }

    /// A logged-in user.
    pub fn user(name: &str, user_id: i32, role: Role, scope: Scope, ip: Option<String>) -> Self {
        Self {
            name: name.into(),
            ip,
            user_id: Some(user_id),
            role,
            scope,
        }
    }

    /// Refuse unless the role allows it.
    pub fn require(&self, allowed: impl FnOnce(Role) -> bool) -> Result<()> {
        if allowed(self.role) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("the {} role may not do this", self.role.as_str()),
            ))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

pub struct Entry<'a> {
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

pub async fn record(
    db: &impl ConnectionTrait,
    actor: &Actor,
    at: chrono::DateTime<chrono::Utc>,
    e: Entry<'_>,
) -> Result<()> {
    audit_log::ActiveModel {
        at: Set(at),
        actor: Set(actor.name.clone()),
        action: Set(e.action.into()),
        target_kind: Set(e.target_kind.into()),
        target_id: Set(e.target_id),
        before: Set(e.before),
        after: Set(e.after),
        ip: Set(actor.ip.clone()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
