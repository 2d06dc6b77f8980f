//! JSON API under `/api/v1`, described by the OpenAPI 3.1 document at
//! `/api/openapi.json` (utoipa, generated from these types and handlers).
//! The same login (session cookie or `Authorization: Bearer` token), roles
//! and site scoping apply as to the pages. Types here are the API's shape,
//! kept apart from the database entities so a schema change is not an API
//! change by accident.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use utoipa::{OpenApi, ToSchema};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::pages::{ApiDevices, DeviceRow, device_or_404};
use crate::db::entities::{device_profile, discovery_run};
use crate::error::{Error, ErrorKind};
use crate::fleet::discovery::AdoptOutcome;
use crate::fleet::discovery::RunKind;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiSite {
    pub id: i32,
    pub name: String,
    pub description: String,
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
    pub profiles: Vec<ApiProfile>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRun {
    pub id: i32,
    /// `multicast`, `unicast` or `cidr`.
    pub kind: String,
    pub started_by: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `running`, `done` or `failed: …`.
    pub status: String,
    pub found: i32,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiResult {
    pub id: i32,
    pub endpoint: String,
    pub xaddrs: Vec<String>,
    pub via: String,
    /// `new`, `managed` or `moved`.
    pub classification: String,
    pub device_id: Option<i32>,
    /// Set once adoption was tried: the failed step and why, if it failed.
    pub adoption_failed: Option<String>,
    /// The local interface the answer came in on (`eth0 10.0.0.5/24`).
    pub interface: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRunDetail {
    pub run: ApiRun,
    pub results: Vec<ApiResult>,
}

fn run_of(r: discovery_run::Model) -> ApiRun {
    ApiRun {
        id: r.id,
        kind: r.kind,
        started_by: r.started_by,
        started_at: r.started_at,
        finished_at: r.finished_at,
        status: r.status,
        found: r.found,
    }
}

/// List devices (paged, filtered, sorted; within the caller's sites).
#[utoipa::path(get, path = "/api/v1/devices",
    params(
        ("q" = Option<String>, Query, description = "free text: name, model, serial, MAC, address, asset tag"),
        ("status" = Option<String>, Query), ("model" = Option<String>, Query),
        ("firmware" = Option<String>, Query), ("manufacturer" = Option<String>, Query),
        ("site" = Option<String>, Query, description = "site id, or `none`"),
        ("warranty_within" = Option<i64>, Query, description = "warranty ending within N days"),
        ("eol_within" = Option<i64>, Query, description = "end of life within N days"),
        ("sort" = Option<String>, Query), ("desc" = Option<bool>, Query),
        ("page" = Option<u64>, Query), ("per_page" = Option<u64>, Query, description = "at most 500"),
    ),
    responses((status = 200, body = ApiDevices), (status = 401), (status = 422)),
    security(("bearer" = []), ("session" = [])))]
pub async fn devices_doc() {}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{id}",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiDevice), (status = 401), (status = 404)),
    security(("bearer" = []), ("session" = [])))]
pub async fn device(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let d = device_or_404(&state, &me, id).await?;
    let profiles = device_profile::Entity::find()
        .filter(device_profile::Column::DeviceId.eq(id))
        .all(&state.db)
        .await?
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
        .collect();
    Ok(Json(ApiDevice {
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
        device_url: d.device_url,
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
        profiles,
    })
    .into_response())
}

/// Sites the caller may see.
#[utoipa::path(get, path = "/api/v1/sites",
    responses((status = 200, body = Vec<ApiSite>), (status = 401)),
    security(("bearer" = []), ("session" = [])))]
pub async fn sites_doc() {}

/// The last 50 discovery runs.
#[utoipa::path(get, path = "/api/v1/discovery",
    responses((status = 200, body = Vec<ApiRun>), (status = 401)),
    security(("bearer" = []), ("session" = [])))]
pub async fn discovery_runs(AxState(state): AxState<State>) -> Result<Response, WebError> {
    let runs: Vec<ApiRun> = state
        .discovery
        .runs(&state.db)
        .await?
        .into_iter()
        .map(run_of)
        .collect();
    Ok(Json(runs).into_response())
}

/// A discovery run and what answered, with adoption outcomes.
#[utoipa::path(get, path = "/api/v1/discovery/{id}",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiRunDetail), (status = 401), (status = 404)),
    security(("bearer" = []), ("session" = [])))]
pub async fn discovery_run(
    AxState(state): AxState<State>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let run = state
        .discovery
        .get_run(&state.db, id)
        .await?
        .ok_or_else(|| {
            WebError(Error::new(
                ErrorKind::NotFound,
                format!("no discovery run {id}"),
            ))
        })?;
    let results = state
        .discovery
        .results(&state.db, id)
        .await?
        .into_iter()
        .map(|r| ApiResult {
            id: r.id,
            endpoint: r.endpoint,
            xaddrs: serde_json::from_value(r.xaddrs).unwrap_or_default(),
            via: r.via,
            classification: r.classification,
            device_id: r.device_id,
            interface: r.interface.clone(),
            adoption_failed: r
                .outcome
                .as_deref()
                .and_then(|o| serde_json::from_str::<AdoptOutcome>(o).ok())
                .and_then(|o| o.failed),
        })
        .collect();
    Ok(Json(ApiRunDetail {
        run: run_of(run),
        results,
    })
    .into_response())
}

/// CSRF for API writes: a bearer token needs none; a browser session
/// sends its token in `X-CSRF-Token`.
fn api_csrf(me: &CurrentUser, headers: &HeaderMap) -> Result<(), WebError> {
    let t = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    me.check_csrf(t)
}

/// Field errors as JSON: `{"error": "...", "fields": {"cost": "..."}}`.
fn invalid(fields: &crate::fleet::inventory::FieldErrors) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(serde_json::json!({"error": "invalid fields; nothing was changed", "fields": fields})),
    )
        .into_response()
}

/// The inventory fields of a device as the API reads and writes them.
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

/// Change a device's inventory fields; fields left out keep their values.
/// All valid or nothing written.
#[utoipa::path(patch, path = "/api/v1/devices/{id}/inventory",
    params(("id" = i32, Path)),
    request_body = ApiInventory,
    responses((status = 200, body = ApiDevice), (status = 401), (status = 403), (status = 404),
        (status = 422, description = "per-field errors; nothing changed")),
    security(("bearer" = []), ("session" = [])))]
pub async fn patch_inventory(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    api_csrf(&me, &headers)?;
    me.require(me.role.can_edit_inventory())?;
    let patch: ApiInventory = serde_json::from_slice(&body).map_err(|e| {
        WebError(Error::new(
            ErrorKind::InvalidArgument,
            format!("body: expected a JSON object of inventory fields ({e})"),
        ))
    })?;
    let d = device_or_404(&state, &me, id).await?;
    let sites = state.sites.list().await?;
    let mut f = crate::fleet::inventory::InventoryForm::from_device(
        &d,
        crate::fleet::inventory::site_name(&sites, d.site_id),
    );
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
    let actor = crate::fleet::audit::Actor::user(&me.user.username);
    match state
        .inventory
        .edit_inventory(id, &f, &me.scope, &actor)
        .await?
    {
        crate::fleet::inventory::InventoryEdit::Saved(_) => {
            device(AxState(state), Extension(me), Path(id)).await
        }
        crate::fleet::inventory::InventoryEdit::Invalid(errors) => Ok(invalid(&errors)),
    }
}

/// Check (`dry_run=true`, the default) or apply an inventory CSV, sent as
/// the request body (`text/csv`). The report lists per row what changes or
/// why it is rejected; applying writes all rows or none.
#[utoipa::path(post, path = "/api/v1/inventory/import",
    params(("dry_run" = Option<bool>, Query, description = "default true")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "the report"), (status = 401), (status = 403),
        (status = 422, description = "rejected rows; nothing changed")),
    security(("bearer" = []), ("session" = [])))]
pub async fn import(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    api_csrf(&me, &headers)?;
    me.require(me.role.can_edit_inventory())?;
    let dry_run = !url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "dry_run" && (v == "false" || v == "0"));
    if dry_run {
        let report = state.inventory.import_dry_run(&body, &me.scope).await?;
        return Ok(Json(report).into_response());
    }
    let actor = crate::fleet::audit::Actor::user(&me.user.username);
    match state.inventory.import_apply(&body, &me.scope, &actor).await {
        Ok(report) => Ok(Json(report).into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let report = state.inventory.import_dry_run(&body, &me.scope).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({"error": e.message, "report": report})),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// What to discover.
#[derive(serde::Deserialize, ToSchema)]
pub struct ApiDiscover {
    /// `multicast`, `unicast` or `cidr`.
    pub kind: String,
    /// Unicast: IPv4 addresses separated by commas; cidr: a range (≤ /16).
    #[serde(default)]
    pub target: String,
    /// Multicast: the configured interface (its IPv4 address) to use;
    /// absent: every configured one.
    #[serde(default)]
    pub interface: Option<String>,
}

/// Start a discovery run in the background; follow it at
/// `/discovery/{id}/events` (SSE) or poll `/api/v1/discovery/{id}`.
#[utoipa::path(post, path = "/api/v1/discovery",
    request_body = ApiDiscover,
    responses((status = 202, body = ApiRun), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []), ("session" = [])))]
pub async fn start_discovery(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    api_csrf(&me, &headers)?;
    me.require(me.role.can_operate_devices())?;
    let req: ApiDiscover = serde_json::from_slice(&body).map_err(|e| {
        WebError(Error::new(
            ErrorKind::InvalidArgument,
            format!("body: expected {{\"kind\": …, \"target\": …}} ({e})"),
        ))
    })?;
    let kind = super::discovery::parse_kind(
        &req.kind,
        &req.target,
        req.interface.as_deref().unwrap_or(""),
    )
    .map_err(|m| WebError(Error::new(ErrorKind::InvalidArgument, m)))?;
    if let RunKind::Multicast(only) = &kind {
        state.discovery.multicast_interfaces(*only)?;
    }
    let run = super::discovery::launch(&state, &me, kind, None).await?;
    Ok((StatusCode::ACCEPTED, Json(run_of(run))).into_response())
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityScheme;
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("an API token from /account"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::auth::SESSION_COOKIE,
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "camfleet API", description = "Devices, sites, discovery and inventory of a camfleet installation."),
    paths(devices_doc, device, patch_inventory, import, sites_doc, discovery_runs, start_discovery, discovery_run),
    components(schemas(ApiDevices, DeviceRow, ApiDevice, ApiProfile, ApiSite, ApiRun, ApiResult, ApiRunDetail, ApiInventory, ApiDiscover)),
    modifiers(&Security),
)]
pub struct ApiDoc;

pub async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
