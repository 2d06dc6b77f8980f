//! Discovery and adoption: runs and their results, starting a run,
//! adopting from a run, and adopting one camera directly by its address.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::{Problems, csrf, json};
use crate::db::entities::discovery_run;
use crate::error::{Error, ErrorKind};
use crate::fleet::discovery::AdoptOutcome;
use crate::onvif::Credentials;
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRun {
    pub id: i32,
    /// `multicast`, `unicast`, `cidr` or `hello`.
    pub kind: String,
    pub started_by: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `running`, `done` or `failed: …`.
    pub status: String,
    pub found: i32,
    /// The site its cameras are adopted into.
    pub site_id: Option<i32>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiResult {
    pub id: i32,
    pub endpoint: String,
    pub xaddrs: Vec<String>,
    pub via: String,
    /// `new`, `managed` or `moved`.
    pub classification: String,
    /// The managed device (absent when it is in a site the caller does not manage).
    pub device_id: Option<i32>,
    /// Managed in a site outside the caller's.
    pub elsewhere: bool,
    /// Set once adoption was tried.
    pub outcome: Option<AdoptOutcome>,
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
        site_id: r.site_id,
    }
}

/// The last 50 discovery runs within the caller's sites.
#[utoipa::path(get, operation_id = "discovery_runs", path = "/api/v1/discovery", tag = "discovery",
    responses((status = 200, body = Vec<ApiRun>, description = "the result"), Problems))]
pub async fn runs(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let runs: Vec<ApiRun> = state
        .console
        .discovery_runs(&me.actor())
        .await?
        .into_iter()
        .map(run_of)
        .collect();
    Ok(json(runs))
}

/// A discovery run and what answered, with adoption outcomes.
#[utoipa::path(get, operation_id = "discovery_run", path = "/api/v1/discovery/{id}", tag = "discovery",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiRunDetail, description = "the result"), Problems))]
pub async fn run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let v = state.console.discovery_run(&me.actor(), id).await?;
    let results = v
        .results
        .into_iter()
        .map(|x| ApiResult {
            id: x.r.id,
            endpoint: x.r.endpoint,
            xaddrs: serde_json::from_value(x.r.xaddrs).unwrap_or_default(),
            via: x.r.via,
            classification: x.r.classification,
            device_id: x.r.device_id,
            elsewhere: x.elsewhere,
            outcome: x.outcome,
            interface: x.r.interface,
        })
        .collect();
    Ok(json(ApiRunDetail {
        run: run_of(v.run),
        results,
    }))
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
    /// absent: the site's, or every configured one.
    #[serde(default)]
    pub interface: Option<String>,
    /// The site its cameras will be adopted into (required for callers
    /// limited to sites).
    #[serde(default)]
    pub site: Option<i32>,
}

/// Start a discovery run in the background; follow it by polling
/// `/api/v1/discovery/{id}`.
#[utoipa::path(post, operation_id = "discovery_start", path = "/api/v1/discovery", tag = "discovery",
    request_body = ApiDiscover,
    responses((status = 202, body = ApiRun, description = "accepted; the work goes on in the background"), Problems))]
pub async fn start(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiDiscover>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let kind = crate::fleet::discovery::RunKind::parse(
        &req.kind,
        &req.target,
        req.interface.as_deref().unwrap_or(""),
    )
    .map_err(|m| WebError(Error::new(ErrorKind::InvalidArgument, m)))?;
    let run = state
        .console
        .discovery_start(&state.discovery_ops(), &me.actor(), kind, req.site)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(run_of(run))).into_response())
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiAdoptOne {
    /// A result id of the run.
    pub id: i32,
    /// This camera's user, when it differs from the common one.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiAdopt {
    pub results: Vec<ApiAdoptOne>,
    /// The camera user for results that give none.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// The site to adopt into (required for callers limited to sites).
    #[serde(default)]
    pub site: Option<i32>,
}

/// Adopt results of a run, in the background; each result's outcome
/// appears on the run (`GET /api/v1/discovery/{id}`). A camera already
/// managed in a site the caller does not manage is refused on its own.
#[utoipa::path(post, operation_id = "discovery_adopt_from_run", path = "/api/v1/discovery/{id}/adopt", tag = "discovery",
    params(("id" = i32, Path)),
    request_body = ApiAdopt,
    responses((status = 202, description = "adoption started"), Problems))]
pub async fn adopt_from_run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiAdopt>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    if req.results.len() > 10_000 {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "results: at most 10,000",
        )));
    }
    let mut sel = Vec::with_capacity(req.results.len());
    for r in req.results {
        let username = r
            .username
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| req.username.clone());
        if username.is_empty() {
            return Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("username: the camera user for result {}", r.id),
            )));
        }
        sel.push((
            r.id,
            Credentials {
                username,
                password: r.password.unwrap_or_else(|| req.password.clone()),
            },
        ));
    }
    state
        .console
        .discovery_adopt(&state.discovery_ops(), &me.actor(), id, sel, req.site)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiAdoptDirect {
    /// The camera's ONVIF device service, e.g. `http://192.0.2.10/onvif/device_service`.
    pub device_url: String,
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// The site to adopt into (required for callers limited to sites).
    #[serde(default)]
    pub site: Option<i32>,
}

/// Adopt one camera by its address, now: the outcome names the device
/// and what changed, or the step that failed.
#[utoipa::path(post, operation_id = "discovery_adopt_direct", path = "/api/v1/adopt", tag = "discovery",
    request_body = ApiAdoptDirect,
    responses((status = 200, body = AdoptOutcome, description = "the result"), Problems))]
pub async fn adopt_direct(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiAdoptDirect>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    if req.username.trim().is_empty() {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "username: the camera user to adopt with",
        )));
    }
    let outcome = state
        .console
        .adopt_direct(
            &state.discovery_ops(),
            &me.actor(),
            &req.device_url,
            Credentials {
                username: req.username,
                password: req.password,
            },
            req.site,
        )
        .await?;
    Ok(json(outcome))
}
