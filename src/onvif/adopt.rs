//! Adopt: from discovery XAddrs plus credentials to a full device record, each
//! step named so a failure says where. Required steps (connect, identity,
//! services, profiles) stop the adoption; optional ones (users, NTP, …) are
//! recorded as failed or skipped and the adoption goes on.
//!
//! Requests to one device are sent one at a time: cheap cameras and NVRs
//! fall over when hit in parallel.

use serde::Serialize;
use url::Url;

use super::address;
use super::device;
use super::error::OnvifError;
use super::fault::FaultClass;
use super::media::{self, MediaVersion};
use super::ops::Service;
use super::session::{Credentials, DevicePolicy, DeviceSession};
use super::transport::Transport;
use super::types::*;
use crate::clock::SharedClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptStep {
    Connect,
    Clock,
    Identity,
    Services,
    Scopes,
    Hostname,
    Network,
    Ntp,
    Dns,
    Users,
    Profiles,
    StreamUris,
    SnapshotUris,
    Encoders,
}

impl AdoptStep {
    pub fn as_str(self) -> &'static str {
        match self {
            AdoptStep::Connect => "connect",
            AdoptStep::Clock => "clock",
            AdoptStep::Identity => "identity",
            AdoptStep::Services => "services",
            AdoptStep::Scopes => "scopes",
            AdoptStep::Hostname => "hostname",
            AdoptStep::Network => "network",
            AdoptStep::Ntp => "ntp",
            AdoptStep::Dns => "dns",
            AdoptStep::Users => "users",
            AdoptStep::Profiles => "profiles",
            AdoptStep::StreamUris => "stream_uris",
            AdoptStep::SnapshotUris => "snapshot_uris",
            AdoptStep::Encoders => "encoders",
        }
    }
}

impl std::fmt::Display for AdoptStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    Ok,
    /// The device does not offer this; nothing is wrong.
    Skipped {
        reason: String,
    },
    Failed {
        error: OnvifError,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: AdoptStep,
    #[serde(flatten)]
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone)]
pub struct AdoptRequest {
    /// Candidate device-service URLs, tried in order.
    pub xaddrs: Vec<String>,
    pub credentials: Option<Credentials>,
    pub policy: DevicePolicy,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdoptedDevice {
    pub device_url: String,
    pub info: DeviceInformation,
    pub services: Vec<ServiceInfo>,
    pub scopes: Scopes,
    pub hostname: Option<Hostname>,
    pub interfaces: Vec<NetworkInterface>,
    pub mac: Option<String>,
    pub ntp: Option<NtpInfo>,
    pub dns: Option<DnsInfo>,
    pub users: Option<Vec<User>>,
    pub media_version: Option<MediaVersion>,
    pub profiles: Vec<MediaProfile>,
    pub encoders: Vec<VideoEncoder>,
    pub auth_mode: Option<AuthMode>,
    pub clock_offset_ms: Option<i64>,
    pub camera_time: Option<CameraTime>,
    pub quirks: Vec<Quirk>,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("adopt failed at step {step}: {error}")]
pub struct AdoptError {
    pub step: AdoptStep,
    pub error: OnvifError,
    pub steps: Vec<StepReport>,
}

struct Steps(Vec<StepReport>);

impl Steps {
    fn ok(&mut self, step: AdoptStep) {
        self.0.push(StepReport {
            step,
            outcome: StepOutcome::Ok,
        });
    }
    /// Record an optional step's failure; "not supported" is a skip.
    fn optional<T>(&mut self, step: AdoptStep, r: Result<T, OnvifError>) -> Option<T> {
        match r {
            Ok(v) => {
                self.ok(step);
                Some(v)
            }
            Err(e) if matches!(e.class, FaultClass::NotSupported) => {
                self.0.push(StepReport {
                    step,
                    outcome: StepOutcome::Skipped { reason: e.message },
                });
                None
            }
            Err(error) => {
                self.0.push(StepReport {
                    step,
                    outcome: StepOutcome::Failed { error },
                });
                None
            }
        }
    }
    fn fail(mut self, step: AdoptStep, error: OnvifError) -> AdoptError {
        self.0.push(StepReport {
            step,
            outcome: StepOutcome::Failed {
                error: error.clone(),
            },
        });
        AdoptError {
            step,
            error,
            steps: self.0,
        }
    }
}

fn unreachable(e: &OnvifError) -> bool {
    matches!(e.class, FaultClass::Transport | FaultClass::Timeout)
}

/// Run the full adopt sequence against one device.
pub async fn adopt(
    transport: &Transport,
    clock: &SharedClock,
    req: AdoptRequest,
) -> Result<AdoptedDevice, AdoptError> {
    let mut steps = Steps(Vec::new());

    // connect + clock: the first XAddr that answers at all wins.
    let mut last_err = OnvifError::new(FaultClass::Transport, "connect", "no usable XAddr");
    let mut chosen: Option<(DeviceSession, Result<CameraTime, OnvifError>)> = None;
    for (i, x) in req.xaddrs.iter().enumerate() {
        let Some(url) = address::repair(x) else {
            last_err = OnvifError::new(
                FaultClass::Malformed,
                "connect",
                format!("not a URL: {x:?}"),
            );
            continue;
        };
        if url.host_str() == Some("0.0.0.0") {
            continue;
        }
        let s = DeviceSession::new(
            transport.clone(),
            clock.clone(),
            url.clone(),
            req.credentials.clone(),
            req.policy.clone(),
        );
        match s.sync_clock().await {
            Err(e) if unreachable(&e) => last_err = e,
            r => {
                if i > 0 {
                    s.note_quirk(Quirk::XAddrFallback {
                        used: url.to_string(),
                    });
                }
                chosen = Some((s, r));
                break;
            }
        }
    }
    let Some((s, clock_result)) = chosen else {
        return Err(steps.fail(AdoptStep::Connect, last_err));
    };
    steps.ok(AdoptStep::Connect);
    let camera_time = steps.optional(AdoptStep::Clock, clock_result);

    let info = match device::get_device_information(&s).await {
        Ok(i) => i,
        Err(e) => return Err(steps.fail(AdoptStep::Identity, e)),
    };
    steps.ok(AdoptStep::Identity);

    let services = match discover_services(&s).await {
        Ok(v) => v,
        Err(e) => return Err(steps.fail(AdoptStep::Services, e)),
    };
    steps.ok(AdoptStep::Services);

    let scopes = steps
        .optional(AdoptStep::Scopes, device::get_scopes(&s).await)
        .unwrap_or_default();
    let hostname = steps.optional(AdoptStep::Hostname, device::get_hostname(&s).await);
    let interfaces = steps
        .optional(AdoptStep::Network, device::get_network_interfaces(&s).await)
        .unwrap_or_default();
    let ntp = steps.optional(AdoptStep::Ntp, device::get_ntp(&s).await);
    let dns = steps.optional(AdoptStep::Dns, device::get_dns(&s).await);
    let users = steps.optional(AdoptStep::Users, device::get_users(&s).await);

    let mut media_version = if s.endpoint(Service::Media2).is_some() {
        MediaVersion::V20
    } else {
        MediaVersion::V10
    };
    let first = media::get_profiles(&s, media_version).await;
    let result = match first {
        // Media2 advertised but broken: fall back to ver10.
        Err(e)
            if media_version == MediaVersion::V20
                && !unreachable(&e)
                && e.class != FaultClass::Unauthorized =>
        {
            media_version = MediaVersion::V10;
            media::get_profiles(&s, media_version).await
        }
        r => r,
    };
    let mut profiles = match result {
        Ok(p) => p,
        Err(e) => return Err(steps.fail(AdoptStep::Profiles, e)),
    };
    steps.ok(AdoptStep::Profiles);

    let reached = s.device_url().clone();
    let mut stream_err = None;
    let mut snap_err = None;
    for p in &mut profiles {
        match media::get_stream_uri(&s, media_version, &p.token).await {
            Ok(u) => p.stream_uri = Some(rewrite_noted(&s, &reached, "stream_uri", &u)),
            Err(e) => stream_err = Some(e),
        }
        match media::get_snapshot_uri(&s, media_version, &p.token).await {
            Ok(u) => p.snapshot_uri = Some(rewrite_noted(&s, &reached, "snapshot_uri", &u)),
            Err(e) => snap_err = Some(e),
        }
    }
    steps.optional(AdoptStep::StreamUris, stream_err.map_or(Ok(()), Err));
    steps.optional(AdoptStep::SnapshotUris, snap_err.map_or(Ok(()), Err));
    let encoders = steps
        .optional(
            AdoptStep::Encoders,
            media::get_video_encoder_configurations(&s, media_version).await,
        )
        .unwrap_or_default();

    let mac = interfaces
        .iter()
        .find(|i| i.enabled && i.mac.is_some())
        .and_then(|i| i.mac.clone())
        .or_else(|| scopes.mac.as_deref().and_then(device::normalise_mac));

    Ok(AdoptedDevice {
        device_url: reached.to_string(),
        info,
        services,
        scopes,
        hostname,
        interfaces,
        mac,
        ntp,
        dns,
        users,
        media_version: Some(media_version),
        profiles,
        encoders,
        auth_mode: s.auth_mode(),
        clock_offset_ms: s.clock_offset_ms(),
        camera_time,
        quirks: s.quirks(),
        steps: steps.0,
    })
}

/// GetServices (with capabilities), completed from GetCapabilities when the
/// device lacks it or leaves out media or events (some firmware lists the
/// event service only there). Service addresses are rewritten to the
/// reached host and registered with the session.
pub async fn discover_services(s: &DeviceSession) -> Result<Vec<ServiceInfo>, OnvifError> {
    let mut services = match device::get_services(s).await {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => Vec::new(),
        Err(e) if unreachable(&e) || e.class == FaultClass::Unauthorized => return Err(e),
        Err(_) => Vec::new(),
    };
    let has_media = services
        .iter()
        .any(|x| matches!(x.service, Some(Service::Media | Service::Media2)));
    let has_events = services.iter().any(|x| x.service == Some(Service::Events));
    if services.is_empty() || !has_media || !has_events {
        if services.is_empty() {
            s.note_quirk(Quirk::NoGetServices);
        }
        match device::get_capabilities(s).await {
            Ok(caps) => {
                for c in caps {
                    if !services.iter().any(|x| x.service == c.service) {
                        services.push(c);
                    }
                }
            }
            Err(e) if services.is_empty() => return Err(e),
            Err(_) => {}
        }
    }
    let reached = s.device_url().clone();
    for svc in &mut services {
        svc.xaddr = rewrite_noted(s, &reached, "service", &svc.xaddr);
        if let (Some(kind), Ok(url)) = (svc.service, Url::parse(&svc.xaddr))
            && kind != Service::Device
        {
            s.set_endpoint(kind, url);
        }
    }
    Ok(services)
}

fn rewrite_noted(s: &DeviceSession, reached: &Url, field: &str, reported: &str) -> String {
    match address::rewrite(reported, reached) {
        Some(r) => {
            if r.changed {
                s.note_quirk(Quirk::AddressRewritten {
                    field: field.to_string(),
                    reported: reported.to_string(),
                });
            }
            r.url.to_string()
        }
        None => reported.to_string(),
    }
}

/// Adoptions started at once before the first one completes.
const SLOW_START: usize = 1;

/// Adopt many devices with at most `concurrency` in flight; `on_done` sees
/// each result as it completes (index into `requests`). One slow or hung
/// device holds one slot for at most its timeouts, never the whole run.
///
/// The window opens like TCP slow start: [`SLOW_START`] adoptions first, two
/// more for each one that completes, up to `concurrency`. With all slots
/// opened at once every adoption advances in lockstep and none finishes
/// early; this way the first device is ready in a few milliseconds and a
/// freshly reached network is not hit with `concurrency` connections at once.
pub async fn adopt_many(
    transport: &Transport,
    clock: &SharedClock,
    requests: Vec<AdoptRequest>,
    concurrency: usize,
    mut on_done: impl FnMut(usize, &Result<AdoptedDevice, AdoptError>),
) -> Vec<Result<AdoptedDevice, AdoptError>> {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;
    let n = requests.len();
    let cap = concurrency.max(1);
    let mut window = SLOW_START.min(cap);
    let mut results: Vec<Option<Result<AdoptedDevice, AdoptError>>> =
        (0..n).map(|_| None).collect();
    let mut pending = requests.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < window {
            let Some((i, r)) = pending.next() else { break };
            running.push(async move { (i, adopt(transport, clock, r).await) });
        }
        let Some((i, r)) = running.next().await else {
            break;
        };
        on_done(i, &r);
        results[i] = Some(r);
        window = (window + 2).min(cap);
    }
    results.into_iter().flatten().collect()
}
