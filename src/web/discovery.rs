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
use super::form::FormFields;
use crate::db::entities::{discovery_result, discovery_run, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::discovery::{AdoptOutcome, InterfaceView, RunKind};
use crate::fleet::progress::Progress;
use crate::onvif::Credentials;

#[derive(Template, WebTemplate)]
#[template(path = "discovery.html")]
pub struct RunsPage {
    pub me: CurrentUser,
    pub runs: Vec<discovery_run::Model>,
    pub can_run: bool,
    pub error: String,
    pub kind: String,
    pub target: String,
    /// The configured discovery interfaces and this host's.
    pub interfaces: InterfaceView,
    pub interface: String,
    pub sites: Vec<site::Model>,
    pub site: String,
    pub no_interface_hint: &'static str,
}

/// The form as typed, kept when it comes back with an error.
#[derive(Default)]
struct RunForm {
    kind: String,
    target: String,
    interface: String,
    site: String,
}

async fn runs_page(
    state: &State,
    me: CurrentUser,
    error: String,
    form: RunForm,
) -> Result<RunsPage, WebError> {
    let runs = state.console.discovery_runs(&me.actor()).await?;
    let sites = state.sites.visible(&me.scope).await?;
    Ok(RunsPage {
        can_run: me.role.can_operate_devices(),
        me,
        runs,
        error,
        kind: if form.kind.is_empty() {
            "multicast".into()
        } else {
            form.kind
        },
        target: form.target,
        interfaces: state.discovery.interface_view(),
        interface: form.interface,
        sites,
        site: form.site,
        no_interface_hint: crate::fleet::discovery::NO_INTERFACE_HINT,
    })
}

pub async fn runs(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    Ok(runs_page(&state, me, String::new(), RunForm::default())
        .await?
        .into_response())
}

pub async fn start(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.text("csrf"))?;
    let form = RunForm {
        kind: f.text("kind"),
        target: f.text("target"),
        interface: f.text("interface"),
        site: f.text("site"),
    };
    let started = async {
        let site = match form.site.trim() {
            "" => None,
            v => Some(
                v.parse::<i32>()
                    .map_err(|_| Error::new(ErrorKind::InvalidArgument, "Site: choose a site"))?,
            ),
        };
        let kind = RunKind::parse(&form.kind, &form.target, &form.interface)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, e))?;
        state
            .console
            .discovery_start(&state.discovery_ops(), &me.actor(), kind, site)
            .await
    }
    .await;
    let run = match started {
        Ok(r) => r,
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::InvalidArgument | ErrorKind::NotFound | ErrorKind::ResourceExhausted
            ) =>
        {
            let page = runs_page(&state, me, e.message, form).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Redirect::to(&format!("/discovery/{}", run.id)).into_response())
}

pub struct ResultRow {
    pub r: discovery_result::Model,
    pub name: String,
    pub hardware: String,
    pub xaddr: String,
    pub outcome: Option<AdoptOutcome>,
    /// Managed in a site outside the user's.
    pub elsewhere: bool,
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
    pub sites: Vec<site::Model>,
    pub site: String,
    /// Work for this run is going on in this process.
    pub busy: bool,
    pub progress: Progress,
}

impl RunPage {
    /// How the last task's notice is coloured: by what happened to the
    /// rows it touched (any failure is not green).
    pub fn outcome_class(&self) -> &'static str {
        let failed = self
            .rows
            .iter()
            .filter(|r| r.outcome.as_ref().is_some_and(|o| o.failed.is_some()))
            .count();
        let adopted = self
            .rows
            .iter()
            .filter(|r| r.outcome.as_ref().is_some_and(|o| o.failed.is_none()))
            .count();
        match (adopted, failed) {
            (_, 0) => "notice",
            (0, _) => "notice bad",
            _ => "notice partial",
        }
    }
}

async fn run_page(
    state: &State,
    me: CurrentUser,
    id: i32,
    error: String,
    username: String,
    site: String,
) -> Result<RunPage, WebError> {
    let view = state.console.discovery_run(&me.actor(), id).await?;
    let run = view.run;
    let rows = view
        .results
        .into_iter()
        .map(|v| ResultRow {
            name: v.r.scopes["name"].as_str().unwrap_or("").to_string(),
            hardware: v.r.scopes["hardware"].as_str().unwrap_or("").to_string(),
            xaddr: v.r.xaddrs[0].as_str().unwrap_or("").to_string(),
            outcome: v.outcome,
            elsewhere: v.elsewhere,
            r: v.r,
        })
        .collect();
    let sites = state.sites.visible(&me.scope).await?;
    let progress = state
        .progress
        .subscribe(id)
        .map(|rx| rx.borrow().clone())
        .unwrap_or_default();
    Ok(RunPage {
        can_adopt: me.role.can_operate_devices(),
        busy: state.progress.running(id),
        me,
        run,
        rows,
        error,
        username,
        sites,
        site,
        progress,
    })
}

/// The run's page. `site` and `username` in the query prefill the adopt
/// form (after an adoption, so a retry goes to the same site as the user
/// name typed).
pub async fn run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let username = match f.text("username") {
        u if u.is_empty() => "admin".to_string(),
        u => u,
    };
    Ok(
        run_page(&state, me, id, String::new(), username, f.text("site"))
            .await?
            .into_response(),
    )
}

/// What the adopt form asked for: per selected row, the credentials to
/// use (the row's own when given, else the common ones).
fn selection(f: &FormFields) -> Result<(Vec<(i32, Credentials)>, String), String> {
    let selected = f.ids("result");
    if selected.is_empty() {
        return Err("Devices: select at least one device to adopt".into());
    }
    let common_user = f.text("username");
    let mut out = Vec::with_capacity(selected.len());
    for id in selected {
        let row_user = f.text(&format!("username_{id}"));
        let row_pw = f.get(&format!("password_{id}"));
        let c = if row_user.is_empty() && row_pw.is_empty() {
            Credentials {
                username: common_user.clone(),
                password: f.get("password"),
            }
        } else {
            Credentials {
                username: if row_user.is_empty() {
                    common_user.clone()
                } else {
                    row_user
                },
                password: row_pw,
            }
        };
        if c.username.is_empty() {
            return Err(format!(
                "User name: the camera user to adopt with (row {id} has none)"
            ));
        }
        out.push((id, c));
    }
    Ok((out, common_user))
}

pub async fn adopt(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.text("csrf"))?;
    let site_s = f.text("site");
    let result = async {
        let site_id = match site_s.as_str() {
            "" => None,
            v => Some(
                v.parse::<i32>()
                    .map_err(|_| Error::new(ErrorKind::InvalidArgument, "Site: choose a site"))?,
            ),
        };
        let (sel, _) = selection(&f).map_err(|e| Error::new(ErrorKind::InvalidArgument, e))?;
        state
            .console
            .discovery_adopt(&state.discovery_ops(), &me.actor(), id, sel, site_id)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            let back = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("site", &site_s)
                .append_pair("username", &f.text("username"))
                .finish();
            Ok(Redirect::to(&format!("/discovery/{id}?{back}")).into_response())
        }
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Conflict) => {
            let page = run_page(&state, me, id, e.message, f.text("username"), site_s).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Server-sent events: the run's progress as JSON `progress` events, then
/// one `end` event. A run with no work going on here answers `end` at once.
pub async fn events(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    // Only for a run the user may see.
    state.console.discovery_run(&me.actor(), id).await?;
    Ok(progress_sse(state.progress.subscribe(id)))
}

/// Server-sent events from a progress channel: `progress` on each change,
/// then `end` (also at once when there is nothing running).
pub(super) fn progress_sse(
    rx: Option<tokio::sync::watch::Receiver<crate::fleet::progress::Progress>>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    let stream = futures::stream::unfold((rx, false), |(rx, ended)| async move {
        if ended {
            return None;
        }
        let Some(mut rx) = rx else {
            let ev = Event::default().event("end").data("{}");
            return Some((ev, (None, true)));
        };
        let p = rx.borrow_and_update().clone();
        let data = serde_json::to_string(&p).unwrap_or_default();
        if p.finished {
            return Some((Event::default().event("end").data(data), (None, true)));
        }
        let ev = Event::default().event("progress").data(data);
        // Wait for the next change before the next event (the first is
        // sent at once).
        let next = async move {
            if rx.changed().await.is_err() {
                None
            } else {
                Some(rx)
            }
        };
        Some((ev, (next.await, false)))
    })
    .map(Ok::<_, std::convert::Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
