//! The simulated camera's writes: every provisioning operation camfleet
//! sends, applied to the camera's state so reads reflect them, values
//! outside the camera's options refused, and failures on request — a write
//! that answers success but does not stick, a password change that leaves
//! the old password working, a timezone the camera will not take, and
//! firmware trouble (upload refused, never back after the reboot, back
//! with the old version).
//!
//! Firmware images for the simulator start with a line
//! `CAMFLEET-SIM-FIRMWARE version=<v>`; anything else is refused as not a
//! firmware image, as a camera refuses a file for another model.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::http::{DigestCheck, SimCamera, challenge, check_digest, plain};
use super::quirks::SimAuth;
use super::state::{CameraState, SimFault, SimUser};
use crate::onvif::ns;
use crate::xml::Element;

pub const UPLOAD_PATH: &str = "/onvif/firmware_upload";
const MAX_IMAGE_BYTES: usize = 64 * 1024 * 1024;
/// ExpectedDownTime the camera announces, and how long it is really down.
pub const REBOOT_SECS: i64 = 30;

/// Failures a test asks a camera for.
#[derive(Debug, Clone, Default)]
pub struct Failures {
    /// Operations (local names) that answer success and change nothing.
    pub not_sticking: HashSet<String>,
    /// After SetUser, the old password keeps working too.
    pub keep_old_password: bool,
    /// SetSystemDateAndTime refuses any TimeZone.
    pub reject_timezone: bool,
    /// The firmware upload is refused (HTTP 500).
    pub upload_rejected: bool,
    /// After the firmware reboot the camera never answers again.
    pub never_returns: bool,
    /// After the firmware reboot the camera still runs its old version.
    pub returns_old_version: bool,
}

fn invalid(reason: impl Into<String>) -> SimFault {
    SimFault {
        sender: true,
        subcode: "InvalidArgVal",
        reason: reason.into(),
    }
}

fn ok(op: &str) -> String {
    format!(r#"<tds:{op}Response xmlns:tds="{}"/>"#, ns::TDS)
}

/// An inclusive range.
type Range = (u32, u32);

/// Resolutions, frame rates, bitrates and GOP lengths each encoder takes.
fn options_for(token: &str) -> (Vec<(u32, u32)>, Range, Range, Range) {
    let res = if token == "VideoEncoder_1" {
        vec![(1920, 1080), (1280, 720), (640, 360)]
    } else {
        vec![(640, 360), (320, 180)]
    };
    (res, (1, 30), (64, 8192), (1, 150))
}

const PROFILES: [&str; 3] = ["Baseline", "Main", "High"];

fn hosts(req: &Element, elem: &str) -> Vec<String> {
    req.children_local(elem)
        .filter_map(crate::onvif::device::parse_network_host)
        .map(|h| h.text().to_string())
        .collect()
}

fn percent_decode(s: &str) -> String {
    crate::onvif::types::Scopes::from_uris([format!("onvif://www.onvif.org/name/{s}")])
        .name
        .unwrap_or_default()
}

/// Handle a write operation, or None when `req` is not one.
pub fn handle_write(
    cam: &Arc<SimCamera>,
    req: &Element,
    attachments: &[(String, Bytes)],
) -> Option<Result<String, SimFault>> {
    let op = req.local.as_str();
    let media2 = req.ns_uri() == Some(ns::TR2);
    let is_write = matches!(
        op,
        "SetSystemDateAndTime"
            | "SetNTP"
            | "SetDNS"
            | "SetHostname"
            | "SetHostnameFromDHCP"
            | "CreateUsers"
            | "SetUser"
            | "DeleteUsers"
            | "GetDiscoveryMode"
            | "SetDiscoveryMode"
            | "SetScopes"
            | "SystemReboot"
            | "SetNetworkInterfaces"
            | "StartFirmwareUpgrade"
            | "UpgradeSystemFirmware"
            | "RestoreSystem"
            | "GetVideoEncoderConfigurationOptions"
            | "SetVideoEncoderConfiguration"
    );
    if !is_write || (media2 && !cam.quirks.media2) {
        return None;
    }
    if op == "StartFirmwareUpgrade" && cam.quirks.legacy_firmware {
        return Some(Err(SimFault::not_supported(op)));
    }
    if op == "UpgradeSystemFirmware" {
        return Some(legacy_upgrade(cam, req, attachments));
    }
    if op == "RestoreSystem" {
        return Some(restore_system(cam, req, attachments));
    }
    let failures = cam
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let sticks = !failures.not_sticking.contains(op);
    let mut st = cam.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut scratch = st.clone();
    // A write that does not stick changes a copy.
    let target: &mut CameraState = if sticks { &mut st } else { &mut scratch };
    let r = apply(cam, target, &failures, req, op, media2);
    drop(st);
    if op == "SystemReboot" && r.is_ok() {
        cam.go_down(Some(REBOOT_SECS));
    }
    Some(r)
}

fn apply(
    cam: &SimCamera,
    st: &mut CameraState,
    failures: &Failures,
    req: &Element,
    op: &str,
    media2: bool,
) -> Result<String, SimFault> {
    let t = |path: &[&str]| req.text_at(path);
    let flag = |path: &[&str]| t(path).is_some_and(|v| crate::onvif::device::is_true(&v));
    Ok(match op {
        "SetSystemDateAndTime" => {
            let tz = t(&["TimeZone", "TZ"]);
            if tz.is_some() && failures.reject_timezone {
                return Err(invalid("TimeZone not supported"));
            }
            let ntp = t(&["DateTimeType"]).as_deref().map(str::trim) == Some("NTP");
            let real = cam.clock.now_utc() + chrono::Duration::seconds(cam.quirks.clock_skew_secs);
            if ntp {
                if st.ntp_servers.is_empty() && !st.ntp_from_dhcp {
                    return Err(invalid("NTP without an NTP server"));
                }
                // Synchronised: the camera clock follows real time again.
                st.clock_offset_s = -cam.quirks.clock_skew_secs;
            } else {
                let u = req
                    .child_local("UTCDateTime")
                    .ok_or_else(|| invalid("Manual needs UTCDateTime"))?;
                let n = |p: &[&str]| u.text_at(p).and_then(|v| v.trim().parse::<u32>().ok());
                let at = chrono::NaiveDate::from_ymd_opt(
                    n(&["Date", "Year"]).unwrap_or(0) as i32,
                    n(&["Date", "Month"]).unwrap_or(0),
                    n(&["Date", "Day"]).unwrap_or(0),
                )
                .and_then(|d| {
                    d.and_hms_opt(
                        n(&["Time", "Hour"]).unwrap_or(99),
                        n(&["Time", "Minute"]).unwrap_or(99),
                        n(&["Time", "Second"]).unwrap_or(99),
                    )
                })
                .ok_or_else(|| invalid("invalid UTCDateTime"))?
                .and_utc();
                st.clock_offset_s = (at - real).num_seconds();
            }
            st.time_ntp = ntp;
            if let Some(tz) = tz {
                st.tz = tz.trim().to_string();
            }
            ok(op)
        }
        "SetNTP" => {
            st.ntp_from_dhcp = flag(&["FromDHCP"]);
            st.ntp_servers = hosts(req, "NTPManual");
            ok(op)
        }
        "SetDNS" => {
            st.dns_servers = hosts(req, "DNSManual");
            st.search_domains = req
                .children_local("SearchDomain")
                .filter_map(|d| d.text_trimmed().map(String::from))
                .collect();
            ok(op)
        }
        "SetHostname" => {
            let name = t(&["Name"]).unwrap_or_default();
            let valid = !name.is_empty()
                && name.len() <= 63
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !name.starts_with('-');
            if !valid {
                return Err(SimFault {
                    sender: true,
                    subcode: "InvalidHostname",
                    reason: format!("invalid hostname {name:?}"),
                });
            }
            st.hostname = name;
            st.hostname_from_dhcp = false;
            ok(op)
        }
        "SetHostnameFromDHCP" => {
            st.hostname_from_dhcp = flag(&["FromDHCP"]);
            format!(
                r#"<tds:SetHostnameFromDHCPResponse xmlns:tds="{}"><tds:RebootNeeded>false</tds:RebootNeeded></tds:SetHostnameFromDHCPResponse>"#,
                ns::TDS
            )
        }
        "CreateUsers" | "SetUser" => {
            for u in req.children_local("User") {
                let name = u.text_at(&["Username"]).unwrap_or_default();
                let password = u.text_at(&["Password"]);
                let level = u.text_at(&["UserLevel"]).unwrap_or_else(|| "User".into());
                if !["Administrator", "Operator", "User"].contains(&level.as_str()) {
                    return Err(invalid(format!("unknown UserLevel {level}")));
                }
                let existing = st.users.iter().position(|x| x.username == name);
                match (op, existing) {
                    ("CreateUsers", Some(_)) => {
                        return Err(SimFault {
                            sender: true,
                            subcode: "UsernameClash",
                            reason: format!("user {name} exists"),
                        });
                    }
                    ("CreateUsers", None) => {
                        if name.is_empty() || password.as_deref().unwrap_or("").len() < 4 {
                            return Err(SimFault {
                                sender: true,
                                subcode: "PasswordTooWeak",
                                reason: "username and a password of 4+ characters needed".into(),
                            });
                        }
                        st.users.push(SimUser {
                            username: name,
                            password: password.unwrap_or_default(),
                            level,
                        });
                    }
                    (_, None) => {
                        return Err(SimFault {
                            sender: true,
                            subcode: "UsernameMissing",
                            reason: format!("no user {name}"),
                        });
                    }
                    (_, Some(i)) => {
                        if let Some(p) = password {
                            if failures.keep_old_password {
                                let old = st.users[i].password.clone();
                                st.legacy_passwords.push((name.clone(), old));
                            }
                            st.users[i].password = p;
                        }
                        st.users[i].level = level;
                    }
                }
            }
            ok(op)
        }
        "DeleteUsers" => {
            for name in req
                .children_local("Username")
                .filter_map(|u| u.text_trimmed().map(String::from))
            {
                let Some(i) = st.users.iter().position(|x| x.username == name) else {
                    return Err(SimFault {
                        sender: true,
                        subcode: "UsernameMissing",
                        reason: format!("no user {name}"),
                    });
                };
                st.users.remove(i);
                st.legacy_passwords.retain(|(u, _)| *u != name);
            }
            ok(op)
        }
        "GetDiscoveryMode" => format!(
            r#"<tds:GetDiscoveryModeResponse xmlns:tds="{}"><tds:DiscoveryMode>{}</tds:DiscoveryMode></tds:GetDiscoveryModeResponse>"#,
            ns::TDS,
            if st.discoverable {
                "Discoverable"
            } else {
                "NonDiscoverable"
            }
        ),
        "SetDiscoveryMode" => {
            st.discoverable = match t(&["DiscoveryMode"]).as_deref().map(str::trim) {
                Some("Discoverable") => true,
                Some("NonDiscoverable") => false,
                other => return Err(invalid(format!("DiscoveryMode {other:?}"))),
            };
            ok(op)
        }
        "SetScopes" => {
            for s in req
                .children_local("Scopes")
                .filter_map(|s| s.text_trimmed().map(String::from))
            {
                if let Some(v) = s.strip_prefix("onvif://www.onvif.org/name/") {
                    st.name_scope = percent_decode(v);
                } else if let Some(v) = s.strip_prefix("onvif://www.onvif.org/location/") {
                    st.location_scope = percent_decode(v);
                }
            }
            ok(op)
        }
        "SetNetworkInterfaces" => {
            if t(&["InterfaceToken"]).as_deref() != Some("eth0") {
                return Err(SimFault {
                    sender: true,
                    subcode: "InvalidNetworkInterface",
                    reason: "no such interface".into(),
                });
            }
            let v4 = req
                .child_local("NetworkInterface")
                .and_then(|n| n.child_local("IPv4"))
                .ok_or_else(|| invalid("IPv4 missing"))?;
            let dhcp = v4
                .text_at(&["DHCP"])
                .is_some_and(|v| crate::onvif::device::is_true(&v));
            if !dhcp {
                let addr = v4
                    .text_at(&["Manual", "Address"])
                    .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
                    .ok_or_else(|| invalid("Manual/Address: an IPv4 address"))?;
                let prefix = v4
                    .text_at(&["Manual", "PrefixLength"])
                    .and_then(|p| p.trim().parse::<u8>().ok())
                    .filter(|p| (1..=32).contains(p))
                    .ok_or_else(|| invalid("PrefixLength: 1–32"))?;
                st.ipv4 = Some((addr, prefix));
            }
            st.ipv4_dhcp = dhcp;
            format!(
                r#"<tds:SetNetworkInterfacesResponse xmlns:tds="{}"><tds:RebootNeeded>false</tds:RebootNeeded></tds:SetNetworkInterfacesResponse>"#,
                ns::TDS
            )
        }
        "SystemReboot" => format!(
            r#"<tds:SystemRebootResponse xmlns:tds="{}"><tds:Message>Rebooting in {REBOOT_SECS} seconds</tds:Message></tds:SystemRebootResponse>"#,
            ns::TDS
        ),
        "StartFirmwareUpgrade" => format!(
            r#"<tds:StartFirmwareUpgradeResponse xmlns:tds="{}"><tds:UploadUri>http://{}{UPLOAD_PATH}</tds:UploadUri><tds:UploadDelay>PT1S</tds:UploadDelay><tds:ExpectedDownTime>PT{REBOOT_SECS}S</tds:ExpectedDownTime></tds:StartFirmwareUpgradeResponse>"#,
            ns::TDS,
            cam.reported_authority
        ),
        "GetVideoEncoderConfigurationOptions" => {
            let token = t(&["ConfigurationToken"]).unwrap_or_default();
            let (res, fps, br, gov) = options_for(&token);
            let r: String = res
                .iter()
                .map(|(w, h)| {
                    format!(
                        "<tt:ResolutionsAvailable><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:ResolutionsAvailable>"
                    )
                })
                .collect();
            if media2 {
                let rates: Vec<String> = (fps.0..=fps.1).rev().map(|f| f.to_string()).collect();
                format!(
                    r#"<tr2:GetVideoEncoderConfigurationOptionsResponse xmlns:tr2="{}" xmlns:tt="{}"><tr2:Options GovLengthRange="{} {}" FrameRatesSupported="{}" ProfilesSupported="{}"><tt:Encoding>H264</tt:Encoding><tt:QualityRange><tt:Min>0</tt:Min><tt:Max>10</tt:Max></tt:QualityRange>{r}<tt:BitrateRange><tt:Min>{}</tt:Min><tt:Max>{}</tt:Max></tt:BitrateRange></tr2:Options></tr2:GetVideoEncoderConfigurationOptionsResponse>"#,
                    ns::TR2,
                    ns::TT,
                    gov.0,
                    gov.1,
                    rates.join(" "),
                    PROFILES.join(" "),
                    br.0,
                    br.1
                )
            } else {
                let profiles: String = PROFILES
                    .iter()
                    .map(|p| format!("<tt:H264ProfilesSupported>{p}</tt:H264ProfilesSupported>"))
                    .collect();
                // tt:H264Options2 (in the Extension) extends tt:H264Options:
                // everything again, then the bitrate range.
                let h264 = format!(
                    "{r}<tt:GovLengthRange><tt:Min>{}</tt:Min><tt:Max>{}</tt:Max></tt:GovLengthRange><tt:FrameRateRange><tt:Min>{}</tt:Min><tt:Max>{}</tt:Max></tt:FrameRateRange><tt:EncodingIntervalRange><tt:Min>1</tt:Min><tt:Max>1</tt:Max></tt:EncodingIntervalRange>{profiles}",
                    gov.0, gov.1, fps.0, fps.1
                );
                format!(
                    r#"<trt:GetVideoEncoderConfigurationOptionsResponse xmlns:trt="{}" xmlns:tt="{}"><trt:Options><tt:QualityRange><tt:Min>0</tt:Min><tt:Max>10</tt:Max></tt:QualityRange><tt:H264>{h264}</tt:H264><tt:Extension><tt:H264>{h264}<tt:BitrateRange><tt:Min>{}</tt:Min><tt:Max>{}</tt:Max></tt:BitrateRange></tt:H264></tt:Extension></trt:Options></trt:GetVideoEncoderConfigurationOptionsResponse>"#,
                    ns::TRT,
                    ns::TT,
                    br.0,
                    br.1
                )
            }
        }
        "SetVideoEncoderConfiguration" => {
            let c = req
                .child_local("Configuration")
                .ok_or_else(|| invalid("no Configuration"))?;
            let token = c.attr("token").unwrap_or_default().to_string();
            let want = crate::onvif::media::parse_video_encoder(c);
            let (res, fps, br, gov) = options_for(&token);
            let Some(p) = st.profiles.iter_mut().find(|p| p.encoder.token == token) else {
                return Err(SimFault {
                    sender: true,
                    subcode: "NoConfig",
                    reason: format!("no encoder configuration {token:?}"),
                });
            };
            let (w, h) = (want.width.unwrap_or(0), want.height.unwrap_or(0));
            let f = want.frame_rate_limit.unwrap_or(0.0) as u32;
            let b = want.bitrate_limit_kbps.unwrap_or(0);
            let g = want.gov_length.unwrap_or(0);
            let prof = want.profile.clone().unwrap_or_default();
            let refuse = if want.encoding != "H264" {
                Some(format!("encoding {} not supported", want.encoding))
            } else if !res.contains(&(w, h)) {
                Some(format!("resolution {w}x{h} not supported"))
            } else if f < fps.0 || f > fps.1 {
                Some(format!("frame rate {f} out of range"))
            } else if b < br.0 || b > br.1 {
                Some(format!("bitrate {b} out of range"))
            } else if g < gov.0 || g > gov.1 {
                Some(format!("GOP {g} out of range"))
            } else if !PROFILES.contains(&prof.as_str()) {
                Some(format!("profile {prof:?} not supported"))
            } else {
                None
            };
            if let Some(why) = refuse {
                return Err(SimFault {
                    sender: true,
                    subcode: "ConfigModify",
                    reason: why,
                });
            }
            let e = &mut p.encoder;
            (e.width, e.height, e.fps, e.bitrate_kbps, e.gov, e.profile) = (w, h, f, b, g, prof);
            if media2 {
                format!(
                    r#"<tr2:SetVideoEncoderConfigurationResponse xmlns:tr2="{}"/>"#,
                    ns::TR2
                )
            } else {
                format!(
                    r#"<trt:SetVideoEncoderConfigurationResponse xmlns:trt="{}"/>"#,
                    ns::TRT
                )
            }
        }
        _ => return Err(SimFault::not_supported(op)),
    })
}

pub use crate::onvif::mtom::split_multipart;

/// UpgradeSystemFirmware: the image is the attachment the body refers to.
fn legacy_upgrade(
    cam: &Arc<SimCamera>,
    req: &Element,
    attachments: &[(String, Bytes)],
) -> Result<String, SimFault> {
    let href = req
        .child_local("Firmware")
        .and_then(|f| f.child_local("Include"))
        .and_then(|i| i.attr("href"))
        .ok_or_else(|| invalid("Firmware/xop:Include missing"))?;
    let cid = href.trim_start_matches("cid:");
    let image = attachments
        .iter()
        .find(|(c, _)| c == cid)
        .map(|(_, b)| b.clone())
        .ok_or_else(|| invalid(format!("no attachment {cid}")))?;
    let failures = cam
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if failures.upload_rejected {
        return Err(SimFault {
            sender: false,
            subcode: "FirmwareUpgradeFailed",
            reason: "flash write error".into(),
        });
    }
    let version =
        image_version(&image).ok_or_else(|| invalid("not a firmware image for this model"))?;
    *cam.pending_firmware
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(version);
    cam.go_down(if failures.never_returns {
        None
    } else {
        Some(REBOOT_SECS)
    });
    Ok(format!(
        r#"<tds:UpgradeSystemFirmwareResponse xmlns:tds="{}"><tds:Message>Upgrade successful, rebooting in {REBOOT_SECS} seconds</tds:Message></tds:UpgradeSystemFirmwareResponse>"#,
        ns::TDS
    ))
}

/// RestoreSystem: the files of an earlier GetSystemBackup, as MTOM
/// attachments. This camera's backup is one JSON file of its settings
/// (`settings.json`); the hostname, NTP and DNS servers in it are taken
/// back. A file it did not write, or one of another model, is refused the
/// way the specification says (`ter:InvalidArgVal`, invalid backup file),
/// with nothing changed.
fn restore_system(
    cam: &Arc<SimCamera>,
    req: &Element,
    attachments: &[(String, Bytes)],
) -> Result<String, SimFault> {
    let bad = |why: String| invalid(format!("InvalidBackupFile: {why}"));
    let mut settings = None;
    for f in req.children_local("BackupFiles") {
        let name = f.text_at(&["Name"]).unwrap_or_default();
        let href = f
            .child_local("Data")
            .and_then(|d| d.child_local("Include"))
            .and_then(|i| i.attr("href"))
            .ok_or_else(|| bad(format!("{name}: Data/xop:Include missing")))?;
        let cid = href.trim_start_matches("cid:");
        let data = attachments
            .iter()
            .find(|(c, _)| c == cid)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| bad(format!("{name}: no attachment {cid}")))?;
        if name == "settings.json" {
            let v: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| bad(format!("settings.json is not JSON: {e}")))?;
            settings = Some(v);
        } else {
            return Err(bad(format!("{name} is not a file this camera writes")));
        }
    }
    let v = settings.ok_or_else(|| bad("no settings.json".into()))?;
    let strings = |k: &str| -> Result<Vec<String>, SimFault> {
        v.get(k)
            .and_then(|x| x.as_array())
            .ok_or_else(|| bad(format!("{k} missing")))?
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{k} holds a non-string")))
            })
            .collect()
    };
    let hostname = v
        .get("hostname")
        .and_then(|x| x.as_str())
        .ok_or_else(|| bad("hostname missing".into()))?
        .to_string();
    let (ntp, dns) = (strings("ntp")?, strings("dns")?);
    let mut st = cam.state.lock().unwrap_or_else(|e| e.into_inner());
    if v.get("model").and_then(|x| x.as_str()) != Some(st.model.as_str()) {
        return Err(bad(format!("the backup is not of a {}", st.model)));
    }
    st.hostname = hostname;
    st.hostname_from_dhcp = false;
    st.ntp_servers = ntp;
    st.dns_servers = dns;
    Ok(ok("RestoreSystem"))
}

fn image_version(image: &[u8]) -> Option<String> {
    let head = &image[..image.len().min(200)];
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let v = line.strip_prefix("CAMFLEET-SIM-FIRMWARE version=")?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A firmware image for the simulator (tests, demo).
pub fn sim_image(version: &str, size: usize) -> Vec<u8> {
    let mut v = format!("CAMFLEET-SIM-FIRMWARE version={version}\n").into_bytes();
    v.resize(size.max(v.len()), 0x5a);
    v
}

/// POST of a firmware image to the upload address.
pub async fn firmware_upload(
    cam: &Arc<SimCamera>,
    parts: &http::request::Parts,
    body: Incoming,
) -> super::http::Resp {
    if matches!(
        cam.quirks.auth,
        SimAuth::DigestMd5 | SimAuth::DigestSha256 | SimAuth::Both
    ) && let DigestCheck::Challenge { stale } = check_digest(cam, parts)
    {
        return challenge(cam, stale);
    }
    let image: Bytes = match Limited::new(body, MAX_IMAGE_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "image too large"),
    };
    let failures = cam
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if failures.upload_rejected {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "upgrade failed: flash write error",
        );
    }
    let Some(version) = image_version(&image) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "not a firmware image for this model",
        );
    };
    *cam.pending_firmware
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(version);
    cam.go_down(if failures.never_returns {
        None
    } else {
        Some(REBOOT_SECS)
    });
    plain(StatusCode::OK, "upgrade accepted; rebooting")
}

/// When a reboot ends: run the uploaded firmware (unless told not to).
pub fn finish_reboot(cam: &SimCamera) {
    let pending = cam
        .pending_firmware
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let keep_old = cam
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .returns_old_version;
    if let Some(v) = pending
        && !keep_old
    {
        cam.state.lock().unwrap_or_else(|e| e.into_inner()).firmware = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_carry_their_version() {
        assert_eq!(
            image_version(&sim_image("6.1.0", 4096)).as_deref(),
            Some("6.1.0")
        );
        assert_eq!(image_version(b"\x7fELF..."), None);
    }
}
