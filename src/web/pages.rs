//! Pages and API handlers: parse the request, ask the database or a
//! service, render. Lists are paginated and filtered in the database.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::Json;
use axum::extract::{Query, RawQuery, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::db::entities::{audit_log, device};
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
pub(super) fn exact_filters(
    state: &State,
    me: &CurrentUser,
    q: &DeviceQuery,
) -> Result<Condition, WebError> {
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
