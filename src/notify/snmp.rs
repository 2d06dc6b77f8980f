//! SNMP notifications, v2c (community) or v3 (USM, authPriv with SHA-2
//! and AES), through async-snmp; the older `snmp` crate cannot build trap
//! PDUs and is used only in tests, as an independent decoder. The OIDs are
//! those of `mibs/CAMFLEET-MIB.txt` under a configurable enterprise number
//! (default 32473, the documentation number of RFC 5612): a TRAP (fire and
//! forget) or an INFORM (acknowledged by the receiver, retried) per
//! notification, with the device, site, state, reason, severity and alert
//! id varbinds.

use std::time::Duration;

use async_snmp::{Auth, AuthProtocol, Client, Oid, PrivProtocol, UsmConfig, Value, VarBind};
use bytes::Bytes;

use super::Message;

/// The MIB as shipped, under the documentation number 32473.
pub const MIB: &str = include_str!("../../mibs/CAMFLEET-MIB.txt");

/// The MIB under another enterprise number (`camfleet mib --enterprise N`).
pub fn mib_for(enterprise: u32) -> String {
    MIB.replace(
        "::= { enterprises 32473 }",
        &format!("::= {{ enterprises {enterprise} }}"),
    )
}

fn oid(enterprise: u32, tail: &[u32]) -> Oid {
    Oid::from_slice(&[&[1, 3, 6, 1, 4, 1, enterprise][..], tail].concat())
}

/// A scalar object of the MIB, as an instance (`….0`).
fn object(e: u32, n: u32) -> Oid {
    oid(e, &[1, n, 0])
}

pub fn alert_raised(e: u32) -> Oid {
    oid(e, &[0, 1])
}
pub fn alert_resolved(e: u32) -> Oid {
    oid(e, &[0, 2])
}
pub fn test_notification(e: u32) -> Oid {
    oid(e, &[0, 3])
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SnmpVersion {
    #[default]
    #[serde(rename = "2c")]
    V2c,
    #[serde(rename = "3")]
    V3,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnmpConfig {
    pub host: String,
    pub port: u16,
    /// Acknowledged INFORMs instead of TRAPs.
    #[serde(default)]
    pub inform: bool,
    #[serde(default)]
    pub version: SnmpVersion,
    /// v3: the USM user.
    #[serde(default)]
    pub user: String,
    /// v3: `SHA-256` (default), `SHA-512`, `SHA-384`, `SHA-224`, `SHA`.
    #[serde(default)]
    pub auth_protocol: String,
    /// v3: `AES` (AES-128, default), `AES-256-BLUMENTHAL`, ….
    #[serde(default)]
    pub priv_protocol: String,
    /// v3 TRAPs: our engine ID (hex), which the receiver's user is created
    /// under (`createUser -e 0x…`). Made when the channel is created.
    #[serde(default)]
    pub engine_id: String,
}

/// v3 passwords, kept sealed as the channel's secret (JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct V3Secret {
    pub auth: String,
    pub privacy: String,
}

/// Check a v3 channel's settings; the error names the field.
pub fn check_v3(
    cfg: &SnmpConfig,
    secret: &V3Secret,
) -> Result<(AuthProtocol, PrivProtocol), String> {
    if cfg.user.trim().is_empty() {
        return Err("user: the SNMPv3 user".into());
    }
    let auth: AuthProtocol = none_default(&cfg.auth_protocol, "SHA-256")
        .parse()
        .map_err(|_| "auth protocol: SHA, SHA-224, SHA-256, SHA-384 or SHA-512".to_string())?;
    if auth == AuthProtocol::Md5 {
        return Err("auth protocol: MD5 is broken; use SHA-256".into());
    }
    let privacy: PrivProtocol = none_default(&cfg.priv_protocol, "AES")
        .parse()
        .map_err(|_| "privacy protocol: AES, AES-192-… or AES-256-…".to_string())?;
    if matches!(privacy, PrivProtocol::Des | PrivProtocol::Des3) {
        return Err("privacy protocol: DES is broken; use AES".into());
    }
    if secret.auth.len() < 8 || secret.privacy.len() < 8 {
        return Err("passwords: SNMPv3 needs at least 8 characters each".into());
    }
    Ok((auth, privacy))
}

fn none_default<'a>(s: &'a str, d: &'a str) -> &'a str {
    if s.trim().is_empty() { d } else { s.trim() }
}

/// A fresh engine ID for a new v3 channel, as hex.
pub fn new_engine_id() -> String {
    match async_snmp::generate_engine_id() {
        Ok(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        // RFC 3411 format 5 (octets), enterprise 32473, random tail.
        Err(_) => {
            let tail = crate::fleet::sessions::random_token();
            format!("80007ed905{}", hex_of(&tail.as_bytes()[..12]))
        }
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_start_matches("0x");
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn text(s: &str) -> Value {
    // DisplayString: at most 255 octets, cut on a character boundary.
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Value::OctetString(Bytes::copy_from_slice(&s.as_bytes()[..end]))
}

fn severity_code(s: &str) -> i32 {
    match s {
        "critical" => 1,
        "major" => 2,
        "minor" => 3,
        _ => 4,
    }
}

/// The notification OID and varbinds for a message.
pub fn varbinds(msg: &Message, e: u32) -> (Oid, Vec<VarBind>) {
    let object = |n| object(e, n);
    let p = &msg.payload;
    let event = p["event"].as_str().unwrap_or("alert");
    if event == "test" {
        return (
            test_notification(e),
            vec![VarBind::new(object(2), text(&msg.subject))],
        );
    }
    let devices = p["devices"].as_array().cloned().unwrap_or_default();
    let first = devices.first().cloned().unwrap_or_default();
    let f = |k: &str| first[k].as_str().unwrap_or("").to_string();
    let names: Vec<&str> = devices.iter().filter_map(|d| d["name"].as_str()).collect();
    let alert_id = first["alert_id"]
        .as_u64()
        .unwrap_or(0)
        .min(u64::from(u32::MAX)) as u32;
    let trap = if event == "resolved" {
        alert_resolved(e)
    } else {
        alert_raised(e)
    };
    (
        trap,
        vec![
            VarBind::new(object(1), Value::Gauge32(alert_id)),
            VarBind::new(object(2), text(p["rule"].as_str().unwrap_or(""))),
            VarBind::new(
                object(3),
                Value::Integer(severity_code(p["severity"].as_str().unwrap_or(""))),
            ),
            VarBind::new(object(4), text(p["site"].as_str().unwrap_or(""))),
            VarBind::new(object(5), text(&names.join(", "))),
            VarBind::new(object(6), text(&f("address"))),
            VarBind::new(object(7), text(&f("serial"))),
            VarBind::new(object(8), text(&f("state"))),
            VarBind::new(object(9), text(&f("reason"))),
            VarBind::new(object(10), Value::Gauge32(devices.len() as u32)),
        ],
    )
}

/// sysUpTime for the notification: hundredths of a second since start.
fn uptime() -> u32 {
    let t = crate::clock::process_uptime();
    (t.as_millis() / 10).min(u128::from(u32::MAX)) as u32
}

/// snmpEngineBoots for our v3 trap engine. RFC 3414 wants it to grow at
/// every restart and be kept in non-volatile storage; minutes since
/// 2020-01-01 grow at every restart without a file to keep (a receiver
/// that checks timeliness sees a later boot, never an earlier one).
fn engine_boots() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    ((secs.saturating_sub(1_577_836_800)) / 60).clamp(1, i32::MAX as u64 - 1) as u32
}

/// `secret` is the community (v2c) or a [`V3Secret`] as JSON (v3).
pub async fn send(
    cfg: &SnmpConfig,
    secret: &str,
    msg: &Message,
    timeout: Duration,
    enterprise: u32,
) -> Result<(), String> {
    if cfg.host.is_empty() {
        return Err("host: the trap receiver".into());
    }
    let (trap, binds) = varbinds(msg, enterprise);
    let work = async {
        let target = (cfg.host.clone(), cfg.port);
        let client = match cfg.version {
            SnmpVersion::V2c => {
                let community = if secret.is_empty() { "public" } else { secret };
                Client::builder(
                    target,
                    Auth::v2c(Bytes::copy_from_slice(community.as_bytes())),
                )
                .request_timeout(timeout / 3)
                .connect()
                .await
            }
            SnmpVersion::V3 => {
                let pw: V3Secret = serde_json::from_str(secret).map_err(|_| {
                    "SNMPv3: the stored passwords cannot be read; set them again".to_string()
                })?;
                let (auth, privacy) = check_v3(cfg, &pw)?;
                let usm = UsmConfig::new(Bytes::copy_from_slice(cfg.user.trim().as_bytes()))
                    .auth_priv(auth, pw.auth.as_bytes(), privacy, pw.privacy.as_bytes())
                    .map_err(|e| format!("SNMPv3 keys: {e}"))?;
                let mut b = Client::builder(target, usm).request_timeout(timeout / 3);
                if !cfg.inform {
                    // A TRAP is sent by us as the authoritative engine.
                    let id = unhex(&cfg.engine_id)
                        .filter(|v| (5..=32).contains(&v.len()))
                        .ok_or("SNMPv3: engine_id: 5-32 octets in hex")?;
                    let prev = async_snmp::PersistedAuthoritativeEngine::new(id, engine_boots())
                        .map_err(|e| format!("SNMPv3 engine: {e}"))?;
                    let engine = async_snmp::AuthoritativeEngine::restart(prev, |_| {
                        Ok::<(), std::io::Error>(())
                    })
                    .map_err(|e| format!("SNMPv3 engine: {e}"))?;
                    b = b.local_authoritative_engine(engine);
                }
                b.connect().await
            }
        }
        .map_err(|e| format!("SNMP: {e}"))?;
        if cfg.inform {
            client
                .send_inform(&trap, uptime(), binds)
                .await
                .map_err(|e| format!("SNMP inform: {e}"))
        } else {
            client
                .send_trap(&trap, uptime(), binds)
                .await
                .map_err(|e| format!("SNMP trap: {e}"))
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("SNMP: no acknowledgement within {} s", timeout.as_secs()))?
}
