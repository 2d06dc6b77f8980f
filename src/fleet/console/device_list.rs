//! The device list: search, filter, sort and page the inventory in the
//! database within the actor's sites (the page, the API and the CSV
//! export alike), with per-scope caches of counts and pages that a
//! device write invalidates.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Console;
use crate::db::entities::device;
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;

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
    /// Keyset cursor: the rows after this one (a previous list's `next`);
    /// with it, a deep page costs what the first does.
    pub after: String,
    /// Chosen columns (empty: the defaults).
    pub cols: Vec<String>,
}

impl DeviceQuery {
    /// From a raw query string; `col` may repeat. Unknown keys are ignored,
    /// malformed numbers are an error naming the parameter.
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        let mut q = DeviceQuery::default();
        let bad = |k: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{k}: expected a whole number"),
            )
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
                "after" => q.after = v,
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

    /// The link to the page after this one's last row (keyset).
    pub fn link_after(&self, path: &str, page: u64, cursor: &str) -> String {
        let base = self.link(path, page, None);
        let c: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        format!("{base}&after={c}")
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
pub fn exact_filters(
    actor: &Actor,
    today: chrono::NaiveDate,
    q: &DeviceQuery,
) -> Result<Condition> {
    let mut cond = actor.scope.devices();
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
            let id: i32 = v
                .parse()
                .map_err(|_| Error::new(ErrorKind::InvalidArgument, "site: a site id or none"))?;
            cond = cond.add(device::Column::SiteId.eq(id));
        }
    }
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
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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

/// The list's columns, in the order [`DeviceRow`] reads them back.
const ROW_COLUMNS: [device::Column; 15] = [
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
];

/// By position, not by name: the list selects exactly [`ROW_COLUMNS`], and
/// looking each of 15 columns up by name in every row was a measurable
/// share of a list page's CPU.
impl sea_orm::FromQueryResult for DeviceRow {
    fn from_query_result(
        r: &sea_orm::QueryResult,
        _pre: &str,
    ) -> std::result::Result<Self, sea_orm::DbErr> {
        Ok(Self {
            id: r.try_get_by_index(0)?,
            name: r.try_get_by_index(1)?,
            status: r.try_get_by_index(2)?,
            manufacturer: r.try_get_by_index(3)?,
            model: r.try_get_by_index(4)?,
            firmware: r.try_get_by_index(5)?,
            serial: r.try_get_by_index(6)?,
            mac: r.try_get_by_index(7)?,
            device_url: r.try_get_by_index(8)?,
            last_seen: r.try_get_by_index(9)?,
            site_id: r.try_get_by_index(10)?,
            warranty_end: r.try_get_by_index(11)?,
            end_of_life: r.try_get_by_index(12)?,
            latency_ms: r.try_get_by_index(13)?,
            drift_ms: r.try_get_by_index(14)?,
        })
    }
}

impl DeviceRow {
    /// `2026-12-06 04:33` (UTC), without a format string to interpret
    /// for every row.
    pub fn last_seen_text(&self) -> String {
        use chrono::{Datelike, Timelike};
        self.last_seen
            .map(|t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute()
                )
            })
            .unwrap_or_default()
    }

    /// Drift for people: `+3.2 s`, `-1 h 2 min`.
    pub fn drift_text(&self) -> String {
        self.drift_ms
            .map(super::devices::human_drift)
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct DeviceList {
    pub devices: std::sync::Arc<Vec<DeviceRow>>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
    pub per_page: u64,
    /// The cursor of the next page (keyset), when the sort allows one and
    /// there are more rows.
    pub next: Option<String>,
}

/// Sorts a keyset cursor can follow: NOT NULL text columns, with the id
/// to break ties. Nullable sorts page by offset.
fn keyset_value(sort: &str, r: &DeviceRow) -> Option<String> {
    Some(match sort {
        "model" => r.model.clone(),
        "firmware" => r.firmware.clone(),
        "status" => r.status.clone(),
        "manufacturer" => r.manufacturer.clone(),
        "" | "name" => r.name.clone(),
        _ => return None,
    })
}

fn encode_cursor(value: &str, id: i32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::json!([value, id]).to_string())
}

fn decode_cursor(c: &str) -> Result<(String, i32)> {
    use base64::Engine;
    let bad = || {
        Error::new(
            ErrorKind::InvalidArgument,
            "after: not a cursor from a previous page",
        )
    };
    if c.len() > 1024 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let (v, id): (String, i32) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((v, id))
}

impl Console {
    /// Search, filter, sort and page the inventory in the database, within
    /// the actor's sites.
    pub async fn list_devices(&self, actor: &Actor, q: &DeviceQuery) -> Result<DeviceList> {
        let db = &self.db;
        let per_page = q.per_page.unwrap_or(50).clamp(1, MAX_PER_PAGE);
        let filters = exact_filters(actor, self.clock.now_utc().date_naive(), q)?;
        let text = q.q.trim();
        if text.len() > 200 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "search text is too long",
            ));
        }
        let backend = self.db.get_database_backend();
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
            actor.scope.cache_key(),
            self.clock.now_utc().date_naive(),
        );
        let generation = self.inventory.generation();
        let now = self.clock.monotonic();
        let count = |key: String, cond: Condition| async move {
            if let Some(n) = self.count_cache.get(&key, generation, now) {
                return Ok::<u64, Error>(n);
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
            self.count_cache.put(key, generation, now, n);
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
        let keyset = matches!(
            q.sort.as_str(),
            "" | "name" | "model" | "firmware" | "status" | "manufacturer"
        );
        let cond = with_search(dense);
        let cursor = if q.after.is_empty() {
            None
        } else if !keyset {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "after: this sort pages by number (page=N), not by cursor",
            ));
        } else {
            Some(decode_cursor(&q.after)?)
        };
        let page_key = format!(
            "{key}\u{1}{}\u{1}{}\u{1}{dense}\u{1}{page}\u{1}{per_page}\u{1}{}",
            q.sort, q.desc, q.after
        );
        let next_of = |devices: &Vec<DeviceRow>| -> Option<String> {
            if !keyset || (devices.len() as u64) < per_page {
                return None;
            }
            let last = devices.last()?;
            Some(encode_cursor(&keyset_value(&q.sort, last)?, last.id))
        };
        if let Some(devices) = self.page_cache.get(&page_key, generation, now) {
            let next = next_of(&devices);
            return Ok(DeviceList {
                devices,
                total,
                page,
                pages,
                per_page,
                next,
            });
        }
        let devices = match &cursor {
            None => {
                self.fetch_rows(cond, Some(sort), q.desc, (page - 1) * per_page, per_page)
                    .await?
            }
            Some((v, id)) if backend == sea_orm::DatabaseBackend::Postgres => {
                // (sort, id) past the cursor as one row value, which
                // PostgreSQL seeks in the (sort, id) index. (Spelled out as
                // `sort >= v AND (sort > v OR id > last)`, it filtered
                // every row of the cursor's value: 1.0 ms against 0.1 ms
                // per page in EXPLAIN ANALYZE.)
                let row = Expr::tuple([Expr::col(sort), Expr::col(device::Column::Id)]);
                let at = Expr::tuple([Expr::val(v.as_str()), Expr::val(*id)]);
                let past = if q.desc { row.lt(at) } else { row.gt(at) };
                self.fetch_rows(cond.add(past), Some(sort), q.desc, 0, per_page)
                    .await?
            }
            Some((v, id)) => {
                // SQLite seeks a row value by its first column only, then
                // walks the rest of that value's rows (a deep page inside
                // one model cost 0.25 ms). Two exact seeks instead: the
                // rest of the cursor's value by id, then the values after.
                let (tie, past) = if q.desc {
                    (device::Column::Id.lt(*id), Expr::col(sort).lt(v.as_str()))
                } else {
                    (device::Column::Id.gt(*id), Expr::col(sort).gt(v.as_str()))
                };
                let same = cond.clone().add(Expr::col(sort).eq(v.as_str())).add(tie);
                let mut rows = self.fetch_rows(same, None, q.desc, 0, per_page).await?;
                let left = per_page - rows.len() as u64;
                if left > 0 {
                    rows.extend(
                        self.fetch_rows(cond.add(past), Some(sort), q.desc, 0, left)
                            .await?,
                    );
                }
                rows
            }
        };
        let devices = std::sync::Arc::new(devices);
        self.page_cache
            .put(page_key, generation, now, devices.clone());
        let next = next_of(&devices);
        Ok(DeviceList {
            devices,
            total,
            page,
            pages,
            per_page,
            next,
        })
    }
}

impl Console {
    /// One page of list rows matching `cond`, in `sort` order (when given)
    /// with the id breaking ties in the same direction, so one (sort, id)
    /// index serves both directions without sorting the table.
    async fn fetch_rows(
        &self,
        cond: Condition,
        sort: Option<device::Column>,
        desc: bool,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<DeviceRow>> {
        let order = if desc {
            sea_orm::Order::Desc
        } else {
            sea_orm::Order::Asc
        };
        let mut query = device::Entity::find().filter(cond);
        if let Some(sort) = sort {
            query = query.order_by(sort, order.clone());
        }
        Ok(query
            .order_by(device::Column::Id, order)
            .offset(offset)
            .limit(limit)
            .select_only()
            .columns(ROW_COLUMNS)
            .into_model::<DeviceRow>()
            .all(&self.db)
            .await?)
    }
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
    pub fn get(&self, key: &str, generation: u64, now: std::time::Duration) -> Option<T> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(g, at, _)| *g == generation && now.saturating_sub(*at) < COUNT_TTL)
            .map(|(_, _, n)| n.clone())
    }

    pub fn put(&self, key: String, generation: u64, now: std::time::Duration, n: T) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap {
            map.clear();
        }
        map.insert(key, (generation, now, n));
    }
}

/// Devices one bulk action may take at once.
pub const MAX_BULK: u64 = 10_000;

impl Console {
    /// Every device id a list filter matches (within the actor's sites),
    /// for "everything matching this filter"; at most [`MAX_BULK`].
    pub async fn device_ids_matching(&self, actor: &Actor, q: &DeviceQuery) -> Result<Vec<i32>> {
        let mut cond = exact_filters(actor, self.clock.now_utc().date_naive(), q)?;
        let text = q.q.trim();
        if text.len() > 200 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "search text is too long",
            ));
        }
        if !text.is_empty() {
            cond = cond.add(search_condition(self.db.get_database_backend(), text, true));
        }
        let ids: Vec<i32> = device::Entity::find()
            .filter(cond)
            .select_only()
            .column(device::Column::Id)
            .order_by_asc(device::Column::Id)
            .limit(MAX_BULK + 1)
            .into_tuple()
            .all(&self.db)
            .await?;
        if ids.len() as u64 > MAX_BULK {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the filter matches more than {MAX_BULK} devices; narrow it"),
            ));
        }
        Ok(ids)
    }
}
