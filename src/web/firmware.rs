//! The firmware pages: which versions run on which models (with the
//! approved version and how many devices are behind it), the library of
//! images (upload, approve), and staged rollouts (create, follow, pause,
//! resume, cancel). Counts and device lists stay within the user's sites.

use crate::fleet::console::firmware::RolloutTarget;
use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Multipart, Path, RawForm, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{firmware_image, firmware_rollout, rollout_device, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::console::firmware::ModelRow;
use crate::fleet::firmware::{MaintenanceWindow, RolloutPlan};

/// Upload requests may carry an image up to the library's limit.
pub const UPLOAD_BODY_LIMIT: usize = crate::fleet::firmware::MAX_IMAGE_BYTES + 1024 * 1024;

fn actor(me: &CurrentUser) -> Actor {
    me.actor()
}

fn bad(m: impl Into<String>) -> WebError {
    WebError(Error::new(ErrorKind::InvalidArgument, m.into()))
}

#[derive(Template, WebTemplate)]
#[template(path = "firmware.html")]
pub struct FirmwarePage {
    pub me: CurrentUser,
    pub rows: Vec<ModelRow>,
    pub images: Vec<firmware_image::Model>,
    pub rollouts: Vec<(firmware_rollout::Model, String)>,
    pub sites: Vec<site::Model>,
    pub error: String,
    /// The rollout form as typed, when it was refused or previewed.
    pub typed: Option<FormFields>,
    /// A preview of the rollout's waves: (wave, device name, firmware now).
    pub preview: Vec<(i32, String, String)>,
    /// Devices picked in the device list: (id, name, model); empty when
    /// the form chooses by site.
    pub picked: Vec<(i32, String, String)>,
    /// Picked devices left out (outside the user's sites, or gone).
    pub hidden: usize,
}

impl FirmwarePage {
    /// A rollout field as typed, or `default` on a fresh page.
    pub fn typed(&self, key: &str, default: &str) -> String {
        match &self.typed {
            Some(f) => f.get(key),
            None => default.to_string(),
        }
    }
    /// A maintenance day ticked in the refused form.
    pub fn day_ticked(&self, n: &usize) -> bool {
        self.typed
            .as_ref()
            .is_some_and(|f| f.all("day").contains(&n.to_string()))
    }
}

pub async fn firmware(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    Ok(firmware_page(&state, me, String::new())
        .await?
        .into_response())
}

async fn firmware_page(
    state: &State,
    me: CurrentUser,
    error: String,
) -> Result<FirmwarePage, WebError> {
    let o = state
        .console
        .firmware_overview(&state.firmware_lib, &me.actor())
        .await?;
    Ok(FirmwarePage {
        sites: state.sites.visible(&me.scope).await?,
        me,
        rows: o.rows,
        images: o.images,
        rollouts: o.rollouts,
        error,
        typed: None,
        preview: Vec::new(),
        picked: Vec::new(),
        hidden: 0,
    })
}

/// A form token in the query string (multipart forms: checked before
/// the body is read).
#[derive(serde::Deserialize)]
pub struct CsrfQuery {
    #[serde(default)]
    csrf: String,
}

impl CsrfQuery {
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Upload an image to the library (multipart: vendor, model, version,
/// notes, file). The role (the route's gate) and the form token (in the
/// query string, so it is known before the body) are checked before a
/// byte of the body is read; the file streams to a temporary file, capped at the library's
/// limit, and at most [`crate::app::MAX_UPLOADS`] uploads run at once.
pub async fn upload(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    axum::extract::Query(q): axum::extract::Query<CsrfQuery>,
    mut mp: Multipart,
) -> Result<Response, WebError> {
    me.check_csrf(&q.csrf)?;
    let _slot = state.limits.upload()?;
    let tmp = state
        .upload_dir
        .join(format!("firmware-{}.upload", uuid::Uuid::new_v4().simple()));
    let result = receive(&mut mp, &tmp).await;
    let stored = match result {
        Ok(fields) => {
            let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
            state
                .firmware_lib
                .upload_file(
                    &get("vendor"),
                    &get("model"),
                    &get("version"),
                    &get("notes"),
                    &tmp,
                    &me.actor(),
                )
                .await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&tmp).await;
    match stored {
        Ok(_) => Ok(Redirect::to("/firmware").into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let page = firmware_page(&state, me, e.to_string()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Read a multipart upload: small text fields into a map, the `file`
/// field chunk by chunk into `path` (never more than the image limit).
async fn receive(
    mp: &mut Multipart,
    path: &std::path::Path,
) -> Result<std::collections::HashMap<String, String>, Error> {
    use tokio::io::AsyncWriteExt;
    let bad = |m: String| Error::new(ErrorKind::InvalidArgument, m);
    let mut fields = std::collections::HashMap::new();
    let mut out = tokio::fs::File::create(path).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot store the upload: {e}"),
        )
    })?;
    while let Some(mut field) = mp
        .next_field()
        .await
        .map_err(|e| bad(format!("upload: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let mut total = 0usize;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| bad(format!("upload: {e}")))?
            {
                total += chunk.len();
                if total > crate::fleet::firmware::MAX_IMAGE_BYTES {
                    return Err(bad("file: larger than 256 MiB".into()));
                }
                out.write_all(&chunk).await.map_err(|e| {
                    Error::new(
                        ErrorKind::ResourceExhausted,
                        format!("cannot store the upload: {e}"),
                    )
                })?;
            }
        } else if fields.len() < 16 {
            let v = field.text().await.map_err(|e| bad(e.to_string()))?;
            fields.insert(name, v.chars().take(10_000).collect());
        }
    }
    out.flush().await.map_err(|e| {
        Error::new(
            ErrorKind::ResourceExhausted,
            format!("cannot store the upload: {e}"),
        )
    })?;
    Ok(fields)
}

/// Approve an image (admins).
pub async fn image_action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    match f.text("action").as_str() {
        "approve" => state.firmware_lib.approve(id, &actor(&me)).await?,
        _ => return Err(bad("action: approve")),
    }
    Ok(Redirect::to("/firmware").into_response())
}

fn parse_plan(f: &FormFields) -> Result<RolloutPlan, String> {
    let num = |k: &str, default: u64, label: &str| -> Result<u64, String> {
        let v = f.text(k);
        if v.is_empty() {
            return Ok(default);
        }
        v.parse::<u64>()
            .map_err(|_| format!("{label}: a whole number"))
    };
    let canary = num("canary", 1, "canary group")? as usize;
    let wave_size = num("wave_size", 0, "wave size")? as usize;
    let wave_percent = num("wave_percent", 25, "wave share")?;
    if wave_size == 0 && !(1..=100).contains(&wave_percent) {
        return Err("wave share: 1–100 %".into());
    }
    let window = if f.all("day").is_empty() {
        None
    } else {
        let days: Vec<u32> = f
            .all("day")
            .iter()
            .filter_map(|d| d.parse().ok())
            .filter(|d| *d < 7)
            .collect();
        let start = num("start_hour", 0, "window start")? as u32;
        let end = num("end_hour", 0, "window end")? as u32;
        if start > 23 || end > 23 {
            return Err("window hours: 0–23".into());
        }
        let offset: i32 = f
            .text("utc_offset")
            .parse::<i32>()
            .ok()
            .filter(|o| (-14 * 60..=14 * 60).contains(o))
            .ok_or("UTC offset: minutes, −840…840")?;
        Some(MaintenanceWindow {
            days,
            start_hour: start,
            end_hour: end,
            utc_offset_minutes: offset,
        })
    };
    Ok(RolloutPlan {
        canary,
        wave_size,
        wave_percent: wave_percent as u32,
        max_failures: num("max_failures", 0, "failure threshold")? as usize,
        margin_s: num("margin_s", 120, "margin")?,
        window,
        ..Default::default()
    })
}

/// The rollout form's devices: a site, or the devices picked in the list
/// (`picked=1` and their ids).
fn target_of(f: &FormFields) -> Result<RolloutTarget, Error> {
    let site = match f.text("site").as_str() {
        "" => None,
        v => Some(
            v.parse::<i32>()
                .map_err(|_| Error::new(ErrorKind::InvalidArgument, "site: not a site"))?,
        ),
    };
    let devices = (f.get("picked") == "1").then(|| f.ids("device"));
    Ok(RolloutTarget { site, devices })
}

/// The firmware page for a rollout of devices picked in the device list
/// (its bulk action): their names instead of the site choice.
pub async fn picked_page(
    state: &State,
    me: CurrentUser,
    ids: &[i32],
) -> Result<FirmwarePage, WebError> {
    let picked = state.console.bulk_preview(&me.actor(), ids).await?;
    let mut page = firmware_page(state, me, String::new()).await?;
    page.hidden = ids.len() - picked.len();
    page.picked = picked
        .into_iter()
        .map(|d| (d.id, crate::fleet::inventory::display_name(&d), d.model))
        .collect();
    Ok(page)
}

/// The page again for a rollout form as typed: with its picked devices
/// when it had them.
async fn form_page(
    state: &State,
    me: CurrentUser,
    f: &FormFields,
    error: String,
) -> Result<FirmwarePage, WebError> {
    let mut page = if f.get("picked") == "1" {
        picked_page(state, me, &f.ids("device")).await?
    } else {
        firmware_page(state, me, String::new()).await?
    };
    page.error = error;
    Ok(page)
}

pub async fn rollout_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let started = async {
        let image_id: i32 = f
            .text("image")
            .parse()
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, "image: choose one"))?;
        let plan = parse_plan(&f).map_err(|e| Error::new(ErrorKind::InvalidArgument, e))?;
        let target = target_of(&f)?;
        if f.get("action") == "preview" {
            let p = state
                .console
                .rollout_preview(&state.firmware_lib, &me.actor(), image_id, &target, &plan)
                .await?;
            return Ok(Err(p));
        }
        state
            .console
            .rollout_start(&state.firmware_lib, &me.actor(), image_id, &target, &plan)
            .await
            .map(Ok)
    }
    .await;
    match started {
        Ok(Ok(r)) => Ok(Redirect::to(&format!("/firmware/rollouts/{}", r.id)).into_response()),
        // A preview: the form as typed, and each device's wave.
        Ok(Err(p)) => {
            let mut page = form_page(&state, me, &f, String::new()).await?;
            page.preview = p
                .into_iter()
                .map(|(w, d)| (w, crate::fleet::inventory::display_name(&d), d.firmware))
                .collect();
            page.typed = Some(f);
            Ok(page.into_response())
        }
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::InvalidArgument | ErrorKind::PermissionDenied
            ) =>
        {
            let status = super::error::status_of(e.kind);
            let mut page = form_page(&state, me, &f, e.message).await?;
            page.typed = Some(f);
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "firmware_rollout.html")]
pub struct RolloutPage {
    pub me: CurrentUser,
    pub rollout: firmware_rollout::Model,
    pub image: firmware_image::Model,
    pub plan: RolloutPlan,
    pub devices: Vec<(rollout_device::Model, String)>,
}

impl RolloutPage {
    /// Devices that failed (what a retry would try again).
    pub fn failed(&self) -> usize {
        self.devices
            .iter()
            .filter(|(d, _)| d.status == "failed")
            .count()
    }
}

pub async fn rollout(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let v = state
        .console
        .rollout_view(&state.firmware_lib, &me.actor(), id)
        .await?;
    Ok(RolloutPage {
        plan: v.plan,
        me,
        rollout: v.rollout,
        image: v.image,
        devices: v.devices,
    }
    .into_response())
}

pub async fn rollout_action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let action = f.text("action");
    if !["pause", "resume", "cancel"].contains(&action.as_str()) {
        return Err(bad("action: pause, resume or cancel"));
    }
    state.firmware_lib.control(id, &action, &actor(&me)).await?;
    Ok(Redirect::to(&format!("/firmware/rollouts/{id}")).into_response())
}
