//! camfleet's alert email received by maildev (a Node SMTP server with a
//! JSON API, written elsewhere). Run by tests/interop/run.sh, which starts
//! maildev on 127.0.0.1 and passes its ports:
//! `CAMFLEET_MAILDEV=127.0.0.1:2526 CAMFLEET_MAILDEV_API=http://127.0.0.1:1081
//! cargo test --test interop_maildev -- --ignored`.

mod common;

use std::sync::Arc;

use camfleet::db::entities::{delivery, notify_channel};
use camfleet::fleet::notifier::Notifier;
use camfleet::secrets::SecretBox;
use common::*;
use sea_orm::{ActiveModelTrait, Set};

#[tokio::test]
#[ignore = "needs maildev; run by tests/interop/run.sh"]
async fn maildev_receives_the_alert_with_text_and_html() {
    let smtp = std::env::var("CAMFLEET_MAILDEV").expect("CAMFLEET_MAILDEV=host:port");
    let api = std::env::var("CAMFLEET_MAILDEV_API").expect("CAMFLEET_MAILDEV_API");
    let (host, port) = smtp.rsplit_once(':').unwrap();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[7u8; 32]));
    let now = chrono::Utc::now();
    let ch = notify_channel::ActiveModel {
        name: Set("maildev".into()),
        kind: Set("email".into()),
        config: Set(
            serde_json::json!({"host": host, "port": port.parse::<u16>().unwrap(),
            "security": "none", "from": "camfleet <camfleet@example.test>",
            "to": ["noc@example.test", "oncall@example.test"]}),
        ),
        enabled: Set(true),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    delivery::ActiveModel {
        channel_id: Set(ch.id),
        alert_ids: Set(serde_json::json!([7])),
        subject: Set("[critical] Camera offline: 2 devices at site North".into()),
        payload: Set(serde_json::json!({"event": "alert", "rule": "Camera offline", "severity": "critical",
            "site": "North", "devices": [
                {"name": "Gate <7>", "address": "http://10.0.0.7/onvif/device_service", "serial": "S7",
                 "state": "offline", "reason": "3 polls failed in a row", "link": "https://cf.example/devices/7"},
                {"name": "Dock", "address": "", "serial": "", "state": "offline", "reason": "", "link": "https://cf.example/devices/8"}]})),
        status: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(String::new()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let n = Notifier::new(db, secrets, system_clock()).unwrap();
    let r = n.deliver_due().await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    let body = reqwest::get(format!("{api}/api/email"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mails: serde_json::Value = serde_json::from_str(&body).unwrap();
    let m = mails
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == "[critical] Camera offline: 2 devices at site North")
        .unwrap_or_else(|| panic!("{mails}"));
    let to: Vec<&str> = m["to"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["address"].as_str())
        .collect();
    assert_eq!(to, ["noc@example.test", "oncall@example.test"]);
    assert_eq!(m["from"][0]["address"], "camfleet@example.test");
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .contains("https://cf.example/devices/7"),
        "{m}"
    );
    let html = m["html"].as_str().unwrap();
    assert!(
        html.contains("Gate &lt;7&gt;") && html.contains("href=\"https://cf.example/devices/8\""),
        "{html}"
    );
}
