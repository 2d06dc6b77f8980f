//! Alerts (paged, filtered; acknowledge and resolve, one or many) and,
//! for admins, notification channels and alert rules.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa::ToSchema;

use super::{Problems, csrf, json};
use crate::fleet::console::Page;
use crate::fleet::console::alert_settings::{ChannelAction, ChannelOutcome};
use crate::fleet::console::alerts::{AlertAction, AlertDetail, AlertQuery, AlertRow, BulkOutcome};
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

/// Alerts within the caller's sites, newest first; pass `next` as `after`
/// for the next page.
#[utoipa::path(get, operation_id = "alerts_list", path = "/api/v1/alerts", tag = "alerts",
    params(AlertQuery),
    responses((status = 200, body = Page<AlertRow>, description = "the result"), Problems))]
pub async fn list(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Query(q): Query<AlertQuery>,
) -> Result<Response, WebError> {
    Ok(json(state.console.alerts(&me.actor(), &q).await?.page))
}

/// One alert and its history.
#[utoipa::path(get, operation_id = "alerts_get", path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = i32, Path)),
    responses((status = 200, body = AlertDetail, description = "the result"), Problems))]
pub async fn get(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(json(state.console.alert(&me.actor(), id).await?))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiAlertAction {
    pub action: AlertAction,
    /// Why (kept in the alert's history).
    #[serde(default)]
    pub note: String,
}

/// Acknowledge or resolve an alert (technicians and admins).
#[utoipa::path(post, operation_id = "alerts_act", path = "/api/v1/alerts/{id}/actions", tag = "alerts",
    params(("id" = i32, Path)),
    request_body = ApiAlertAction,
    responses((status = 200, body = AlertRow, description = "the result"), Problems))]
pub async fn act(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiAlertAction>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(json(
        state
            .console
            .alert_act(&state.alerting, &me.actor(), id, req.action, &req.note)
            .await?,
    ))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiAlertBulk {
    /// At most 1000.
    pub ids: Vec<i32>,
    pub action: AlertAction,
    #[serde(default)]
    pub note: String,
}

/// The same action on many alerts; each succeeds or fails on its own.
#[utoipa::path(post, operation_id = "alerts_bulk", path = "/api/v1/alerts/bulk", tag = "alerts",
    request_body = ApiAlertBulk,
    responses((status = 200, body = Vec<BulkOutcome>, description = "the result"), Problems))]
pub async fn bulk(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiAlertBulk>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(json(
        state
            .console
            .alerts_bulk(
                &state.alerting,
                &me.actor(),
                &req.ids,
                req.action,
                &req.note,
            )
            .await?,
    ))
}

/// A notification channel (its secret is never shown).
#[derive(serde::Serialize, ToSchema)]
pub struct ApiChannel {
    pub id: i32,
    pub name: String,
    /// `webhook`, `email` or `snmp`.
    pub kind: String,
    /// Where it sends, in words.
    pub target: String,
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Notification channels (admins).
#[utoipa::path(get, operation_id = "alerts_channels", path = "/api/v1/alert-channels", tag = "alerts",
    responses((status = 200, body = Vec<ApiChannel>, description = "the result"), Problems))]
pub async fn channels(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let s = state.console.alert_settings(&me.actor()).await?;
    Ok(json(
        s.channels
            .into_iter()
            .map(|r| ApiChannel {
                id: r.c.id,
                name: r.c.name,
                kind: r.c.kind,
                target: r.target,
                config: r.c.config,
                enabled: r.c.enabled,
                created_at: r.c.created_at,
            })
            .collect::<Vec<_>>(),
    ))
}

/// A new channel: the fields of the settings page's form, as a JSON
/// object (`name`, `kind`, and per kind: `url`, `secret`; `host`, `port`,
/// `security`, `from`, `to`, `username`, `password`; `host`, `port`,
/// `version`, `community`, `inform`, `user`, `auth_protocol`,
/// `auth_password`, `priv_protocol`, `priv_password`).
#[utoipa::path(post, operation_id = "alerts_channel_create", path = "/api/v1/alert-channels", tag = "alerts",
    request_body = Object,
    responses((status = 201, body = ApiChannel, description = "created"), Problems))]
pub async fn channel_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let c = state.console.channel_create(&me.actor(), &fields).await?;
    let target = state
        .console
        .alert_settings(&me.actor())
        .await?
        .channels
        .into_iter()
        .find(|r| r.c.id == c.id)
        .map(|r| r.target)
        .unwrap_or_default();
    Ok(created(ApiChannel {
        id: c.id,
        name: c.name,
        kind: c.kind,
        target,
        config: c.config,
        enabled: c.enabled,
        created_at: c.created_at,
    }))
}

pub(crate) fn created<T: serde::Serialize>(v: T) -> Response {
    use axum::response::IntoResponse;
    (axum::http::StatusCode::CREATED, Json(v)).into_response()
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiChannelAction {
    pub action: ChannelAction,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiChannelOutcome {
    pub ok: bool,
    /// What happened, or the exact error of a failed test.
    pub detail: String,
}

/// Test, enable, disable or delete a channel (admins).
#[utoipa::path(post, operation_id = "alerts_channel_act", path = "/api/v1/alert-channels/{id}/actions", tag = "alerts",
    params(("id" = i32, Path)),
    request_body = ApiChannelAction,
    responses((status = 200, body = ApiChannelOutcome, description = "the result"), Problems))]
pub async fn channel_act(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiChannelAction>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(json(
        match state
            .console
            .channel_act(&me.actor(), id, req.action)
            .await?
        {
            ChannelOutcome::Done(d) => ApiChannelOutcome {
                ok: true,
                detail: d,
            },
            ChannelOutcome::TestFailed(d) => ApiChannelOutcome {
                ok: false,
                detail: d,
            },
        },
    ))
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiRule {
    pub id: i32,
    pub name: String,
    pub kind: String,
    pub severity: String,
    pub site_ids: Vec<i32>,
    pub channel_ids: Vec<i32>,
    pub threshold_ms: Option<i64>,
    pub cooldown_s: i32,
    pub enabled: bool,
    /// Camera-event rules: the topic prefix they match.
    pub topic: String,
}

fn rule_of(r: crate::db::entities::alert_rule::Model) -> ApiRule {
    let ids = |v: &serde_json::Value| -> Vec<i32> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_i64().and_then(|n| i32::try_from(n).ok()))
                    .collect()
            })
            .unwrap_or_default()
    };
    ApiRule {
        site_ids: ids(&r.site_ids),
        channel_ids: ids(&r.channel_ids),
        id: r.id,
        name: r.name,
        kind: r.kind,
        severity: r.severity,
        threshold_ms: r.threshold_ms,
        cooldown_s: r.cooldown_s,
        enabled: r.enabled,
        topic: r.topic,
    }
}

/// Alert rules (admins).
#[utoipa::path(get, operation_id = "alerts_rules", path = "/api/v1/alert-rules", tag = "alerts",
    responses((status = 200, body = Vec<ApiRule>, description = "the result"), Problems))]
pub async fn rules(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let s = state.console.alert_settings(&me.actor()).await?;
    Ok(json(s.rules.into_iter().map(rule_of).collect::<Vec<_>>()))
}

/// A new camera-event rule (`name`, `topic`, `severity`).
#[utoipa::path(post, operation_id = "alerts_rule_create", path = "/api/v1/alert-rules", tag = "alerts",
    request_body = Object,
    responses((status = 201, body = ApiRule, description = "created"), Problems))]
pub async fn rule_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(created(rule_of(
        state.console.rule_create(&me.actor(), &fields).await?,
    )))
}

/// Change a rule (`severity`, `cooldown_s`, `threshold_ms`, `enabled`,
/// `site` and `channel` as arrays of ids, `topic` for event rules).
#[utoipa::path(put, operation_id = "alerts_rule_update", path = "/api/v1/alert-rules/{id}", tag = "alerts",
    params(("id" = i32, Path)),
    request_body = Object,
    responses((status = 200, body = ApiRule, description = "the result"), Problems))]
pub async fn rule_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    Ok(json(rule_of(
        state.console.rule_update(&me.actor(), id, &fields).await?,
    )))
}
