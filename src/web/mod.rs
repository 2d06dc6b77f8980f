//! The web app (axum + askama): thin handlers that parse, call one service,
//! render. Every route is listed in [`ROUTES`]; the router is built only from
//! that table, and a test walks it to prove each non-public route refuses an
//! anonymous request, so a new route cannot be left open by mistake.

pub mod admin;
pub mod alert_admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod backups;
pub mod device;
pub mod discovery;
pub mod error;
pub mod firmware;
pub mod form;
pub mod inventory;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod net;
pub mod pages;
pub mod provision;
pub mod ranges;
pub mod recordings;
pub mod server;
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
    /// A logged-in user whose role passes the route's [`Gate`].
    Login,
}

/// What a route asks of the caller's role, checked in one middleware
/// before the handler (and so before any body is read). The services
/// check again, with the object's site, where the object is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Anyone (public routes) or any logged-in user.
    Any,
    EditInventory,
    OperateDevices,
    HandleAlerts,
    WatchVideo,
    Admin,
}

impl Gate {
    pub fn allows(self, role: crate::fleet::users::Role) -> bool {
        match self {
            Gate::Any => true,
            Gate::EditInventory => role.can_edit_inventory(),
            Gate::OperateDevices => role.can_operate_devices(),
            Gate::HandleAlerts => role.can_handle_alerts(),
            Gate::WatchVideo => role.can_watch_video(),
            Gate::Admin => role.can_manage_users(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub gate: Gate,
}

const fn r(method: Method, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        gate: Gate::Any,
    }
}

/// A logged-in route whose role gate is stricter than "any user".
const fn g(method: Method, path: &'static str, gate: Gate) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access: Access::Login,
        gate,
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
    g(Method::GET, "/devices/{id}/inventory", Gate::EditInventory),
    g(Method::POST, "/devices/{id}/inventory", Gate::EditInventory),
    r(Method::GET, "/inventory.csv", Access::Login),
    g(Method::GET, "/audit", Gate::Admin),
    g(Method::GET, "/cluster", Gate::OperateDevices),
    r(Method::GET, "/discovery", Access::Login),
    g(Method::POST, "/discovery", Gate::OperateDevices),
    r(Method::GET, "/discovery/{id}", Access::Login),
    g(Method::POST, "/discovery/{id}/adopt", Gate::OperateDevices),
    r(Method::GET, "/discovery/{id}/events", Access::Login),
    r(Method::GET, "/static/app.js", Access::Public),
    r(Method::GET, "/devices/{id}/snapshot", Access::Login),
    r(Method::POST, "/devices/bulk", Access::Login),
    g(Method::POST, "/devices/{id}/poll", Gate::OperateDevices),
    g(Method::POST, "/devices/{id}/reboot", Gate::OperateDevices),
    g(
        Method::POST,
        "/devices/{id}/recording",
        Gate::OperateDevices,
    ),
    g(Method::POST, "/devices/{id}/backfill", Gate::OperateDevices),
    g(Method::GET, "/devices/{id}/recordings", Gate::WatchVideo),
    g(Method::GET, "/devices/{id}/live.mp4", Gate::WatchVideo),
    g(Method::GET, "/devices/{id}/backups", Gate::OperateDevices),
    g(
        Method::GET,
        "/devices/{id}/backups/file",
        Gate::OperateDevices,
    ),
    g(
        Method::POST,
        "/devices/{id}/backups/restore",
        Gate::OperateDevices,
    ),
    g(Method::GET, "/live", Gate::WatchVideo),
    g(Method::GET, "/live/grid.bin", Gate::WatchVideo),
    g(Method::GET, "/recordings/{id}", Gate::WatchVideo),
    g(
        Method::GET,
        "/devices/{id}/recordings/export",
        Gate::WatchVideo,
    ),
    g(Method::POST, "/devices/{id}/network", Gate::OperateDevices),
    g(
        Method::POST,
        "/devices/{id}/lifecycle",
        Gate::OperateDevices,
    ),
    r(Method::GET, "/inventory", Access::Login),
    g(Method::GET, "/inventory/import", Gate::EditInventory),
    g(Method::POST, "/inventory/import", Gate::EditInventory),
    g(Method::POST, "/inventory/import/apply", Gate::EditInventory),
    g(Method::GET, "/sites", Gate::Admin),
    g(Method::POST, "/sites", Gate::Admin),
    g(Method::POST, "/sites/{id}", Gate::Admin),
    g(Method::GET, "/users", Gate::Admin),
    g(Method::POST, "/users", Gate::Admin),
    g(Method::GET, "/users/{id}", Gate::Admin),
    g(Method::POST, "/users/{id}", Gate::Admin),
    r(Method::GET, "/account", Access::Login),
    r(Method::POST, "/account", Access::Login),
    r(Method::GET, "/account/password", Access::Login),
    r(Method::POST, "/account/password", Access::Login),
    r(Method::GET, "/api/openapi.json", Access::Public),
    r(Method::GET, "/metrics", Access::Login),
    r(Method::GET, "/firmware", Access::Login),
    g(Method::POST, "/firmware/images", Gate::OperateDevices),
    g(Method::POST, "/firmware/images/{id}", Gate::Admin),
    g(Method::POST, "/firmware/rollouts", Gate::OperateDevices),
    r(Method::GET, "/firmware/rollouts/{id}", Access::Login),
    g(
        Method::POST,
        "/firmware/rollouts/{id}",
        Gate::OperateDevices,
    ),
    g(Method::GET, "/jobs", Gate::OperateDevices),
    g(Method::POST, "/jobs", Gate::Admin),
    g(Method::GET, "/jobs/{id}", Gate::OperateDevices),
    g(Method::POST, "/jobs/{id}", Gate::Admin),
    g(Method::GET, "/provision", Gate::OperateDevices),
    g(Method::POST, "/provision/profiles", Gate::OperateDevices),
    g(Method::POST, "/provision/plan", Gate::OperateDevices),
    g(
        Method::GET,
        "/provision/profiles/{id}",
        Gate::OperateDevices,
    ),
    g(
        Method::POST,
        "/provision/profiles/{id}",
        Gate::OperateDevices,
    ),
    g(
        Method::POST,
        "/provision/profiles/{id}/run",
        Gate::OperateDevices,
    ),
    g(Method::GET, "/provision/tasks/{id}", Gate::OperateDevices),
    g(Method::POST, "/provision/tasks/{id}", Gate::OperateDevices),
    g(
        Method::GET,
        "/provision/tasks/{id}/events",
        Gate::OperateDevices,
    ),
    g(Method::POST, "/provision/drift", Gate::OperateDevices),
    g(Method::GET, "/alerts/settings", Gate::Admin),
    g(Method::POST, "/alerts/channels", Gate::Admin),
    g(Method::POST, "/alerts/channels/{id}", Gate::Admin),
    g(Method::POST, "/alerts/rules", Gate::Admin),
    g(Method::POST, "/alerts/rules/{id}", Gate::Admin),
    r(Method::GET, "/alerts", Access::Login),
    r(Method::GET, "/alerts/summary/events", Access::Login),
    g(Method::POST, "/alerts/bulk", Gate::HandleAlerts),
    r(Method::GET, "/alerts/{id}", Access::Login),
    g(Method::POST, "/alerts/{id}", Gate::HandleAlerts),
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
        ("GET", "/cluster") => get(pages::cluster),
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
        ("GET", "/devices/{id}/live.mp4") => get(live::stream),
        ("GET", "/devices/{id}/backups") => get(backups::backups),
        ("GET", "/devices/{id}/backups/file") => get(backups::file),
        ("POST", "/devices/{id}/backups/restore") => post(backups::restore),
        ("GET", "/live") => get(live::grid),
        ("GET", "/live/grid.bin") => get(live::grid_stream),
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
        ("POST", "/provision/plan") => post(provision::plan_picked),
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
        ("GET", "/alerts/summary/events") => get(alerts::summary_events),
        ("POST", "/alerts/bulk") => post(alerts::alerts_bulk),
        ("GET", "/alerts/{id}") => get(alerts::alert_page),
        ("POST", "/alerts/{id}") => post(alerts::alert_action),
        (m, p) => panic!("route {m} {p} is listed in ROUTES but has no handler"),
    }
}

pub fn router(state: State) -> Router {
    router_for(state, true)
}

/// The router; without `web` only the health check and `/metrics` (a
/// node that polls or records but serves no UI).
pub fn router_for(state: State, web: bool) -> Router {
    let mut public = Router::new();
    let mut private = Router::new();
    for spec in ROUTES {
        if !web && !matches!(spec.path, "/healthz" | "/metrics") {
            continue;
        }
        match spec.access {
            Access::Public => public = public.route(spec.path, handler(spec)),
            Access::Login => private = private.route(spec.path, handler(spec)),
        }
    }
    // The JSON API: routes and OpenAPI document from the same declarations.
    let (api_routes, _) = api::router().split_for_parts();
    let private = if web {
        private.merge(api_routes)
    } else {
        private
    };
    let private = private
        // After routing (it needs the matched path), inside the login.
        .route_layer(middleware::from_fn(gate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_login,
        ));
    let app = public
        .merge(private)
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page") })
        .layer(middleware::from_fn(error::api_problems))
        .layer(middleware::from_fn(error::html_errors))
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

/// The gate of a (method, route pattern): from [`ROUTES`] or
/// [`api::GATES`]; None for a route listed in neither (refused).
pub fn gate_of(method: &str, path: &str) -> Option<Gate> {
    type Gates =
        std::collections::HashMap<&'static str, std::collections::HashMap<&'static str, Gate>>;
    static MAP: std::sync::OnceLock<Gates> = std::sync::OnceLock::new();
    // By method, then route pattern: looked up on every request, so
    // without building a key.
    MAP.get_or_init(|| {
        let mut m = Gates::new();
        for r in ROUTES {
            m.entry(r.method.as_str())
                .or_default()
                .insert(r.path, r.gate);
        }
        for (method, path, g) in api::GATES {
            m.entry(method).or_default().insert(path, *g);
        }
        m
    })
    .get(method)?
    .get(path)
    .copied()
}

/// Refuse a caller whose role the route's gate does not let in, before
/// the handler runs (so before a body is read). HEAD is checked as GET.
async fn gate(req: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = if req.method() == Method::HEAD {
        "GET".to_string()
    } else {
        req.method().as_str().to_string()
    };
    let Some(pattern) = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(req).await;
    };
    let Some(me) = req.extensions().get::<auth::CurrentUser>() else {
        return next.run(req).await;
    };
    match gate_of(&method, &pattern) {
        Some(g) if g.allows(me.role) => next.run(req).await,
        Some(_) => error::WebError(crate::error::Error::new(
            crate::error::ErrorKind::PermissionDenied,
            format!("the {} role may not do this", me.role.as_str()),
        ))
        .into_response(),
        None => {
            tracing::error!(%method, route = %pattern, "route has no gate; refused");
            (
                axum::http::StatusCode::FORBIDDEN,
                "this route has no access rule",
            )
                .into_response()
        }
    }
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
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; frame-ancestors 'none'; form-action 'self'"),
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
