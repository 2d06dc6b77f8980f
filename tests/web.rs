//! The web app in-process (tower `oneshot`) on a fresh database: every
//! non-public route refuses anonymous requests, login/logout with CSRF,
//! lockout, security headers, and the device list with real adopted data.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use camfleet::app::AppState;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::users::Role;
use camfleet::web::{self, Access, ROUTES};
use common::http::*;
use common::*;
use http_body_util::BodyExt;
use sea_orm::EntityTrait;
use tower::ServiceExt;

/// Adopt simulated camera `i` and record it in the inventory, as an
/// adoption from discovery would.
async fn adopt_into(
    state: &AppState,
    f: &camfleet::sim::Fleet,
    i: usize,
) -> camfleet::db::entities::device::Model {
    adopt_device(state, f, i, None).await
}

/// A user with the tests' password who sees every site (tests that are
/// about site limits set the user's sites themselves).
async fn make_user(
    state: &AppState,
    name: &str,
    role: Role,
) -> camfleet::db::entities::user::Model {
    state
        .users
        .create_with(
            name,
            "correct-horse",
            role,
            camfleet::fleet::users::NewUser {
                all_sites: true,
                ..Default::default()
            },
            &Actor::system(),
        )
        .await
        .unwrap()
}

/// Log in through the real form; returns the session cookie header value.
async fn login(app: &axum::Router, user: &str, pw: &str) -> (StatusCode, String) {
    let (_, h, _) = send(app, get("/login", "")).await;
    let csrf = set_cookie_value(&h, "camfleet_login_csrf").unwrap();
    let form = format!("username={user}&password={pw}&csrf={csrf}&next=%2Fdevices");
    let (status, h, _) = send(
        app,
        post_form("/login", &format!("camfleet_login_csrf={csrf}"), &form),
    )
    .await;
    let session = set_cookie_value(&h, "camfleet_session").unwrap_or_default();
    (status, format!("camfleet_session={session}"))
}

/// Follow a run's live progress (SSE) to its end; returns the event text.
/// The stream ends when the background work does, so no waiting by time.
async fn follow(app: &axum::Router, run_url: &str, cookie: &str) -> String {
    let (status, h, body) = send(app, get(&format!("{run_url}/events"), cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(body.contains("event: end"), "{body}");
    body
}

#[tokio::test]
async fn every_non_public_route_refuses_anonymous_requests() {
    let (app, _) = app().await;
    let mut checked = 0;
    for spec in ROUTES.iter().filter(|r| r.access == Access::Login) {
        let path = spec.path.replace("{id}", "1");
        let req = Request::builder()
            .method(spec.method.clone())
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let (status, h, _) = send(&app, req).await;
        if path.starts_with("/api/") {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {path}", spec.method);
        } else {
            assert_eq!(status, StatusCode::SEE_OTHER, "{} {path}", spec.method);
            assert!(
                h[header::LOCATION]
                    .to_str()
                    .unwrap()
                    .starts_with("/login?next=")
            );
        }
        checked += 1;
    }
    assert!(checked >= 5);
    // With a session cookie that does not exist, the same.
    let (status, _, _) = send(&app, get("/devices", "camfleet_session=forged")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn public_routes_answer_and_carry_security_headers() {
    let (app, _) = app().await;
    let (status, h, body) = send(&app, get("/healthz", "")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    for name in [
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
    ] {
        assert!(h.contains_key(name), "{name}");
    }
    let (status, h, body) = send(&app, get("/login", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"password\""));
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
}

#[tokio::test]
async fn login_csrf_logout_cycle() {
    let (app, state) = app().await;
    make_user(&state, "tech", Role::Technician).await;
    // Without the login CSRF cookie the form is refused.
    let (status, _, _) = send(
        &app,
        post_form("/login", "", "username=tech&password=correct-horse&csrf=x"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Wrong password.
    let (status, cookie) = login(&app, "tech", "nope-nope-nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cookie, "camfleet_session=");
    // Right password: redirected to where we were going, with a session.
    let (status, cookie) = login(&app, "tech", "correct-horse").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, page) = send(&app, get("/devices", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("tech · technician"));
    // Logout needs the session's CSRF token.
    let (status, _, _) = send(&app, post_form("/logout", &cookie, "csrf=wrong")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        &app,
        post_form("/logout", &cookie, &format!("csrf={}", csrf_of(&page))),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = send(&app, get("/devices", &cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the session is gone");
}

#[tokio::test]
async fn cross_site_post_is_refused() {
    let (app, state) = app().await;
    make_user(&state, "tech", Role::Technician).await;
    let (_, cookie) = login(&app, "tech", "correct-horse").await;
    let (_, _, page) = send(&app, get("/devices", &cookie)).await;
    let req = Request::post("/logout")
        .header(header::COOKIE, &cookie)
        .header(header::HOST, "camfleet.local")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={}", csrf_of(&page))))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_from_the_web_too() {
    let (app, state) = app().await;
    make_user(&state, "ann", Role::Viewer).await;
    // Every refusal reads the same: wrong password, unknown account,
    // throttled account; nothing tells which accounts exist or are locked.
    let refused = |body: &str| body.contains("Wrong user name or password, or too many attempts");
    let (status, body) = login_page_answer(&app, "nobody-here", "bad-password-x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(refused(&body), "{body}");
    for _ in 0..camfleet::fleet::throttle::ACCOUNT_FREE {
        let (status, body) = login_page_answer(&app, "ann", "bad-password-x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(refused(&body));
    }
    // Throttled now: the right password gets the same answer.
    let (status, body) = login_page_answer(&app, "ann", "correct-horse").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(refused(&body));
    assert!(!body.contains("locked"));
}

/// Post the login form; the status and the page that comes back.
async fn login_page_answer(app: &axum::Router, user: &str, pw: &str) -> (StatusCode, String) {
    let (_, h, _) = send(app, get("/login", "")).await;
    let csrf = set_cookie_value(&h, "camfleet_login_csrf").unwrap();
    let form = format!("username={user}&password={pw}&csrf={csrf}");
    let (status, _, body) = send(
        app,
        post_form("/login", &format!("camfleet_login_csrf={csrf}"), &form),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn device_list_page_and_api_show_adopted_cameras() {
    let (app, state) = app().await;
    make_user(&state, "viewer", Role::Viewer).await;
    let f = fleet(3, "").await;
    for i in 0..3 {
        adopt_into(&state, &f, i).await;
    }
    let (_, cookie) = login(&app, "viewer", "correct-horse").await;
    let (status, _, page) = send(&app, get("/devices", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("SimCam-00000") && page.contains("SimCam-00002"));
    // `%` and `_` in the search are literal characters, not wildcards.
    let (_, _, json) = send(&app, get("/api/v1/devices?q=simcam_0000%25", &cookie)).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["total"],
        0,
        "{json}"
    );
    let (_, _, json) = send(
        &app,
        get("/api/v1/devices?q=simcam-00001&per_page=10", &cookie),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total"], 1, "{json}");
    assert_eq!(v["devices"][0]["name"], "SimCam-00001");
    let id = v["devices"][0]["id"].as_i64().unwrap();
    let (status, _, page) = send(&app, get(&format!("/devices/{id}"), &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Profile_1") && page.contains("device.adopt"));
    assert!(!page.contains("admin:admin"), "no credentials on the page");
    let (status, _, _) = send(&app, get("/devices/99999", &cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    f.shutdown().await;
}

#[tokio::test]
async fn technician_discovers_and_adopts_and_sees_failures_per_device() {
    let port = free_udp_port();
    let (app, state) = app_with_wsd_port(port).await;
    make_user(&state, "tech", Role::Technician).await;
    let mut cfg = camfleet::sim::FleetConfig::new(3, 0);
    cfg.wsd = Some(camfleet::sim::WsdConfig {
        port,
        max_delay: std::time::Duration::from_millis(100),
        ..Default::default()
    });
    let f = fleet_with(cfg).await;
    let (_, cookie) = login(&app, "tech", "correct-horse").await;
    let (_, _, page) = send(&app, get("/discovery", &cookie)).await;
    let csrf = csrf_of(&page);
    // A form error names the field and changes nothing.
    let (status, _, page) = send(
        &app,
        post_form(
            "/discovery",
            &cookie,
            &format!("csrf={csrf}&kind=cidr&target=10.0.0.0/8"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Range: at most a /16"));
    let (status, h, _) = send(
        &app,
        post_form(
            "/discovery",
            &cookie,
            &format!("csrf={csrf}&kind=multicast&target="),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let run_url = h[header::LOCATION].to_str().unwrap().to_string();
    let events = follow(&app, &run_url, &cookie).await;
    assert!(events.contains("3 found"), "{events}");
    let (_, _, page) = send(&app, get(&run_url, &cookie)).await;
    assert_eq!(
        page.matches("name=\"result\"").count(),
        3,
        "three new cameras to select"
    );
    let ids: Vec<String> = page
        .match_indices("name=\"result\" value=\"")
        .map(|(i, m)| page[i + m.len()..].split('"').next().unwrap().to_string())
        .collect();
    let selection: String = ids.iter().map(|i| format!("&result={i}")).collect();
    // No user name: refused with the field named.
    let (status, _, page) = send(
        &app,
        post_form(
            &format!("{run_url}/adopt"),
            &cookie,
            &format!("csrf={csrf}{selection}&username=&password="),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("User name:"));
    // Wrong common password, but the first row has its own right ones:
    // two devices say where they failed, one is adopted.
    let first = &ids[0];
    let (status, h, _) = send(
        &app,
        post_form(
            &format!("{run_url}/adopt"),
            &cookie,
            &format!(
                "csrf={csrf}{selection}&username=admin&password=wrong&username_{first}=admin&password_{first}=admin"
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let events = follow(&app, &run_url, &cookie).await;
    assert!(events.contains("1 adopted, 2 failed"), "{events}");
    // Back on the run: the notice is not green, and the form keeps what
    // was typed for a retry (site and user name).
    let back = h[header::LOCATION].to_str().unwrap().to_string();
    assert!(
        back.contains("site=") && back.contains("username=admin"),
        "{back}"
    );
    let (_, _, page) = send(&app, get(&back, &cookie)).await;
    assert!(page.contains("class=\"notice partial\""), "{page}");
    let (_, _, page) = send(&app, get(&run_url, &cookie)).await;
    assert_eq!(
        page.matches("failed at step identity: unauthorized")
            .count(),
        2,
        "{page}"
    );
    assert_eq!(page.matches(">adopted</a>").count(), 1, "{page}");
    // The dashboard shows the two that failed, with why and the run.
    let (_, _, dash) = send(&app, get("/", &cookie)).await;
    assert!(
        dash.contains("Adoptions that failed <small>2 this week</small>"),
        "{dash}"
    );
    assert_eq!(
        dash.matches("failed at step identity: unauthorized")
            .count(),
        2,
        "{dash}"
    );
    assert!(dash.contains(&format!("href=\"{run_url}\"")), "{dash}");
    // The rest with the right password.
    let rest: String = ids[1..].iter().map(|i| format!("&result={i}")).collect();
    send(
        &app,
        post_form(
            &format!("{run_url}/adopt"),
            &cookie,
            &format!("csrf={csrf}{rest}&username=admin&password=admin"),
        ),
    )
    .await;
    follow(&app, &run_url, &cookie).await;
    let (_, _, page) = send(&app, get(&run_url, &cookie)).await;
    assert_eq!(page.matches(">adopted</a>").count(), 3, "{page}");
    // The run itself now lists them as managed, with nothing left to select.
    assert_eq!(page.matches(">managed</a>").count(), 3, "{page}");
    assert_eq!(page.matches("name=\"result\"").count(), 0);
    // Adopted since: off the dashboard.
    let (_, _, dash) = send(&app, get("/", &cookie)).await;
    assert!(!dash.contains("failed-adoptions"), "{dash}");
    let (_, _, json) = send(&app, get("/api/v1/devices", &cookie)).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["total"],
        3
    );
    // A second run sees them as managed.
    let (_, h, _) = send(
        &app,
        post_form(
            "/discovery",
            &cookie,
            &format!("csrf={csrf}&kind=multicast&target="),
        ),
    )
    .await;
    let second = h[header::LOCATION].to_str().unwrap().to_string();
    follow(&app, &second, &cookie).await;
    let (_, _, page) = send(&app, get(&second, &cookie)).await;
    assert_eq!(page.matches(">managed</a>").count(), 3, "{page}");
    f.shutdown().await;
}

#[tokio::test]
async fn viewer_cannot_run_discovery() {
    let (app, state) = app().await;
    make_user(&state, "val", Role::Viewer).await;
    let (_, cookie) = login(&app, "val", "correct-horse").await;
    let (status, _, page) = send(&app, get("/discovery", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("Discover</button>"), "no form for a viewer");
    let csrf = csrf_of(&page);
    let (status, _, _) = send(
        &app,
        post_form(
            "/discovery",
            &cookie,
            &format!("csrf={csrf}&kind=multicast"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn audit_log_is_for_admins_and_filters() {
    let (app, state) = app().await;
    make_user(&state, "root", Role::Admin).await;
    make_user(&state, "val", Role::Viewer).await;
    let (_, viewer) = login(&app, "val", "correct-horse").await;
    assert_eq!(
        send(&app, get("/audit", &viewer)).await.0,
        StatusCode::FORBIDDEN
    );
    let _ = login(&app, "val", "wrong-password").await;
    let (_, admin) = login(&app, "root", "correct-horse").await;
    let (status, _, page) = send(&app, get("/audit?action=login.failed", &admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("login.failed"));
    assert!(!page.contains("<td>user.create</td>"), "filtered out");
    let (_, _, page) = send(&app, get("/audit?action=user.", &admin)).await;
    assert_eq!(page.matches("<td>user.create</td>").count(), 2);
}

#[tokio::test]
async fn cached_device_count_follows_adoptions() {
    let (app, state) = app().await;
    make_user(&state, "val", Role::Viewer).await;
    let (_, cookie) = login(&app, "val", "correct-horse").await;
    let total =
        |json: String| serde_json::from_str::<serde_json::Value>(&json).unwrap()["total"].clone();
    assert_eq!(
        total(send(&app, get("/api/v1/devices", &cookie)).await.2),
        0
    );
    let f = fleet(1, "").await;
    adopt_into(&state, &f, 0).await;
    // The count was cached at 0 a moment ago; the write invalidates it.
    assert_eq!(
        total(send(&app, get("/api/v1/devices", &cookie)).await.2),
        1
    );
    f.shutdown().await;
}

#[tokio::test]
async fn procurement_edits_inventory_fields_with_validation_and_audit() {
    let (app, state) = app().await;
    make_user(&state, "pam", Role::Procurement).await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let url = format!("/devices/{}/inventory", d.id);

    let (_, viewer) = login(&app, "val", "correct-horse").await;
    assert_eq!(
        send(&app, get(&url, &viewer)).await.0,
        StatusCode::FORBIDDEN
    );

    let (_, cookie) = login(&app, "pam", "correct-horse").await;
    let (status, _, page) = send(&app, get(&url, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&page);
    // Bad date and cost: refused, every bad field named, nothing stored.
    let bad = format!("csrf={csrf}&name=Lobby&asset_tag=A-1&purchase_date=2026-02-30&cost=lots");
    let (status, _, page) = send(&app, post_form(&url, &cookie, &bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Nothing was saved"));
    assert!(page.contains("a date as YYYY-MM-DD") && page.contains("an amount such as 1234.50"));
    assert!(page.contains("value=\"Lobby\""), "what was typed is kept");
    let stored = camfleet::db::entities::device::Entity::find_by_id(d.id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.asset_tag, "");
    // Good values: stored, audited as before → after of what changed.
    let good = format!(
        "csrf={csrf}&name=Lobby&asset_tag=A-1&purchase_date=2026-01-15&cost=1234.5&warranty_end=2029-01-15&supplier=Acme+Ltd"
    );
    let (status, _, _) = send(&app, post_form(&url, &cookie, &good)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let stored = camfleet::db::entities::device::Entity::find_by_id(d.id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.cost_cents, Some(123450));
    assert_eq!(stored.warranty_end.unwrap().to_string(), "2029-01-15");
    assert!(
        stored.search_text.contains("a-1"),
        "asset tag is searchable"
    );
    let entry = camfleet::db::entities::audit_log::Entity::find()
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "device.inventory")
        .unwrap();
    assert_eq!(entry.actor, "pam");
    let after = entry.after.unwrap();
    assert_eq!(after["cost"], "1234.50");
    assert!(
        after.get("notes").is_none(),
        "unchanged fields are not listed"
    );
    assert_eq!(entry.before.unwrap()["asset_tag"], "");
    f.shutdown().await;
}

#[tokio::test]
async fn inventory_csv_is_quoted_and_defused() {
    let (app, state) = app().await;
    make_user(&state, "pam", Role::Procurement).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let form = camfleet::fleet::inventory::InventoryForm {
        name: "=HYPERLINK(\"http://evil\")".into(),
        notes: "line one\nline \"two\", with comma".into(),
        ..Default::default()
    };
    state
        .inventory
        .edit_inventory(
            d.id,
            &form,
            &camfleet::fleet::access::Scope::All,
            &Actor::operator("pam"),
        )
        .await
        .unwrap();
    let (_, cookie) = login(&app, "pam", "correct-horse").await;
    let (status, h, csv) = send(&app, get("/inventory.csv", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let mut lines = csv.split("\r\n");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("id,name,site,manufacturer")
    );
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
        "{csv}"
    );
    assert!(
        csv.contains("\"line one\nline \"\"two\"\", with comma\""),
        "{csv}"
    );
    f.shutdown().await;
}

/// A multipart body with the CSRF token and one file.
fn multipart(path: &str, cookie: &str, csrf: &str, file: &str) -> Request<Body> {
    let b = "----camfleetboundary";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"inv.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{b}--\r\n"
    );
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={b}"),
        )
        .body(Body::from(body))
        .unwrap()
}

fn form_value(page: &str, name: &str) -> String {
    let start = page
        .find(&format!("name=\"{name}\" hidden>"))
        .unwrap_or_else(|| panic!("no {name} field"))
        + format!("name=\"{name}\" hidden>").len();
    let end = page[start..].find("</textarea>").unwrap() + start;
    // askama escaped it; undo the few escapes our CSV can contain.
    page[start..end]
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

async fn put_in_site(state: &AppState, device: i32, site: &str) {
    let d = state
        .inventory
        .get_scoped(device, &camfleet::fleet::access::Scope::All)
        .await
        .unwrap()
        .unwrap();
    let mut form = camfleet::fleet::inventory::InventoryForm::from_device(&d, "");
    form.site = site.into();
    assert!(matches!(
        state
            .inventory
            .edit_inventory(
                device,
                &form,
                &camfleet::fleet::access::Scope::All,
                &Actor::system()
            )
            .await
            .unwrap(),
        camfleet::fleet::inventory::InventoryEdit::Saved(_)
    ));
}

#[tokio::test]
async fn a_user_limited_to_a_site_sees_and_touches_only_that_site() {
    let (app, state) = app().await;
    let f = fleet(3, "").await;
    let north_dev = adopt_into(&state, &f, 0).await.id;
    let south_dev = adopt_into(&state, &f, 1).await.id;
    let loose_dev = adopt_into(&state, &f, 2).await.id;
    let north = make_site(&state, "North").await;
    let south = make_site(&state, "South").await;
    put_in_site(&state, north_dev, "North").await;
    put_in_site(&state, south_dev, "South").await;
    let nora = make_user(&state, "nora", Role::Technician).await;
    state
        .users
        .update(
            nora.id,
            camfleet::fleet::users::Access {
                role: Role::Technician,
                disabled: false,
                all_sites: false,
                sites: [north].to_vec(),
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let (_, cookie) = login(&app, "nora", "correct-horse").await;
    let (_, _, json) = send(&app, get("/api/v1/devices", &cookie)).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total"], 1, "{json}");
    assert_eq!(v["devices"][0]["id"], north_dev);
    let (_, _, page) = send(&app, get("/devices", &cookie)).await;
    assert!(page.contains(&format!("/devices/{north_dev}\"")));
    assert!(!page.contains(&format!("/devices/{south_dev}\"")));
    // Another site's device, or one with no site, does not exist for her.
    for id in [south_dev, loose_dev] {
        for path in [
            format!("/devices/{id}"),
            format!("/api/v1/devices/{id}"),
            format!("/devices/{id}/inventory"),
            format!("/devices/{id}/snapshot"),
        ] {
            let (status, _, _) = send(&app, get(&path, &cookie)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
    let (_, _, csv) = send(&app, get("/inventory.csv", &cookie)).await;
    assert_eq!(csv.trim_end().lines().count(), 2, "{csv}");
    let (_, _, json) = send(&app, get("/api/v1/sites", &cookie)).await;
    assert!(json.contains("North") && !json.contains("South"), "{json}");
    // She cannot move her device to a site that is not hers.
    let (_, _, page) = send(
        &app,
        get(&format!("/devices/{north_dev}/inventory"), &cookie),
    )
    .await;
    let csrf = csrf_of(&page);
    let (status, _, page) = send(
        &app,
        post_form(
            &format!("/devices/{north_dev}/inventory"),
            &cookie,
            &format!("csrf={csrf}&name=x&site=South"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("outside the sites you may manage"), "{page}");
    // Bulk actions skip what she cannot see.
    let (_, _, page) = send(
        &app,
        post_form(
            "/devices/bulk",
            &cookie,
            &format!("csrf={csrf}&device={south_dev}&action=site&site={north}"),
        ),
    )
    .await;
    assert!(page.contains("Moved 0 of 0"), "{page}");
    let d = state
        .inventory
        .get_scoped(south_dev, &camfleet::fleet::access::Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.site_id, Some(south));
    // The dashboard counts only her site.
    let (_, _, page) = send(&app, get("/", &cookie)).await;
    assert!(page.contains("North") && !page.contains("South"), "{page}");
    f.shutdown().await;
}

#[tokio::test]
async fn role_by_route_matrix() {
    let (app, state) = app().await;
    let mut cookies = Vec::new();
    for role in Role::ALL {
        let name = format!("u-{}", role.as_str());
        make_user(&state, &name, role).await;
        cookies.push((role, login(&app, &name, "correct-horse").await.1));
    }
    // (method, path, form, roles allowed). A refused role gets 403.
    let matrix: &[(&str, &str, &str, &[Role])] = &[
        ("GET", "/users", "", &[Role::Admin]),
        ("GET", "/sites", "", &[Role::Admin]),
        ("GET", "/audit", "", &[Role::Admin]),
        ("POST", "/sites", "name=Depot", &[Role::Admin]),
        (
            "POST",
            "/users",
            "username=zed&password=correct-horse&role=viewer",
            &[Role::Admin],
        ),
        (
            "POST",
            "/discovery",
            "kind=unicast&target=",
            &[Role::Admin, Role::Technician],
        ),
        (
            "GET",
            "/inventory/import",
            "",
            &[Role::Admin, Role::Technician, Role::Procurement],
        ),
        ("GET", "/devices", "", &Role::ALL),
        ("GET", "/inventory", "", &Role::ALL),
        ("GET", "/account", "", &Role::ALL),
        ("GET", "/api/v1/devices", "", &Role::ALL),
    ];
    for (method, path, form, allowed) in matrix {
        for (role, cookie) in &cookies {
            let (_, _, page) = send(&app, get("/account", cookie)).await;
            let csrf = csrf_of(&page);
            let req = if *method == "GET" {
                get(path, cookie)
            } else {
                post_form(path, cookie, &format!("csrf={csrf}&{form}"))
            };
            let (status, _, body) = send(&app, req).await;
            if allowed.contains(role) {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {method} {path}: {body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role:?} {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn csv_import_round_trips_shows_a_dry_run_and_never_half_applies() {
    let (app, state) = app().await;
    make_user(&state, "pam", Role::Procurement).await;
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    let b = adopt_into(&state, &f, 1).await;
    make_site(&state, "North").await;
    let (_, cookie) = login(&app, "pam", "correct-horse").await;
    let (_, _, page) = send(&app, get("/inventory/import", &cookie)).await;
    let csrf = csrf_of(&page);
    // Round trip: our own export changes nothing.
    let (_, _, export) = send(&app, get("/inventory.csv", &cookie)).await;
    let (status, _, page) = send(
        &app,
        multipart(
            &format!("/inventory/import?csrf={csrf}"),
            &cookie,
            &csrf,
            &export,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("<b>0</b> change a device, 2 change nothing"),
        "{page}"
    );
    // A real change: shown as before → after, not written by the dry run.
    let file = format!(
        "id,site,warranty_end,cost,notes\r\n{},North,2027-03-31,199.90,\"=cmd|' /C calc'!A0\"\r\n",
        a.id
    );
    let (_, _, page) = send(
        &app,
        multipart(
            &format!("/inventory/import?csrf={csrf}"),
            &cookie,
            &csrf,
            &file,
        ),
    )
    .await;
    assert!(page.contains("<b>1</b> change a device"), "{page}");
    assert!(
        page.contains("warranty_end: <del></del> → <ins>2027-03-31</ins>"),
        "{page}"
    );
    let stored = |id| {
        let inv = &state.inventory;
        async move {
            inv.get_scoped(id, &camfleet::fleet::access::Scope::All)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(stored(a.id).await.warranty_end, None);
    // Confirm: applied.
    let data = form_value(&page, "data");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("data", &data)
        .finish();
    let (status, _, page) = send(&app, post_form("/inventory/import/apply", &cookie, &form)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let d = stored(a.id).await;
    assert_eq!(d.warranty_end.unwrap().to_string(), "2027-03-31");
    assert_eq!(d.cost_cents, Some(19990));
    assert!(d.site_id.is_some());
    assert_eq!(d.notes, "=cmd|' /C calc'!A0", "kept as text, it is data");
    // The device page shows what procurement keeps.
    let (_, _, page) = send(&app, get(&format!("/devices/{}", a.id), &cookie)).await;
    assert!(page.contains("<dt>Cost</dt><dd>199.90</dd>"), "{page}");
    assert!(
        page.contains("<dt>Warranty end</dt><dd>2027-03-31</dd>"),
        "{page}"
    );
    // The warranty view exports as it is shown.
    let (_, _, page) = send(&app, get("/inventory?view=warranty&days=900", &cookie)).await;
    assert!(
        page.contains("/inventory.csv?warranty_within=900&amp;sort=warranty_end"),
        "{page}"
    );
    let (status, _, csv) = send(
        &app,
        get(
            "/inventory.csv?warranty_within=900&sort=warranty_end",
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 2, "header and the one device: {csv}");
    // One bad row among good ones: rejected with reasons, nothing written.
    let file = format!(
        "id,warranty_end,supplier\r\n{},2028-01-01,Acme\r\n{},2028-02-30,Acme\r\n999999,2028-01-01,Acme\r\n",
        a.id, b.id
    );
    let (_, _, page) = send(
        &app,
        multipart(
            &format!("/inventory/import?csrf={csrf}"),
            &cookie,
            &csrf,
            &file,
        ),
    )
    .await;
    assert!(page.contains("<b class=\"error\">2</b> rejected"), "{page}");
    assert!(
        page.contains("warranty_end: a date as YYYY-MM-DD"),
        "{page}"
    );
    assert!(page.contains("id: no device 999999"), "{page}");
    assert!(!page.contains("/inventory/import/apply"), "no apply button");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("data", &file)
        .finish();
    let (status, _, page) = send(&app, post_form("/inventory/import/apply", &cookie, &form)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("nothing was changed"), "{page}");
    assert_eq!(
        stored(a.id).await.supplier,
        "",
        "the good row was not applied"
    );
    // A misspelt column rejects the file rather than dropping data.
    let file = format!("id,warranty_ends\r\n{},2028-01-01\r\n", a.id);
    let (_, _, page) = send(
        &app,
        multipart(
            &format!("/inventory/import?csrf={csrf}"),
            &cookie,
            &csrf,
            &file,
        ),
    )
    .await;
    assert!(
        page.contains("unknown column &#34;warranty_ends&#34;")
            || page.contains("unknown column &quot;warranty_ends&quot;"),
        "{page}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn api_tokens_act_as_their_user_until_revoked_or_disabled() {
    let (app, state) = app().await;
    let u = make_user(&state, "script", Role::Viewer).await;
    let (_, cookie) = login(&app, "script", "correct-horse").await;
    let (_, _, page) = send(&app, get("/account", &cookie)).await;
    let csrf = csrf_of(&page);
    let (_, _, page) = send(
        &app,
        post_form(
            "/account",
            &cookie,
            &format!("csrf={csrf}&action=create&name=inventory-sync&days=30"),
        ),
    )
    .await;
    let i = page.find("<code id=\"new-token\">").unwrap() + "<code id=\"new-token\">".len();
    let token = page[i..].split('<').next().unwrap().to_string();
    assert!(token.starts_with("cf_"));
    let bearer = |path: &str, token: &str| {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, _) = send(&app, bearer("/api/v1/devices", &token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, bearer("/api/v1/devices", "cf_forged")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The token has the user's role: a viewer's token cannot reach admin pages.
    let (status, _, _) = send(&app, bearer("/users", &token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Disabled user: the token stops working (cached logins are dropped).
    let _admin = make_user(&state, "root", Role::Admin).await;
    state
        .users
        .update(
            u.id,
            camfleet::fleet::users::Access {
                role: Role::Viewer,
                disabled: true,
                all_sites: false,
                sites: vec![],
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    state.auth_cache.clear();
    let (status, _, _) = send(&app, bearer("/api/v1/devices", &token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    state
        .users
        .update(
            u.id,
            camfleet::fleet::users::Access {
                role: Role::Viewer,
                disabled: false,
                all_sites: false,
                sites: vec![],
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    state.auth_cache.clear();
    let (status, _, _) = send(&app, bearer("/api/v1/devices", &token)).await;
    assert_eq!(status, StatusCode::OK);
    // Revoked: gone.
    let tid = state.tokens.of_user(u.id).await.unwrap()[0].id;
    let (_, cookie) = login(&app, "script", "correct-horse").await;
    let (_, _, page) = send(&app, get("/account", &cookie)).await;
    let csrf = csrf_of(&page);
    send(
        &app,
        post_form(
            "/account",
            &cookie,
            &format!("csrf={csrf}&action=revoke&token={tid}"),
        ),
    )
    .await;
    let (status, _, _) = send(&app, bearer("/api/v1/devices", &token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_manages_users_and_a_disabled_user_is_logged_out() {
    let (app, state) = app().await;
    make_user(&state, "root", Role::Admin).await;
    let north = make_site(&state, "North").await;
    let (_, admin) = login(&app, "root", "correct-horse").await;
    let (_, _, page) = send(&app, get("/users", &admin)).await;
    let csrf = csrf_of(&page);
    // Validation names the field; nothing is created.
    let (status, _, page) = send(
        &app,
        post_form(
            "/users",
            &admin,
            &format!("csrf={csrf}&username=tess&password=short&role=technician"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("password: at least 10 characters"), "{page}");
    assert_eq!(state.users.count().await.unwrap(), 1);
    let (status, _, _) = send(
        &app,
        post_form(
            "/users",
            &admin,
            &format!(
                "csrf={csrf}&username=tess&password=correct-horse&role=technician&site={north}"
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = send(&app, get("/users", &admin)).await;
    assert!(page.contains("tess") && page.contains("North"), "{page}");
    let tess = state
        .users
        .list(&Actor::system())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "tess")
        .unwrap();
    assert_eq!(state.users.sites_of(tess.id).await.unwrap(), vec![north]);
    let (_, tess_cookie) = login(&app, "tess", "correct-horse").await;
    let (status, _, _) = send(&app, get("/devices", &tess_cookie)).await;
    assert_eq!(status, StatusCode::OK);
    // The admin cannot lock themself out.
    let me = state
        .users
        .list(&Actor::system())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "root")
        .unwrap();
    let (status, _, page) = send(
        &app,
        post_form(
            &format!("/users/{}", me.id),
            &admin,
            &format!("csrf={csrf}&action=update&role=viewer"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("cannot demote or disable your own account"));
    // Disabling tess ends her session at once.
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("/users/{}", tess.id),
            &admin,
            &format!("csrf={csrf}&action=update&role=technician&disabled=on"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, h, _) = send(&app, get("/devices", &tess_cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(h[header::LOCATION].to_str().unwrap().starts_with("/login"));
    // Audited before → after.
    let (_, _, page) = send(
        &app,
        get(
            &format!("/audit?target_kind=user&target_id={}", tess.id),
            &admin,
        ),
    )
    .await;
    assert!(page.contains("user.update"), "{page}");
}

#[tokio::test]
async fn openapi_describes_every_api_route() {
    let (app, state) = app().await;
    make_user(&state, "val", Role::Viewer).await;
    let (_, cookie) = login(&app, "val", "correct-horse").await;
    let (status, _, json) = send(&app, get("/api/openapi.json", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    // Every operation the API serves is in the document (they are built
    // from the same declarations), and there is one for each UI action.
    let mut n = 0;
    for (method, path) in camfleet::web::api::operations() {
        let p = paths
            .get(&path)
            .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"));
        assert!(p.get(method.to_lowercase()).is_some(), "{method} {path}");
        n += 1;
    }
    assert!(n >= 50, "{n} operations");
    // The document is readable without a login.
    let (status, _, anon) = send(&app, get("/api/openapi.json", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(anon, json);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn snapshots_are_fetched_by_the_server_and_cached() {
    let (app, state) = app().await;
    make_user(&state, "val", Role::Viewer).await;
    // Camera 0 needs Digest for its snapshot; camfleet answers with the
    // stored credentials, which never reach the browser.
    let f = fleet(1, "digest-md5").await;
    let d = adopt_into(&state, &f, 0).await;
    let (_, cookie) = login(&app, "val", "correct-horse").await;
    let path = format!("/devices/{}/snapshot", d.id);
    let before = f.cameras()[0]
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let (status, h, body) = send(&app, get(&path, &cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h[header::CONTENT_TYPE], "image/bmp");
    let after_first = f.cameras()[0]
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(after_first > before);
    let (status, _, _) = send(&app, get(&path, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        f.cameras()[0]
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        after_first,
        "the second view came from the cache"
    );
    // The device page links the image, never a camera URL with credentials.
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &cookie)).await;
    assert!(page.contains(&path));
    assert!(!page.contains("admin:admin@"));
    f.shutdown().await;
}

#[tokio::test]
async fn a_second_login_page_keeps_the_first_pages_token_valid() {
    // Found by the Chromium test: a browser that loads the login page twice
    // (two tabs, a reload) must not invalidate the form it shows.
    let (app, state) = app().await;
    make_user(&state, "tab", Role::Viewer).await;
    let (_, h, first) = send(&app, get("/login", "")).await;
    let cookie = set_cookie_value(&h, "camfleet_login_csrf").unwrap();
    let jar = format!("camfleet_login_csrf={cookie}");
    let (_, h2, _) = send(&app, get("/login", &jar)).await;
    assert_eq!(
        set_cookie_value(&h2, "camfleet_login_csrf").as_deref(),
        Some(cookie.as_str())
    );
    let csrf = csrf_of(&first);
    let (status, _, _) = send(
        &app,
        post_form(
            "/login",
            &jar,
            &format!("username=tab&password=correct-horse&csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn search_follows_renames_through_the_text_index() {
    let (app, state) = app().await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    adopt_into(&state, &f, 1).await;
    let (_, cookie) = login(&app, "val", "correct-horse").await;
    let total = |q: &str| {
        let app = app.clone();
        let cookie = cookie.clone();
        let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        async move {
            let (_, _, json) = send(&app, get(&format!("/api/v1/devices?q={q}"), &cookie)).await;
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["total"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(total("SimCam").await, 2, "case-insensitive, indexed");
    assert_eq!(total("m-00001").await, 1);
    assert_eq!(total("00").await, 2, "short text: a scan, same answer");
    assert_eq!(total("sim\"cam").await, 0, "quotes are literal");
    for name in ["Gate Alpha", "Loading Dock East"] {
        let mut form = camfleet::fleet::inventory::InventoryForm::from_device(&a, "");
        form.name = name.into();
        state
            .inventory
            .edit_inventory(
                a.id,
                &form,
                &camfleet::fleet::access::Scope::All,
                &Actor::system(),
            )
            .await
            .unwrap();
    }
    assert_eq!(total("dock east").await, 1, "the new name is indexed");
    assert_eq!(total("gate alpha").await, 0, "the old name is gone");
    f.shutdown().await;
}

#[tokio::test]
async fn scripts_edit_inventory_import_csv_and_start_discovery_through_the_api() {
    let (app, state) = app().await;
    let pam = make_user(&state, "pam", Role::Procurement).await;
    let (token, _) = state
        .tokens
        .create(pam.id, "sync", None, &Actor::system())
        .await
        .unwrap();
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let call = |method: &str, path: &str, ct: &str, body: String| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap()
    };
    // PATCH: only the given fields change; a bad field changes nothing.
    let path = format!("/api/v1/devices/{}/inventory", d.id);
    let (status, _, json) = send(
        &app,
        call(
            "PATCH",
            &path,
            "application/json",
            r#"{"asset_tag": "A-17", "cost": "12.5"}"#.into(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["asset_tag"].as_str(), v["cost_cents"].as_i64()),
        (Some("A-17"), Some(1250))
    );
    assert_eq!(v["name"], d.name.as_str(), "left out: kept");
    let (status, _, json) = send(
        &app,
        call(
            "PATCH",
            &path,
            "application/json",
            r#"{"asset_tag": "B-1", "warranty_end": "soon"}"#.into(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json.contains("warranty_end"), "{json}");
    let (_, _, json) = send(
        &app,
        call(
            "GET",
            &format!("/api/v1/devices/{}", d.id),
            "",
            String::new(),
        ),
    )
    .await;
    assert!(json.contains("\"A-17\""), "unchanged: {json}");
    // Import: dry run by default, then applied.
    let csv = format!("id,supplier\r\n{},Acme\r\n", d.id);
    let (status, _, json) = send(
        &app,
        call("POST", "/api/v1/inventory/import", "text/csv", csv.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(json.contains("\"supplier\":[\"\",\"Acme\"]"), "{json}");
    let (status, _, _) = send(
        &app,
        call(
            "POST",
            "/api/v1/inventory/import?dry_run=false",
            "text/csv",
            csv,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, json) = send(
        &app,
        call(
            "GET",
            &format!("/api/v1/devices/{}", d.id),
            "",
            String::new(),
        ),
    )
    .await;
    assert!(json.contains("\"supplier\":\"Acme\""), "{json}");
    // Procurement may not start discoveries.
    let (status, _, _) = send(
        &app,
        call(
            "POST",
            "/api/v1/discovery",
            "application/json",
            r#"{"kind":"multicast"}"#.into(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A browser session must send its CSRF token in a header for API writes.
    let (_, cookie) = login(&app, "pam", "correct-horse").await;
    let req = Request::builder()
        .method("PATCH")
        .uri(&path)
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"asset_tag": "C-3"}"#))
        .unwrap();
    let (status, _, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    f.shutdown().await;
}

#[tokio::test]
async fn a_technician_token_starts_a_discovery_and_follows_it() {
    let port = free_udp_port();
    let (app, state) = app_with_wsd_port(port).await;
    let tech = make_user(&state, "tess", Role::Technician).await;
    let (token, _) = state
        .tokens
        .create(tech.id, "ci", Some(1), &Actor::system())
        .await
        .unwrap();
    let req = |method: &str, path: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _, json) = send(
        &app,
        req(
            "POST",
            "/api/v1/discovery",
            r#"{"kind":"cidr","target":"10.0.0.0/8"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json.contains("/16"), "{json}");
    let (status, _, json) = send(
        &app,
        req(
            "POST",
            "/api/v1/discovery",
            r#"{"kind":"unicast","target":"127.0.0.1"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    let id = serde_json::from_str::<serde_json::Value>(&json).unwrap()["id"]
        .as_i64()
        .unwrap();
    let (_, _, events) = send(&app, req("GET", &format!("/discovery/{id}/events"), "")).await;
    assert!(events.contains("event: end"), "{events}");
    let (_, _, json) = send(&app, req("GET", &format!("/api/v1/discovery/{id}"), "")).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["run"]["status"], "done", "{json}");
}

#[tokio::test]
async fn polled_health_shows_in_the_list_the_device_page_and_metrics() {
    let (app, state) = app().await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let poller = camfleet::fleet::poller::Poller::new(
        state.db.clone(),
        state.inventory.secrets(),
        transport(),
        state.clock.clone(),
        Default::default(),
    );
    let all = camfleet::db::entities::device::Entity::find()
        .all(&state.db)
        .await
        .unwrap();
    let r = poller.poll_devices(all).await.unwrap();
    assert_eq!(r.answered, 1);
    state.inventory.touch();
    let (_, cookie) = login(&app, "val", "correct-horse").await;
    let (_, _, page) = send(&app, get("/devices", &cookie)).await;
    assert!(
        page.contains("<th><a href=\"/devices?sort=latency\">Latency</a></th>"),
        "{page}"
    );
    assert!(page.contains(" ms</td>"), "{page}");
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &cookie)).await;
    assert!(
        page.contains("State history") && page.contains("<svg class=\"chart\""),
        "{page}"
    );
    // Availability, latency and drift over the range shown (24 h unless
    // another is picked).
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 3);
    assert!(page.contains("Latency, 24 h"), "{page}");
    let (status, h, body) = send(&app, get("/metrics", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        body.contains(&format!(
            "camfleet_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{body}"
    );
    assert!(
        body.contains("camfleet_devices{state=\"online\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE camfleet_recorded_bytes gauge"),
        "{body}"
    );
    assert!(
        body.contains("camfleet_recording_streams{state=\"not_recording\"} 0"),
        "{body}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn alerts_are_listed_within_scope_and_acknowledged_by_technicians() {
    use camfleet::fleet::health::HealthState;
    use camfleet::fleet::poller::Notice;
    let (app, state) = app().await;
    state.alerting.ensure_default_rules().await.unwrap();
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    let b = adopt_into(&state, &f, 1).await;
    let north = make_site(&state, "North").await;
    make_site(&state, "South").await;
    put_in_site(&state, a.id, "North").await;
    put_in_site(&state, b.id, "South").await;
    let r = state
        .alerting
        .process(&[
            Notice::Transition {
                device_id: a.id,
                from: HealthState::Online,
                to: HealthState::Offline,
                reason: "3 polls failed in a row".into(),
            },
            Notice::Transition {
                device_id: b.id,
                from: HealthState::Online,
                to: HealthState::Offline,
                reason: "3 polls failed in a row".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(r.opened.len(), 2);
    for (name, role) in [("tess", Role::Technician), ("val", Role::Viewer)] {
        let u = make_user(&state, name, role).await;
        state
            .users
            .update(
                u.id,
                camfleet::fleet::users::Access {
                    role,
                    disabled: false,
                    all_sites: false,
                    sites: [north].to_vec(),
                },
                &Actor::system(),
            )
            .await
            .unwrap();
    }
    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let (_, _, page) = send(&app, get("/alerts", &tess)).await;
    assert!(
        page.contains(&format!("/alerts/{}\"", r.opened[0])),
        "{page}"
    );
    assert!(
        !page.contains(&format!("/alerts/{}\"", r.opened[1])),
        "South's alert is not hers"
    );
    let (status, _, _) = send(&app, get(&format!("/alerts/{}", r.opened[1]), &tess)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, page) = send(&app, get(&format!("/alerts/{}", r.opened[0]), &tess)).await;
    let csrf = csrf_of(&page);
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("/alerts/{}", r.opened[0]),
            &tess,
            &format!("csrf={csrf}&action=acknowledge&note=driving+there"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = send(&app, get(&format!("/alerts/{}", r.opened[0]), &tess)).await;
    assert!(
        page.contains("acknowledged") && page.contains("driving there"),
        "{page}"
    );
    // A viewer reads but cannot act.
    let (_, val) = login(&app, "val", "correct-horse").await;
    let (_, _, page) = send(&app, get("/alerts", &val)).await;
    let csrf = csrf_of(&page);
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("/alerts/{}", r.opened[0]),
            &val,
            &format!("csrf={csrf}&action=resolve"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Metrics count them, within the scraper's sites: tess sees North's
    // (acknowledged), not South's open one, nor the process-wide counters.
    let (_, _, body) = send(&app, get("/metrics", &tess)).await;
    assert!(
        body.contains("camfleet_alerts{state=\"acknowledged\",severity=\"critical\"} 1")
            && !body.contains("state=\"open\""),
        "{body}"
    );
    assert!(!body.contains("camfleet_deliveries"), "{body}");
    f.shutdown().await;
}

#[tokio::test]
async fn admins_configure_channels_with_a_send_test_and_edit_rules() {
    let (app, state) = app().await;
    state.alerting.ensure_default_rules().await.unwrap();
    make_user(&state, "root", Role::Admin).await;
    // A receiver that answers 200.
    let hook = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, hook).await.unwrap() });
    let (_, cookie) = login(&app, "root", "correct-horse").await;
    let (_, _, page) = send(&app, get("/alerts/settings", &cookie)).await;
    let csrf = csrf_of(&page);
    let form = |pairs: &[(&str, &str)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("csrf", &csrf);
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let (status, _, page) = send(
        &app,
        post_form(
            "/alerts/channels",
            &cookie,
            &form(&[
                ("kind", "webhook"),
                ("name", "noc"),
                ("url", &url),
                ("secret", "short"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("secret: at least 16 characters"), "{page}");
    let (status, _, page) = send(
        &app,
        post_form(
            "/alerts/channels",
            &cookie,
            &form(&[
                ("kind", "email"),
                ("name", "mail"),
                ("host", "127.0.0.1"),
                ("port", "25"),
                ("security", "none"),
                ("from", "not an address"),
                ("to", "noc@example.test"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("from:"), "{page}");
    let (status, _, _) = send(
        &app,
        post_form(
            "/alerts/channels",
            &cookie,
            &form(&[
                ("kind", "webhook"),
                ("name", "noc"),
                ("url", &url),
                ("secret", "a-long-enough-secret"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let ch = camfleet::db::entities::notify_channel::Entity::find()
        .all(&state.db)
        .await
        .unwrap()[0]
        .clone();
    assert!(
        ch.sealed.is_some() && !ch.config.to_string().contains("a-long-enough-secret"),
        "secret sealed, not in config"
    );
    let (status, _, page) = send(
        &app,
        post_form(
            &format!("/alerts/channels/{}", ch.id),
            &cookie,
            &form(&[("action", "test")]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("started; its outcome shows with the channel"),
        "{page}"
    );
    // The test runs in the background; its outcome shows with the channel.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, _, page) = send(&app, get("/alerts/settings", &cookie)).await;
        if page.contains("test sent through &#34;noc&#34;") {
            break;
        }
        assert!(!page.contains("failed:"), "{page}");
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Rules: a bad cooldown is refused; a good edit is saved and audited.
    let rule = camfleet::db::entities::alert_rule::Entity::find()
        .all(&state.db)
        .await
        .unwrap()[0]
        .clone();
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("/alerts/rules/{}", rule.id),
            &cookie,
            &form(&[
                ("severity", "major"),
                ("cooldown_s", "-5"),
                ("enabled", "on"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let ch_id = ch.id.to_string();
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("/alerts/rules/{}", rule.id),
            &cookie,
            &form(&[
                ("severity", "major"),
                ("cooldown_s", "900"),
                ("enabled", "on"),
                ("channel", &ch_id),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = camfleet::db::entities::alert_rule::Entity::find_by_id(rule.id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.severity.as_str(), r.cooldown_s), ("major", 900));
    assert_eq!(r.channel_ids, serde_json::json!([ch.id]));
    let (_, _, page) = send(&app, get("/audit?action=rule.", &cookie)).await;
    assert!(page.contains("rule.update"));
}

#[tokio::test]
async fn firmware_matrix_and_site_poll_interval() {
    let (app, state) = app().await;
    make_user(&state, "root", Role::Admin).await;
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    adopt_into(&state, &f, 1).await;
    let (_, cookie) = login(&app, "root", "correct-horse").await;
    let (status, _, page) = send(&app, get("/firmware", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&a.model) && page.contains(&a.firmware),
        "{page}"
    );
    let link = format!(
        "/devices?manufacturer={}",
        url::form_urlencoded::byte_serialize(a.manufacturer.as_bytes()).collect::<String>()
    );
    assert!(
        page.contains(&link.replace('&', "&amp;")) || page.contains(&link),
        "{page}"
    );
    let north = make_site(&state, "North").await;
    let (_, _, page) = send(&app, get("/sites", &cookie)).await;
    let csrf = csrf_of(&page);
    let (status, _, page) = send(
        &app,
        post_form(
            &format!("/sites/{north}"),
            &cookie,
            &format!("csrf={csrf}&action=save&name=Renamed&description=&poll_interval_s=5"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("poll interval: 10–86400 seconds"), "{page}");
    assert_eq!(
        state.sites.list().await.unwrap()[0].name,
        "North",
        "nothing half-saved"
    );
    let (status, _, _) = send(
        &app,
        post_form(
            &format!("/sites/{north}"),
            &cookie,
            &format!("csrf={csrf}&action=save&name=North&description=&poll_interval_s=300"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        state.sites.list().await.unwrap()[0].poll_interval_s,
        Some(300)
    );
    f.shutdown().await;
}

#[tokio::test]
async fn technicians_set_a_device_poll_interval_and_viewers_cannot() {
    let (app, state) = app().await;
    make_user(&state, "tess", Role::Technician).await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let path = format!("/devices/{}/poll", d.id);
    let (_, val) = login(&app, "val", "correct-horse").await;
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &val)).await;
    assert!(!page.contains(&path), "no form for viewers");
    let csrf = csrf_of(&page);
    let (status, _, _) = send(
        &app,
        post_form(&path, &val, &format!("csrf={csrf}&poll_interval_s=30")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &tess)).await;
    let csrf = csrf_of(&page);
    let (status, _, body) = send(
        &app,
        post_form(&path, &tess, &format!("csrf={csrf}&poll_interval_s=3")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("10–86400"), "{body}");
    let (status, _, _) = send(
        &app,
        post_form(&path, &tess, &format!("csrf={csrf}&poll_interval_s=30")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let stored = state
        .inventory
        .get_scoped(d.id, &camfleet::fleet::access::Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.poll_interval_s, Some(30));
    f.shutdown().await;
}

#[tokio::test]
async fn admins_add_camera_event_rules_and_the_device_page_lists_events() {
    use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter};
    let (app, state) = app().await;
    state.alerting.ensure_default_rules().await.unwrap();
    make_user(&state, "root", Role::Admin).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let (_, cookie) = login(&app, "root", "correct-horse").await;
    let (_, _, page) = send(&app, get("/alerts/settings", &cookie)).await;
    assert!(page.contains("Camera storage failure"), "seeded event rule");
    let csrf = csrf_of(&page);
    let form = |pairs: &[(&str, &str)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("csrf", &csrf);
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let (status, _, page) = send(
        &app,
        post_form(
            "/alerts/rules",
            &cookie,
            &form(&[
                ("name", "CPU"),
                ("topic", "tns1:Monitoring <x>"),
                ("severity", "minor"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("topic: a topic path"), "{page}");
    let (status, _, _) = send(
        &app,
        post_form(
            "/alerts/rules",
            &cookie,
            &form(&[
                ("name", "CPU"),
                ("topic", "/Monitoring/ProcessorUsage/"),
                ("severity", "minor"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let rule = camfleet::db::entities::alert_rule::Entity::find()
        .filter(camfleet::db::entities::alert_rule::Column::Name.eq("CPU"))
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rule.kind.as_str(), rule.topic.as_str()),
        ("event_topic", "Monitoring/ProcessorUsage")
    );
    let (_, _, page) = send(&app, get("/audit?action=rule.", &cookie)).await;
    assert!(page.contains("rule.create"));

    // A stored camera event shows on the device page with its state.
    camfleet::db::entities::device_event::ActiveModel {
        device_id: sea_orm::Set(d.id),
        at: sea_orm::Set(chrono::Utc::now()),
        topic: sea_orm::Set("Device/HardwareFailure/StorageFailure".into()),
        operation: sea_orm::Set("Changed".into()),
        source: sea_orm::Set(serde_json::json!([["Token", "SD_DISK_1"]])),
        data: sea_orm::Set(serde_json::json!([["Failed", "true"]])),
        active: sea_orm::Set(Some(true)),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .unwrap();
    let (status, _, page) = send(&app, get(&format!("/devices/{}", d.id), &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Device/HardwareFailure/StorageFailure (Changed)"),
        "{page}"
    );
    assert!(page.contains("Token=SD_DISK_1 · Failed=true"), "{page}");
    assert!(page.contains("Subscription: starting"), "{page}");
    f.shutdown().await;
}

#[tokio::test]
async fn technicians_plan_apply_and_follow_a_provisioning_task() {
    let (app, state) = app().await;
    make_user(&state, "tech", Role::Technician).await;
    make_user(&state, "viewer", Role::Viewer).await;
    let f = fleet(3, "").await;
    let a = adopt_into(&state, &f, 0).await;
    let b = adopt_into(&state, &f, 1).await;
    // A third camera, outside the site planned for.
    let c = adopt_into(&state, &f, 2).await;
    // A technician's profile belongs to a site (shared ones are admins').
    let north = make_site(&state, "North").await.to_string();
    put_in_site(&state, a.id, "North").await;
    put_in_site(&state, b.id, "North").await;
    let (_, viewer) = login(&app, "viewer", "correct-horse").await;
    let (status, _, _) = send(&app, get("/provision", &viewer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, cookie) = login(&app, "tech", "correct-horse").await;
    let (status, _, page) = send(&app, get("/provision", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&page);
    let form = |pairs: &[(&str, &str)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("csrf", &csrf);
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    // Each bad field is named.
    let (status, _, page) = send(
        &app,
        post_form(
            "/provision/profiles",
            &cookie,
            &form(&[
                ("name", "North"),
                ("ntp_mode", "manual"),
                ("ntp_servers", ""),
                ("main_resolution", "big"),
                ("user_name", "operator"),
                ("user_level", "Operator"),
                ("user_password", "short"),
                ("dns_mode", "manual"),
                ("dns_servers", "not-an-ip"),
                ("hostname", "cam-{foo}"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for e in [
        "NTP servers: at least one for manual",
        "main stream resolution: WIDTHxHEIGHT",
        "user operator: password of at least 8 characters",
        "DNS servers: &#34;not-an-ip&#34; is not an IP address",
        "hostname pattern: unknown placeholder {foo}",
        // What was typed stays in the form.
        "value=\"cam-{foo}\"",
        // And each error is beside its field too.
        "value=\"not-an-ip\" size=\"40\"></label><span class=\"field-error\">DNS servers: &#34;not-an-ip&#34;",
        "placeholder=\"{site}-{model}-{serial}\" size=\"40\"></label><span class=\"field-error\">hostname pattern: unknown placeholder {foo}",
    ] {
        assert!(page.contains(e), "{e}: {page}");
    }
    let (status, h, _) = send(
        &app,
        post_form(
            "/provision/profiles",
            &cookie,
            &form(&[
                ("name", "North"),
                ("owner_site", &north),
                ("ntp_mode", "manual"),
                ("ntp_servers", "ntp1.example 192.0.2.10"),
                ("hostname", "cam-{id}"),
                ("main_resolution", "1280x720"),
                ("main_fps", "15"),
                ("rotate", "on"),
            ]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let profile_url = h[header::LOCATION].to_str().unwrap().to_string();
    let (_, _, page) = send(&app, get(&profile_url, &cookie)).await;
    assert!(page.contains("ntp1.example 192.0.2.10"), "{page}");
    // Plan for site North: per device, now → wanted; the site stays
    // selected, and Apply carries exactly the planned devices.
    let (status, _, page) = send(
        &app,
        post_form(
            &format!("{profile_url}/run"),
            &cookie,
            &form(&[("action", "plan"), ("site", &north)]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!("cam-{}", a.id)) && page.contains("will change"),
        "{page}"
    );
    assert!(!page.contains(&format!("cam-{}", c.id)), "{page}");
    assert!(
        page.contains(&format!("<option value=\"{north}\" selected>")),
        "{page}"
    );
    assert!(page.contains("Apply to these 2 devices"), "{page}");
    let planned: Vec<String> = page
        .split("<input type=\"hidden\" name=\"device\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(planned, vec![a.id.to_string(), b.id.to_string()]);
    // Apply without a plan's devices is refused, with the way forward.
    let (status, _, text) = send(
        &app,
        post_form(
            &format!("{profile_url}/run"),
            &cookie,
            &form(&[("action", "apply"), ("site", "")]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.contains("Apply follows a plan"), "{text}");
    // Apply the plan, follow the live progress to the end, see the outcome.
    let mut pairs: Vec<(&str, &str)> = vec![("action", "apply")];
    for id in &planned {
        pairs.push(("device", id));
    }
    let (status, h, _) = send(
        &app,
        post_form(&format!("{profile_url}/run"), &cookie, &form(&pairs)),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let task_url = h[header::LOCATION].to_str().unwrap().to_string();
    let events = follow(&app, &task_url, &cookie).await;
    assert!(events.contains("event: end"), "{events}");
    let (_, _, page) = send(&app, get(&task_url, &cookie)).await;
    assert!(page.contains("2 changed"), "{page}");
    let items = camfleet::db::entities::provision_item::Entity::find()
        .all(&state.db)
        .await
        .unwrap();
    let mut planned_ids: Vec<i32> = items.iter().map(|i| i.device_id).collect();
    planned_ids.sort_unstable();
    assert_eq!(planned_ids, vec![a.id, b.id], "exactly the planned devices");
    assert!(page.contains("Show new password once"), "{page}");
    let item = camfleet::db::entities::provision_item::Entity::find()
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.device_id == b.id)
        .unwrap();
    let item_id = item.id.to_string();
    let (_, _, page) = send(
        &app,
        post_form(
            &task_url,
            &cookie,
            &form(&[("action", "reveal"), ("item", &item_id)]),
        ),
    )
    .await;
    let cam_pw = f.cameras()[1]
        .state
        .lock()
        .unwrap()
        .password_of("admin")
        .unwrap()
        .to_string();
    assert!(page.contains(&format!("<code>{cam_pw}</code>")), "{page}");
    let (_, _, page) = send(
        &app,
        post_form(
            &task_url,
            &cookie,
            &form(&[("action", "reveal"), ("item", &item_id)]),
        ),
    )
    .await;
    assert!(!page.contains(&cam_pw), "shown once only");
    let (_, _, page) = send(&app, get("/audit?action=provision.", &viewer)).await;
    let _ = page;
    f.shutdown().await;
}

#[tokio::test]
async fn firmware_library_approval_and_a_rollout_from_the_pages() {
    use sea_orm::EntityTrait;
    let (app, state) = app().await;
    make_user(&state, "root", Role::Admin).await;
    make_user(&state, "tech", Role::Technician).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let (_, tech) = login(&app, "tech", "correct-horse").await;
    let (_, _, page) = send(&app, get("/firmware", &tech)).await;
    let csrf = csrf_of(&page);
    let image = camfleet::sim::config::sim_image("9.0.1", 2048);
    let multipart = |fields: &[(&str, &str)], file: &[u8]| {
        let b = "XBOUNDARYX";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fw.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        Request::post(format!("/firmware/images?csrf={csrf}"))
            .header(header::COOKIE, &tech)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={b}"),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _, page) = send(
        &app,
        multipart(
            &[
                ("csrf", &csrf),
                ("vendor", "Sim"),
                ("model", ""),
                ("version", "9.0.1"),
            ],
            &image,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("model: required"), "{page}");
    let (status, _, _) = send(
        &app,
        multipart(
            &[
                ("csrf", &csrf),
                ("vendor", "Sim"),
                ("model", &d.model),
                ("version", "9.0.1"),
                ("notes", "fixes"),
            ],
            &image,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let img = camfleet::db::entities::firmware_image::Entity::find()
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(img.size, 2048);
    assert_eq!(
        &state.storage.get(&img.storage_key).await.unwrap()[..],
        &image[..]
    );
    // Technicians cannot approve; admins can, and the page counts who is behind.
    let form = |c: &str, pairs: &[(&str, &str)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("csrf", c);
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let approve = format!("/firmware/images/{}", img.id);
    let (status, _, _) = send(
        &app,
        post_form(&approve, &tech, &form(&csrf, &[("action", "approve")])),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, root) = login(&app, "root", "correct-horse").await;
    let (_, _, page) = send(&app, get("/firmware", &root)).await;
    let rc = csrf_of(&page);
    let (status, _, _) = send(
        &app,
        post_form(&approve, &root, &form(&rc, &[("action", "approve")])),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = send(&app, get("/firmware", &tech)).await;
    assert!(
        page.contains("<td>9.0.1</td>") && page.contains("<b>1</b>"),
        "one device behind: {page}"
    );
    // A rollout: bad window refused, a good one created and shown.
    let (status, _, page) = send(
        &app,
        post_form(
            "/firmware/rollouts",
            &tech,
            &form(
                &csrf,
                &[
                    ("image", &img.id.to_string()),
                    ("day", "0"),
                    ("start_hour", "25"),
                    ("end_hour", "4"),
                    ("utc_offset", "0"),
                ],
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("window hours: 0–23"), "{page}");
    // A preview shows each device's wave and starts nothing.
    let (status, _, preview) = send(
        &app,
        post_form(
            "/firmware/rollouts",
            &tech,
            &form(
                &csrf,
                &[
                    ("image", &img.id.to_string()),
                    ("action", "preview"),
                    ("canary", "1"),
                ],
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(preview.contains("The waves, if started now"), "{preview}");
    assert!(preview.contains("<td>canary</td>"), "{preview}");
    assert_eq!(
        camfleet::db::entities::firmware_rollout::Entity::find()
            .all(&state.db)
            .await
            .unwrap()
            .len(),
        0,
        "a preview starts nothing"
    );
    // What was typed stays, to be corrected rather than typed again.
    assert!(page.contains("name=\"start_hour\" value=\"25\""), "{page}");
    assert!(page.contains("name=\"day\" value=\"0\" checked"), "{page}");
    assert!(
        page.contains(&format!("<option value=\"{}\" selected>", img.id)),
        "{page}"
    );
    let (status, h, _) = send(
        &app,
        post_form(
            "/firmware/rollouts",
            &tech,
            &form(&csrf, &[("image", &img.id.to_string()), ("canary", "1")]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let url = h[header::LOCATION].to_str().unwrap().to_string();
    let (_, _, page) = send(&app, get(&url, &tech)).await;
    assert!(
        page.contains("canary") && page.contains("pending"),
        "{page}"
    );
    let (status, _, _) = send(
        &app,
        post_form(&url, &tech, &form(&csrf, &[("action", "pause")])),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = send(&app, get(&url, &tech)).await;
    assert!(page.contains("status-paused"), "{page}");
    f.shutdown().await;
}

#[tokio::test]
async fn admins_schedule_jobs_see_the_next_runs_and_run_them_now() {
    let (app, state) = app().await;
    state.jobs.ensure_defaults().await.unwrap();
    make_user(&state, "root", Role::Admin).await;
    make_user(&state, "tech", Role::Technician).await;
    let (_, tech) = login(&app, "tech", "correct-horse").await;
    let (status, _, page) = send(&app, get("/jobs", &tech)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Retention sweep") && page.contains("Health sample rollup"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let form = |c: &str, pairs: &[(&str, &str)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("csrf", c);
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let fields = [
        ("name", "nightly rollup"),
        ("kind", "health_rollup"),
        ("schedule", "30 2 * * *"),
        ("timezone", "Europe/Berlin"),
        ("params", "{}"),
        ("missed_policy", "skip"),
        ("enabled", "on"),
    ];
    let (status, _, _) = send(&app, post_form("/jobs", &tech, &form(&csrf, &fields))).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "technicians do not change jobs"
    );
    let (_, root) = login(&app, "root", "correct-horse").await;
    let (_, _, page) = send(&app, get("/jobs", &root)).await;
    let rc = csrf_of(&page);
    let mut bad = fields;
    bad[2] = ("schedule", "every night");
    let (status, _, page) = send(&app, post_form("/jobs", &root, &form(&rc, &bad))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("schedule:"), "{page}");
    let (status, h, _) = send(&app, post_form("/jobs", &root, &form(&rc, &fields))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let url = h[header::LOCATION].to_str().unwrap().to_string();
    let (_, _, page) = send(&app, get(&url, &root)).await;
    // Five next runs, each at 02:30 Berlin (01:30 UTC in winter).
    assert_eq!(page.matches("01:30 UTC").count(), 5, "{page}");
    let (status, _, _) = send(
        &app,
        post_form(&url, &root, &form(&rc, &[("action", "run")])),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id: i32 = url.rsplit('/').next().unwrap().parse().unwrap();
    // The run is recorded (it may still be finishing).
    let runs = state.jobs.runs(id, 5).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, "manual");
}

#[tokio::test]
async fn recorded_segments_show_on_a_timeline_with_gaps_and_play_in_scope_only() {
    use sea_orm::ActiveModelTrait;
    let (app, state) = app().await;
    make_user(&state, "tech", Role::Technician).await;
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    let b = adopt_into(&state, &f, 1).await;
    make_site(&state, "Elsewhere").await;
    put_in_site(&state, b.id, "Elsewhere").await;
    let u = make_user(&state, "north", Role::Technician).await;
    let north = make_site(&state, "North").await;
    put_in_site(&state, a.id, "North").await;
    state
        .users
        .update(
            u.id,
            camfleet::fleet::users::Access {
                role: Role::Technician,
                disabled: false,
                all_sites: false,
                sites: [north].to_vec(),
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let day: chrono::DateTime<chrono::Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    let mut ids = Vec::new();
    for (dev, start_s, body) in [
        (a.id, 0, &b"\0\0\0\x10ftypisomAAAA"[..]),
        (a.id, 60, b"\0\0\0\x10ftypisomBBBB"),
        (a.id, 600, b"\0\0\0\x10ftypisomCCCC"),
        (b.id, 0, b"\0\0\0\x10ftypisomDDDD"),
    ] {
        let start = day + chrono::Duration::seconds(start_s);
        let key = format!("recordings/{dev}/{start_s}.mp4");
        state
            .storage
            .put(&key, bytes::Bytes::copy_from_slice(body))
            .await
            .unwrap();
        let r = camfleet::db::entities::recording::ActiveModel {
            device_id: sea_orm::Set(dev),
            site_id: sea_orm::Set(None),
            profile: sea_orm::Set("Profile_1".into()),
            start_at: sea_orm::Set(start),
            end_at: sea_orm::Set(start + chrono::Duration::seconds(60)),
            bytes: sea_orm::Set(body.len() as i64),
            codec: sea_orm::Set("avc1".into()),
            checksum: sea_orm::Set(String::new()),
            tier: sea_orm::Set("hot".into()),
            storage_key: sea_orm::Set(key),
            created_at: sea_orm::Set(start),
            ..Default::default()
        }
        .insert(&state.db)
        .await
        .unwrap();
        ids.push(r.id);
    }
    // The site lives in Berlin (UTC+1 in November): its day is shown so.
    state
        .sites
        .set_time_zone(north, "Europe/Berlin", &Actor::system())
        .await
        .unwrap();
    assert!(
        state
            .sites
            .set_time_zone(north, "Mars/Olympus", &Actor::system())
            .await
            .is_err()
    );
    let (_, cookie) = login(&app, "north", "correct-horse").await;
    let (status, _, page) = send(
        &app,
        get(
            &format!("/devices/{}/recordings?day=2026-11-20", a.id),
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Two back-to-back segments as one stretch, a gap from 11:02 to 11:10
    // Berlin time, a third; one player for the day, sizes for people.
    assert_eq!(page.matches("<video").count(), 1, "{page}");
    assert!(page.contains("Europe/Berlin"), "{page}");
    assert!(
        page.contains(
            "<td>11:02:00</td><td>11:10:00</td><td>8 min 00 s</td><td><b>gap: nothing recorded</b>"
        ),
        "{page}"
    );
    assert!(
        page.contains("<td>2 min 00 s</td><td>recorded · 2 segments</td><td>32 B</td>"),
        "{page}"
    );
    assert_eq!(
        page.matches("class=\"stretch\"").count(),
        2 + 1,
        "two stretches and the legend"
    );
    assert!(
        page.contains(&format!("\"id\":{}", ids[1])),
        "the player's list"
    );
    let (status, h, body) = send(&app, get(&format!("/recordings/{}", ids[1]), &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
    assert!(body.ends_with("BBBB"));
    // Another site's camera: not found, for this user.
    let (status, _, _) = send(&app, get(&format!("/recordings/{}", ids[3]), &cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(&app, get(&format!("/devices/{}/recordings", b.id), &cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(
        &app,
        get(
            &format!("/devices/{}/recordings?day=yesterday", a.id),
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    f.shutdown().await;
}

/// A time range downloads as one MP4: the segments joined from the
/// keyframe before the start, the gap closed up, only within the user's
/// sites; bad ranges are refused with a reason.
#[tokio::test]
async fn a_time_range_downloads_as_one_mp4() {
    use camfleet::recorder::mp4::{Mp4Writer, read_tracks};
    use sea_orm::ActiveModelTrait;
    let (app, state) = app().await;
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    let b = adopt_into(&state, &f, 1).await;
    make_site(&state, "Elsewhere").await;
    put_in_site(&state, b.id, "Elsewhere").await;
    let u = make_user(&state, "north", Role::Technician).await;
    let north = make_site(&state, "North").await;
    put_in_site(&state, a.id, "North").await;
    state
        .users
        .update(
            u.id,
            camfleet::fleet::users::Access {
                role: Role::Technician,
                disabled: false,
                all_sites: false,
                sites: [north].to_vec(),
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    // One-minute segments at 10 fps, a keyframe every second: 10:00,
    // 10:01, then (after a gap) 10:10.
    let day: chrono::DateTime<chrono::Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    for (dev, start_s) in [(a.id, 0), (a.id, 60), (a.id, 600), (b.id, 0)] {
        let entry = {
            let mut e = vec![0, 0, 0, 86];
            e.extend_from_slice(b"avc1");
            e.extend_from_slice(&[0u8; 78]);
            e
        };
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (320, 240), 90_000).unwrap();
        for i in 0..600i64 {
            w.push(
                i * 9000,
                &[0, 0, 0, 3, 0x65, (i % 251) as u8, 1],
                i % 10 == 0,
            )
            .unwrap();
        }
        let body = w.finish().unwrap().into_inner();
        let start = day + chrono::Duration::seconds(start_s);
        let key = format!("recordings/{dev}/{start_s}.mp4");
        state
            .storage
            .put(&key, bytes::Bytes::from(body.clone()))
            .await
            .unwrap();
        camfleet::db::entities::recording::ActiveModel {
            device_id: sea_orm::Set(dev),
            site_id: sea_orm::Set(None),
            profile: sea_orm::Set("Profile_1".into()),
            start_at: sea_orm::Set(start),
            end_at: sea_orm::Set(start + chrono::Duration::seconds(60)),
            bytes: sea_orm::Set(body.len() as i64),
            codec: sea_orm::Set("avc1".into()),
            checksum: sea_orm::Set(camfleet::storage::sha256_hex(&body)),
            tier: sea_orm::Set("hot".into()),
            storage_key: sea_orm::Set(key),
            created_at: sea_orm::Set(start),
            origin: sea_orm::Set("live".into()),
            ..Default::default()
        }
        .insert(&state.db)
        .await
        .unwrap();
    }
    let (_, cookie) = login(&app, "north", "correct-horse").await;
    let url = |dev: i32, from: &str, to: &str| {
        format!("/devices/{dev}/recordings/export?day=2026-11-20&from={from}&to={to}")
    };
    let resp = app
        .clone()
        .oneshot(get(&url(a.id, "10:00:30.5", "10:10:30"), &cookie))
        .await
        .unwrap();
    // Fractions are not a time of day this form takes.
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = app
        .clone()
        .oneshot(get(&url(a.id, "10:00:30", "10:10:30"), &cookie))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let tracks = read_tracks(&body).unwrap();
    // 300 frames of the first minute, all of the second, 300 of 10:10.
    assert_eq!(tracks[0].samples.len(), 1200);
    assert!(tracks[0].samples[0].3, "starts at a keyframe");
    let first = tracks[0].samples[0].0 as usize;
    assert_eq!(
        &body[first..first + 7],
        &[0u8, 0, 0, 3, 0x65, (300 % 251) as u8, 1]
    );
    for (from, to, status) in [
        ("10:05", "10:01", StatusCode::UNPROCESSABLE_ENTITY),
        ("03:00", "10:00", StatusCode::UNPROCESSABLE_ENTITY),
        ("10:03", "10:09", StatusCode::NOT_FOUND),
    ] {
        let (s, _, page) = send(&app, get(&url(a.id, from, to), &cookie)).await;
        assert_eq!(s, status, "{from}-{to}: {page}");
    }
    // Another site's camera.
    let (s, _, _) = send(&app, get(&url(b.id, "10:00", "10:01"), &cookie)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Byte ranges and tags: a segment, then an export.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let seg = camfleet::db::entities::recording::Entity::find()
        .filter(camfleet::db::entities::recording::Column::DeviceId.eq(a.id))
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    let ranged = |path: &str, headers: &[(&str, &str)]| {
        let mut r = get(path, &cookie);
        for (k, v) in headers {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r
    };
    let seg_url = format!("/recordings/{}", seg.id);
    let resp = app
        .clone()
        .oneshot(ranged(&seg_url, &[("range", "bytes=0-63")]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()[header::CONTENT_RANGE],
        format!("bytes 0-63/{}", seg.bytes).as_str()
    );
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
    let head = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(head.len(), 64);
    assert_eq!(&head[4..8], b"ftyp");
    let ftyp = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
    assert_eq!(&head[ftyp + 4..ftyp + 8], b"moov", "moov right after ftyp");
    // The tail, a current copy, a range past the end, a stale If-Range.
    let (s, h, tail) = send(&app, ranged(&seg_url, &[("range", "bytes=-10")])).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.len(), 10);
    assert_eq!(
        h[header::CONTENT_RANGE],
        format!("bytes {}-{}/{}", seg.bytes - 10, seg.bytes - 1, seg.bytes).as_str()
    );
    let (s, _, nothing) = send(&app, ranged(&seg_url, &[("if-none-match", &etag)])).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(nothing.is_empty());
    let past = format!("bytes={}-", seg.bytes);
    let (s, h, _) = send(&app, ranged(&seg_url, &[("range", &past)])).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        h[header::CONTENT_RANGE],
        format!("bytes */{}", seg.bytes).as_str()
    );
    let resp = app
        .clone()
        .oneshot(ranged(
            &seg_url,
            &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let whole = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(whole.len() as i64, seg.bytes);
    // An export: the same tag for the same range, a range of it.
    let export = url(a.id, "10:00:30", "10:10:30");
    let resp = app
        .clone()
        .oneshot(ranged(&export, &[("range", "bytes=100-199")]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let cr = resp.headers()[header::CONTENT_RANGE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cr.starts_with("bytes 100-199/"), "{cr}");
    let export_tag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
    let part = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&part[..], &body[100..200]);
    let (s, _, _) = send(&app, ranged(&export, &[("if-none-match", &export_tag)])).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    f.shutdown().await;
}

/// The device page's "fill gaps from the camera now": technicians only,
/// audited, runs in the background, and the outcome per gap is listed.
#[tokio::test]
async fn gaps_are_filled_from_the_camera_on_request_and_listed() {
    use sea_orm::{ActiveModelTrait, EntityTrait};
    let (_, plain) = app().await;
    let dir = common::scratch("web-bf");
    let state = Arc::new(
        Arc::try_unwrap(plain)
            .ok()
            .expect("one owner")
            .with_storage(
                camfleet::storage::Storage::memory(),
                None,
                Some(dir.clone()),
            ),
    );
    let app = web::router(state.clone());
    make_user(&state, "tech", Role::Technician).await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let mut am: camfleet::db::entities::device::ActiveModel = d.clone().into();
    am.record_profile = sea_orm::Set(Some("Profile_1".into()));
    am.update(&state.db).await.unwrap();
    let now = chrono::Utc::now();
    for (a, b) in [(30, 20), (10, 5)] {
        camfleet::db::entities::recording::ActiveModel {
            device_id: sea_orm::Set(d.id),
            site_id: sea_orm::Set(None),
            profile: sea_orm::Set("Profile_1".into()),
            start_at: sea_orm::Set(now - chrono::Duration::minutes(a)),
            end_at: sea_orm::Set(now - chrono::Duration::minutes(b)),
            bytes: sea_orm::Set(1),
            codec: sea_orm::Set("avc1".into()),
            checksum: sea_orm::Set(String::new()),
            tier: sea_orm::Set("hot".into()),
            storage_key: sea_orm::Set(format!("live/{a}")),
            created_at: sea_orm::Set(now),
            origin: sea_orm::Set("live".into()),
            ..Default::default()
        }
        .insert(&state.db)
        .await
        .unwrap();
    }
    let page_url = format!("/devices/{}", d.id);
    let action = format!("/devices/{}/backfill", d.id);
    // A viewer sees no button and may not post.
    let (_, viewer) = login(&app, "val", "correct-horse").await;
    let (_, _, page) = send(&app, get(&page_url, &viewer)).await;
    assert!(!page.contains("Fill gaps from the camera now"));
    let (status, _, _) = send(
        &app,
        post_form(&action, &viewer, &format!("csrf={}", csrf_of(&page))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, tech) = login(&app, "tech", "correct-horse").await;
    let (_, _, page) = send(&app, get(&page_url, &tech)).await;
    assert!(page.contains("Fill gaps from the camera now"), "{page}");
    let (status, _, _) = send(
        &app,
        post_form(&action, &tech, &format!("csrf={}", csrf_of(&page))),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The fill runs in the background: wait for its row.
    let t = tokio::time::Instant::now();
    let row = loop {
        let rows = camfleet::db::entities::backfill::Entity::find()
            .all(&state.db)
            .await
            .unwrap();
        if let Some(r) = rows.into_iter().next() {
            break r;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "no backfill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(row.state, "filled", "{row:?}");
    assert!(row.segments >= 9);
    let (_, _, page) = send(&app, get(&page_url, &tech)).await;
    assert!(page.contains("filled"), "{page}");
    let audit = camfleet::db::entities::audit_log::Entity::find()
        .all(&state.db)
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "device.backfill"));
    f.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The recording policy on the device page: a known profile and TCP or
/// UDP, technicians only, validated, audited.
#[tokio::test]
async fn the_recording_policy_is_set_on_the_device_page() {
    use sea_orm::EntityTrait;
    let (app, state) = app().await;
    make_user(&state, "tech", Role::Technician).await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let url = format!("/devices/{}/recording", d.id);
    let (_, viewer) = login(&app, "val", "correct-horse").await;
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &viewer)).await;
    let (status, _, _) = send(
        &app,
        post_form(
            &url,
            &viewer,
            &format!("csrf={}&profile=Profile_1", csrf_of(&page)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, tech) = login(&app, "tech", "correct-horse").await;
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &tech)).await;
    let csrf = csrf_of(&page);
    for (form, want) in [
        (
            "profile=Nope&transport=tcp",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "profile=Profile_1&transport=sctp",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("profile=Profile_1&transport=udp", StatusCode::SEE_OTHER),
    ] {
        let (status, _, body) =
            send(&app, post_form(&url, &tech, &format!("csrf={csrf}&{form}"))).await;
        assert_eq!(status, want, "{form}: {body}");
    }
    let row = camfleet::db::entities::device::Entity::find_by_id(d.id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.record_profile.as_deref(), Some("Profile_1"));
    assert_eq!(row.record_transport, "udp");
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &tech)).await;
    assert!(page.contains(r#"<option value="udp" selected>"#), "{page}");
    let audit = camfleet::db::entities::audit_log::Entity::find()
        .all(&state.db)
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "device.recording"
        && e.after.as_ref().is_some_and(|a| a["transport"] == "udp")));
    f.shutdown().await;
}

#[tokio::test]
async fn errors_in_a_browser_are_pages_with_a_way_back_and_plain_text_for_scripts() {
    let (app, state) = app().await;
    make_user(&state, "tech", Role::Technician).await;
    make_user(&state, "buyer", Role::Procurement).await;
    let (_, tech) = login(&app, "tech", "correct-horse").await;
    let (_, buyer) = login(&app, "buyer", "correct-horse").await;
    let browser = |path: &str, cookie: &str, referer: Option<&str>| {
        let mut r = Request::get(path)
            .header(header::COOKIE, cookie)
            .header(header::HOST, "cams.example")
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8");
        if let Some(from) = referer {
            r = r.header(header::REFERER, from);
        }
        r.body(Body::empty()).unwrap()
    };
    // 404 for a device that is not there: the layout's header, the
    // message, the page the user came from and the dashboard.
    let (status, h, page) = send(
        &app,
        browser(
            "/devices/987654",
            &tech,
            Some("http://cams.example/devices?status=offline"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.contains("<h1>Not found</h1>"), "{page}");
    assert!(page.contains("no device 987654"), "{page}");
    assert!(page.contains("href=\"/devices?status=offline\""), "{page}");
    assert!(page.contains("href=\"/\">Dashboard"), "{page}");
    // A referer from another site is not offered as the way back.
    let (_, _, page) = send(
        &app,
        browser("/devices/987654", &tech, Some("http://evil.example/x")),
    )
    .await;
    assert!(!page.contains("evil.example"), "{page}");
    // 403: the role's limit in words; an unknown path: a page too.
    let (status, _, page) = send(&app, browser("/jobs", &buyer, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("<h1>Not allowed</h1>"), "{page}");
    let (status, _, page) = send(&app, browser("/no/such/page", &tech, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("no such page"), "{page}");
    // A script (no text/html in Accept) keeps the plain message.
    let (status, h, text) = send(&app, get("/devices/987654", &tech)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(text, "no device 987654");
}

#[tokio::test]
async fn alerts_are_in_sight_and_handled_in_bulk() {
    use camfleet::fleet::health::HealthState;
    use camfleet::fleet::poller::Notice;
    let (app, state) = app().await;
    state.alerting.ensure_default_rules().await.unwrap();
    let f = fleet(3, "").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(adopt_into(&state, &f, i).await.id);
    }
    let notices: Vec<Notice> = ids
        .iter()
        .map(|&device_id| Notice::Transition {
            device_id,
            from: HealthState::Online,
            to: HealthState::Offline,
            reason: "3 polls failed in a row".into(),
        })
        .collect();
    let r = state.alerting.process(&notices).await.unwrap();
    assert_eq!(r.opened.len(), 3);
    make_user(&state, "tess", Role::Technician).await;
    let (_, tess) = login(&app, "tess", "correct-horse").await;

    // The dashboard's panel counts them; the navigation has the badge's
    // event stream, which starts with the counts.
    let (_, _, page) = send(&app, get("/", &tess)).await;
    assert!(
        page.contains("<b data-alerts=\"open\">3</b> open"),
        "{page}"
    );
    assert!(page.contains("data-alerts=\"critical\">3</span>"), "{page}");
    assert!(page.contains("id=\"alert-badge\""), "{page}");
    let resp = app
        .clone()
        .oneshot(get("/alerts/summary/events", &tess))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    let text = String::from_utf8_lossy(&first).to_string();
    assert!(text.contains("event: summary"), "{text}");
    assert!(
        text.contains("\"open\":3") && text.contains("\"critical\":3"),
        "{text}"
    );
    // And the number of cameras that need someone, which the dashboard
    // follows (its panels are fetched again when it changes).
    assert!(text.contains("\"problems\":"), "{text}");
    assert!(page.contains("id=\"attention\""), "{page}");
    drop(body);

    // Acknowledge two at once from the list; the list says so.
    let (_, _, page) = send(&app, get("/alerts", &tess)).await;
    assert!(page.contains("Acknowledge ticked"), "{page}");
    let csrf = csrf_of(&page);
    let form = format!(
        "csrf={csrf}&state=active&action=acknowledge&note=on+it&alert={}&alert={}",
        r.opened[0], r.opened[1]
    );
    let (status, h, _) = send(&app, post_form("/alerts/bulk", &tess, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let to = h[header::LOCATION].to_str().unwrap().to_string();
    let (_, _, page) = send(&app, get(&to, &tess)).await;
    assert!(page.contains("Acknowledged 2 alerts."), "{page}");
    let s = state.console.alert_summary(&Actor::system()).await.unwrap();
    assert_eq!((s.open, s.acknowledged), (1, 2));
    // Nothing ticked: an error page that says what to do.
    let (status, _, text) = send(
        &app,
        post_form(
            "/alerts/bulk",
            &tess,
            &format!("csrf={csrf}&action=resolve"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.contains("Tick the alerts"), "{text}");
    // The dashboard lists the cameras that need someone, with the reason.
    set_device_state(
        &state.db,
        ids[2],
        "unauthorized",
        "the camera refused the stored password",
    )
    .await;
    let (_, _, page) = send(&app, get("/", &tess)).await;
    assert!(
        page.contains("Cameras that need someone <small>1</small>"),
        "{page}"
    );
    assert!(
        page.contains("the camera refused the stored password"),
        "{page}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn a_refused_channel_form_keeps_what_was_typed_and_says_what_to_fix() {
    let (app, state) = app().await;
    let admin = make_user(&state, "ada", Role::Admin).await;
    let _ = admin;
    let (_, cookie) = login(&app, "ada", "correct-horse").await;
    let (_, _, page) = send(&app, get("/alerts/settings", &cookie)).await;
    let csrf = csrf_of(&page);
    let (status, _, page) = send(
        &app,
        post_form(
            "/alerts/channels",
            &cookie,
            &format!(
                "csrf={csrf}&kind=webhook&name=Night+NOC&url=hooks%2Fcamfleet&secret=0123456789abcdef"
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("URL: a full address with http:// or https:// and a host"),
        "{page}"
    );
    assert!(!page.contains("relative URL without a base"), "{page}");
    assert!(page.contains("value=\"Night NOC\""), "{page}");
    assert!(page.contains("value=\"hooks/camfleet\""), "{page}");
    assert!(
        !page.contains("0123456789abcdef"),
        "the secret is not sent back"
    );
    // The other forms stay empty.
    assert_eq!(page.matches("value=\"Night NOC\"").count(), 1, "{page}");
}

#[tokio::test]
async fn a_refused_job_keeps_its_form() {
    let (app, state) = app().await;
    make_user(&state, "ada", Role::Admin).await;
    let (_, cookie) = login(&app, "ada", "correct-horse").await;
    let (_, _, page) = send(&app, get("/jobs", &cookie)).await;
    let csrf = csrf_of(&page);
    let (status, _, page) = send(
        &app,
        post_form(
            "/jobs",
            &cookie,
            &format!(
                "csrf={csrf}&name=Nightly+sweep&kind=retention_sweep&schedule=61+2+*+*+*&timezone=Europe%2FBerlin&params=%7B%7D&missed_policy=run_once"
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Not saved"), "{page}");
    assert!(
        page.contains("0-59") || page.contains("0 to 59") || page.contains("0–59"),
        "{page}"
    );
    for typed in [
        "value=\"Nightly sweep\"",
        "value=\"61 2 * * *\"",
        "value=\"Europe/Berlin\"",
        "<option selected>retention_sweep</option>",
        "<option value=\"run_once\" selected>",
    ] {
        assert!(page.contains(typed), "{typed}: {page}");
    }
    // Unticked "Enabled" stays unticked.
    assert!(!page.contains("name=\"enabled\" checked"), "{page}");
}

#[tokio::test]
async fn csv_import_reads_spreadsheet_dialects_and_keeps_fields_on_blank_cells() {
    use camfleet::fleet::access::Scope;
    let (_app, state) = app().await;
    let f = fleet(2, "").await;
    let a = adopt_into(&state, &f, 0).await;
    let b = adopt_into(&state, &f, 1).await;
    // Something stored on b to keep or clear.
    let first = format!("id,supplier,notes,asset_tag\n{},Acme,keep me,T-1\n", b.id);
    let plan = state
        .inventory
        .import_dry_run(first.as_bytes(), &Scope::All)
        .await
        .unwrap();
    assert!(plan.applicable(), "{plan:?}");
    state
        .inventory
        .import_apply(first.as_bytes(), &Scope::All, &Actor::system())
        .await
        .unwrap();
    // What a German Excel writes: a BOM, semicolons, CRLF, a decimal comma
    // in quotes. A blank cell keeps the field; `(clear)` clears it. The bad
    // row is reported on its own line of the file.
    for (name, delimiter) in [("semicolon", ";"), ("tab", "\t"), ("comma", ",")] {
        let d = delimiter;
        let file = format!(
            "\u{feff}id{d}supplier{d}notes{d}asset_tag\r\n{a}{d}Beta GmbH{d}{d}\r\n{b}{d}{d}(clear){d}\r\n999999{d}X{d}{d}\r\n",
            a = a.id,
            b = b.id
        );
        let r = state
            .inventory
            .import_dry_run(file.as_bytes(), &Scope::All)
            .await
            .unwrap();
        assert!(r.file_errors.is_empty(), "{name}: {r:?}");
        assert_eq!(r.rows.len(), 3, "{name}: {r:?}");
        assert_eq!(
            r.rows.iter().map(|x| x.line).collect::<Vec<_>>(),
            [2, 3, 4],
            "{name}"
        );
        assert_eq!(
            r.rows[0].changes.get("supplier"),
            Some(&("".to_string(), "Beta GmbH".to_string())),
            "{name}: {r:?}"
        );
        // b: supplier and asset tag blank (kept), notes cleared.
        assert_eq!(
            r.rows[1].changes.keys().collect::<Vec<_>>(),
            ["notes"],
            "{name}: {r:?}"
        );
        assert_eq!(r.rows[1].changes["notes"].1, "", "{name}");
        assert!(
            r.rows[2]
                .errors
                .iter()
                .any(|e| e.contains("no device 999999")),
            "{name}: {r:?}"
        );
    }
    f.shutdown().await;
}

#[tokio::test]
async fn bulk_actions_show_their_devices_then_act_on_exactly_those() {
    let (app, state) = app().await;
    make_user(&state, "tess", Role::Technician).await;
    let f = fleet(3, "").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(adopt_into(&state, &f, i).await.id);
    }
    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let (_, _, page) = send(&app, get("/devices", &tess)).await;
    assert!(page.contains("More actions"), "{page}");
    let csrf = csrf_of(&page);
    // Two ticked, reboot: first the two devices and a confirmation.
    let ticked = format!(
        "csrf={csrf}&scope=ticked&action=reboot&device={}&device={}",
        ids[0], ids[2]
    );
    let (status, _, page) = send(&app, post_form("/devices/bulk", &tess, &ticked)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Reboot: these 2 devices"), "{page}");
    assert!(
        !page.contains(&format!("name=\"device\" value=\"{}\"", ids[1])),
        "{page}"
    );
    let before: Vec<u64> = f
        .cameras()
        .iter()
        .map(|c| c.requests.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    // Nothing was done before the confirmation.
    let confirm = format!("{ticked}&confirm=yes");
    let (status, _, page) = send(&app, post_form("/devices/bulk", &tess, &confirm)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("2 done, 0 failed"), "{page}");
    let after: Vec<u64> = f
        .cameras()
        .iter()
        .map(|c| c.requests.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    assert!(
        after[0] > before[0] && after[2] > before[2],
        "{before:?} {after:?}"
    );
    assert_eq!(after[1], before[1], "the unticked camera was not touched");
    // Every device matching the filter: all three listed.
    let (status, _, page) = send(
        &app,
        post_form(
            "/devices/bulk",
            &tess,
            &format!("csrf={csrf}&scope=matching&filter=q%3DSimCam&action=backfill"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("these 3 devices"), "{page}");
    // Retiring needs a reason; nothing ticked is said plainly.
    let (status, _, text) = send(
        &app,
        post_form(
            "/devices/bulk",
            &tess,
            &format!("csrf={csrf}&action=retire&reason=&device={}", ids[0]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.contains("give a reason"), "{text}");
    let (status, _, text) = send(
        &app,
        post_form(
            "/devices/bulk",
            &tess,
            &format!("csrf={csrf}&action=reboot"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.contains("Tick devices in the list first"), "{text}");
    // A viewer exports but does not reboot.
    make_user(&state, "val", Role::Viewer).await;
    let (_, val) = login(&app, "val", "correct-horse").await;
    let (_, _, page) = send(&app, get("/devices", &val)).await;
    assert!(!page.contains("More actions"), "{page}");
    let vcsrf = csrf_of(&page);
    let (status, _, _) = send(
        &app,
        post_form(
            "/devices/bulk",
            &val,
            &format!("csrf={vcsrf}&action=reboot&device={}", ids[0]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    f.shutdown().await;
}

#[tokio::test]
async fn device_charts_have_ranges_a_time_axis_values_on_hover_and_uptime() {
    use sea_orm::{ActiveModelTrait, Set};
    let (app, state) = app().await;
    make_user(&state, "tess", Role::Technician).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    // One sample a minute for the last hour: 45 of 60 polls answered.
    let now = state.clock.now_utc().timestamp_millis();
    for i in 0..60i64 {
        camfleet::db::entities::health_sample::ActiveModel {
            device_id: Set(d.id),
            at_ms: Set(now - (60 - i) * 60_000 + 30_000),
            ok: Set(i % 4 != 0),
            latency_ms: Set(Some(20 + i as i32)),
            drift_ms: Set(Some(150)),
            error_class: Set(None),
        }
        .insert(&state.db)
        .await
        .unwrap();
    }
    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let (status, _, page) = send(&app, get(&format!("/devices/{}?range=1h", d.id), &tess)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Availability, 1 h: 75.0 % up"), "{page}");
    assert!(page.contains("<b aria-current=\"true\">1 h</b>"), "{page}");
    for range in ["6h", "24h", "7d", "30d"] {
        assert!(page.contains(&format!("?range={range}#charts")), "{range}");
    }
    // Hover values: a latency point says its time, value and poll count.
    assert!(page.contains(" ms (1 polls)</title>"), "{page}");
    // A time axis: ticks every 10 minutes on a one-hour chart.
    assert!(
        page.matches("class=\"chart-axis\">").count() >= 3 * 5,
        "{page}"
    );
    // The default range is a day.
    let (_, _, page) = send(&app, get(&format!("/devices/{}", d.id), &tess)).await;
    assert!(page.contains("Availability, 24 h: 75.0 % up"), "{page}");
    f.shutdown().await;
}

#[tokio::test]
async fn configuration_backups_are_listed_compared_and_downloaded() {
    let (app, state) = app().await;
    make_user(&state, "tess", Role::Technician).await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(2, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let other = adopt_into(&state, &f, 1).await;
    let store = state.tiers["hot"].clone();
    let put = |key: String, body: &str| {
        let store = store.clone();
        let body = bytes::Bytes::from(body.to_string());
        async move { store.put(&key, body).await.unwrap() }
    };
    let p = format!("config-backups/{}", d.id);
    put(
        format!("{p}/20261204T020000Z.json"),
        "{\n  \"hostname\": \"cam-a\",\n  \"ntp\": \"pool\"\n}",
    )
    .await;
    put(
        format!("{p}/20261205T020000Z.json"),
        "{\n  \"hostname\": \"cam-b\",\n  \"ntp\": \"pool\"\n}",
    )
    .await;
    put(format!("{p}/20261205T020000Z-system.bin"), "BIN").await;
    put(
        format!("config-backups/{}/20261205T020000Z.json", other.id),
        "{}",
    )
    .await;
    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let url = format!("/devices/{}/backups", d.id);
    let (status, _, page) = send(&app, get(&url, &tess)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("20261205T020000Z") && page.contains("system.bin"),
        "{page}"
    );
    assert!(
        page.find("20261205T020000Z").unwrap() < page.find("20261204T020000Z").unwrap(),
        "newest first"
    );
    // Compared, whichever order they were picked in.
    let (status, _, page) = send(
        &app,
        get(
            &format!("{url}?a={p}%2F20261205T020000Z.json&b={p}%2F20261204T020000Z.json"),
            &tess,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("What changed <small>2 lines</small>"),
        "{page}"
    );
    assert!(
        page.contains("<del>-   &#34;hostname&#34;: &#34;cam-a&#34;,</del>"),
        "{page}"
    );
    assert!(
        page.contains("<ins>+   &#34;hostname&#34;: &#34;cam-b&#34;,</ins>"),
        "{page}"
    );
    // A file downloads; another device's key is not this device's.
    let (status, h, body) = send(
        &app,
        get(
            &format!("{url}/file?key={p}%2F20261205T020000Z-system.bin"),
            &tess,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "BIN");
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let (status, _, _) = send(
        &app,
        get(
            &format!(
                "{url}/file?key=config-backups%2F{}%2F20261205T020000Z.json",
                other.id
            ),
            &tess,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A viewer does not see configuration.
    let (_, val) = login(&app, "val", "correct-horse").await;
    let (status, _, _) = send(&app, get(&url, &val)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    f.shutdown().await;
}

/// A camera's own backup goes back to it (RestoreSystem over MTOM) only
/// with the confirmation ticked, for technicians, audited; a backup the
/// camera refuses, or one without camera files, changes nothing and says
/// why on the page.
#[tokio::test]
async fn a_camera_takes_its_own_backup_back_after_a_confirmation() {
    let (app, state) = app().await;
    make_user(&state, "tess", Role::Technician).await;
    make_user(&state, "val", Role::Viewer).await;
    let f = fleet(1, "").await;
    let d = adopt_into(&state, &f, 0).await;
    let store = state.tiers["hot"].clone();
    let p = format!("config-backups/{}", d.id);
    // Last night's run, as the job stores it: the reading and the camera's
    // own file (taken from the camera now).
    let files = state
        .provisioner
        .system_backup(d.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(files.len(), 1);
    store
        .put(
            &format!("{p}/20261205T020000Z.json"),
            bytes::Bytes::from("{}"),
        )
        .await
        .unwrap();
    store
        .put(
            &format!("{p}/20261205T020000Z-{}", files[0].name),
            bytes::Bytes::from(files[0].data.clone()),
        )
        .await
        .unwrap();
    // A night whose camera file is not one this camera wrote, and one
    // with the reading only.
    store
        .put(
            &format!("{p}/20261204T020000Z-settings.json"),
            bytes::Bytes::from("not json"),
        )
        .await
        .unwrap();
    store
        .put(
            &format!("{p}/20261203T020000Z.json"),
            bytes::Bytes::from("{}"),
        )
        .await
        .unwrap();
    let cam = f.cameras()[0].clone();
    let hostname = |c: &camfleet::sim::SimCamera| c.state.lock().unwrap().hostname.clone();
    let original = hostname(&cam);
    cam.state.lock().unwrap().hostname = "changed-since".into();
    cam.state.lock().unwrap().ntp_servers = vec!["10.9.9.9".into()];

    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let url = format!("/devices/{}/backups", d.id);
    let (status, _, page) = send(&app, get(&url, &tess)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Restore to camera"), "{page}");
    assert!(
        page.contains(r#"<option value="20261205T020000Z">20261205T020000Z (1 file)</option>"#),
        "{page}"
    );
    assert!(
        !page.contains(r#"<option value="20261203T020000Z">"#),
        "a night without camera files is not offered: {page}"
    );
    let csrf = csrf_of(&page);
    let restore = format!("{url}/restore");
    // Without the confirmation nothing is sent.
    let requests = cam.requests.load(std::sync::atomic::Ordering::Relaxed);
    let (status, _, page) = send(
        &app,
        post_form(
            &restore,
            &tess,
            &format!("csrf={csrf}&stamp=20261205T020000Z"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("notice bad") && page.contains("Not restored: tick"),
        "{page}"
    );
    assert_eq!(
        cam.requests.load(std::sync::atomic::Ordering::Relaxed),
        requests
    );
    assert_eq!(hostname(&cam), "changed-since");
    // Confirmed: the camera has its configuration of that night again.
    let (status, _, page) = send(
        &app,
        post_form(
            &restore,
            &tess,
            &format!("csrf={csrf}&stamp=20261205T020000Z&confirm=on"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Restored: the camera took back 1 file"),
        "{page}"
    );
    assert_eq!(hostname(&cam), original);
    assert_ne!(cam.state.lock().unwrap().ntp_servers, vec!["10.9.9.9"]);
    // A file the camera refuses: its answer on the page, nothing changed.
    cam.state.lock().unwrap().hostname = "changed-again".into();
    let (status, _, page) = send(
        &app,
        post_form(
            &restore,
            &tess,
            &format!("csrf={csrf}&stamp=20261204T020000Z&confirm=on"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("notice bad") && page.contains("InvalidBackupFile"),
        "{page}"
    );
    assert_eq!(hostname(&cam), "changed-again");
    // Only the reading: nothing to send.
    let (_, _, page) = send(
        &app,
        post_form(
            &restore,
            &tess,
            &format!("csrf={csrf}&stamp=20261203T020000Z&confirm=on"),
        ),
    )
    .await;
    assert!(page.contains("nothing to restore to it"), "{page}");
    // Both attempts the camera saw are in the audit log, with their outcome.
    let audit: Vec<_> = camfleet::db::entities::audit_log::Entity::find()
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "device.restore_backup")
        .collect();
    assert_eq!(audit.len(), 2, "{audit:?}");
    let text = format!("{audit:?}");
    assert!(
        text.contains("restored") && text.contains("refused"),
        "{text}"
    );
    // The same through the API: the list, then a restore.
    let (status, _, json) = send(
        &app,
        get(&format!("/api/v1/devices/{}/backups", d.id), &tess),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["stamp"], "20261205T020000Z", "{json}");
    assert_eq!(
        list[0]["files"][0]["name"],
        files[0].name.as_str(),
        "{json}"
    );
    cam.state.lock().unwrap().hostname = "changed-by-api-test".into();
    let (status, _, json) = send(
        &app,
        Request::post(format!(
            "/api/v1/devices/{}/backups/20261205T020000Z/restore",
            d.id
        ))
        .header(header::COOKIE, &tess)
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(json.contains("took back 1 file"), "{json}");
    assert_eq!(hostname(&cam), original);
    // Not without the form's token, and not for a viewer.
    let (status, _, _) = send(
        &app,
        post_form(&restore, &tess, "stamp=20261205T020000Z&confirm=on"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, val) = login(&app, "val", "correct-horse").await;
    let (_, _, vpage) = send(&app, get("/devices", &val)).await;
    let vcsrf = csrf_of(&vpage);
    let (status, _, _) = send(
        &app,
        post_form(
            &restore,
            &val,
            &format!("csrf={vcsrf}&stamp=20261205T020000Z&confirm=on"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    f.shutdown().await;
}

/// From the device list, "Provision with a profile" and "Firmware
/// rollout" take exactly the picked devices: the profile's plan reads only
/// those, Apply writes only those, and the rollout covers only those.
#[tokio::test]
async fn provisioning_and_a_rollout_from_the_list_take_exactly_the_picked_devices() {
    use camfleet::fleet::provision::{ProfileSpec, ServersSpec};
    use sea_orm::{ColumnTrait, QueryFilter};
    let (app, state) = app().await;
    make_user(&state, "tess", Role::Technician).await;
    // Cameras 0 and 4 are of one model, 1 and 2 of others.
    let f = fleet(5, "").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(adopt_into(&state, &f, i).await.id);
    }
    let spec = ProfileSpec {
        ntp: Some(ServersSpec {
            servers: vec!["192.0.2.123".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let profile = state
        .provisioner
        .save_profile(None, "Picked", None, &spec, &Actor::system())
        .await
        .unwrap();
    let model = f.cameras()[0].state.lock().unwrap().model.clone();
    let img = state
        .firmware_lib
        .upload(
            "Sim",
            &model,
            "9.0.1",
            "",
            bytes::Bytes::from(camfleet::sim::config::sim_image("9.0.1", 2048)),
            &Actor::system(),
        )
        .await
        .unwrap();
    state
        .firmware_lib
        .approve(img.id, &Actor::system())
        .await
        .unwrap();
    let (_, tess) = login(&app, "tess", "correct-horse").await;
    let (_, _, page) = send(&app, get("/devices", &tess)).await;
    assert!(
        page.contains("value=\"provision\">Provision with a profile"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let picked = format!(
        "csrf={csrf}&scope=ticked&device={}&device={}",
        ids[0], ids[2]
    );
    // Provision: the two devices and the profile to plan.
    let (status, _, page) = send(
        &app,
        post_form(
            "/devices/bulk",
            &tess,
            &format!("{picked}&action=provision"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Provision with a profile: 2 devices?"),
        "{page}"
    );
    assert!(
        page.contains("Plan (dry run) for these 2 devices"),
        "{page}"
    );
    assert!(
        page.contains(&format!("<option value=\"{}\">Picked</option>", profile.id)),
        "{page}"
    );
    assert!(!page.contains(&format!("name=\"device\" value=\"{}\"", ids[1])));
    let plan_form = format!(
        "csrf={csrf}&profile={}&device={}&device={}",
        profile.id, ids[0], ids[2]
    );
    let (status, _, page) = send(&app, post_form("/provision/plan", &tess, &plan_form)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Plan for 2 devices"), "{page}");
    assert!(page.contains("Apply to these 2 devices"), "{page}");
    assert!(page.contains("the 2 picked in the device list"), "{page}");
    // Apply, as the plan's own form sends it.
    let apply = format!(
        "csrf={csrf}&action=apply&device={}&device={}",
        ids[0], ids[2]
    );
    let (status, h, _) = send(
        &app,
        post_form(
            &format!("/provision/profiles/{}/run", profile.id),
            &tess,
            &apply,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let task_url = h[header::LOCATION].to_str().unwrap().to_string();
    follow(&app, &task_url, &tess).await;
    let ntp: Vec<Vec<String>> = f
        .cameras()
        .iter()
        .map(|c| c.state.lock().unwrap().ntp_servers.clone())
        .collect();
    assert_eq!(ntp[0], ["192.0.2.123"]);
    assert_eq!(ntp[2], ["192.0.2.123"]);
    assert_ne!(
        ntp[1],
        ["192.0.2.123"],
        "the device not picked is untouched"
    );
    // Nothing picked: said in words, on the layout.
    let (status, _, page) = send(
        &app,
        post_form(
            "/provision/plan",
            &tess,
            &format!("csrf={csrf}&profile={}", profile.id),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("Tick devices in the list first"), "{page}");

    // Firmware for cameras 0 and 1: the rollout form for the two, the
    // preview, the rollout; camera 1 is of another model than the image's
    // and is left out, camera 4 is of its model but not picked.
    assert_eq!(
        f.cameras()[4].state.lock().unwrap().model,
        model,
        "the fleet's models repeat every four cameras"
    );
    let picked = format!(
        "csrf={csrf}&scope=ticked&device={}&device={}",
        ids[0], ids[1]
    );
    let (status, _, page) = send(
        &app,
        post_form("/devices/bulk", &tess, &format!("{picked}&action=firmware")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("the 2 picked in the device list"), "{page}");
    let rollout = format!(
        "csrf={csrf}&image={}&picked=1&device={}&device={}&canary=1&wave_percent=50&max_failures=0&margin_s=120&start_hour=0&end_hour=0&utc_offset=0",
        img.id, ids[0], ids[1]
    );
    let (status, _, page) = send(
        &app,
        post_form(
            "/firmware/rollouts",
            &tess,
            &format!("{rollout}&action=preview"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("The waves, if started now"), "{page}");
    assert!(
        page.contains("the 2 picked in the device list"),
        "the preview keeps the picked devices: {page}"
    );
    let waves = page.split("The waves, if started now").nth(1).unwrap();
    assert_eq!(
        waves.matches("<tr><td>").count(),
        1,
        "one device of the image's model: {waves}"
    );
    let (status, h, page) = send(
        &app,
        post_form(
            "/firmware/rollouts",
            &tess,
            &format!("{rollout}&action=start"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let rid: i32 = h[header::LOCATION]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let covered: Vec<i32> = camfleet::db::entities::rollout_device::Entity::find()
        .filter(camfleet::db::entities::rollout_device::Column::RolloutId.eq(rid))
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect();
    assert_eq!(covered, vec![ids[0]]);
    f.shutdown().await;
}
