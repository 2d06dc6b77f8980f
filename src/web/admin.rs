//! Admin pages: sites, users and roles (with site limits), and each user's
//! own account page with API tokens. Every change is audited by the fleet
//! services; cached logins are dropped after any account change so a new
//! role or a disabled account takes effect on the next request.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{api_token, site, user};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;

fn actor(me: &CurrentUser) -> Actor {
    me.actor()
}

// ---------- sites ----------

#[derive(Template, WebTemplate)]
#[template(path = "sites.html")]
pub struct SitesPage {
    pub me: CurrentUser,
    pub sites: Vec<(site::Model, i64)>,
    pub unassigned: i64,
    pub error: String,
    pub name: String,
    pub description: String,
    /// Every IANA zone name, for the time zone field's suggestions.
    pub zones: Vec<&'static str>,
}

async fn sites_page(
    state: &State,
    me: CurrentUser,
    error: String,
    name: String,
    description: String,
) -> Result<SitesPage, WebError> {
    let counts = state.sites.device_counts().await?;
    let n = |id: Option<i32>| {
        counts
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let sites = state
        .sites
        .list()
        .await?
        .into_iter()
        .map(|s| {
            let c = n(Some(s.id));
            (s, c)
        })
        .collect();
    Ok(SitesPage {
        me,
        sites,
        unassigned: n(None),
        error,
        name,
        description,
        zones: chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect(),
    })
}

pub async fn sites(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    Ok(
        sites_page(&state, me, String::new(), String::new(), String::new())
            .await?
            .into_response(),
    )
}

pub async fn site_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let (name, description) = (f.get("name"), f.get("description"));
    match state.sites.create(&name, &description, &actor(&me)).await {
        Ok(_) => Ok(Redirect::to("/sites").into_response()),
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Conflict) => {
            let page = sites_page(&state, me, e.message, name, description).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn site_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let result = if f.get("action") == "delete" {
        state.sites.delete(id, &actor(&me)).await
    } else {
        let interval = match f.get("poll_interval_s").trim() {
            "" => Ok(None),
            v => v.parse::<i32>().map(Some).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "poll interval: a number of seconds, or empty for the default",
                )
            }),
        };
        // The site's discovery interface must be one discovery is
        // configured for on this host.
        let iface = match f.get("discovery_interface").trim() {
            "" => Ok(None),
            v => v
                .parse::<std::net::Ipv4Addr>()
                .map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        "discovery interface: an IPv4 address of this host, or empty for all",
                    )
                })
                .and_then(|ip| {
                    state
                        .discovery
                        .multicast_interfaces(Some(ip))
                        .map(|_| Some(ip))
                }),
        };
        match (interval, iface) {
            (Ok(secs), Ok(iface)) => state
                .sites
                .configure(
                    id,
                    &crate::fleet::sites::SiteConfig {
                        name: &f.get("name"),
                        description: &f.get("description"),
                        poll_interval_s: secs,
                        interface: iface,
                        time_zone: Some(&f.get("time_zone")),
                    },
                    &actor(&me),
                )
                .await
                .map(|_| ()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    match result {
        Ok(()) => {
            state.auth_cache.clear();
            Ok(Redirect::to("/sites").into_response())
        }
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Conflict) => {
            let page = sites_page(&state, me, e.message, String::new(), String::new()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---------- users ----------

pub struct UserRow {
    pub u: user::Model,
    pub sites: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub me: CurrentUser,
    pub users: Vec<UserRow>,
    pub sites: Vec<site::Model>,
    pub roles: &'static [Role],
    pub error: String,
    pub field: String,
    pub username: String,
    pub role: String,
}

async fn users_page(
    state: &State,
    me: CurrentUser,
    error: String,
    field: String,
    username: String,
    role: String,
) -> Result<UsersPage, WebError> {
    let listed = state.users.list(&me.actor()).await?;
    let sites = state.sites.list().await?;
    let mut users = Vec::new();
    for u in listed {
        let ids = state.users.sites_of(u.id).await?;
        let names: Vec<&str> = ids
            .iter()
            .map(|id| crate::fleet::inventory::site_name(&sites, Some(*id)))
            .collect();
        users.push(UserRow {
            sites: if u.role == "admin" || u.all_sites {
                "all sites".into()
            } else if names.is_empty() {
                "none (sees no devices)".into()
            } else {
                names.join(", ")
            },
            u,
        });
    }
    Ok(UsersPage {
        me,
        users,
        sites,
        roles: &Role::ALL,
        error,
        field,
        username,
        role,
    })
}

pub async fn users(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    Ok(users_page(
        &state,
        me,
        String::new(),
        String::new(),
        String::new(),
        "viewer".into(),
    )
    .await?
    .into_response())
}

/// The form field an error message is about (`"password: …"` → password).
fn field_of(message: &str) -> String {
    message
        .split_once(':')
        .map(|(f, _)| f.trim().replace(' ', "_"))
        .unwrap_or_default()
}

pub async fn user_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let (name, role_s) = (f.get("username").trim().to_string(), f.get("role"));
    let result = async {
        let role = Role::parse(&role_s)
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "role: choose a role"))?;
        let opts = crate::fleet::users::NewUser {
            all_sites: f.get("all_sites") == "on",
            sites: f.ids("site"),
            must_change_password: f.get("must_change") == "on",
        };
        state
            .users
            .create_with(&name, &f.get("password"), role, opts, &actor(&me))
            .await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to("/users").into_response()),
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Conflict) => {
            let field = field_of(&e.message);
            let page = users_page(&state, me, e.message, field, name, role_s).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "user_edit.html")]
pub struct UserEditPage {
    pub me: CurrentUser,
    pub u: user::Model,
    pub member_of: Vec<i32>,
    pub sites: Vec<site::Model>,
    pub roles: &'static [Role],
    pub tokens: Vec<api_token::Model>,
    pub error: String,
}

impl UserEditPage {
    /// Where the tokens table's revoke buttons post (`_tokens.html`).
    pub fn token_post(&self) -> String {
        format!("/users/{}", self.u.id)
    }
    pub fn token_action(&self) -> &'static str {
        "revoke_token"
    }
}

async fn user_edit_page(
    state: &State,
    me: CurrentUser,
    id: i32,
    error: String,
) -> Result<UserEditPage, WebError> {
    let u = state
        .users
        .by_id(id)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no user {id}"))))?;
    Ok(UserEditPage {
        member_of: state.users.sites_of(id).await?,
        sites: state.sites.list().await?,
        roles: &Role::ALL,
        tokens: state.tokens.of_user(id).await?,
        me,
        u,
        error,
    })
}

pub async fn user_edit(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(user_edit_page(&state, me, id, String::new())
        .await?
        .into_response())
}

pub async fn user_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let result = async {
        match f.get("action").as_str() {
            "password" => {
                let u = state
                    .users
                    .by_id(id)
                    .await?
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no user {id}")))?;
                state
                    .users
                    .set_password(
                        &u.username,
                        &f.get("password"),
                        f.get("must_change") == "on",
                        &actor(&me),
                    )
                    .await?;
                Ok(())
            }
            "revoke_token" => {
                let tid: i32 = f.get("token").parse().map_err(|_| {
                    Error::new(ErrorKind::InvalidArgument, "token: which token to revoke")
                })?;
                state.tokens.revoke(tid, Some(id), &actor(&me)).await
            }
            _ => {
                let role = Role::parse(&f.get("role"))
                    .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "role: choose a role"))?;
                let access = crate::fleet::users::Access {
                    role,
                    disabled: f.get("disabled") == "on",
                    all_sites: f.get("all_sites") == "on",
                    sites: f.ids("site"),
                };
                state.users.update(id, access, &actor(&me)).await?;
                Ok(())
            }
        }
    }
    .await;
    state.auth_cache.clear();
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/users/{id}")).into_response()),
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Conflict) => {
            let page = user_edit_page(&state, me, id, e.message).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---------- own account: API tokens ----------

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub me: CurrentUser,
    pub tokens: Vec<api_token::Model>,
    /// A token just made: shown this once.
    pub new_token: String,
    pub error: String,
}

impl AccountPage {
    pub fn token_post(&self) -> String {
        "/account".into()
    }
    pub fn token_action(&self) -> &'static str {
        "revoke"
    }
}

pub async fn account(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let tokens = state.tokens.of_user(me.user.id).await?;
    Ok(AccountPage {
        me,
        tokens,
        new_token: String::new(),
        error: String::new(),
    }
    .into_response())
}

pub async fn account_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    if me.via_token {
        return Err(WebError(Error::new(
            ErrorKind::PermissionDenied,
            "tokens are managed from a browser login, not with a token",
        )));
    }
    let mut new_token = String::new();
    let result = match f.get("action").as_str() {
        "revoke" => match f.get("token").parse::<i32>() {
            Ok(tid) => {
                let r = state
                    .tokens
                    .revoke(tid, Some(me.user.id), &actor(&me))
                    .await;
                state.auth_cache.clear();
                r
            }
            Err(_) => Err(Error::new(ErrorKind::InvalidArgument, "token: which one")),
        },
        _ => {
            let days = f.get("days");
            let days = if days.trim().is_empty() {
                Ok(None)
            } else {
                days.trim().parse::<u32>().map(Some).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        "valid for: a number of days, or empty",
                    )
                })
            };
            match days {
                Ok(days) => state
                    .tokens
                    .create(me.user.id, &f.get("name"), days, &actor(&me))
                    .await
                    .map(|(t, _)| new_token = t),
                Err(e) => Err(e),
            }
        }
    };
    let error = match result {
        Ok(()) => String::new(),
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::NotFound) => e.message,
        Err(e) => return Err(e.into()),
    };
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let tokens = state.tokens.of_user(me.user.id).await?;
    Ok(no_store(
        (
            status,
            AccountPage {
                me,
                tokens,
                new_token,
                error,
            },
        )
            .into_response(),
    ))
}

// ---------- own password ----------

#[derive(Template, WebTemplate)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub me: CurrentUser,
    pub error: String,
    pub field: String,
    pub done: bool,
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

pub async fn password_page(Extension(me): Extension<CurrentUser>) -> Result<Response, WebError> {
    Ok(no_store(
        PasswordPage {
            me,
            error: String::new(),
            field: String::new(),
            done: false,
        }
        .into_response(),
    ))
}

/// Change one's own password: the current one, then the new one twice.
/// Other sessions of the user end; this one stays.
pub async fn password_change(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    if me.via_token {
        return Err(WebError(Error::new(
            ErrorKind::PermissionDenied,
            "a password is changed from a browser login, not with a token",
        )));
    }
    let (new, again) = (f.get("new"), f.get("again"));
    let result = if new != again {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            "again: the two new passwords differ",
        ))
    } else {
        state
            .users
            .change_own_password(&me.actor(), me.session_token(), &f.get("current"), &new)
            .await
    };
    state.auth_cache.clear();
    match result {
        Ok(()) => Ok(no_store(
            PasswordPage {
                me,
                error: String::new(),
                field: String::new(),
                done: true,
            }
            .into_response(),
        )),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let field = field_of(&e.message);
            Ok(no_store(
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    PasswordPage {
                        me,
                        error: e.message,
                        field,
                        done: false,
                    },
                )
                    .into_response(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}
