//! The JSON API under `/api/v1`: every action the pages offer, for
//! scripts and integrations. Each operation is declared once — its path,
//! method, parameters and responses in one `#[utoipa::path]` on its
//! handler — and [`router`] builds both the axum routes and the OpenAPI
//! 3.1 document from those declarations (utoipa-axum), so the document
//! cannot drift from what is served. The document is readable without a
//! login at `/api/openapi.json`.
//!
//! The same login (session cookie or `Authorization: Bearer` token), roles
//! and site scoping apply as to the pages; handlers parse, call one
//! console or service method, and serialize. Errors are RFC 9457 problem
//! documents (`application/problem+json`), whoever produced them
//! (`web::error::api_problems`). Types here are the API's shape, apart
//! from the database entities, so a schema change is not an API change by
//! accident.

pub mod admin;
pub mod alerts;
pub mod devices;
pub mod discovery;
pub mod firmware;
pub mod jobs;
pub mod provision;
pub mod recordings;

use std::sync::OnceLock;

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, ResponsesBuilder};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;

/// An RFC 9457 problem document: what every error of the API looks like.
#[derive(serde::Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person; names the field when a field is wrong.
    pub detail: String,
}

/// The error answers every operation may give, as problem documents.
pub struct Problems;

impl utoipa::IntoResponses for Problems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let problem = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "Problem",
                        ))))
                        .build(),
                )
                .build()
        };
        ResponsesBuilder::new()
            .response("400", problem("the request is malformed"))
            .response("401", problem("no valid login or token"))
            .response("403", problem("the role or the sites of the caller do not allow it, or a form token is missing"))
            .response("404", problem("no such thing within the caller's sites"))
            .response("409", problem("the thing is not in a state that allows it"))
            .response("415", problem("the body is not of the expected type"))
            .response("422", problem("a field is invalid; nothing was changed"))
            .response("429", problem("too many at once; try again shortly"))
            .response("503", problem("a needed part is unavailable (a camera, storage)"))
            .response("507", problem("out of space or capacity"))
            .build()
            .into()
    }
}

/// CSRF for API writes: a bearer token needs none; a browser session
/// sends its token in `X-CSRF-Token`.
pub(crate) fn csrf(me: &CurrentUser, headers: &HeaderMap) -> Result<(), WebError> {
    let t = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    me.check_csrf(t)
}

pub(crate) fn json<T: serde::Serialize>(v: T) -> Response {
    Json(v).into_response()
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityScheme;
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API token from /account or `camfleet token create`",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::auth::SESSION_COOKIE,
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "camfleet API",
        description = "Everything a technician, a buyer or an admin does in camfleet's pages, for scripts: devices and their actions, discovery and adoption, alerts, notification channels and rules, provisioning, firmware, jobs, recordings, sites, users and the audit log. Roles and site limits apply as in the pages. Errors are RFC 9457 problem documents."
    ),
    components(schemas(Problem)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
)]
struct ApiDoc;

/// Every API route with its OpenAPI description, declared once.
pub fn router() -> OpenApiRouter<State> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        // devices and inventory
        .routes(routes!(devices::list))
        .routes(routes!(devices::get, devices::delete))
        .routes(routes!(devices::patch_inventory))
        .routes(routes!(devices::act))
        .routes(routes!(devices::bulk_site))
        .routes(routes!(devices::backups))
        .routes(routes!(devices::backup_restore))
        .routes(routes!(devices::export_csv))
        .routes(routes!(devices::import))
        // discovery and adoption
        .routes(routes!(discovery::runs, discovery::start))
        .routes(routes!(discovery::run))
        .routes(routes!(discovery::adopt_from_run))
        .routes(routes!(discovery::adopt_direct))
        // alerts, channels, rules
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::get))
        .routes(routes!(alerts::act))
        .routes(routes!(alerts::bulk))
        .routes(routes!(alerts::channels, alerts::channel_create))
        .routes(routes!(alerts::channel_act))
        .routes(routes!(alerts::rules, alerts::rule_create))
        .routes(routes!(alerts::rule_update))
        // provisioning
        .routes(routes!(provision::profiles, provision::profile_create))
        .routes(routes!(provision::profile, provision::profile_update))
        .routes(routes!(provision::plan))
        .routes(routes!(provision::run))
        .routes(routes!(provision::task))
        .routes(routes!(provision::resume))
        .routes(routes!(provision::drift))
        // firmware
        .routes(routes!(firmware::images, firmware::upload))
        .routes(routes!(firmware::approve))
        .routes(routes!(firmware::rollouts, firmware::rollout_create))
        .routes(routes!(firmware::rollout))
        .routes(routes!(firmware::rollout_control))
        // jobs
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(jobs::get, jobs::update, jobs::delete))
        .routes(routes!(jobs::run_now))
        .routes(routes!(jobs::runs))
        // recordings
        .routes(routes!(recordings::day))
        .routes(routes!(recordings::segment))
        .routes(routes!(recordings::export))
        .routes(routes!(admin::cluster))
        // sites, users, audit
        .routes(routes!(admin::sites, admin::site_create))
        .routes(routes!(admin::site_update, admin::site_delete))
        .routes(routes!(admin::users, admin::user_create))
        .routes(routes!(admin::user, admin::user_update))
        .routes(routes!(admin::user_password))
        .routes(routes!(admin::audit))
}

use super::Gate;

/// The role gate of every API operation (checked before the handler, by
/// the same middleware as the pages'); an operation without an entry is
/// refused to everyone, and the authorization matrix test fails.
pub const GATES: &[(&str, &str, Gate)] = &[
    ("GET", "/api/v1/devices", Gate::Any),
    ("GET", "/api/v1/devices/{id}", Gate::Any),
    ("DELETE", "/api/v1/devices/{id}", Gate::Admin),
    (
        "PATCH",
        "/api/v1/devices/{id}/inventory",
        Gate::EditInventory,
    ),
    ("POST", "/api/v1/devices/{id}/actions", Gate::OperateDevices),
    ("POST", "/api/v1/devices/bulk/site", Gate::EditInventory),
    ("GET", "/api/v1/devices/{id}/backups", Gate::OperateDevices),
    (
        "POST",
        "/api/v1/devices/{id}/backups/{stamp}/restore",
        Gate::OperateDevices,
    ),
    ("GET", "/api/v1/inventory/export", Gate::Any),
    ("POST", "/api/v1/inventory/import", Gate::EditInventory),
    ("GET", "/api/v1/discovery", Gate::Any),
    ("POST", "/api/v1/discovery", Gate::OperateDevices),
    ("GET", "/api/v1/discovery/{id}", Gate::Any),
    ("POST", "/api/v1/discovery/{id}/adopt", Gate::OperateDevices),
    ("POST", "/api/v1/adopt", Gate::OperateDevices),
    ("GET", "/api/v1/alerts", Gate::Any),
    ("GET", "/api/v1/alerts/{id}", Gate::Any),
    ("POST", "/api/v1/alerts/{id}/actions", Gate::HandleAlerts),
    ("POST", "/api/v1/alerts/bulk", Gate::HandleAlerts),
    ("GET", "/api/v1/alert-channels", Gate::Admin),
    ("POST", "/api/v1/alert-channels", Gate::Admin),
    ("POST", "/api/v1/alert-channels/{id}/actions", Gate::Admin),
    ("GET", "/api/v1/alert-rules", Gate::Admin),
    ("POST", "/api/v1/alert-rules", Gate::Admin),
    ("PUT", "/api/v1/alert-rules/{id}", Gate::Admin),
    ("GET", "/api/v1/provision/profiles", Gate::OperateDevices),
    ("POST", "/api/v1/provision/profiles", Gate::OperateDevices),
    (
        "GET",
        "/api/v1/provision/profiles/{id}",
        Gate::OperateDevices,
    ),
    (
        "PUT",
        "/api/v1/provision/profiles/{id}",
        Gate::OperateDevices,
    ),
    (
        "POST",
        "/api/v1/provision/profiles/{id}/plan",
        Gate::OperateDevices,
    ),
    (
        "POST",
        "/api/v1/provision/profiles/{id}/run",
        Gate::OperateDevices,
    ),
    ("GET", "/api/v1/provision/tasks/{id}", Gate::OperateDevices),
    (
        "POST",
        "/api/v1/provision/tasks/{id}/resume",
        Gate::OperateDevices,
    ),
    ("POST", "/api/v1/provision/drift", Gate::OperateDevices),
    ("GET", "/api/v1/firmware/images", Gate::Any),
    ("POST", "/api/v1/firmware/images", Gate::OperateDevices),
    ("POST", "/api/v1/firmware/images/{id}/approve", Gate::Admin),
    ("GET", "/api/v1/firmware/rollouts", Gate::Any),
    ("POST", "/api/v1/firmware/rollouts", Gate::OperateDevices),
    ("GET", "/api/v1/firmware/rollouts/{id}", Gate::Any),
    (
        "POST",
        "/api/v1/firmware/rollouts/{id}/control",
        Gate::OperateDevices,
    ),
    ("GET", "/api/v1/jobs", Gate::OperateDevices),
    ("POST", "/api/v1/jobs", Gate::Admin),
    ("GET", "/api/v1/jobs/{id}", Gate::OperateDevices),
    ("PUT", "/api/v1/jobs/{id}", Gate::Admin),
    ("DELETE", "/api/v1/jobs/{id}", Gate::Admin),
    ("POST", "/api/v1/jobs/{id}/run", Gate::Admin),
    ("GET", "/api/v1/jobs/{id}/runs", Gate::OperateDevices),
    ("GET", "/api/v1/devices/{id}/recordings", Gate::WatchVideo),
    ("GET", "/api/v1/recordings/{id}", Gate::WatchVideo),
    (
        "GET",
        "/api/v1/devices/{id}/recordings/export",
        Gate::WatchVideo,
    ),
    ("GET", "/api/v1/sites", Gate::Any),
    ("POST", "/api/v1/sites", Gate::Admin),
    ("PUT", "/api/v1/sites/{id}", Gate::Admin),
    ("DELETE", "/api/v1/sites/{id}", Gate::Admin),
    ("GET", "/api/v1/users", Gate::Admin),
    ("POST", "/api/v1/users", Gate::Admin),
    ("GET", "/api/v1/users/{id}", Gate::Admin),
    ("PUT", "/api/v1/users/{id}", Gate::Admin),
    ("POST", "/api/v1/users/{id}/password", Gate::Admin),
    ("GET", "/api/v1/audit", Gate::Admin),
    ("GET", "/api/v1/cluster", Gate::OperateDevices),
];

/// The OpenAPI document (built once from [`router`]).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| router().split_for_parts().1)
}

/// `GET /api/openapi.json` (public: it describes, it does not grant).
pub async fn openapi() -> Response {
    Json(document()).into_response()
}

/// Every (method, path) the API serves, for the authorization matrix.
pub fn operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in document().paths.paths.iter() {
        for (m, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                out.push((m.to_string(), path.clone()));
            }
        }
    }
    out
}
