//! Playback: a device's recorded segments for a day, with the gaps between
//! them, each playable in the browser (`<video>`) and downloadable, and
//! exports of a time range. The console checks the video permission and
//! the user's sites; bytes come from the storage tier the ledger names.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::device;
use crate::error::{Error, ErrorKind};
pub use crate::fleet::console::recordings::{Slot, timeline};

#[derive(Template, WebTemplate)]
#[template(path = "recordings.html")]
pub struct RecordingsPage {
    pub me: CurrentUser,
    pub d: device::Model,
    pub day: chrono::NaiveDate,
    pub prev: chrono::NaiveDate,
    pub next: chrono::NaiveDate,
    pub tz: String,
    pub bars: Vec<Bar>,
    pub ticks: Vec<(f64, String)>,
    pub pins: Vec<Pin>,
    pub rows: Vec<Row>,
    pub total: String,
    pub recorded: String,
    /// For the player: the day's bounds and the segments to play.
    pub play_json: String,
}

/// A stretch on the timeline bar (positions in % of the day).
pub struct Bar {
    pub left: f64,
    pub width: f64,
    pub edge: bool,
    pub title: String,
}

/// An alert or camera event on the timeline.
pub struct Pin {
    pub left: f64,
    pub alert: bool,
    pub title: String,
    pub link: Option<String>,
}

/// A row of the day's table: a stretch or a gap, in the site's time.
pub struct Row {
    pub from: String,
    pub to: String,
    pub length: String,
    pub what: String,
    pub size: String,
    pub gap: bool,
    pub at_ms: i64,
}

/// `1.4 GiB`, `12 MiB`, `800 KiB`.
pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 100.0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// `2 h 05 min`, `14 min 30 s`, `45 s`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

fn query(q: Option<String>) -> FormFields {
    FormFields::parse(q.as_deref().unwrap_or("").as_bytes())
}

fn parse_day(v: &str) -> Result<chrono::NaiveDate, WebError> {
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| WebError(Error::new(ErrorKind::InvalidArgument, "day: YYYY-MM-DD")))
}

pub async fn recordings(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let f = query(q);
    let day = match f.text("day").as_str() {
        "" => None,
        v => Some(parse_day(v)?),
    };
    let v = state.console.recordings_day(&me.actor(), id, day).await?;
    let span = (v.to - v.from).num_milliseconds().max(1) as f64;
    let pct = |t: chrono::DateTime<chrono::Utc>| {
        ((t - v.from).num_milliseconds() as f64 / span * 100.0).clamp(0.0, 100.0)
    };
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&v.tz);
    let bars = v
        .stretches
        .iter()
        .map(|s| Bar {
            left: pct(s.start),
            width: (pct(s.end) - pct(s.start)).max(0.15),
            edge: s.origin == "edge",
            title: format!(
                "{}–{} {}",
                local(s.start).format("%H:%M:%S"),
                local(s.end).format("%H:%M:%S"),
                if s.origin == "edge" {
                    "from the camera's card"
                } else {
                    "recorded"
                }
            ),
        })
        .collect();
    // A tick every three hours of local time.
    let ticks = (0..=8)
        .filter_map(|k| {
            let t = v.from + chrono::Duration::hours(3 * k);
            (t <= v.to).then(|| (pct(t), local(t).format("%H:%M").to_string()))
        })
        .collect();
    let pins = v
        .marks
        .iter()
        .map(|m| Pin {
            left: pct(m.at),
            alert: m.kind == "alert",
            title: format!("{} {}", local(m.at).format("%H:%M:%S"), m.text),
            link: m.link.clone(),
        })
        .collect();
    let mut rows = Vec::new();
    let mut last: Option<chrono::DateTime<chrono::Utc>> = None;
    for s in &v.stretches {
        if let Some(e) = last
            && s.start - e > chrono::Duration::seconds(2)
        {
            rows.push(Row {
                from: local(e).format("%H:%M:%S").to_string(),
                to: local(s.start).format("%H:%M:%S").to_string(),
                length: human_duration((s.start - e).num_seconds()),
                what: "gap: nothing recorded".into(),
                size: String::new(),
                gap: true,
                at_ms: e.timestamp_millis(),
            });
        }
        last = Some(last.map_or(s.end, |e| e.max(s.end)));
        rows.push(Row {
            from: local(s.start).format("%H:%M:%S").to_string(),
            to: local(s.end).format("%H:%M:%S").to_string(),
            length: human_duration((s.end - s.start).num_seconds()),
            what: format!(
                "{} · {} segment{}",
                if s.origin == "edge" {
                    "filled from the camera's card"
                } else {
                    "recorded"
                },
                s.segments,
                if s.segments == 1 { "" } else { "s" }
            ),
            size: human_bytes(s.bytes),
            gap: false,
            at_ms: s.start.timestamp_millis(),
        });
    }
    let recorded: i64 = v
        .stretches
        .iter()
        .map(|s| (s.end - s.start).num_seconds())
        .sum();
    let play_json = serde_json::json!({
        "device": v.d.id,
        "from_ms": v.from.timestamp_millis(),
        "to_ms": v.to.timestamp_millis(),
        "tz": v.tz.name(),
        "items": v.play,
    })
    .to_string()
    // Inside a <script> element: nothing may close it.
    .replace('<', "\\u003c");
    Ok(RecordingsPage {
        me,
        prev: v.day.pred_opt().unwrap_or(v.day),
        next: v.day.succ_opt().unwrap_or(v.day),
        day: v.day,
        tz: v.tz.name().to_string(),
        d: v.d,
        bars,
        ticks,
        pins,
        rows,
        total: human_bytes(v.total_bytes),
        recorded: human_duration(recorded),
        play_json,
    }
    .into_response())
}

/// One segment's MP4, for `<video>` and download: byte ranges and
/// entity tags (see `web::ranges`).
pub async fn segment(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let wanted = super::ranges::wanted(&headers);
    let s = state
        .console
        .segment(&state.tiers, &me.actor(), id, &wanted)
        .await?;
    Ok(super::ranges::segment_response(s, "inline"))
}

fn time_of_day(v: &str, field: &str) -> Result<chrono::NaiveTime, WebError> {
    chrono::NaiveTime::parse_from_str(v, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(v, "%H:%M"))
        .map_err(|_| {
            WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("{field}: HH:MM or HH:MM:SS (the site's time)"),
            ))
        })
}

/// One MP4 of a time range within one day in the site's time zone
/// (`day`, `from`, `to`).
pub async fn export(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let f = query(q);
    let day = parse_day(&f.text("day"))?;
    let from = time_of_day(&f.text("from"), "from")?;
    let to = time_of_day(&f.text("to"), "to")?;
    let _slot = state.limits.export()?;
    let e = state
        .console
        .export_local(
            &state.tiers,
            &me.actor(),
            id,
            day,
            (from, to),
            Some(f.text("profile")),
            &state.upload_dir,
            &super::ranges::wanted(&headers),
        )
        .await?;
    Ok(super::ranges::export_response(e))
}
