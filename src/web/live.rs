//! Live view: a camera's stream as fragmented MP4 over one long HTTP
//! response (the page's script feeds it to Media Source Extensions), and a
//! grid of several cameras. The console checks the video permission and
//! the user's sites; `recorder::live` shares one stream between viewers.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::fleet::console::live::LiveTile;

/// The stream: the init segment, then a fragment per frame, until the
/// viewer goes away (the response ends when the browser closes it).
pub async fn stream(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let viewer = state
        .console
        .watch_live(&state.live, &me.actor(), id)
        .await?;
    let body = Body::from_stream(viewer.into_stream().map(Ok::<_, std::convert::Infallible>));
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "no-store"),
            // nginx: pass each fragment on at once instead of buffering.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

/// Frames of the grid's one response: each `[kind, tile, length (u32,
/// big-endian)]` then the payload; kind 0 is MP4 bytes for that tile,
/// kind 1 a message saying why the tile has no video.
fn frame(kind: u8, tile: u8, payload: &[u8]) -> bytes::Bytes {
    let mut b = Vec::with_capacity(payload.len() + 6);
    b.push(kind);
    b.push(tile);
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    b.into()
}

/// `/live/grid.bin?device=…`: every tile of a grid over one response. A
/// browser opens at most six HTTP/1.1 connections to a server, so a grid
/// of nine cameras as nine streams would leave three black; here each
/// camera is still its own viewer (the caps count it), multiplexed.
pub async fn grid_stream(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let tiles = state
        .console
        .live_grid(&me.actor(), &f.ids("device"))
        .await?;
    let actor = me.actor();
    let mut streams = Vec::new();
    let mut refusals = Vec::new();
    for (i, t) in tiles.iter().enumerate() {
        let tile = i as u8;
        match state.console.watch_live(&state.live, &actor, t.id).await {
            Ok(v) => streams.push(v.into_stream().map(move |b| frame(0, tile, &b)).boxed()),
            Err(e) => refusals.push(frame(1, tile, e.message.as_bytes())),
        }
    }
    let body = futures::stream::iter(refusals)
        .chain(futures::stream::select_all(streams))
        .map(Ok::<_, std::convert::Infallible>);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "live.html")]
pub struct LivePage {
    pub me: CurrentUser,
    pub tiles: Vec<LiveTile>,
    /// The grid's columns.
    pub columns: usize,
}

/// `/live?device=1&device=2`: the cameras named, or the first few.
pub async fn grid(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let ids = f.ids("device");
    let tiles = state.console.live_grid(&me.actor(), &ids).await?;
    let columns = match tiles.len() {
        0 | 1 => 1,
        2 | 4 => 2,
        n if n <= 9 => 3,
        _ => 4,
    };
    Ok(LivePage { me, tiles, columns }.into_response())
}
