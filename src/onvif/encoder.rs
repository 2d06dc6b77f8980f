//! Video encoder configuration writes (media ver10 and ver20): the options
//! a camera reports, checking a wanted setting against them, and
//! SetVideoEncoderConfiguration with the whole configuration (the schema
//! requires every element, so the current one is merged with the wanted
//! changes).

use serde::{Deserialize, Serialize};

use super::error::{OnvifError, OnvifResult};
use super::media::MediaVersion;
use super::ops;
use super::session::DeviceSession;
use super::types::VideoEncoder;
use crate::xml::{Element, escape};

/// What one encoding (H264, H265, JPEG) can be set to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncodingOptions {
    pub encoding: String,
    pub resolutions: Vec<(u32, u32)>,
    /// Inclusive range, or the listed rates (ver20 `FrameRatesSupported`).
    pub frame_rate_range: Option<(f32, f32)>,
    pub frame_rates: Vec<f32>,
    pub bitrate_range: Option<(u32, u32)>,
    pub gov_range: Option<(u32, u32)>,
    pub profiles: Vec<String>,
}

/// A wanted encoder setting; None leaves the current value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncoderWant {
    pub encoding: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f32>,
    pub bitrate_kbps: Option<u32>,
    pub gov_length: Option<u32>,
    pub profile: Option<String>,
}

fn range_u32(e: Option<&Element>) -> Option<(u32, u32)> {
    let e = e?;
    Some((
        e.text_at(&["Min"])?.trim().parse().ok()?,
        e.text_at(&["Max"])?.trim().parse().ok()?,
    ))
}

fn resolutions(e: &Element) -> Vec<(u32, u32)> {
    e.children_local("ResolutionsAvailable")
        .filter_map(|r| {
            Some((
                r.text_at(&["Width"])?.trim().parse().ok()?,
                r.text_at(&["Height"])?.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// GetVideoEncoderConfigurationOptions, either version.
pub fn parse_options(e: &Element) -> Vec<EncodingOptions> {
    let mut out = Vec::new();
    // ver20: one Options element per encoding, numbers in attributes.
    for o in e.children_local("Options") {
        if let Some(enc) = o.text_at(&["Encoding"]) {
            let pair = |a: &str| -> Option<(u32, u32)> {
                let mut it = o.attr(a)?.split_whitespace().filter_map(|v| v.parse().ok());
                Some((it.next()?, it.next()?))
            };
            out.push(EncodingOptions {
                encoding: enc.trim().to_string(),
                resolutions: resolutions(o),
                frame_rate_range: None,
                frame_rates: o
                    .attr("FrameRatesSupported")
                    .map(|v| {
                        v.split_whitespace()
                            .filter_map(|x| x.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default(),
                bitrate_range: range_u32(o.child_local("BitrateRange")),
                gov_range: pair("GovLengthRange"),
                profiles: o
                    .attr("ProfilesSupported")
                    .map(|v| v.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
            });
            continue;
        }
        // ver10: Options holds one child per codec.
        for (codec, name) in [("H264", "H264"), ("JPEG", "JPEG"), ("MPEG4", "MPEG4")] {
            let Some(c) = o.child_local(codec) else {
                continue;
            };
            let fr = c.child_local("FrameRateRange");
            let bitrate = o
                .child_local("Extension")
                .and_then(|x| x.child_local(codec))
                .and_then(|x| range_u32(x.child_local("BitrateRange")));
            out.push(EncodingOptions {
                encoding: name.into(),
                resolutions: resolutions(c),
                frame_rate_range: range_u32(fr).map(|(a, b)| (a as f32, b as f32)),
                frame_rates: Vec::new(),
                bitrate_range: bitrate,
                gov_range: range_u32(c.child_local("GovLengthRange")),
                profiles: c
                    .children_local("H264ProfilesSupported")
                    .chain(c.children_local("Mpeg4ProfileSupported"))
                    .filter_map(|p| p.text_trimmed().map(String::from))
                    .collect(),
            });
        }
    }
    out
}

impl EncodingOptions {
    /// Why `want` (merged over `current`) is outside these options, if it is.
    pub fn refuse(&self, want: &EncoderWant) -> Option<String> {
        if let (Some(w), Some(h)) = (want.width, want.height)
            && !self.resolutions.is_empty()
            && !self.resolutions.contains(&(w, h))
        {
            return Some(format!(
                "{w}×{h} is not offered (offered: {})",
                self.resolutions
                    .iter()
                    .map(|(w, h)| format!("{w}×{h}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(f) = want.frame_rate {
            if let Some((lo, hi)) = self.frame_rate_range
                && (f < lo || f > hi)
            {
                return Some(format!("{f} fps is outside {lo}–{hi}"));
            }
            if !self.frame_rates.is_empty()
                && !self.frame_rates.iter().any(|r| (r - f).abs() < 0.01)
            {
                return Some(format!("{f} fps is not offered"));
            }
        }
        if let (Some(b), Some((lo, hi))) = (want.bitrate_kbps, self.bitrate_range)
            && (b < lo || b > hi)
        {
            return Some(format!("{b} kbit/s is outside {lo}–{hi}"));
        }
        if let (Some(g), Some((lo, hi))) = (want.gov_length, self.gov_range)
            && (g < lo || g > hi)
        {
            return Some(format!("GOP {g} is outside {lo}–{hi}"));
        }
        if let Some(p) = &want.profile
            && !self.profiles.is_empty()
            && !self.profiles.iter().any(|x| x.eq_ignore_ascii_case(p))
        {
            return Some(format!(
                "profile {p} is not offered ({})",
                self.profiles.join(", ")
            ));
        }
        None
    }
}

pub async fn get_options(
    s: &DeviceSession,
    v: MediaVersion,
    config_token: &str,
) -> OnvifResult<Vec<EncodingOptions>> {
    let (op, p) = match v {
        MediaVersion::V10 => (ops::MEDIA_GET_VIDEO_ENCODER_CONFIGURATION_OPTIONS, "trt"),
        MediaVersion::V20 => (ops::MEDIA2_GET_VIDEO_ENCODER_CONFIGURATION_OPTIONS, "tr2"),
    };
    let body = format!(
        r#"<{p}:{n} xmlns:{p}="{ns}"><{p}:ConfigurationToken>{t}</{p}:ConfigurationToken></{p}:{n}>"#,
        n = op.name,
        ns = op.namespace,
        t = escape(config_token)
    );
    Ok(parse_options(&s.call(op, &body).await?))
}

/// `current` with `want` applied.
pub fn merged(current: &VideoEncoder, want: &EncoderWant) -> VideoEncoder {
    VideoEncoder {
        encoding: want
            .encoding
            .clone()
            .unwrap_or_else(|| current.encoding.clone()),
        width: want.width.or(current.width),
        height: want.height.or(current.height),
        frame_rate_limit: want.frame_rate.or(current.frame_rate_limit),
        bitrate_limit_kbps: want.bitrate_kbps.or(current.bitrate_limit_kbps),
        gov_length: want.gov_length.or(current.gov_length),
        profile: want.profile.clone().or_else(|| current.profile.clone()),
        ..current.clone()
    }
}

/// SetVideoEncoderConfiguration with the whole configuration.
pub async fn set_encoder(s: &DeviceSession, v: MediaVersion, e: &VideoEncoder) -> OnvifResult<()> {
    let num = |x: Option<u32>| x.unwrap_or(0);
    let enc = escape(&e.encoding);
    let common = format!(
        "<tt:Name>{name}</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>{enc}</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>",
        name = escape(&e.name),
        w = num(e.width),
        h = num(e.height)
    );
    let fps = e.frame_rate_limit.unwrap_or(25.0);
    let br = num(e.bitrate_limit_kbps);
    let quality = e.quality.unwrap_or(5.0);
    let profile = escape(e.profile.as_deref().unwrap_or("Main"));
    let gov = num(e.gov_length);
    let multicast = "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>";
    let (op, body) = match v {
        MediaVersion::V10 => {
            let codec = match e.encoding.as_str() {
                "H264" => format!(
                    "<tt:H264><tt:GovLength>{gov}</tt:GovLength><tt:H264Profile>{profile}</tt:H264Profile></tt:H264>"
                ),
                "MPEG4" => format!(
                    "<tt:MPEG4><tt:GovLength>{gov}</tt:GovLength><tt:Mpeg4Profile>{profile}</tt:Mpeg4Profile></tt:MPEG4>"
                ),
                _ => String::new(),
            };
            let op = ops::MEDIA_SET_VIDEO_ENCODER_CONFIGURATION;
            (
                op,
                format!(
                    r#"<trt:SetVideoEncoderConfiguration xmlns:trt="{ns}"><trt:Configuration token="{tok}">{common}<tt:Quality>{quality}</tt:Quality><tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{br}</tt:BitrateLimit></tt:RateControl>{codec}{multicast}<tt:SessionTimeout>PT60S</tt:SessionTimeout></trt:Configuration><trt:ForcePersistence>true</trt:ForcePersistence></trt:SetVideoEncoderConfiguration>"#,
                    ns = op.namespace,
                    tok = escape(&e.token)
                ),
            )
        }
        MediaVersion::V20 => {
            let op = ops::MEDIA2_SET_VIDEO_ENCODER_CONFIGURATION;
            (
                op,
                format!(
                    r#"<tr2:SetVideoEncoderConfiguration xmlns:tr2="{ns}"><tr2:Configuration token="{tok}" GovLength="{gov}" Profile="{profile}">{common}<tt:RateControl ConstantBitRate="false"><tt:FrameRateLimit>{fps}</tt:FrameRateLimit><tt:BitrateLimit>{br}</tt:BitrateLimit></tt:RateControl>{multicast}<tt:Quality>{quality}</tt:Quality></tr2:Configuration></tr2:SetVideoEncoderConfiguration>"#,
                    ns = op.namespace,
                    tok = escape(&e.token)
                ),
            )
        }
    };
    if e.token.is_empty() {
        return Err(OnvifError::malformed(
            op.name,
            "encoder configuration without a token",
        ));
    }
    s.call(op, &body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_both_versions_are_read_and_checked() {
        let v10 = r#"<r xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><trt:Options>
          <tt:QualityRange><tt:Min>1</tt:Min><tt:Max>10</tt:Max></tt:QualityRange>
          <tt:H264><tt:ResolutionsAvailable><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:ResolutionsAvailable>
          <tt:ResolutionsAvailable><tt:Width>1280</tt:Width><tt:Height>720</tt:Height></tt:ResolutionsAvailable>
          <tt:GovLengthRange><tt:Min>1</tt:Min><tt:Max>150</tt:Max></tt:GovLengthRange>
          <tt:FrameRateRange><tt:Min>1</tt:Min><tt:Max>30</tt:Max></tt:FrameRateRange>
          <tt:EncodingIntervalRange><tt:Min>1</tt:Min><tt:Max>1</tt:Max></tt:EncodingIntervalRange>
          <tt:H264ProfilesSupported>Main</tt:H264ProfilesSupported><tt:H264ProfilesSupported>High</tt:H264ProfilesSupported></tt:H264>
          <tt:Extension><tt:H264><tt:BitrateRange><tt:Min>64</tt:Min><tt:Max>8192</tt:Max></tt:BitrateRange></tt:H264></tt:Extension>
        </trt:Options></r>"#;
        let o = parse_options(&crate::xml::parse(v10.as_bytes()).unwrap());
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].resolutions, [(1920, 1080), (1280, 720)]);
        assert_eq!(o[0].bitrate_range, Some((64, 8192)));
        let ok = EncoderWant {
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(15.0),
            profile: Some("high".into()),
            ..Default::default()
        };
        assert_eq!(o[0].refuse(&ok), None);
        let bad = EncoderWant {
            width: Some(3840),
            height: Some(2160),
            ..Default::default()
        };
        assert!(
            o[0].refuse(&bad)
                .unwrap()
                .contains("3840×2160 is not offered")
        );
        let v20 = r#"<r xmlns:tr2="http://www.onvif.org/ver20/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
          <tr2:Options GovLengthRange="1 60" FrameRatesSupported="25 15 5" ProfilesSupported="Main High">
          <tt:Encoding>H264</tt:Encoding><tt:QualityRange><tt:Min>0</tt:Min><tt:Max>10</tt:Max></tt:QualityRange>
          <tt:ResolutionsAvailable><tt:Width>640</tt:Width><tt:Height>360</tt:Height></tt:ResolutionsAvailable>
          <tt:BitrateRange><tt:Min>32</tt:Min><tt:Max>2048</tt:Max></tt:BitrateRange></tr2:Options></r>"#;
        let o = parse_options(&crate::xml::parse(v20.as_bytes()).unwrap());
        assert_eq!(o[0].gov_range, Some((1, 60)));
        assert_eq!(o[0].frame_rates, [25.0, 15.0, 5.0]);
        let slow = EncoderWant {
            frame_rate: Some(12.0),
            ..Default::default()
        };
        assert_eq!(o[0].refuse(&slow).unwrap(), "12 fps is not offered");
    }
}
