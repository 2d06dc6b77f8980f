//! Snapshot thumbnails: fetched by the server with the device's stored
//! credentials (which never reach the browser) and cached for a minute, so
//! a page of thumbnails costs each camera at most one request a minute and
//! concurrent viewers share one fetch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::db::entities::device_profile;
use crate::error::{Error, ErrorKind};
use crate::onvif::{DevicePolicy, DeviceSession};

pub const SNAPSHOT_TTL: Duration = Duration::from_secs(60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on cached bytes; past it the oldest half is dropped.
const MAX_CACHED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone)]
struct Entry {
    at: Duration,
    result: Result<(String, Bytes), String>,
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

/// A small SVG shown instead of a picture, with the reason as its title.
fn placeholder(status: StatusCode, why: &str) -> Response {
    let why = askama::filters::escape(why, askama::filters::Html)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"160\" height=\"90\" viewBox=\"0 0 160 90\"><title>{why}</title><rect width=\"160\" height=\"90\" fill=\"#ddd\"/><text x=\"80\" y=\"50\" font-size=\"12\" text-anchor=\"middle\" fill=\"#555\">no snapshot</text></svg>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "private, max-age=30"),
        ],
        svg,
    )
        .into_response()
}

async fn fetch(
    state: &State,
    d: &crate::db::entities::device::Model,
) -> Result<(String, Bytes), String> {
    let uri = device_profile::Entity::find()
        .filter(device_profile::Column::DeviceId.eq(d.id))
        .filter(device_profile::Column::SnapshotUri.is_not_null())
        .order_by_asc(device_profile::Column::Id)
        .one(&state.db)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|p| p.snapshot_uri)
        .ok_or("the camera reports no snapshot URI")?;
    let uri = url::Url::parse(&uri).map_err(|e| format!("snapshot URI: {e}"))?;
    let creds = state
        .inventory
        .credentials_of(d)
        .await
        .map_err(|e| e.message)?;
    let policy: DevicePolicy = serde_json::from_value(d.policy.clone()).unwrap_or_default();
    let device_url = url::Url::parse(&d.device_url).map_err(|e| format!("device URL: {e}"))?;
    let session = DeviceSession::new(
        state.discovery.transport().clone(),
        state.clock.clone(),
        device_url,
        creds,
        policy,
    );
    crate::onvif::media::fetch_snapshot(&session, &uri, Some(FETCH_TIMEOUT))
        .await
        .map(|s| (s.content_type, s.bytes))
        .map_err(|e| e.to_string())
}

pub async fn snapshot(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let d = state
        .inventory
        .get_scoped(id, &me.scope)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no device {id}"))))?;
    let slot = state.snapshots.slot(id);
    let mut cached = slot.lock().await;
    let now = state.clock.monotonic();
    let fresh = cached
        .as_ref()
        .filter(|e| now.saturating_sub(e.at) < SNAPSHOT_TTL)
        .cloned();
    let entry = match fresh {
        Some(e) => e,
        None => {
            let e = Entry {
                at: now,
                result: fetch(&state, &d).await,
            };
            if let Ok((_, b)) = &e.result {
                state
                    .snapshots
                    .bytes
                    .fetch_add(b.len(), std::sync::atomic::Ordering::Relaxed);
            }
            *cached = Some(e.clone());
            e
        }
    };
    drop(cached);
    Ok(match entry.result {
        Ok((ct, bytes)) => (
            [
                (header::CONTENT_TYPE, ct),
                (header::CACHE_CONTROL, "private, max-age=60".to_string()),
            ],
            bytes,
        )
            .into_response(),
        Err(why) => placeholder(StatusCode::BAD_GATEWAY, &why),
    })
}
