//! SNMP v2c notifications (async-snmp; the older `snmp` crate cannot build
//! trap PDUs and is used only in tests, as an independent decoder). The
//! OIDs are those of `mibs/CAMFLEET-MIB.txt`: a TRAP (fire and forget) or
//! an INFORM (acknowledged by the receiver, retried) per notification,
//! with the device, site, state, reason, severity and alert id varbinds.

use std::time::Duration;

use async_snmp::{Auth, Client, Oid, Value, VarBind};
use bytes::Bytes;

use super::Message;

/// `enterprises.61873` (a placeholder until an IANA number is registered;
/// change it here and in the MIB together).
pub const ENTERPRISE: [u32; 7] = [1, 3, 6, 1, 4, 1, 61873];

fn oid(tail: &[u32]) -> Oid {
    Oid::from_slice(&[&ENTERPRISE[..], tail].concat())
}

/// A scalar object of the MIB, as an instance (`….0`).
fn object(n: u32) -> Oid {
    oid(&[1, n, 0])
}

pub fn alert_raised() -> Oid {
    oid(&[0, 1])
}
pub fn alert_resolved() -> Oid {
    oid(&[0, 2])
}
pub fn test_notification() -> Oid {
    oid(&[0, 3])
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnmpConfig {
    pub host: String,
    pub port: u16,
    /// Acknowledged INFORMs instead of TRAPs.
    #[serde(default)]
    pub inform: bool,
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
pub fn varbinds(msg: &Message) -> (Oid, Vec<VarBind>) {
    let p = &msg.payload;
    let event = p["event"].as_str().unwrap_or("alert");
    if event == "test" {
        return (
            test_notification(),
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
        alert_resolved()
    } else {
        alert_raised()
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

pub async fn send(
    cfg: &SnmpConfig,
    community: &str,
    msg: &Message,
    timeout: Duration,
) -> Result<(), String> {
    if cfg.host.is_empty() {
        return Err("host: the trap receiver".into());
    }
    let community = if community.is_empty() {
        "public"
    } else {
        community
    };
    let (trap, binds) = varbinds(msg);
    let work = async {
        let client = Client::builder(
            (cfg.host.clone(), cfg.port),
            Auth::v2c(Bytes::copy_from_slice(community.as_bytes())),
        )
        .request_timeout(timeout / 3)
        .connect()
        .await
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
