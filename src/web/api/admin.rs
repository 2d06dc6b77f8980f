//! Sites (read by everyone within their scope; changed by admins), users
//! (admins), and the audit log (admins).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::alerts::created;
use super::{Problems, csrf, json};
use crate::db::entities::{site, user};
use crate::error::{Error, ErrorKind};
use crate::fleet::console::overview::AuditQuery;
use crate::fleet::users::{Access, NewUser, Role};
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiSite {
    pub id: i32,
    pub name: String,
    pub description: String,
    /// The poll interval of its devices (null: the default).
    pub poll_interval_s: Option<i32>,
    /// The interface its multicast discoveries use (null: every configured one).
    pub discovery_interface: Option<String>,
    /// The IANA time zone its days are shown in (`UTC` unless set).
    pub time_zone: String,
}

fn site_of(s: site::Model) -> ApiSite {
    ApiSite {
        id: s.id,
        name: s.name,
        description: s.description,
        poll_interval_s: s.poll_interval_s,
        discovery_interface: s.discovery_interface,
        time_zone: s.time_zone,
    }
}

/// The sites the caller may see.
#[utoipa::path(get, operation_id = "admin_sites", path = "/api/v1/sites", tag = "admin",
    responses((status = 200, body = Vec<ApiSite>, description = "the result"), Problems))]
pub async fn sites(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let list = state.sites.visible(&me.scope).await?;
    Ok(json(list.into_iter().map(site_of).collect::<Vec<_>>()))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiSiteWrite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub poll_interval_s: Option<i32>,
    /// An IPv4 address discovery is configured on.
    #[serde(default)]
    pub discovery_interface: Option<String>,
    /// An IANA time zone (`Europe/Berlin`); absent: unchanged (UTC for a new site).
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl ApiSiteWrite {
    fn config(&self, interface: Option<std::net::Ipv4Addr>) -> crate::fleet::sites::SiteConfig<'_> {
        crate::fleet::sites::SiteConfig {
            name: &self.name,
            description: &self.description,
            poll_interval_s: self.poll_interval_s,
            interface,
            time_zone: self.time_zone.as_deref(),
        }
    }
}

fn interface(state: &State, v: Option<&str>) -> Result<Option<std::net::Ipv4Addr>, WebError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let ip: std::net::Ipv4Addr = v.parse().map_err(|_| {
                WebError(Error::new(
                    ErrorKind::InvalidArgument,
                    "discovery_interface: an IPv4 address of this host, or null for all",
                ))
            })?;
            state.discovery.multicast_interfaces(Some(ip))?;
            Ok(Some(ip))
        }
    }
}

/// A new site (admins).
#[utoipa::path(post, operation_id = "admin_site_create", path = "/api/v1/sites", tag = "admin",
    request_body = ApiSiteWrite,
    responses((status = 201, body = ApiSite, description = "created"), Problems))]
pub async fn site_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiSiteWrite>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let iface = interface(&state, req.discovery_interface.as_deref())?;
    let s = state
        .sites
        .create(&req.name, &req.description, &me.actor())
        .await?;
    let s = state
        .sites
        .configure(s.id, &req.config(iface), &me.actor())
        .await?;
    Ok(created(site_of(s)))
}

/// Change a site (admins).
#[utoipa::path(put, operation_id = "admin_site_update", path = "/api/v1/sites/{id}", tag = "admin",
    params(("id" = i32, Path)),
    request_body = ApiSiteWrite,
    responses((status = 200, body = ApiSite, description = "the result"), Problems))]
pub async fn site_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiSiteWrite>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let iface = interface(&state, req.discovery_interface.as_deref())?;
    let s = state
        .sites
        .configure(id, &req.config(iface), &me.actor())
        .await?;
    Ok(json(site_of(s)))
}

/// Delete a site with no devices and no users (admins).
#[utoipa::path(delete, operation_id = "admin_site_delete", path = "/api/v1/sites/{id}", tag = "admin",
    params(("id" = i32, Path)),
    responses((status = 204, description = "deleted"), Problems))]
pub async fn site_delete(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    state.sites.delete(id, &me.actor()).await?;
    state.auth_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiUser {
    pub id: i32,
    pub username: String,
    /// `admin`, `technician`, `procurement` or `viewer`.
    pub role: String,
    pub disabled: bool,
    /// Sees every site (admins always do).
    pub all_sites: bool,
    /// The sites it sees otherwise.
    pub sites: Vec<i32>,
    pub must_change_password: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_login_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn user_of(state: &State, u: user::Model) -> Result<ApiUser, WebError> {
    Ok(ApiUser {
        sites: state.users.sites_of(u.id).await?,
        id: u.id,
        username: u.username,
        role: u.role,
        disabled: u.disabled,
        all_sites: u.all_sites,
        must_change_password: u.must_change_password,
        created_at: u.created_at,
        last_login_at: u.last_login_at,
    })
}

/// Every user (admins).
#[utoipa::path(get, operation_id = "admin_users", path = "/api/v1/users", tag = "admin",
    responses((status = 200, body = Vec<ApiUser>, description = "the result"), Problems))]
pub async fn users(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let mut out = Vec::new();
    for u in state.users.list(&me.actor()).await? {
        out.push(user_of(&state, u).await?);
    }
    Ok(json(out))
}

fn role(s: &str) -> Result<Role, WebError> {
    Role::parse(s).ok_or_else(|| {
        WebError(Error::new(
            ErrorKind::InvalidArgument,
            "role: admin, technician, procurement or viewer",
        ))
    })
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiUserCreate {
    pub username: String,
    /// At least 10 characters.
    pub password: String,
    pub role: String,
    #[serde(default)]
    pub all_sites: bool,
    #[serde(default)]
    pub sites: Vec<i32>,
    /// Default true: the user chooses their own at first login.
    #[serde(default = "yes")]
    pub must_change_password: bool,
}

fn yes() -> bool {
    true
}

/// A new user (admins).
#[utoipa::path(post, operation_id = "admin_user_create", path = "/api/v1/users", tag = "admin",
    request_body = ApiUserCreate,
    responses((status = 201, body = ApiUser, description = "created"), Problems))]
pub async fn user_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    headers: HeaderMap,
    Json(req): Json<ApiUserCreate>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let u = state
        .users
        .create_with(
            req.username.trim(),
            &req.password,
            role(&req.role)?,
            NewUser {
                all_sites: req.all_sites,
                sites: req.sites,
                must_change_password: req.must_change_password,
            },
            &me.actor(),
        )
        .await?;
    Ok(created(user_of(&state, u).await?))
}

/// One user (admins).
#[utoipa::path(get, operation_id = "admin_user", path = "/api/v1/users/{id}", tag = "admin",
    params(("id" = i32, Path)),
    responses((status = 200, body = ApiUser, description = "the result"), Problems))]
pub async fn user(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let u = state.users.get_for(&me.actor(), id).await?;
    Ok(json(user_of(&state, u).await?))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiUserAccess {
    pub role: String,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub all_sites: bool,
    #[serde(default)]
    pub sites: Vec<i32>,
}

/// Change a user's role, sites or disabled flag (admins; not your own
/// role or disabled flag).
#[utoipa::path(put, operation_id = "admin_user_update", path = "/api/v1/users/{id}", tag = "admin",
    params(("id" = i32, Path)),
    request_body = ApiUserAccess,
    responses((status = 200, body = ApiUser, description = "the result"), Problems))]
pub async fn user_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiUserAccess>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    let u = state
        .users
        .update(
            id,
            Access {
                role: role(&req.role)?,
                disabled: req.disabled,
                all_sites: req.all_sites,
                sites: req.sites,
            },
            &me.actor(),
        )
        .await?;
    state.auth_cache.clear();
    Ok(json(user_of(&state, u).await?))
}

#[derive(serde::Deserialize, ToSchema)]
pub struct ApiPasswordReset {
    /// At least 10 characters.
    pub password: String,
    /// Default true.
    #[serde(default = "yes")]
    pub must_change: bool,
}

/// Set a user's password (admins): their sessions end and their API
/// tokens are revoked. Not for your own account (change it on /account).
#[utoipa::path(post, operation_id = "admin_user_password", path = "/api/v1/users/{id}/password", tag = "admin",
    params(("id" = i32, Path)),
    request_body = ApiPasswordReset,
    responses((status = 204, description = "set"), Problems))]
pub async fn user_password(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    headers: HeaderMap,
    Json(req): Json<ApiPasswordReset>,
) -> Result<Response, WebError> {
    csrf(&me, &headers)?;
    if id == me.user.id {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "change your own password on your account page, with your current one",
        )));
    }
    let u = state.users.get_for(&me.actor(), id).await?;
    state
        .users
        .set_password(&u.username, &req.password, req.must_change, &me.actor())
        .await?;
    state.auth_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiAuditEntry {
    pub id: i32,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// The client address of whoever acted.
    pub ip: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiAudit {
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub entries: Vec<ApiAuditEntry>,
}

/// The audit log, newest first, 100 a page (admins).
#[utoipa::path(get, operation_id = "admin_audit", path = "/api/v1/audit", tag = "admin",
    params(AuditQuery),
    responses((status = 200, body = ApiAudit, description = "the result"), Problems))]
pub async fn audit(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let a = state.console.audit_log(&me.actor(), &q).await?;
    Ok(json(ApiAudit {
        total: a.total,
        page: a.page,
        pages: a.pages,
        entries: a
            .entries
            .into_iter()
            .map(|e| ApiAuditEntry {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                target_kind: e.target_kind,
                target_id: e.target_id,
                before: e.before,
                after: e.after,
                ip: e.ip,
            })
            .collect(),
    }))
}

/// The nodes sharing this database.
#[derive(serde::Serialize, ToSchema)]
pub struct ApiCluster {
    pub nodes: Vec<crate::fleet::cluster::NodeView>,
}

/// Every node sharing this database, live ones first: roles, pinned
/// sites, devices leased, streams recorded, last heartbeat (technicians
/// and admins).
#[utoipa::path(get, operation_id = "cluster", path = "/api/v1/cluster", tag = "admin",
    responses((status = 200, body = ApiCluster, description = "the nodes"), Problems))]
pub async fn cluster(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let nodes = state.console.cluster(&me.actor()).await?;
    Ok(json(ApiCluster { nodes }))
}
