//! Snapshot thumbnails (the console fetches and caches them): the image,
//! or a small placeholder that says why there is none.

use axum::Extension;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::error::ErrorKind;

/// A small SVG shown instead of a picture, with the reason as its title.
fn placeholder(status: StatusCode, why: &str) -> Response {
    let why = askama::filters::escape(why, askama::filters::Html)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"160\" height=\"90\" viewBox=\"0 0 160 90\"><title>{why}</title><rect width=\"160\" height=\"90\" fill=\"#ddd\"/><text x=\"80\" y=\"50\" font-size=\"12\" text-anchor=\"middle\" fill=\"#555\">no snapshot</text></svg>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "private, max-age=30"),
        ],
        svg,
    )
        .into_response()
}

pub async fn snapshot(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let entry = match state
        .console
        .snapshot(state.discovery.transport(), &me.actor(), id)
        .await
    {
        Ok(e) => e,
        // No video permission: a placeholder, not a broken image.
        Err(e) if e.kind == ErrorKind::PermissionDenied => {
            return Ok(placeholder(StatusCode::FORBIDDEN, &e.message));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(match entry.result {
        Ok((ct, bytes)) => (
            [
                (header::CONTENT_TYPE, ct),
                (header::CACHE_CONTROL, "private, max-age=60".to_string()),
            ],
            bytes,
        )
            .into_response(),
        Err(why) => placeholder(StatusCode::BAD_GATEWAY, &why),
    })
}
