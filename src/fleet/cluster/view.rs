//! What pages, the API and start-up read of the cluster: the nodes as
//! shown, the live ones, and the secret-key check.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Statement,
};

use super::DEAD_AFTER_MS;
use crate::db::entities::node;
use crate::error::{Error, ErrorKind, Result};

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_TEXT: &str = "camfleet secret key check";

/// Every node must open what any other sealed (camera passwords, channel
/// secrets): the first server on a database seals a known text with its
/// key; a server whose key cannot open it refuses to start, instead of
/// failing every camera as "unauthorized".
pub async fn check_secret_key(
    db: &DatabaseConnection,
    secrets: &crate::secrets::SecretBox,
) -> Result<()> {
    let b = db.get_database_backend();
    // Sealed by the first server; then read back, so of two first servers
    // starting at once with different keys, the one that lost sees it.
    db.execute_raw(Statement::from_sql_and_values(
        b,
        "INSERT INTO cluster_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        [
            KEY_CHECK.into(),
            secrets.seal(KEY_CHECK_TEXT.as_bytes()).into(),
        ],
    ))
    .await?;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            b,
            "SELECT value FROM cluster_meta WHERE key = $1",
            [KEY_CHECK.into()],
        ))
        .await?;
    let stored: Option<Vec<u8>> = row.and_then(|r| r.try_get::<Vec<u8>>("", "value").ok());
    match stored.map(|v| secrets.open_string(&v)) {
        Some(Ok(t)) if t == KEY_CHECK_TEXT => Ok(()),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "this server's secret key is not the one this database's secrets were sealed with: give every node the same key (copy {} from the first node's data directory, or set {} on each)",
                crate::secrets::KEY_FILE,
                crate::secrets::KEY_ENV
            ),
        )),
    }
}

/// One node as the cluster page and `GET /api/v1/cluster` show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub name: String,
    /// Heartbeat within the last 15 s and not stopped.
    pub alive: bool,
    pub roles: Vec<String>,
    /// Sites it is pinned to; empty: every site.
    pub sites: Vec<String>,
    /// Cameras it polls (and subscribes to): its poll leases.
    pub devices: u64,
    /// Streams it records.
    pub recording: i32,
    /// Leaderships held: `jobs`, `notify`.
    pub leader: Vec<String>,
    pub last_heartbeat: chrono::DateTime<chrono::Utc>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub version: String,
}

/// Every node known to the database, live ones first.
pub async fn nodes(db: &DatabaseConnection, now_ms: i64) -> Result<Vec<NodeView>> {
    let b = db.get_database_backend();
    let counts: HashMap<String, u64> = db
        .query_all_raw(Statement::from_sql_and_values(
            b,
            "SELECT node, COUNT(*) AS n FROM device_leases WHERE kind = 'poll' AND node IS NOT NULL AND expires_ms > $1 GROUP BY node",
            [now_ms.into()],
        ))
        .await?
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get::<String>("", "node").ok()?,
                r.try_get::<i64>("", "n").ok()? as u64,
            ))
        })
        .collect();
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let mut out: Vec<NodeView> = node::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|n| {
            let alive = n.stopped_ms.is_none() && n.heartbeat_ms >= now_ms - DEAD_AFTER_MS;
            NodeView {
                devices: counts.get(&n.name).copied().unwrap_or(0),
                alive,
                roles: split(&n.roles),
                sites: split(&n.sites),
                recording: if alive { n.recording } else { 0 },
                leader: if alive { split(&n.leader) } else { Vec::new() },
                last_heartbeat: at(n.heartbeat_ms),
                started: at(n.started_ms),
                version: n.version,
                name: n.name,
            }
        })
        .collect();
    out.sort_by(|a, b| b.alive.cmp(&a.alive).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// The nodes alive at `now_ms` (their running work is theirs).
pub async fn alive_nodes(db: &DatabaseConnection, now_ms: i64) -> Result<Vec<String>> {
    Ok(node::Entity::find()
        .filter(node::Column::HeartbeatMs.gte(now_ms - DEAD_AFTER_MS))
        .filter(node::Column::StoppedMs.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect())
}
