//! The console: what the web pages and the JSON API read and change, one
//! method per page or operation, each taking the [`Actor`] it acts for.
//! Every method checks the actor's role and limits what it reads or
//! changes to the actor's site scope itself, so a handler cannot forget
//! a check: handlers parse, call one method here, and render or
//! serialize. `src/web` holds no database access at all (a test greps).
//!
//! The long-lived workers (poller, recorder, alerting, provisioner,
//! firmware, jobs) keep their own services; the console composes them
//! where an operation needs one.

pub mod alert_settings;
pub mod alerts;
pub mod backups;
pub mod device_list;
pub mod devices;
pub mod discovery;
pub mod firmware;
pub mod inventory;
pub mod live;
pub mod metrics;
pub mod overview;
pub mod provision;
pub mod recordings;
pub mod snapshot;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::fleet::inventory::Inventory;
use crate::secrets::SecretBox;

use crate::clock::SharedClock;
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;

pub struct Console {
    pub(crate) db: DatabaseConnection,
    pub(crate) clock: SharedClock,
    pub(crate) secrets: Arc<SecretBox>,
    pub(crate) snmp_enterprise: u32,
    /// Its write generation keys the list caches.
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) count_cache: device_list::CountCache,
    pub(crate) page_cache: device_list::PageCache,
    pub(crate) snapshots: snapshot::SnapshotCache,
    /// Channel tests started from the settings page (this node's).
    pub(crate) channel_tests: alert_settings::ChannelTests,
}

impl Console {
    pub fn new(
        db: DatabaseConnection,
        clock: SharedClock,
        secrets: Arc<SecretBox>,
        inventory: Arc<Inventory>,
    ) -> Self {
        Self {
            db,
            clock,
            secrets,
            snmp_enterprise: crate::config::DEFAULT_ENTERPRISE,
            inventory,
            count_cache: Default::default(),
            // At most 500 rows each: a few MiB at most.
            page_cache: device_list::PageCache::with_capacity(64),
            snapshots: Default::default(),
            channel_tests: Default::default(),
        }
    }

    pub fn with_snmp_enterprise(mut self, n: u32) -> Self {
        self.snmp_enterprise = n;
        self
    }

    /// Is the database answering (the health check)?
    pub async fn ping(&self) -> bool {
        crate::db::ping(&self.db).await
    }

    /// Record a change in the audit log.
    pub(crate) async fn audit(
        &self,
        actor: &Actor,
        entry: crate::fleet::audit::Entry<'_>,
    ) -> Result<()> {
        crate::fleet::audit::record(&self.db, actor, self.clock.now_utc(), entry).await
    }
}

pub(crate) fn not_found(what: &str, id: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::NotFound, format!("no {what} {id}"))
}

/// A page of a list read by keyset (`after` the last id seen).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last one.
    pub next: Option<i32>,
}

/// A list's page size: at most 500, 100 by default.
pub fn page_size(limit: Option<u64>) -> u64 {
    limit.unwrap_or(100).clamp(1, 500)
}

/// Named text fields of a request (an HTML form or a JSON object), for
/// operations whose many optional fields are validated here, field by
/// field, with the field's name in the error.
pub trait Fields: Sync {
    /// The field's text, empty when absent.
    fn get(&self, key: &str) -> String;
    /// Every integer given for a repeated field (checkboxes, a JSON array).
    fn ids(&self, key: &str) -> Vec<i32>;
    /// Every value of a repeated field (a JSON array, in order).
    fn all(&self, key: &str) -> Vec<String>;
}

impl Fields for serde_json::Map<String, serde_json::Value> {
    fn get(&self, key: &str) -> String {
        match self.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Bool(true)) => "on".into(),
            Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) | None => {
                String::new()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from).or_else(|| Some(v.to_string())))
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_string(),
        }
    }
    fn ids(&self, key: &str) -> Vec<i32> {
        match self.get(key) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect(),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .into_iter()
                .collect(),
            None => Vec::new(),
        }
    }
    fn all(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    v => v.to_string(),
                })
                .collect(),
            Some(_) => vec![Fields::get(self, key)],
            None => Vec::new(),
        }
    }
}
