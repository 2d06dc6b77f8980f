//! Provisioning: a profile is desired state; a plan compares it with what
//! each camera reports; a task applies it with verify-after-write.
//!
//! - **Plan** (dry run): per device and setting, current → desired, and
//!   whether the camera cannot take it (outside its options, or the
//!   operation is not supported).
//! - **Apply**: the changed settings in a fixed order of named steps, each
//!   written and then read back. A write the camera accepts but does not
//!   keep is a failure ("did not stick"), not a success. The first failure
//!   stops the device: its outcome is `failed` (nothing changed) or
//!   `partial` (which settings changed).
//! - **Admin password rotation** (last step): a password generated per
//!   device. It counts only when the new password works and the old one no
//!   longer does. The stored credential is replaced as soon as the new one
//!   works, so camfleet never locks itself out. The password is sealed on
//!   the task row until someone views it once.
//! - Tasks are rows: a restart marks what was running as interrupted, and
//!   resuming runs those devices again (plans are re-read, so a device
//!   half-done before is finished, not redone blindly).

use std::collections::BTreeSet;
use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::poller::{device_session, open_credentials};
use super::progress::{Progress, ProgressHub, Reporter};
use crate::clock::SharedClock;
use crate::db::entities::{
    credential, device, device_profile, provision_item, provision_profile, provision_task, site,
};
use crate::error::{Error, ErrorKind, Result};
use crate::onvif::config::{self as cfg, UserWrite};
use crate::onvif::encoder::{self, EncoderWant, EncodingOptions};
use crate::onvif::media::MediaVersion;
use crate::onvif::{
    Credentials, DeviceSession, FaultClass, NetworkHost, OnvifError, Transport, VideoEncoder,
    device as dev,
};
use crate::secrets::SecretBox;

mod camera;
mod device_ops;
pub mod form;
mod spec;
mod tasks;

use camera::media_of;
pub use camera::{Provisioning, generate_password};
pub use spec::*;

/// How an apply of one device ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// `changed`, `unchanged`, `failed`, `partial`.
    pub status: &'static str,
    /// The failed step, if any.
    pub step: String,
    pub results: Vec<SettingResult>,
    /// A rotated admin password (to seal on the task row).
    pub new_password: Option<String>,
}

pub struct Provisioner {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    transport: Transport,
    clock: SharedClock,
    pub progress: ProgressHub,
    /// Devices worked on at once within a task.
    pub concurrency: usize,
}

impl Provisioner {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        transport: Transport,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            secrets,
            transport,
            clock,
            progress: ProgressHub::default(),
            concurrency: 8,
        }
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    /// Seal a user password for a profile.
    pub fn seal_password(&self, password: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.secrets.seal_str(password))
    }

    /// Every profile (the command line, jobs).
    pub async fn profiles(&self) -> Result<Vec<provision_profile::Model>> {
        Ok(provision_profile::Entity::find()
            .order_by_asc(provision_profile::Column::Name)
            .all(&self.db)
            .await?)
    }

    /// The profiles an actor may see and use: shared ones and those of
    /// their sites.
    pub async fn profiles_for(&self, actor: &Actor) -> Result<Vec<provision_profile::Model>> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        Ok(self
            .profiles()
            .await?
            .into_iter()
            .filter(|p| p.site_id.is_none() || actor.scope.allows_site(p.site_id))
            .collect())
    }

    /// One profile the actor may see (404 otherwise).
    pub async fn profile_for(&self, actor: &Actor, id: i32) -> Result<provision_profile::Model> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        let p = self.profile(id).await?;
        if p.site_id.is_some() && !actor.scope.allows_site(p.site_id) {
            return Err(Error::new(ErrorKind::NotFound, format!("no profile {id}")));
        }
        Ok(p)
    }

    /// May the actor change this profile? A site's profile: those who
    /// manage the site. A shared profile (no site): admins only, since it
    /// reaches every site's cameras.
    pub fn check_profile_owner(actor: &Actor, site_id: Option<i32>) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        match site_id {
            None if !actor.is_admin() => Err(Error::new(
                ErrorKind::PermissionDenied,
                "shared profiles (no site) are changed by admins only; choose one of your sites",
            )),
            None => Ok(()),
            Some(_) => actor.scope.check_site(site_id),
        }
    }

    pub async fn profile_by_name(&self, name: &str) -> Result<provision_profile::Model> {
        provision_profile::Entity::find()
            .filter(provision_profile::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no profile {name:?}")))
    }

    pub async fn profile(&self, id: i32) -> Result<provision_profile::Model> {
        provision_profile::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no profile {id}")))
    }

    pub fn spec_of(p: &provision_profile::Model) -> Result<ProfileSpec> {
        serde_json::from_value(p.spec.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("profile {:?} is unreadable: {e}", p.name),
            )
        })
    }

    /// Create or replace a profile (audited). `site_id` is who owns it
    /// ([`Self::check_profile_owner`]); an existing profile needs its
    /// present owner's rights too.
    pub async fn save_profile(
        &self,
        id: Option<i32>,
        name: &str,
        site_id: Option<i32>,
        spec: &ProfileSpec,
        actor: &Actor,
    ) -> Result<provision_profile::Model> {
        Self::check_profile_owner(actor, site_id)?;
        if let Some(id) = id {
            let old = self.profile_for(actor, id).await?;
            Self::check_profile_owner(actor, old.site_id)?;
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "name: required, at most 100 characters",
            ));
        }
        let now = self.clock.now_utc();
        let clash = provision_profile::Entity::find()
            .filter(provision_profile::Column::Name.eq(name))
            .one(&self.db)
            .await?;
        if let Some(c) = &clash
            && Some(c.id) != id
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("a profile named {name:?} exists"),
            ));
        }
        let spec_json = serde_json::to_value(spec).unwrap_or(json!({}));
        let (m, before) = match id {
            Some(id) => {
                let old = self.profile(id).await?;
                let before = old.spec.clone();
                let mut am = old.into_active_model();
                am.name = Set(name.into());
                am.spec = Set(spec_json);
                am.site_id = Set(site_id);
                am.updated_at = Set(now);
                (am.update(&self.db).await?, Some(before))
            }
            None => (
                provision_profile::ActiveModel {
                    name: Set(name.into()),
                    spec: Set(spec_json),
                    site_id: Set(site_id),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&self.db)
                .await?,
                None,
            ),
        };
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: if before.is_some() {
                    "profile.update"
                } else {
                    "profile.create"
                },
                target_kind: "profile",
                target_id: m.id.to_string(),
                before: before.map(redact),
                after: Some(redact(m.spec.clone())),
            },
        )
        .await?;
        Ok(m)
    }

    /// Devices with their site name and opened credentials.
    pub async fn targets(&self, ids: &[i32]) -> Result<Vec<Target>> {
        let devices = device::Entity::find()
            .filter(device::Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(device::Column::Id)
            .all(&self.db)
            .await?;
        let sites: std::collections::HashMap<i32, String> = site::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        let creds: std::collections::HashMap<i32, credential::Model> = credential::Entity::find()
            .filter(credential::Column::Id.is_in(devices.iter().filter_map(|d| d.credential_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        devices
            .into_iter()
            .map(|d| {
                let opened = match d.credential_id.and_then(|c| creds.get(&c)) {
                    Some(c) => Some(open_credentials(&self.secrets, c).map_err(|e| {
                        Error::new(e.kind, format!("{} (#{}): {}", d.name, d.id, e.message))
                    })?),
                    None => None,
                };
                Ok(Target {
                    site: d
                        .site_id
                        .and_then(|s| sites.get(&s).cloned())
                        .unwrap_or_default(),
                    creds: opened,
                    device: d,
                })
            })
            .collect()
    }

    /// Dry run over these devices (bounded concurrency).
    pub async fn plan(&self, spec: &ProfileSpec, ids: &[i32]) -> Result<Vec<DevicePlan>> {
        use futures::StreamExt;
        let targets = self.targets(ids).await?;
        let plans = futures::stream::iter(targets.into_iter().map(|t| self.plan_one(t, spec)))
            .buffered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(plans)
    }

    async fn plan_one(&self, t: Target, spec: &ProfileSpec) -> DevicePlan {
        match Provisioning::new(&t, spec, &self.secrets, &self.clock, &self.transport) {
            Ok(p) => p.plan().await,
            Err(e) => DevicePlan {
                device_id: t.device.id,
                name: t.device.name.clone(),
                settings: Vec::new(),
                error: Some(e),
            },
        }
    }

    /// Apply to one device: the plan's changes in order, each verified.
    pub async fn apply_one(
        &self,
        t: &Target,
        spec: &ProfileSpec,
        on_step: &(dyn Fn(&str) + Sync),
    ) -> Applied {
        let p = match Provisioning::new(t, spec, &self.secrets, &self.clock, &self.transport) {
            Ok(p) => p,
            Err(e) => {
                return Applied {
                    status: "failed",
                    step: "connect".into(),
                    results: vec![SettingResult {
                        key: "connect".into(),
                        before: String::new(),
                        after: String::new(),
                        result: "failed".into(),
                        message: e,
                    }],
                    new_password: None,
                };
            }
        };
        let plan = p.plan().await;
        if let Some(e) = plan.error {
            return Applied {
                status: "failed",
                step: "connect".into(),
                results: vec![SettingResult {
                    key: "connect".into(),
                    before: String::new(),
                    after: String::new(),
                    result: "failed".into(),
                    message: e,
                }],
                new_password: None,
            };
        }
        let mut results = Vec::new();
        let mut changed = false;
        let mut failed_at: Option<String> = None;
        let mut new_password = None;
        for s in &plan.settings {
            if failed_at.is_some() {
                results.push(SettingResult {
                    key: s.key.clone(),
                    before: s.current.clone(),
                    after: String::new(),
                    result: "not_run".into(),
                    message: String::new(),
                });
                continue;
            }
            on_step(&s.key);
            let (result, after, message) = match &s.action {
                Action::Same => ("already", s.current.clone(), String::new()),
                Action::Cannot(why) => ("cannot", s.current.clone(), why.clone()),
                Action::Change if s.key == "admin_password" => {
                    match self.rotate_admin_password(&p).await {
                        Ok(pw) => {
                            new_password = Some(pw);
                            ("changed", "rotated".into(), String::new())
                        }
                        Err((msg, stored_new)) => {
                            if let Some(pw) = stored_new {
                                new_password = Some(pw);
                                changed = true;
                            }
                            ("failed", String::new(), msg)
                        }
                    }
                }
                Action::Change => match p.write(&s.key).await {
                    Err(msg) => ("failed", String::new(), msg),
                    Ok(note) => {
                        // Verify: read it back.
                        let (_, now, again) = p.read(&s.key).await;
                        match again {
                            Action::Same => ("changed", now, note),
                            _ => (
                                "failed",
                                now.clone(),
                                format!(
                                    "did not stick: the camera accepted it but reads back {now:?}"
                                ),
                            ),
                        }
                    }
                },
            };
            if result == "changed" {
                changed = true;
            }
            if result == "failed" {
                failed_at = Some(s.key.clone());
            }
            results.push(SettingResult {
                key: s.key.clone(),
                before: s.current.clone(),
                after,
                result: result.into(),
                message,
            });
        }
        let status = match (&failed_at, changed) {
            (Some(_), true) => "partial",
            (Some(_), false) => "failed",
            (None, true) => "changed",
            (None, false) => "unchanged",
        };
        Applied {
            status,
            step: failed_at.unwrap_or_default(),
            results,
            new_password,
        }
    }

    /// SetUser on camfleet's own account with a generated password. Ok:
    /// the new one works and the old one is refused. Err carries the new
    /// password when it works (and is stored) although the step failed.
    async fn rotate_admin_password(
        &self,
        p: &Provisioning<'_>,
    ) -> std::result::Result<String, (String, Option<String>)> {
        let t = p.target;
        let Some(old) = t.creds.clone() else {
            return Err(("camfleet has no credentials for this camera".into(), None));
        };
        let users = dev::get_users(&p.session)
            .await
            .map_err(|e| (format!("reading users: {e}"), None))?;
        let level = users
            .iter()
            .find(|u| u.username == old.username)
            .map(|u| u.level.clone())
            .unwrap_or_else(|| "Administrator".into());
        let new = generate_password();
        cfg::set_user(
            &p.session,
            &UserWrite {
                username: old.username.clone(),
                password: new.clone(),
                level,
            },
        )
        .await
        .map_err(|e| (format!("SetUser: {e}"), None))?;
        let new_works = p.login_works(&old.username, &new).await;
        if new_works == Some(true) {
            // Store at once: from here on only the new password may work.
            if let Err(e) = self.store_password(&t.device, &old.username, &new).await {
                return Err((
                    format!("the camera took the new password but storing it failed: {e}"),
                    None,
                ));
            }
            return match p.login_works(&old.username, &old.password).await {
                Some(false) => Ok(new),
                Some(true) => Err((
                    "the camera accepts the new password but the old one still works".into(),
                    Some(new),
                )),
                None => Err((
                    "could not confirm the old password is refused".into(),
                    Some(new),
                )),
            };
        }
        match p.login_works(&old.username, &old.password).await {
            Some(true) => Err(("the camera kept the old password (nothing changed)".into(), None)),
            _ => Err((
                "neither the new nor the old password works now; the stored credential is unchanged"
                    .into(),
                None,
            )),
        }
    }

    async fn store_password(&self, d: &device::Model, user: &str, password: &str) -> Result<()> {
        let now = self.clock.now_utc();
        let c = credential::ActiveModel {
            username: Set(user.into()),
            sealed: Set(self.secrets.seal_str(password)),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        let old = d.credential_id;
        device::Entity::update_many()
            .col_expr(
                device::Column::CredentialId,
                sea_orm::sea_query::Expr::value(c.id),
            )
            .filter(device::Column::Id.eq(d.id))
            .exec(&self.db)
            .await?;
        if let Some(o) = old {
            credential::Entity::delete_by_id(o).exec(&self.db).await?;
        }
        Ok(())
    }

    /// Drift: plan each device against the profile it follows; store what
    /// differs. Returns the devices whose drift appeared (device id, what
    /// differs) and those back in line.
    pub async fn check_drift(&self, ids: Option<&[i32]>) -> Result<(Vec<(i32, String)>, Vec<i32>)> {
        let mut q = device::Entity::find().filter(device::Column::ProfileId.is_not_null());
        if let Some(ids) = ids {
            q = q.filter(device::Column::Id.is_in(ids.iter().copied()));
        }
        let devices = q.all(&self.db).await?;
        let mut newly = Vec::new();
        let mut cleared = Vec::new();
        let mut by_profile: std::collections::BTreeMap<i32, Vec<device::Model>> =
            Default::default();
        for d in devices {
            if let Some(p) = d.profile_id {
                by_profile.entry(p).or_default().push(d);
            }
        }
        for (pid, devs) in by_profile {
            let Ok(profile) = self.profile(pid).await else {
                continue;
            };
            let mut spec = Self::spec_of(&profile)?;
            // Rotation is an action, not a state to compare.
            spec.rotate_admin_password = false;
            let ids: Vec<i32> = devs.iter().map(|d| d.id).collect();
            for plan in self.plan(&spec, &ids).await? {
                let drift = match &plan.error {
                    Some(e) => format!("could not check: {e}"),
                    None => plan
                        .settings
                        .iter()
                        .filter(|s| s.action == Action::Change)
                        .map(|s| format!("{}: {} (want {})", s.key, s.current, s.desired))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                let before = devs
                    .iter()
                    .find(|d| d.id == plan.device_id)
                    .map(|d| d.config_drift.clone())
                    .unwrap_or_default();
                if before.is_empty() && !drift.is_empty() && plan.error.is_none() {
                    newly.push((plan.device_id, drift.clone()));
                }
                if !before.is_empty() && drift.is_empty() {
                    cleared.push(plan.device_id);
                }
                device::Entity::update_many()
                    .col_expr(
                        device::Column::ConfigDrift,
                        sea_orm::sea_query::Expr::value(drift),
                    )
                    .col_expr(
                        device::Column::DriftCheckedAt,
                        sea_orm::sea_query::Expr::value(self.clock.now_utc()),
                    )
                    .filter(device::Column::Id.eq(plan.device_id))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok((newly, cleared))
    }
}

/// Alert notices for a drift check's findings.
pub fn drift_notices(newly: &[(i32, String)], cleared: &[i32]) -> Vec<super::poller::Notice> {
    use super::health::HealthEvent;
    use super::poller::Notice;
    newly
        .iter()
        .map(|(id, what)| Notice::Event {
            device_id: *id,
            event: HealthEvent::ConfigDrift {
                summary: what.chars().take(500).collect(),
                drifted: true,
            },
        })
        .chain(cleared.iter().map(|id| Notice::Event {
            device_id: *id,
            event: HealthEvent::ConfigDrift {
                summary: "configuration matches its profile again".into(),
                drifted: false,
            },
        }))
        .collect()
}

/// Profile JSON for the audit log: sealed passwords left out.
/// A spec without its sealed passwords (for the audit log and the API).
pub fn redact(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(users) = v.get_mut("users").and_then(|u| u.as_array_mut()) {
        for u in users {
            if let Some(o) = u.as_object_mut() {
                o.insert("password_sealed".into(), json!("(sealed)"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> device::Model {
        device::Model {
            id: 7,
            endpoint_uuid: None,
            mac: Some("02:cf:00:00:00:07".into()),
            serial: Some("SN 007".into()),
            manufacturer: "Acme".into(),
            model: "AO-IPC/B2".into(),
            firmware: String::new(),
            hardware_id: String::new(),
            hostname: String::new(),
            name: "Gate".into(),
            device_url: String::new(),
            xaddrs: json!([]),
            status: String::new(),
            last_seen: None,
            auth_mode: None,
            clock_offset_ms: None,
            quirks: json!([]),
            policy: json!({}),
            media_version: None,
            site_id: None,
            credential_id: None,
            location: String::new(),
            purchase_order: String::new(),
            purchase_date: None,
            supplier: String::new(),
            cost_cents: None,
            warranty_end: None,
            end_of_life: None,
            asset_tag: String::new(),
            notes: String::new(),
            adopted_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            search_text: String::new(),
            state_reason: String::new(),
            state_since: None,
            poll_failures: 0,
            poll_successes: 0,
            latency_ms: None,
            drift_ms: None,
            last_poll_at: None,
            last_info_at: None,
            poll_interval_s: None,
            events_url: None,
            events_status: String::new(),
            profile_id: None,
            config_drift: String::new(),
            drift_checked_at: None,
            record_profile: None,
            recording_status: String::new(),
            record_transport: "tcp".into(),
            retired_at: None,
            retired_reason: None,
        }
    }

    #[test]
    fn patterns_render_to_valid_hostnames() {
        let d = dev();
        assert_eq!(
            render("{site}-{model}-{serial}", &d, "North Gate", true),
            "north-gate-ao-ipc-b2-sn-007"
        );
        assert_eq!(render("cam-{mac}", &d, "", true), "cam-02cf00000007");
        assert_eq!(
            render("{name} at {site}", &d, "North", false),
            "Gate at North"
        );
        assert_eq!(render("--{site}--", &d, "", true), "");
        assert_eq!(render(&"x".repeat(80), &d, "", true).len(), 63);
    }

    #[test]
    fn steps_run_in_a_fixed_order_with_passwords_last() {
        let mut k = vec![
            "admin_password",
            "user:op",
            "encoder:sub",
            "ntp",
            "time",
            "scopes",
        ];
        k.sort_by_key(|x| order_of(x));
        assert_eq!(
            k,
            [
                "time",
                "ntp",
                "scopes",
                "encoder:sub",
                "user:op",
                "admin_password"
            ]
        );
    }

    #[test]
    fn generated_passwords_are_long_and_different() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, generate_password());
    }
}
