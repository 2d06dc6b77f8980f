//! Webhooks: `POST` the alert JSON to a URL. Signed so the receiver can
//! trust it: `X-Camfleet-Signature: sha256=HEX(HMAC-SHA256(secret,
//! "<timestamp>.<body>"))` with `X-Camfleet-Timestamp` (Unix seconds; a
//! receiver rejects old ones to stop replays) and `X-Camfleet-Delivery`
//! (the same id on every retry, to drop duplicates).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Message;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WebhookConfig {
    pub url: String,
}

pub const SIGNATURE_HEADER: &str = "x-camfleet-signature";
pub const TIMESTAMP_HEADER: &str = "x-camfleet-timestamp";
pub const DELIVERY_HEADER: &str = "x-camfleet-delivery";

/// `sha256=<hex>` over `"{timestamp}.{body}"`.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!(
        "sha256={}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Check a signature in constant time (for receivers, and our tests).
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

pub async fn send(
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    secret: &[u8],
    msg: &Message,
    now_unix: i64,
    timeout: Duration,
) -> Result<(), String> {
    let url = url::Url::parse(&cfg.url).map_err(|e| format!("webhook URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("webhook URL: http or https only".into());
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "subject": msg.subject,
        "alert": msg.payload,
    }))
    .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, now_unix.to_string())
        .header(DELIVERY_HEADER, msg.delivery_id.to_string())
        .header(SIGNATURE_HEADER, signature(secret, now_unix, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| crate::error::error_chain(&e))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        Err(format!("HTTP {status}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let s = signature(b"k", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify(b"k", 1_700_000_000, b"{\"a\":1}", &s));
        assert!(
            !verify(b"k", 1_700_000_001, b"{\"a\":1}", &s),
            "timestamp is signed"
        );
        assert!(
            !verify(b"k", 1_700_000_000, b"{\"a\":2}", &s),
            "body is signed"
        );
        assert!(!verify(b"other", 1_700_000_000, b"{\"a\":1}", &s));
        assert!(!verify(b"k", 1_700_000_000, b"{\"a\":1}", "sha256=zz"));
    }
}
