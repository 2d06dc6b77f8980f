//! Quirk profiles for simulated cameras: how each one deviates from the
//! common case, chosen per camera by flag or by seed. Each quirk mirrors a
//! behaviour seen in the field (see tests/fixtures/README.md).

use std::fmt;

/// How a simulated camera authenticates SOAP calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimAuth {
    None,
    WsSecurity,
    DigestMd5,
    DigestSha256,
    /// WS-Security inside, HTTP Digest (MD5) outside.
    Both,
}

/// How a camera that wants WS-Security refuses a request without it (or
/// with a wrong one). `Spec` is the specification's Sender fault with the
/// `ter:NotAuthorized` subcode; the others are answers real firmware gives
/// instead, none of which a client can recognise by its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Refusal {
    #[default]
    Spec,
    /// A plain `Sender` fault, no subcode, with HTTP 500 and the reason
    /// "WS-Security header required but not provided".
    Sender500,
    /// A `Receiver` fault, no subcode, with HTTP 400 ("Action failed").
    Receiver400,
    /// An HTML "403 Forbidden" page, no SOAP at all.
    Html403,
    /// A `Sender` fault whose only reason is German.
    German,
    /// HTTP 500 with an empty body.
    Empty500,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quirks {
    pub auth: SimAuth,
    /// How a refused WS-Security request is answered.
    pub refusal: Refusal,
    /// Camera clock minus real time, seconds.
    pub clock_skew_secs: i64,
    /// GetSystemDateAndTime demands credentials too.
    pub gsdt_needs_auth: bool,
    /// HTTP status used for SOAP faults (spec: 400 sender / 500 receiver).
    pub fault_status: Option<u16>,
    pub soap11: bool,
    /// Unusual prefixes and default-namespace tricks in answers.
    pub odd_prefixes: bool,
    /// ProbeMatch elements straight in the Body, no ProbeMatches wrapper.
    pub no_probe_wrapper: bool,
    /// Reports another host in service, stream and snapshot addresses.
    pub wrong_host: bool,
    /// Reports `host:port:port` in service addresses.
    pub doubled_port: bool,
    /// Discovery XAddrs list an IPv6 link-local and an unreachable address first.
    pub extra_xaddrs: bool,
    /// Extra delay before every answer.
    pub slow_ms: u64,
    /// Accepts the connection and never answers.
    pub hang: bool,
    /// Answers 200 with a body that is not XML.
    pub garbage: bool,
    /// Answers with a 100 MB body (streamed, chunked).
    pub huge_body: bool,
    /// Answers with a body that never ends.
    pub endless_body: bool,
    /// GetSystemDateAndTime has only LocalDateTime + a POSIX TZ.
    pub no_utc: bool,
    /// Rejects WS-Security `Created` values with an offset or more than
    /// millisecond precision (Hikvision firmware does).
    pub strict_created: bool,
    /// GetServices is not implemented (older firmware): GetCapabilities only.
    pub no_get_services: bool,
    /// Offers Media2 (ver20) besides ver10.
    pub media2: bool,
    /// Prepends a UTF-8 byte-order mark to answers.
    pub bom: bool,
    /// No event service at all.
    pub no_events: bool,
    /// Answers relative subscription lifetimes with TerminationTime = now.
    pub broken_relative: bool,
    /// Older firmware: no StartFirmwareUpgrade, only the MTOM
    /// UpgradeSystemFirmware.
    pub legacy_firmware: bool,
    /// No on-board recording (no recording, search or replay service).
    pub no_recording: bool,
    /// GetSystemBackup answers inline base64 instead of MTOM.
    pub inline_backup: bool,
    /// Streams and records H.265 instead of H.264.
    pub h265: bool,
    /// Replays from the start of the card whatever range is asked for.
    pub ignore_range: bool,
    /// Answers PLAY of the live stream, then never sends a frame (a
    /// camera whose encoder hung).
    pub rtsp_silent: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            auth: SimAuth::WsSecurity,
            refusal: Refusal::Spec,
            clock_skew_secs: 0,
            gsdt_needs_auth: false,
            fault_status: None,
            soap11: false,
            odd_prefixes: false,
            no_probe_wrapper: false,
            wrong_host: false,
            doubled_port: false,
            extra_xaddrs: false,
            slow_ms: 0,
            hang: false,
            garbage: false,
            huge_body: false,
            endless_body: false,
            no_utc: false,
            strict_created: true,
            no_get_services: false,
            media2: true,
            bom: false,
            no_events: false,
            broken_relative: false,
            legacy_firmware: false,
            no_recording: false,
            inline_backup: false,
            h265: false,
            ignore_range: false,
            rtsp_silent: false,
        }
    }
}

impl Quirks {
    /// Apply a comma-separated list of quirk names, e.g.
    /// `digest-sha256,skew=3600,fault200,no-wrapper`.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            let num = || {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("{name} needs a number: {item:?}"))
            };
            match name {
                "noauth" => self.auth = SimAuth::None,
                "wsse" => self.auth = SimAuth::WsSecurity,
                "digest-md5" | "digest" => self.auth = SimAuth::DigestMd5,
                "digest-sha256" => self.auth = SimAuth::DigestSha256,
                "both" => self.auth = SimAuth::Both,
                "refuse-sender500" => self.refusal = Refusal::Sender500,
                "refuse-receiver400" => self.refusal = Refusal::Receiver400,
                "refuse-html403" => self.refusal = Refusal::Html403,
                "refuse-german" => self.refusal = Refusal::German,
                "refuse-empty500" => self.refusal = Refusal::Empty500,
                "skew" => self.clock_skew_secs = num()?,
                "gsdt-auth" => self.gsdt_needs_auth = true,
                "fault200" => self.fault_status = Some(200),
                "fault400" => self.fault_status = Some(400),
                "fault401" => self.fault_status = Some(401),
                "fault500" => self.fault_status = Some(500),
                "soap11" => self.soap11 = true,
                "prefixes" => self.odd_prefixes = true,
                "no-wrapper" => self.no_probe_wrapper = true,
                "wrong-host" => self.wrong_host = true,
                "doubled-port" => self.doubled_port = true,
                "extra-xaddrs" => self.extra_xaddrs = true,
                "slow" => self.slow_ms = num()?.max(0) as u64,
                "hang" => self.hang = true,
                "garbage" => self.garbage = true,
                "huge" => self.huge_body = true,
                "endless" => self.endless_body = true,
                "no-utc" => self.no_utc = true,
                "lenient-created" => self.strict_created = false,
                "no-getservices" => self.no_get_services = true,
                "media1" => self.media2 = false,
                "bom" => self.bom = true,
                "no-events" => self.no_events = true,
                "broken-relative" => self.broken_relative = true,
                "legacy-firmware" => self.legacy_firmware = true,
                "no-recording" => self.no_recording = true,
                "inline-backup" => self.inline_backup = true,
                "h265" => self.h265 = true,
                "ignore-range" => self.ignore_range = true,
                "rtsp-silent" => self.rtsp_silent = true,
                other => return Err(format!("unknown quirk {other:?}")),
            }
        }
        Ok(())
    }

    /// A mixed fleet: camera `index` gets a deterministic quirk set from
    /// `seed`. About a third of cameras are plain; the rest draw from the
    /// field behaviours that still let a correct client adopt them.
    pub fn mixed(seed: u64, index: u32) -> Quirks {
        let mut r = splitmix(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut next = || {
            r = splitmix(r);
            r
        };
        let mut q = Quirks {
            auth: SimAuth::WsSecurity,
            ..Quirks::default()
        };
        q.auth = match next() % 6 {
            0..=2 => SimAuth::WsSecurity,
            3 => SimAuth::DigestMd5,
            4 => SimAuth::DigestSha256,
            _ => SimAuth::Both,
        };
        if next() % 3 == 0 {
            return q;
        }
        q.clock_skew_secs = match next() % 4 {
            0 => 3600,
            1 => -7200,
            _ => 0,
        };
        q.gsdt_needs_auth = next() % 8 == 0;
        q.fault_status = match next() % 6 {
            0 => Some(200),
            1 => Some(401),
            2 => Some(500),
            _ => None,
        };
        q.soap11 = next() % 6 == 0;
        q.odd_prefixes = next() % 4 == 0;
        q.no_probe_wrapper = next() % 6 == 0;
        q.wrong_host = next() % 5 == 0;
        q.doubled_port = next() % 8 == 0;
        q.extra_xaddrs = next() % 6 == 0;
        q.no_utc = next() % 8 == 0;
        q.no_get_services = next() % 8 == 0;
        q.media2 = next() % 3 != 0;
        q.bom = next() % 8 == 0;
        q.broken_relative = next() % 6 == 0;
        q
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl fmt::Display for SimAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SimAuth::None => "none",
            SimAuth::WsSecurity => "wsse",
            SimAuth::DigestMd5 => "digest-md5",
            SimAuth::DigestSha256 => "digest-sha256",
            SimAuth::Both => "both",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_is_refused() {
        let mut q = Quirks::default();
        q.apply("digest-sha256, skew=-30,fault200,no-wrapper")
            .unwrap();
        assert_eq!(q.auth, SimAuth::DigestSha256);
        assert_eq!(q.clock_skew_secs, -30);
        assert_eq!(q.fault_status, Some(200));
        assert!(q.no_probe_wrapper);
        assert!(q.apply("bogus").is_err());
        assert!(q.apply("skew=abc").is_err());
    }

    #[test]
    fn mixed_is_deterministic_and_varied() {
        assert_eq!(Quirks::mixed(7, 3), Quirks::mixed(7, 3));
        let auths: std::collections::HashSet<_> =
            (0..200).map(|i| Quirks::mixed(7, i).auth as u8).collect();
        assert!(auths.len() >= 4);
    }
}
