//! Alert settings (admins): notification channels and rules. The
//! settings are read and changed through [`crate::fleet::console`].

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
use crate::db::entities::{alert_rule, site};
use crate::error::ErrorKind;
use crate::fleet::console::alert_settings::{ChannelAction, ChannelOutcome, ChannelRow};

#[derive(Template, WebTemplate)]
#[template(path = "alert_settings.html")]
pub struct SettingsPage {
    pub me: CurrentUser,
    pub channels: Vec<ChannelRow>,
    pub rules: Vec<alert_rule::Model>,
    pub sites: Vec<site::Model>,
    pub severities: &'static [&'static str],
    /// Result of the last action (a test, a save), or an error.
    pub notice: String,
    pub error: String,
    /// A refused new channel's form, as typed (secrets are not sent back).
    pub typed: Option<FormFields>,
}

impl SettingsPage {
    /// What was typed into field `key` of the `kind` form that was
    /// refused; empty otherwise.
    pub fn typed(&self, kind: &str, key: &str) -> String {
        match &self.typed {
            Some(f) if f.get("kind") == kind => f.get(key),
            _ => String::new(),
        }
    }
    /// The refused form's error, shown beside that form.
    pub fn error_for(&self, kind: &str) -> String {
        match &self.typed {
            Some(f) if f.get("kind") == kind => self.error.clone(),
            _ => String::new(),
        }
    }
    /// A select's option as typed (or the default when nothing was).
    pub fn chosen(&self, kind: &str, key: &str, value: &str, default: bool) -> bool {
        match &self.typed {
            Some(f) if f.get("kind") == kind => f.get(key) == value,
            _ => default,
        }
    }

    pub fn has(&self, list: &serde_json::Value, id: &i32) -> bool {
        list.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_i64() == Some(i64::from(*id))))
    }
}

async fn page(
    state: &State,
    me: CurrentUser,
    notice: String,
    error: String,
) -> Result<SettingsPage, WebError> {
    let s = state.console.alert_settings(&me.actor()).await?;
    Ok(SettingsPage {
        sites: state.sites.list().await?,
        me,
        channels: s.channels,
        rules: s.rules,
        severities: &crate::fleet::alerting::SEVERITIES,
        notice,
        error,
        typed: None,
    })
}

pub async fn settings(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    Ok(page(&state, me, String::new(), String::new())
        .await?
        .into_response())
}

/// A form error keeps the page (and says what to fix); others propagate.
async fn again(
    state: &State,
    me: CurrentUser,
    e: crate::error::Error,
) -> Result<Response, WebError> {
    if e.kind == ErrorKind::InvalidArgument {
        let p = page(state, me, String::new(), e.message).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
    }
    Err(e.into())
}

pub async fn channel_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    match state.console.channel_create(&me.actor(), &f).await {
        Ok(_) => Ok(Redirect::to("/alerts/settings").into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let mut p = page(&state, me, String::new(), e.message).await?;
            p.typed = Some(f);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn channel_action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    // A test runs in the background: a slow receiver keeps no page waiting.
    if f.get("action") == "test" {
        let notice = state.console.channel_test_start(&me.actor(), id).await?;
        return Ok(page(&state, me, notice, String::new())
            .await?
            .into_response());
    }
    let result = match ChannelAction::parse(&f.get("action")) {
        Ok(a) => state.console.channel_act(&me.actor(), id, a).await,
        Err(e) => Err(e),
    };
    let (status, notice, error) = match result {
        Ok(ChannelOutcome::Done(n)) => (StatusCode::OK, n, String::new()),
        Ok(ChannelOutcome::TestFailed(e)) => (StatusCode::UNPROCESSABLE_ENTITY, String::new(), e),
        Err(e) => return again(&state, me, e).await,
    };
    Ok((status, page(&state, me, notice, error).await?).into_response())
}

pub async fn rule_update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    match state.console.rule_update(&me.actor(), id, &f).await {
        Ok(_) => Ok(Redirect::to("/alerts/settings").into_response()),
        Err(e) => again(&state, me, e).await,
    }
}

/// A new camera-event rule (the other kinds exist once each).
pub async fn rule_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    match state.console.rule_create(&me.actor(), &f).await {
        Ok(_) => Ok(Redirect::to("/alerts/settings").into_response()),
        Err(e) => again(&state, me, e).await,
    }
}
