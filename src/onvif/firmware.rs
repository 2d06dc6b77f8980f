//! Firmware upgrade (Core 8.4.3): StartFirmwareUpgrade hands out an upload
//! address, a delay to wait before uploading and the expected down time;
//! the image then goes by HTTP POST to that address (anonymous first, then
//! Digest or Basic when the camera asks). Watching the reboot and checking
//! the version afterwards is the rollout's part (`fleet::firmware`).

use std::time::Duration;

use bytes::Bytes;
use url::Url;

use super::error::{OnvifError, OnvifResult};
use super::fault::FaultClass;
use super::httpauth;
use super::ops;
use super::session::DeviceSession;
use super::time::parse_duration;
use crate::xml::Element;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeTicket {
    pub upload_uri: Url,
    pub upload_delay: Duration,
    pub expected_down_time: Duration,
}

pub fn parse_ticket(e: &Element, reached: &Url) -> Option<UpgradeTicket> {
    let uri = e.text_at(&["UploadUri"])?;
    let url = super::address::rewrite(&uri, reached)?.url;
    let secs = |n: &str| {
        e.text_at(&[n])
            .and_then(|v| parse_duration(&v))
            .map(|s| Duration::from_secs(s.max(0) as u64))
    };
    Some(UpgradeTicket {
        upload_uri: url,
        upload_delay: secs("UploadDelay").unwrap_or_default(),
        // A camera that gives none: assume a few minutes.
        expected_down_time: secs("ExpectedDownTime").unwrap_or(Duration::from_secs(300)),
    })
}

pub async fn start_firmware_upgrade(s: &DeviceSession) -> OnvifResult<UpgradeTicket> {
    let op = ops::START_FIRMWARE_UPGRADE;
    let body = format!(
        r#"<tds:StartFirmwareUpgrade xmlns:tds="{}"/>"#,
        op.namespace
    );
    let el = s.call(op, &body).await?;
    parse_ticket(&el, s.device_url())
        .ok_or_else(|| OnvifError::malformed(op.name, "no usable UploadUri"))
}

/// POST the image to the ticket's address.
pub async fn upload(
    s: &DeviceSession,
    ticket: &UpgradeTicket,
    image: Bytes,
    timeout: Duration,
) -> OnvifResult<()> {
    const OP: &str = "FirmwareUpload";
    let t = s.transport();
    let url = &ticket.upload_uri;
    let map = |e: super::transport::TransportError| OnvifError::new(e.class(), OP, e.to_string());
    let ct = "application/octet-stream";
    let mut reply = t
        .post_bytes(url, ct, image.clone(), None, Some(timeout))
        .await
        .map_err(map)?;
    if reply.status == 401 {
        let creds = s.credentials().ok_or_else(|| {
            OnvifError::new(FaultClass::Unauthorized, OP, "upload needs credentials")
        })?;
        let (mut client, _) = httpauth::choose(&reply.headers, s.policy().allow_basic)
            .map_err(|e| OnvifError::new(FaultClass::Unauthorized, OP, e))?;
        let auth = httpauth::respond(
            &mut client,
            &creds.username,
            &creds.password,
            "POST",
            &httpauth::request_target(url),
            Some(&image),
        )
        .map_err(|e| OnvifError::new(FaultClass::Unauthorized, OP, e))?;
        reply = t
            .post_bytes(url, ct, image, Some(&auth), Some(timeout))
            .await
            .map_err(map)?;
    }
    match reply.status {
        200..=299 => Ok(()),
        401 | 403 => Err(OnvifError::new(
            FaultClass::Unauthorized,
            OP,
            format!("HTTP {}", reply.status),
        )),
        st => Err(OnvifError::new(
            FaultClass::DeviceError,
            OP,
            format!(
                "HTTP {st}: {}",
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)]).trim()
            ),
        )),
    }
}

/// The legacy UpgradeSystemFirmware: the image as an MTOM attachment in
/// one SOAP call (for cameras without StartFirmwareUpgrade). Returns the
/// camera's message.
pub async fn upgrade_system_firmware(
    s: &DeviceSession,
    image: Bytes,
    timeout: Duration,
) -> OnvifResult<String> {
    let op = ops::UPGRADE_SYSTEM_FIRMWARE;
    let body = format!(
        r#"<tds:UpgradeSystemFirmware xmlns:tds="{}"><tds:Firmware><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:{}"/></tds:Firmware></tds:UpgradeSystemFirmware>"#,
        op.namespace,
        super::session::ATTACHMENT_CID
    );
    let el = s.call_mtom(op, &body, vec![image], Some(timeout)).await?;
    Ok(el.text_at(&["Message"]).unwrap_or_default())
}
