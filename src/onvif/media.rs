//! Media service ver10 (trt) and ver20 (tr2), read side, plus snapshot fetch.

use std::time::Duration;

use bytes::Bytes;
use url::Url;

use super::error::{OnvifError, OnvifResult};
use super::fault::FaultClass;
use super::httpauth;
use super::ops::{self, Operation};
use super::session::DeviceSession;
use super::types::{MediaProfile, VideoEncoder};
use crate::xml::Element;

/// Which media service a device is talked to through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaVersion {
    V10,
    V20,
}

fn wrap(op: Operation, prefix: &str, inner: &str) -> String {
    format!(
        r#"<{p}:{n} xmlns:{p}="{ns}">{inner}</{p}:{n}>"#,
        p = prefix,
        n = op.name,
        ns = op.namespace
    )
}

pub async fn get_profiles(s: &DeviceSession, v: MediaVersion) -> OnvifResult<Vec<MediaProfile>> {
    let (op, body) = match v {
        MediaVersion::V10 => (
            ops::MEDIA_GET_PROFILES,
            wrap(ops::MEDIA_GET_PROFILES, "trt", ""),
        ),
        MediaVersion::V20 => (
            ops::MEDIA2_GET_PROFILES,
            wrap(ops::MEDIA2_GET_PROFILES, "tr2", "<tr2:Type>All</tr2:Type>"),
        ),
    };
    Ok(parse_profiles(&s.call(op, &body).await?))
}

/// Profiles from either media version.
pub fn parse_profiles(e: &Element) -> Vec<MediaProfile> {
    e.children_local("Profiles")
        .map(|p| {
            // ver20 nests configurations under <Configurations>.
            let cfgs = p.child_local("Configurations").unwrap_or(p);
            let vsc = cfgs
                .child_local("VideoSourceConfiguration")
                .or_else(|| cfgs.child_local("VideoSource"));
            let vec = cfgs
                .child_local("VideoEncoderConfiguration")
                .or_else(|| cfgs.child_local("VideoEncoder"));
            MediaProfile {
                token: p.attr("token").unwrap_or_default().to_string(),
                name: p.text_at(&["Name"]).unwrap_or_default(),
                fixed: p.attr("fixed").is_some_and(super::device::is_true),
                video_source_token: vsc.and_then(|v| v.text_at(&["SourceToken"])),
                encoder: vec.map(parse_video_encoder),
                stream_uri: None,
                snapshot_uri: None,
            }
        })
        .collect()
}

/// A video encoder configuration from ver10 (`H264/GovLength`) or ver20
/// (`GovLength`/`Profile` attributes). Unreadable numbers stay `None`.
pub fn parse_video_encoder(e: &Element) -> VideoEncoder {
    let num = |path: &[&str]| e.text_at(path).and_then(|v| v.trim().parse::<f32>().ok());
    let codec_child = e
        .child_local("H264")
        .or_else(|| e.child_local("H265"))
        .or_else(|| e.child_local("MPEG4"));
    let gov = e
        .attr("GovLength")
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| codec_child.and_then(|c| c.text_at(&["GovLength"])?.trim().parse().ok()));
    let profile = e.attr("Profile").map(String::from).or_else(|| {
        codec_child.and_then(|c| {
            c.text_at(&["H264Profile"])
                .or_else(|| c.text_at(&["H265Profile"]))
                .or_else(|| c.text_at(&["Mpeg4Profile"]))
        })
    });
    VideoEncoder {
        token: e.attr("token").unwrap_or_default().to_string(),
        name: e.text_at(&["Name"]).unwrap_or_default(),
        encoding: e.text_at(&["Encoding"]).unwrap_or_default(),
        width: num(&["Resolution", "Width"]).map(|v| v as u32),
        height: num(&["Resolution", "Height"]).map(|v| v as u32),
        frame_rate_limit: num(&["RateControl", "FrameRateLimit"]),
        bitrate_limit_kbps: num(&["RateControl", "BitrateLimit"]).map(|v| v as u32),
        gov_length: gov,
        quality: num(&["Quality"]),
        profile,
    }
}

pub async fn get_stream_uri(
    s: &DeviceSession,
    v: MediaVersion,
    profile: &str,
) -> OnvifResult<String> {
    let token = crate::xml::escape(profile);
    let (op, body) = match v {
        MediaVersion::V10 => (
            ops::MEDIA_GET_STREAM_URI,
            wrap(
                ops::MEDIA_GET_STREAM_URI,
                "trt",
                &format!(
                    "<trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{token}</trt:ProfileToken>"
                ),
            ),
        ),
        MediaVersion::V20 => (
            ops::MEDIA2_GET_STREAM_URI,
            wrap(
                ops::MEDIA2_GET_STREAM_URI,
                "tr2",
                &format!(
                    "<tr2:Protocol>RtspUnicast</tr2:Protocol><tr2:ProfileToken>{token}</tr2:ProfileToken>"
                ),
            ),
        ),
    };
    parse_media_uri(&s.call(op, &body).await?)
        .ok_or_else(|| OnvifError::malformed(op.name, "no Uri in answer"))
}

pub async fn get_snapshot_uri(
    s: &DeviceSession,
    v: MediaVersion,
    profile: &str,
) -> OnvifResult<String> {
    let token = crate::xml::escape(profile);
    let (op, prefix) = match v {
        MediaVersion::V10 => (ops::MEDIA_GET_SNAPSHOT_URI, "trt"),
        MediaVersion::V20 => (ops::MEDIA2_GET_SNAPSHOT_URI, "tr2"),
    };
    let body = wrap(
        op,
        prefix,
        &format!("<{prefix}:ProfileToken>{token}</{prefix}:ProfileToken>"),
    );
    parse_media_uri(&s.call(op, &body).await?)
        .ok_or_else(|| OnvifError::malformed(op.name, "no Uri in answer"))
}

/// `MediaUri/Uri` (ver10) or `Uri` (ver20).
pub fn parse_media_uri(e: &Element) -> Option<String> {
    e.text_at(&["MediaUri", "Uri"])
        .or_else(|| e.text_at(&["Uri"]))
}

pub async fn get_video_encoder_configurations(
    s: &DeviceSession,
    v: MediaVersion,
) -> OnvifResult<Vec<VideoEncoder>> {
    let (op, prefix) = match v {
        MediaVersion::V10 => (ops::MEDIA_GET_VIDEO_ENCODER_CONFIGURATIONS, "trt"),
        MediaVersion::V20 => (ops::MEDIA2_GET_VIDEO_ENCODER_CONFIGURATIONS, "tr2"),
    };
    let el = s.call(op, &wrap(op, prefix, "")).await?;
    Ok(el
        .children_local("Configurations")
        .map(parse_video_encoder)
        .collect())
}

/// A fetched snapshot image.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub content_type: String,
    pub bytes: Bytes,
}

pub const MAX_SNAPSHOT_BYTES: usize = 8 * 1024 * 1024;

/// GET a snapshot URI: anonymous first, then Digest, or Basic when that is
/// all the camera offers. The body is capped and must be an image.
pub async fn fetch_snapshot(
    s: &DeviceSession,
    uri: &Url,
    timeout: Option<Duration>,
) -> OnvifResult<Snapshot> {
    const OP: &str = "Snapshot";
    let t = s.transport();
    let map = |e: super::transport::TransportError| OnvifError::new(e.class(), OP, e.to_string());
    let mut reply = t
        .get(uri, None, timeout, MAX_SNAPSHOT_BYTES)
        .await
        .map_err(map)?;
    if reply.status == 401 {
        let creds = s.credentials().ok_or_else(|| {
            OnvifError::new(FaultClass::Unauthorized, OP, "snapshot needs credentials")
        })?;
        // Basic only where the device's policy allows it: over plain HTTP
        // it hands the camera's password to anyone on the path.
        let (mut client, _) = httpauth::choose(&reply.headers, s.policy().allow_basic)
            .map_err(|e| OnvifError::new(FaultClass::Unauthorized, OP, e))?;
        let auth = httpauth::respond(
            &mut client,
            &creds.username,
            &creds.password,
            "GET",
            &httpauth::request_target(uri),
            Some(&[]),
        )
        .map_err(|e| OnvifError::new(FaultClass::Unauthorized, OP, e))?;
        reply = t
            .get(uri, Some(&auth), timeout, MAX_SNAPSHOT_BYTES)
            .await
            .map_err(map)?;
    }
    if reply.status == 401 || reply.status == 403 {
        return Err(OnvifError::new(
            FaultClass::Unauthorized,
            OP,
            format!("HTTP {}", reply.status),
        ));
    }
    if !(200..300).contains(&reply.status) {
        return Err(OnvifError::new(
            FaultClass::DeviceError,
            OP,
            format!("HTTP {}", reply.status),
        ));
    }
    let content_type = reply
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Only what the bytes show to be JPEG, PNG or BMP is passed on, with
    // the type the bytes say: a camera's claim (SVG, HTML) is never served
    // to a browser from our origin.
    let Some(sniffed) = sniff_image(&reply.body) else {
        return Err(OnvifError::malformed(
            OP,
            format!("not a JPEG, PNG or BMP image (Content-Type {content_type:?})"),
        ));
    };
    Ok(Snapshot {
        content_type: sniffed.to_string(),
        bytes: reply.body,
    })
}

/// Recognise JPEG/PNG/BMP by magic bytes; cameras mislabel their images.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"BM") && b.len() > 14 {
        Some("image/bmp")
    } else {
        None
    }
}
