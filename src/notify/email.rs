//! Email through SMTP (lettre): no encryption, STARTTLS or implicit TLS,
//! optional login; a text and an HTML part, each device with a link back
//! to its page.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};

use super::Message;
use crate::xml::escape;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    #[serde(default)]
    pub username: String,
    pub from: String,
    pub to: Vec<String>,
    /// A CA certificate (PEM) to trust besides the system's: the site's
    /// own CA, or a self-signed relay's certificate. Empty: the system's
    /// roots only.
    #[serde(default)]
    pub ca_pem: String,
}

/// The TLS settings for `host`, trusting `ca_pem` as well when given.
fn tls_parameters(
    host: &str,
    ca_pem: &str,
) -> Result<lettre::transport::smtp::client::TlsParameters, String> {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};
    let mut b = TlsParameters::builder(host.to_string());
    if !ca_pem.trim().is_empty() {
        if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(
                "CA certificate: not a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            );
        }
        let cert =
            Certificate::from_pem(ca_pem.as_bytes()).map_err(|e| format!("CA certificate: {e}"))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| e.to_string())
}

/// Check a CA certificate as the channel form receives it.
pub fn check_ca_pem(ca_pem: &str) -> Result<(), String> {
    tls_parameters("localhost", ca_pem).map(|_| ())
}

/// The text and HTML bodies of an alert.
pub fn bodies(msg: &Message) -> (String, String) {
    let p = &msg.payload;
    let devices = p["devices"].as_array().cloned().unwrap_or_default();
    let mut text = format!(
        "{}\n\nRule: {} ({})\nSite: {}\n\n",
        msg.subject,
        p["rule"].as_str().unwrap_or(""),
        p["severity"].as_str().unwrap_or(""),
        p["site"].as_str().unwrap_or("")
    );
    let mut html = format!(
        "<h2>{}</h2><p>Rule: {} ({})<br>Site: {}</p><table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>Device</th><th>Address</th><th>Serial</th><th>State</th><th>Why</th></tr>",
        escape(&msg.subject),
        escape(p["rule"].as_str().unwrap_or("")),
        escape(p["severity"].as_str().unwrap_or("")),
        escape(p["site"].as_str().unwrap_or(""))
    );
    for d in &devices {
        let f = |k: &str| d[k].as_str().unwrap_or("").to_string();
        text.push_str(&format!(
            "- {} ({}) serial {} — {}: {}\n  {}\n",
            f("name"),
            f("address"),
            f("serial"),
            f("state"),
            f("reason"),
            f("link")
        ));
        html.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f("link")),
            escape(&f("name")),
            escape(&f("address")),
            escape(&f("serial")),
            escape(&f("state")),
            escape(&f("reason"))
        ));
    }
    html.push_str("</table><p>— camfleet</p>");
    (text, html)
}

pub async fn send(
    cfg: &EmailConfig,
    password: Option<&str>,
    msg: &Message,
    timeout: Duration,
) -> Result<(), String> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| format!("from {:?}: {e}", cfg.from))?;
    if cfg.to.is_empty() {
        return Err("to: at least one recipient".into());
    }
    let mut builder = Mail::builder().from(from).subject(msg.subject.clone());
    for to in &cfg.to {
        builder = builder.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    let (text, html) = bodies(msg);
    let mail = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| e.to_string())?;
    use lettre::transport::smtp::client::Tls;
    let tls = match cfg.security.as_str() {
        // Implicit TLS (SMTPS, port 465) and STARTTLS (587), the
        // certificate checked against the system's roots and `ca_pem`.
        "tls" => Tls::Wrapper(tls_parameters(&cfg.host, &cfg.ca_pem)?),
        "starttls" => Tls::Required(tls_parameters(&cfg.host, &cfg.ca_pem)?),
        "none" => Tls::None,
        other => return Err(format!("security {other:?}: none, starttls or tls")),
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
        .tls(tls)
        .port(cfg.port)
        .timeout(Some(timeout));
    if !cfg.username.is_empty() {
        t = t.credentials(Credentials::new(
            cfg.username.clone(),
            password.unwrap_or("").to_string(),
        ));
    }
    let transport = t.build();
    transport
        .send(mail)
        .await
        .map(|_| ())
        .map_err(|e| crate::error::error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_list_devices_with_links_and_escape_html() {
        let m = Message {
            subject: "[critical] Camera offline: <x>".into(),
            payload: serde_json::json!({"rule": "Camera offline", "severity": "critical", "site": "North",
                "devices": [{"name": "Gate <1>", "address": "http://10.0.0.5/", "serial": "S1",
                "state": "offline", "reason": "3 polls failed", "link": "https://cf/devices/7"}]}),
            delivery_id: 1,
        };
        let (text, html) = bodies(&m);
        assert!(
            text.contains("Gate <1> (http://10.0.0.5/) serial S1")
                && text.contains("https://cf/devices/7")
        );
        assert!(html.contains("Gate &lt;1&gt;") && html.contains("href=\"https://cf/devices/7\""));
        assert!(!html.contains("<x>"));
    }
}
