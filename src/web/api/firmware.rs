//! Firmware: the image library (upload streams to disk; approve) and
//! staged rollouts (create, follow, pause, resume, cancel).

use crate::fleet::console::firmware::RolloutTarget;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa::ToSchema;

use super::alerts::created;
use super::{Problems, csrf, json};
use crate::db::entities::{firmware_image, firmware_rollout};
use crate::error::{Error, ErrorKind};
use crate::fleet::firmware::RolloutPlan;
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiImage {
    pub id: i32,
    pub vendor: String,
    /// A model name, or a prefix ending in `*`.
    pub model_pattern: String,
    pub version: String,
    pub sha256: String,
    pub size: i64,
    pub notes: String,
    pub approved: bool,
    pub uploaded_by: String,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

fn image_of(i: firmware_image::Model) -> ApiImage {
    ApiImage {
        id: i.id,
        vendor: i.vendor,
        model_pattern: i.model_pattern,
        version: i.version,
        sha256: i.sha256,
        size: i.size,
        notes: i.notes,
        approved: i.approved,
        uploaded_by: i.uploaded_by,
        uploaded_at: i.uploaded_at,
    }
}

/// The image library.
#[utoipa::path(get, operation_id = "firmware_images", path = "/api/v1/firmware/images", tag = "firmware",
    responses((status = 200, body = Vec<ApiImage>, description = "the result"), Problems))]
pub async fn images(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let o = state
        .console
        .firmware_overview(&state.firmware_lib, &me.actor())
        .await?;
    Ok(json(o.images.into_iter().map(image_of).collect::<Vec<_>>()))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    pub vendor: String,
    /// A model name, or a prefix ending in `*`.
    pub model: String,
    pub version: String,
    #[serde(default)]
    pub notes: String,
}

/// Upload an image (the body is the file, up to 256 MiB; it streams to
/// disk). Technicians and admins.
#[utoipa::path(post, operation_id = "firmware_upload", path = "/api/v1/firmware/images", tag = "firmware",
    params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ApiImage, description = "created"), Problems))]
pub async fn upload(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Query(p): Query<UploadParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, WebError> {
    // Token (and, in the gate, role) before a byte of the body.
    csrf(&me, &headers)?;
    let _slot = state.limits.upload()?;
    let tmp = state
        .upload_dir
        .join(format!("firmware-{}.upload", uuid::Uuid::new_v4().simple()));
    let stored = async {
        receive(body, &tmp).await?;
        state
            .firmware_lib
            .upload_file(&p.vendor, &p.model, &p.version, &p.notes, &tmp, &me.actor())
            .await
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    Ok(created(image_of(stored?)))
}

async fn receive(body: axum::body::Body, path: &std::path::Path) -> Result<(), Error> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::fs::File::create(path).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot store the upload: {e}"),
        )
    })?;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("upload: {e}")))?;
        total += chunk.len();
        if total > crate::fleet::firmware::MAX_IMAGE_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "file: larger than 256 MiB",
            ));
        }
        out.write_all(&chunk).await.map_err(|e| {
            Error::new(
                ErrorKind::ResourceExhausted,
                format!("cannot store the upload: {e}"),
            )
        })?;
    }
    out.flush().await.map_err(|e| {
        Error::new(
            ErrorKind::ResourceExhausted,
            format!("cannot store the upload: {e}"),
        )
    })
}

/// Make an image the approved one for its models (admins).
#[utoipa::path(post, operation_id = "firmware_approve", path = "/api/v1/firmware/images/{id}/approve", tag = "firmware",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiImage, description = "the result"), Problems))]
pub async fn approve(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.firmware_lib.approve(id, &me.actor()).await?;
    Ok(json(image_of(state.firmware_lib.image(id).await?)))
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRollout {
    pub id: i32,
    pub image_id: i32,
    /// `running`, `paused`, `cancelled`, `done`, `stopped`.
    pub status: String,
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    pub current_wave: i32,
    pub message: String,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn rollout_of(r: firmware_rollout::Model) -> ApiRollout {
    ApiRollout {
        id: r.id,
        image_id: r.image_id,
        status: r.status,
        plan: r.plan,
        current_wave: r.current_wave,
        message: r.message,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// Recent rollouts whose devices are all within the caller's sites.
#[utoipa::path(get, operation_id = "firmware_rollouts", path = "/api/v1/firmware/rollouts", tag = "firmware",
    responses((status = 200, body = Vec<ApiRollout>, description = "the result"), Problems))]
pub async fn rollouts(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let o = state
        .console
        .firmware_overview(&state.firmware_lib, &me.actor())
        .await?;
    Ok(json(
        o.rollouts
            .into_iter()
            .map(|(r, _)| rollout_of(r))
            .collect::<Vec<_>>(),
    ))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiRolloutCreate {
    pub image_id: i32,
    /// Only this site's devices (else every device of the image's models
    /// within the caller's sites).
    #[serde(default)]
    pub site: Option<i32>,
    /// Only these devices (those of another model are left out); absent:
    /// every device of the image's models (in `site`, if given).
    #[serde(default)]
    pub devices: Option<Vec<i32>>,
    /// `canary`, `wave_size`, `wave_percent`, `max_failures`, `margin_s`,
    /// `window` ({days, start_hour, end_hour, utc_offset_minutes});
    /// absent: a canary of one, then waves of 25 %.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<serde_json::Value>,
}

/// Start a rollout. An image that is not approved needs an admin.
#[utoipa::path(post, operation_id = "firmware_rollout_create", path = "/api/v1/firmware/rollouts", tag = "firmware",
    request_body = ApiRolloutCreate,
    responses((status = 201, body = ApiRollout, description = "created"), Problems))]
pub async fn rollout_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiRolloutCreate>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let plan: RolloutPlan = match req.plan {
        None => RolloutPlan::default(),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| WebError(Error::new(ErrorKind::InvalidArgument, format!("plan: {e}"))))?,
    };
    let r = state
        .console
        .rollout_start(
            &state.firmware_lib,
            &me.actor(),
            req.image_id,
            &RolloutTarget {
                site: req.site,
                devices: req.devices,
            },
            &plan,
        )
        .await?;
    Ok(created(rollout_of(r)))
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRolloutDevice {
    pub device_id: i32,
    pub device: String,
    pub wave: i32,
    /// `pending`, `uploading`, `waiting`, `done`, `failed`, `skipped`.
    pub status: String,
    pub from_version: String,
    pub message: String,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRolloutDetail {
    pub rollout: ApiRollout,
    pub image: ApiImage,
    pub devices: Vec<ApiRolloutDevice>,
}

/// A rollout and each device's progress.
#[utoipa::path(get, operation_id = "firmware_rollout", path = "/api/v1/firmware/rollouts/{id}", tag = "firmware",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiRolloutDetail, description = "the result"), Problems))]
pub async fn rollout(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let v = state
        .console
        .rollout_view(&state.firmware_lib, &me.actor(), id)
        .await?;
    Ok(json(ApiRolloutDetail {
        rollout: rollout_of(v.rollout),
        image: image_of(v.image),
        devices: v
            .devices
            .into_iter()
            .map(|(d, name)| ApiRolloutDevice {
                device_id: d.device_id,
                device: name,
                wave: d.wave,
                status: d.status,
                from_version: d.from_version,
                message: d.message,
            })
            .collect(),
    }))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiRolloutControl {
    /// `pause`, `resume` or `cancel`.
    pub action: String,
}

/// Pause, resume or cancel a rollout (the caller's sites must cover every
/// device of it).
#[utoipa::path(post, operation_id = "firmware_rollout_control", path = "/api/v1/firmware/rollouts/{id}/control", tag = "firmware",
    params(("id" = i32, Path)),
    request_body = ApiRolloutControl,
    responses((status = 200, body = ApiRollout, description = "the result"), Problems))]
pub async fn rollout_control(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiRolloutControl>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    if !["pause", "resume", "cancel"].contains(&req.action.as_str()) {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "action: pause, resume or cancel",
        )));
    }
    state
        .firmware_lib
        .control(id, &req.action, &me.actor())
        .await?;
    let v = state
        .console
        .rollout_view(&state.firmware_lib, &me.actor(), id)
        .await?;
    Ok(json(rollout_of(v.rollout)))
}
