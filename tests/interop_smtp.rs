//! Alert email over STARTTLS and implicit TLS, with AUTH, to a real SMTP
//! server (aiosmtpd, Python) holding a self-signed certificate that the
//! channel trusts through its CA setting. Run by tests/interop/run.sh:
//! `CAMFLEET_SMTP_STARTTLS=localhost:2527 CAMFLEET_SMTP_TLS=localhost:2528
//! CAMFLEET_SMTP_CA=cert.pem CAMFLEET_SMTP_SPOOL=dir cargo test --test
//! interop_smtp -- --ignored`.

use std::time::Duration;

use camfleet::notify::Message;
use camfleet::notify::email::{EmailConfig, send};

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k}"))
}

fn config(addr: &str, security: &str, ca_pem: String) -> EmailConfig {
    let (host, port) = addr.rsplit_once(':').unwrap();
    EmailConfig {
        host: host.into(),
        port: port.parse().unwrap(),
        security: security.into(),
        username: "camfleet".into(),
        from: "camfleet <camfleet@example.test>".into(),
        to: vec!["noc@example.test".into()],
        ca_pem,
    }
}

fn message(subject: &str) -> Message {
    Message {
        subject: subject.into(),
        payload: serde_json::json!({"rule": "Camera offline", "severity": "critical", "site": "North",
            "devices": [{"name": "Gate", "address": "http://10.0.0.7/", "serial": "S7", "state": "offline",
            "reason": "3 polls failed", "link": "https://cf.example/devices/7"}]}),
        delivery_id: 1,
    }
}

/// The spooled message whose subject is `subject`, once it arrived.
fn spooled(subject: &str) -> Option<String> {
    for e in std::fs::read_dir(env("CAMFLEET_SMTP_SPOOL")).ok()? {
        let text = std::fs::read_to_string(e.ok()?.path()).ok()?;
        if text.contains(subject) {
            return Some(text);
        }
    }
    None
}

#[tokio::test]
#[ignore = "needs aiosmtpd; run by tests/interop/run.sh"]
async fn starttls_and_implicit_tls_with_auth_deliver_and_check_the_certificate() {
    let ca = std::fs::read_to_string(env("CAMFLEET_SMTP_CA")).unwrap();
    let t = Duration::from_secs(10);
    for (var, security) in [
        ("CAMFLEET_SMTP_STARTTLS", "starttls"),
        ("CAMFLEET_SMTP_TLS", "tls"),
    ] {
        let addr = env(var);
        let subject = format!("[critical] over {security} {}", uuid::Uuid::new_v4());
        send(
            &config(&addr, security, ca.clone()),
            Some("s3cret"),
            &message(&subject),
            t,
        )
        .await
        .unwrap_or_else(|e| panic!("{security}: {e}"));
        let mail = spooled(&subject).unwrap_or_else(|| panic!("{security}: not delivered"));
        assert!(
            mail.contains("X-Test-Auth-User: camfleet"),
            "{security}: {mail}"
        );
        assert!(mail.contains("X-Test-TLS: True"), "{security}: {mail}");
        assert!(mail.contains("Content-Type: text/html"), "{security}");

        // A wrong password is refused by the server, and said so.
        let e = send(
            &config(&addr, security, ca.clone()),
            Some("wrong"),
            &message("x"),
            t,
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("535") || e.to_lowercase().contains("auth"),
            "{security}: {e}"
        );

        // Without the CA the self-signed certificate is not trusted.
        let e = send(
            &config(&addr, security, String::new()),
            Some("s3cret"),
            &message("y"),
            t,
        )
        .await
        .unwrap_err();
        assert!(
            e.to_lowercase().contains("certificate") || e.contains("Unknown") || e.contains("tls"),
            "{security}: {e}"
        );
    }
    // A CA that is not PEM is refused when the channel is saved.
    assert!(camfleet::notify::email::check_ca_pem("not a certificate").is_err());
}
