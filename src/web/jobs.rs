//! Scheduled jobs: the list with each job's next run and last outcome, a
//! form (schedule checked, the next five run times shown), "run now", and
//! every run with its log. Technicians read; admins change and run.

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
use crate::db::entities::{job, job_run};
use crate::error::{Error, ErrorKind};
use crate::fleet::jobs::{KINDS, next_runs, parse_schedule, parse_tz};

pub struct JobRow {
    pub job: job::Model,
    pub next: Vec<chrono::DateTime<chrono::Utc>>,
    pub last: Option<job_run::Model>,
}

#[derive(Template, WebTemplate)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub me: CurrentUser,
    pub rows: Vec<JobRow>,
    pub kinds: &'static [&'static str],
    pub error: String,
    /// The new job's form as typed, when it was refused.
    pub typed: Option<FormFields>,
}

impl JobsPage {
    /// A field of the refused form, or `default` on a fresh page.
    pub fn typed(&self, key: &str, default: &str) -> String {
        match &self.typed {
            Some(f) => f.get(key),
            None => default.to_string(),
        }
    }
    pub fn enabled(&self) -> bool {
        self.typed.as_ref().is_none_or(|f| f.get("enabled") == "on")
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "job.html")]
pub struct JobPage {
    pub me: CurrentUser,
    pub row: JobRow,
    pub runs: Vec<job_run::Model>,
    pub kinds: &'static [&'static str],
    pub error: String,
}

async fn row(
    state: &State,
    actor: &crate::fleet::audit::Actor,
    j: job::Model,
    n: usize,
) -> Result<JobRow, WebError> {
    let next = match (parse_schedule(&j.schedule), parse_tz(&j.timezone)) {
        (Ok(s), Ok(tz)) if j.enabled => next_runs(&s, tz, state.clock.now_utc(), n),
        _ => Vec::new(),
    };
    let last = state.jobs.runs_for(actor, j.id, 1).await?.pop();
    Ok(JobRow { job: j, next, last })
}

async fn list_page(state: &State, me: CurrentUser, error: String) -> Result<JobsPage, WebError> {
    let actor = me.actor();
    let mut rows = Vec::new();
    for j in state.jobs.list_for(&actor).await? {
        rows.push(row(state, &actor, j, 1).await?);
    }
    Ok(JobsPage {
        me,
        rows,
        kinds: &KINDS,
        error,
        typed: None,
    })
}

pub async fn jobs(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    Ok(list_page(&state, me, String::new()).await?.into_response())
}

fn fields(f: &FormFields) -> Result<serde_json::Value, String> {
    let raw = f.get("params");
    let raw = if raw.trim().is_empty() {
        "{}".to_string()
    } else {
        raw
    };
    serde_json::from_str(&raw).map_err(|e| format!("parameters: not JSON: {e}"))
}

pub async fn create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let result = match fields(&f) {
        Err(e) => Err(Error::new(ErrorKind::InvalidArgument, e)),
        Ok(params) => {
            state
                .jobs
                .save(
                    None,
                    &f.text("name"),
                    &f.text("kind"),
                    &f.text("schedule"),
                    &f.text("timezone"),
                    params,
                    f.get("enabled") == "on",
                    &f.text("missed_policy"),
                    &me.actor(),
                )
                .await
        }
    };
    match result {
        Ok(j) => Ok(Redirect::to(&format!("/jobs/{}", j.id)).into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let mut page = list_page(&state, me, e.message).await?;
            page.typed = Some(f);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn job_page(
    state: &State,
    me: CurrentUser,
    id: i32,
    error: String,
) -> Result<JobPage, WebError> {
    let actor = me.actor();
    let j = state.jobs.get_for(&actor, id).await?;
    Ok(JobPage {
        row: row(state, &actor, j, 5).await?,
        runs: state.jobs.runs_for(&actor, id, 50).await?,
        me,
        kinds: &KINDS,
        error,
    })
}

pub async fn job(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(job_page(&state, me, id, String::new())
        .await?
        .into_response())
}

pub async fn action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let actor = me.actor();
    let result = match f.text("action").as_str() {
        "delete" => match state.jobs.delete(id, &actor).await {
            Ok(()) => return Ok(Redirect::to("/jobs").into_response()),
            Err(e) => Err(e),
        },
        "run" => state.jobs.run_now(id, &actor).await.map(|_| ()),
        _ => match fields(&f) {
            Err(e) => Err(Error::new(ErrorKind::InvalidArgument, e)),
            Ok(params) => state
                .jobs
                .save(
                    Some(id),
                    &f.text("name"),
                    &f.text("kind"),
                    &f.text("schedule"),
                    &f.text("timezone"),
                    params,
                    f.get("enabled") == "on",
                    &f.text("missed_policy"),
                    &actor,
                )
                .await
                .map(|_| ()),
        },
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/jobs/{id}")).into_response()),
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Conflict) => {
            let page = job_page(&state, me, id, e.to_string()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
