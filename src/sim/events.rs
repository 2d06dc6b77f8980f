//! The simulated camera's event service: PullPoint subscriptions as the
//! ONVIF Core spec describes them, strict where real cameras are strict.
//!
//! - CreatePullPointSubscription grants a lifetime (relative `PT…S` or an
//!   absolute time in the camera's clock, capped at an hour) and answers
//!   with a subscription address and a ReferenceParameter. A new
//!   subscription starts with the current state of each property topic
//!   (`PropertyOperation="Initialized"`), as cameras do.
//! - PullMessages, Renew and Unsubscribe must carry `wsa:Action` and echo
//!   the ReferenceParameter, or they are refused; an expired or unknown
//!   subscription answers a fault.
//! - PullMessages long-polls: it answers as soon as a message is queued or
//!   when the requested timeout (capped at 60 s) runs out.
//! - `broken-relative` quirk: a relative lifetime is answered with a
//!   TerminationTime equal to CurrentTime (the subscription quietly lives
//!   on for a minute), as some firmware does; absolute times work.
//!
//! Tests and the demo raise events with [`SimEvents::push`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::state::SimFault;
use crate::onvif::ns;
use crate::xml::{Element, escape};

/// At most this many messages wait per subscription; older ones drop.
const QUEUE_CAP: usize = 1000;
const MAX_LIFETIME_SECS: i64 = 3600;
const MAX_PULL_WAIT: Duration = Duration::from_secs(60);
/// How long a subscription given a broken (immediate) termination lives.
const BROKEN_GRACE_SECS: i64 = 60;
const SIM_NS: &str = "urn:camfleet:sim";

/// One event to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// Topic without prefix, e.g. `Device/HardwareFailure/StorageFailure`.
    pub topic: String,
    pub operation: String,
    pub source: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
}

impl SimEvent {
    pub fn storage_failure(failed: bool) -> SimEvent {
        SimEvent {
            topic: "Device/HardwareFailure/StorageFailure".into(),
            operation: "Changed".into(),
            source: vec![("Token".into(), "SD_DISK_1".into())],
            data: vec![("Failed".into(), failed.to_string())],
        }
    }

    pub fn tamper(active: bool) -> SimEvent {
        SimEvent {
            topic: "VideoSource/GlobalSceneChange/ImagingService".into(),
            operation: "Changed".into(),
            source: vec![("Source".into(), "VideoSource_1".into())],
            data: vec![("State".into(), active.to_string())],
        }
    }
}

struct Sub {
    /// What the camera reported (and enforces, unless the grace applies).
    termination: DateTime<Utc>,
    expires: DateTime<Utc>,
    queue: VecDeque<(DateTime<Utc>, SimEvent)>,
}

/// Counters tests read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStats {
    pub creates: u64,
    pub renews: u64,
    pub pulls: u64,
    pub unsubscribes: u64,
    /// Calls refused for a missing Action or ReferenceParameter.
    pub refused: u64,
    /// Every termination value asked for (Create and Renew), in order.
    pub requested: Vec<String>,
    pub live: usize,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    subs: HashMap<u64, Sub>,
    stats: EventStats,
    storage_failed: bool,
    /// Fail every CreatePullPointSubscription (tests the client's backoff).
    refuse_create: bool,
}

#[derive(Default)]
pub struct SimEvents {
    inner: Mutex<Inner>,
    arrived: tokio::sync::Notify,
}

pub fn is_event_op(op: &Element) -> bool {
    matches!(
        (op.local.as_str(), op.ns_uri()),
        (
            "CreatePullPointSubscription" | "PullMessages",
            Some(ns::TEV)
        ) | ("Renew" | "Unsubscribe", Some(ns::WSNT))
    )
}

pub use crate::onvif::time::parse_duration;

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn fault(subcode: &'static str, reason: &str) -> SimFault {
    SimFault {
        sender: true,
        subcode,
        reason: reason.into(),
    }
}

impl SimEvents {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue an event on every live subscription and wake waiting pulls.
    pub fn push(&self, ev: SimEvent, at: DateTime<Utc>) {
        let mut g = self.lock();
        if ev
            .topic
            .starts_with("Device/HardwareFailure/StorageFailure")
        {
            g.storage_failed = ev.data.iter().any(|(k, v)| k == "Failed" && v == "true");
        }
        for sub in g.subs.values_mut() {
            if sub.queue.len() >= QUEUE_CAP {
                sub.queue.pop_front();
            }
            sub.queue.push_back((at, ev.clone()));
        }
        drop(g);
        self.arrived.notify_waiters();
    }

    pub fn stats(&self) -> EventStats {
        let g = self.lock();
        EventStats {
            live: g.subs.len(),
            ..g.stats.clone()
        }
    }

    pub fn set_refuse_create(&self, refuse: bool) {
        self.lock().refuse_create = refuse;
    }

    /// Drop every subscription, as a camera reboot does.
    pub fn forget_subscriptions(&self) {
        self.lock().subs.clear();
        self.arrived.notify_waiters();
    }

    /// Handle one event operation. `authority` is the host:port the camera
    /// reports for itself.
    pub async fn handle(
        &self,
        header: Option<&Element>,
        op: &Element,
        now: DateTime<Utc>,
        authority: &str,
        broken_relative: bool,
    ) -> Result<String, SimFault> {
        let ns_decl = format!(
            r#"xmlns:tev="{}" xmlns:wsnt="{}" xmlns:wsa="{}" xmlns:tt="{}" xmlns:tns1="http://www.onvif.org/ver10/topics""#,
            ns::TEV,
            ns::WSNT,
            ns::WSA_2005,
            ns::TT
        );
        match op.local.as_str() {
            "CreatePullPointSubscription" => {
                let wanted = op
                    .text_at(&["InitialTerminationTime"])
                    .unwrap_or_else(|| "PT60S".into());
                let mut g = self.lock();
                g.stats.creates += 1;
                g.stats.requested.push(wanted.clone());
                if g.refuse_create {
                    return Err(SimFault {
                        sender: false,
                        subcode: "Action",
                        reason: "too many subscriptions".into(),
                    });
                }
                let (termination, expires) = grant(&wanted, now, broken_relative)?;
                g.next_id += 1;
                let id = g.next_id;
                let mut queue = VecDeque::new();
                let mut initial = SimEvent::storage_failure(g.storage_failed);
                initial.operation = "Initialized".into();
                queue.push_back((now, initial));
                g.subs.insert(
                    id,
                    Sub {
                        termination,
                        expires,
                        queue,
                    },
                );
                Ok(format!(
                    r#"<tev:CreatePullPointSubscriptionResponse {ns_decl}><tev:SubscriptionReference><wsa:Address>http://{authority}/onvif/subscription?id={id}</wsa:Address><wsa:ReferenceParameters><sim:SubscriptionId xmlns:sim="{SIM_NS}">{id}</sim:SubscriptionId></wsa:ReferenceParameters></tev:SubscriptionReference><wsnt:CurrentTime>{}</wsnt:CurrentTime><wsnt:TerminationTime>{}</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>"#,
                    fmt_time(now),
                    fmt_time(termination)
                ))
            }
            "PullMessages" => {
                let id = self.subscription_of(header, op, now)?;
                let wait = op
                    .text_at(&["Timeout"])
                    .and_then(|t| parse_duration(&t))
                    .map(|s| Duration::from_secs(s.max(0) as u64))
                    .unwrap_or(Duration::from_secs(10))
                    .min(MAX_PULL_WAIT);
                let limit = op
                    .text_at(&["MessageLimit"])
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(10)
                    .clamp(1, 1000);
                self.lock().stats.pulls += 1;
                let deadline = tokio::time::Instant::now() + wait;
                let (messages, termination) = loop {
                    let notified = self.arrived.notified();
                    {
                        let mut g = self.lock();
                        let Some(sub) = g.subs.get_mut(&id) else {
                            return Err(fault("ResourceUnknown", "subscription ended"));
                        };
                        if !sub.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                            let n = sub.queue.len().min(limit);
                            break (sub.queue.drain(..n).collect::<Vec<_>>(), sub.termination);
                        }
                    }
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                };
                let mut out = format!(
                    "<tev:PullMessagesResponse {ns_decl}><tev:CurrentTime>{}</tev:CurrentTime><tev:TerminationTime>{}</tev:TerminationTime>",
                    fmt_time(now),
                    fmt_time(termination)
                );
                for (at, ev) in messages {
                    let items = |v: &[(String, String)]| {
                        v.iter()
                            .map(|(k, v)| {
                                format!(
                                    r#"<tt:SimpleItem Name="{}" Value="{}"/>"#,
                                    escape(k),
                                    escape(v)
                                )
                            })
                            .collect::<String>()
                    };
                    out.push_str(&format!(
                        r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:{}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{}" PropertyOperation="{}"><tt:Source>{}</tt:Source><tt:Data>{}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#,
                        escape(&ev.topic),
                        fmt_time(at),
                        escape(&ev.operation),
                        items(&ev.source),
                        items(&ev.data)
                    ));
                }
                out.push_str("</tev:PullMessagesResponse>");
                Ok(out)
            }
            "Renew" => {
                let id = self.subscription_of(header, op, now)?;
                let wanted = op.text_at(&["TerminationTime"]).unwrap_or_default();
                let (termination, expires) = grant(&wanted, now, broken_relative)?;
                let mut g = self.lock();
                g.stats.renews += 1;
                g.stats.requested.push(wanted);
                let sub = g
                    .subs
                    .get_mut(&id)
                    .ok_or_else(|| fault("ResourceUnknown", "subscription ended"))?;
                sub.termination = termination;
                sub.expires = expires;
                Ok(format!(
                    "<wsnt:RenewResponse {ns_decl}><wsnt:TerminationTime>{}</wsnt:TerminationTime><wsnt:CurrentTime>{}</wsnt:CurrentTime></wsnt:RenewResponse>",
                    fmt_time(termination),
                    fmt_time(now)
                ))
            }
            "Unsubscribe" => {
                let id = self.subscription_of(header, op, now)?;
                let mut g = self.lock();
                g.stats.unsubscribes += 1;
                g.subs.remove(&id);
                drop(g);
                self.arrived.notify_waiters();
                Ok(format!("<wsnt:UnsubscribeResponse {ns_decl}/>"))
            }
            other => Err(SimFault::not_supported(other)),
        }
    }

    /// The subscription a call addresses, checked as a strict camera does:
    /// the right `wsa:Action`, the ReferenceParameter echoed, not expired.
    fn subscription_of(
        &self,
        header: Option<&Element>,
        op: &Element,
        now: DateTime<Utc>,
    ) -> Result<u64, SimFault> {
        let expected = match op.local.as_str() {
            "PullMessages" => crate::onvif::ops::EVENTS_PULL_MESSAGES.action(),
            "Renew" => crate::onvif::ops::SUBSCRIPTION_RENEW.action(),
            _ => crate::onvif::ops::SUBSCRIPTION_UNSUBSCRIBE.action(),
        };
        let action = header.and_then(|h| h.text_at(&["Action"]));
        let id = header
            .and_then(|h| h.child_local("SubscriptionId"))
            .filter(|e| e.ns_uri() == Some(SIM_NS))
            .and_then(|e| e.text.trim().parse::<u64>().ok());
        let mut g = self.lock();
        if action.as_deref().map(str::trim) != Some(expected.as_str()) {
            g.stats.refused += 1;
            return Err(fault(
                "InvalidAddressingHeader",
                &format!("wsa:Action must be {expected}"),
            ));
        }
        let Some(id) = id else {
            g.stats.refused += 1;
            return Err(fault(
                "InvalidAddressingHeader",
                "the subscription's ReferenceParameters were not echoed",
            ));
        };
        match g.subs.get(&id) {
            Some(s) if s.expires >= now => Ok(id),
            Some(_) => {
                g.subs.remove(&id);
                Err(fault("ResourceUnknown", "subscription expired"))
            }
            None => Err(fault("ResourceUnknown", "no such subscription")),
        }
    }
}

/// (reported termination, real expiry) for a requested termination value.
fn grant(
    wanted: &str,
    now: DateTime<Utc>,
    broken_relative: bool,
) -> Result<(DateTime<Utc>, DateTime<Utc>), SimFault> {
    let cap = now + chrono::Duration::seconds(MAX_LIFETIME_SECS);
    if let Some(secs) = parse_duration(wanted) {
        if broken_relative {
            return Ok((now, now + chrono::Duration::seconds(BROKEN_GRACE_SECS)));
        }
        let t = (now + chrono::Duration::seconds(secs.max(1))).min(cap);
        return Ok((t, t));
    }
    let t = DateTime::parse_from_rfc3339(wanted.trim())
        .map_err(|_| {
            fault(
                "InvalidArgVal",
                "TerminationTime is neither a duration nor a time",
            )
        })?
        .with_timezone(&Utc);
    if t <= now {
        return Err(fault(
            "UnacceptableTerminationTimeFault",
            "TerminationTime is in the past",
        ));
    }
    let t = t.min(cap);
    Ok((t, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("PT600S"), Some(600));
        assert_eq!(parse_duration("PT10M"), Some(600));
        assert_eq!(parse_duration("PT1H30M"), Some(5400));
        assert_eq!(parse_duration("P1DT2H"), Some(93_600));
        assert_eq!(parse_duration("PT1.5S"), Some(1));
        assert_eq!(parse_duration("2026-11-26T10:00:00Z"), None);
        assert_eq!(parse_duration("PT10X"), None);
    }

    #[test]
    fn broken_relative_answers_now_but_absolute_works() {
        let now: DateTime<Utc> = "2026-11-26T10:00:00Z".parse().unwrap();
        let (t, exp) = grant("PT600S", now, true).unwrap();
        assert_eq!(t, now);
        assert!(exp > now);
        let (t, _) = grant("2026-11-26T10:10:00Z", now, true).unwrap();
        assert_eq!(t - now, chrono::Duration::seconds(600));
        assert!(grant("2026-11-26T09:00:00Z", now, false).is_err());
        let (t, _) = grant("PT99999S", now, false).unwrap();
        assert_eq!(t - now, chrono::Duration::seconds(MAX_LIFETIME_SECS));
    }
}
