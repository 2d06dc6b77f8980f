//! Devices: the list (paged, filtered, sorted), one device, inventory
//! fields, actions (poll interval, reboot, network, recording, backfill,
//! retire, return to service), delete, moving a selection to a site, and
//! the inventory CSV out and in.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::{Problems, csrf, json};
use crate::error::{Error, ErrorKind};
use crate::fleet::console::device_list::{DeviceQuery, DeviceRow};
use crate::fleet::console::devices::{ActionOutcome, DeviceAction};
use crate::fleet::console::inventory::BulkMove;
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiDevices {
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub per_page: u64,
    pub devices: Vec<DeviceRow>,
    /// Pass as `after` for the next page (sorts by name, model, firmware,
    /// status or manufacturer); absent on the last page.
    pub next: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiProfile {
    pub token: String,
    pub name: String,
    pub encoding: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub frame_rate: Option<f64>,
    pub bitrate_kbps: Option<i32>,
    /// Without credentials.
    pub stream_uri: Option<String>,
}

/// One device with its inventory fields and profiles. Camera credentials
/// are never part of the API.
#[derive(serde::Serialize, ToSchema)]
pub struct ApiDevice {
    pub id: i32,
    pub name: String,
    pub status: String,
    pub site_id: Option<i32>,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub hardware_id: String,
    pub serial: Option<String>,
    pub mac: Option<String>,
    pub hostname: String,
    pub endpoint_uuid: Option<String>,
    pub device_url: String,
    pub auth_mode: Option<String>,
    pub clock_offset_ms: Option<i64>,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub location: String,
    pub asset_tag: String,
    pub purchase_order: String,
    pub purchase_date: Option<chrono::NaiveDate>,
    pub supplier: String,
    pub cost_cents: Option<i64>,
    pub warranty_end: Option<chrono::NaiveDate>,
    pub end_of_life: Option<chrono::NaiveDate>,
    pub notes: String,
    /// The media profile recorded, if any.
    pub record_profile: Option<String>,
    /// The cluster node that polls it now (its lease); none while no live
    /// node holds it, and outside a cluster.
    pub node: Option<String>,
    /// The cluster node that records it now (when a policy records it).
    pub recorded_by: Option<String>,
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    pub retired_reason: Option<String>,
    pub profiles: Vec<ApiProfile>,
}

async fn device_json(state: &State, me: &CurrentUser, id: i32) -> Result<ApiDevice, WebError> {
    let detail = state.console.device_detail(&me.actor(), id).await?;
    let (d, profiles) = (detail.device, detail.profiles);
    Ok(ApiDevice {
        node: detail.node,
        recorded_by: detail.recorded_by,
        id: d.id,
        name: d.name,
        status: d.status,
        site_id: d.site_id,
        manufacturer: d.manufacturer,
        model: d.model,
        firmware: d.firmware,
        hardware_id: d.hardware_id,
        serial: d.serial,
        mac: d.mac,
        hostname: d.hostname,
        endpoint_uuid: d.endpoint_uuid,
        device_url: crate::fleet::inventory::strip_userinfo(&d.device_url),
        auth_mode: d.auth_mode,
        clock_offset_ms: d.clock_offset_ms,
        last_seen: d.last_seen,
        location: d.location,
        asset_tag: d.asset_tag,
        purchase_order: d.purchase_order,
        purchase_date: d.purchase_date,
        supplier: d.supplier,
        cost_cents: d.cost_cents,
        warranty_end: d.warranty_end,
        end_of_life: d.end_of_life,
        notes: d.notes,
        record_profile: d.record_profile,
        retired_at: d.retired_at,
        retired_reason: d.retired_reason,
        profiles: profiles
            .into_iter()
            .map(|p| ApiProfile {
                token: p.token,
                name: p.name,
                encoding: p.encoding,
                width: p.width,
                height: p.height,
                frame_rate: p.frame_rate,
                bitrate_kbps: p.bitrate_kbps,
                stream_uri: p
                    .stream_uri
                    .map(|u| crate::fleet::inventory::strip_userinfo(&u)),
            })
            .collect(),
    })
}

/// List devices (paged, filtered, sorted; within the caller's sites).
#[utoipa::path(get, operation_id = "devices_list", path = "/api/v1/devices", tag = "devices",
    params(
        ("q" = Option<String>, Query, description = "free text: name, model, serial, MAC, address, asset tag"),
        ("status" = Option<String>, Query), ("model" = Option<String>, Query),
        ("firmware" = Option<String>, Query), ("manufacturer" = Option<String>, Query),
        ("site" = Option<String>, Query, description = "site id, or `none`"),
        ("warranty_within" = Option<i64>, Query, description = "warranty ending within N days"),
        ("eol_within" = Option<i64>, Query, description = "end of life within N days"),
        ("sort" = Option<String>, Query), ("desc" = Option<bool>, Query),
        ("page" = Option<u64>, Query, minimum = 1), ("per_page" = Option<u64>, Query, description = "at most 500", minimum = 1),
        ("after" = Option<String>, Query, description = "a previous page's `next`: the rows after it (fast at any depth)"),
    ),
    responses((status = 200, body = ApiDevices, description = "the result"), Problems))]
pub async fn list(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = DeviceQuery::parse(raw.as_deref())?;
    let l = state.console.list_devices(&me.actor(), &q).await?;
    Ok(json(ApiDevices {
        total: l.total,
        page: l.page,
        pages: l.pages,
        per_page: l.per_page,
        devices: l.devices.as_ref().clone(),
        next: l.next,
    }))
}

/// One device.
#[utoipa::path(get, operation_id = "devices_get", path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiDevice, description = "the result"), Problems))]
pub async fn get(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(json(device_json(&state, &me, id).await?))
}

/// Delete a device (admins): its health history, events and profiles go;
/// its alerts are resolved; recordings stay until retention removes them.
#[utoipa::path(delete, operation_id = "devices_delete", path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = i32, Path)),
    responses((status = 204, description = "deleted"), Problems))]
pub async fn delete(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.console.device_delete(&me.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The inventory fields of a device as the API writes them; fields left
/// out keep their values.
#[derive(serde::Serialize, serde::Deserialize, ToSchema)]
pub struct ApiInventory {
    #[serde(default)]
    pub name: Option<String>,
    /// The site's name; empty for none.
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub asset_tag: Option<String>,
    #[serde(default)]
    pub purchase_order: Option<String>,
    /// YYYY-MM-DD
    #[serde(default)]
    pub purchase_date: Option<String>,
    #[serde(default)]
    pub supplier: Option<String>,
    /// Money as text, e.g. "1234.50".
    #[serde(default)]
    pub cost: Option<String>,
    #[serde(default)]
    pub warranty_end: Option<String>,
    #[serde(default)]
    pub end_of_life: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Change a device's inventory fields. All valid or nothing written; a
/// 422 names every wrong field in `detail`.
#[utoipa::path(patch, operation_id = "devices_patch_inventory", path = "/api/v1/devices/{id}/inventory", tag = "devices",
    params(("id" = i32, Path)),
    request_body = ApiInventory,
    responses((status = 200, body = ApiDevice, description = "the result"), Problems))]
pub async fn patch_inventory(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(patch): Json<ApiInventory>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let (d, mut f) = state.console.inventory_form(&me.actor(), id).await?;
    let _ = d;
    let set = |slot: &mut String, v: Option<String>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut f.name, patch.name);
    set(&mut f.site, patch.site);
    set(&mut f.location, patch.location);
    set(&mut f.asset_tag, patch.asset_tag);
    set(&mut f.purchase_order, patch.purchase_order);
    set(&mut f.purchase_date, patch.purchase_date);
    set(&mut f.supplier, patch.supplier);
    set(&mut f.cost, patch.cost);
    set(&mut f.warranty_end, patch.warranty_end);
    set(&mut f.end_of_life, patch.end_of_life);
    set(&mut f.notes, patch.notes);
    match state
        .inventory
        .edit_inventory(id, &f, &me.scope, &me.actor())
        .await?
    {
        crate::fleet::inventory::InventoryEdit::Saved(_) => {
            Ok(json(device_json(&state, &me, id).await?))
        }
        crate::fleet::inventory::InventoryEdit::Invalid(errors) => {
            let why: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("{}; nothing was changed", why.join("; ")),
            )))
        }
    }
}

/// Do one thing to a device (technicians and admins, within their sites):
/// `{"action": "reboot"}`, `{"action": "poll_interval", "seconds": 60}`,
/// `{"action": "retire", "reason": "replaced"}`, ….
#[utoipa::path(post, operation_id = "devices_act", path = "/api/v1/devices/{id}/actions", tag = "devices",
    params(("id" = i32, Path)),
    request_body = DeviceAction,
    responses((status = 200, body = ActionOutcome, description = "the result"), Problems))]
pub async fn act(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(action): Json<DeviceAction>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(json(
        state
            .console
            .device_act(&state.device_ops(), &me.actor(), id, action)
            .await?,
    ))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiBulkSite {
    /// Device ids (those outside the caller's sites are ignored).
    pub devices: Vec<i32>,
    /// The site to move them to; null for none.
    pub site: Option<i32>,
}

/// Move devices to a site, all or nothing.
#[utoipa::path(post, operation_id = "devices_bulk_site", path = "/api/v1/devices/bulk/site", tag = "devices",
    request_body = ApiBulkSite,
    responses((status = 200, body = BulkMove, description = "the result"), Problems))]
pub async fn bulk_site(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiBulkSite>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(json(
        state
            .console
            .bulk_move(&me.actor(), &req.devices, req.site)
            .await?,
    ))
}

/// The inventory as CSV (the list's filters apply; the import reads the
/// same columns).
#[utoipa::path(get, operation_id = "devices_export_csv", path = "/api/v1/inventory/export", tag = "devices",
    params(
        ("status" = Option<String>, Query), ("model" = Option<String>, Query),
        ("firmware" = Option<String>, Query), ("manufacturer" = Option<String>, Query),
        ("site" = Option<String>, Query, description = "site id, or `none`"),
        ("warranty_within" = Option<i64>, Query), ("eol_within" = Option<i64>, Query),
    ),
    responses((status = 200, content_type = "text/csv", body = String, description = "the result"), Problems))]
pub async fn export_csv(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = DeviceQuery::parse(raw.as_deref())?;
    let _slot = state.limits.export()?;
    Ok(crate::web::inventory::csv_response(
        state.console.inventory_csv(&me.actor(), &q).await?,
    ))
}

/// Check (`dry_run=true`, the default) or apply an inventory CSV, sent as
/// the request body (`text/csv`). The report lists per row what changes or
/// why it is rejected; applying writes all rows or none.
#[utoipa::path(post, operation_id = "devices_import", path = "/api/v1/inventory/import", tag = "devices",
    params(("dry_run" = Option<bool>, Query, description = "default true")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "the report", body = Object), Problems))]
pub async fn import(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let _slot = state.limits.import()?;
    let dry_run = !url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "dry_run" && (v == "false" || v == "0"));
    if dry_run {
        let report = state.inventory.import_dry_run(&body, &me.scope).await?;
        return Ok(json(report));
    }
    match state
        .inventory
        .import_apply(&body, &me.scope, &me.actor())
        .await
    {
        Ok(report) => Ok(json(report)),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let report = state.inventory.import_dry_run(&body, &me.scope).await?;
            let rejected: Vec<String> = report
                .rows
                .iter()
                .filter(|r| !r.errors.is_empty())
                .take(20)
                .map(|r| format!("line {}: {}", r.line, r.errors.join("; ")))
                .collect();
            Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("{}; nothing was changed. {}", e.message, rejected.join(" ")),
            )))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiBackupFile {
    pub name: String,
    pub bytes: u64,
    /// For `GET /devices/{id}/backups/file?key=…` (a download).
    pub key: String,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiBackup {
    /// The backup job's run, `20261206T020000Z` (UTC).
    pub stamp: String,
    /// camfleet's reading of the settings (JSON), when it was taken.
    pub settings_key: Option<String>,
    /// The camera's own backup files (what a restore sends back).
    pub files: Vec<ApiBackupFile>,
}

/// A device's configuration backups, newest first (technicians and
/// admins, within their sites).
#[utoipa::path(get, operation_id = "devices_backups", path = "/api/v1/devices/{id}/backups", tag = "devices",
    params(("id" = i32, Path)),
    responses((status = 200, body = Vec<ApiBackup>, description = "the backups"), Problems))]
pub async fn backups(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let sets = state
        .console
        .config_backups(&state.tiers, &me.actor(), id)
        .await?;
    Ok(json(
        sets.into_iter()
            .map(|s| ApiBackup {
                stamp: s.stamp,
                settings_key: s.snapshot,
                files: s
                    .files
                    .into_iter()
                    .map(|(key, name, bytes)| ApiBackupFile { name, bytes, key })
                    .collect(),
            })
            .collect::<Vec<_>>(),
    ))
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRestored {
    /// What the camera did.
    pub message: String,
}

/// Give the camera back its own backup files of one run (ONVIF
/// RestoreSystem; technicians and admins, audited). The camera replaces
/// its configuration and may restart.
#[utoipa::path(post, operation_id = "devices_backup_restore", path = "/api/v1/devices/{id}/backups/{stamp}/restore", tag = "devices",
    params(("id" = i32, Path), ("stamp" = String, Path)),
    responses((status = 200, body = ApiRestored, description = "the camera took it"), Problems))]
pub async fn backup_restore(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path((id, stamp)): Path<(i32, String)>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let message = state
        .console
        .restore_config_backup(&state.tiers, &state.provisioner, &me.actor(), id, &stamp)
        .await?;
    Ok(json(ApiRestored { message }))
}
