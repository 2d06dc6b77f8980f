//! A device's configuration backups: the runs of the backup job, two
//! settings readings compared, a file downloaded. Data and checks in
//! `fleet::console::backups`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, RawForm, RawQuery, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::error::ErrorKind;
use crate::fleet::console::backups::{BackupSet, DiffLine};

#[derive(Template, WebTemplate)]
#[template(path = "backups.html")]
pub struct BackupsPage {
    pub me: CurrentUser,
    pub device_id: i32,
    pub sets: Vec<BackupSet>,
    /// The two readings compared (older, newer) and the comparison.
    pub a: String,
    pub b: String,
    pub diff: Vec<DiffLine>,
    /// A restore's outcome: (it worked, what happened).
    pub outcome: Option<(bool, String)>,
}

impl BackupsPage {
    /// Runs that hold the camera's own files (what a restore sends).
    pub fn restorable(&self) -> usize {
        self.sets.iter().filter(|s| !s.files.is_empty()).count()
    }

    pub fn changed(&self) -> usize {
        self.diff
            .iter()
            .filter(|l| !matches!(l, DiffLine::Same(_)))
            .count()
    }
}

/// `/devices/{id}/backups[?a=KEY&b=KEY]`.
pub async fn backups(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let actor = me.actor();
    let sets = state
        .console
        .config_backups(&state.tiers, &actor, id)
        .await?;
    let (a, b) = (f.get("a"), f.get("b"));
    let diff = if !a.is_empty() && !b.is_empty() {
        // Older first, whichever way they were picked.
        let (a, b) = if a <= b { (&a, &b) } else { (&b, &a) };
        state
            .console
            .config_backup_diff(&state.tiers, &actor, id, a, b)
            .await?
    } else {
        Vec::new()
    };
    Ok(BackupsPage {
        me,
        device_id: id,
        sets,
        a: a.min(b.clone()),
        b: f.get("a").max(f.get("b")),
        diff,
        outcome: None,
    }
    .into_response())
}

/// `POST /devices/{id}/backups/restore` (`stamp`, `confirm`): give the
/// camera back its own backup files of that run. The page comes back with
/// the outcome beside the list, whatever the camera said; the request
/// itself failing (no such backup, out of scope) is an error page.
pub async fn restore(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let actor = me.actor();
    let stamp = f.get("stamp");
    let outcome = if f.get("confirm") != "on" {
        (
            false,
            format!(
                "Not restored: tick that the camera's configuration is to be replaced by the backup of {stamp}."
            ),
        )
    } else {
        match state
            .console
            .restore_config_backup(&state.tiers, &state.provisioner, &actor, id, &stamp)
            .await
        {
            Ok(msg) => (true, format!("Restored: {msg}.")),
            Err(e) if e.kind == ErrorKind::PermissionDenied || e.kind == ErrorKind::NotFound => {
                return Err(e.into());
            }
            Err(e) => (false, format!("Not restored: {}", e.message)),
        }
    };
    let sets = state
        .console
        .config_backups(&state.tiers, &actor, id)
        .await?;
    Ok(BackupsPage {
        me,
        device_id: id,
        sets,
        a: String::new(),
        b: String::new(),
        diff: Vec::new(),
        outcome: Some(outcome),
    }
    .into_response())
}

/// `/devices/{id}/backups/file?key=KEY`: one stored file, as a download.
pub async fn file(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(q.as_deref().unwrap_or("").as_bytes());
    let key = f.get("key");
    let bytes = state
        .console
        .config_backup_file(&state.tiers, &me.actor(), id, &key)
        .await?;
    let name: String = key
        .rsplit('/')
        .next()
        .unwrap_or("backup")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"camera{id}-{name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}
