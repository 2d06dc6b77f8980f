//! The web app (axum + askama): thin handlers that parse, call one service,
//! render. Every route is listed in [`ROUTES`]; the router is built only from
//! that table, and a test walks it to prove each non-public route refuses an
//! anonymous request, so a new route cannot be left open by mistake.

pub mod admin;
pub mod alert_admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod device;
pub mod discovery;
pub mod error;
pub mod firmware;
pub mod form;
pub mod inventory;
pub mod jobs;
pub mod metrics;
pub mod net;
pub mod pages;
pub mod provision;
pub mod recordings;
pub mod snapshot;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{MethodRouter, get, post};

pub type State = Arc<crate::app::AppState>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No login: the login page, the health check, static assets.
    Public,
    /// Any logged-in user (handlers enforce finer roles).
    Login,
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

const fn r(method: Method, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

/// Every route the app serves.
pub const ROUTES: &[RouteSpec] = &[
    r(Method::GET, "/healthz", Access::Public),
    r(Method::GET, "/login", Access::Public),
    r(Method::POST, "/login", Access::Public),
    r(Method::GET, "/static/app.css", Access::Public),
    r(Method::POST, "/logout", Access::Login),
    r(Method::GET, "/", Access::Login),
    r(Method::GET, "/devices", Access::Login),
    r(Method::GET, "/devices/{id}", Access::Login),
    r(Method::GET, "/devices/{id}/inventory", Access::Login),
    r(Method::POST, "/devices/{id}/inventory", Access::Login),
    r(Method::GET, "/inventory.csv", Access::Login),
    r(Method::GET, "/audit", Access::Login),
    r(Method::GET, "/discovery", Access::Login),
    r(Method::POST, "/discovery", Access::Login),
    r(Method::GET, "/discovery/{id}", Access::Login),
    r(Method::POST, "/discovery/{id}/adopt", Access::Login),
    r(Method::GET, "/discovery/{id}/events", Access::Login),
    r(Method::GET, "/static/app.js", Access::Public),
    r(Method::GET, "/devices/{id}/snapshot", Access::Login),
    r(Method::POST, "/devices/bulk", Access::Login),
    r(Method::POST, "/devices/{id}/poll", Access::Login),
    r(Method::POST, "/devices/{id}/reboot", Access::Login),
    r(Method::POST, "/devices/{id}/recording", Access::Login),
    r(Method::POST, "/devices/{id}/backfill", Access::Login),
    r(Method::GET, "/devices/{id}/recordings", Access::Login),
    r(Method::GET, "/recordings/{id}", Access::Login),
    r(
        Method::GET,
        "/devices/{id}/recordings/export",
        Access::Login,
    ),
    r(Method::POST, "/devices/{id}/network", Access::Login),
    r(Method::POST, "/devices/{id}/lifecycle", Access::Login),
    r(Method::GET, "/inventory", Access::Login),
    r(Method::GET, "/inventory/import", Access::Login),
    r(Method::POST, "/inventory/import", Access::Login),
    r(Method::POST, "/inventory/import/apply", Access::Login),
    r(Method::GET, "/sites", Access::Login),
    r(Method::POST, "/sites", Access::Login),
    r(Method::POST, "/sites/{id}", Access::Login),
    r(Method::GET, "/users", Access::Login),
    r(Method::POST, "/users", Access::Login),
    r(Method::GET, "/users/{id}", Access::Login),
    r(Method::POST, "/users/{id}", Access::Login),
    r(Method::GET, "/account", Access::Login),
    r(Method::POST, "/account", Access::Login),
    r(Method::GET, "/account/password", Access::Login),
    r(Method::POST, "/account/password", Access::Login),
    r(Method::GET, "/api/openapi.json", Access::Public),
    r(Method::GET, "/metrics", Access::Login),
    r(Method::GET, "/firmware", Access::Login),
    r(Method::POST, "/firmware/images", Access::Login),
    r(Method::POST, "/firmware/images/{id}", Access::Login),
    r(Method::POST, "/firmware/rollouts", Access::Login),
    r(Method::GET, "/firmware/rollouts/{id}", Access::Login),
    r(Method::POST, "/firmware/rollouts/{id}", Access::Login),
    r(Method::GET, "/jobs", Access::Login),
    r(Method::POST, "/jobs", Access::Login),
    r(Method::GET, "/jobs/{id}", Access::Login),
    r(Method::POST, "/jobs/{id}", Access::Login),
    r(Method::GET, "/provision", Access::Login),
    r(Method::POST, "/provision/profiles", Access::Login),
    r(Method::GET, "/provision/profiles/{id}", Access::Login),
    r(Method::POST, "/provision/profiles/{id}", Access::Login),
    r(Method::POST, "/provision/profiles/{id}/run", Access::Login),
    r(Method::GET, "/provision/tasks/{id}", Access::Login),
    r(Method::POST, "/provision/tasks/{id}", Access::Login),
    r(Method::GET, "/provision/tasks/{id}/events", Access::Login),
    r(Method::POST, "/provision/drift", Access::Login),
    r(Method::GET, "/alerts/settings", Access::Login),
    r(Method::POST, "/alerts/channels", Access::Login),
    r(Method::POST, "/alerts/channels/{id}", Access::Login),
    r(Method::POST, "/alerts/rules", Access::Login),
    r(Method::POST, "/alerts/rules/{id}", Access::Login),
    r(Method::GET, "/alerts", Access::Login),
    r(Method::GET, "/alerts/{id}", Access::Login),
    r(Method::POST, "/alerts/{id}", Access::Login),
];

fn handler(spec: &RouteSpec) -> MethodRouter<State> {
    match (spec.method.as_str(), spec.path) {
        ("GET", "/healthz") => get(pages::healthz),
        ("GET", "/login") => get(auth::login_page),
        ("POST", "/login") => post(auth::login_submit),
        ("GET", "/static/app.css") => get(pages::css),
        ("POST", "/logout") => post(auth::logout),
        ("GET", "/") => get(pages::dashboard),
        ("GET", "/devices") => get(pages::devices),
        ("GET", "/devices/{id}") => get(device::device),
        ("GET", "/devices/{id}/inventory") => get(inventory::inventory_form),
        ("POST", "/devices/{id}/inventory") => post(inventory::inventory_save),
        ("GET", "/inventory.csv") => get(inventory::inventory_csv),
        ("GET", "/audit") => get(pages::audit),
        ("GET", "/discovery") => get(discovery::runs),
        ("POST", "/discovery") => post(discovery::start),
        ("GET", "/discovery/{id}") => get(discovery::run),
        ("POST", "/discovery/{id}/adopt") => post(discovery::adopt),
        ("GET", "/discovery/{id}/events") => get(discovery::events),
        ("GET", "/static/app.js") => get(pages::js),
        ("GET", "/devices/{id}/snapshot") => get(snapshot::snapshot),
        ("POST", "/devices/bulk") => post(inventory::bulk),
        ("POST", "/devices/{id}/poll") => post(device::device_poll),
        ("POST", "/devices/{id}/reboot") => post(device::device_reboot),
        ("POST", "/devices/{id}/recording") => post(device::device_recording),
        ("POST", "/devices/{id}/backfill") => post(device::device_backfill),
        ("GET", "/devices/{id}/recordings") => get(recordings::recordings),
        ("GET", "/recordings/{id}") => get(recordings::segment),
        ("GET", "/devices/{id}/recordings/export") => get(recordings::export),
        ("POST", "/devices/{id}/network") => post(device::device_network),
        ("POST", "/devices/{id}/lifecycle") => post(device::device_lifecycle),
        ("GET", "/inventory") => get(inventory::inventory),
        ("GET", "/inventory/import") => get(inventory::import_form),
        ("POST", "/inventory/import") => post(inventory::import_preview).layer(
            axum::extract::DefaultBodyLimit::max(inventory::IMPORT_BODY_LIMIT),
        ),
        ("POST", "/inventory/import/apply") => post(inventory::import_apply).layer(
            axum::extract::DefaultBodyLimit::max(inventory::IMPORT_BODY_LIMIT),
        ),
        ("GET", "/sites") => get(admin::sites),
        ("POST", "/sites") => post(admin::site_create),
        ("POST", "/sites/{id}") => post(admin::site_update),
        ("GET", "/users") => get(admin::users),
        ("POST", "/users") => post(admin::user_create),
        ("GET", "/users/{id}") => get(admin::user_edit),
        ("POST", "/users/{id}") => post(admin::user_update),
        ("GET", "/account") => get(admin::account),
        ("POST", "/account") => post(admin::account_update),
        ("GET", "/account/password") => get(admin::password_page),
        ("POST", "/account/password") => post(admin::password_change),
        ("GET", "/api/openapi.json") => get(api::openapi),
        ("GET", "/metrics") => get(metrics::metrics),
        ("GET", "/firmware") => get(firmware::firmware),
        ("POST", "/firmware/images") => post(firmware::upload).layer(
            axum::extract::DefaultBodyLimit::max(firmware::UPLOAD_BODY_LIMIT),
        ),
        ("POST", "/firmware/images/{id}") => post(firmware::image_action),
        ("POST", "/firmware/rollouts") => post(firmware::rollout_create),
        ("GET", "/firmware/rollouts/{id}") => get(firmware::rollout),
        ("POST", "/firmware/rollouts/{id}") => post(firmware::rollout_action),
        ("GET", "/jobs") => get(jobs::jobs),
        ("POST", "/jobs") => post(jobs::create),
        ("GET", "/jobs/{id}") => get(jobs::job),
        ("POST", "/jobs/{id}") => post(jobs::action),
        ("GET", "/provision") => get(provision::index),
        ("POST", "/provision/profiles") => post(provision::create),
        ("GET", "/provision/profiles/{id}") => get(provision::profile),
        ("POST", "/provision/profiles/{id}") => post(provision::update),
        ("POST", "/provision/profiles/{id}/run") => post(provision::run),
        ("GET", "/provision/tasks/{id}") => get(provision::task),
        ("POST", "/provision/tasks/{id}") => post(provision::task_action),
        ("GET", "/provision/tasks/{id}/events") => get(provision::task_events),
        ("POST", "/provision/drift") => post(provision::drift),
        ("GET", "/alerts/settings") => get(alert_admin::settings),
        ("POST", "/alerts/channels") => post(alert_admin::channel_create),
        ("POST", "/alerts/channels/{id}") => post(alert_admin::channel_action),
        ("POST", "/alerts/rules") => post(alert_admin::rule_create),
        ("POST", "/alerts/rules/{id}") => post(alert_admin::rule_update),
        ("GET", "/alerts") => get(alerts::alerts),
        ("GET", "/alerts/{id}") => get(alerts::alert_page),
        ("POST", "/alerts/{id}") => post(alerts::alert_action),
        (m, p) => panic!("route {m} {p} is listed in ROUTES but has no handler"),
    }
}

pub fn router(state: State) -> Router {
    let mut public = Router::new();
    let mut private = Router::new();
    for spec in ROUTES {
        match spec.access {
            Access::Public => public = public.route(spec.path, handler(spec)),
            Access::Login => private = private.route(spec.path, handler(spec)),
        }
    }
    // The JSON API: routes and OpenAPI document from the same declarations.
    let (api_routes, _) = api::router().split_for_parts();
    let private = private
        .merge(api_routes)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_login,
        ));
    let app = public
        .merge(private)
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page") })
        .layer(middleware::from_fn(error::api_problems))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            net::client_info,
        ))
        .with_state(state);
    with_access_log(app)
}

/// The user a request was made by, left on the response for the access log.
#[derive(Clone, Debug)]
pub struct LoggedUser(pub String);

/// One line per request: method, path (never the query, which may carry a
/// `next=` or a search), status, latency, user and client address.
fn with_access_log(router: Router) -> Router {
    router.layer(
        tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                let peer = req
                    .extensions()
                    .get::<axum::extract::ConnectInfo<net::PeerAddr>>()
                    .map(|c| c.0.0.ip().to_string())
                    .unwrap_or_default();
                tracing::info_span!(
                    "http",
                    method = %req.method(),
                    path = %req.uri().path(),
                    peer = %peer,
                )
            })
            .on_request(tower_http::trace::DefaultOnRequest::new().level(tracing::Level::DEBUG))
            .on_response(
                |resp: &axum::response::Response,
                 latency: std::time::Duration,
                 _: &tracing::Span| {
                    let user = resp
                        .extensions()
                        .get::<LoggedUser>()
                        .map(|u| u.0.as_str())
                        .unwrap_or("-");
                    let client = resp
                        .extensions()
                        .get::<net::ClientInfo>()
                        .and_then(|c| c.ip_text())
                        .unwrap_or_default();
                    tracing::info!(
                        target: "camfleet::access",
                        status = resp.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        user,
                        client = %client,
                        "request"
                    );
                },
            ),
    )
}

/// Headers every answer carries.
async fn security_headers(
    axum::extract::State(state): axum::extract::State<State>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let info = req.extensions().get::<net::ClientInfo>().cloned();
    let mut resp = next.run(req).await;
    // HSTS when we serve TLS, or when the operator says the site is HTTPS
    // (secure_cookies, behind a proxy that terminates TLS).
    let https = state.web.tls || state.secure_cookies;
    if let Some(i) = info {
        resp.extensions_mut().insert(i);
    }
    let h = resp.headers_mut();
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}
