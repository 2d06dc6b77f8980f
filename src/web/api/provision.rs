//! Provisioning: profiles (the page's form fields as a JSON object),
//! plans and runs over a selection of devices, tasks, resume, drift.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::alerts::created;
use super::{Problems, csrf, json};
use crate::db::entities::provision_profile;
use crate::error::{Error, ErrorKind};
use crate::fleet::console::provision::Selection;
use crate::fleet::provision::Provisioner;
use crate::fleet::provision::form::parse_spec;
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiProfileSpec {
    pub id: i32,
    pub name: String,
    /// The owning site; null: shared (admins change it).
    pub site_id: Option<i32>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// What the profile asks for (passwords sealed, never shown).
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

fn profile_of(p: provision_profile::Model) -> ApiProfileSpec {
    ApiProfileSpec {
        id: p.id,
        name: p.name,
        site_id: p.site_id,
        updated_at: p.updated_at,
        spec: crate::fleet::provision::redact(p.spec),
    }
}

fn owner(fields: &serde_json::Map<String, serde_json::Value>) -> Result<Option<i32>, WebError> {
    match fields.get("site_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                WebError(Error::new(
                    ErrorKind::InvalidArgument,
                    "site_id: a site id, or null for a shared profile",
                ))
            }),
    }
}

fn invalid(errors: Vec<String>) -> WebError {
    WebError(Error::new(ErrorKind::InvalidArgument, errors.join("; ")))
}

/// The profiles the caller may use (shared ones and their sites').
#[utoipa::path(get, operation_id = "provision_profiles", path = "/api/v1/provision/profiles", tag = "provisioning",
    responses((status = 200, body = Vec<ApiProfileSpec>, description = "the result"), Problems))]
pub async fn profiles(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let list = state.provisioner.profiles_for(&me.actor()).await?;
    Ok(json(list.into_iter().map(profile_of).collect::<Vec<_>>()))
}

/// A new profile: the form's fields as a JSON object, plus `site_id`
/// (null: shared, admins only).
#[utoipa::path(post, operation_id = "provision_profile_create", path = "/api/v1/provision/profiles", tag = "provisioning",
    request_body = Object,
    responses((status = 201, body = ApiProfileSpec, description = "created"), Problems))]
pub async fn profile_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let site = owner(&fields)?;
    let p = &state.provisioner;
    let (name, spec) = parse_spec(&fields, None, &|pw| p.seal_password(pw)).map_err(invalid)?;
    let m = p
        .save_profile(None, &name, site, &spec, &me.actor())
        .await?;
    Ok(created(profile_of(m)))
}

/// One profile.
#[utoipa::path(get, operation_id = "provision_profile", path = "/api/v1/provision/profiles/{id}", tag = "provisioning",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiProfileSpec, description = "the result"), Problems))]
pub async fn profile(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(json(profile_of(
        state.provisioner.profile_for(&me.actor(), id).await?,
    )))
}

/// Replace a profile (all its fields; a user password left out keeps the
/// stored one).
#[utoipa::path(put, operation_id = "provision_profile_update", path = "/api/v1/provision/profiles/{id}", tag = "provisioning",
    params(("id" = i32, Path)),
    request_body = Object,
    responses((status = 200, body = ApiProfileSpec, description = "the result"), Problems))]
pub async fn profile_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let p = &state.provisioner;
    let old = p.profile_for(&me.actor(), id).await?;
    let old = Provisioner::spec_of(&old)?;
    let site = owner(&fields)?;
    let (name, spec) =
        parse_spec(&fields, Some(&old), &|pw| p.seal_password(pw)).map_err(invalid)?;
    let m = p
        .save_profile(Some(id), &name, site, &spec, &me.actor())
        .await?;
    Ok(json(profile_of(m)))
}

/// What applying the profile would change on each selected device (reads
/// the cameras; changes nothing).
#[utoipa::path(post, operation_id = "provision_plan", path = "/api/v1/provision/profiles/{id}/plan", tag = "provisioning",
    params(("id" = i32, Path)),
    request_body = Selection,
    responses((status = 200, description = "per device: each setting's current and desired value and what would be done", body = Vec<Object>), Problems))]
pub async fn plan(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(sel): Json<Selection>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let profile = state.provisioner.profile_for(&me.actor(), id).await?;
    let spec = Provisioner::spec_of(&profile)?;
    let ids = state.console.select_devices(&me.actor(), &sel).await?;
    Ok(json(state.provisioner.plan(&spec, &ids).await?))
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiTaskStarted {
    pub task: i32,
}

/// Apply the profile to the selected devices as a task (in the background;
/// follow it at `/api/v1/provision/tasks/{task}`).
#[utoipa::path(post, operation_id = "provision_run", path = "/api/v1/provision/profiles/{id}/run", tag = "provisioning",
    params(("id" = i32, Path)),
    request_body = Selection,
    responses((status = 202, body = ApiTaskStarted, description = "accepted; the work goes on in the background"), Problems))]
pub async fn run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(sel): Json<Selection>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let ids = state.console.select_devices(&me.actor(), &sel).await?;
    let task = state.provisioner.create_task(id, &ids, &me.actor()).await?;
    let p = state.provisioner.clone();
    tokio::spawn(async move {
        if let Err(e) = p.run(task).await {
            tracing::warn!(task, error = %e, "provisioning task failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(ApiTaskStarted { task })).into_response())
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiTaskItem {
    pub device_id: i32,
    pub device: String,
    /// `pending`, `running`, `done`, `failed`, `interrupted`.
    pub status: String,
    pub step: String,
    /// Per setting: before, after, result, message.
    #[schema(value_type = Object)]
    pub results: serde_json::Value,
    /// A rotated password waits to be shown once (in the page).
    pub password_waiting: bool,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiTask {
    pub id: i32,
    pub profile_id: i32,
    pub profile: String,
    pub status: String,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub summary: String,
    /// The devices within the caller's sites.
    pub items: Vec<ApiTaskItem>,
}

/// A task and how each device fared.
#[utoipa::path(get, operation_id = "provision_task", path = "/api/v1/provision/tasks/{id}", tag = "provisioning",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiTask, description = "the result"), Problems))]
pub async fn task(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let v = state
        .console
        .provision_task(&state.provisioner, &me.actor(), id)
        .await?;
    Ok(json(ApiTask {
        id: v.task.id,
        profile_id: v.task.profile_id,
        profile: v.profile,
        status: v.task.status,
        created_by: v.task.created_by,
        created_at: v.task.created_at,
        finished_at: v.task.finished_at,
        summary: v.task.summary,
        items: v
            .items
            .into_iter()
            .map(|(i, device)| ApiTaskItem {
                device_id: i.device_id,
                device,
                status: i.status,
                step: i.step,
                results: i.detail,
                password_waiting: i.secret.is_some(),
            })
            .collect(),
    }))
}

/// Resume an interrupted task (the caller's sites must cover every device
/// of it).
#[utoipa::path(post, operation_id = "provision_resume", path = "/api/v1/provision/tasks/{id}/resume", tag = "provisioning",
    params(("id" = i32, Path)),
    responses((status = 202, body = ApiTaskStarted, description = "accepted; the work goes on in the background"), Problems))]
pub async fn resume(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.provisioner.resume(id, &me.actor()).await?;
    let p = state.provisioner.clone();
    tokio::spawn(async move {
        if let Err(e) = p.run(id).await {
            tracing::warn!(task = id, error = %e, "provisioning task failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(ApiTaskStarted { task: id })).into_response())
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiDrifted {
    pub device_id: i32,
    /// What differs from its profile.
    pub differs: String,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiDrift {
    pub newly_drifted: Vec<ApiDrifted>,
    pub back_in_line: Vec<i32>,
}

/// Check the caller's provisioned devices against their profiles now.
#[utoipa::path(post, operation_id = "provision_drift", path = "/api/v1/provision/drift", tag = "provisioning",
    responses((status = 200, body = ApiDrift, description = "the result"), Problems))]
pub async fn drift(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let (newly, cleared) = state
        .console
        .drift_check(&state.provisioner, &me.actor())
        .await?;
    let notices = crate::fleet::provision::drift_notices(&newly, &cleared);
    state.alerting.process(&notices).await?;
    Ok(json(ApiDrift {
        newly_drifted: newly
            .into_iter()
            .map(|(device_id, differs)| ApiDrifted { device_id, differs })
            .collect(),
        back_in_line: cleared,
    }))
}
