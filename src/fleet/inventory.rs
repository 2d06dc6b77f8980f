//! The device inventory: recording adoptions with identity that survives
//! address changes. A camera that comes back on another address (DHCP) is
//! matched by WS-Discovery endpoint UUID, then MAC, then serial — and updated,
//! never duplicated.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set, TransactionTrait,
};
use serde_json::json;

use super::access::Scope;
use super::audit::{self, Actor, Entry};
use crate::clock::SharedClock;
use crate::db::entities::{credential, device, device_profile, site};
use crate::error::Result;
use crate::onvif::{AdoptedDevice, Credentials};
use crate::secrets::SecretBox;

/// How an adoption changed the inventory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Created,
    /// Same device, same address: refreshed.
    Refreshed,
    /// Same device found at another address.
    Moved {
        from: String,
    },
}

/// Which identity matched an existing device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    EndpointUuid,
    Mac,
    Serial,
}

pub struct Inventory {
    db: DatabaseConnection,
    secrets: std::sync::Arc<SecretBox>,
    clock: SharedClock,
    /// Bumped on every device write; readers cache derived values (list
    /// counts) against it.
    generation: std::sync::atomic::AtomicU64,
}

/// Identity keys of an adopted device.
pub struct Identity<'a> {
    pub endpoint_uuid: Option<&'a str>,
    pub mac: Option<&'a str>,
    pub serial: Option<&'a str>,
}

impl Inventory {
    pub fn new(
        db: DatabaseConnection,
        secrets: std::sync::Arc<SecretBox>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            secrets,
            clock,
            generation: Default::default(),
        }
    }

    /// Changes whenever this process writes a device.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now_utc()
    }

    /// Tell readers (list caches) that devices were written: by this
    /// service, or by others (poller, bulk edits, import).
    pub fn touch(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The existing device with this identity, trying the strongest key first.
    pub async fn find_by_identity(
        &self,
        id: &Identity<'_>,
    ) -> Result<Option<(device::Model, MatchedBy)>> {
        let keys = [
            (
                id.endpoint_uuid,
                device::Column::EndpointUuid,
                MatchedBy::EndpointUuid,
            ),
            (id.mac, device::Column::Mac, MatchedBy::Mac),
            (id.serial, device::Column::Serial, MatchedBy::Serial),
        ];
        for (value, column, by) in keys {
            let Some(v) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            if let Some(d) = device::Entity::find()
                .filter(column.eq(v))
                .one(&self.db)
                .await?
            {
                return Ok(Some((d, by)));
            }
        }
        Ok(None)
    }

    /// Store an adopted device (insert or update by identity), its profiles
    /// and its sealed credential, in one transaction with its audit entry.
    /// Refused ([`check_adoption_scope`]) when the camera is already managed
    /// in a site the actor does not manage, or would land outside their
    /// sites: re-adoption never moves a device across sites or replaces its
    /// credential for someone who does not manage both.
    pub async fn record_adoption(
        &self,
        adopted: &AdoptedDevice,
        endpoint_uuid: Option<&str>,
        xaddrs: &[String],
        creds: Option<&Credentials>,
        site_id: Option<i32>,
        actor: &Actor,
    ) -> Result<(device::Model, Change)> {
        let now = self.clock.now_utc();
        let serial = Some(adopted.info.serial_number.as_str()).filter(|s| !s.is_empty());
        let identity = Identity {
            endpoint_uuid,
            mac: adopted.mac.as_deref(),
            serial,
        };
        let existing = self.find_by_identity(&identity).await?;
        check_adoption_scope(actor, existing.as_ref().map(|(d, _)| d), site_id)?;
        let txn = self.db.begin().await?;
        let credential_id = match creds {
            Some(c) => Some(
                credential::ActiveModel {
                    username: Set(c.username.clone()),
                    sealed: Set(self.secrets.seal_str(&c.password)),
                    created_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?
                .id,
            ),
            None => None,
        };
        let quirks = serde_json::to_value(&adopted.quirks).unwrap_or(json!([]));
        let mut all_xaddrs: Vec<String> = vec![adopted.device_url.clone()];
        all_xaddrs.extend(xaddrs.iter().filter(|x| **x != adopted.device_url).cloned());
        let (model, change, before) = match existing {
            Some((old, _by)) => {
                let before = snapshot(&old);
                let change = if old.device_url == adopted.device_url {
                    Change::Refreshed
                } else {
                    Change::Moved {
                        from: old.device_url.clone(),
                    }
                };
                let old_credential = old.credential_id;
                let mut am = old.into_active_model();
                apply(&mut am, adopted, endpoint_uuid, &all_xaddrs, &quirks, now);
                if credential_id.is_some() {
                    am.credential_id = Set(credential_id);
                }
                if site_id.is_some() {
                    am.site_id = Set(site_id);
                }
                let m = am.update(&txn).await?;
                if credential_id.is_some()
                    && let Some(old_id) = old_credential
                {
                    credential::Entity::delete_by_id(old_id).exec(&txn).await?;
                }
                (m, change, Some(before))
            }
            None => {
                let mut am = device::ActiveModel {
                    location: Set(String::new()),
                    purchase_order: Set(String::new()),
                    supplier: Set(String::new()),
                    asset_tag: Set(String::new()),
                    notes: Set(String::new()),
                    name: Set(String::new()),
                    policy: Set(json!({})),
                    site_id: Set(site_id),
                    credential_id: Set(credential_id),
                    adopted_at: Set(now),
                    ..Default::default()
                };
                apply(&mut am, adopted, endpoint_uuid, &all_xaddrs, &quirks, now);
                (am.insert(&txn).await?, Change::Created, None)
            }
        };
        device_profile::Entity::delete_many()
            .filter(device_profile::Column::DeviceId.eq(model.id))
            .exec(&txn)
            .await?;
        for p in &adopted.profiles {
            let enc = p.encoder.as_ref();
            device_profile::ActiveModel {
                device_id: Set(model.id),
                token: Set(p.token.clone()),
                name: Set(p.name.clone()),
                encoding: Set(enc.map(|e| e.encoding.clone()).unwrap_or_default()),
                width: Set(enc.and_then(|e| e.width).map(|v| v as i32)),
                height: Set(enc.and_then(|e| e.height).map(|v| v as i32)),
                frame_rate: Set(enc.and_then(|e| e.frame_rate_limit).map(f64::from)),
                bitrate_kbps: Set(enc.and_then(|e| e.bitrate_limit_kbps).map(|v| v as i32)),
                stream_uri: Set(p.stream_uri.as_deref().map(strip_userinfo)),
                snapshot_uri: Set(p.snapshot_uri.as_deref().map(strip_userinfo)),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        }
        let action = match &change {
            Change::Created => "device.adopt",
            Change::Refreshed => "device.readopt",
            Change::Moved { .. } => "device.moved",
        };
        audit::record(
            &txn,
            actor,
            now,
            Entry {
                action,
                target_kind: "device",
                target_id: model.id.to_string(),
                before,
                after: Some(snapshot(&model)),
            },
        )
        .await?;
        txn.commit().await?;
        self.touch();
        Ok((model, change))
    }

    /// The key that seals camera passwords (for services that open them).
    pub fn secrets(&self) -> std::sync::Arc<SecretBox> {
        self.secrets.clone()
    }

    /// The stored password of a device's credential, decrypted.
    pub async fn credentials_of(&self, d: &device::Model) -> Result<Option<Credentials>> {
        super::poller::stored_credentials(&self.db, &self.secrets, d.credential_id).await
    }
}

fn apply(
    am: &mut device::ActiveModel,
    a: &AdoptedDevice,
    endpoint_uuid: Option<&str>,
    xaddrs: &[String],
    quirks: &serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) {
    if let Some(e) = endpoint_uuid {
        am.endpoint_uuid = Set(Some(e.to_string()));
    }
    if a.mac.is_some() {
        am.mac = Set(a.mac.clone());
    }
    if !a.info.serial_number.is_empty() {
        am.serial = Set(Some(a.info.serial_number.clone()));
    }
    am.manufacturer = Set(a.info.manufacturer.clone());
    am.model = Set(a.info.model.clone());
    am.firmware = Set(a.info.firmware_version.clone());
    am.hardware_id = Set(a.info.hardware_id.clone());
    am.hostname = Set(a
        .hostname
        .as_ref()
        .and_then(|h| h.name.clone())
        .unwrap_or_default());
    if let Some(n) = &a.scopes.name {
        am.name = Set(n.clone());
    }
    am.device_url = Set(a.device_url.clone());
    am.xaddrs = Set(json!(xaddrs));
    am.events_url = Set(Some(
        a.services
            .iter()
            .find(|s| s.service == Some(crate::onvif::ops::Service::Events))
            .map(|s| s.xaddr.clone())
            .unwrap_or_default(),
    ));
    am.status = Set("online".into());
    am.last_seen = Set(Some(now));
    am.auth_mode = Set(a.auth_mode.map(|m| m.as_str().to_string()));
    am.clock_offset_ms = Set(a.clock_offset_ms);
    am.quirks = Set(quirks.clone());
    am.media_version = Set(a
        .media_version
        .map(|v| format!("{v:?}").to_ascii_lowercase()));
    am.updated_at = Set(now);
    // try_as_ref: a field never set (a new device's MAC) is simply empty.
    let text = |v: &sea_orm::ActiveValue<String>| v.try_as_ref().cloned().unwrap_or_default();
    let opt = |v: &sea_orm::ActiveValue<Option<String>>| v.try_as_ref().cloned().flatten();
    am.search_text = Set(search_text(
        &text(&am.name),
        &text(&am.model),
        &text(&am.manufacturer),
        opt(&am.serial).as_deref(),
        opt(&am.mac).as_deref(),
        &text(&am.hostname),
        &text(&am.device_url),
        &text(&am.asset_tag),
    ));
}

/// The device list's search text: the same fields, in the same order, as the
/// migration that backfilled it.
#[allow(clippy::too_many_arguments)]
pub fn search_text(
    name: &str,
    model: &str,
    manufacturer: &str,
    serial: Option<&str>,
    mac: Option<&str>,
    hostname: &str,
    device_url: &str,
    asset_tag: &str,
) -> String {
    [
        name,
        model,
        manufacturer,
        serial.unwrap_or(""),
        mac.unwrap_or(""),
        hostname,
        device_url,
        asset_tag,
    ]
    .join(" ")
    .to_lowercase()
}

/// What the audit log keeps of a device: identity and address, no secrets.
fn snapshot(d: &device::Model) -> serde_json::Value {
    json!({
        "endpoint_uuid": d.endpoint_uuid, "mac": d.mac, "serial": d.serial,
        "manufacturer": d.manufacturer, "model": d.model, "firmware": d.firmware,
        "device_url": d.device_url, "site_id": d.site_id, "name": d.name,
    })
}

/// Never store or show credentials embedded in a URI.
pub fn strip_userinfo(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => uri.to_string(),
    }
}

/// The inventory fields procurement edits, as submitted (strings), with
/// per-field validation.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct InventoryForm {
    #[serde(default)]
    pub name: String,
    /// The site's name; empty for none.
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub purchase_order: String,
    #[serde(default)]
    pub purchase_date: String,
    #[serde(default)]
    pub supplier: String,
    /// Money as typed: `1234.50`.
    #[serde(default)]
    pub cost: String,
    #[serde(default)]
    pub warranty_end: String,
    #[serde(default)]
    pub end_of_life: String,
    #[serde(default)]
    pub asset_tag: String,
    #[serde(default)]
    pub notes: String,
}

/// Field name → what is wrong with it.
pub type FieldErrors = std::collections::BTreeMap<&'static str, String>;

struct Valid {
    purchase_date: Option<chrono::NaiveDate>,
    warranty_end: Option<chrono::NaiveDate>,
    end_of_life: Option<chrono::NaiveDate>,
    cost_cents: Option<i64>,
}

fn parse_date(field: &'static str, v: &str, errors: &mut FieldErrors) -> Option<chrono::NaiveDate> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.insert(field, "a date as YYYY-MM-DD".into());
            None
        }
    }
}

/// `1234`, `1234.5`, `1234.50` → cents; at most two decimals, not negative.
pub fn parse_money(v: &str) -> Result<Option<i64>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || frac.len() > 2 || (!frac.is_empty() && !digits(frac)) || whole.len() > 10 {
        return Err("an amount such as 1234.50".into());
    }
    let cents = whole.parse::<i64>().map_err(|_| "too large".to_string())? * 100
        + format!("{frac:0<2}").parse::<i64>().unwrap_or(0);
    Ok(Some(cents))
}

impl InventoryForm {
    fn validate(&self) -> Result<Valid, FieldErrors> {
        let mut errors = FieldErrors::new();
        for (field, value, max) in [
            ("name", &self.name, 200),
            ("location", &self.location, 500),
            ("purchase_order", &self.purchase_order, 100),
            ("supplier", &self.supplier, 200),
            ("asset_tag", &self.asset_tag, 100),
            ("notes", &self.notes, 4000),
        ] {
            if value.chars().count() > max {
                errors.insert(field, format!("at most {max} characters"));
            }
        }
        let purchase_date = parse_date("purchase_date", &self.purchase_date, &mut errors);
        let warranty_end = parse_date("warranty_end", &self.warranty_end, &mut errors);
        let end_of_life = parse_date("end_of_life", &self.end_of_life, &mut errors);
        let cost_cents = match parse_money(&self.cost) {
            Ok(c) => c,
            Err(e) => {
                errors.insert("cost", e);
                None
            }
        };
        if let (Some(p), Some(w)) = (purchase_date, warranty_end)
            && w < p
        {
            errors.insert("warranty_end", "before the purchase date".into());
        }
        if errors.is_empty() {
            Ok(Valid {
                purchase_date,
                warranty_end,
                end_of_life,
                cost_cents,
            })
        } else {
            Err(errors)
        }
    }

    /// The form as it shows a stored device (`site` is its site's name).
    pub fn from_device(d: &device::Model, site: &str) -> Self {
        let date = |d: Option<chrono::NaiveDate>| {
            d.map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        Self {
            name: d.name.clone(),
            site: site.to_string(),
            location: d.location.clone(),
            purchase_order: d.purchase_order.clone(),
            purchase_date: date(d.purchase_date),
            supplier: d.supplier.clone(),
            cost: d
                .cost_cents
                .map(|c| format!("{}.{:02}", c / 100, c % 100))
                .unwrap_or_default(),
            warranty_end: date(d.warranty_end),
            end_of_life: date(d.end_of_life),
            asset_tag: d.asset_tag.clone(),
            notes: d.notes.clone(),
        }
    }
}

/// The outcome of an inventory edit.
pub enum InventoryEdit {
    Saved(Box<device::Model>),
    /// Nothing was changed; these fields need fixing.
    Invalid(FieldErrors),
}

/// A validated edit of one device, not yet written: what changes, before →
/// after (only the fields that differ).
pub struct PlannedEdit {
    pub device_id: i32,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    am: device::ActiveModel,
}

impl PlannedEdit {
    pub fn is_noop(&self) -> bool {
        self.after.as_object().is_none_or(|m| m.is_empty())
    }
}

/// The name of a site id among `sites` ("" for none).
pub fn site_name(sites: &[site::Model], id: Option<i32>) -> &str {
    id.and_then(|id| sites.iter().find(|s| s.id == id))
        .map(|s| s.name.as_str())
        .unwrap_or("")
}

impl Inventory {
    /// Validate `form` against `old` without writing: per-field errors, or
    /// the change. The site is given by name and must be one the scope
    /// allows.
    pub fn plan_edit(
        &self,
        old: &device::Model,
        form: &InventoryForm,
        sites: &[site::Model],
        scope: &Scope,
    ) -> std::result::Result<PlannedEdit, FieldErrors> {
        let (valid, mut errors) = match form.validate() {
            Ok(v) => (Some(v), FieldErrors::new()),
            Err(e) => (None, e),
        };
        let wanted = form.site.trim();
        let site_id = if wanted.is_empty() {
            None
        } else {
            match sites.iter().find(|s| s.name.eq_ignore_ascii_case(wanted)) {
                Some(s) => Some(s.id),
                None => {
                    errors.insert("site", format!("no site named {wanted:?}"));
                    None
                }
            }
        };
        if !errors.contains_key("site") && site_id != old.site_id && !scope.allows_site(site_id) {
            errors.insert(
                "site",
                if site_id.is_none() {
                    "choose one of your sites".into()
                } else {
                    "that site is outside the sites you may manage".into()
                },
            );
        }
        let Some(valid) = valid.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let old_site = site_name(sites, old.site_id);
        let before = InventoryForm::from_device(old, old_site).as_json();
        let mut am = old.clone().into_active_model();
        am.name = Set(form.name.trim().to_string());
        am.site_id = Set(site_id);
        am.location = Set(form.location.trim().to_string());
        am.purchase_order = Set(form.purchase_order.trim().to_string());
        am.purchase_date = Set(valid.purchase_date);
        am.supplier = Set(form.supplier.trim().to_string());
        am.cost_cents = Set(valid.cost_cents);
        am.warranty_end = Set(valid.warranty_end);
        am.end_of_life = Set(valid.end_of_life);
        am.asset_tag = Set(form.asset_tag.trim().to_string());
        am.notes = Set(form.notes.clone());
        am.search_text = Set(search_text(
            form.name.trim(),
            &old.model,
            &old.manufacturer,
            old.serial.as_deref(),
            old.mac.as_deref(),
            &old.hostname,
            &old.device_url,
            form.asset_tag.trim(),
        ));
        // What the stored row will read back as, for the diff.
        let mut new = old.clone();
        new.name = form.name.trim().to_string();
        new.site_id = site_id;
        new.location = form.location.trim().to_string();
        new.purchase_order = form.purchase_order.trim().to_string();
        new.purchase_date = valid.purchase_date;
        new.supplier = form.supplier.trim().to_string();
        new.cost_cents = valid.cost_cents;
        new.warranty_end = valid.warranty_end;
        new.end_of_life = valid.end_of_life;
        new.asset_tag = form.asset_tag.trim().to_string();
        new.notes = form.notes.clone();
        let after = InventoryForm::from_device(&new, site_name(sites, site_id)).as_json();
        let (before, after) = changed_fields(&before, &after);
        Ok(PlannedEdit {
            device_id: old.id,
            before,
            after,
            am,
        })
    }

    /// Write a planned edit inside `txn`, audited (unless nothing changed).
    pub async fn write_edit(
        &self,
        txn: &impl sea_orm::ConnectionTrait,
        mut p: PlannedEdit,
        action: &str,
        actor: &Actor,
    ) -> Result<Option<device::Model>> {
        if p.is_noop() {
            return Ok(None);
        }
        p.am.updated_at = Set(self.clock.now_utc());
        let new = p.am.update(txn).await?;
        audit::record(
            txn,
            actor,
            self.clock.now_utc(),
            Entry {
                action,
                target_kind: "device",
                target_id: p.device_id.to_string(),
                before: Some(p.before),
                after: Some(p.after),
            },
        )
        .await?;
        Ok(Some(new))
    }

    /// Set a device's own poll interval (None: its site's, or the default).
    pub async fn set_poll_interval(
        &self,
        id: i32,
        secs: Option<i32>,
        scope: &Scope,
        actor: &Actor,
    ) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        if secs.is_some_and(|s| !(10..=86_400).contains(&s)) {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidArgument,
                "poll interval: 10–86400 seconds, or empty for the site's or the default",
            ));
        }
        let old = self.get_scoped(id, scope).await?.ok_or_else(|| {
            crate::error::Error::new(crate::error::ErrorKind::NotFound, format!("no device {id}"))
        })?;
        if old.poll_interval_s == secs {
            return Ok(());
        }
        let before = old.poll_interval_s;
        let mut am = old.into_active_model();
        am.poll_interval_s = Set(secs);
        am.update(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.poll_interval",
                target_kind: "device",
                target_id: id.to_string(),
                before: Some(json!({"poll_interval_s": before})),
                after: Some(json!({"poll_interval_s": secs})),
            },
        )
        .await
    }

    /// A device by id, if it exists and the scope lets its user see it.
    pub async fn get_scoped(&self, id: i32, scope: &Scope) -> Result<Option<device::Model>> {
        Ok(device::Entity::find_by_id(id)
            .filter(scope.devices())
            .one(&self.db)
            .await?)
    }

    /// Validate and store the inventory fields of a device; audited as
    /// before → after of the fields that changed. Nothing is written when
    /// any field is invalid.
    pub async fn edit_inventory(
        &self,
        id: i32,
        form: &InventoryForm,
        scope: &Scope,
        actor: &Actor,
    ) -> Result<InventoryEdit> {
        actor.require(crate::fleet::users::Role::can_edit_inventory)?;
        let old = self.get_scoped(id, scope).await?.ok_or_else(|| {
            crate::error::Error::new(crate::error::ErrorKind::NotFound, format!("no device {id}"))
        })?;
        let sites = site::Entity::find().all(&self.db).await?;
        let plan = match self.plan_edit(&old, form, &sites, scope) {
            Ok(p) => p,
            Err(errors) => return Ok(InventoryEdit::Invalid(errors)),
        };
        let txn = self.db.begin().await?;
        let new = self
            .write_edit(&txn, plan, "device.inventory", actor)
            .await?;
        txn.commit().await?;
        self.touch();
        Ok(InventoryEdit::Saved(Box::new(new.unwrap_or(old))))
    }
}

impl InventoryForm {
    fn as_json(&self) -> serde_json::Value {
        json!({
            "name": self.name, "site": self.site, "location": self.location, "purchase_order": self.purchase_order,
            "purchase_date": self.purchase_date, "supplier": self.supplier, "cost": self.cost,
            "warranty_end": self.warranty_end, "end_of_life": self.end_of_life,
            "asset_tag": self.asset_tag, "notes": self.notes,
        })
    }
}

/// Only the keys whose values differ, as (before, after).
fn changed_fields(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    let (mut b, mut a) = (serde_json::Map::new(), serde_json::Map::new());
    if let (Some(bo), Some(ao)) = (before.as_object(), after.as_object()) {
        for (k, av) in ao {
            let bv = bo.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if &bv != av {
                b.insert(k.clone(), bv);
                a.insert(k.clone(), av.clone());
            }
        }
    }
    (serde_json::Value::Object(b), serde_json::Value::Object(a))
}

/// How a device is named to people: its name, or `device N`.
pub fn display_name(d: &device::Model) -> String {
    if d.name.is_empty() {
        format!("device {}", d.id)
    } else {
        d.name.clone()
    }
}

/// May this actor adopt into `site` a camera that is `existing` (already
/// managed) or new? Adopting a new camera needs the target site in scope
/// (a limited user cannot leave it without a site); re-adopting needs the
/// device's present site in scope too, whether or not it moves, because
/// re-adoption replaces its stored credential.
pub fn check_adoption_scope(
    actor: &Actor,
    existing: Option<&device::Model>,
    site: Option<i32>,
) -> Result<()> {
    actor.require(crate::fleet::users::Role::can_operate_devices)?;
    if let Some(d) = existing
        && !actor.scope.allows_site(d.site_id)
    {
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::PermissionDenied,
            format!(
                "this camera is already managed (device {}) in a site you do not manage; \
                 ask someone who manages that site",
                d.id
            ),
        ));
    }
    // Re-adopting without naming a site keeps the device where it is.
    let target = match (existing, site) {
        (Some(d), None) => d.site_id,
        (_, s) => s,
    };
    actor.scope.check_site(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_parses_to_cents_or_says_why_not() {
        assert_eq!(parse_money(""), Ok(None));
        assert_eq!(parse_money("12"), Ok(Some(1200)));
        assert_eq!(parse_money("12.5"), Ok(Some(1250)));
        assert_eq!(parse_money("12.05"), Ok(Some(1205)));
        for bad in ["-3", "12.345", "1e3", "12,50", "abc", ".5", "99999999999"] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_names_each_bad_field() {
        let f = InventoryForm {
            purchase_date: "2026-02-30".into(),
            cost: "lots".into(),
            warranty_end: "2025-01-01".into(),
            ..Default::default()
        };
        let e = f.validate().err().unwrap();
        assert!(e.contains_key("purchase_date") && e.contains_key("cost"));
        let f = InventoryForm {
            purchase_date: "2026-01-10".into(),
            warranty_end: "2025-01-01".into(),
            ..Default::default()
        };
        assert_eq!(
            f.validate().err().unwrap()["warranty_end"],
            "before the purchase date"
        );
    }
}
