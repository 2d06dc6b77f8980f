//! The dashboard, the device list, the audit log and the static assets:
//! parse the request, ask the console, render.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::Json;
use axum::extract::{Query, RawQuery, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::db::entities::audit_log;
pub use crate::fleet::console::device_list::{COLUMNS, DeviceList, DeviceQuery, DeviceRow};
pub use crate::fleet::console::overview::{AuditQuery, SiteCounts};

pub async fn healthz(AxState(state): AxState<State>) -> Response {
    if state.console.ping().await {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../static/app.js"),
    )
        .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub me: CurrentUser,
    pub total: u64,
    pub by_status: Vec<(String, i64)>,
    /// (site id or 0, site name, status, count)
    pub by_site: Vec<SiteCounts>,
    pub recent: Vec<audit_log::Model>,
    pub runs: Vec<crate::db::entities::discovery_run::Model>,
    pub problems: Vec<crate::db::entities::device::Model>,
    pub problem_count: u64,
    pub alerts: crate::fleet::console::alerts::AlertSummary,
    pub failed_adoptions: Vec<crate::fleet::console::overview::FailedAdoption>,
    pub failed_adoption_count: usize,
}

pub async fn dashboard(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let d = state.console.dashboard(&me.actor()).await?;
    Ok(DashboardPage {
        me,
        total: d.total,
        by_status: d.by_status,
        by_site: d.by_site,
        recent: d.recent,
        runs: d.runs,
        problems: d.problems,
        problem_count: d.problem_count,
        alerts: d.alerts,
        failed_adoptions: d.failed_adoptions,
        failed_adoption_count: d.failed_adoption_count,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "devices.html")]
pub struct DevicesPage {
    pub me: CurrentUser,
    pub list: DeviceList,
    pub query: DeviceQuery,
    pub prev_link: String,
    pub next_link: String,
    pub sites: Vec<crate::db::entities::site::Model>,
    pub columns: &'static [(&'static str, &'static str)],
    /// Set after a bulk action: what it did.
    pub notice: String,
}

impl DevicesPage {
    /// The list's filter as a query string (for "all matching").
    pub fn filter_query(&self) -> String {
        self.query
            .link("", 1, None)
            .trim_start_matches('?')
            .to_string()
    }

    pub fn site_of(&self, id: &Option<i32>) -> &str {
        crate::fleet::inventory::site_name(&self.sites, *id)
    }
}

pub async fn devices_page(
    state: &State,
    me: CurrentUser,
    q: DeviceQuery,
    notice: String,
) -> Result<DevicesPage, WebError> {
    let list = state.console.list_devices(&me.actor(), &q).await?;
    let prev_link = if list.page > 1 {
        q.link("/devices", list.page - 1, None)
    } else {
        String::new()
    };
    // The next page follows the last row (keyset) when the sort allows:
    // deep pages cost what the first does.
    let next_link = match (&list.next, list.page < list.pages) {
        (Some(c), true) => q.link_after("/devices", list.page + 1, c),
        (None, true) => q.link("/devices", list.page + 1, None),
        _ => String::new(),
    };
    let sites = state.sites.visible(&me.scope).await?;
    Ok(DevicesPage {
        me,
        list,
        query: q,
        prev_link,
        next_link,
        sites,
        columns: COLUMNS,
        notice,
    })
}

pub async fn devices(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = DeviceQuery::parse(raw.as_deref())?;
    Ok(devices_page(&state, me, q, String::new())
        .await?
        .into_response())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApiDevices {
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub per_page: u64,
    pub devices: Vec<DeviceRow>,
}

pub async fn api_devices(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = DeviceQuery::parse(raw.as_deref())?;
    let l = state.console.list_devices(&me.actor(), &q).await?;
    Ok(Json(ApiDevices {
        total: l.total,
        page: l.page,
        pages: l.pages,
        per_page: l.per_page,
        devices: l.devices.as_ref().clone(),
    })
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "cluster.html")]
pub struct ClusterPage {
    pub me: CurrentUser,
    pub nodes: Vec<crate::fleet::cluster::NodeView>,
}

pub async fn cluster(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let nodes = state.console.cluster(&me.actor()).await?;
    Ok(ClusterPage { me, nodes }.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub me: CurrentUser,
    pub entries: Vec<audit_log::Model>,
    pub query: AuditQuery,
    pub page: u64,
    pub pages: u64,
    pub total: u64,
}

pub async fn audit(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let a = state.console.audit_log(&me.actor(), &q).await?;
    Ok(AuditPage {
        me,
        entries: a.entries,
        query: q,
        page: a.page,
        pages: a.pages,
        total: a.total,
    }
    .into_response())
}
