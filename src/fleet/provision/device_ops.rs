//! One-off device operations: reboot, IPv4 change with a reachability
//! check, time fix, settings snapshot for the configuration backup.

use super::*;

impl Provisioner {
    pub(super) fn session_of(&self, t: &Target) -> Result<DeviceSession> {
        device_session(
            &t.device.device_url,
            &t.device.policy,
            t.device.auth_mode.as_deref(),
            &t.device.quirks,
            t.creds.clone(),
            &self.transport,
            &self.clock,
        )
        .map_err(|(_, e)| Error::new(ErrorKind::InvalidArgument, e))
    }

    pub(super) async fn target(&self, device_id: i32) -> Result<Target> {
        self.targets(&[device_id])
            .await?
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no device {device_id}")))
    }

    /// Put a drifting camera clock right: NTP when the camera has NTP
    /// servers (or takes them from DHCP), else camfleet's clock.
    pub async fn sync_time(&self, device_id: i32) -> Result<String> {
        let t = self.target(device_id).await?;
        let s = self.session_of(&t)?;
        let unavailable = |e: OnvifError| Error::new(ErrorKind::Unavailable, e.to_string());
        let ntp = dev::get_ntp(&s).await.ok();
        let use_ntp = ntp
            .as_ref()
            .is_some_and(|n| n.from_dhcp || !n.servers.is_empty());
        let utc = (!use_ntp).then(|| self.clock.now_utc());
        cfg::set_system_date_and_time(&s, use_ntp, None, utc)
            .await
            .map_err(unavailable)?;
        Ok(if use_ntp {
            "switched to NTP".into()
        } else {
            "set to camfleet's clock (the camera has no NTP server)".into()
        })
    }

    /// A snapshot of a camera's settings for the configuration backup.
    /// Unreadable parts are recorded as errors, not fatal; a camera that
    /// cannot be read at all is.
    /// The camera's own configuration backup (GetSystemBackup). Ok(None)
    /// when the camera does not offer it.
    pub async fn system_backup(
        &self,
        device_id: i32,
    ) -> Result<Option<Vec<crate::onvif::config::BackupFile>>> {
        let t = self.target(device_id).await?;
        let s = self.session_of(&t)?;
        match crate::onvif::config::get_system_backup(&s).await {
            Ok(files) => Ok(Some(files)),
            Err(e) if e.class == crate::onvif::FaultClass::NotSupported => Ok(None),
            Err(e) => Err(Error::new(ErrorKind::Unavailable, e.to_string())),
        }
    }

    /// Give the camera back the files of one of its own configuration
    /// backups (RestoreSystem). Audited whatever the camera answers: a
    /// refused restore may still have changed something.
    pub async fn restore_backup(
        &self,
        device_id: i32,
        stamp: &str,
        files: Vec<crate::onvif::config::BackupFile>,
        actor: &Actor,
    ) -> Result<String> {
        let t = self.target(device_id).await?;
        let s = self.session_of(&t)?;
        let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        let bytes: usize = files.iter().map(|f| f.data.len()).sum();
        let r = cfg::restore_system(&s, files, std::time::Duration::from_secs(120)).await;
        let outcome = match &r {
            Ok(()) => "restored".to_string(),
            Err(e) => format!("refused: {e}"),
        };
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.restore_backup",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: None,
                after: Some(json!({
                    "backup": stamp,
                    "files": names,
                    "bytes": bytes,
                    "outcome": outcome,
                })),
            },
        )
        .await?;
        match r {
            Ok(()) => Ok(format!(
                "the camera took back {} file{} ({bytes} bytes) of the backup of {stamp}; it may restart to apply them",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            )),
            Err(e) => Err(Error::new(
                match e.class {
                    crate::onvif::FaultClass::NotSupported => ErrorKind::Conflict,
                    crate::onvif::FaultClass::InvalidArgument => ErrorKind::InvalidArgument,
                    _ => ErrorKind::Unavailable,
                },
                if e.class == crate::onvif::FaultClass::NotSupported {
                    format!(
                        "this camera does not offer ONVIF RestoreSystem ({e}); download the files here and restore them with the maker's tool"
                    )
                } else {
                    format!("the camera did not take the backup back: {e}")
                },
            )),
        }
    }

    pub async fn settings_snapshot(&self, device_id: i32) -> Result<serde_json::Value> {
        let t = self.target(device_id).await?;
        let s = self.session_of(&t)?;
        let info = dev::get_device_information(&s)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
        let _ = crate::onvif::adopt::discover_services(&s).await;
        fn part<T: Serialize>(r: std::result::Result<T, OnvifError>) -> serde_json::Value {
            match r {
                Ok(v) => serde_json::to_value(v).unwrap_or(json!(null)),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        let media = media_of(&t.device);
        Ok(json!({
            "device_id": device_id,
            "taken_at": self.clock.now_utc(),
            "information": info,
            "time": part(s.sync_clock().await),
            "hostname": part(dev::get_hostname(&s).await),
            "ntp": part(dev::get_ntp(&s).await),
            "dns": part(dev::get_dns(&s).await),
            "network_interfaces": part(dev::get_network_interfaces(&s).await),
            "users": part(dev::get_users(&s).await),
            "scopes": part(dev::get_scopes(&s).await),
            "discoverable": part(cfg::get_discovery_mode(&s).await),
            "profiles": part(crate::onvif::media::get_profiles(&s, media).await),
        }))
    }

    /// SystemReboot (audited).
    pub async fn reboot(&self, device_id: i32, actor: &Actor) -> Result<String> {
        let s = self.session_of(&self.target(device_id).await?)?;
        let msg = cfg::system_reboot(&s)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.reboot",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: None,
                after: Some(json!({"message": msg})),
            },
        )
        .await?;
        Ok(msg)
    }

    /// Change a camera's IPv4 configuration (DHCP, or a static address),
    /// reboot it when it asks to, then check that it answers at its new
    /// address within `wait`. Only then is the stored address changed; the
    /// outcome says what happened either way (and is audited).
    pub async fn change_network(
        &self,
        device_id: i32,
        dhcp: bool,
        address: Option<(std::net::Ipv4Addr, u8)>,
        wait: std::time::Duration,
        actor: &Actor,
    ) -> Result<String> {
        let t = self.target(device_id).await?;
        let d = &t.device;
        // A session to the device at another address (the new one).
        let session = |url: &str| {
            let mut at = t.clone();
            at.device.device_url = url.to_string();
            self.session_of(&at)
        };
        let s = session(&d.device_url)?;
        let unavailable = |e: OnvifError| Error::new(ErrorKind::Unavailable, e.to_string());
        let ifaces = dev::get_network_interfaces(&s).await.map_err(unavailable)?;
        let iface = ifaces
            .iter()
            .find(|i| i.enabled)
            .or(ifaces.first())
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "the camera lists no interface"))?;
        let before =
            json!({"device_url": d.device_url, "ipv4": iface.ipv4, "dhcp": iface.ipv4_dhcp});
        let reboot = cfg::set_ipv4(&s, &iface.token, dhcp, address)
            .await
            .map_err(unavailable)?;
        if reboot {
            cfg::system_reboot(&s).await.map_err(unavailable)?;
        }
        // Where it should answer now.
        let mut new_url = url::Url::parse(&d.device_url)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, e.to_string()))?;
        if let (false, Some((a, _))) = (dhcp, address) {
            let _ = new_url.set_host(Some(&a.to_string()));
        }
        let started = std::time::Instant::now();
        let mut reachable = false;
        while started.elapsed() < wait {
            let probe = session(new_url.as_str())?;
            let r =
                tokio::time::timeout(std::time::Duration::from_secs(3), probe.sync_clock()).await;
            if matches!(r, Ok(Ok(_))) {
                reachable = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1).min(wait)).await;
        }
        let outcome = if reachable {
            if new_url.as_str() != d.device_url {
                device::Entity::update_many()
                    .col_expr(
                        device::Column::DeviceUrl,
                        sea_orm::sea_query::Expr::value(new_url.to_string()),
                    )
                    .filter(device::Column::Id.eq(device_id))
                    .exec(&self.db)
                    .await?;
            }
            format!("the camera answers at {new_url}")
        } else if dhcp {
            format!(
                "the camera did not answer at {} within {} s after switching to DHCP; it may have a new address: run a discovery",
                d.device_url,
                wait.as_secs()
            )
        } else {
            format!(
                "the camera did not answer at {new_url} within {} s; the stored address is unchanged",
                wait.as_secs()
            )
        };
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "device.network",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: Some(before),
                after: Some(json!({"dhcp": dhcp, "address": address.map(|(a, p)| format!("{a}/{p}")), "reachable": reachable, "outcome": outcome})),
            },
        )
        .await?;
        if reachable {
            Ok(outcome)
        } else {
            Err(Error::new(ErrorKind::Unavailable, outcome))
        }
    }
}
