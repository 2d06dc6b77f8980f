//! Access control by construction (issue 13): the authorization matrix
//! generated from the route tables (every page route and every API
//! operation × anonymous and each role × a device in and out of the
//! caller's sites), and the four cases that broke before: a user with no
//! sites, cross-site re-adoption, an off-site `next=`, parallel guessing.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use camfleet::app::AppState;
use camfleet::db::entities::device;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::users::{Access as UserAccess, NewUser, Role};
use camfleet::web::{self, Access, Gate, ROUTES};
use common::http::*;
use common::*;
use sea_orm::EntityTrait;

/// Post the login form; (status, Location, session cookie).
async fn login_with_next(
    app: &axum::Router,
    user: &str,
    pw: &str,
    next: &str,
) -> (StatusCode, String, String) {
    let (_, h, _) = send(app, get("/login", "")).await;
    let csrf = set_cookie_value(&h, "camfleet_login_csrf").unwrap();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("username", user)
        .append_pair("password", pw)
        .append_pair("csrf", &csrf)
        .append_pair("next", next)
        .finish();
    let (status, h, _) = send(
        app,
        post_form("/login", &format!("camfleet_login_csrf={csrf}"), &form),
    )
    .await;
    let location = h
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let session = set_cookie_value(&h, "camfleet_session").unwrap_or_default();
    (status, location, format!("camfleet_session={session}"))
}

/// A user with the tests' password, limited to `sites` (or all sites).
async fn make_user(state: &AppState, name: &str, role: Role, sites: Option<Vec<i32>>) -> i32 {
    let u = state
        .users
        .create_with(
            name,
            "correct-horse",
            role,
            NewUser {
                all_sites: sites.is_none(),
                sites: sites.unwrap_or_default(),
                must_change_password: false,
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    u.id
}

// ---------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Viewer,
    Procurement,
    Technician,
    Admin,
}

impl Who {
    fn role(self) -> Option<Role> {
        match self {
            Who::Anonymous => None,
            Who::Viewer => Some(Role::Viewer),
            Who::Procurement => Some(Role::Procurement),
            Who::Technician => Some(Role::Technician),
            Who::Admin => Some(Role::Admin),
        }
    }
}

/// What a (method, route) asks, beyond its gate.
struct Rule {
    gate: Gate,
    /// `{id}` is a device: a device outside the caller's sites is 404.
    device_scoped: bool,
    /// Fleet-wide: only for those who see every site (scheduled jobs).
    all_sites_only: bool,
}

fn rule(method: &str, path: &str) -> Rule {
    let gate = web::gate_of(method, path)
        .unwrap_or_else(|| panic!("{method} {path} has no gate: add it to ROUTES or api::GATES"));
    Rule {
        gate,
        device_scoped: path.starts_with("/devices/{id}")
            || path.starts_with("/api/v1/devices/{id}"),
        all_sites_only: path.starts_with("/jobs") || path.starts_with("/api/v1/jobs"),
    }
}

/// Every route: pages from ROUTES (not public), the API from the OpenAPI
/// document, which utoipa-axum builds from the same declarations as the
/// router.
fn every_route() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Login)
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    all.extend(web::api::operations());
    all
}

#[test]
fn every_api_operation_has_exactly_one_gate_and_no_gate_is_stale() {
    let ops = web::api::operations();
    for (m, p) in &ops {
        let n = web::api::GATES
            .iter()
            .filter(|(gm, gp, _)| gm == m && gp == p)
            .count();
        assert_eq!(n, 1, "{m} {p}: {n} gates");
    }
    for (m, p, _) in web::api::GATES {
        assert!(
            ops.iter().any(|(om, op)| om == m && op == p),
            "gate for {m} {p}, which the API does not serve"
        );
    }
}

#[tokio::test]
async fn the_authorization_matrix_holds_for_every_route_role_and_scope() {
    let routes = every_route();
    assert!(routes.len() > 100, "{} routes", routes.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    for (method, path) in &routes {
        // A fresh installation per route: what one role changes (an admin
        // deleting the device) cannot hide what another would see.
        let (app, state) = app().await;
        let north = make_site(&state, "North").await;
        let south = make_site(&state, "South").await;
        let in_dev = seed_device(&state, north, 1).await;
        let out_dev = seed_device(&state, south, 2).await;
        let mut tokens = Vec::new();
        for who in [Who::Viewer, Who::Procurement, Who::Technician, Who::Admin] {
            let role = who.role().unwrap();
            let sites = (role != Role::Admin).then(|| vec![north]);
            let uid = make_user(&state, &format!("{who:?}").to_lowercase(), role, sites).await;
            let (t, _) = state
                .tokens
                .create(uid, "matrix", None, &Actor::system())
                .await
                .unwrap();
            tokens.push((who, t));
        }
        let r = rule(method, path);
        let mut cases: Vec<(Who, Option<String>, bool)> = vec![(Who::Anonymous, None, true)];
        for (who, t) in &tokens {
            if r.device_scoped && *who != Who::Admin {
                cases.push((*who, Some(t.clone()), false));
            }
            cases.push((*who, Some(t.clone()), true));
        }
        for (who, token, in_scope) in cases {
            let id = if r.device_scoped {
                if in_scope { in_dev } else { out_dev }
            } else {
                1
            };
            let (uri, content_type, payload) = well_formed(method, path, id);
            let mut req = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri);
            if let Some(t) = &token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if let Some(ct) = content_type {
                req = req.header(header::CONTENT_TYPE, ct);
            }
            let (status, h, body) = send_head(&app, req.body(Body::from(payload)).unwrap()).await;
            let api = uri.starts_with("/api/");
            let role = who.role();
            let expect: &str = match role {
                None if api => "401",
                None => "303 to /login",
                Some(role) if !r.gate.allows(role) => "403",
                Some(Role::Procurement) if path == "/devices/{id}/snapshot" => "403",
                // Tokens and passwords are changed from a browser login only.
                Some(_) if method == "POST" && path.starts_with("/account") => "403",
                Some(role) if r.all_sites_only && role != Role::Admin => "403",
                Some(_) if r.device_scoped && !in_scope => "404",
                Some(_) => "allowed",
            };
            let ok = match expect {
                "401" => status == StatusCode::UNAUTHORIZED,
                "303 to /login" => {
                    status == StatusCode::SEE_OTHER
                        && h.get(header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|l| l.starts_with("/login"))
                }
                "403" => status == StatusCode::FORBIDDEN,
                "404" => status == StatusCode::NOT_FOUND,
                // Allowed: whatever the handler makes of it, but not a
                // refusal, not an internal error, and the device found.
                // (503/502: the seeded device has no camera behind it.)
                _ => {
                    let refused = matches!(
                        status,
                        StatusCode::UNAUTHORIZED
                            | StatusCode::FORBIDDEN
                            | StatusCode::INTERNAL_SERVER_ERROR
                    );
                    let device_missing =
                        status == StatusCode::NOT_FOUND && body.contains("no device");
                    !refused && !device_missing
                }
            };
            if api && status.is_client_error() {
                let ct = h
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !ct.starts_with("application/problem+json") {
                    failures.push(format!(
                        "{method} {uri} as {who:?}: {status} is not a problem document ({ct})"
                    ));
                }
            }
            if !ok {
                failures.push(format!(
                    "{method} {uri} as {who:?} ({}): expected {expect}, got {status}: {}",
                    if in_scope { "in scope" } else { "out of scope" },
                    body.chars().take(200).collect::<String>()
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 500, "{checked} cases");
}

/// As `send`, but a streaming answer (server-sent events, live video) is
/// not read: it goes on as long as the client listens.
async fn send_head(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let streaming = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("text/event-stream")
                || ct.starts_with("video/")
                || ct.starts_with("application/octet-stream")
        });
    if streaming {
        return (status, headers, String::new());
    }
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A request each route would accept from a caller allowed to make it,
/// so the answer shows the authorization, not a complaint about the body:
/// (uri, content type, body).
fn well_formed(method: &str, path: &str, id: i32) -> (String, Option<&'static str>, String) {
    let uri = path.replace("{id}", &id.to_string());
    let api = path.starts_with("/api/");
    if path.ends_with("/recordings/export") {
        let q = if api {
            "?from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"
        } else {
            "?day=2026-01-01&from=00:00&to=01:00"
        };
        return (format!("{uri}{q}"), None, String::new());
    }
    if method == "GET" || method == "DELETE" {
        return (uri, None, String::new());
    }
    if api {
        let body = match path {
            "/api/v1/devices/{id}/actions" => r#"{"action":"poll_interval","seconds":60}"#,
            "/api/v1/devices/{id}/inventory" => r#"{"notes":"checked"}"#,
            "/api/v1/inventory/import" => "",
            _ => "{}",
        };
        let ct = if path == "/api/v1/inventory/import" {
            "text/csv"
        } else {
            "application/json"
        };
        return (uri, Some(ct), body.to_string());
    }
    // The device list's bulk form: export is for every role (the device
    // actions are the technicians'; tests/web.rs checks those).
    if path == "/devices/bulk" {
        return (
            uri,
            Some("application/x-www-form-urlencoded"),
            format!("csrf=from-token&action=export&device={id}"),
        );
    }
    // Pages: a form every device action accepts.
    (
        uri,
        Some("application/x-www-form-urlencoded"),
        "csrf=from-token&confirm=on&poll_interval_s=60&mode=dhcp&profile=&transport=tcp&action=retire&reason=matrix"
            .to_string(),
    )
}

// ---------------------------------------------------------------------
// The four cases
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_user_with_no_sites_sees_no_devices_and_deleting_their_site_is_refused() {
    let (app, state) = app().await;
    let north = make_site(&state, "North").await;
    let dev = seed_device(&state, north, 1).await;
    let uid = make_user(&state, "nosite", Role::Viewer, Some(vec![])).await;
    let (t, _) = state
        .tokens
        .create(uid, "t", None, &Actor::system())
        .await
        .unwrap();
    let bearer = |p: &str| {
        Request::get(p)
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, json) = send(&app, bearer("/api/v1/devices")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total"], 0, "{json}");
    assert_eq!(
        send(&app, bearer(&format!("/api/v1/devices/{dev}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, _, csv) = send(&app, bearer("/api/v1/inventory/export")).await;
    assert!(!csv.contains("cam-1"), "{csv}");
    let (_, _, metrics) = send(&app, bearer("/metrics")).await;
    assert!(
        metrics.contains("camfleet_devices{state=\"online\"} 0"),
        "{metrics}"
    );
    // A site still assigned to a user cannot be deleted (that used to
    // turn the user into an all-sites one).
    let other = make_user(&state, "north-only", Role::Viewer, Some(vec![north])).await;
    let _ = other;
    let err = state
        .sites
        .delete(north, &Actor::system())
        .await
        .unwrap_err();
    assert_eq!(err.kind, camfleet::error::ErrorKind::Conflict, "{err}");
    // Only an admin grants all sites.
    let tech = Actor::user(
        "t",
        99,
        Role::Technician,
        camfleet::fleet::access::Scope::All,
        None,
    );
    assert!(
        state
            .users
            .update(
                uid,
                UserAccess {
                    role: Role::Viewer,
                    disabled: false,
                    all_sites: true,
                    sites: vec![],
                },
                &tech,
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_technician_of_one_site_cannot_take_over_another_sites_cameras_by_re_adoption() {
    let port = free_udp_port();
    let (app, state) = app_with_wsd_port(port).await;
    let north = make_site(&state, "North").await;
    let south = make_site(&state, "South").await;
    let mut cfg = camfleet::sim::FleetConfig::new(3, 0);
    cfg.wsd = Some(camfleet::sim::WsdConfig {
        port,
        max_delay: std::time::Duration::from_millis(100),
        ..Default::default()
    });
    let f = fleet_with(cfg).await;
    // An admin adopted all three into South.
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(adopt_device(&state, &f, i, Some(south)).await);
    }
    make_user(&state, "nick", Role::Technician, Some(vec![north])).await;
    let (_, _, cookie) = login_with_next(&app, "nick", "correct-horse", "/").await;
    let (_, _, page) = send(&app, get("/discovery", &cookie)).await;
    let csrf = csrf_of(&page);
    // A limited technician must name one of their sites.
    let (status, _, page) = send(
        &app,
        post_form(
            "/discovery",
            &cookie,
            &format!("csrf={csrf}&kind=multicast"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    let (status, h, _) = send(
        &app,
        post_form(
            "/discovery",
            &cookie,
            &format!("csrf={csrf}&kind=multicast&site={north}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let run_url = h[header::LOCATION].to_str().unwrap().to_string();
    let (_, _, events) = send(&app, get(&format!("{run_url}/events"), &cookie)).await;
    assert!(events.contains("event: end"), "{events}");
    // The run shows them as managed elsewhere, with nothing to tick…
    let (_, _, page) = send(&app, get(&run_url, &cookie)).await;
    assert!(page.contains("in a site you do not manage"), "{page}");
    assert_eq!(page.matches("name=\"result\"").count(), 0, "{page}");
    // …and posting every result id anyway moves nothing and replaces no
    // credential.
    let run_id: i32 = run_url.rsplit('/').next().unwrap().parse().unwrap();
    let ids: Vec<i32> = state
        .console
        .discovery_run(&Actor::system(), run_id)
        .await
        .unwrap()
        .results
        .iter()
        .map(|r| r.r.id)
        .collect();
    assert_eq!(ids.len(), 3);
    let selection: String = ids.iter().map(|i| format!("&result={i}")).collect();
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("{run_url}/adopt"),
            &cookie,
            &format!("csrf={csrf}{selection}&username=admin&password=admin&site={north}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, events) = send(&app, get(&format!("{run_url}/events"), &cookie)).await;
    assert!(events.contains("event: end"), "{events}");
    for d in &before {
        let now = device::Entity::find_by_id(d.id)
            .one(state.users.db())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.site_id, Some(south), "device {} moved", d.id);
        assert_eq!(
            now.credential_id, d.credential_id,
            "device {} credential replaced",
            d.id
        );
    }
    let view = state
        .console
        .discovery_run(&Actor::system(), run_id)
        .await
        .unwrap();
    for r in &view.results {
        let o = r.outcome.as_ref().expect("an outcome per result");
        assert!(
            o.failed
                .as_deref()
                .is_some_and(|f| f.starts_with("refused")),
            "{o:?}"
        );
    }
    // The same through the API's direct adoption.
    let err = state
        .console
        .adopt_direct(
            &state.discovery_ops(),
            &Actor::user(
                "nick",
                0,
                Role::Technician,
                camfleet::fleet::access::Scope::from_sites(vec![north]),
                None,
            ),
            &f.device_url(0),
            admin(),
            Some(north),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        camfleet::error::ErrorKind::PermissionDenied,
        "{err}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn next_after_login_never_leaves_the_site() {
    let (app, state) = app().await;
    make_user(&state, "ann", Role::Viewer, None).await;
    for evil in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%2f%2fevil.example",
        "/\n/evil.example",
    ] {
        // The login page does not carry it into its form…
        let q: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        let (_, _, page) = send(&app, get(&format!("/login?next={q}"), "")).await;
        assert!(!page.contains("evil.example"), "{evil:?}: {page}");
        // …and a posted one lands on the dashboard.
        let (status, location, _) = login_with_next(&app, "ann", "correct-horse", evil).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location, "/", "{evil:?}");
    }
    let (_, location, _) = login_with_next(&app, "ann", "correct-horse", "/devices?page=2").await;
    assert_eq!(location, "/devices?page=2");
}

#[tokio::test]
async fn thirty_parallel_wrong_passwords_through_the_web_then_the_right_one_is_refused_alike() {
    let (app, state) = app().await;
    make_user(&state, "ann", Role::Viewer, None).await;
    let guesses = (0..30).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            login_with_next(&app, "ann", &format!("guess-number-{i}"), "/")
                .await
                .0
        })
    });
    for r in futures::future::join_all(guesses).await {
        assert_eq!(r.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let (status, _, cookie) = login_with_next(&app, "ann", "correct-horse", "/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cookie, "camfleet_session=");
    // At most the free allowance of passwords was ever compared.
    let wrong = camfleet::db::entities::audit_log::Entity::find()
        .all(state.users.db())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.after
                .as_ref()
                .and_then(|a| a["reason"].as_str())
                .is_some_and(|r| r == "wrong password")
        })
        .count();
    assert!(
        wrong <= camfleet::fleet::throttle::ACCOUNT_FREE as usize,
        "{wrong} passwords checked"
    );
}

// ---------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_password_set_by_an_admin_must_be_changed_and_the_reset_ends_sessions_and_tokens() {
    let (app, state) = app().await;
    let uid = make_user(&state, "bo", Role::Viewer, None).await;
    let (t, _) = state
        .tokens
        .create(uid, "script", None, &Actor::system())
        .await
        .unwrap();
    let (_, _, old_cookie) = login_with_next(&app, "bo", "correct-horse", "/").await;
    state
        .users
        .set_password("bo", "a-new-one-from-admin", true, &Actor::system())
        .await
        .unwrap();
    state.auth_cache.clear();
    // The old session and the token are gone.
    let (status, h, _) = send(&app, get("/devices", &old_cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(h[header::LOCATION].to_str().unwrap().starts_with("/login"));
    let api = Request::get("/api/v1/devices")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, api).await.0, StatusCode::UNAUTHORIZED);
    // Logging in leads to the change page, and nothing else opens.
    let (status, location, cookie) =
        login_with_next(&app, "bo", "a-new-one-from-admin", "/devices").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/account/password");
    let (status, h, _) = send(&app, get("/devices", &cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/account/password");
    let (status, h, page) = send(&app, get("/account/password", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let csrf = csrf_of(&page);
    // The same password again is refused, with the field named.
    let (status, _, page) = send(
        &app,
        post_form(
            "/account/password",
            &cookie,
            &format!("csrf={csrf}&current=a-new-one-from-admin&new=a-new-one-from-admin&again=a-new-one-from-admin"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("different from the current one"), "{page}");
    let (status, _, _) = send(
        &app,
        post_form(
            "/account/password",
            &cookie,
            &format!("csrf={csrf}&current=a-new-one-from-admin&new=bo-chose-this-one&again=bo-chose-this-one"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    state.auth_cache.clear();
    let (status, _, _) = send(&app, get("/devices", &cookie)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session that changed it goes on"
    );
    let audit = camfleet::db::entities::audit_log::Entity::find()
        .all(state.users.db())
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "user.password.self"));
}

#[tokio::test]
async fn a_session_left_idle_ends() {
    let db = test_db().await;
    let clock = manual_clock();
    let shared: camfleet::clock::SharedClock = clock.clone();
    let sessions = camfleet::fleet::sessions::Sessions::new(db, shared);
    let (token, _) = sessions.create(7).await.unwrap();
    clock.advance(std::time::Duration::from_secs(20 * 60));
    assert!(sessions.get(&token).await.unwrap().is_some());
    clock.advance(std::time::Duration::from_secs(
        camfleet::fleet::sessions::IDLE_TIMEOUT_SECS as u64 + 1,
    ));
    assert!(sessions.get(&token).await.unwrap().is_none());
}

#[tokio::test]
async fn src_web_holds_no_database_access() {
    // Handlers parse, call one console or service method, render: the
    // database is reached only through `fleet`.
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/web"
    ))];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.contains("sea_orm")
                    || line.contains("state.db")
                    || line.contains("Entity::")
                    || line.contains(".begin().await")
                {
                    offenders.push(format!("{}:{}: {line}", p.display(), i + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, _state) = app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut waiter) = camfleet::shutdown::channel();
    let server = tokio::spawn(camfleet::web::server::serve_with(
        listener,
        app,
        async move { waiter.wait().await },
        std::time::Duration::from_millis(300),
    ));
    // Slowloris: half a request line, then nothing. The server closes.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile a normal client is answered.
    let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut rest = Vec::new();
    // The read ends (EOF or a 408) instead of waiting forever; the test
    // harness's own timeout is the bound.
    let _ = slow.read_to_end(&mut rest).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.is_empty() || text.contains("408"), "{text}");
    stop.fire();
    server.await.unwrap().unwrap();
}
