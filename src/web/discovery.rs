//! Discovery pages: start a run, see what answered (new / managed / moved),
//! select devices and adopt them with credentials; each device gets its own
//! outcome that names the step that failed.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::db::entities::{discovery_result, discovery_run};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::discovery::{AdoptOutcome, RunKind};
use crate::onvif::Credentials;

fn actor(me: &CurrentUser) -> Actor {
    Actor::user(&me.user.username)
}

fn not_found(id: i32) -> WebError {
    WebError(Error::new(
        ErrorKind::NotFound,
        format!("no discovery run {id}"),
    ))
}

fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn field(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

#[derive(Template, WebTemplate)]
#[template(path = "discovery.html")]
pub struct RunsPage {
    pub me: CurrentUser,
    pub runs: Vec<discovery_run::Model>,
    pub can_run: bool,
    pub error: String,
    pub kind: String,
    pub target: String,
}

pub async fn runs(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let runs = state.discovery.runs(&state.db).await?;
    Ok(RunsPage {
        can_run: me.role.can_operate_devices(),
        me,
        runs,
        error: String::new(),
        kind: "multicast".into(),
        target: String::new(),
    }
    .into_response())
}

/// Parse the run form; errors name the field.
fn parse_kind(kind: &str, target: &str) -> Result<RunKind, String> {
    match kind {
        "multicast" => Ok(RunKind::Multicast),
        "unicast" => {
            let hosts: Result<Vec<std::net::Ipv4Addr>, _> = target
                .split([',', ' ', '\n'])
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse())
                .collect();
            match hosts {
                Ok(h) if !h.is_empty() && h.len() <= 256 => Ok(RunKind::Unicast(h)),
                Ok(h) if h.is_empty() => Err("Hosts: give at least one IPv4 address".into()),
                Ok(_) => Err("Hosts: at most 256 addresses; use a CIDR sweep for more".into()),
                Err(_) => Err("Hosts: IPv4 addresses separated by commas".into()),
            }
        }
        "cidr" => {
            let cidr: ipnet::Ipv4Net = target
                .trim()
                .parse()
                .map_err(|_| "Range: a CIDR such as 10.20.0.0/24".to_string())?;
            if cidr.prefix_len() < 16 {
                return Err("Range: at most a /16".into());
            }
            Ok(RunKind::Cidr {
                cidr,
                http_ports: vec![80, 8080, 8000, 8899],
            })
        }
        _ => Err("Kind: choose multicast, unicast or cidr".into()),
    }
}

pub async fn start(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let pairs = form_pairs(&raw);
    me.check_csrf(&field(&pairs, "csrf"))?;
    me.require(me.role.can_operate_devices())?;
    let (kind_s, target) = (field(&pairs, "kind"), field(&pairs, "target"));
    let kind = match parse_kind(&kind_s, &target) {
        Ok(k) => k,
        Err(error) => {
            let runs = state.discovery.runs(&state.db).await?;
            let page = RunsPage {
                can_run: true,
                me,
                runs,
                error,
                kind: kind_s,
                target,
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let run = state
        .discovery
        .run(&state.inventory, kind, &actor(&me))
        .await?;
    Ok(Redirect::to(&format!("/discovery/{}", run.id)).into_response())
}

pub struct ResultRow {
    pub r: discovery_result::Model,
    pub name: String,
    pub hardware: String,
    pub xaddr: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "discovery_run.html")]
pub struct RunPage {
    pub me: CurrentUser,
    pub run: discovery_run::Model,
    pub rows: Vec<ResultRow>,
    pub can_adopt: bool,
    pub error: String,
    pub username: String,
    pub outcomes: Vec<AdoptOutcome>,
}

async fn run_page(
    state: &State,
    me: CurrentUser,
    id: i32,
    error: String,
    username: String,
    outcomes: Vec<AdoptOutcome>,
) -> Result<RunPage, WebError> {
    use sea_orm::EntityTrait;
    let run = discovery_run::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| not_found(id))?;
    let rows = state
        .discovery
        .results(&state.db, id)
        .await?
        .into_iter()
        .map(|r| ResultRow {
            name: r.scopes["name"].as_str().unwrap_or("").to_string(),
            hardware: r.scopes["hardware"].as_str().unwrap_or("").to_string(),
            xaddr: r.xaddrs[0].as_str().unwrap_or("").to_string(),
            r,
        })
        .collect();
    Ok(RunPage {
        can_adopt: me.role.can_operate_devices(),
        me,
        run,
        rows,
        error,
        username,
        outcomes,
    })
}

pub async fn run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(
        run_page(&state, me, id, String::new(), "admin".into(), Vec::new())
            .await?
            .into_response(),
    )
}

pub async fn adopt(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let pairs = form_pairs(&raw);
    me.check_csrf(&field(&pairs, "csrf"))?;
    me.require(me.role.can_operate_devices())?;
    let selected: Vec<i32> = pairs
        .iter()
        .filter(|(k, _)| k == "result")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let username = field(&pairs, "username");
    let password = pairs
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let error = if selected.is_empty() {
        "Devices: select at least one device to adopt"
    } else if username.is_empty() {
        "User name: the camera user to adopt with"
    } else {
        ""
    };
    if !error.is_empty() {
        let page = run_page(&state, me, id, error.into(), username, Vec::new()).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let creds = Credentials {
        username: username.clone(),
        password,
    };
    let outcomes = state
        .discovery
        .adopt(&state.inventory, id, &selected, &creds, None, &actor(&me))
        .await?;
    Ok(run_page(&state, me, id, String::new(), username, outcomes)
        .await?
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_form_is_validated_per_field() {
        assert!(matches!(
            parse_kind("multicast", ""),
            Ok(RunKind::Multicast)
        ));
        assert!(
            matches!(parse_kind("unicast", "127.0.0.1, 127.0.0.2"), Ok(RunKind::Unicast(h)) if h.len() == 2)
        );
        assert!(parse_kind("unicast", "").unwrap_err().starts_with("Hosts"));
        assert!(
            parse_kind("unicast", "cam.example")
                .unwrap_err()
                .starts_with("Hosts")
        );
        assert!(
            parse_kind("cidr", "10.0.0.0/8")
                .unwrap_err()
                .contains("/16")
        );
        assert!(
            parse_kind("cidr", "nonsense")
                .unwrap_err()
                .starts_with("Range")
        );
        assert!(parse_kind("telepathy", "").is_err());
    }
}
