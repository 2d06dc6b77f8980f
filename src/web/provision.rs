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
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use super::form::FormFields;
use crate::db::entities::{device, provision_item, provision_profile, provision_task, site};
use crate::error::{Error, ErrorKind};
use crate::fleet::audit::Actor;
use crate::fleet::progress::Progress;
use crate::fleet::provision::{
    DevicePlan, ProfileSpec, Provisioner, ServersSpec, SettingResult, TimeSpec, UserSpec,
};
use crate::onvif::encoder::EncoderWant;

fn actor(me: &CurrentUser) -> Actor {
    Actor::user(&me.user.username)
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
        }
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn valid_host(s: &str) -> bool {
    s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

/// Parse the form into a spec; errors name their field. Passwords left
/// empty keep the sealed one of `old` for that user.
pub fn parse_spec(
    f: &FormFields,
    old: Option<&ProfileSpec>,
    seal: &dyn Fn(&str) -> String,
) -> Result<(String, ProfileSpec), Vec<String>> {
    let mut errors = Vec::new();
    let name = f.text("name");
    if name.is_empty() || name.chars().count() > 100 {
        errors.push("name: required, at most 100 characters".into());
    }
    let mut s = ProfileSpec::default();
    let tz = f.text("tz");
    if tz.len() > 100 || tz.chars().any(|c| c.is_control()) {
        errors.push("time zone: at most 100 printable characters".into());
    }
    s.time = match f.text("time_mode").as_str() {
        "" => None,
        m @ ("ntp" | "manual") => Some(TimeSpec {
            ntp: m == "ntp",
            tz: (!tz.is_empty()).then(|| tz.clone()),
        }),
        _ => {
            errors.push("time: NTP, manual or leave".into());
            None
        }
    };
    for (key, label) in [("ntp", "NTP"), ("dns", "DNS")] {
        let servers = list(&f.get(&format!("{key}_servers")));
        if let Some(bad) = servers.iter().find(|x| !valid_host(x)) {
            errors.push(format!(
                "{label} servers: {bad:?} is not a host name or address"
            ));
        }
        let search = if key == "dns" {
            list(&f.get("search_domains"))
        } else {
            Vec::new()
        };
        if let Some(bad) = search.iter().find(|x| !valid_host(x)) {
            errors.push(format!("search domains: {bad:?} is not a domain"));
        }
        let spec = match f.text(&format!("{key}_mode")).as_str() {
            "" => None,
            "dhcp" => Some(ServersSpec {
                from_dhcp: true,
                servers: Vec::new(),
                search_domains: search,
            }),
            "manual" => {
                if servers.is_empty() {
                    errors.push(format!("{label} servers: at least one for manual"));
                }
                Some(ServersSpec {
                    from_dhcp: false,
                    servers,
                    search_domains: search,
                })
            }
            _ => {
                errors.push(format!("{label}: DHCP, manual or leave"));
                None
            }
        };
        if key == "ntp" {
            s.ntp = spec;
        } else {
            s.dns = spec;
        }
    }
    let hostname = f.text("hostname");
    if hostname.len() > 200 {
        errors.push("hostname pattern: at most 200 characters".into());
    }
    s.hostname = (!hostname.is_empty()).then_some(hostname);
    s.discoverable = match f.text("discoverable").as_str() {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        _ => {
            errors.push("discovery: yes, no or leave".into());
            None
        }
    };
    for (key, slot) in [
        ("name_scope", &mut s.name_scope),
        ("location_scope", &mut s.location_scope),
    ] {
        let v = f.text(key);
        if v.len() > 200 {
            errors.push(format!("{}: at most 200 characters", key.replace('_', " ")));
        }
        *slot = (!v.is_empty()).then_some(v);
    }
    for (i, kind) in ["main", "sub"].iter().enumerate() {
        let g = |n: &str| f.text(&format!("{kind}_{n}"));
        let mut e = EncoderWant::default();
        let mut any = false;
        let res = g("resolution");
        if !res.is_empty() {
            any = true;
            match res
                .to_ascii_lowercase()
                .replace('×', "x")
                .split_once('x')
                .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
            {
                Some((w, h)) if w > 0 && h > 0 => {
                    e.width = Some(w);
                    e.height = Some(h);
                }
                _ => errors.push(format!(
                    "{kind} stream resolution: WIDTHxHEIGHT, e.g. 1920x1080"
                )),
            }
        }
        let num = |n: &str, label: &str, errors: &mut Vec<String>| -> Option<u32> {
            let v = g(n);
            if v.is_empty() {
                return None;
            }
            match v.parse::<u32>() {
                Ok(x) if x > 0 => Some(x),
                _ => {
                    errors.push(format!("{kind} stream {label}: a positive whole number"));
                    None
                }
            }
        };
        e.frame_rate = num("fps", "frame rate", &mut errors).map(|v| v as f32);
        e.bitrate_kbps = num("bitrate", "bitrate (kbit/s)", &mut errors);
        e.gov_length = num("gov", "GOP length", &mut errors);
        let prof = g("profile");
        if !prof.is_empty() {
            if !["Baseline", "Main", "Extended", "High"].contains(&prof.as_str()) {
                errors.push(format!(
                    "{kind} stream profile: Baseline, Main, Extended or High"
                ));
            }
            e.profile = Some(prof);
        }
        any |= e.frame_rate.is_some()
            || e.bitrate_kbps.is_some()
            || e.gov_length.is_some()
            || e.profile.is_some();
        let slot = if i == 0 {
            &mut s.main_encoder
        } else {
            &mut s.sub_encoder
        };
        *slot = any.then_some(e);
    }
    let names = f.all("user_name");
    let levels = f.all("user_level");
    let passwords = f.all("user_password");
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            errors.push(format!(
                "user {name:?}: letters, digits, _ - . only, at most 32"
            ));
            continue;
        }
        let level = levels.get(i).cloned().unwrap_or_default();
        if !["Administrator", "Operator", "User"].contains(&level.as_str()) {
            errors.push(format!(
                "user {name}: level Administrator, Operator or User"
            ));
        }
        let pw = passwords.get(i).cloned().unwrap_or_default();
        let sealed = if pw.is_empty() {
            match old.and_then(|o| o.users.iter().find(|u| u.username == name)) {
                Some(u) => u.password_sealed.clone(),
                None => {
                    errors.push(format!("user {name}: a password is needed"));
                    String::new()
                }
            }
        } else if pw.chars().count() < 8 {
            errors.push(format!("user {name}: password of at least 8 characters"));
            String::new()
        } else {
            seal(&pw)
        };
        s.users.push(UserSpec {
            username: name.into(),
            level,
            password_sealed: sealed,
        });
    }
    s.rotate_admin_password = f.get("rotate") == "on";
    if errors.is_empty() {
        Ok((name, s))
    } else {
        Err(errors)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "provision.html")]
pub struct IndexPage {
    pub me: CurrentUser,
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
    let profiles = state.provisioner.profiles().await?;
    let names: std::collections::HashMap<i32, String> =
        profiles.iter().map(|p| (p.id, p.name.clone())).collect();
    let tasks = provision_task::Entity::find()
        .order_by_desc(provision_task::Column::Id)
        .limit(20)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|t| {
            let n = names.get(&t.profile_id).cloned().unwrap_or_default();
            (t, n)
        })
        .collect();
    let drifted = device::Entity::find()
        .filter(me.scope.devices())
        .filter(device::Column::ConfigDrift.ne(""))
        .order_by_asc(device::Column::Id)
        .limit(100)
        .all(&state.db)
        .await?;
    Ok(IndexPage {
        me,
        profiles,
        tasks,
        drifted,
        form,
        errors,
        notice,
    })
}

pub async fn index(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    me.require(me.role.can_operate_devices())?;
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
    me.require(me.role.can_operate_devices())?;
    let p = &state.provisioner;
    match parse_spec(&f, None, &|pw| p.seal_password(pw)) {
        Err(errors) => {
            let page = index_page(&state, me, form_again(&f), errors, String::new()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Ok((name, spec)) => match p.save_profile(None, &name, &spec, &actor(&me)).await {
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
    pub profile: provision_profile::Model,
    pub form: SpecForm,
    pub errors: Vec<String>,
    pub sites: Vec<site::Model>,
    pub plans: Vec<DevicePlan>,
    pub planned: bool,
}

impl ProfilePage {
    pub fn action_text(&self, a: &crate::fleet::provision::Action) -> (&'static str, String) {
        use crate::fleet::provision::Action;
        match a {
            Action::Same => ("same", "already as wanted".into()),
            Action::Change => ("change", "will change".into()),
            Action::Cannot(w) => ("cannot", format!("cannot: {w}")),
        }
    }
}

async fn profile_or_404(state: &State, id: i32) -> Result<provision_profile::Model, WebError> {
    Ok(state.provisioner.profile(id).await?)
}

pub async fn profile(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
) -> Result<Response, WebError> {
    me.require(me.role.can_operate_devices())?;
    let profile = profile_or_404(&state, id).await?;
    let spec = Provisioner::spec_of(&profile)?;
    Ok(ProfilePage {
        form: SpecForm::from_spec(&profile.name, &spec),
        sites: state.sites.list().await?,
        me,
        profile,
        errors: Vec::new(),
        plans: Vec::new(),
        planned: false,
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
    me.require(me.role.can_operate_devices())?;
    let profile = profile_or_404(&state, id).await?;
    let old = Provisioner::spec_of(&profile)?;
    let p = &state.provisioner;
    let result = match parse_spec(&f, Some(&old), &|pw| p.seal_password(pw)) {
        Err(errors) => Err(errors),
        Ok((name, spec)) => p
            .save_profile(Some(id), &name, &spec, &actor(&me))
            .await
            .map_err(|e| vec![e.to_string()]),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/provision/profiles/{id}")).into_response()),
        Err(errors) => {
            let page = ProfilePage {
                form: form_again(&f),
                sites: state.sites.list().await?,
                me,
                profile,
                errors,
                plans: Vec::new(),
                planned: false,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// Devices the form selects, within the user's sites: ticked ids, or a
/// site, or every device the user may see.
async fn selected(state: &State, me: &CurrentUser, f: &FormFields) -> Result<Vec<i32>, WebError> {
    let mut q = device::Entity::find().filter(me.scope.devices());
    let ids = f.ids("device");
    let site = f.text("site");
    if !ids.is_empty() {
        q = q.filter(device::Column::Id.is_in(ids));
    } else if !site.is_empty() {
        let sid: i32 = site
            .parse()
            .map_err(|_| WebError(Error::new(ErrorKind::InvalidArgument, "site: not a site")))?;
        q = q.filter(device::Column::SiteId.eq(sid));
    }
    Ok(q.select_only()
        .column(device::Column::Id)
        .order_by_asc(device::Column::Id)
        .into_tuple()
        .all(&state.db)
        .await?)
}

pub async fn run(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
    Path(id): Path<i32>,
    RawForm(raw): RawForm,
) -> Result<Response, WebError> {
    let f = FormFields::parse(&raw);
    me.check_csrf(&f.get("csrf"))?;
    me.require(me.role.can_operate_devices())?;
    let profile = profile_or_404(&state, id).await?;
    let spec = Provisioner::spec_of(&profile)?;
    let ids = selected(&state, &me, &f).await?;
    if ids.is_empty() {
        return Err(WebError(Error::new(
            ErrorKind::InvalidArgument,
            "no devices selected (none in that site, or none you may manage)",
        )));
    }
    if f.text("action") == "apply" {
        let task = state.provisioner.create_task(id, &ids, &actor(&me)).await?;
        let p = state.provisioner.clone();
        tokio::spawn(async move {
            if let Err(e) = p.run(task).await {
                tracing::warn!(task, error = %e, "provisioning task failed");
            }
        });
        return Ok(Redirect::to(&format!("/provision/tasks/{task}")).into_response());
    }
    let plans = state.provisioner.plan(&spec, &ids).await?;
    Ok(ProfilePage {
        form: SpecForm::from_spec(&profile.name, &spec),
        sites: state.sites.list().await?,
        me,
        profile,
        errors: Vec::new(),
        plans,
        planned: true,
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
    let task = provision_task::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, format!("no task {id}"))))?;
    let items = provision_item::Entity::find()
        .filter(provision_item::Column::TaskId.eq(id))
        .order_by_asc(provision_item::Column::Id)
        .all(&state.db)
        .await?;
    // Only the devices this user may see.
    let visible: std::collections::HashMap<i32, String> = device::Entity::find()
        .filter(me.scope.devices())
        .filter(device::Column::Id.is_in(items.iter().map(|i| i.device_id)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|d| {
            let n = crate::fleet::inventory::display_name(&d);
            (d.id, n)
        })
        .collect();
    let items = items
        .into_iter()
        .filter_map(|item| {
            let device = visible.get(&item.device_id)?.clone();
            Some(ItemRow {
                results: serde_json::from_value(item.detail.clone()).unwrap_or_default(),
                has_secret: item.secret.is_some(),
                device,
                item,
            })
        })
        .collect();
    let profile = state
        .provisioner
        .profile(task.profile_id)
        .await
        .map(|p| p.name)
        .unwrap_or_default();
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
    me.require(me.role.can_operate_devices())?;
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
    me.require(me.role.can_operate_devices())?;
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
            let item = provision_item::Entity::find_by_id(item_id)
                .one(&state.db)
                .await?
                .filter(|i| i.task_id == id)
                .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, "no such item")))?;
            // Within the user's sites only.
            let dev = device::Entity::find_by_id(item.device_id)
                .filter(me.scope.devices())
                .one(&state.db)
                .await?
                .ok_or_else(|| WebError(Error::new(ErrorKind::NotFound, "no such item")))?;
            let pw = state
                .provisioner
                .reveal_password(item_id, &actor(&me))
                .await?;
            let revealed = pw.map(|p| (dev.name.clone(), p));
            Ok(task_page(&state, me, id, revealed).await?.into_response())
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
    me.require(me.role.can_operate_devices())?;
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
    me.require(me.role.can_operate_devices())?;
    let (newly, cleared) = state.provisioner.check_drift(None).await?;
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
