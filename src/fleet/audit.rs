//! The audit log: every change, who made it, when, before → after.

use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

use crate::db::entities::audit_log;
use crate::error::Result;

/// Who acted: a user name, or `system` for camfleet's own work.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            name: "system".into(),
            ip: None,
        }
    }

    pub fn user(name: &str) -> Self {
        Self {
            name: name.into(),
            ip: None,
        }
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
