//! camfleet's SNMP notifications received by net-snmp's snmptrapd (a peer
//! written elsewhere), which loads `mibs/CAMFLEET-MIB.txt` and logs the
//! varbinds by name. Run by tests/interop/run.sh, which starts snmptrapd on
//! 127.0.0.1 and passes its port and log file:
//! `CAMFLEET_SNMPTRAPD=127.0.0.1:1162 CAMFLEET_SNMPTRAPD_LOG=… cargo test
//! --test interop_snmptrapd -- --ignored`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use camfleet::db::entities::{delivery, notify_channel};
use camfleet::fleet::notifier::Notifier;
use camfleet::secrets::SecretBox;
use common::*;
use sea_orm::{ActiveModelTrait, Set};

/// An SNMP channel and one pending delivery through it.
async fn queue(
    db: &sea_orm::DatabaseConnection,
    name: &str,
    config: serde_json::Value,
    sealed: Vec<u8>,
    subject: &str,
    payload: serde_json::Value,
) {
    let now = chrono::Utc::now();
    let ch = notify_channel::ActiveModel {
        name: Set(name.into()),
        kind: Set("snmp".into()),
        config: Set(config),
        sealed: Set(Some(sealed)),
        enabled: Set(true),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    let alert_ids: Vec<u64> = payload["devices"]
        .as_array()
        .map(|d| {
            d.iter()
                .take(1)
                .filter_map(|d| d["alert_id"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    delivery::ActiveModel {
        channel_id: Set(ch.id),
        alert_ids: Set(serde_json::json!(alert_ids)),
        subject: Set(subject.into()),
        payload: Set(payload),
        status: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(String::new()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs snmptrapd; run by tests/interop/run.sh"]
async fn snmptrapd_logs_our_traps_and_informs_by_mib_name() {
    let target = std::env::var("CAMFLEET_SNMPTRAPD").expect("CAMFLEET_SNMPTRAPD=host:port");
    let log = std::env::var("CAMFLEET_SNMPTRAPD_LOG").expect("CAMFLEET_SNMPTRAPD_LOG");
    let (host, port) = target.rsplit_once(':').unwrap();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[6u8; 32]));
    let clock = system_clock();
    for (i, inform) in [false, true].into_iter().enumerate() {
        queue(
            &db,
            &format!("trapd {i}"),
            serde_json::json!({"host": host, "port": port.parse::<u16>().unwrap(), "inform": inform}),
            secrets.seal(b"public"),
            "site outage",
            serde_json::json!({"event": "alert", "rule": "Camera offline", "severity": "critical",
                "site": "North", "devices": [
                    {"alert_id": 40 + i, "name": format!("Gate {i}"), "address": "http://10.1.2.3/onvif/device_service",
                     "serial": "SN-42", "state": "offline", "reason": "3 polls failed in a row; last timeout"},
                    {"alert_id": 50 + i, "name": "Dock", "address": "", "serial": "", "state": "offline", "reason": ""}]}),
        )
        .await;
    }
    let n = Notifier::new(db, secrets, clock).unwrap();
    let r = n.deliver_due().await.unwrap();
    assert_eq!(r.sent, 2, "the INFORM was acknowledged: {r:?}");
    // snmptrapd writes its log as traps arrive; look until both are there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.lines()
            .filter(|l| l.contains("cfAlertRaised") && !l.contains("V3 check"))
            .count()
            >= 2
            || std::time::Instant::now() > deadline
        {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cfAlertRaised") && !l.contains("V3 check"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in &lines {
        for want in [
            "CAMFLEET-MIB::cfRuleName.0 = STRING: Camera offline",
            "CAMFLEET-MIB::cfSeverity.0 = INTEGER: critical(1)",
            "CAMFLEET-MIB::cfSiteName.0 = STRING: North",
            "CAMFLEET-MIB::cfDeviceName.0 = STRING: Gate",
            "CAMFLEET-MIB::cfDeviceSerial.0 = STRING: SN-42",
            "CAMFLEET-MIB::cfReason.0 = STRING: 3 polls failed in a row; last timeout",
            "CAMFLEET-MIB::cfDeviceCount.0 = Gauge32: 2",
            "community public",
        ] {
            assert!(l.contains(want), "{want} missing in: {l}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("INFORM")), "{text}");
}

/// The v3 user snmptrapd is configured with (tests/interop/run.sh):
/// authPriv, SHA-256 and AES-128; TRAPs come from our engine ID.
pub const V3_USER: &str = "cfv3";
pub const V3_ENGINE: &str = "80007ed90301020304050607";

#[tokio::test]
#[ignore = "needs snmptrapd with the v3 user; run by tests/interop/run.sh"]
async fn snmptrapd_accepts_our_snmpv3_authpriv_traps_and_informs() {
    let target = std::env::var("CAMFLEET_SNMPTRAPD").expect("CAMFLEET_SNMPTRAPD=host:port");
    let log = std::env::var("CAMFLEET_SNMPTRAPD_LOG").expect("CAMFLEET_SNMPTRAPD_LOG");
    let (host, port) = target.rsplit_once(':').unwrap();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[7u8; 32]));
    let secret =
        serde_json::json!({"auth": "cf-auth-pass-1", "privacy": "cf-priv-pass-1"}).to_string();
    for (i, inform) in [false, true].into_iter().enumerate() {
        queue(
            &db,
            &format!("trapd v3 {i}"),
            serde_json::json!({"host": host, "port": port.parse::<u16>().unwrap(),
                "inform": inform, "version": "3", "user": V3_USER,
                "auth_protocol": "SHA-256", "priv_protocol": "AES", "engine_id": V3_ENGINE}),
            secrets.seal(secret.as_bytes()),
            "tamper",
            serde_json::json!({"event": "alert", "rule": "V3 check", "severity": "major",
                "site": "Süd", "devices": [{"alert_id": 70 + i, "name": format!("Tor {i}"), "address": "",
                "serial": "SN-7", "state": "online", "reason": "tampering"}]}),
        )
        .await;
    }
    let n = Notifier::new(db, secrets, system_clock()).unwrap();
    let r = n.deliver_due().await.unwrap();
    assert_eq!(r.sent, 2, "v3 TRAP sent and v3 INFORM acknowledged: {r:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.matches("V3 check").count() >= 2 || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("V3 check")).collect();
    assert_eq!(lines.len(), 2, "snmptrapd decrypted both: {text}");
    for l in &lines {
        assert!(
            l.contains("SNMP v3") || l.contains(V3_USER),
            "logged as v3: {l}"
        );
        assert!(
            l.contains("CAMFLEET-MIB::cfSeverity.0 = INTEGER: major(2)"),
            "{l}"
        );
        // SnmpAdminString carries UTF-8.
        assert!(l.contains("S\u{fc}d") || l.contains("Süd"), "{l}");
    }
    assert!(lines.iter().any(|l| l.contains("INFORM")), "{text}");
}
