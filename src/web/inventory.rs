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

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use super::pages::{DeviceList, DeviceQuery, devices_page};
use crate::db::entities::{device, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::console::devices::DeviceAction;
use crate::fleet::import::{ImportReport, MAX_IMPORT_BYTES};
use crate::fleet::inventory::site_name;

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
    let list = state.console.list_devices(&me.actor(), &q).await?;
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
    axum::extract::Query(q): axum::extract::Query<super::firmware::CsrfQuery>,
    mut mp: Multipart,
) -> Result<Response, WebError> {
    // Token (in the query string; the gate checked the role) before a
    // byte of the body.
    me.check_csrf(q.csrf())?;
    let _slot = state.limits.import()?;
    let mut data = Vec::new();
    let bad = |m: String| WebError(Error::new(ErrorKind::InvalidArgument, m));
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| bad(format!("upload: {e}")))?
    {
        match field.name().unwrap_or("") {
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
    let data = f.get("data");
    let actor = me.actor();
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
/// A bulk action's confirmation (the devices it would touch) or its
/// outcome (what each device said).
#[derive(Template, WebTemplate)]
#[template(path = "bulk.html")]
pub struct BulkPage {
    pub me: CurrentUser,
    /// `reboot`, `retire`, …
    pub action: String,
    /// What it does, in words ("Reboot", "Retire (reason: …)").
    pub what: String,
    /// The devices, by name (confirmation) …
    pub devices: Vec<device::Model>,
    /// … or each one's outcome: (device, outcome).
    pub outcomes: Vec<(String, crate::fleet::console::devices::ActionOutcome)>,
    /// Selected ids the user may not act on (outside their sites).
    pub hidden: usize,
    /// The action's own fields, passed on to the confirmation.
    pub params: Vec<(String, String)>,
    /// For `provision`: the profiles the user may apply, (id, name).
    pub profiles: Vec<(i32, String)>,
}

impl BulkPage {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| !o.ok).count()
    }
    pub fn summary_class(&self) -> &'static str {
        match (self.outcomes.len() - self.failed(), self.failed()) {
            (_, 0) => "notice",
            (0, _) => "notice bad",
            _ => "notice partial",
        }
    }
}

/// A bulk form's device action, its words and its own fields.
type BulkAsk = (DeviceAction, String, Vec<(String, String)>);

/// The device action a bulk form asks for, its words and its fields.
fn bulk_action(f: &FormFields) -> Result<BulkAsk, WebError> {
    let bad = |m: &str| WebError(Error::new(ErrorKind::InvalidArgument, m.to_string()));
    Ok(match f.get("action").as_str() {
        "reboot" => (DeviceAction::Reboot, "Reboot".into(), vec![]),
        "retire" => {
            let reason = f.text("reason");
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(bad("Retire: give a reason (at most 500 characters)"));
            }
            (
                DeviceAction::Retire {
                    reason: reason.clone(),
                },
                format!("Retire (reason: {reason})"),
                vec![("reason".into(), reason)],
            )
        }
        "unretire" => (DeviceAction::Unretire, "Return to service".into(), vec![]),
        "record" => {
            let profile = f.text("profile");
            let transport = match f.get("transport").as_str() {
                "" | "tcp" => "tcp".to_string(),
                "udp" => "udp".to_string(),
                _ => return Err(bad("transport: tcp or udp")),
            };
            let (action, what) = if profile.is_empty() {
                (
                    DeviceAction::Recording {
                        profile: None,
                        transport: None,
                    },
                    "Stop recording".to_string(),
                )
            } else {
                (
                    DeviceAction::Recording {
                        profile: Some(profile.clone()),
                        transport: Some(transport.clone()),
                    },
                    format!("Record media profile {profile} over {transport}"),
                )
            };
            (
                action,
                what,
                vec![("profile".into(), profile), ("transport".into(), transport)],
            )
        }
        "backfill" => (
            DeviceAction::Backfill,
            "Fill recording gaps from the cameras' cards".into(),
            vec![],
        ),
        _ => {
            return Err(bad("action: choose what to do with the selection"));
        }
    })
}

pub async fn bulk(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    // The ticked rows, or every device the list's filter matches.
    let ids = if f.get("scope") == "matching" {
        let q = DeviceQuery::parse(Some(&f.get("filter")))?;
        state.console.device_ids_matching(&me.actor(), &q).await?
    } else {
        f.ids("device")
    };
    match f.get("action").as_str() {
        "export" => {
            let _slot = state.limits.export()?;
            Ok(csv_response(
                state.console.selection_csv(&me.actor(), &ids).await?,
            ))
        }
        "site" => {
            let target = match f.get("site").as_str() {
                "none" => None,
                v => Some(v.parse::<i32>().map_err(|_| {
                    WebError(Error::new(
                        ErrorKind::InvalidArgument,
                        "site: choose a site",
                    ))
                })?),
            };
            let m = state.console.bulk_move(&me.actor(), &ids, target).await?;
            let notice = format!(
                "Moved {} of {} selected devices to {}.",
                m.changed, m.selected, m.site
            );
            Ok(devices_page(&state, me, DeviceQuery::default(), notice)
                .await?
                .into_response())
        }
        // Firmware: the rollout form, for exactly these devices.
        "firmware" => Ok(super::firmware::picked_page(&state, me, &ids)
            .await?
            .into_response()),
        // A profile: the devices and the profile to plan for them; the
        // plan, then Apply, follow on the profile's page.
        "provision" => {
            let devices = state.console.bulk_preview(&me.actor(), &ids).await?;
            let profiles = state.provisioner.profiles_for(&me.actor()).await?;
            Ok(BulkPage {
                me,
                action: "provision".into(),
                what: "Provision with a profile".into(),
                hidden: ids.len() - devices.len(),
                devices,
                outcomes: Vec::new(),
                params: Vec::new(),
                profiles: profiles.into_iter().map(|p| (p.id, p.name)).collect(),
            }
            .into_response())
        }
        _ => {
            let (action, what, params) = bulk_action(&f)?;
            let devices = state.console.bulk_preview(&me.actor(), &ids).await?;
            let hidden = ids.len() - devices.len();
            if f.get("confirm") != "yes" {
                // First the devices it would touch, and a confirmation.
                return Ok(BulkPage {
                    me,
                    action: f.get("action"),
                    what,
                    devices,
                    outcomes: Vec::new(),
                    hidden,
                    params,
                    profiles: Vec::new(),
                }
                .into_response());
            }
            let ops = state.device_ops();
            let allowed: Vec<i32> = devices.iter().map(|d| d.id).collect();
            let out = state
                .console
                .bulk_act(&ops, &me.actor(), &allowed, action)
                .await?;
            let names: std::collections::HashMap<i32, String> =
                devices.into_iter().map(|d| (d.id, d.name)).collect();
            let outcomes = out
                .into_iter()
                .map(|o| (names.get(&o.device_id).cloned().unwrap_or_default(), o))
                .collect();
            Ok(BulkPage {
                me,
                action: f.get("action"),
                what,
                devices: Vec::new(),
                outcomes,
                hidden,
                params,
                profiles: Vec::new(),
            }
            .into_response())
        }
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
    let (d, f) = state.console.inventory_form(&me.actor(), id).await?;
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
    let actor = me.actor();
    match state
        .inventory
        .edit_inventory(id, &s.form, &me.scope, &actor)
        .await?
    {
        crate::fleet::inventory::InventoryEdit::Saved(_) => {
            Ok(axum::response::Redirect::to(&format!("/devices/{id}")).into_response())
        }
        crate::fleet::inventory::InventoryEdit::Invalid(errors) => {
            let d = state.console.device_in_scope(&me.actor(), id).await?;
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
    let _slot = state.limits.export()?;
    Ok(csv_response(
        state.console.inventory_csv(&me.actor(), &q).await?,
    ))
}

/// A CSV download.
pub fn csv_response(csv: crate::fleet::console::inventory::CsvExport) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", csv.filename),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        csv.body,
    )
        .into_response()
}
