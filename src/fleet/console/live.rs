//! Live view as people reach it: one camera's stream on its page, several
//! in a grid. Watching is the video permission (`Role::can_watch_video`),
//! within the actor's sites, as for recordings. The stream comes from the
//! recording when the camera is recorded, otherwise from one on-demand
//! session shared by its viewers (`recorder::live`).

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Console;
use crate::db::entities::{device, device_profile};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;
use crate::recorder::live::{LiveHub, Source, Viewer};

/// Cameras in one grid, at most.
pub const GRID_MAX: usize = 16;
/// Cameras in the grid when none are named.
pub const GRID_DEFAULT: u64 = 9;

/// A camera in the live grid.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveTile {
    pub id: i32,
    pub name: String,
    pub status: String,
}

impl Console {
    /// Start watching a camera live.
    pub async fn watch_live(&self, hub: &Arc<LiveHub>, actor: &Actor, id: i32) -> Result<Viewer> {
        actor.require(Role::can_watch_video)?;
        let d = self.device_in_scope(actor, id).await?;
        let source = self.live_source(&d).await?;
        tracing::info!(device = id, user = %actor.name, "live view");
        hub.watch(id, source)
    }

    /// Where an on-demand session would pull from: the recorded profile's
    /// stream (so live view shows what is recorded), else the first
    /// profile that has a stream address.
    async fn live_source(&self, d: &device::Model) -> Result<Option<Source>> {
        let profiles = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(d.id))
            .filter(device_profile::Column::StreamUri.is_not_null())
            .order_by_asc(device_profile::Column::Id)
            .all(&self.db)
            .await?;
        let chosen = d
            .record_profile
            .as_ref()
            .and_then(|t| profiles.iter().find(|p| &p.token == t))
            .or(profiles.first());
        let Some(uri) = chosen.and_then(|p| p.stream_uri.clone()) else {
            return Ok(None);
        };
        let url = url::Url::parse(&uri).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("live view: the camera's stream address {uri:?} is not a URL: {e}"),
            )
        })?;
        let creds = self
            .inventory
            .credentials_of(d)
            .await?
            .map(|c| (c.username, c.password));
        Ok(Some(Source {
            url,
            creds,
            udp: d.record_transport == "udp",
        }))
    }

    /// The cameras of a live grid: the ones named (within the actor's
    /// sites, in the order given, at most [`GRID_MAX`]), or the first
    /// [`GRID_DEFAULT`] by name.
    pub async fn live_grid(&self, actor: &Actor, ids: &[i32]) -> Result<Vec<LiveTile>> {
        actor.require(Role::can_watch_video)?;
        let q = device::Entity::find()
            .filter(actor.scope.devices())
            .filter(device::Column::RetiredAt.is_null());
        let found = if ids.is_empty() {
            q.order_by_asc(device::Column::Name)
                .order_by_asc(device::Column::Id)
                .limit(GRID_DEFAULT)
                .all(&self.db)
                .await?
        } else {
            let wanted: Vec<i32> = ids.iter().copied().take(GRID_MAX).collect();
            let mut found = q
                .filter(device::Column::Id.is_in(wanted.iter().copied()))
                .all(&self.db)
                .await?;
            found.sort_by_key(|d| wanted.iter().position(|w| *w == d.id));
            found
        };
        Ok(found
            .into_iter()
            .map(|d| LiveTile {
                id: d.id,
                name: d.name,
                status: d.status,
            })
            .collect())
    }
}
