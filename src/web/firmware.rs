//! The firmware pages: which versions run on which models (with the
//! approved version and how many devices are behind it), the library of
//! images (upload, approve), and staged rollouts (create, follow, pause,
//! resume, cancel). Counts and device lists stay within the user's sites.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Multipart, Path, RawForm, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{device, firmware_image, firmware_rollout, rollout_device, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::firmware::{Firmware, MaintenanceWindow, RolloutPlan};

/// Upload requests may carry an image up to the library's limit.
pub const UPLOAD_BODY_LIMIT: usize = crate::fleet::firmware::MAX_IMAGE_BYTES + 1024 * 1024;

fn actor(me: &CurrentUser) -> Actor {
    Actor::user(&me.user.username)
}

fn bad(m: impl Into<String>) -> WebError {
    WebError(Error::new(ErrorKind::InvalidArgument, m.into()))
}

pub struct ModelRow {
    pub manufacturer: String,
    pub model: String,
    pub total: i64,
    /// (firmware, count, link to the devices)
    pub versions: Vec<(String, i64, String)>,
    /// The approved version, and how many devices run another one.
    pub approved: Option<String>,
    pub behind: i64,
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
    let counts: Vec<(String, String, String, i64)> = device::Entity::find()
        .filter(me.scope.devices())
        .select_only()
        .column(device::Column::Manufacturer)
        .column(device::Column::Model)
        .column(device::Column::Firmware)
        .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "n")
        .group_by(device::Column::Manufacturer)
        .group_by(device::Column::Model)
        .group_by(device::Column::Firmware)
        .order_by_asc(device::Column::Manufacturer)
        .order_by_asc(device::Column::Model)
        .order_by_asc(device::Column::Firmware)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut rows: Vec<ModelRow> = Vec::new();
    for (manufacturer, model, fw, n) in counts {
        let link = {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            s.append_pair("manufacturer", &manufacturer);
            s.append_pair("model", &model);
            s.append_pair("firmware", &fw);
            format!("/devices?{}", s.finish())
        };
        match rows.last_mut() {
            Some(r) if r.manufacturer == manufacturer && r.model == model => {
                r.total += n;
                r.versions.push((fw, n, link));
            }
            _ => rows.push(ModelRow {
                manufacturer,
                model,
                total: n,
                versions: vec![(fw, n, link)],
                approved: None,
                behind: 0,
            }),
        }
    }
    let images = state.firmware_lib.images().await?;
    for r in &mut rows {
        if let Some(a) = Firmware::approved_for(&images, &r.model) {
            r.behind = r
                .versions
                .iter()
                .filter(|(v, _, _)| *v != a.version)
                .map(|(_, n, _)| n)
                .sum();
            r.approved = Some(a.version.clone());
        }
    }
    let versions: std::collections::HashMap<i32, String> = images
        .iter()
        .map(|i| (i.id, format!("{} {}", i.model_pattern, i.version)))
        .collect();
    let rollouts = firmware_rollout::Entity::find()
        .order_by_desc(firmware_rollout::Column::Id)
        .limit(20)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| {
            let v = versions.get(&r.image_id).cloned().unwrap_or_default();
            (r, v)
        })
        .collect();
    Ok(FirmwarePage {
        sites: state.sites.list().await?,
        me,
        rows,
        images,
        rollouts,
        error,
    })
}

/// Upload an image to the library (multipart: vendor, model, version,
/// notes, file).
pub async fn upload(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    mut mp: Multipart,
) -> Result<Response, WebError> {
    let mut fields: std::collections::HashMap<String, String> = Default::default();
    let mut data = bytes::Bytes::new();
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| bad(format!("upload: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            data = field
                .bytes()
                .await
                .map_err(|e| bad(format!("upload: {e}")))?;
        } else {
            let v = field.text().await.map_err(|e| bad(e.to_string()))?;
            fields.insert(name, v);
        }
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    me.check_csrf(&get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    match state
        .firmware_lib
        .upload(
            &get("vendor"),
            &get("model"),
            &get("version"),
            &get("notes"),
            data,
            &actor(&me),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to("/firmware").into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let page = firmware_page(&state, me, e.to_string()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
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
    me.require(me.role.can_manage_users())?;
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
    })
}

pub async fn rollout_create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    let image_id: i32 = f
        .text("image")
        .parse()
        .map_err(|_| bad("image: choose one"))?;
    let img = state.firmware_lib.image(image_id).await?;
    let plan = match parse_plan(&f) {
        Ok(p) => p,
        Err(e) => {
            let page = firmware_page(&state, me, e).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    // The image's models, within the user's sites (and the chosen site).
    let mut q = device::Entity::find().filter(me.scope.devices());
    let site = f.text("site");
    if !site.is_empty() {
        let sid: i32 = site.parse().map_err(|_| bad("site: not a site"))?;
        q = q.filter(device::Column::SiteId.eq(sid));
    }
    let ids: Vec<i32> = q
        .all(&state.db)
        .await?
        .into_iter()
        .filter(|d| crate::fleet::firmware::model_matches(&img.model_pattern, &d.model))
        .map(|d| d.id)
        .collect();
    match state
        .firmware_lib
        .create_rollout(image_id, &ids, &plan, &actor(&me))
        .await
    {
        Ok(r) => Ok(Redirect::to(&format!("/firmware/rollouts/{}", r.id)).into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let page = firmware_page(&state, me, e.to_string()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
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

pub async fn rollout(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let rollout = firmware_rollout::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no rollout {id}"))))?;
    let image = state.firmware_lib.image(rollout.image_id).await?;
    let rows = rollout_device::Entity::find()
        .filter(rollout_device::Column::RolloutId.eq(id))
        .order_by_asc(rollout_device::Column::Wave)
        .order_by_asc(rollout_device::Column::Id)
        .all(&state.db)
        .await?;
    let names: std::collections::HashMap<i32, String> = device::Entity::find()
        .filter(me.scope.devices())
        .filter(device::Column::Id.is_in(rows.iter().map(|r| r.device_id)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|d| (d.id, crate::fleet::inventory::display_name(&d)))
        .collect();
    let devices = rows
        .into_iter()
        .filter_map(|r| {
            let n = names.get(&r.device_id)?.clone();
            Some((r, n))
        })
        .collect();
    Ok(RolloutPage {
        plan: serde_json::from_value(rollout.plan.clone()).unwrap_or_default(),
        me,
        rollout,
        image,
        devices,
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
    me.require(me.role.can_operate_devices())?;
    let action = f.text("action");
    if !["pause", "resume", "cancel"].contains(&action.as_str()) {
        return Err(bad("action: pause, resume or cancel"));
    }
    state.firmware_lib.control(id, &action, &actor(&me)).await?;
    Ok(Redirect::to(&format!("/firmware/rollouts/{id}")).into_response())
}
