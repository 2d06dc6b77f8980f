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
