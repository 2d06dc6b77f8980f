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
    pub slots: Vec<Slot>,
    pub total_bytes: i64,
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
    Ok(RecordingsPage {
        me,
        d: v.d,
        day: v.day,
        slots: v.slots,
        total_bytes: v.total_bytes,
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

fn time_of_day(
    day: chrono::NaiveDate,
    v: &str,
    field: &str,
) -> Result<chrono::DateTime<chrono::Utc>, WebError> {
    let t = chrono::NaiveTime::parse_from_str(v, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(v, "%H:%M"))
        .map_err(|_| {
            WebError(Error::new(
                ErrorKind::InvalidArgument,
                format!("{field}: HH:MM or HH:MM:SS (UTC)"),
            ))
        })?;
    Ok(day.and_time(t).and_utc())
}

/// One MP4 of a time range within one UTC day (`day`, `from`, `to`).
pub async fn export(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let f = query(q);
    let day = parse_day(&f.text("day"))?;
    let from = time_of_day(day, &f.text("from"), "from")?;
    let to = time_of_day(day, &f.text("to"), "to")?;
    let _slot = state.limits.export()?;
    let e = state
        .console
        .export(
            &state.tiers,
            &me.actor(),
            id,
            from,
            to,
            Some(f.text("profile")),
            &state.upload_dir,
            &super::ranges::wanted(&headers),
        )
        .await?;
    Ok(super::ranges::export_response(e))
}
