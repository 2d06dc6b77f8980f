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

/// The device (within the user's sites) and the query's fields.
async fn device_and_query(
    state: &State,
    me: &CurrentUser,
    id: i32,
    q: Option<String>,
) -> Result<(device::Model, FormFields), WebError> {
    let d = super::pages::device_or_404(state, me, id).await?;
    Ok((d, FormFields::parse(q.as_deref().unwrap_or("").as_bytes())))
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
    let (d, f) = device_and_query(&state, &me, id, q).await?;
    let day = match f.text("day").as_str() {
        "" => state.clock.now_utc().date_naive(),
        v => parse_day(v)?,
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
    let bytes = state.tier(&r.tier)?.get(&r.storage_key).await?;
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

/// The longest range one export may cover.
const EXPORT_MAX: chrono::Duration = chrono::Duration::hours(6);
/// The most segment bytes one export may read.
const EXPORT_MAX_BYTES: i64 = 2 * 1024 * 1024 * 1024;

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

/// One MP4 of a time range within one UTC day (`day`, `from`, `to`): the
/// segments of one profile joined, trimmed to the range from the keyframe
/// before it, gaps closed up. At most 6 hours and 2 GiB of segments.
pub async fn export(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let (d, f) = device_and_query(&state, &me, id, q).await?;
    let day = parse_day(&f.text("day"))?;
    let from = time_of_day(day, &f.text("from"), "from")?;
    let to = time_of_day(day, &f.text("to"), "to")?;
    if to <= from {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "to: must be after from",
        )));
    }
    if to - from > EXPORT_MAX {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "the range is longer than 6 hours; export it in parts",
        )));
    }
    let mut segs = recording::Entity::find()
        .filter(recording::Column::DeviceId.eq(id))
        .filter(recording::Column::StartAt.lt(to))
        .filter(recording::Column::EndAt.gt(from))
        .order_by_asc(recording::Column::StartAt)
        .all(&state.db)
        .await?;
    // One profile: the one asked for, else the recorded one, else the
    // one with the most segments in the range.
    let profile = match f.text("profile").as_str() {
        "" => d
            .record_profile
            .clone()
            .filter(|p| segs.iter().any(|s| &s.profile == p))
            .or_else(|| {
                let mut counts: std::collections::HashMap<&str, usize> = Default::default();
                for s in &segs {
                    *counts.entry(s.profile.as_str()).or_default() += 1;
                }
                counts
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(p, _)| p.to_string())
            }),
        p => Some(p.to_string()),
    };
    segs.retain(|s| Some(&s.profile) == profile.as_ref());
    if segs.is_empty() {
        return Err(WebError(Error::new(
            ErrorKind::NotFound,
            "nothing recorded in that range",
        )));
    }
    if segs.iter().map(|s| s.bytes).sum::<i64>() > EXPORT_MAX_BYTES {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "the range holds more than 2 GiB; export it in parts",
        )));
    }
    let path = std::env::temp_dir().join(format!("camfleet-export-{}.mp4", uuid::Uuid::new_v4()));
    let result = join(&state, &segs, from, to, &path).await;
    let file = match result {
        Ok(Some(f)) => f,
        Ok(None) => {
            let _ = std::fs::remove_file(&path);
            return Err(WebError(Error::new(
                ErrorKind::NotFound,
                "nothing recorded in that range",
            )));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    // The open file outlives its name: nothing is left behind.
    let _ = std::fs::remove_file(&path);
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let file = tokio::fs::File::from_std(file);
    let stream = futures::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let name = format!(
        "camera{}-{}-{}.mp4",
        id,
        from.format("%Y%m%dT%H%M%SZ"),
        to.format("%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Read the segments one at a time from their tiers and join them into
/// `path`; the finished file, or None when no frame fell in the range.
async fn join(
    state: &State,
    segs: &[recording::Model],
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    path: &std::path::Path,
) -> Result<Option<std::fs::File>, WebError> {
    use crate::recorder::mp4::Concat;
    let mut c: Concat<std::fs::File> = Concat::new();
    for s in segs {
        let bytes = state.tier(&s.tier)?.get(&s.storage_key).await?;
        let (start, from_ms, to_ms) = (
            s.start_at.timestamp_millis(),
            from.timestamp_millis(),
            to.timestamp_millis(),
        );
        let out = path.to_path_buf();
        let key = s.storage_key.clone();
        c = tokio::task::spawn_blocking(move || {
            c.add(
                || {
                    std::fs::File::options()
                        .create_new(true)
                        .read(true)
                        .write(true)
                        .open(&out)
                },
                &bytes,
                start,
                from_ms,
                to_ms,
            )
            .map(|()| c)
            .map_err(|e| format!("{key}: {e}"))
        })
        .await
        .map_err(|e| WebError(Error::new(ErrorKind::Internal, e.to_string())))?
        .map_err(|e| WebError(Error::new(ErrorKind::Internal, e)))?;
    }
    let file = tokio::task::spawn_blocking(move || c.finish())
        .await
        .map_err(|e| WebError(Error::new(ErrorKind::Internal, e.to_string())))?
        .map_err(|e| WebError(Error::new(ErrorKind::Internal, e)))?;
    Ok(file.map(|mut f| {
        use std::io::Seek;
        let _ = f.rewind();
        f
    }))
}
