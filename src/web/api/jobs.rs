//! Scheduled jobs: list, create, read, change, delete, run now, history.
//! Fleet-wide: read by operators who see every site, changed by admins.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::alerts::created;
use super::{Problems, csrf, json};
use crate::db::entities::{job, job_run};
use crate::fleet::jobs::{next_runs, parse_schedule, parse_tz};
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiJob {
    pub id: i32,
    pub name: String,
    /// One of the job kinds (`retention`, `backup`, `rediscover`, …).
    pub kind: String,
    /// Cron: 5 fields (crontab) or 6 with seconds.
    pub schedule: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub enabled: bool,
    /// `skip` or `run_once`.
    pub missed_policy: String,
    /// The next (up to) five times it runs.
    pub next_runs: Vec<chrono::DateTime<chrono::Utc>>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn job_of(state: &State, j: job::Model) -> ApiJob {
    let next = match (parse_schedule(&j.schedule), parse_tz(&j.timezone)) {
        (Ok(s), Ok(tz)) if j.enabled => next_runs(&s, tz, state.clock.now_utc(), 5),
        _ => Vec::new(),
    };
    ApiJob {
        id: j.id,
        name: j.name,
        kind: j.kind,
        schedule: j.schedule,
        timezone: j.timezone,
        params: j.params,
        enabled: j.enabled,
        missed_policy: j.missed_policy,
        next_runs: next,
        updated_at: j.updated_at,
    }
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiJobWrite {
    pub name: String,
    pub kind: String,
    pub schedule: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "skip")]
    pub missed_policy: String,
}

fn utc() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}
fn skip() -> String {
    "skip".into()
}

/// Every job.
#[utoipa::path(get, operation_id = "jobs_list", path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, body = Vec<ApiJob>, description = "the result"), Problems))]
pub async fn list(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let jobs = state.jobs.list_for(&me.actor()).await?;
    Ok(json(
        jobs.into_iter()
            .map(|j| job_of(&state, j))
            .collect::<Vec<_>>(),
    ))
}

async fn save(
    state: &State,
    me: &CurrentUser,
    id: Option<i32>,
    req: ApiJobWrite,
) -> Result<job::Model, WebError> {
    let params = if req.params.is_null() {
        serde_json::json!({})
    } else {
        req.params
    };
    Ok(state
        .jobs
        .save(
            id,
            &req.name,
            &req.kind,
            &req.schedule,
            &req.timezone,
            params,
            req.enabled,
            &req.missed_policy,
            &me.actor(),
        )
        .await?)
}

/// A new job (admins).
#[utoipa::path(post, operation_id = "jobs_create", path = "/api/v1/jobs", tag = "jobs",
    request_body = ApiJobWrite,
    responses((status = 201, body = ApiJob, description = "created"), Problems))]
pub async fn create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiJobWrite>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let j = save(&state, &me, None, req).await?;
    Ok(created(job_of(&state, j)))
}

/// One job.
#[utoipa::path(get, operation_id = "jobs_get", path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiJob, description = "the result"), Problems))]
pub async fn get(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let j = state.jobs.get_for(&me.actor(), id).await?;
    Ok(json(job_of(&state, j)))
}

/// Change a job (admins).
#[utoipa::path(put, operation_id = "jobs_update", path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i32, Path)),
    request_body = ApiJobWrite,
    responses((status = 200, body = ApiJob, description = "the result"), Problems))]
pub async fn update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiJobWrite>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.jobs.get_for(&me.actor(), id).await?;
    let j = save(&state, &me, Some(id), req).await?;
    Ok(json(job_of(&state, j)))
}

/// Delete a job and its history (admins).
#[utoipa::path(delete, operation_id = "jobs_delete", path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i32, Path)),
    responses((status = 204, description = "deleted"), Problems))]
pub async fn delete(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.jobs.delete(id, &me.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Run a job now (admins); refused while a run of it is going.
#[utoipa::path(post, operation_id = "jobs_run_now", path = "/api/v1/jobs/{id}/run", tag = "jobs",
    params(("id" = i32, Path)),
    responses((status = 202, description = "started"), Problems))]
pub async fn run_now(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.jobs.run_now(id, &me.actor()).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiJobRun {
    pub id: i32,
    /// `schedule`, `manual` or `catch_up`.
    pub trigger: String,
    pub scheduled_for: Option<chrono::DateTime<chrono::Utc>>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub outcome: String,
    pub log: String,
}

fn run_of(r: job_run::Model) -> ApiJobRun {
    ApiJobRun {
        id: r.id,
        trigger: r.trigger,
        scheduled_for: r.scheduled_for,
        started_at: r.started_at,
        finished_at: r.finished_at,
        outcome: r.outcome,
        log: r.log,
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// At most 500 (default 50).
    pub limit: Option<u64>,
}

/// A job's runs, newest first.
#[utoipa::path(get, operation_id = "jobs_runs", path = "/api/v1/jobs/{id}/runs", tag = "jobs",
    params(("id" = i32, Path), RunsQuery),
    responses((status = 200, body = Vec<ApiJobRun>, description = "the result"), Problems))]
pub async fn runs(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    Query(q): Query<RunsQuery>,
) -> Result<Response, WebError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    state.jobs.get_for(&me.actor(), id).await?;
    let runs = state.jobs.runs_for(&me.actor(), id, limit).await?;
    Ok(json(runs.into_iter().map(run_of).collect::<Vec<_>>()))
}
