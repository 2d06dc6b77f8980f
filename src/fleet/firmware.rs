//! Firmware: the library (images in the storage tier with SHA-256, vendor,
//! model pattern, version, notes; one approved image per model pattern)
//! and staged rollouts.
//!
//! A rollout runs a canary group first, then waves (a size or a share of
//! the devices). A wave starts only when the previous one has finished and
//! every device in it came back healthy with the new version within the
//! camera's ExpectedDownTime plus a margin. Any failure in the canary group
//! stops the rollout; later, more failures than the threshold stop it.
//! A maintenance window (days and hours) limits when devices may be
//! started; devices already started are still watched outside it. Pause,
//! resume and cancel act between steps.
//!
//! Everything is driven by [`Firmware::tick`] over the injected clock and
//! kept in the database, so a restart simply continues, and tests move
//! time by hand.
//!
//! Per device: StartFirmwareUpgrade → wait UploadDelay → POST the image to
//! UploadUri → the camera reboots → GetDeviceInformation must report the
//! new version before the deadline.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::health::HealthEvent;
use super::poller::{Notice, device_session};
use crate::clock::SharedClock;
use crate::db::entities::{device, firmware_image, firmware_rollout, rollout_device};
use crate::error::{Error, ErrorKind, Result};
use crate::onvif::{FaultClass, Transport};
use crate::secrets::SecretBox;
use crate::storage::Storage;

/// Largest image accepted.
pub const MAX_IMAGE_BYTES: usize = 256 * 1024 * 1024;

/// When devices may be touched, in a fixed offset from UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// 0 = Monday … 6 = Sunday.
    pub days: Vec<u32>,
    pub start_hour: u32,
    /// Exclusive; smaller than `start_hour` wraps past midnight (22 → 4).
    pub end_hour: u32,
    pub utc_offset_minutes: i32,
}

impl MaintenanceWindow {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = t + chrono::Duration::minutes(i64::from(self.utc_offset_minutes));
        let (h, day) = (local.hour(), local.weekday().num_days_from_monday());
        if self.start_hour == self.end_hour {
            return self.days.contains(&day);
        }
        if self.start_hour < self.end_hour {
            self.days.contains(&day) && h >= self.start_hour && h < self.end_hour
        } else if h >= self.start_hour {
            self.days.contains(&day)
        } else if h < self.end_hour {
            // After midnight: the window opened the day before.
            self.days.contains(&((day + 6) % 7))
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// Devices in the canary group.
    pub canary: usize,
    /// Devices per wave after the canary; 0: use `wave_percent`.
    pub wave_size: usize,
    /// Share of all devices per wave (when `wave_size` is 0).
    pub wave_percent: u32,
    /// Failures (after the canary) that stop the rollout once exceeded.
    pub max_failures: usize,
    /// Added to the camera's ExpectedDownTime.
    pub margin_s: u64,
    pub window: Option<MaintenanceWindow>,
    /// A person resumed past a failed canary group.
    #[serde(default)]
    pub canary_accepted: bool,
    /// Failures a person resumed past: the threshold counts from them.
    #[serde(default)]
    pub failures_accepted: usize,
}

impl Default for RolloutPlan {
    fn default() -> Self {
        Self {
            canary: 1,
            wave_size: 0,
            wave_percent: 25,
            max_failures: 0,
            margin_s: 120,
            window: None,
            canary_accepted: false,
            failures_accepted: 0,
        }
    }
}

/// `SV-2CD*` matches every model starting `SV-2CD`; case is ignored.
pub fn model_matches(pattern: &str, model: &str) -> bool {
    let (p, m) = (
        pattern.trim().to_ascii_lowercase(),
        model.trim().to_ascii_lowercase(),
    );
    match p.strip_suffix('*') {
        Some(prefix) => m.starts_with(prefix),
        None => p == m,
    }
}

/// Wave of each position (0 = canary), given the number of devices.
pub fn waves(n: usize, plan: &RolloutPlan) -> Vec<i32> {
    let canary = plan.canary.min(n);
    let size = if plan.wave_size > 0 {
        plan.wave_size
    } else {
        (n * plan.wave_percent.clamp(1, 100) as usize)
            .div_ceil(100)
            .max(1)
    };
    (0..n)
        .map(|i| {
            if i < canary {
                0
            } else {
                1 + ((i - canary) / size) as i32
            }
        })
        .collect()
}

pub struct Firmware {
    db: DatabaseConnection,
    storage: Arc<Storage>,
    secrets: Arc<SecretBox>,
    transport: Transport,
    clock: SharedClock,
    /// One tick at a time.
    serial: tokio::sync::Mutex<()>,
}

impl Firmware {
    pub fn new(
        db: DatabaseConnection,
        storage: Arc<Storage>,
        secrets: Arc<SecretBox>,
        transport: Transport,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            storage,
            secrets,
            transport,
            clock,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn images(&self) -> Result<Vec<firmware_image::Model>> {
        Ok(firmware_image::Entity::find()
            .order_by_desc(firmware_image::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn image(&self, id: i32) -> Result<firmware_image::Model> {
        firmware_image::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no firmware image {id}")))
    }

    /// Add an image to the library (stored under its SHA-256).
    pub async fn upload(
        &self,
        vendor: &str,
        model_pattern: &str,
        version: &str,
        notes: &str,
        bytes: Bytes,
        actor: &Actor,
    ) -> Result<firmware_image::Model> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        check_image_fields(vendor, model_pattern, version)?;
        if bytes.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument, "file: empty"));
        }
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "file: larger than 256 MiB",
            ));
        }
        let sha = crate::storage::sha256_hex(&bytes);
        let key = format!("firmware/{sha}.bin");
        self.storage.put(&key, bytes.clone()).await?;
        self.record_image(
            vendor,
            model_pattern,
            version,
            notes,
            sha,
            bytes.len() as u64,
            key,
            actor,
        )
        .await
    }

    /// Add an image that was streamed to a file (an upload), without
    /// holding it in memory; the file is the caller's to remove.
    pub async fn upload_file(
        &self,
        vendor: &str,
        model_pattern: &str,
        version: &str,
        notes: &str,
        path: &std::path::Path,
        actor: &Actor,
    ) -> Result<firmware_image::Model> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        check_image_fields(vendor, model_pattern, version)?;
        let len = tokio::fs::metadata(path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if len == 0 {
            return Err(Error::new(ErrorKind::InvalidArgument, "file: empty"));
        }
        if len > MAX_IMAGE_BYTES as u64 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "file: larger than 256 MiB",
            ));
        }
        // The key is the content's hash: read it once to hash, then store.
        let sha = sha256_file(path).await?;
        let key = format!("firmware/{sha}.bin");
        let (size, stored_sha) = self.storage.put_file(&key, path).await?;
        if stored_sha != sha {
            return Err(Error::new(
                ErrorKind::Internal,
                "the uploaded file changed while it was stored",
            ));
        }
        self.record_image(vendor, model_pattern, version, notes, sha, size, key, actor)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_image(
        &self,
        vendor: &str,
        model_pattern: &str,
        version: &str,
        notes: &str,
        sha: String,
        size: u64,
        key: String,
        actor: &Actor,
    ) -> Result<firmware_image::Model> {
        let now = self.clock.now_utc();
        let m = firmware_image::ActiveModel {
            vendor: Set(vendor.trim().into()),
            model_pattern: Set(model_pattern.trim().into()),
            version: Set(version.trim().into()),
            sha256: Set(sha.clone()),
            size: Set(size as i64),
            storage_key: Set(key),
            notes: Set(notes.chars().take(10_000).collect()),
            approved: Set(false),
            uploaded_by: Set(actor.name.clone()),
            uploaded_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "firmware.upload",
                target_kind: "firmware",
                target_id: m.id.to_string(),
                before: None,
                after: Some(json!({"vendor": m.vendor, "model": m.model_pattern, "version": m.version, "sha256": sha, "size": m.size})),
            },
        )
        .await?;
        Ok(m)
    }

    /// Make an image the approved one for its model pattern (admins).
    pub async fn approve(&self, id: i32, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let img = self.image(id).await?;
        firmware_image::Entity::update_many()
            .col_expr(
                firmware_image::Column::Approved,
                sea_orm::sea_query::Expr::value(false),
            )
            .filter(firmware_image::Column::ModelPattern.eq(img.model_pattern.clone()))
            .exec(&self.db)
            .await?;
        let mut am = img.clone().into_active_model();
        am.approved = Set(true);
        am.update(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "firmware.approve",
                target_kind: "firmware",
                target_id: id.to_string(),
                before: None,
                after: Some(json!({"model": img.model_pattern, "version": img.version})),
            },
        )
        .await?;
        Ok(())
    }

    /// The approved version for a model, if any.
    pub fn approved_for<'a>(
        images: &'a [firmware_image::Model],
        model: &str,
    ) -> Option<&'a firmware_image::Model> {
        images
            .iter()
            .filter(|i| i.approved && model_matches(&i.model_pattern, model))
            // The most specific pattern wins.
            .max_by_key(|i| i.model_pattern.len())
    }

    /// Start a rollout of `image_id` to these devices: technicians and
    /// admins, every device within the actor's sites, and an approved
    /// image unless an admin starts it.
    pub async fn create_rollout(
        &self,
        image_id: i32,
        device_ids: &[i32],
        plan: &RolloutPlan,
        actor: &Actor,
    ) -> Result<firmware_rollout::Model> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        let img = self.image(image_id).await?;
        if !img.approved && !actor.is_admin() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "image {} {} is not approved; an admin approves it (or starts the rollout)",
                    img.model_pattern, img.version
                ),
            ));
        }
        if plan.wave_size == 0 && plan.wave_percent == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "waves: a size or a percentage",
            ));
        }
        let devices = device::Entity::find()
            .filter(device::Column::Id.is_in(device_ids.iter().copied()))
            .filter(device::Column::RetiredAt.is_null())
            .order_by_asc(device::Column::Id)
            .all(&self.db)
            .await?;
        if let Some(d) = devices.iter().find(|d| !actor.scope.allows_site(d.site_id)) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("device {} is outside the sites you manage", d.id),
            ));
        }
        if devices.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "no devices selected",
            ));
        }
        if let Some(d) = devices
            .iter()
            .find(|d| !model_matches(&img.model_pattern, &d.model))
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{} is a {}, not a {}: this image is not for it",
                    crate::fleet::inventory::display_name(d),
                    d.model,
                    img.model_pattern
                ),
            ));
        }
        let now = self.clock.now_utc();
        let r = firmware_rollout::ActiveModel {
            image_id: Set(image_id),
            status: Set("running".into()),
            plan: Set(serde_json::to_value(plan).unwrap_or(json!({}))),
            current_wave: Set(0),
            message: Set(String::new()),
            created_by: Set(actor.name.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        // Devices already on the version are skipped, not counted in waves.
        let (todo, already): (Vec<_>, Vec<_>) =
            devices.into_iter().partition(|d| d.firmware != img.version);
        let w = waves(todo.len(), plan);
        for (d, wave) in todo.iter().zip(w).chain(already.iter().map(|d| (d, -1))) {
            rollout_device::ActiveModel {
                rollout_id: Set(r.id),
                device_id: Set(d.id),
                wave: Set(wave.max(0)),
                status: Set(if wave < 0 { "skipped" } else { "pending" }.into()),
                from_version: Set(d.firmware.clone()),
                next_at: Set(None),
                deadline: Set(None),
                upload_uri: Set(String::new()),
                message: Set(if wave < 0 {
                    format!("already on {}", img.version)
                } else {
                    String::new()
                }),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
        }
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "firmware.rollout",
                target_kind: "rollout",
                target_id: r.id.to_string(),
                before: None,
                after: Some(json!({"image": image_id, "version": img.version, "devices": device_ids, "plan": plan})),
            },
        )
        .await?;
        Ok(r)
    }

    /// The sites of every device in a rollout.
    pub async fn rollout_sites(&self, id: i32) -> Result<Vec<Option<i32>>> {
        use sea_orm::QuerySelect;
        let ids: Vec<i32> = rollout_device::Entity::find()
            .filter(rollout_device::Column::RolloutId.eq(id))
            .select_only()
            .column(rollout_device::Column::DeviceId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(device::Entity::find()
            .filter(device::Column::Id.is_in(ids))
            .select_only()
            .column(device::Column::SiteId)
            .distinct()
            .into_tuple::<Option<i32>>()
            .all(&self.db)
            .await?)
    }

    /// Pause, resume, cancel or retry: technicians and admins whose sites
    /// cover every device of the rollout.
    ///
    /// - `pause` a running rollout; `resume` a paused one, or a stopped
    ///   one: it goes on past the failures that stopped it (a failed canary
    ///   group, or the threshold, which then counts new failures only);
    /// - `retry`: the failed devices are tried again (their wave runs again;
    ///   a finished rollout runs again for them);
    /// - `cancel` a running, paused or stopped rollout: devices not
    ///   started are skipped.
    pub async fn control(&self, id: i32, action: &str, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        let r = firmware_rollout::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no rollout {id}")))?;
        if !actor.scope.covers(self.rollout_sites(id).await?) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this rollout includes devices outside the sites you manage",
            ));
        }
        let rows = rollout_device::Entity::find()
            .filter(rollout_device::Column::RolloutId.eq(id))
            .all(&self.db)
            .await?;
        let failed: Vec<&rollout_device::Model> =
            rows.iter().filter(|d| d.status == "failed").collect();
        let next = match (action, r.status.as_str()) {
            ("pause", "running") => "paused",
            ("resume", "paused" | "stopped") => "running",
            ("cancel", "running" | "paused" | "stopped") => "cancelled",
            ("retry", "running" | "paused" | "stopped" | "done") if !failed.is_empty() => {
                if r.status == "paused" {
                    "paused"
                } else {
                    "running"
                }
            }
            ("retry", _) if failed.is_empty() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "no device of this rollout failed: nothing to retry",
                ));
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("cannot {action} a {} rollout", r.status),
                ));
            }
        };
        let now = self.clock.now_utc();
        let mut plan: RolloutPlan = serde_json::from_value(r.plan.clone()).unwrap_or_default();
        let mut wave = r.current_wave;
        let mut message = r.message.clone();
        match action {
            "cancel" => {
                // Devices not started are skipped; started ones are left to
                // finish on their own (a camera mid-flash must not be cut off).
                rollout_device::Entity::update_many()
                    .col_expr(
                        rollout_device::Column::Status,
                        sea_orm::sea_query::Expr::value("skipped"),
                    )
                    .col_expr(
                        rollout_device::Column::Message,
                        sea_orm::sea_query::Expr::value("rollout cancelled"),
                    )
                    .filter(rollout_device::Column::RolloutId.eq(id))
                    .filter(rollout_device::Column::Status.eq("pending"))
                    .exec(&self.db)
                    .await?;
            }
            "resume" if r.status == "stopped" => {
                plan.canary_accepted |= failed.iter().any(|d| d.wave == 0);
                plan.failures_accepted = failed.iter().filter(|d| d.wave > 0).count();
                message = format!(
                    "resumed by {} past {} failed device{}",
                    actor.name,
                    failed.len(),
                    if failed.len() == 1 { "" } else { "s" }
                );
            }
            "retry" => {
                let ids: Vec<i32> = failed.iter().map(|d| d.id).collect();
                rollout_device::Entity::update_many()
                    .col_expr(
                        rollout_device::Column::Status,
                        sea_orm::sea_query::Expr::value("pending"),
                    )
                    .col_expr(
                        rollout_device::Column::Message,
                        sea_orm::sea_query::Expr::value(format!("retried by {}", actor.name)),
                    )
                    .filter(rollout_device::Column::Id.is_in(ids))
                    .exec(&self.db)
                    .await?;
                // Their earliest wave runs again; later waves already done
                // are passed through.
                wave = failed.iter().map(|d| d.wave).min().unwrap_or(wave);
                message = format!(
                    "retrying {} failed device{}",
                    failed.len(),
                    if failed.len() == 1 { "" } else { "s" }
                );
            }
            _ => {}
        }
        let before = r.status.clone();
        let mut am = r.into_active_model();
        am.status = Set(next.into());
        am.current_wave = Set(wave);
        am.message = Set(message);
        am.plan = Set(serde_json::to_value(&plan).unwrap_or_default());
        am.updated_at = Set(now);
        am.update(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "firmware.rollout_control",
                target_kind: "rollout",
                target_id: id.to_string(),
                before: Some(json!({"status": before})),
                after: Some(json!({"status": next, "action": action})),
            },
        )
        .await?;
        Ok(())
    }

    async fn session(&self, d: &device::Model) -> Result<crate::onvif::DeviceSession> {
        let creds =
            super::poller::stored_credentials(&self.db, &self.secrets, d.credential_id).await?;
        device_session(
            &d.device_url,
            &d.policy,
            d.auth_mode.as_deref(),
            &d.quirks,
            creds,
            &self.transport,
            &self.clock,
        )
        .map_err(|(_, e)| Error::new(ErrorKind::InvalidArgument, e))
    }

    /// Advance every running rollout by what is due now. Returns alert
    /// notices for devices that failed.
    pub async fn tick(&self) -> Result<Vec<Notice>> {
        let _one = self.serial.lock().await;
        let mut notices = Vec::new();
        let active = firmware_rollout::Entity::find()
            .filter(firmware_rollout::Column::Status.is_in(["running", "paused", "cancelled"]))
            .all(&self.db)
            .await?;
        for r in active {
            self.tick_one(r, &mut notices).await?;
        }
        Ok(notices)
    }

    async fn set_device(
        &self,
        rd: &rollout_device::Model,
        f: impl FnOnce(&mut rollout_device::ActiveModel),
    ) -> Result<()> {
        let mut am = rd.clone().into_active_model();
        f(&mut am);
        am.updated_at = Set(self.clock.now_utc());
        am.update(&self.db).await?;
        Ok(())
    }

    async fn tick_one(&self, r: firmware_rollout::Model, notices: &mut Vec<Notice>) -> Result<()> {
        let plan: RolloutPlan = serde_json::from_value(r.plan.clone()).unwrap_or_default();
        let img = self.image(r.image_id).await?;
        let now = self.clock.now_utc();
        let rows = rollout_device::Entity::find()
            .filter(rollout_device::Column::RolloutId.eq(r.id))
            .order_by_asc(rollout_device::Column::Id)
            .all(&self.db)
            .await?;
        // 1. Devices in flight are followed whatever the rollout's state.
        let mut image: Option<Bytes> = None;
        for rd in rows
            .iter()
            .filter(|d| d.status == "uploading" || d.status == "rebooting")
        {
            let Some(d) = device::Entity::find_by_id(rd.device_id)
                .one(&self.db)
                .await?
            else {
                self.set_device(rd, |a| {
                    a.status = Set("failed".into());
                    a.message = Set("device deleted".into());
                })
                .await?;
                continue;
            };
            let s = self.session(&d).await?;
            let failed = |why: String| HealthEvent::FirmwareUpgradeFailed {
                version: img.version.clone(),
                reason: why,
            };
            if rd.status == "uploading" {
                if rd.next_at.is_some_and(|t| now < t) {
                    continue;
                }
                if image.is_none() {
                    image = Some(self.storage.get(&img.storage_key).await?);
                }
                let bytes = image.clone().unwrap_or_default();
                let ticket = crate::onvif::firmware::UpgradeTicket {
                    upload_uri: match url::Url::parse(&rd.upload_uri) {
                        Ok(u) => u,
                        Err(e) => {
                            let why = format!("bad UploadUri: {e}");
                            self.fail(rd, &why).await?;
                            notices.push(Notice::Event {
                                device_id: d.id,
                                event: failed(why),
                            });
                            continue;
                        }
                    },
                    upload_delay: std::time::Duration::ZERO,
                    expected_down_time: std::time::Duration::ZERO,
                };
                let timeout = std::time::Duration::from_secs(600);
                match crate::onvif::firmware::upload(&s, &ticket, bytes, timeout).await {
                    Ok(()) => {
                        self.set_device(rd, |a| {
                            a.status = Set("rebooting".into());
                            a.message = Set("uploaded; waiting for the camera to come back".into());
                        })
                        .await?;
                    }
                    Err(e) => {
                        let why = format!("upload refused: {}", e.message);
                        self.fail(rd, &why).await?;
                        notices.push(Notice::Event {
                            device_id: d.id,
                            event: failed(why),
                        });
                    }
                }
                continue;
            }
            // Rebooting: back with the new version?
            let info = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                crate::onvif::device::get_device_information(&s),
            )
            .await;
            let past = rd.deadline.is_some_and(|t| now >= t);
            match info {
                Ok(Ok(i)) if i.firmware_version == img.version => {
                    self.set_device(rd, |a| {
                        a.status = Set("done".into());
                        a.message = Set(format!("running {}", img.version));
                    })
                    .await?;
                    let mut am = d.into_active_model();
                    am.firmware = Set(img.version.clone());
                    am.update(&self.db).await?;
                }
                Ok(Ok(i)) if past => {
                    let why = if i.firmware_version == rd.from_version {
                        format!("came back with the old version {}", i.firmware_version)
                    } else {
                        format!("came back with {}, not {}", i.firmware_version, img.version)
                    };
                    self.fail(rd, &why).await?;
                    notices.push(Notice::Event {
                        device_id: d.id,
                        event: failed(why),
                    });
                }
                Ok(Err(_)) | Err(_) if past => {
                    let why = format!(
                        "did not come back within its expected down time plus {} s",
                        plan.margin_s
                    );
                    self.fail(rd, &why).await?;
                    notices.push(Notice::Event {
                        device_id: d.id,
                        event: failed(why),
                    });
                }
                _ => {} // not yet
            }
        }
        if r.status != "running" {
            return Ok(());
        }
        // 2. Is the current wave finished?
        let rows = rollout_device::Entity::find()
            .filter(rollout_device::Column::RolloutId.eq(r.id))
            .all(&self.db)
            .await?;
        let wave = r.current_wave;
        let in_wave: Vec<&rollout_device::Model> = rows.iter().filter(|d| d.wave == wave).collect();
        let busy = in_wave
            .iter()
            .any(|d| matches!(d.status.as_str(), "uploading" | "rebooting"));
        let pending: Vec<&rollout_device::Model> = in_wave
            .iter()
            .copied()
            .filter(|d| d.status == "pending")
            .collect();
        if !busy && pending.is_empty() {
            let canary_failed = rows.iter().any(|d| d.wave == 0 && d.status == "failed");
            let failures = rows
                .iter()
                .filter(|d| d.wave > 0 && d.status == "failed")
                .count();
            let last = rows.iter().map(|d| d.wave).max().unwrap_or(0);
            let (status, wave, message) = if canary_failed && !plan.canary_accepted {
                (
                    "stopped",
                    wave,
                    "the canary group failed; no wave was started".to_string(),
                )
            } else if failures > plan.max_failures + plan.failures_accepted {
                (
                    "stopped",
                    wave,
                    format!(
                        "{failures} devices failed (more than {} allowed)",
                        plan.max_failures
                    ),
                )
            } else if wave < last {
                ("running", wave + 1, String::new())
            } else {
                ("done", wave, format!("{failures} failed"))
            };
            let mut am = r.clone().into_active_model();
            am.status = Set(status.into());
            am.current_wave = Set(wave);
            am.message = Set(message);
            am.updated_at = Set(now);
            am.update(&self.db).await?;
            if status == "running" && wave != r.current_wave {
                // The next wave starts on the next tick (inside the window).
                return Ok(());
            }
            return Ok(());
        }
        // 3. Start the wave's pending devices, inside the window only.
        if plan.window.as_ref().is_some_and(|w| !w.contains(now)) {
            return Ok(());
        }
        for rd in pending {
            let Some(d) = device::Entity::find_by_id(rd.device_id)
                .one(&self.db)
                .await?
            else {
                self.fail(rd, "device deleted").await?;
                continue;
            };
            let s = self.session(&d).await?;
            match crate::onvif::firmware::start_firmware_upgrade(&s).await {
                Ok(t) => {
                    let delay = chrono::Duration::from_std(t.upload_delay).unwrap_or_default();
                    let down = chrono::Duration::from_std(t.expected_down_time).unwrap_or_default();
                    let margin = chrono::Duration::seconds(plan.margin_s as i64);
                    self.set_device(rd, |a| {
                        a.status = Set("uploading".into());
                        a.next_at = Set(Some(now + delay));
                        a.deadline = Set(Some(now + delay + down + margin));
                        a.upload_uri = Set(t.upload_uri.to_string());
                        a.message = Set(format!(
                            "upload in {} s; expected down {} s",
                            t.upload_delay.as_secs(),
                            t.expected_down_time.as_secs()
                        ));
                    })
                    .await?;
                }
                Err(e) if e.class == FaultClass::NotSupported => {
                    // Older firmware: the legacy one-call upgrade (MTOM).
                    if image.is_none() {
                        image = Some(self.storage.get(&img.storage_key).await?);
                    }
                    let bytes = image.clone().unwrap_or_default();
                    let timeout = std::time::Duration::from_secs(600);
                    match crate::onvif::firmware::upgrade_system_firmware(&s, bytes, timeout).await
                    {
                        Ok(msg) => {
                            // No ExpectedDownTime in this exchange: assume 5 min.
                            let deadline =
                                now + chrono::Duration::seconds(300 + plan.margin_s as i64);
                            self.set_device(rd, |a| {
                                a.status = Set("rebooting".into());
                                a.deadline = Set(Some(deadline));
                                a.next_at = Set(Some(now));
                                a.message = Set(format!("legacy UpgradeSystemFirmware: {msg}"));
                            })
                            .await?;
                        }
                        Err(e) => {
                            let why = format!("UpgradeSystemFirmware (legacy): {e}");
                            self.fail(rd, &why).await?;
                            notices.push(Notice::Event {
                                device_id: d.id,
                                event: HealthEvent::FirmwareUpgradeFailed {
                                    version: img.version.clone(),
                                    reason: why,
                                },
                            });
                        }
                    }
                }
                Err(e) => {
                    let why = format!("StartFirmwareUpgrade: {e}");
                    self.fail(rd, &why).await?;
                    notices.push(Notice::Event {
                        device_id: d.id,
                        event: HealthEvent::FirmwareUpgradeFailed {
                            version: img.version.clone(),
                            reason: why,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    async fn fail(&self, rd: &rollout_device::Model, why: &str) -> Result<()> {
        tracing::warn!(
            device = rd.device_id,
            rollout = rd.rollout_id,
            "firmware upgrade failed: {why}"
        );
        self.set_device(rd, |a| {
            a.status = Set("failed".into());
            a.message = Set(why.chars().take(1000).collect());
        })
        .await
    }

    /// Run ticks until shutdown, while `lead` says this node leads.
    pub async fn run(
        self: Arc<Self>,
        every: std::time::Duration,
        lead: crate::fleet::cluster::Lead,
        mut shutdown: crate::shutdown::Shutdown,
        on_notices: impl Fn(Vec<Notice>) + Send + Sync + 'static,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            // One node drives rollouts: a camera never gets two uploads.
            if !lead.is_leader() {
                continue;
            }
            match self.tick().await {
                Ok(n) if !n.is_empty() => on_notices(n),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "firmware rollout step failed"),
            }
        }
    }
}

fn check_image_fields(vendor: &str, model_pattern: &str, version: &str) -> Result<()> {
    let invalid = |m: &str| Err(Error::new(ErrorKind::InvalidArgument, m.to_string()));
    if vendor.trim().is_empty() || vendor.len() > 100 {
        return invalid("vendor: required, at most 100 characters");
    }
    if model_pattern.trim().is_empty() || model_pattern.len() > 100 {
        return invalid("model: required (a name, or a prefix ending in *)");
    }
    if version.trim().is_empty() || version.len() > 100 {
        return invalid("version: required, at most 100 characters");
    }
    Ok(())
}

/// SHA-256 (hex) of a file, read in 1 MiB pieces on the blocking pool.
async fn sha256_file(path: &std::path::Path) -> Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || crate::storage::sha256_file(&path))
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("reading the upload: {e}")))?
        .map(|(_, sha256)| sha256)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("reading the upload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_waves_and_model_patterns() {
        // Mon–Fri 22:00–04:00 at UTC+1.
        let w = MaintenanceWindow {
            days: vec![0, 1, 2, 3, 4],
            start_hour: 22,
            end_hour: 4,
            utc_offset_minutes: 60,
        };
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // 2026-11-23 is a Monday.
        assert!(w.contains(at("2026-11-23T21:30:00Z"))); // Mon 22:30 local
        assert!(w.contains(at("2026-11-24T02:00:00Z"))); // Tue 03:00, opened Mon
        assert!(!w.contains(at("2026-11-24T03:00:00Z"))); // Tue 04:00
        assert!(!w.contains(at("2026-11-23T12:00:00Z")));
        assert!(!w.contains(at("2026-11-29T01:00:00Z"))); // Sun 02:00, opened Sat: no
        assert!(!w.contains(at("2026-11-29T00:30:00Z")));
        assert!(w.contains(at("2026-11-28T00:30:00Z"))); // Sat 01:30, opened Fri
        let plan = RolloutPlan {
            canary: 1,
            wave_size: 0,
            wave_percent: 40,
            ..Default::default()
        };
        assert_eq!(waves(6, &plan), [0, 1, 1, 1, 2, 2]);
        let plan = RolloutPlan {
            canary: 2,
            wave_size: 3,
            ..Default::default()
        };
        assert_eq!(waves(7, &plan), [0, 0, 1, 1, 1, 2, 2]);
        assert_eq!(waves(1, &plan), [0]);
        assert!(model_matches("SV-2CD*", "sv-2cd2143"));
        assert!(!model_matches("SV-2CD", "SV-2CD2143"));
    }
}
