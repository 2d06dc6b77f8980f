//! The web app in-process for the HTTP tests: a fresh installation on an
//! in-memory database, requests through tower `oneshot`, and the small
//! helpers every such test needs (forms, cookies, the page's form token).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use camfleet::app::AppState;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::discovery::{DiscoveryConfig, DiscoveryService};
use camfleet::secrets::SecretBox;
use camfleet::web;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

pub async fn app() -> (axum::Router, Arc<AppState>) {
    app_with_wsd_port(free_udp_port()).await
}

pub async fn app_with_wsd_port(port: u16) -> (axum::Router, Arc<AppState>) {
    let db = test_db().await;
    let clock = system_clock();
    let discovery = DiscoveryService::new(
        DiscoveryConfig {
            port,
            window: std::time::Duration::from_millis(800),
            ..DiscoveryConfig::loopback()
        },
        transport(),
        clock.clone(),
    );
    let state = Arc::new(AppState::new(
        db,
        Arc::new(SecretBox::from_key(1, &[3u8; 32])),
        clock,
        discovery,
        false,
    ));
    (web::router(state.clone()), state)
}

pub async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

pub fn post_form(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

pub fn set_cookie_value(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|r| r.split(';').next().unwrap_or("").to_string())
        })
}

pub fn csrf_of(page: &str) -> String {
    let i =
        page.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    page[i..].split('"').next().unwrap().to_string()
}

pub async fn make_site(state: &AppState, name: &str) -> i32 {
    state
        .sites
        .create(name, "", &Actor::system())
        .await
        .unwrap()
        .id
}
