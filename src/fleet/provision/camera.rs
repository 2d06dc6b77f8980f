//! One camera's side of provisioning: read each setting, compare it with
//! the profile, write it.

use super::*;

/// One device's conversation for plan and apply.
pub struct Provisioning<'a> {
    pub session: DeviceSession,
    pub target: &'a Target,
    pub spec: &'a ProfileSpec,
    pub secrets: &'a SecretBox,
    pub clock: &'a SharedClock,
    pub transport: &'a Transport,
    media: MediaVersion,
}

impl<'a> Provisioning<'a> {
    pub fn new(
        target: &'a Target,
        spec: &'a ProfileSpec,
        secrets: &'a SecretBox,
        clock: &'a SharedClock,
        transport: &'a Transport,
    ) -> std::result::Result<Self, String> {
        let d = &target.device;
        let session = device_session(
            &d.device_url,
            &d.policy,
            d.auth_mode.as_deref(),
            &d.quirks,
            target.creds.clone(),
            transport,
            clock,
        )
        .map_err(|(_, e)| e)?;
        let media = media_of(d);
        Ok(Self {
            session,
            target,
            spec,
            secrets,
            clock,
            transport,
            media,
        })
    }

    pub(super) fn password(&self, u: &UserSpec) -> std::result::Result<String, String> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&u.password_sealed)
            .map_err(|e| format!("user {}: stored password unreadable: {e}", u.username))?;
        self.secrets
            .open_string(&raw)
            .map_err(|e| format!("user {}: stored password unreadable: {e}", u.username))
    }

    /// The encoder a profile kind points at: the first profile's for main,
    /// the second's for sub.
    pub(super) async fn encoder(
        &self,
        kind: &str,
    ) -> std::result::Result<VideoEncoder, OnvifError> {
        let all = crate::onvif::media::get_profiles(&self.session, self.media).await?;
        let idx = if kind == "main" { 0 } else { 1 };
        all.get(idx).and_then(|p| p.encoder.clone()).ok_or_else(|| {
            OnvifError::new(
                FaultClass::NotSupported,
                "GetProfiles",
                format!("no {kind} stream profile"),
            )
        })
    }

    pub(super) async fn options(
        &self,
        token: &str,
    ) -> std::result::Result<Vec<EncodingOptions>, OnvifError> {
        encoder::get_options(&self.session, self.media, token).await
    }

    /// Read one setting: (current text, action).
    pub(super) async fn read(&self, key: &str) -> (String, String, Action) {
        let d = &self.target.device;
        let site = &self.target.site;
        let s = &self.session;
        let spec = self.spec;
        let fail = |e: OnvifError| {
            if not_supported(&e) {
                (
                    String::new(),
                    Action::Cannot(format!("not supported: {}", e.message)),
                )
            } else {
                (format!("unreadable: {e}"), Action::Change)
            }
        };
        let (desired, (current, action)) = match key {
            "time" => {
                let t = spec.time.clone().unwrap_or_default();
                let desired = format!(
                    "{}{}",
                    if t.ntp {
                        "NTP"
                    } else {
                        "manual (camfleet's clock)"
                    },
                    t.tz.as_ref()
                        .map(|z| format!(", TZ {z}"))
                        .unwrap_or_default()
                );
                let r = match s.sync_clock().await {
                    Ok(c) => {
                        let tz_ok =
                            t.tz.as_ref()
                                .is_none_or(|z| c.tz.as_deref() == Some(z.as_str()));
                        let drift = (c.utc - self.clock.now_utc()).num_seconds().abs();
                        let same = c.ntp == t.ntp && tz_ok && (t.ntp || drift <= 5);
                        (
                            format!(
                                "{}{}",
                                if c.ntp { "NTP" } else { "manual" },
                                c.tz.map(|z| format!(", TZ {z}")).unwrap_or_default()
                            ),
                            if same { Action::Same } else { Action::Change },
                        )
                    }
                    Err(e) => fail(e),
                };
                (desired, r)
            }
            "ntp" | "dns" => {
                let want = if key == "ntp" { &spec.ntp } else { &spec.dns };
                let want = want.clone().unwrap_or_default();
                let desired = if want.from_dhcp {
                    "from DHCP".to_string()
                } else {
                    want.servers.join(", ")
                };
                let r = if key == "ntp" {
                    match dev::get_ntp(s).await {
                        Ok(n) => {
                            let same = n.from_dhcp == want.from_dhcp
                                && (want.from_dhcp
                                    || norm_set(n.servers.iter().map(|h| h.text()))
                                        == norm_set(want.servers.iter().map(String::as_str)));
                            (
                                if n.from_dhcp {
                                    "from DHCP".into()
                                } else {
                                    hosts_text(&n.servers)
                                },
                                if same { Action::Same } else { Action::Change },
                            )
                        }
                        Err(e) => fail(e),
                    }
                } else {
                    match dev::get_dns(s).await {
                        Ok(n) => {
                            let same = n.from_dhcp == want.from_dhcp
                                && (want.from_dhcp
                                    || norm_set(n.servers.iter().map(|h| h.text()))
                                        == norm_set(want.servers.iter().map(String::as_str)))
                                && norm_set(n.search_domains.iter().map(String::as_str))
                                    == norm_set(want.search_domains.iter().map(String::as_str));
                            let bad = want
                                .servers
                                .iter()
                                .find(|x| matches!(NetworkHost::from_text(x), NetworkHost::Dns(_)));
                            (
                                format!(
                                    "{}{}",
                                    if n.from_dhcp {
                                        "from DHCP".into()
                                    } else {
                                        hosts_text(&n.servers)
                                    },
                                    if n.search_domains.is_empty() {
                                        String::new()
                                    } else {
                                        format!("; search {}", n.search_domains.join(" "))
                                    }
                                ),
                                match bad {
                                    Some(b) if !want.from_dhcp => Action::Cannot(format!(
                                        "DNS servers must be IP addresses, not {b:?}"
                                    )),
                                    _ if same => Action::Same,
                                    _ => Action::Change,
                                },
                            )
                        }
                        Err(e) => fail(e),
                    }
                };
                (desired, r)
            }
            "hostname" => {
                let want = render(spec.hostname.as_deref().unwrap_or(""), d, site, true);
                let r = match dev::get_hostname(s).await {
                    Ok(h) => {
                        let cur = h.name.clone().unwrap_or_default();
                        let act = if want.is_empty() {
                            Action::Cannot("the pattern renders empty for this device".into())
                        } else if cur == want && !h.from_dhcp {
                            Action::Same
                        } else {
                            Action::Change
                        };
                        (
                            format!("{cur}{}", if h.from_dhcp { " (from DHCP)" } else { "" }),
                            act,
                        )
                    }
                    Err(e) => fail(e),
                };
                (want, r)
            }
            "discovery" => {
                let want = spec.discoverable.unwrap_or(true);
                let txt = |b: bool| {
                    if b {
                        "discoverable"
                    } else {
                        "not discoverable"
                    }
                };
                let r = match cfg::get_discovery_mode(s).await {
                    Ok(c) => (
                        txt(c).to_string(),
                        if c == want {
                            Action::Same
                        } else {
                            Action::Change
                        },
                    ),
                    Err(e) => fail(e),
                };
                (txt(want).to_string(), r)
            }
            "scopes" => {
                let name = spec
                    .name_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false));
                let loc = spec
                    .location_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false));
                let desired = format!(
                    "name {} · location {}",
                    name.as_deref().unwrap_or("(as is)"),
                    loc.as_deref().unwrap_or("(as is)")
                );
                let r = match dev::get_scopes(s).await {
                    Ok(sc) => {
                        let same = name.as_ref().is_none_or(|n| sc.name.as_ref() == Some(n))
                            && loc.as_ref().is_none_or(|l| sc.location.as_ref() == Some(l));
                        (
                            format!(
                                "name {} · location {}",
                                sc.name.unwrap_or_default(),
                                sc.location.unwrap_or_default()
                            ),
                            if same { Action::Same } else { Action::Change },
                        )
                    }
                    Err(e) => fail(e),
                };
                (desired, r)
            }
            k if k.starts_with("encoder:") => {
                let kind = &k["encoder:".len()..];
                let want = if kind == "main" {
                    spec.main_encoder.clone()
                } else {
                    spec.sub_encoder.clone()
                }
                .unwrap_or_default();
                let r = match self.encoder(kind).await {
                    Ok(cur) => {
                        let desired_enc = encoder::merged(&cur, &want);
                        let act = if encoder_matches(&cur, &want) {
                            Action::Same
                        } else {
                            match self.options(&cur.token).await {
                                Ok(opts) => {
                                    let enc = desired_enc.encoding.clone();
                                    let full = EncoderWant {
                                        encoding: Some(enc.clone()),
                                        width: desired_enc.width,
                                        height: desired_enc.height,
                                        frame_rate: desired_enc.frame_rate_limit,
                                        bitrate_kbps: desired_enc.bitrate_limit_kbps,
                                        gov_length: desired_enc.gov_length,
                                        profile: desired_enc.profile.clone(),
                                    };
                                    match opts
                                        .iter()
                                        .find(|o| o.encoding.eq_ignore_ascii_case(&enc))
                                    {
                                        None if !opts.is_empty() => {
                                            Action::Cannot(format!("{enc} is not offered"))
                                        }
                                        None => Action::Change,
                                        Some(o) => match o.refuse(&full) {
                                            Some(why) => Action::Cannot(why),
                                            None => Action::Change,
                                        },
                                    }
                                }
                                // No options to check against: try it.
                                Err(_) => Action::Change,
                            }
                        };
                        return (encoder_text(&desired_enc), encoder_text(&cur), act);
                    }
                    Err(e) => fail(e),
                };
                (format!("{want:?}"), r)
            }
            k if k.starts_with("user:") => {
                let name = &k["user:".len()..];
                let Some(u) = spec.users.iter().find(|u| u.username == name) else {
                    return (String::new(), String::new(), Action::Same);
                };
                let desired = format!("{} ({})", u.username, u.level);
                let r = match dev::get_users(s).await {
                    Ok(users) => match users.iter().find(|x| x.username == u.username) {
                        None => ("absent".to_string(), Action::Change),
                        Some(x) if !x.level.eq_ignore_ascii_case(&u.level) => {
                            (format!("{} ({})", x.username, x.level), Action::Change)
                        }
                        Some(x) => {
                            // Same level: does the profile's password work?
                            let works = match self.password(u) {
                                Ok(pw) => self.login_works(&u.username, &pw).await,
                                Err(_) => Some(false),
                            };
                            (
                                format!("{} ({})", x.username, x.level),
                                if works == Some(true) {
                                    Action::Same
                                } else {
                                    Action::Change
                                },
                            )
                        }
                    },
                    Err(e) => fail(e),
                };
                (desired, r)
            }
            "admin_password" => {
                let user = self
                    .target
                    .creds
                    .as_ref()
                    .map(|c| c.username.clone())
                    .unwrap_or_default();
                let act = if user.is_empty() {
                    Action::Cannot("camfleet has no credentials for this camera".into())
                } else {
                    Action::Change
                };
                (
                    "(a new generated password)".into(),
                    (format!("{user}: current password"), act),
                )
            }
            other => (
                String::new(),
                (
                    String::new(),
                    Action::Cannot(format!("unknown setting {other}")),
                ),
            ),
        };
        (desired, current, action)
    }

    /// The settings this profile touches, in step order.
    pub fn keys(&self) -> Vec<String> {
        let s = self.spec;
        let mut k = Vec::new();
        if s.time.is_some() {
            k.push("time".to_string());
        }
        if s.ntp.is_some() {
            k.push("ntp".into());
        }
        if s.dns.is_some() {
            k.push("dns".into());
        }
        if s.hostname.as_deref().is_some_and(|h| !h.trim().is_empty()) {
            k.push("hostname".into());
        }
        if s.discoverable.is_some() {
            k.push("discovery".into());
        }
        if s.name_scope.is_some() || s.location_scope.is_some() {
            k.push("scopes".into());
        }
        if s.main_encoder.is_some() {
            k.push("encoder:main".into());
        }
        if s.sub_encoder.is_some() {
            k.push("encoder:sub".into());
        }
        for u in &s.users {
            k.push(format!("user:{}", u.username));
        }
        if s.rotate_admin_password {
            k.push("admin_password".into());
        }
        k.sort_by_key(|x| order_of(x));
        k
    }

    pub async fn plan(&self) -> DevicePlan {
        let d = &self.target.device;
        // Service addresses (media, media2) for this session; devices
        // store only their device service.
        if let Err(e) = crate::onvif::adopt::discover_services(&self.session).await {
            return DevicePlan {
                device_id: d.id,
                name: d.name.clone(),
                settings: Vec::new(),
                error: Some(e.to_string()),
            };
        }
        let mut settings = Vec::new();
        for key in self.keys() {
            let (desired, current, action) = self.read(&key).await;
            settings.push(SettingPlan {
                key,
                current,
                desired,
                action,
            });
        }
        DevicePlan {
            device_id: d.id,
            name: crate::fleet::inventory::display_name(d),
            settings,
            error: None,
        }
    }

    /// Can `user` log in with `password` (an authenticated read)? None:
    /// could not tell (not a refusal).
    pub(super) async fn login_works(&self, user: &str, password: &str) -> Option<bool> {
        let d = &self.target.device;
        let mut policy: crate::onvif::DevicePolicy =
            serde_json::from_value(d.policy.clone()).unwrap_or_default();
        policy.auth_mode = self.session.auth_mode().or_else(|| {
            d.auth_mode
                .as_deref()
                .and_then(crate::onvif::AuthMode::parse)
        });
        let url = url::Url::parse(&d.device_url).ok()?;
        let s = DeviceSession::new(
            self.transport.clone(),
            self.clock.clone(),
            url,
            Some(Credentials {
                username: user.into(),
                password: password.into(),
            }),
            policy,
        );
        match dev::get_device_information(&s).await {
            Ok(_) => Some(true),
            Err(e) if e.class == FaultClass::Unauthorized => Some(false),
            Err(_) => None,
        }
    }

    /// Write one setting (the plan said Change).
    pub(super) async fn write(&self, key: &str) -> std::result::Result<String, String> {
        let d = &self.target.device;
        let site = &self.target.site;
        let s = &self.session;
        let spec = self.spec;
        let e = |e: OnvifError| e.to_string();
        match key {
            "time" => {
                let t = spec.time.clone().unwrap_or_default();
                let utc = (!t.ntp).then(|| self.clock.now_utc());
                let dropped = cfg::set_system_date_and_time(s, t.ntp, t.tz.as_deref(), utc)
                    .await
                    .map_err(e)?;
                Ok(if dropped {
                    "the camera refused the time zone; set without it".into()
                } else {
                    String::new()
                })
            }
            "ntp" => {
                let w = spec.ntp.clone().unwrap_or_default();
                let hosts: Vec<NetworkHost> = w
                    .servers
                    .iter()
                    .map(|x| NetworkHost::from_text(x))
                    .collect();
                cfg::set_ntp(s, w.from_dhcp, &hosts).await.map_err(e)?;
                Ok(String::new())
            }
            "dns" => {
                let w = spec.dns.clone().unwrap_or_default();
                let hosts: Vec<NetworkHost> = w
                    .servers
                    .iter()
                    .map(|x| NetworkHost::from_text(x))
                    .collect();
                cfg::set_dns(s, w.from_dhcp, &w.search_domains, &hosts)
                    .await
                    .map_err(e)?;
                Ok(String::new())
            }
            "hostname" => {
                let h = dev::get_hostname(s).await.map_err(e)?;
                if h.from_dhcp {
                    cfg::set_hostname_from_dhcp(s, false).await.map_err(e)?;
                }
                let name = render(spec.hostname.as_deref().unwrap_or(""), d, site, true);
                cfg::set_hostname(s, &name).await.map_err(e)?;
                Ok(String::new())
            }
            "discovery" => {
                cfg::set_discovery_mode(s, spec.discoverable.unwrap_or(true))
                    .await
                    .map_err(e)?;
                Ok(String::new())
            }
            "scopes" => {
                let cur = dev::get_scopes(s).await.map_err(e)?;
                let name = spec
                    .name_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false))
                    .or(cur.name);
                let loc = spec
                    .location_scope
                    .as_deref()
                    .map(|p| render(p, d, site, false))
                    .or(cur.location);
                let mut scopes = Vec::new();
                if let Some(n) = name {
                    scopes.push(cfg::scope_uri("name", &n));
                }
                if let Some(l) = loc {
                    scopes.push(cfg::scope_uri("location", &l));
                }
                cfg::set_scopes(s, &scopes).await.map_err(e)?;
                Ok(String::new())
            }
            k if k.starts_with("encoder:") => {
                let kind = &k["encoder:".len()..];
                let want = if kind == "main" {
                    spec.main_encoder.clone()
                } else {
                    spec.sub_encoder.clone()
                }
                .unwrap_or_default();
                let cur = self.encoder(kind).await.map_err(e)?;
                encoder::set_encoder(s, self.media, &encoder::merged(&cur, &want))
                    .await
                    .map_err(e)?;
                Ok(String::new())
            }
            k if k.starts_with("user:") => {
                let name = &k["user:".len()..];
                let u = spec
                    .users
                    .iter()
                    .find(|u| u.username == name)
                    .ok_or("user left the profile")?;
                let w = UserWrite {
                    username: u.username.clone(),
                    password: self.password(u)?,
                    level: u.level.clone(),
                };
                let exists = dev::get_users(s)
                    .await
                    .map_err(e)?
                    .iter()
                    .any(|x| x.username == u.username);
                if exists {
                    cfg::set_user(s, &w).await.map_err(e)?;
                } else {
                    cfg::create_users(s, std::slice::from_ref(&w))
                        .await
                        .map_err(e)?;
                }
                Ok(String::new())
            }
            other => Err(format!("no writer for {other}")),
        }
    }
}

/// The media service version a device was adopted with.
pub(super) fn media_of(d: &device::Model) -> MediaVersion {
    match d.media_version.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("v20") => MediaVersion::V20,
        _ => MediaVersion::V10,
    }
}

/// A fresh admin password: 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    // 56 symbols: the modulo bias is small and the length makes up for it.
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
