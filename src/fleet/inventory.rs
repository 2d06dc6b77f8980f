//! The device inventory: recording adoptions with identity that survives
//! address changes. A camera that comes back on another address (DHCP) is
//! matched by WS-Discovery endpoint UUID, then MAC, then serial — and updated,
//! never duplicated.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set, TransactionTrait,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use crate::clock::SharedClock;
use crate::db::entities::{credential, device, device_profile};
use crate::error::Result;
use crate::onvif::{AdoptedDevice, Credentials};
use crate::secrets::SecretBox;

/// How an adoption changed the inventory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

    fn bump(&self) {
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
        self.bump();
        Ok((model, change))
    }

    /// The stored password of a device's credential, decrypted.
    pub async fn credentials_of(&self, d: &device::Model) -> Result<Option<Credentials>> {
        let Some(id) = d.credential_id else {
            return Ok(None);
        };
        let Some(c) = credential::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            username: c.username,
            password: self.secrets.open_string(&c.sealed)?,
        }))
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
