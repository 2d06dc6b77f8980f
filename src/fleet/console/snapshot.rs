//! Snapshot thumbnails: fetched by the server with the device's stored
//! credentials (which never reach the browser) and cached for a minute, so
//! a page of thumbnails costs each camera at most one request a minute and
//! concurrent viewers share one fetch. A snapshot is what the camera sees:
//! it needs the video permission, within the actor's sites.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::Console;
use crate::db::entities::{device, device_profile};
use crate::error::Result;
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;
use crate::onvif::{DevicePolicy, DeviceSession};

pub const SNAPSHOT_TTL: Duration = Duration::from_secs(60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on cached bytes; past it the oldest half is dropped.
const MAX_CACHED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct Entry {
    at: Duration,
    /// (content type, bytes), or why there is no picture.
    pub result: Result<(String, Bytes), String>,
}

/// Per device: a lock (so one fetch at a time) around the last result.
#[derive(Default)]
pub struct SnapshotCache {
    map: std::sync::Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Option<Entry>>>>>,
    bytes: std::sync::atomic::AtomicUsize,
}

impl SnapshotCache {
    fn slot(&self, id: i32) -> Arc<tokio::sync::Mutex<Option<Entry>>> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if self.bytes.load(std::sync::atomic::Ordering::Relaxed) > MAX_CACHED_BYTES {
            map.clear();
            self.bytes.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        map.entry(id).or_default().clone()
    }

    /// Drop a device's cached image (its address or credentials changed).
    pub fn forget(&self, id: i32) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

impl Console {
    /// The device's snapshot (cached for [`SNAPSHOT_TTL`]).
    pub async fn snapshot(
        &self,
        transport: &crate::onvif::transport::Transport,
        actor: &Actor,
        id: i32,
    ) -> Result<Entry> {
        actor.require(Role::can_watch_video)?;
        let d = self.device_in_scope(actor, id).await?;
        let slot = self.snapshots.slot(id);
        let mut cached = slot.lock().await;
        let now = self.clock.monotonic();
        if let Some(e) = cached
            .as_ref()
            .filter(|e| now.saturating_sub(e.at) < SNAPSHOT_TTL)
        {
            return Ok(e.clone());
        }
        let e = Entry {
            at: now,
            result: self.fetch_snapshot(transport, &d).await,
        };
        if let Ok((_, b)) = &e.result {
            self.snapshots
                .bytes
                .fetch_add(b.len(), std::sync::atomic::Ordering::Relaxed);
        }
        *cached = Some(e.clone());
        Ok(e)
    }

    async fn fetch_snapshot(
        &self,
        transport: &crate::onvif::transport::Transport,
        d: &device::Model,
    ) -> std::result::Result<(String, Bytes), String> {
        let uri = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(d.id))
            .filter(device_profile::Column::SnapshotUri.is_not_null())
            .order_by_asc(device_profile::Column::Id)
            .one(&self.db)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|p| p.snapshot_uri)
            .ok_or("the camera reports no snapshot URI")?;
        let uri = url::Url::parse(&uri).map_err(|e| format!("snapshot URI: {e}"))?;
        let creds = self
            .inventory
            .credentials_of(d)
            .await
            .map_err(|e| e.message)?;
        let policy: DevicePolicy = serde_json::from_value(d.policy.clone()).unwrap_or_default();
        let device_url = url::Url::parse(&d.device_url).map_err(|e| format!("device URL: {e}"))?;
        let session = DeviceSession::new(
            transport.clone(),
            self.clock.clone(),
            device_url,
            creds,
            policy,
        );
        crate::onvif::media::fetch_snapshot(&session, &uri, Some(FETCH_TIMEOUT))
            .await
            .map(|s| (s.content_type, s.bytes))
            .map_err(|e| e.to_string())
    }

    /// Drop a device's cached snapshot (its address or credentials changed).
    pub fn forget_snapshot(&self, id: i32) {
        self.snapshots.forget(id);
    }
}
