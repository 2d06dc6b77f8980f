//! Pages and API handlers: parse the request, ask the database or a
//! service, render. Lists are paginated and filtered in the database.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, RawQuery, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::db::entities::{audit_log, device, device_profile};
use crate::error::{Error, ErrorKind};

pub async fn healthz(AxState(state): AxState<State>) -> Response {
    if crate::db::ping(&state.db).await {
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
}

pub struct SiteCounts {
    pub id: i32,
    pub name: String,
    pub total: i64,
    pub by_status: Vec<(String, i64)>,
}

pub async fn dashboard(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let rows: Vec<(Option<i32>, String, i64)> = device::Entity::find()
        .filter(me.scope.devices())
        .select_only()
        .column(device::Column::SiteId)
        .column(device::Column::Status)
        .column_as(device::Column::Id.count(), "n")
        .group_by(device::Column::SiteId)
        .group_by(device::Column::Status)
        .into_tuple()
        .all(&state.db)
        .await?;
    let sites = state.sites.list().await?;
    let mut by_status: std::collections::BTreeMap<String, i64> = Default::default();
    let mut per_site: std::collections::BTreeMap<(String, i32), Vec<(String, i64)>> =
        Default::default();
    for (site, status, n) in rows {
        *by_status.entry(status.clone()).or_default() += n;
        let name = crate::fleet::inventory::site_name(&sites, site);
        let name = if name.is_empty() { "(no site)" } else { name };
        per_site
            .entry((name.to_string(), site.unwrap_or(0)))
            .or_default()
            .push((status, n));
    }
    let total = u64::try_from(by_status.values().sum::<i64>()).unwrap_or(0);
    let by_site = per_site
        .into_iter()
        .map(|((name, id), by_status)| SiteCounts {
            id,
            name,
            total: by_status.iter().map(|(_, n)| n).sum(),
            by_status,
        })
        .collect();
    let recent = if me.role.can_manage_users() {
        audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .limit(10)
            .all(&state.db)
            .await?
    } else {
        Vec::new()
    };
    let mut runs = state.discovery.runs(&state.db).await?;
    runs.truncate(5);
    Ok(DashboardPage {
        me,
        total,
        by_status: by_status.into_iter().collect(),
        by_site,
        recent,
        runs,
    }
    .into_response())
}

/// Columns the device list can show; the user picks with `col=…`.
pub const COLUMNS: &[(&str, &str)] = &[
    ("thumb", "Snapshot"),
    ("status", "Status"),
    ("site", "Site"),
    ("manufacturer", "Manufacturer"),
    ("model", "Model"),
    ("firmware", "Firmware"),
    ("serial", "Serial"),
    ("mac", "MAC"),
    ("address", "Address"),
    ("latency", "Latency"),
    ("drift", "Clock drift"),
    ("last_seen", "Last seen"),
    ("warranty_end", "Warranty end"),
    ("end_of_life", "End of life"),
];
const DEFAULT_COLUMNS: &[&str] = &[
    "status",
    "site",
    "manufacturer",
    "model",
    "firmware",
    "serial",
    "address",
    "latency",
    "drift",
    "last_seen",
];

/// Query parameters of the device list (page, API and CSV alike).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DeviceQuery {
    pub q: String,
    pub status: String,
    pub model: String,
    pub firmware: String,
    pub manufacturer: String,
    /// Site id, or `none` for devices without a site.
    pub site: String,
    /// Warranty ending within this many days (or already ended).
    pub warranty_within: Option<i64>,
    /// End of life within this many days (or already reached).
    pub eol_within: Option<i64>,
    pub sort: String,
    pub desc: bool,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
    /// Chosen columns (empty: the defaults).
    pub cols: Vec<String>,
}

impl DeviceQuery {
    /// From a raw query string; `col` may repeat. Unknown keys are ignored,
    /// malformed numbers are an error naming the parameter.
    pub fn parse(raw: Option<&str>) -> Result<Self, WebError> {
        let mut q = DeviceQuery::default();
        let bad = |k: &str| {
            WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("{k}: expected a whole number"),
            ))
        };
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "q" => q.q = v,
                "status" => q.status = v,
                "model" => q.model = v,
                "firmware" => q.firmware = v,
                "manufacturer" => q.manufacturer = v,
                "site" => q.site = v,
                "warranty_within" if !v.is_empty() => {
                    q.warranty_within = Some(v.parse().map_err(|_| bad("warranty_within"))?)
                }
                "eol_within" if !v.is_empty() => {
                    q.eol_within = Some(v.parse().map_err(|_| bad("eol_within"))?)
                }
                "sort" => q.sort = v,
                "desc" => q.desc = v == "true" || v == "1",
                "page" if !v.is_empty() => q.page = Some(v.parse().map_err(|_| bad("page"))?),
                "per_page" if !v.is_empty() => {
                    q.per_page = Some(v.parse().map_err(|_| bad("per_page"))?)
                }
                "col" if COLUMNS.iter().any(|(c, _)| *c == v) && !q.cols.contains(&v) => {
                    q.cols.push(v)
                }
                _ => {}
            }
        }
        Ok(q)
    }

    pub fn shows(&self, col: &str) -> bool {
        if self.cols.is_empty() {
            DEFAULT_COLUMNS.contains(&col)
        } else {
            self.cols.iter().any(|c| c == col)
        }
    }

    /// The query as a link, with another page or sort.
    pub fn link(&self, path: &str, page: u64, sort: Option<&str>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &self.q),
            ("status", &self.status),
            ("model", &self.model),
            ("firmware", &self.firmware),
            ("manufacturer", &self.manufacturer),
            ("site", &self.site),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(d) = self.warranty_within {
            s.append_pair("warranty_within", &d.to_string());
        }
        if let Some(d) = self.eol_within {
            s.append_pair("eol_within", &d.to_string());
        }
        for c in &self.cols {
            s.append_pair("col", c);
        }
        match sort {
            Some(col) => {
                s.append_pair("sort", col);
                if self.sort == col && !self.desc {
                    s.append_pair("desc", "true");
                }
            }
            None => {
                if !self.sort.is_empty() {
                    s.append_pair("sort", &self.sort);
                }
                if self.desc {
                    s.append_pair("desc", "true");
                }
                s.append_pair("page", &page.to_string());
            }
        }
        format!("{path}?{}", s.finish())
    }

    pub fn sort_link(&self, col: &str) -> String {
        self.link("/devices", 1, Some(col))
    }
}

pub const MAX_PER_PAGE: u64 = 500;

/// Free-text search as a substring of the device's lowercased search text.
/// On SQLite, three characters or more go through the FTS5 trigram index
/// (a quoted phrase: every character literal); shorter text, `scan`, and
/// PostgreSQL (where pg_trgm indexes the LIKE), use an escaped LIKE. Both
/// forms match the same rows: a substring of the lowercased text.
/// Past this many matches, a search page scans the sort order instead of
/// using the text index (see `list_devices`).
const DENSE_MATCHES: u64 = 500;

fn search_condition(backend: sea_orm::DatabaseBackend, text: &str, scan: bool) -> Condition {
    let lower = text.to_lowercase();
    if !scan && backend == sea_orm::DatabaseBackend::Sqlite && lower.chars().count() >= 3 {
        let phrase = format!("\"{}\"", lower.replace('"', "\"\""));
        return Condition::all().add(Expr::cust_with_values(
            "devices.id IN (SELECT rowid FROM devices_fts WHERE devices_fts MATCH ?)",
            [phrase],
        ));
    }
    let pattern = format!(
        "%{}%",
        lower
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    Condition::all().add(
        Expr::col(device::Column::SearchText).like(LikeExpr::new(pattern.as_str()).escape('\\')),
    )
}

/// The list's filters other than free text (status, model, firmware,
/// manufacturer, site, inventory dates) within the user's scope; shared by
/// the page, the API and the CSV export.
fn exact_filters(state: &State, me: &CurrentUser, q: &DeviceQuery) -> Result<Condition, WebError> {
    let mut cond = me.scope.devices();
    for (value, col) in [
        (&q.status, device::Column::Status),
        (&q.model, device::Column::Model),
        (&q.firmware, device::Column::Firmware),
        (&q.manufacturer, device::Column::Manufacturer),
    ] {
        if !value.is_empty() {
            cond = cond.add(col.eq(value.as_str()));
        }
    }
    match q.site.as_str() {
        "" => {}
        "none" => cond = cond.add(device::Column::SiteId.is_null()),
        v => {
            let id: i32 = v.parse().map_err(|_| {
                WebError(Error::new(
                    ErrorKind::InvalidArgument,
                    "site: a site id or none",
                ))
            })?;
            cond = cond.add(device::Column::SiteId.eq(id));
        }
    }
    let today = state.clock.now_utc().date_naive();
    for (days, col) in [
        (q.warranty_within, device::Column::WarrantyEnd),
        (q.eol_within, device::Column::EndOfLife),
    ] {
        if let Some(days) = days {
            let days = days.clamp(-36_500, 36_500);
            cond = cond.add(col.lte(today + chrono::Duration::days(days)));
        }
    }
    Ok(cond)
}

/// What the device list shows of a device: the list loads only these
/// columns (no JSON or long inventory fields), which is most of its speed.
#[derive(Debug, Clone, sea_orm::FromQueryResult, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceRow {
    pub id: i32,
    pub name: String,
    pub status: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: Option<String>,
    pub mac: Option<String>,
    pub device_url: String,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub site_id: Option<i32>,
    pub warranty_end: Option<chrono::NaiveDate>,
    pub end_of_life: Option<chrono::NaiveDate>,
    pub latency_ms: Option<i32>,
    pub drift_ms: Option<i64>,
}

impl DeviceRow {
    /// Drift for people: `+3.2 s`, `-1 h 2 min`.
    pub fn drift_text(&self) -> String {
        self.drift_ms.map(human_drift).unwrap_or_default()
    }
}

/// A clock offset in the unit that reads best.
pub fn human_drift(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let a = ms.unsigned_abs();
    if a < 1_000 {
        format!("{sign}{a} ms")
    } else if a < 120_000 {
        format!("{sign}{:.1} s", a as f64 / 1000.0)
    } else if a < 7_200_000 {
        format!("{sign}{} min", a / 60_000)
    } else {
        format!("{sign}{} h {} min", a / 3_600_000, (a % 3_600_000) / 60_000)
    }
}

pub struct DeviceList {
    pub devices: std::sync::Arc<Vec<DeviceRow>>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub per_page: u64,
}

/// Search, filter, sort and page the inventory in the database, within
/// the user's sites.
pub async fn list_devices(
    state: &State,
    me: &CurrentUser,
    q: &DeviceQuery,
) -> Result<DeviceList, WebError> {
    let db = &state.db;
    let per_page = q.per_page.unwrap_or(50).clamp(1, MAX_PER_PAGE);
    let filters = exact_filters(state, me, q)?;
    let text = q.q.trim();
    if text.len() > 200 {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "search text is too long",
        )));
    }
    let backend = state.db.get_database_backend();
    let with_search = |scan: bool| {
        if text.is_empty() {
            filters.clone()
        } else {
            filters.clone().add(search_condition(backend, text, scan))
        }
    };
    // Counting uses the text index (it must visit every match anyway).
    let sort = match q.sort.as_str() {
        "model" => device::Column::Model,
        "firmware" => device::Column::Firmware,
        "status" => device::Column::Status,
        "last_seen" => device::Column::LastSeen,
        "latency" => device::Column::LatencyMs,
        "drift" => device::Column::DriftMs,
        "serial" => device::Column::Serial,
        "manufacturer" => device::Column::Manufacturer,
        "site" => device::Column::SiteId,
        "warranty_end" => device::Column::WarrantyEnd,
        "end_of_life" => device::Column::EndOfLife,
        _ => device::Column::Name,
    };
    // The count changes only when devices are written: cache it per filter
    // and scope against the inventory's write generation (and at most
    // COUNT_TTL, for writes made by other nodes). A plain aggregate, not
    // the paginator's count, which wraps the sorted query in a subquery.
    let key = format!(
        "{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{:?}\u{1}{:?}\u{1}{}\u{1}{}",
        text.to_lowercase(),
        q.status,
        q.model,
        q.firmware,
        q.manufacturer,
        q.site,
        q.warranty_within,
        q.eol_within,
        me.scope.cache_key(),
        state.clock.now_utc().date_naive(),
    );
    let generation = state.inventory.generation();
    let now = state.clock.monotonic();
    let count = |key: String, cond: Condition| async move {
        if let Some(n) = state.count_cache.get(&key, generation, now) {
            return Ok::<u64, WebError>(n);
        }
        let n: i64 = device::Entity::find()
            .filter(cond)
            .select_only()
            .column_as(Expr::cust("COUNT(*)"), "n")
            .into_tuple()
            .one(db)
            .await?
            .unwrap_or(0);
        let n = u64::try_from(n).unwrap_or(0);
        state.count_cache.put(key, generation, now, n);
        Ok(n)
    };
    let total = count(key.clone(), with_search(false)).await?;
    // How the page finds its rows, when there is a search (SQLite): if the
    // matches are a large share of what the other filters leave, walking
    // the sort index and testing each row stops after one page; otherwise
    // collecting the matches from the text index and sorting them wins.
    let dense = !text.is_empty() && total > DENSE_MATCHES && {
        let base_key = format!("{key}\u{1}base");
        let base = count(base_key, filters.clone()).await?;
        total.saturating_mul(5) > base
    };
    let pages = std::cmp::max(total.div_ceil(per_page), 1);
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let query = device::Entity::find().filter(with_search(dense));
    let query = if q.desc {
        query.order_by_desc(sort)
    } else {
        query.order_by_asc(sort)
    };
    let page_key = format!(
        "{key}\u{1}{}\u{1}{}\u{1}{dense}\u{1}{page}\u{1}{per_page}",
        q.sort, q.desc
    );
    if let Some(devices) = state.page_cache.get(&page_key, generation, now) {
        return Ok(DeviceList {
            devices,
            total,
            page,
            pages,
            per_page,
        });
    }
    let devices = query
        .order_by_asc(device::Column::Id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .select_only()
        .columns([
            device::Column::Id,
            device::Column::Name,
            device::Column::Status,
            device::Column::Manufacturer,
            device::Column::Model,
            device::Column::Firmware,
            device::Column::Serial,
            device::Column::Mac,
            device::Column::DeviceUrl,
            device::Column::LastSeen,
            device::Column::SiteId,
            device::Column::WarrantyEnd,
            device::Column::EndOfLife,
            device::Column::LatencyMs,
            device::Column::DriftMs,
        ])
        .into_model::<DeviceRow>()
        .all(db)
        .await?;
    let devices = std::sync::Arc::new(devices);
    state
        .page_cache
        .put(page_key, generation, now, devices.clone());
    Ok(DeviceList {
        devices,
        total,
        page,
        pages,
        per_page,
    })
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
    let list = list_devices(state, &me, &q).await?;
    let prev_link = if list.page > 1 {
        q.link("/devices", list.page - 1, None)
    } else {
        String::new()
    };
    let next_link = if list.page < list.pages {
        q.link("/devices", list.page + 1, None)
    } else {
        String::new()
    };
    let sites = state
        .sites
        .list()
        .await?
        .into_iter()
        .filter(|s| me.scope.allows_site(Some(s.id)))
        .collect();
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

pub struct EventRow {
    pub at: chrono::DateTime<chrono::Utc>,
    pub topic: String,
    pub state: &'static str,
    pub details: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "device.html")]
pub struct DevicePage {
    pub me: CurrentUser,
    pub d: device::Model,
    pub site: String,
    pub transitions: Vec<crate::db::entities::device_transition::Model>,
    /// Camera events on watched topics, newest first: (when, topic, state, details).
    pub events: Vec<EventRow>,
    /// Server-rendered SVG charts: (title, svg).
    pub charts: Vec<(String, String)>,
    pub drift: String,
    pub profiles: Vec<device_profile::Model>,
    pub quirks: Vec<String>,
    pub history: Vec<audit_log::Model>,
    /// Gaps tried from the camera's own recording, newest first.
    pub backfills: Vec<crate::db::entities::backfill::Model>,
    pub can_backfill: bool,
}

pub async fn device(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let d = device_or_404(&state, &me, id).await?;
    let site = match d.site_id {
        Some(sid) => crate::db::entities::site::Entity::find_by_id(sid)
            .one(&state.db)
            .await?
            .map(|s| s.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    let profiles = device_profile::Entity::find()
        .filter(device_profile::Column::DeviceId.eq(id))
        .all(&state.db)
        .await?;
    let quirks = d
        .quirks
        .as_array()
        .map(|a| a.iter().map(|q| q.to_string()).collect())
        .unwrap_or_default();
    let history = audit_log::Entity::find()
        .filter(audit_log::Column::TargetKind.eq("device"))
        .filter(audit_log::Column::TargetId.eq(id.to_string()))
        .order_by_desc(audit_log::Column::Id)
        .limit(50)
        .all(&state.db)
        .await?;
    let transitions = crate::db::entities::device_transition::Entity::find()
        .filter(crate::db::entities::device_transition::Column::DeviceId.eq(id))
        .order_by_desc(crate::db::entities::device_transition::Column::Id)
        .limit(50)
        .all(&state.db)
        .await?;
    let events = crate::db::entities::device_event::Entity::find()
        .filter(crate::db::entities::device_event::Column::DeviceId.eq(id))
        .order_by_desc(crate::db::entities::device_event::Column::Id)
        .limit(30)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|e| {
            let items = |v: &serde_json::Value| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| Some(format!("{}={}", p[0].as_str()?, p[1].as_str()?)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            EventRow {
                at: e.at,
                state: match e.active {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "",
                },
                details: [items(&e.source), items(&e.data)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · "),
                topic: if e.operation.is_empty() {
                    e.topic
                } else {
                    format!("{} ({})", e.topic, e.operation)
                },
            }
        })
        .collect();
    let charts = health_charts(&state, id).await?;
    let drift = d.drift_ms.map(human_drift).unwrap_or_default();
    let backfills = crate::fleet::backfill::Backfill::history(&state.db, id, 10).await?;
    Ok(DevicePage {
        can_backfill: state.backfill.is_some() && d.record_profile.is_some(),
        backfills,
        me,
        d,
        site,
        transitions,
        events,
        charts,
        drift,
        profiles,
        quirks,
        history,
    }
    .into_response())
}

/// The device page's charts: 24 h from raw samples (5-minute buckets)
/// and 7 days from rollups (hourly), for availability, latency and drift.
async fn health_charts(state: &State, id: i32) -> Result<Vec<(String, String)>, WebError> {
    use crate::fleet::samples::{BUCKET_MS, series, svg_chart};
    let now = state.clock.now_utc().timestamp_millis();
    let mut out = Vec::new();
    for (label, span, bucket, raw) in [
        ("24 h", 24 * 3_600_000_i64, BUCKET_MS, true),
        ("7 days", 7 * 24 * 3_600_000_i64, 3_600_000, false),
    ] {
        let pts = series(&state.db, id, now, span, bucket, raw).await?;
        let x = |p: &crate::fleet::samples::Point| (p.start_ms - (now - span)) as f64 / span as f64;
        let avail: Vec<(f64, Option<f64>)> = pts
            .iter()
            .map(|p| (x(p), p.availability().map(|a| a * 100.0)))
            .collect();
        let lat: Vec<(f64, Option<f64>)> = pts.iter().map(|p| (x(p), p.latency_avg_ms)).collect();
        let drift: Vec<(f64, Option<f64>)> = pts
            .iter()
            .map(|p| (x(p), p.drift_avg_ms.map(|d| d / 1000.0)))
            .collect();
        out.push((
            format!("Availability, {label}"),
            svg_chart(&format!("Availability, {label}"), "%", &avail, Some(100.0)),
        ));
        out.push((
            format!("Latency, {label}"),
            svg_chart(&format!("Latency, {label}"), "ms", &lat, None),
        ));
        out.push((
            format!("Clock drift, {label}"),
            svg_chart(&format!("Clock drift, {label}"), "s", &drift, None),
        ));
    }
    Ok(out)
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
    let l = list_devices(&state, &me, &q).await?;
    Ok(Json(ApiDevices {
        total: l.total,
        page: l.page,
        pages: l.pages,
        per_page: l.per_page,
        devices: l.devices.as_ref().clone(),
    })
    .into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: String,
    /// Prefix, e.g. `device.` or `login`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub target_kind: String,
    #[serde(default)]
    pub target_id: String,
    pub page: Option<u64>,
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
    me.require(me.role.can_manage_users())?;
    let mut cond = Condition::all();
    if !q.actor.is_empty() {
        cond = cond.add(audit_log::Column::Actor.eq(q.actor.as_str()));
    }
    if !q.action.is_empty() {
        let prefix = format!("{}%", q.action.replace('%', "\\%").replace('_', "\\_"));
        cond =
            cond.add(audit_log::Column::Action.like(LikeExpr::new(prefix.as_str()).escape('\\')));
    }
    if !q.target_kind.is_empty() {
        cond = cond.add(audit_log::Column::TargetKind.eq(q.target_kind.as_str()));
    }
    if !q.target_id.is_empty() {
        cond = cond.add(audit_log::Column::TargetId.eq(q.target_id.as_str()));
    }
    let paginator = audit_log::Entity::find()
        .filter(cond)
        .order_by_desc(audit_log::Column::Id)
        .paginate(&state.db, 100);
    let counts = paginator.num_items_and_pages().await?;
    let page = std::cmp::max(q.page.unwrap_or(1), 1);
    let entries = paginator.fetch_page(page - 1).await?;
    Ok(AuditPage {
        me,
        entries,
        query: q,
        page,
        pages: std::cmp::max(counts.number_of_pages, 1),
        total: counts.number_of_items,
    }
    .into_response())
}

/// Device counts per filter, valid for one inventory generation and at most
/// [`COUNT_TTL`].
pub type CountCache = GenCache<u64>;

/// List pages (rows) per filter, sort and page, on the same terms.
pub type PageCache = GenCache<std::sync::Arc<Vec<DeviceRow>>>;

/// A small map of values derived from the device table, each valid for
/// one inventory generation (bumped by every device write in this process)
/// and at most [`COUNT_TTL`] (writes made by other nodes).
pub struct GenCache<T> {
    map: std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Duration, T)>>,
    /// Entries kept before the map is emptied (bounded memory).
    cap: usize,
}

impl<T> Default for GenCache<T> {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl<T> GenCache<T> {
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            map: Default::default(),
            cap,
        }
    }
}

pub const COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl<T: Clone> GenCache<T> {
    fn get(&self, key: &str, generation: u64, now: std::time::Duration) -> Option<T> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(g, at, _)| *g == generation && now.saturating_sub(*at) < COUNT_TTL)
            .map(|(_, _, n)| n.clone())
    }

    fn put(&self, key: String, generation: u64, now: std::time::Duration, n: T) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap {
            map.clear();
        }
        map.insert(key, (generation, now, n));
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "inventory_form.html")]
pub struct InventoryFormPage {
    pub me: CurrentUser,
    pub d: device::Model,
    pub sites: Vec<crate::db::entities::site::Model>,
    pub f: crate::fleet::inventory::InventoryForm,
    pub errors: crate::fleet::inventory::FieldErrors,
}

impl InventoryFormPage {
    /// The error for a field, or empty (templates show it next to the input).
    pub fn err(&self, field: &str) -> &str {
        self.errors.get(field).map(String::as_str).unwrap_or("")
    }
}

/// A device the user may see, or 404 (also for devices of other sites, so
/// a scoped user learns nothing about them).
pub async fn device_or_404(
    state: &State,
    me: &CurrentUser,
    id: i32,
) -> Result<device::Model, WebError> {
    state
        .inventory
        .get_scoped(id, &me.scope)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no device {id}"))))
}

/// The sites a user may put devices into.
async fn sites_for(
    state: &State,
    me: &CurrentUser,
) -> Result<Vec<crate::db::entities::site::Model>, WebError> {
    Ok(state
        .sites
        .list()
        .await?
        .into_iter()
        .filter(|s| me.scope.allows_site(Some(s.id)))
        .collect())
}

pub async fn inventory_form(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    me.require(me.role.can_edit_inventory())?;
    let d = device_or_404(&state, &me, id).await?;
    let all_sites = state.sites.list().await?;
    let f = crate::fleet::inventory::InventoryForm::from_device(
        &d,
        crate::fleet::inventory::site_name(&all_sites, d.site_id),
    );
    let sites = sites_for(&state, &me).await?;
    Ok(InventoryFormPage {
        me,
        d,
        sites,
        f,
        errors: Default::default(),
    }
    .into_response())
}

#[derive(serde::Deserialize)]
pub struct InventorySubmit {
    csrf: String,
    #[serde(flatten)]
    form: crate::fleet::inventory::InventoryForm,
}

pub async fn inventory_save(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::Form(s): axum::extract::Form<InventorySubmit>,
) -> Result<Response, WebError> {
    me.check_csrf(&s.csrf)?;
    me.require(me.role.can_edit_inventory())?;
    let actor = crate::fleet::audit::Actor::user(&me.user.username);
    match state
        .inventory
        .edit_inventory(id, &s.form, &me.scope, &actor)
        .await?
    {
        crate::fleet::inventory::InventoryEdit::Saved(_) => {
            Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
        }
        crate::fleet::inventory::InventoryEdit::Invalid(errors) => {
            let d = device_or_404(&state, &me, id).await?;
            let sites = sites_for(&state, &me).await?;
            let page = InventoryFormPage {
                me,
                d,
                sites,
                f: s.form,
                errors,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// The inventory as CSV (every device, inventory columns). Filters as on
/// the device list apply.
pub async fn inventory_csv(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = DeviceQuery::parse(raw.as_deref())?;
    let devices = device::Entity::find()
        .filter(exact_filters(&state, &me, &q)?)
        .order_by_asc(device::Column::Id)
        .all(&state.db)
        .await?;
    let sites = state.sites.list().await?;
    csv_response(&state, &devices, &sites)
}

/// Devices as the inventory CSV (the import reads the same columns).
pub fn csv_response(
    state: &State,
    devices: &[device::Model],
    sites: &[crate::db::entities::site::Model],
) -> Result<Response, WebError> {
    use crate::fleet::csv::row;
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let mut out = row([
        "id",
        "name",
        "site",
        "manufacturer",
        "model",
        "serial",
        "mac",
        "firmware",
        "status",
        "location",
        "asset_tag",
        "purchase_order",
        "purchase_date",
        "supplier",
        "cost",
        "warranty_end",
        "end_of_life",
        "notes",
    ]);
    for d in devices {
        let cost = d
            .cost_cents
            .map(|c| format!("{}.{:02}", c / 100, c % 100))
            .unwrap_or_default();
        out.push_str(&row([
            d.id.to_string().as_str(),
            &d.name,
            crate::fleet::inventory::site_name(sites, d.site_id),
            &d.manufacturer,
            &d.model,
            d.serial.as_deref().unwrap_or(""),
            d.mac.as_deref().unwrap_or(""),
            &d.firmware,
            &d.status,
            &d.location,
            &d.asset_tag,
            &d.purchase_order,
            &date(d.purchase_date),
            &d.supplier,
            &cost,
            &date(d.warranty_end),
            &date(d.end_of_life),
            &d.notes,
        ]));
    }
    let filename = format!(
        "camfleet-inventory-{}.csv",
        state.clock.now_utc().format("%Y%m%d")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        out,
    )
        .into_response())
}

/// A device's own poll interval (technicians and admins).
pub async fn device_poll(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> Result<Response, WebError> {
    let f = super::form::FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    let secs = match f.get("poll_interval_s").trim() {
        "" => None,
        v => Some(v.parse::<i32>().map_err(|_| {
            WebError(Error::new(
                ErrorKind::InvalidArgument,
                "poll interval: a number of seconds, or empty",
            ))
        })?),
    };
    state
        .inventory
        .set_poll_interval(
            id,
            secs,
            &me.scope,
            &crate::fleet::audit::Actor::user(&me.user.username),
        )
        .await?;
    Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
}

/// Reboot a camera (technicians; a ticked confirmation required).
pub async fn device_reboot(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> Result<Response, WebError> {
    let f = super::form::FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    device_or_404(&state, &me, id).await?;
    if f.get("confirm") != "on" {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "reboot: tick the confirmation",
        )));
    }
    state
        .provisioner
        .reboot(id, &crate::fleet::audit::Actor::user(&me.user.username))
        .await?;
    Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
}

/// Change a camera's IPv4 settings: only with the confirmation ticked, and
/// the stored address follows only when the camera answers there.
pub async fn device_network(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> Result<Response, WebError> {
    let f = super::form::FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    device_or_404(&state, &me, id).await?;
    let bad = |m: &str| WebError(Error::new(ErrorKind::InvalidArgument, m.to_string()));
    if f.get("confirm") != "on" {
        return Err(bad(
            "network: tick that you understand the camera may become unreachable",
        ));
    }
    let (dhcp, address) = match f.text("mode").as_str() {
        "dhcp" => (true, None),
        "static" => {
            let a: std::net::Ipv4Addr = f
                .text("address")
                .parse()
                .map_err(|_| bad("address: an IPv4 address"))?;
            let p: u8 = f
                .text("prefix")
                .parse()
                .ok()
                .filter(|p| (1..=32).contains(p))
                .ok_or_else(|| bad("prefix length: 1–32"))?;
            (false, Some((a, p)))
        }
        _ => return Err(bad("mode: DHCP or static")),
    };
    state
        .provisioner
        .change_network(
            id,
            dhcp,
            address,
            std::time::Duration::from_secs(60),
            &crate::fleet::audit::Actor::user(&me.user.username),
        )
        .await?;
    Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
}

/// Fill this device's gaps from the camera's own recording now (in the
/// background; the device page lists the outcome per gap).
pub async fn device_backfill(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> Result<Response, WebError> {
    let f = super::form::FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    device_or_404(&state, &me, id).await?;
    let Some(b) = state.backfill.clone() else {
        return Err(WebError(Error::new(
            ErrorKind::Unavailable,
            "edge backfill is not configured here",
        )));
    };
    me.audit(
        &state.db,
        state.clock.now_utc(),
        crate::fleet::audit::Entry {
            action: "device.backfill",
            target_kind: "device",
            target_id: id.to_string(),
            before: None,
            after: None,
        },
    )
    .await?;
    tokio::spawn(async move {
        match b.run(Some(id), crate::shutdown::never()).await {
            Ok(r) => tracing::info!(
                device = id,
                gaps = r.gaps,
                filled = r.filled,
                "backfill done"
            ),
            Err(e) => tracing::warn!(device = id, error = %e, "backfill failed"),
        }
    });
    Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
}

/// Recording policy of a device: which media profile to record (empty: none).
pub async fn device_recording(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> Result<Response, WebError> {
    let f = super::form::FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    let d = device_or_404(&state, &me, id).await?;
    let token = f.text("profile");
    let profile = if token.is_empty() {
        None
    } else {
        let known = device_profile::Entity::find()
            .filter(device_profile::Column::DeviceId.eq(id))
            .filter(device_profile::Column::Token.eq(token.clone()))
            .one(&state.db)
            .await?;
        if known.is_none() {
            return Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("recording: no media profile {token:?} on this device"),
            )));
        }
        Some(token)
    };
    let transport = match f.text("transport").as_str() {
        "" | "tcp" => "tcp",
        "udp" => "udp",
        other => {
            return Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("transport: tcp or udp, not {other:?}"),
            )));
        }
    };
    let before = (d.record_profile.clone(), d.record_transport.clone());
    let mut am = sea_orm::IntoActiveModel::into_active_model(d);
    am.record_profile = sea_orm::Set(profile.clone());
    am.record_transport = sea_orm::Set(transport.to_string());
    if profile.is_none() {
        am.recording_status = sea_orm::Set(String::new());
    }
    sea_orm::ActiveModelTrait::update(am, &state.db).await?;
    me.audit(
        &state.db,
        state.clock.now_utc(),
        crate::fleet::audit::Entry {
            action: "device.recording",
            target_kind: "device",
            target_id: id.to_string(),
            before: Some(serde_json::json!({"record_profile": before.0, "transport": before.1})),
            after: Some(serde_json::json!({"record_profile": profile, "transport": transport})),
        },
    )
    .await?;
    Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
}
