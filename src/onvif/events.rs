//! ONVIF events (PullPoint), the parsing and timing half: what a camera
//! answers to CreatePullPointSubscription and PullMessages, which topics
//! camfleet turns into health signals, and when to renew a subscription —
//! including cameras whose relative termination times are broken.
//!
//! Parsing and timing are pure functions over the tolerant XML tree, tested
//! with answers shaped as cameras send them. The calls at the bottom send
//! the requests through [`DeviceSession::call_addressed`] (WS-Addressing
//! headers, the subscription's ReferenceParameters echoed on every call).

use chrono::{DateTime, Duration, Utc};

use super::error::{OnvifError, OnvifResult};
use super::ops;
use super::session::DeviceSession;
use crate::xml::{Element, Ns, escape};

/// A subscription as the camera granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Where PullMessages, Renew and Unsubscribe go.
    pub address: String,
    /// `wsa:ReferenceParameters` children, serialised, to be echoed as
    /// SOAP headers on every call to the subscription.
    pub reference_parameters: Vec<String>,
    pub current_time: Option<DateTime<Utc>>,
    pub termination_time: Option<DateTime<Utc>>,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The topic path without its prefix, e.g. `Device/HardwareFailure/StorageFailure`.
    pub topic: String,
    pub utc_time: Option<DateTime<Utc>>,
    /// `Initialized`, `Changed`, `Deleted` (property events), or empty.
    pub property_operation: String,
    pub source: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub current_time: Option<DateTime<Utc>>,
    pub termination_time: Option<DateTime<Utc>>,
    pub messages: Vec<Notification>,
}

fn time(s: Option<String>) -> Option<DateTime<Utc>> {
    let s = s?;
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            // Some cameras leave out the zone: read it as UTC.
            chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Serialise an element (for echoing ReferenceParameters), each namespace
/// declared where it is used.
pub fn to_xml(e: &Element) -> String {
    let mut out = String::new();
    write_el(e, &mut out, &mut 0, "");
    out
}

/// A ReferenceParameter as it is echoed: marked
/// `wsa:IsReferenceParameter="true"` as WS-Addressing 1.0 asks.
fn reference_parameter(e: &Element) -> String {
    let mut out = String::new();
    let mark = format!(
        r#" xmlns:wsa="{}" wsa:IsReferenceParameter="true""#,
        super::ns::WSA_2005
    );
    write_el(e, &mut out, &mut 0, &mark);
    out
}

fn write_el(e: &Element, out: &mut String, n: &mut usize, extra: &str) {
    let (tag, decl) = match &e.ns {
        Ns::Uri(uri) => {
            *n += 1;
            let p = format!("r{n}");
            (
                format!("{p}:{}", e.local),
                format!(" xmlns:{p}=\"{}\"", escape(uri)),
            )
        }
        _ => (e.local.clone(), String::new()),
    };
    out.push('<');
    out.push_str(&tag);
    out.push_str(&decl);
    out.push_str(extra);
    for a in &e.attrs {
        if matches!(a.ns, Ns::None) {
            out.push_str(&format!(" {}=\"{}\"", a.local, escape(&a.value)));
        }
    }
    out.push('>');
    out.push_str(&escape(&e.text));
    for c in &e.children {
        write_el(c, out, n, "");
    }
    out.push_str(&format!("</{tag}>"));
}

/// The answer to CreatePullPointSubscription (the response element).
pub fn parse_subscription(resp: &Element) -> Option<Subscription> {
    let reference = resp.child_local("SubscriptionReference")?;
    let address = reference.text_at(&["Address"])?;
    let reference_parameters = reference
        .child_local("ReferenceParameters")
        .map(|r| r.children.iter().map(reference_parameter).collect())
        .unwrap_or_default();
    Some(Subscription {
        address,
        reference_parameters,
        current_time: time(resp.text_at(&["CurrentTime"])),
        termination_time: time(resp.text_at(&["TerminationTime"])),
    })
}

fn items(e: Option<&Element>) -> Vec<(String, String)> {
    e.map(|e| {
        e.children_local("SimpleItem")
            .filter_map(|i| Some((i.attr("Name")?.to_string(), i.attr("Value")?.to_string())))
            .collect()
    })
    .unwrap_or_default()
}

/// The answer to PullMessages (the response element). Messages that make
/// no sense are skipped, not fatal.
pub fn parse_pulled(resp: &Element) -> Pulled {
    let messages = resp
        .children_local("NotificationMessage")
        .filter_map(|m| {
            let topic = m.text_at(&["Topic"])?;
            // `tns1:Device/…`: drop the prefix, whatever it is called.
            let topic = topic
                .split_once(':')
                .map(|(_, t)| t)
                .unwrap_or(&topic)
                .trim_start_matches('/')
                .to_string();
            let inner = m
                .child_local("Message")
                .and_then(|w| w.child_local("Message").or(Some(w)))?;
            Some(Notification {
                topic,
                utc_time: time(inner.attr("UtcTime").map(String::from)),
                property_operation: inner.attr("PropertyOperation").unwrap_or("").to_string(),
                source: items(inner.child_local("Source")),
                data: items(inner.child_local("Data")),
            })
        })
        .collect();
    Pulled {
        current_time: time(resp.text_at(&["CurrentTime"])),
        termination_time: time(resp.text_at(&["TerminationTime"])),
        messages,
    }
}

/// What a topic means for the device's health.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    StorageFailure {
        failed: bool,
    },
    /// Tamper: global scene change, too blurry/dark/bright.
    Tamper {
        kind: String,
        active: bool,
    },
    LastReboot {
        at: Option<DateTime<Utc>>,
    },
    ProcessorUsage {
        percent: f64,
    },
    RecordingJobState {
        job: String,
        state: String,
    },
}

fn value<'a>(items: &'a [(String, String)], name: &str) -> Option<&'a str> {
    items
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("true" | "1" | "True" | "TRUE"))
}

/// The health signal of a notification, for topics camfleet watches.
pub fn signal(n: &Notification) -> Option<Signal> {
    let t = n.topic.as_str();
    if t.starts_with("Device/HardwareFailure/StorageFailure") {
        return Some(Signal::StorageFailure {
            failed: truthy(value(&n.data, "Failed")),
        });
    }
    if let Some(kind) = t
        .strip_prefix("VideoSource/GlobalSceneChange")
        .map(|_| "GlobalSceneChange")
        .or_else(|| {
            ["ImageTooBlurry", "ImageTooDark", "ImageTooBright"]
                .into_iter()
                .find(|k| t.starts_with(&format!("VideoSource/{k}")))
        })
    {
        return Some(Signal::Tamper {
            kind: kind.into(),
            active: truthy(value(&n.data, "State")),
        });
    }
    if t.starts_with("Monitoring/OperatingTime/LastReboot") {
        return Some(Signal::LastReboot {
            at: time(value(&n.data, "Status").map(String::from)),
        });
    }
    if t.starts_with("Monitoring/ProcessorUsage") {
        return value(&n.data, "Value")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| Signal::ProcessorUsage {
                // Some report 0..1, most 0..100.
                percent: if v <= 1.0 { v * 100.0 } else { v },
            });
    }
    if t.starts_with("RecordingConfig/JobState") {
        return Some(Signal::RecordingJobState {
            job: value(&n.source, "RecordingJobToken")
                .unwrap_or("")
                .to_string(),
            state: value(&n.data, "State").unwrap_or("").to_string(),
        });
    }
    None
}

/// How the camera treated a requested relative lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Termination ≈ current + requested: relative times work.
    Honoured,
    /// Termination at or before current time, or far off what was asked:
    /// this camera mishandles `PT…S`; send absolute times from now on.
    BrokenRelative,
    /// The camera shortened it (allowed); renew sooner.
    Shortened,
}

/// Judge a Create/Renew answer against the requested lifetime.
pub fn judge(current: DateTime<Utc>, termination: DateTime<Utc>, requested: Duration) -> Lifetime {
    let granted = termination - current;
    if granted <= Duration::zero() || granted > requested * 10 {
        Lifetime::BrokenRelative
    } else if granted < requested - Duration::seconds(5) {
        Lifetime::Shortened
    } else {
        Lifetime::Honoured
    }
}

/// When to renew, in our own clock: at 80 % of the granted lifetime, and
/// never later than 30 s before it ends (and not sooner than 5 s from now,
/// so a camera granting tiny lifetimes cannot cause a renew storm).
pub fn renew_at(
    local_now: DateTime<Utc>,
    camera_current: DateTime<Utc>,
    camera_termination: DateTime<Utc>,
) -> DateTime<Utc> {
    let granted = (camera_termination - camera_current).max(Duration::zero());
    let at = std::cmp::min(granted * 4 / 5, granted - Duration::seconds(30));
    local_now + std::cmp::max(at, Duration::seconds(5))
}

/// The TerminationTime to send: relative (`PT600S`) unless the camera was
/// found to break those, then absolute in the camera's clock.
pub fn termination_value(
    broken_relative: bool,
    camera_now: DateTime<Utc>,
    lifetime: Duration,
) -> String {
    if broken_relative {
        (camera_now + lifetime)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    } else {
        format!("PT{}S", lifetime.num_seconds())
    }
}

fn duration_value(d: std::time::Duration) -> String {
    format!("PT{}S", d.as_secs().max(1))
}

/// The subscription's address, or why it is not one.
fn subscription_url(sub: &Subscription) -> Result<url::Url, String> {
    url::Url::parse(sub.address.trim())
        .map_err(|e| format!("subscription address {:?}: {e}", sub.address))
}

/// CreatePullPointSubscription at the events service. `termination` is
/// what [`termination_value`] gave. The subscription address is rewritten
/// like every other address a camera reports (its host may be wrong).
pub async fn create_pull_point(
    s: &DeviceSession,
    events_url: &url::Url,
    termination: &str,
) -> OnvifResult<Subscription> {
    let op = ops::EVENTS_CREATE_PULL_POINT_SUBSCRIPTION;
    let body = format!(
        r#"<tev:CreatePullPointSubscription xmlns:tev="{}"><tev:InitialTerminationTime>{}</tev:InitialTerminationTime></tev:CreatePullPointSubscription>"#,
        op.namespace,
        escape(termination)
    );
    let el = s.call_addressed(op, &body, events_url, &[], None).await?;
    let mut sub = parse_subscription(&el)
        .ok_or_else(|| OnvifError::malformed(op.name, "no SubscriptionReference/Address"))?;
    if let Some(r) = super::address::rewrite(&sub.address, s.device_url()) {
        if r.changed {
            s.note_quirk(super::types::Quirk::AddressRewritten {
                field: "SubscriptionReference".into(),
                reported: sub.address.clone(),
            });
        }
        sub.address = r.url.to_string();
    }
    Ok(sub)
}

/// PullMessages: a long-poll of up to `wait` for at most `limit` messages.
/// The HTTP deadline is the wait plus `grace`.
pub async fn pull_messages(
    s: &DeviceSession,
    sub: &Subscription,
    wait: std::time::Duration,
    limit: u32,
    grace: std::time::Duration,
) -> OnvifResult<Pulled> {
    let op = ops::EVENTS_PULL_MESSAGES;
    let body = format!(
        r#"<tev:PullMessages xmlns:tev="{}"><tev:Timeout>{}</tev:Timeout><tev:MessageLimit>{limit}</tev:MessageLimit></tev:PullMessages>"#,
        op.namespace,
        duration_value(wait)
    );
    let url = subscription_url(sub).map_err(|m| OnvifError::malformed(op.name, m))?;
    let el = s
        .call_addressed(
            op,
            &body,
            &url,
            &sub.reference_parameters,
            Some(wait + grace),
        )
        .await?;
    Ok(parse_pulled(&el))
}

/// Renew: the answer's (CurrentTime, TerminationTime). CurrentTime is
/// optional in WS-BaseNotification; when absent it is None.
pub async fn renew(
    s: &DeviceSession,
    sub: &Subscription,
    termination: &str,
) -> OnvifResult<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let op = ops::SUBSCRIPTION_RENEW;
    let body = format!(
        r#"<wsnt:Renew xmlns:wsnt="{}"><wsnt:TerminationTime>{}</wsnt:TerminationTime></wsnt:Renew>"#,
        op.namespace,
        escape(termination)
    );
    let url = subscription_url(sub).map_err(|m| OnvifError::malformed(op.name, m))?;
    let el = s
        .call_addressed(op, &body, &url, &sub.reference_parameters, None)
        .await?;
    Ok((
        time(el.text_at(&["CurrentTime"])),
        time(el.text_at(&["TerminationTime"])),
    ))
}

/// Unsubscribe (best effort when stopping: the camera frees the slot
/// instead of waiting for the subscription to expire).
pub async fn unsubscribe(s: &DeviceSession, sub: &Subscription) -> OnvifResult<()> {
    let op = ops::SUBSCRIPTION_UNSUBSCRIBE;
    let body = format!(r#"<wsnt:Unsubscribe xmlns:wsnt="{}"/>"#, op.namespace);
    let url = subscription_url(sub).map_err(|m| OnvifError::malformed(op.name, m))?;
    s.call_addressed(op, &body, &url, &sub.reference_parameters, None)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = r#"<?xml version="1.0"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tev="http://www.onvif.org/ver10/events/wsdl"
 xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:dom="urn:vendor:sub">
<env:Body><tev:CreatePullPointSubscriptionResponse>
 <tev:SubscriptionReference>
  <wsa5:Address>http://10.0.0.7/onvif/Subscription?Idx=3</wsa5:Address>
  <wsa5:ReferenceParameters><dom:SubscriptionId>7&amp;x</dom:SubscriptionId></wsa5:ReferenceParameters>
 </tev:SubscriptionReference>
 <wsnt:CurrentTime>2026-11-26T10:00:00Z</wsnt:CurrentTime>
 <wsnt:TerminationTime>2026-11-26T10:10:00Z</wsnt:TerminationTime>
</tev:CreatePullPointSubscriptionResponse></env:Body></env:Envelope>"#;

    const PULLED: &str = r#"<?xml version="1.0"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tev="http://www.onvif.org/ver10/events/wsdl"
 xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tns1="http://www.onvif.org/ver10/topics">
<SOAP-ENV:Body><tev:PullMessagesResponse>
 <tev:CurrentTime>2026-11-26T10:01:00Z</tev:CurrentTime>
 <tev:TerminationTime>2026-11-26T10:11:00Z</tev:TerminationTime>
 <wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:Device/HardwareFailure/StorageFailure</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-11-26T10:00:58Z" PropertyOperation="Changed">
   <tt:Source><tt:SimpleItem Name="Token" Value="SD_DISK_20200422_123501_A"/></tt:Source>
   <tt:Data><tt:SimpleItem Name="Failed" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
 </wsnt:NotificationMessage>
 <wsnt:NotificationMessage>
  <wsnt:Topic>tns1:VideoSource/GlobalSceneChange/ImagingService</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-11-26T10:00:59Z">
   <tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source>
   <tt:Data><tt:SimpleItem Name="State" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
 </wsnt:NotificationMessage>
 <wsnt:NotificationMessage>
  <wsnt:Topic>tns1:Monitoring/ProcessorUsage</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-11-26T10:00:59Z"><tt:Data><tt:SimpleItem Name="Value" Value="0.87"/></tt:Data></tt:Message></wsnt:Message>
 </wsnt:NotificationMessage>
 <wsnt:NotificationMessage><wsnt:Topic></wsnt:Topic></wsnt:NotificationMessage>
</tev:PullMessagesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    fn body(xml: &str) -> Element {
        let root = crate::xml::parse(xml.as_bytes()).unwrap();
        root.child_local("Body").unwrap().children[0].clone()
    }

    #[test]
    fn a_subscription_keeps_its_address_times_and_reference_parameters() {
        let s = parse_subscription(&body(CREATE)).unwrap();
        assert_eq!(s.address, "http://10.0.0.7/onvif/Subscription?Idx=3");
        assert_eq!(
            s.reference_parameters,
            [
                "<r1:SubscriptionId xmlns:r1=\"urn:vendor:sub\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" wsa:IsReferenceParameter=\"true\">7&amp;x</r1:SubscriptionId>"
            ]
        );
        assert_eq!(
            s.termination_time.unwrap() - s.current_time.unwrap(),
            Duration::seconds(600)
        );
    }

    #[test]
    fn pulled_messages_become_health_signals_and_broken_ones_are_skipped() {
        let p = parse_pulled(&body(PULLED));
        assert_eq!(p.messages.len(), 3, "the empty topic is skipped");
        assert_eq!(p.messages[0].topic, "Device/HardwareFailure/StorageFailure");
        assert_eq!(p.messages[0].property_operation, "Changed");
        assert_eq!(
            signal(&p.messages[0]),
            Some(Signal::StorageFailure { failed: true })
        );
        assert_eq!(
            signal(&p.messages[1]),
            Some(Signal::Tamper {
                kind: "GlobalSceneChange".into(),
                active: true
            })
        );
        assert_eq!(
            signal(&p.messages[2]),
            Some(Signal::ProcessorUsage { percent: 87.0 })
        );
    }

    #[test]
    fn broken_relative_times_are_detected_and_renewals_are_timed() {
        let t0: DateTime<Utc> = "2026-11-26T10:00:00Z".parse().unwrap();
        let ten = Duration::seconds(600);
        assert_eq!(judge(t0, t0 + ten, ten), Lifetime::Honoured);
        // Some firmware answers "now" (or a time in the past) to PT600S.
        assert_eq!(judge(t0, t0, ten), Lifetime::BrokenRelative);
        assert_eq!(
            judge(t0, t0 - Duration::hours(1), ten),
            Lifetime::BrokenRelative
        );
        assert_eq!(
            judge(t0, t0 + Duration::seconds(60), ten),
            Lifetime::Shortened
        );
        assert_eq!(termination_value(false, t0, ten), "PT600S");
        assert_eq!(termination_value(true, t0, ten), "2026-11-26T10:10:00Z");
        // Renew at 80 % of 600 s; never later than 30 s before the end;
        // never sooner than 5 s (no renew storm on tiny lifetimes). The
        // camera's clock may be far from ours: only the granted span counts.
        let local: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        assert_eq!(
            renew_at(local, t0, t0 + ten),
            local + Duration::seconds(480)
        );
        assert_eq!(
            renew_at(local, t0, t0 + Duration::seconds(60)),
            local + Duration::seconds(30)
        );
        assert_eq!(
            renew_at(local, t0, t0 + Duration::seconds(2)),
            local + Duration::seconds(5)
        );
        assert_eq!(
            renew_at(local, t0, t0 - Duration::seconds(9)),
            local + Duration::seconds(5)
        );
    }
}
