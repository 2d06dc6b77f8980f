//! Reading the camera's clock from GetSystemDateAndTime, and keeping the
//! offset against our monotonic clock so WS-Security `Created` stays right
//! even if our own wall clock steps.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::types::CameraTime;
use crate::xml::Element;

/// Parse a GetSystemDateAndTimeResponse. UTCDateTime first; if missing or
/// invalid, LocalDateTime minus the POSIX TZ offset.
/// `PT600S`, `PT10M`, `PT1H30M`, `P1DT2H`: seconds. None when not a duration.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0i64;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let mult = units.iter().find(|(u, _)| *u == c)?.1;
                let n: f64 = num.parse().ok()?;
                total += (n * mult as f64) as i64;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    take(days, &[('D', 86_400)])?;
    take(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    Some(total)
}

pub fn parse_system_date_time(resp: &Element) -> Option<CameraTime> {
    let sdt = resp.child_local("SystemDateAndTime").unwrap_or(resp);
    let ntp = sdt
        .text_at(&["DateTimeType"])
        .is_some_and(|t| t.eq_ignore_ascii_case("NTP"));
    let tz = sdt.text_at(&["TimeZone", "TZ"]);
    let dst = sdt
        .text_at(&["DaylightSavings"])
        .is_some_and(|t| t.trim() == "true" || t.trim() == "1");
    if let Some(utc) = sdt.child_local("UTCDateTime").and_then(date_time) {
        return Some(CameraTime {
            utc: utc.and_utc(),
            ntp,
            tz,
            derived_from_local: false,
        });
    }
    let local = sdt.child_local("LocalDateTime").and_then(date_time)?;
    let offset = tz
        .as_deref()
        .and_then(|t| posix_tz_utc_offset(t, dst))
        .unwrap_or(0);
    Some(CameraTime {
        utc: (local + chrono::Duration::seconds(offset)).and_utc(),
        ntp,
        tz,
        derived_from_local: true,
    })
}

fn num(e: &Element, path: &[&str]) -> Option<u32> {
    e.text_at(path)?.trim().parse().ok()
}

fn date_time(e: &Element) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(
        num(e, &["Date", "Year"])? as i32,
        num(e, &["Date", "Month"])?,
        num(e, &["Date", "Day"])?,
    )?;
    // A leap second (60) is clamped rather than rejected.
    let sec = num(e, &["Time", "Second"]).unwrap_or(0).min(59);
    date.and_hms_opt(
        num(e, &["Time", "Hour"])?,
        num(e, &["Time", "Minute"])?,
        sec,
    )
}

/// Seconds to *add* to local time to get UTC, from a POSIX TZ string such as
/// `CST-8`, `GMT+05:30`, `EST5EDT,M3.2.0,M11.1.0` or `<+0330>-3:30`.
/// POSIX signs are inverted: `CST-8` is UTC+8, so UTC = local + (-8 h).
pub fn posix_tz_utc_offset(tz: &str, dst_active: bool) -> Option<i64> {
    let s = tz.trim();
    let (std_off, rest) = parse_name_offset(s)?;
    if !dst_active {
        return Some(std_off);
    }
    // DST name then optional offset; default one hour ahead of standard.
    let rest = rest.split(',').next().unwrap_or("");
    let rest = skip_name(rest)?;
    let dst_off = if rest.is_empty() {
        std_off - 3600
    } else {
        parse_offset(rest).map(|(o, _)| o).unwrap_or(std_off - 3600)
    };
    Some(dst_off)
}

fn skip_name(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_prefix('<') {
        let end = r.find('>')?;
        return Some(&r[end + 1..]);
    }
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    Some(&s[end..])
}

fn parse_name_offset(s: &str) -> Option<(i64, &str)> {
    let rest = skip_name(s)?;
    parse_offset(rest)
}

fn parse_offset(s: &str) -> Option<(i64, &str)> {
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        b'0'..=b'9' => (1, s),
        _ => return None,
    };
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(body.len());
    let mut parts = body[..end].split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map(|p| p.parse().unwrap_or(0)).unwrap_or(0);
    let sec: i64 = parts.next().map(|p| p.parse().unwrap_or(0)).unwrap_or(0);
    if h > 24 || m > 59 || sec > 59 {
        return None;
    }
    Some((sign * (h * 3600 + m * 60 + sec), &body[end..]))
}

/// The camera's clock, anchored to our monotonic clock at the moment we read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAnchor {
    pub camera_utc: DateTime<Utc>,
    pub monotonic: Duration,
    /// camera − local, at the anchor.
    pub offset_ms: i64,
}

impl ClockAnchor {
    pub fn new(camera_utc: DateTime<Utc>, local_utc: DateTime<Utc>, monotonic: Duration) -> Self {
        Self {
            camera_utc,
            monotonic,
            offset_ms: (camera_utc - local_utc).num_milliseconds(),
        }
    }

    /// The camera's time now, extrapolated along our monotonic clock.
    pub fn camera_now(&self, monotonic_now: Duration) -> DateTime<Utc> {
        let elapsed = monotonic_now.saturating_sub(self.monotonic);
        self.camera_utc + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

/// A sudden change of the camera's clock relative to ours: a reboot into a
/// default date, or an NTP step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClockJump {
    pub expected: DateTime<Utc>,
    pub found: DateTime<Utc>,
    pub jump_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml;
    use chrono::TimeZone;

    fn sdt(body: &str) -> Option<CameraTime> {
        let root = xml::parse(body.as_bytes()).unwrap();
        parse_system_date_time(&root)
    }

    #[test]
    fn utc_is_preferred() {
        let t = sdt("<R><SystemDateAndTime><DateTimeType>NTP</DateTimeType><TimeZone><TZ>CST-8</TZ></TimeZone><UTCDateTime><Date><Year>2026</Year><Month>11</Month><Day>26</Day></Date><Time><Hour>3</Hour><Minute>4</Minute><Second>5</Second></Time></UTCDateTime><LocalDateTime><Date><Year>2026</Year><Month>11</Month><Day>26</Day></Date><Time><Hour>11</Hour><Minute>4</Minute><Second>5</Second></Time></LocalDateTime></SystemDateAndTime></R>").unwrap();
        assert_eq!(t.utc, Utc.with_ymd_and_hms(2026, 11, 26, 3, 4, 5).unwrap());
        assert!(t.ntp);
        assert!(!t.derived_from_local);
    }

    #[test]
    fn local_plus_posix_tz_when_utc_missing() {
        let t = sdt("<R><SystemDateAndTime><TimeZone><TZ>CST-8</TZ></TimeZone><LocalDateTime><Date><Year>2026</Year><Month>11</Month><Day>26</Day></Date><Time><Hour>11</Hour><Minute>4</Minute><Second>5</Second></Time></LocalDateTime></SystemDateAndTime></R>").unwrap();
        assert_eq!(t.utc, Utc.with_ymd_and_hms(2026, 11, 26, 3, 4, 5).unwrap());
        assert!(t.derived_from_local);
    }

    #[test]
    fn invalid_utc_falls_back_to_local() {
        let t = sdt("<R><SystemDateAndTime><TimeZone><TZ>GMT+05:30</TZ></TimeZone><UTCDateTime><Date><Year>2026</Year><Month>13</Month><Day>40</Day></Date><Time><Hour>x</Hour></Time></UTCDateTime><LocalDateTime><Date><Year>2026</Year><Month>11</Month><Day>26</Day></Date><Time><Hour>0</Hour><Minute>0</Minute><Second>0</Second></Time></LocalDateTime></SystemDateAndTime></R>").unwrap();
        assert_eq!(t.utc, Utc.with_ymd_and_hms(2026, 11, 26, 5, 30, 0).unwrap());
    }

    #[test]
    fn posix_offsets() {
        assert_eq!(posix_tz_utc_offset("UTC0", false), Some(0));
        assert_eq!(
            posix_tz_utc_offset("EST5EDT,M3.2.0,M11.1.0", false),
            Some(5 * 3600)
        );
        assert_eq!(
            posix_tz_utc_offset("EST5EDT,M3.2.0,M11.1.0", true),
            Some(4 * 3600)
        );
        assert_eq!(
            posix_tz_utc_offset("<+0330>-3:30", false),
            Some(-(3 * 3600 + 1800))
        );
        assert_eq!(posix_tz_utc_offset("garbage", false), None);
    }

    #[test]
    fn anchor_extrapolates_on_monotonic_time() {
        let cam = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let local = cam + chrono::Duration::seconds(30);
        let a = ClockAnchor::new(cam, local, Duration::from_secs(100));
        assert_eq!(a.offset_ms, -30_000);
        assert_eq!(
            a.camera_now(Duration::from_secs(110)),
            cam + chrono::Duration::seconds(10)
        );
    }
}
