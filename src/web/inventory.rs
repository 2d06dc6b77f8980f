//! Procurement pages: a device's inventory form, the inventory CSV, the
//! warranty-expiring and end-of-life views, CSV import with a dry run and
//! an all-or-nothing apply, and bulk actions on devices selected in the
//! list.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Multipart, Path, RawForm, RawQuery, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use super::pages::{
    DeviceList, DeviceQuery, device_or_404, devices_page, exact_filters, list_devices,
};
use crate::db::entities::{device, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::import::{ImportReport, MAX_IMPORT_BYTES};
use crate::fleet::inventory::{InventoryForm, site_name};

/// Request bodies for import routes may be as large as the largest file.
pub const IMPORT_BODY_LIMIT: usize = MAX_IMPORT_BYTES * 2 + 64 * 1024;

#[derive(Template, WebTemplate)]
#[template(path = "inventory.html")]
pub struct InventoryPage {
    pub me: CurrentUser,
    pub view: String,
    pub days: i64,
    pub list: DeviceList,
    pub sites: Vec<site::Model>,
    pub today: chrono::NaiveDate,
}

impl InventoryPage {
    pub fn site_of(&self, id: &Option<i32>) -> &str {
        site_name(&self.sites, *id)
    }
    pub fn past(&self, d: &Option<chrono::NaiveDate>) -> bool {
        d.is_some_and(|d| d < self.today)
    }
}

/// `/inventory?view=warranty&days=90` (default) or `view=eol&days=365`.
pub async fn inventory(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let f = FormFields::parse(raw.as_deref().unwrap_or("").as_bytes());
    let view = if f.get("view") == "eol" {
        "eol"
    } else {
        "warranty"
    };
    let days = match f.get("days").trim() {
        "" => {
            if view == "eol" {
                365
            } else {
                90
            }
        }
        d => d.parse::<i64>().map_err(|_| {
            WebError(Error::new(
                ErrorKind::InvalidArgument,
                "days: a whole number of days",
            ))
        })?,
    };
    let mut q = DeviceQuery {
        per_page: Some(200),
        page: f.get("page").parse().ok(),
        ..Default::default()
    };
    if view == "eol" {
        q.eol_within = Some(days);
        q.sort = "end_of_life".into();
    } else {
        q.warranty_within = Some(days);
        q.sort = "warranty_end".into();
    }
    let list = list_devices(&state, &me, &q).await?;
    Ok(InventoryPage {
        sites: state.sites.list().await?,
        today: state.clock.now_utc().date_naive(),
        me,
        view: view.into(),
        days,
        list,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "import.html")]
pub struct ImportPage {
    pub me: CurrentUser,
    pub report: Option<ImportReport>,
    /// The file's text, carried to the apply step.
    pub data: String,
    pub applied: bool,
    pub error: String,
}

pub async fn import_form(Extension(me): Extension<CurrentUser>) -> Result<Response, WebError> {
    me.require(me.role.can_edit_inventory())?;
    Ok(ImportPage {
        me,
        report: None,
        data: String::new(),
        applied: false,
        error: String::new(),
    }
    .into_response())
}

fn text_of(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| "the file is not UTF-8 text; save it from the spreadsheet as CSV UTF-8".into())
}

/// Dry run: upload (multipart `file`, or a `data` text field) → report.
pub async fn import_preview(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    mut mp: Multipart,
) -> Result<Response, WebError> {
    let (mut csrf, mut data) = (String::new(), Vec::new());
    let bad = |m: String| WebError(Error::new(ErrorKind::InvalidArgument, m));
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| bad(format!("upload: {e}")))?
    {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.map_err(|e| bad(e.to_string()))?,
            "file" | "data" => {
                let b = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("upload: {e}")))?;
                if !b.is_empty() {
                    data = b.to_vec();
                }
            }
            _ => {}
        }
    }
    me.check_csrf(&csrf)?;
    me.require(me.role.can_edit_inventory())?;
    let page = |report, data, error: String| ImportPage {
        me: me.clone(),
        report,
        data,
        applied: false,
        error,
    };
    if data.is_empty() {
        let p = page(None, String::new(), "file: choose a CSV file".into());
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
    }
    let text = match text_of(&data) {
        Ok(t) => t,
        Err(e) => {
            let p = page(None, String::new(), format!("file: {e}"));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
        }
    };
    let report = state
        .inventory
        .import_dry_run(text.as_bytes(), &me.scope)
        .await?;
    Ok(page(Some(report), text, String::new()).into_response())
}

/// Apply a previewed file: re-validated; all rows or none.
pub async fn import_apply(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_edit_inventory())?;
    let data = f.get("data");
    let actor = Actor::user(&me.user.username);
    match state
        .inventory
        .import_apply(data.as_bytes(), &me.scope, &actor)
        .await
    {
        Ok(report) => Ok(ImportPage {
            me,
            report: Some(report),
            data: String::new(),
            applied: true,
            error: String::new(),
        }
        .into_response()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => {
            let report = state
                .inventory
                .import_dry_run(data.as_bytes(), &me.scope)
                .await?;
            let p = ImportPage {
                me,
                report: Some(report),
                data,
                applied: false,
                error: e.message,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Bulk actions on devices selected in the list: move to a site, or
/// export the selection as CSV.
pub async fn bulk(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let ids = f.ids("device");
    if ids.is_empty() || ids.len() > 10_000 {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "devices: select between 1 and 10,000 devices",
        )));
    }
    let devices = device::Entity::find()
        .filter(me.scope.devices())
        .filter(device::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(device::Column::Id)
        .all(&state.db)
        .await?;
    let sites = state.sites.list().await?;
    match f.get("action").as_str() {
        "export" => csv_response(&state, &devices, &sites),
        "site" => {
            me.require(me.role.can_edit_inventory())?;
            let target = f.get("site");
            let target_name = match target.as_str() {
                "none" => String::new(),
                v => v
                    .parse::<i32>()
                    .ok()
                    .and_then(|id| sites.iter().find(|s| s.id == id))
                    .map(|s| s.name.clone())
                    .ok_or_else(|| {
                        WebError(Error::new(
                            ErrorKind::InvalidArgument,
                            "site: choose a site",
                        ))
                    })?,
            };
            let actor = Actor::user(&me.user.username);
            let mut plans = Vec::new();
            for d in &devices {
                let mut form = InventoryForm::from_device(d, site_name(&sites, d.site_id));
                form.site = target_name.clone();
                match state.inventory.plan_edit(d, &form, &sites, &me.scope) {
                    Ok(p) => plans.push(p),
                    Err(errors) => {
                        let why: Vec<String> =
                            errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                        return Err(WebError(Error::new(
                            ErrorKind::InvalidArgument,
                            format!("device {}: {}; nothing was changed", d.id, why.join("; ")),
                        )));
                    }
                }
            }
            let txn = state.db.begin().await?;
            let mut changed = 0;
            for p in plans {
                if state
                    .inventory
                    .write_edit(&txn, p, "device.bulk_site", &actor)
                    .await?
                    .is_some()
                {
                    changed += 1;
                }
            }
            txn.commit().await?;
            state.inventory.touch();
            let label = if target_name.is_empty() {
                "no site".to_string()
            } else {
                target_name
            };
            let notice = format!(
                "Moved {changed} of {} selected devices to {label}.",
                devices.len()
            );
            Ok(devices_page(&state, me, DeviceQuery::default(), notice)
                .await?
                .into_response())
        }
        _ => Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "action: choose what to do with the selection",
        ))),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "inventory_form.html")]
pub struct InventoryFormPage {
    pub me: CurrentUser,
    pub d: device::Model,
    pub sites: Vec<crate::db::entities::site::Model>,
    pub f: crate::fleet::inventory::InventoryForm,
    pub errors: crate::fleet::inventory::FieldErrors,
}

impl InventoryFormPage {
    /// The error for a field, or empty (templates show it next to the input).
    pub fn err(&self, field: &str) -> &str {
        self.errors.get(field).map(String::as_str).unwrap_or("")
    }
}

/// The sites a user may put devices into.
async fn sites_for(
    state: &State,
    me: &CurrentUser,
) -> Result<Vec<crate::db::entities::site::Model>, WebError> {
    Ok(state.sites.visible(&me.scope).await?)
}

pub async fn inventory_form(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    me.require(me.role.can_edit_inventory())?;
    let d = device_or_404(&state, &me, id).await?;
    let all_sites = state.sites.list().await?;
    let f = crate::fleet::inventory::InventoryForm::from_device(
        &d,
        crate::fleet::inventory::site_name(&all_sites, d.site_id),
    );
    let sites = sites_for(&state, &me).await?;
    Ok(InventoryFormPage {
        me,
        d,
        sites,
        f,
        errors: Default::default(),
    }
    .into_response())
}

#[derive(serde::Deserialize)]
pub struct InventorySubmit {
    csrf: String,
    #[serde(flatten)]
    form: crate::fleet::inventory::InventoryForm,
}

pub async fn inventory_save(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    axum::extract::Form(s): axum::extract::Form<InventorySubmit>,
) -> Result<Response, WebError> {
    me.check_csrf(&s.csrf)?;
    me.require(me.role.can_edit_inventory())?;
    let actor = crate::fleet::audit::Actor::user(&me.user.username);
    match state
        .inventory
        .edit_inventory(id, &s.form, &me.scope, &actor)
        .await?
    {
        crate::fleet::inventory::InventoryEdit::Saved(_) => {
            Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
        }
        crate::fleet::inventory::InventoryEdit::Invalid(errors) => {
            let d = device_or_404(&state, &me, id).await?;
            let sites = sites_for(&state, &me).await?;
            let page = InventoryFormPage {
                me,
                d,
                sites,
                f: s.form,
                errors,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// The inventory as CSV (every device, inventory columns). Filters as on
/// the device list apply.
pub async fn inventory_csv(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = DeviceQuery::parse(raw.as_deref())?;
    let devices = device::Entity::find()
        .filter(exact_filters(&state, &me, &q)?)
        .order_by_asc(device::Column::Id)
        .all(&state.db)
        .await?;
    let sites = state.sites.list().await?;
    csv_response(&state, &devices, &sites)
}

/// Devices as the inventory CSV (the import reads the same columns).
pub fn csv_response(
    state: &State,
    devices: &[device::Model],
    sites: &[crate::db::entities::site::Model],
) -> Result<Response, WebError> {
    use crate::fleet::csv::row;
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let mut out = row([
        "id",
        "name",
        "site",
        "manufacturer",
        "model",
        "serial",
        "mac",
        "firmware",
        "status",
        "location",
        "asset_tag",
        "purchase_order",
        "purchase_date",
        "supplier",
        "cost",
        "warranty_end",
        "end_of_life",
        "notes",
    ]);
    for d in devices {
        let cost = d
            .cost_cents
            .map(|c| format!("{}.{:02}", c / 100, c % 100))
            .unwrap_or_default();
        out.push_str(&row([
            d.id.to_string().as_str(),
            &d.name,
            crate::fleet::inventory::site_name(sites, d.site_id),
            &d.manufacturer,
            &d.model,
            d.serial.as_deref().unwrap_or(""),
            d.mac.as_deref().unwrap_or(""),
            &d.firmware,
            &d.status,
            &d.location,
            &d.asset_tag,
            &d.purchase_order,
            &date(d.purchase_date),
            &d.supplier,
            &cost,
            &date(d.warranty_end),
            &date(d.end_of_life),
            &d.notes,
        ]));
    }
    let filename = format!(
        "camfleet-inventory-{}.csv",
        state.clock.now_utc().format("%Y%m%d")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        out,
    )
        .into_response())
}
