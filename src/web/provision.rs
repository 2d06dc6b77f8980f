//! Provisioning pages (technicians and admins): profiles (desired state,
//! validated per field), a plan of any selection of devices within the
//! user's sites, apply as a task with live progress, resume after a
//! restart, a rotated password shown once, and the drift check.

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
use crate::db::entities::{device, provision_item, provision_profile, provision_task, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::progress::Progress;
use crate::fleet::provision::form::parse_spec;
use crate::fleet::provision::{DevicePlan, ProfileSpec, Provisioner, ServersSpec, SettingResult};
use crate::onvif::encoder::EncoderWant;

fn actor(me: &CurrentUser) -> Actor {
    me.actor()
}

/// The edit form's values (strings as typed).
#[derive(Debug, Clone, Default)]
pub struct SpecForm {
    pub name: String,
    pub time_mode: String,
    pub tz: String,
    pub ntp_mode: String,
    pub ntp_servers: String,
    pub dns_mode: String,
    pub dns_servers: String,
    pub search_domains: String,
    pub hostname: String,
    pub discoverable: String,
    pub name_scope: String,
    pub location_scope: String,
    /// main, sub: resolution `WxH`, fps, bitrate, gov, profile.
    pub enc: [[String; 5]; 2],
    /// username, level, "set" when a password is stored.
    pub users: Vec<(String, String, bool)>,
    pub rotate: bool,
    /// The owning site's id, or empty for a shared profile.
    pub owner_site: String,
}

impl SpecForm {
    pub fn from_spec(name: &str, s: &ProfileSpec) -> Self {
        let mode = |o: &Option<ServersSpec>| match o {
            None => "",
            Some(x) if x.from_dhcp => "dhcp",
            Some(_) => "manual",
        };
        let enc = |e: &Option<EncoderWant>| -> [String; 5] {
            let e = e.clone().unwrap_or_default();
            [
                match (e.width, e.height) {
                    (Some(w), Some(h)) => format!("{w}x{h}"),
                    _ => String::new(),
                },
                e.frame_rate.map(|v| v.to_string()).unwrap_or_default(),
                e.bitrate_kbps.map(|v| v.to_string()).unwrap_or_default(),
                e.gov_length.map(|v| v.to_string()).unwrap_or_default(),
                e.profile.unwrap_or_default(),
            ]
        };
        let mut users: Vec<(String, String, bool)> = s
            .users
            .iter()
            .map(|u| (u.username.clone(), u.level.clone(), true))
            .collect();
        users.resize(
            users.len().max(3),
            (String::new(), "Operator".into(), false),
        );
        SpecForm {
            name: name.into(),
            time_mode: match &s.time {
                None => "",
                Some(t) if t.ntp => "ntp",
                Some(_) => "manual",
            }
            .into(),
            tz: s
                .time
                .as_ref()
                .and_then(|t| t.tz.clone())
                .unwrap_or_default(),
            ntp_mode: mode(&s.ntp).into(),
            ntp_servers: s
                .ntp
                .as_ref()
                .map(|x| x.servers.join(" "))
                .unwrap_or_default(),
            dns_mode: mode(&s.dns).into(),
            dns_servers: s
                .dns
                .as_ref()
                .map(|x| x.servers.join(" "))
                .unwrap_or_default(),
            search_domains: s
                .dns
                .as_ref()
                .map(|x| x.search_domains.join(" "))
                .unwrap_or_default(),
            hostname: s.hostname.clone().unwrap_or_default(),
            discoverable: match s.discoverable {
                None => "",
                Some(true) => "yes",
                Some(false) => "no",
            }
            .into(),
            name_scope: s.name_scope.clone().unwrap_or_default(),
            location_scope: s.location_scope.clone().unwrap_or_default(),
            enc: [enc(&s.main_encoder), enc(&s.sub_encoder)],
            users,
            rotate: s.rotate_admin_password,
            owner_site: String::new(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "provision.html")]
pub struct IndexPage {
    pub me: CurrentUser,
    /// Sites a profile may belong to (the user's).
    pub owner_sites: Vec<site::Model>,
    pub profiles: Vec<provision_profile::Model>,
    pub tasks: Vec<(provision_task::Model, String)>,
    pub drifted: Vec<device::Model>,
    pub form: SpecForm,
    pub errors: Vec<String>,
    pub notice: String,
}

async fn index_page(
    state: &State,
    me: CurrentUser,
    form: SpecForm,
    errors: Vec<String>,
    notice: String,
) -> Result<IndexPage, WebError> {
    let ix = state
        .console
        .provision_index(&state.provisioner, &me.actor())
        .await?;
    Ok(IndexPage {
        owner_sites: state.sites.visible(&me.scope).await?,
        me,
        profiles: ix.profiles,
        tasks: ix.tasks,
        drifted: ix.drifted,
        form,
        errors,
        notice,
    })
}

/// The refused form's errors about one field (by the words they start
/// with), for showing beside it; empty when it has none.
fn errors_about(errors: &[String], prefix: &str) -> String {
    errors
        .iter()
        .filter(|e| e.starts_with(prefix))
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

impl IndexPage {
    pub fn field_error(&self, prefix: &str) -> String {
        errors_about(&self.errors, prefix)
    }

    pub fn owner_name(&self, site: &Option<i32>) -> String {
        match site {
            None => "every site".into(),
            Some(_) => crate::fleet::inventory::site_name(&self.owner_sites, *site).to_string(),
        }
    }
}

pub async fn index(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let mut form = SpecForm::from_spec("", &ProfileSpec::default());
    form.name.clear();
    Ok(index_page(&state, me, form, Vec::new(), String::new())
        .await?
        .into_response())
}

/// Re-show the form with the user's input after an error.
fn form_again(f: &FormFields) -> SpecForm {
    let mut form = SpecForm {
        name: f.text("name"),
        time_mode: f.text("time_mode"),
        tz: f.text("tz"),
        ntp_mode: f.text("ntp_mode"),
        ntp_servers: f.text("ntp_servers"),
        dns_mode: f.text("dns_mode"),
        dns_servers: f.text("dns_servers"),
        search_domains: f.text("search_domains"),
        hostname: f.text("hostname"),
        discoverable: f.text("discoverable"),
        name_scope: f.text("name_scope"),
        location_scope: f.text("location_scope"),
        rotate: f.get("rotate") == "on",
        owner_site: f.text("owner_site"),
        ..Default::default()
    };
    for (i, kind) in ["main", "sub"].iter().enumerate() {
        for (j, n) in ["resolution", "fps", "bitrate", "gov", "profile"]
            .iter()
            .enumerate()
        {
            form.enc[i][j] = f.text(&format!("{kind}_{n}"));
        }
    }
    let names = f.all("user_name");
    let levels = f.all("user_level");
    form.users = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), levels.get(i).cloned().unwrap_or_default(), false))
        .collect();
    form.users.resize(
        form.users.len().max(3),
        (String::new(), "Operator".into(), false),
    );
    form
}

pub async fn create(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let p = &state.provisioner;
    let owner = match owner_of(&f) {
        Ok(o) => o,
        Err(e) => {
            let page = index_page(&state, me, form_again(&f), vec![e], String::new()).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    match parse_spec(&f, None, &|pw| p.seal_password(pw)) {
        Err(errors) => {
            let page = index_page(&state, me, form_again(&f), errors, String::new()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Ok((name, spec)) => match p.save_profile(None, &name, owner, &spec, &actor(&me)).await {
            Ok(m) => Ok(Redirect::to(&format!("/provision/profiles/{}", m.id)).into_response()),
            Err(e) => {
                let page = index_page(
                    &state,
                    me,
                    form_again(&f),
                    vec![e.to_string()],
                    String::new(),
                )
                .await?;
                Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
            }
        },
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "provision_profile.html")]
pub struct ProfilePage {
    pub me: CurrentUser,
    pub owner_sites: Vec<site::Model>,
    pub profile: provision_profile::Model,
    pub form: SpecForm,
    pub errors: Vec<String>,
    pub sites: Vec<site::Model>,
    pub plans: Vec<DevicePlan>,
    pub planned: bool,
    /// The site the plan was made for ("" for every device), kept selected.
    pub planned_site: String,
    /// The devices picked in the device list the plan was made for (kept
    /// for planning again); empty when planned by site.
    pub picked: Vec<i32>,
}

impl ProfilePage {
    pub fn field_error(&self, prefix: &str) -> String {
        errors_about(&self.errors, prefix)
    }

    pub fn action_text(&self, a: &crate::fleet::provision::Action) -> (&'static str, String) {
        use crate::fleet::provision::Action;
        match a {
            Action::Same => ("same", "already as wanted".into()),
            Action::Change => ("change", "will change".into()),
            Action::Cannot(w) => ("cannot", format!("cannot: {w}")),
        }
    }
}

async fn profile_or_404(
    state: &State,
    me: &CurrentUser,
    id: i32,
) -> Result<provision_profile::Model, WebError> {
    Ok(state.provisioner.profile_for(&me.actor(), id).await?)
}

/// The owner field: a site id, or empty for shared.
fn owner_of(f: &FormFields) -> Result<Option<i32>, String> {
    match f.text("owner_site").as_str() {
        "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| "Belongs to: choose a site".to_string()),
    }
}

fn form_of(profile: &provision_profile::Model, spec: &ProfileSpec) -> SpecForm {
    let mut f = SpecForm::from_spec(&profile.name, spec);
    f.owner_site = profile.site_id.map(|s| s.to_string()).unwrap_or_default();
    f
}

pub async fn profile(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    let profile = profile_or_404(&state, &me, id).await?;
    let spec = Provisioner::spec_of(&profile)?;
    let sites = state.sites.visible(&me.scope).await?;
    Ok(ProfilePage {
        form: form_of(&profile, &spec),
        owner_sites: sites.clone(),
        sites,
        me,
        profile,
        errors: Vec::new(),
        plans: Vec::new(),
        planned: false,
        planned_site: String::new(),
        picked: Vec::new(),
    }
    .into_response())
}

pub async fn update(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let profile = profile_or_404(&state, &me, id).await?;
    let old = Provisioner::spec_of(&profile)?;
    let p = &state.provisioner;
    let result = match (
        owner_of(&f),
        parse_spec(&f, Some(&old), &|pw| p.seal_password(pw)),
    ) {
        (Err(e), _) => Err(vec![e]),
        (_, Err(errors)) => Err(errors),
        (Ok(owner), Ok((name, spec))) => match p
            .save_profile(Some(id), &name, owner, &spec, &actor(&me))
            .await
        {
            Ok(m) => Ok(m),
            Err(e) if e.kind == ErrorKind::PermissionDenied => return Err(e.into()),
            Err(e) => Err(vec![e.to_string()]),
        },
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/provision/profiles/{id}")).into_response()),
        Err(errors) => {
            let sites = state.sites.visible(&me.scope).await?;
            let page = ProfilePage {
                form: form_again(&f),
                owner_sites: sites.clone(),
                sites,
                me,
                profile,
                errors,
                plans: Vec::new(),
                planned: false,
                planned_site: String::new(),
                picked: Vec::new(),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// Devices the form selects, within the user's sites: ticked ids, or a
/// site, or every device the user may see.
async fn selected(state: &State, me: &CurrentUser, f: &FormFields) -> Result<Vec<i32>, WebError> {
    let site =
        match f.text("site").as_str() {
            "" => None,
            v => Some(v.parse().map_err(|_| {
                WebError(Error::new(ErrorKind::InvalidArgument, "site: not a site"))
            })?),
        };
    let sel = crate::fleet::console::provision::Selection {
        devices: f.ids("device"),
        site,
    };
    Ok(state.console.select_devices(&me.actor(), &sel).await?)
}

pub async fn run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    plan_or_apply(&state, me, id, &f).await
}

/// `POST /provision/plan` (`profile`, `device`…): the plan of a profile
/// for devices picked in the device list (its bulk action "Provision with
/// a profile"), the same page as the profile's own plan.
pub async fn plan_picked(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let id: i32 = f.text("profile").parse().map_err(|_| {
        WebError(Error::new(
            ErrorKind::InvalidArgument,
            "profile: choose the profile to plan",
        ))
    })?;
    if f.ids("device").is_empty() {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "Tick devices in the list first (or choose every device matching the filter)",
        )));
    }
    plan_or_apply(&state, me, id, &f).await
}

/// A profile's plan for the form's devices, or (`action=apply`) its task
/// for exactly the devices of the plan read.
async fn plan_or_apply(
    state: &State,
    me: CurrentUser,
    id: i32,
    f: &FormFields,
) -> Result<Response, WebError> {
    let profile = profile_or_404(state, &me, id).await?;
    let spec = Provisioner::spec_of(&profile)?;
    if f.text("action") == "apply" {
        // Apply takes exactly the devices of the plan the user read (their
        // ids are in the plan's form), never a selection made again.
        let planned = f.ids("device");
        if planned.is_empty() {
            return Err(WebError(Error::new(
                ErrorKind::InvalidArgument,
                "Apply follows a plan: make the plan (dry run), read it, then apply it to its devices",
            )));
        }
        let ids = selected(state, &me, f).await?;
        if ids.len() != planned.len() {
            return Err(WebError(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} of the {} planned devices can no longer be provisioned by you (retired, moved or deleted); make the plan again",
                    planned.len() - ids.len(),
                    planned.len()
                ),
            )));
        }
        let task = state.provisioner.create_task(id, &ids, &actor(&me)).await?;
        let p = state.provisioner.clone();
        tokio::spawn(async move {
            if let Err(e) = p.run(task).await {
                tracing::warn!(task, error = %e, "provisioning task failed");
            }
        });
        return Ok(Redirect::to(&format!("/provision/tasks/{task}")).into_response());
    }
    let ids = selected(state, &me, f).await?;
    let plans = state.provisioner.plan(&spec, &ids).await?;
    let sites = state.sites.visible(&me.scope).await?;
    Ok(ProfilePage {
        form: form_of(&profile, &spec),
        owner_sites: sites.clone(),
        sites,
        me,
        profile,
        errors: Vec::new(),
        plans,
        planned: true,
        planned_site: f.text("site"),
        picked: f.ids("device"),
    }
    .into_response())
}

pub struct ItemRow {
    pub item: provision_item::Model,
    pub device: String,
    pub results: Vec<SettingResult>,
    pub has_secret: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "provision_task.html")]
pub struct TaskPage {
    pub me: CurrentUser,
    pub task: provision_task::Model,
    pub profile: String,
    pub items: Vec<ItemRow>,
    pub progress: Progress,
    pub busy: bool,
    /// A password being shown once: (device, password).
    pub revealed: Option<(String, String)>,
}

async fn task_page(
    state: &State,
    me: CurrentUser,
    id: i32,
    revealed: Option<(String, String)>,
) -> Result<TaskPage, WebError> {
    let v = state
        .console
        .provision_task(&state.provisioner, &me.actor(), id)
        .await?;
    let task = v.task;
    let profile = v.profile;
    let items = v
        .items
        .into_iter()
        .map(|(item, device)| ItemRow {
            results: serde_json::from_value(item.detail.clone()).unwrap_or_default(),
            has_secret: item.secret.is_some(),
            device,
            item,
        })
        .collect();
    let progress = state
        .provisioner
        .progress
        .subscribe(id)
        .map(|rx| rx.borrow().clone())
        .unwrap_or_default();
    Ok(TaskPage {
        busy: task.status == "running" && state.provisioner.progress.running(id),
        me,
        task,
        profile,
        items,
        progress,
        revealed,
    })
}

pub async fn task(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    Ok(task_page(&state, me, id, None).await?.into_response())
}

pub async fn task_action(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    match f.text("action").as_str() {
        "resume" => {
            state.provisioner.resume(id, &actor(&me)).await?;
            let p = state.provisioner.clone();
            tokio::spawn(async move {
                if let Err(e) = p.run(id).await {
                    tracing::warn!(task = id, error = %e, "provisioning task failed");
                }
            });
            Ok(Redirect::to(&format!("/provision/tasks/{id}")).into_response())
        }
        "reveal" => {
            let item_id: i32 = f.text("item").parse().map_err(|_| {
                WebError(Error::new(ErrorKind::InvalidArgument, "item: not an item"))
            })?;
            // The item must be one of this task's, on a device in scope.
            let v = state
                .console
                .provision_task(&state.provisioner, &me.actor(), id)
                .await?;
            let (_, device) = v
                .items
                .into_iter()
                .find(|(i, _)| i.id == item_id)
                .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, "no such item")))?;
            let pw = state
                .provisioner
                .reveal_password(item_id, &actor(&me))
                .await?;
            let revealed = pw.map(|p| (device, p));
            // A password on the page: never stored by the browser or a proxy.
            let mut resp = task_page(&state, me, id, revealed).await?.into_response();
            resp.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(resp)
        }
        _ => Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "action: resume or reveal",
        ))),
    }
}

pub async fn task_events(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    state
        .console
        .provision_task(&state.provisioner, &me.actor(), id)
        .await?;
    Ok(super::discovery::progress_sse(
        state.provisioner.progress.subscribe(id),
    ))
}

pub async fn drift(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    let (newly, cleared) = state
        .console
        .drift_check(&state.provisioner, &me.actor())
        .await?;
    let notices = crate::fleet::provision::drift_notices(&newly, &cleared);
    state.alerting.process(&notices).await?;
    let notice = format!(
        "Drift check done: {} newly drifted, {} back in line.",
        newly.len(),
        cleared.len()
    );
    let mut form = SpecForm::from_spec("", &ProfileSpec::default());
    form.name.clear();
    Ok(index_page(&state, me, form, Vec::new(), notice)
        .await?
        .into_response())
}
