//! Notification delivery against real receivers on loopback: a webhook
//! receiver that checks the HMAC signature, one that fails (retries with
//! backoff on an injected clock, then gives up), and a minimal SMTP server
//! that records what lettre sends.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use camfleet::clock::SharedClock;
use camfleet::db::entities::{delivery, notify_channel};
use camfleet::fleet::notifier::Notifier;
use camfleet::notify::webhook;
use camfleet::secrets::SecretBox;
use common::*;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Seen = Arc<Mutex<Vec<(bool, serde_json::Value)>>>;

/// A webhook receiver: 200 and records (signature valid?, body); or 500.
async fn receiver(fail: bool, secret: &'static [u8]) -> (String, Seen) {
    use axum::http::{HeaderMap, StatusCode};
    let seen: Seen = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let ts: i64 = h[webhook::TIMESTAMP_HEADER]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let ok = webhook::verify(
                    secret,
                    ts,
                    &body,
                    h[webhook::SIGNATURE_HEADER].to_str().unwrap(),
                );
                s.lock()
                    .unwrap()
                    .push((ok, serde_json::from_slice(&body).unwrap()));
                if fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

/// The smallest SMTP server that lettre will talk to; records messages.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let mails: Arc<Mutex<Vec<String>>> = Default::default();
    let m = mails.clone();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let m = m.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 go on\r\n").await.unwrap();
                        data.clear();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        m.lock().unwrap().push(data.clone());
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

async fn channel(
    db: &sea_orm::DatabaseConnection,
    secrets: &SecretBox,
    kind: &str,
    config: serde_json::Value,
    secret: &str,
) -> i32 {
    notify_channel::ActiveModel {
        name: Set(format!("{kind} test")),
        kind: Set(kind.into()),
        config: Set(config),
        sealed: Set(Some(secrets.seal(secret.as_bytes()))),
        enabled: Set(true),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

async fn queue(
    db: &sea_orm::DatabaseConnection,
    channel_id: i32,
    now: chrono::DateTime<chrono::Utc>,
) -> i32 {
    delivery::ActiveModel {
        channel_id: Set(channel_id),
        alert_ids: Set(serde_json::json!([1])),
        subject: Set("[critical] Camera offline: Gate 3 (North)".into()),
        payload: Set(serde_json::json!({"event": "alert", "rule": "Camera offline", "severity": "critical",
            "site": "North", "devices": [{"name": "Gate 3", "address": "http://127.0.0.1:1/", "serial": "S3",
            "state": "offline", "reason": "3 polls failed", "link": "http://cf.test/devices/3"}]})),
        status: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(String::new()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn webhooks_are_signed_and_failures_retry_with_backoff_then_give_up() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[4u8; 32]));
    let (good_url, good) = receiver(false, b"s3cret").await;
    let (bad_url, bad) = receiver(true, b"s3cret").await;
    let good_ch = channel(
        &db,
        &secrets,
        "webhook",
        serde_json::json!({"url": good_url}),
        "s3cret",
    )
    .await;
    let bad_ch = channel(
        &db,
        &secrets,
        "webhook",
        serde_json::json!({"url": bad_url}),
        "s3cret",
    )
    .await;
    let n = Notifier::new(db.clone(), secrets.clone(), shared.clone()).unwrap();
    let now = camfleet::clock::Clock::now_utc(clock.as_ref());
    let ok_id = queue(&db, good_ch, now).await;
    let bad_id = queue(&db, bad_ch, now).await;
    let r = n.deliver_due().await.unwrap();
    assert_eq!((r.sent, r.retrying), (1, 1));
    let got = good.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].0, "the signature verifies");
    assert_eq!(got[0].1["alert"]["devices"][0]["name"], "Gate 3");
    let d = delivery::Entity::find_by_id(ok_id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, "sent");
    let d = delivery::Entity::find_by_id(bad_id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 1));
    assert!(d.last_error.starts_with("HTTP 500"), "{}", d.last_error);
    // Not due again until the backoff has passed.
    assert_eq!(n.deliver_due().await.unwrap(), Default::default());
    for wait in camfleet::fleet::notifier::BACKOFF_SECS {
        clock.advance(Duration::from_secs(wait as u64));
        n.deliver_due().await.unwrap();
    }
    let d = delivery::Entity::find_by_id(bad_id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("failed", 8));
    assert_eq!(bad.lock().unwrap().len(), 8);
    // "Send test" reports the exact error.
    let e = n.send_test(bad_ch).await.unwrap().unwrap_err();
    assert!(e.starts_with("HTTP 500"), "{e}");
    assert!(n.send_test(good_ch).await.unwrap().is_ok());
    // An unreachable receiver: the connection error, named.
    let dead = channel(
        &db,
        &secrets,
        "webhook",
        serde_json::json!({"url": "http://127.0.0.1:9/hook"}),
        "x",
    )
    .await;
    let e = n.send_test(dead).await.unwrap().unwrap_err();
    assert!(e.to_lowercase().contains("connect"), "{e}");
}

#[tokio::test]
async fn email_goes_out_over_smtp_with_text_and_html_parts() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[4u8; 32]));
    let (port, mails) = smtp_sink().await;
    let ch = channel(
        &db,
        &secrets,
        "email",
        serde_json::json!({"host": "127.0.0.1", "port": port, "security": "none",
            "from": "camfleet <camfleet@example.test>", "to": ["noc@example.test"]}),
        "",
    )
    .await;
    let n = Notifier::new(db.clone(), secrets, shared).unwrap();
    queue(&db, ch, camfleet::clock::Clock::now_utc(clock.as_ref())).await;
    let r = n.deliver_due().await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    let mail = mails.lock().unwrap()[0].clone();
    assert!(
        mail.contains("Subject: [critical] Camera offline: Gate 3 (North)"),
        "{mail}"
    );
    assert!(
        mail.contains("multipart/alternative") && mail.contains("text/html"),
        "{mail}"
    );
    assert!(mail.contains("http://cf.test/devices/3"), "{mail}");
    // A wrong port: the exact error comes back.
    let bad = channel(
        &db,
        &secrets2(),
        "email",
        serde_json::json!({"host": "127.0.0.1", "port": 9, "security": "none",
            "from": "camfleet@example.test", "to": ["noc@example.test"]}),
        "",
    )
    .await;
    let e = n.send_test(bad).await.unwrap().unwrap_err();
    assert!(!e.is_empty());
}

fn secrets2() -> SecretBox {
    SecretBox::from_key(1, &[4u8; 32])
}

#[tokio::test]
async fn snmp_traps_carry_the_mib_varbinds_decoded_by_an_independent_parser() {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    let db = test_db().await;
    let secrets = Arc::new(SecretBox::from_key(1, &[4u8; 32]));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let ch = channel(
        &db,
        &secrets,
        "snmp",
        serde_json::json!({"host": "127.0.0.1", "port": port, "inform": false}),
        "noc-community",
    )
    .await;
    // An operator's own enterprise number ([snmp] enterprise).
    let n = Notifier::new(db.clone(), secrets, shared)
        .unwrap()
        .with_snmp_enterprise(424242);
    queue(&db, ch, camfleet::clock::Clock::now_utc(clock.as_ref())).await;
    assert_eq!(n.deliver_due().await.unwrap().sent, 1);
    let mut buf = vec![0u8; 65535];
    let (len, _) = sock.recv_from(&mut buf).await.unwrap();
    // The `snmp` crate (written elsewhere, 2017) decodes what async-snmp sent.
    let pdu = snmp::SnmpPdu::from_bytes(&buf[..len]).expect("a valid SNMP message");
    assert_eq!(pdu.message_type, snmp::SnmpMessageType::Trap);
    assert!(
        buf[..len].windows(13).any(|w| w == b"noc-community"),
        "the community"
    );
    let binds: Vec<(String, String)> = pdu
        .varbinds
        .map(|(oid, v)| (oid.to_string(), format!("{v:?}")))
        .collect();
    // sysUpTime.0 and snmpTrapOID.0 first, then ours.
    assert_eq!(binds[0].0, "1.3.6.1.2.1.1.3.0");
    assert_eq!(binds[1].0, "1.3.6.1.6.3.1.1.4.1.0");
    assert!(
        binds[1].1.contains("1.3.6.1.4.1.424242.0.1"),
        "{:?}",
        binds[1]
    );
    let find = |tail: &str| {
        binds
            .iter()
            .find(|(o, _)| o == &format!("1.3.6.1.4.1.424242.1.{tail}.0"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(find("2").contains("Camera offline"));
    assert!(find("3").contains('1'), "critical = 1: {}", find("3"));
    assert!(find("4").contains("North"));
    assert!(find("5").contains("Gate 3"));
    assert!(find("9").contains("3 polls failed"));
    assert_eq!(binds.len(), 12);
}
