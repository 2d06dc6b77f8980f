//! Playback: a device's recorded segments for a day, with the gaps between
//! them, each playable in the browser (`<video>`) and downloadable. Only
//! within the user's sites; bytes come from the storage tier the ledger
//! names.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{device, recording};
use crate::error::{Error, ErrorKind};

/// A row of the timeline: a segment, or a gap before it.
pub struct Slot {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// None: a gap.
    pub segment: Option<recording::Model>,
}

#[derive(Template, WebTemplate)]
#[template(path = "recordings.html")]
pub struct RecordingsPage {
    pub me: CurrentUser,
    pub d: device::Model,
    pub day: chrono::NaiveDate,
    pub slots: Vec<Slot>,
    pub total_bytes: i64,
}

/// Segments and the gaps between them (a gap is more than 2 s missing).
pub fn timeline(segs: Vec<recording::Model>) -> Vec<Slot> {
    let mut out = Vec::new();
    let mut last_end: Option<chrono::DateTime<chrono::Utc>> = None;
    for s in segs {
        if let Some(e) = last_end
            && s.start_at - e > chrono::Duration::seconds(2)
        {
            out.push(Slot {
                start: e,
                end: s.start_at,
                segment: None,
            });
        }
        last_end = Some(last_end.map_or(s.end_at, |e| e.max(s.end_at)));
        out.push(Slot {
            start: s.start_at,
            end: s.end_at,
            segment: Some(s),
        });
    }
    out
}

pub async fn recordings(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let d = super::pages::device_or_404(&state, &me, id).await?;
    let f = FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let day = match f.text("day").as_str() {
        "" => state.clock.now_utc().date_naive(),
        v => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| WebError(Error::new(ErrorKind::InvalidArgument, "day: YYYY-MM-DD")))?,
    };
    let from = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let to = from + chrono::Duration::days(1);
    let segs = recording::Entity::find()
        .filter(recording::Column::DeviceId.eq(id))
        .filter(recording::Column::StartAt.gte(from))
        .filter(recording::Column::StartAt.lt(to))
        .order_by_asc(recording::Column::StartAt)
        .all(&state.db)
        .await?;
    let total_bytes = segs.iter().map(|s| s.bytes).sum();
    Ok(RecordingsPage {
        me,
        d,
        day,
        slots: timeline(segs),
        total_bytes,
    }
    .into_response())
}

/// One segment's MP4, for `<video>` and download.
pub async fn segment(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let r = recording::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            WebError(Error::new(
                ErrorKind::NotFound,
                format!("no recording {id}"),
            ))
        })?;
    // Its device must be within the user's sites.
    super::pages::device_or_404(&state, &me, r.device_id).await?;
    if r.tier != "hot" {
        return Err(WebError(Error::new(
            ErrorKind::Unavailable,
            format!(
                "segment {id} is in the {} tier; only the hot tier is served here",
                r.tier
            ),
        )));
    }
    let bytes = state.storage.get(&r.storage_key).await?;
    let name = format!(
        "camera{}-{}.mp4",
        r.device_id,
        r.start_at.format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
