//! Recordings: a device's segments for a day, one segment's MP4, and an
//! export of a time range as one MP4 (needs the video permission).

use axum::Extension;
use axum::extract::{Path, Query, State as AxState};
use axum::response::Response;
use utoipa::ToSchema;

use super::{Problems, json};
use crate::web::State;
use crate::web::auth::CurrentUser;
use crate::web::error::WebError;

#[derive(serde::Serialize, ToSchema)]
pub struct ApiSegment {
    pub id: i64,
    pub profile: String,
    pub start_at: chrono::DateTime<chrono::Utc>,
    pub end_at: chrono::DateTime<chrono::Utc>,
    pub bytes: i64,
    pub codec: String,
    /// `live` (recorded by camfleet) or `edge` (filled from the camera's storage).
    pub origin: String,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ApiDay {
    pub device_id: i32,
    pub day: chrono::NaiveDate,
    /// The site's IANA time zone the day is counted in (UTC without a site).
    pub time_zone: String,
    /// The day's bounds (23 or 25 hours long on a clock change).
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
    pub total_bytes: i64,
    pub segments: Vec<ApiSegment>,
    /// Holes of more than 2 s between segments: [start, end].
    pub gaps: Vec<[chrono::DateTime<chrono::Utc>; 2]>,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// A day in the site's time zone, `YYYY-MM-DD` (default: today there).
    pub day: Option<chrono::NaiveDate>,
}

/// A device's recorded segments on one day of its site's time zone, and
/// the gaps between them.
#[utoipa::path(get, operation_id = "recordings_day", path = "/api/v1/devices/{id}/recordings", tag = "recordings",
    params(("id" = i32, Path), DayQuery),
    responses((status = 200, body = ApiDay, description = "the result"), Problems))]
pub async fn day(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    Query(q): Query<DayQuery>,
) -> Result<Response, WebError> {
    let v = state.console.recordings_day(&me.actor(), id, q.day).await?;
    let mut segments = Vec::new();
    let mut gaps = Vec::new();
    for s in v.slots {
        match s.segment {
            Some(r) => segments.push(ApiSegment {
                id: r.id,
                profile: r.profile,
                start_at: r.start_at,
                end_at: r.end_at,
                bytes: r.bytes,
                codec: r.codec,
                origin: r.origin,
            }),
            None => gaps.push([s.start, s.end]),
        }
    }
    Ok(json(ApiDay {
        device_id: id,
        day: v.day,
        time_zone: v.tz.name().to_string(),
        from: v.from,
        to: v.to,
        total_bytes: v.total_bytes,
        segments,
        gaps,
    }))
}

/// One segment's MP4.
#[utoipa::path(get, operation_id = "recordings_segment", path = "/api/v1/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "video/mp4", body = Vec<u8>, description = "the result"),
        (status = 206, content_type = "video/mp4", body = Vec<u8>, description = "the asked-for byte range (`Range: bytes=…`)"),
        (status = 304, description = "unchanged (`If-None-Match` holds the ETag)"),
        (status = 416, description = "the range lies outside the segment"), Problems))]
pub async fn segment(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let wanted = crate::web::ranges::wanted(&headers);
    let s = state
        .console
        .segment(&state.tiers, &me.actor(), id, &wanted)
        .await?;
    Ok(crate::web::ranges::segment_response(s, "attachment"))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// RFC 3339, e.g. `2026-12-06T10:00:00Z`.
    pub from: chrono::DateTime<chrono::Utc>,
    /// At most 6 hours after `from`.
    pub to: chrono::DateTime<chrono::Utc>,
    /// The media profile (default: the recorded one).
    pub profile: Option<String>,
}

/// A time range as one MP4 (at most 6 hours and 2 GiB of segments).
#[utoipa::path(get, operation_id = "recordings_export", path = "/api/v1/devices/{id}/recordings/export", tag = "recordings",
    params(("id" = i32, Path), ExportQuery),
    responses((status = 200, content_type = "video/mp4", body = Vec<u8>, description = "the result"),
        (status = 206, content_type = "video/mp4", body = Vec<u8>, description = "the asked-for byte range"),
        (status = 304, description = "unchanged (`If-None-Match` holds the ETag)"),
        (status = 416, description = "the range lies outside the file"), Problems))]
pub async fn export(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    Query(q): Query<ExportQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let _slot = state.limits.export()?;
    let e = state
        .console
        .export(
            &state.tiers,
            &me.actor(),
            id,
            q.from,
            q.to,
            q.profile,
            &state.upload_dir,
            &crate::web::ranges::wanted(&headers),
        )
        .await?;
    Ok(crate::web::ranges::export_response(e))
}
