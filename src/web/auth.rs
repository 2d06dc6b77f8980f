//! Logging in and out, the session cookie, CSRF, and the middleware that
//! keeps every non-public route behind a login.
//!
//! CSRF: before login, a double-submit token (cookie + form field); after
//! login, the session's own token in every form. POSTs whose `Origin` names
//! another host are refused outright.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Form, Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::State;
use super::error::WebError;
use super::net::ClientInfo;
use crate::db::entities::user;
use crate::error::{Error, ErrorKind};
use crate::fleet::access::Scope;
use crate::fleet::sessions::random_token;
use crate::fleet::users::{LoginError, Role};

pub const SESSION_COOKIE: &str = "camfleet_session";
/// What every refused login is told.
pub const LOGIN_REFUSED: &str = "Wrong user name or password, or too many attempts: check them, and if they are right wait a few minutes before trying again.";
pub const LOGIN_CSRF_COOKIE: &str = "camfleet_login_csrf";

/// The logged-in user of a request (put there by [`require_login`]).
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: user::Model,
    pub role: Role,
    /// The sites this user may see (admins: all).
    pub scope: Scope,
    pub csrf: String,
    token: String,
    /// Signed in with an API token (no cookie, so no CSRF exposure).
    pub via_token: bool,
    /// The client address (TCP peer or trusted proxy chain).
    pub ip: Option<String>,
}

impl CurrentUser {
    /// Who the fleet services act for: this user, role, scope and address.
    pub fn actor(&self) -> crate::fleet::audit::Actor {
        crate::fleet::audit::Actor::user(
            &self.user.username,
            self.user.id,
            self.role,
            self.scope.clone(),
            self.ip.clone(),
        )
    }

    /// The session cookie's token (a bearer login has none).
    pub fn session_token(&self) -> Option<&str> {
        (!self.via_token).then_some(self.token.as_str())
    }

    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        // A bearer token is not sent by browsers on their own, so a request
        // carrying one cannot be forged cross-site.
        if self.via_token || constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(WebError(Error::new(
                ErrorKind::PermissionDenied,
                "stale or missing form token; reload the page",
            )))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A POST whose Origin is another site is refused before anything else
/// (see [`super::net::same_origin`] for what counts as this site).
fn same_origin(state: &State, info: &ClientInfo, headers: &HeaderMap) -> bool {
    super::net::same_origin(&state.web, info, headers)
}

/// Cookies are Secure when the operator says so (TLS, or secure_cookies
/// behind a proxy) or when this request came over HTTPS.
fn secure(state: &State, info: &ClientInfo) -> bool {
    state.secure_cookies || info.https
}

/// Logins resolved recently, so a click does not cost two database round
/// trips (each a thread hop with SQLite). Entries live [`AUTH_CACHE_TTL`];
/// logout removes its own entry and any account change clears the cache.
/// With several nodes on one PostgreSQL, a logout elsewhere takes effect
/// here within the TTL.
#[derive(Default)]
pub struct AuthCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (CurrentUser, std::time::Duration)>>,
}

pub const AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
const AUTH_CACHE_MAX: usize = 10_000;

impl AuthCache {
    fn get(&self, token: &str, now: std::time::Duration) -> Option<CurrentUser> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token)
            .filter(|(_, at)| now.saturating_sub(*at) < AUTH_CACHE_TTL)
            .map(|(u, _)| u.clone())
    }

    fn put(&self, u: CurrentUser, now: std::time::Duration) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= AUTH_CACHE_MAX {
            map.retain(|_, (_, at)| now.saturating_sub(*at) < AUTH_CACHE_TTL);
            if map.len() >= AUTH_CACHE_MAX {
                map.clear();
            }
        }
        map.insert(u.token.clone(), (u, now));
    }

    pub fn forget(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// After a user, role or password change.
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// How a request proves who it is.
enum Credential {
    Session(String),
    Bearer(String),
}

async fn resolve(
    state: &State,
    cred: Credential,
    ip: Option<String>,
) -> Result<Option<CurrentUser>, WebError> {
    Ok(resolve_cached(state, cred).await?.map(|mut u| {
        u.ip = ip;
        u
    }))
}

async fn resolve_cached(state: &State, cred: Credential) -> Result<Option<CurrentUser>, WebError> {
    let now = state.clock.monotonic();
    let (token, via_token) = match &cred {
        Credential::Session(t) => (t.clone(), false),
        // Cached under a different key space than session tokens.
        Credential::Bearer(t) => (format!("bearer:{t}"), true),
    };
    if let Some(u) = state.auth_cache.get(&token, now) {
        return Ok(Some(u));
    }
    let (user_id, csrf) = match &cred {
        Credential::Session(t) => match state.sessions.get(t).await? {
            Some(data) => (data.user_id, data.csrf),
            None => return Ok(None),
        },
        Credential::Bearer(t) => match state.tokens.resolve(t).await? {
            Some(id) => (id, String::new()),
            None => return Ok(None),
        },
    };
    let Some(u) = state.users.by_id(user_id).await?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&u.role) else {
        return Ok(None);
    };
    let scope = if role == Role::Admin || u.all_sites {
        Scope::All
    } else {
        Scope::from_sites(state.users.sites_of(u.id).await?)
    };
    let current = CurrentUser {
        user: u,
        role,
        scope,
        csrf,
        token,
        via_token,
        ip: None,
    };
    state.auth_cache.put(current.clone(), now);
    Ok(Some(current))
}

pub async fn require_login(
    AxState(state): AxState<State>,
    mut req: Request,
    next: Next,
) -> Response {
    let info = client_info(req.extensions());
    let is_api = req.uri().path().starts_with("/api/");
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Credential::Bearer(t.trim().to_string()));
    let cred = bearer.or_else(|| cookie(req.headers(), SESSION_COOKIE).map(Credential::Session));
    let current = match cred {
        Some(c) => match resolve(&state, c, info.ip_text()).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(current) = current else {
        if is_api {
            return super::error::problem(
                StatusCode::UNAUTHORIZED,
                "login required",
                "send a session cookie or `Authorization: Bearer <token>`",
            );
        }
        let next_path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Redirect::to(&format!("/login?next={}", urlencode(next_path))).into_response();
    };
    if !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && !same_origin(&state, &info, req.headers())
    {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    // A password camfleet generated, or an admin set with "must change",
    // is good for one thing only: choosing a new one.
    if current.user.must_change_password {
        let path = req.uri().path();
        let allowed = matches!(path, "/account/password" | "/logout");
        if !allowed {
            if is_api || current.via_token {
                return super::error::problem(
                    StatusCode::FORBIDDEN,
                    "password change required",
                    "log in with a browser and choose a new password first",
                );
            }
            return Redirect::to("/account/password").into_response();
        }
    }
    let user = super::LoggedUser(current.user.username.clone());
    req.extensions_mut().insert(current);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(user);
    resp
}

/// The request's [`ClientInfo`] (a request that did not pass the
/// middleware, as in some tests, is a direct one with no known address).
fn client_info(ext: &axum::http::Extensions) -> ClientInfo {
    ext.get::<ClientInfo>().cloned().unwrap_or(ClientInfo {
        ip: None,
        https: false,
        forwarded_host: None,
    })
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only a path on this site: it starts with one `/`, and holds no
/// backslash, no control character or whitespace (browsers drop tabs and
/// newlines from URLs, so `/\t/evil.example` would become
/// `//evil.example`), and no `//` anywhere before the query.
pub fn safe_next(next: Option<&str>) -> String {
    let ok = |n: &str| {
        let path = n.split(['?', '#']).next().unwrap_or("");
        n.starts_with('/')
            && n.len() <= 2048
            && !path.contains("//")
            && !n.contains('\\')
            && !n.chars().any(|c| c.is_control() || c.is_whitespace())
            // An encoded slash or backslash could be decoded by a proxy.
            && !path.to_ascii_lowercase().contains("%2f")
            && !path.to_ascii_lowercase().contains("%5c")
    };
    match next {
        Some(n) if ok(n) => n.to_string(),
        _ => "/".into(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub next: String,
    pub username: String,
    pub error: String,
}

#[derive(serde::Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

pub async fn login_page(
    AxState(state): AxState<State>,
    info: Option<Extension<ClientInfo>>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> Response {
    let info = info
        .map(|e| e.0)
        .unwrap_or_else(|| client_info(&Default::default()));
    // Keep the browser's token if it has one, so two login tabs (or a page
    // the browser loaded twice) do not invalidate each other.
    let csrf = cookie(&headers, LOGIN_CSRF_COOKIE)
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(random_token);
    let page = LoginPage {
        csrf: csrf.clone(),
        next: safe_next(q.next.as_deref()),
        username: String::new(),
        error: String::new(),
    };
    let mut resp = page.into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, secure(&state, &info)),
    );
    resp
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

pub async fn login_submit(
    AxState(state): AxState<State>,
    info: Option<Extension<ClientInfo>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    let info = info
        .map(|e| e.0)
        .unwrap_or_else(|| client_info(&Default::default()));
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !same_origin(&state, &info, &headers)
        || expected.is_empty()
        || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes())
    {
        return Ok((
            StatusCode::FORBIDDEN,
            "stale or missing form token; reload the login page",
        )
            .into_response());
    }
    // From the TCP peer, or the trusted proxy chain; never from a header
    // an untrusted client set.
    let ip = info.ip_text();
    let again = |error: &str, status: StatusCode| {
        let page = LoginPage {
            csrf: f.csrf.clone(),
            next: safe_next(f.next.as_deref()),
            username: f.username.clone(),
            error: error.into(),
        };
        (status, page).into_response()
    };
    match state
        .users
        .authenticate(&f.username, &f.password, ip.as_deref())
        .await?
    {
        Ok(u) => {
            let (token, _) = state.sessions.create(u.id).await?;
            let to = if u.must_change_password {
                "/account/password".to_string()
            } else {
                safe_next(f.next.as_deref())
            };
            let mut resp = Redirect::to(&to).into_response();
            let ttl = crate::fleet::sessions::SESSION_TTL_SECS;
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, ttl, secure(&state, &info)),
            );
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure(&state, &info)),
            );
            Ok(resp)
        }
        // One answer for a wrong password, an unknown or disabled account
        // and a throttled one, so the page tells nobody which accounts
        // exist or are locked (the audit log has the detail).
        Err(LoginError::Throttled { .. } | LoginError::BadCredentials | LoginError::Disabled) => {
            Ok(again(LOGIN_REFUSED, StatusCode::UNAUTHORIZED))
        }
    }
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    me.check_csrf(&f.csrf)?;
    state.sessions.delete(&me.token).await?;
    state.auth_cache.forget(&me.token);
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_kept_on_site() {
        assert_eq!(safe_next(Some("/devices?page=2")), "/devices?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        // What `next=/%09/evil.example` decodes to: browsers drop the tab.
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/ /evil.example")), "/");
        assert_eq!(safe_next(Some("/a//evil.example")), "/");
        assert_eq!(safe_next(Some("/%2f%2fevil.example")), "/");
        assert_eq!(safe_next(Some("/devices?q=a//b")), "/devices?q=a//b");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; camfleet_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "zzz"), None);
    }
}
