//! The adopt sequence against the simulator, one quirk profile at a time,
//! plus the failure modes a fleet manager must report honestly.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use camfleet::clock::SharedClock;
use camfleet::onvif::adopt::{AdoptStep, StepOutcome};
use camfleet::onvif::media::{self, MediaVersion};
use camfleet::onvif::session::DeviceSession;
use camfleet::onvif::{self, AuthMode, Credentials, DevicePolicy, FaultClass, Quirk, device};
use camfleet::sim::{FleetConfig, QuirkPlan, Quirks};
use common::*;

async fn adopt_ok(spec: &str) -> camfleet::onvif::AdoptedDevice {
    let f = one_camera(spec).await;
    let r = onvif::adopt(
        &transport(),
        &system_clock(),
        request(f.device_url(0), Some(admin())),
    )
    .await;
    let d = r.unwrap_or_else(|e| panic!("{spec}: {e}"));
    assert_eq!(d.profiles.len(), 2, "{spec}");
    assert!(
        d.profiles.iter().all(|p| p
            .stream_uri
            .as_deref()
            .is_some_and(|u| u.starts_with("rtsp://127.0.0.1:"))),
        "{spec}: {:?}",
        d.profiles
    );
    assert!(d.mac.is_some(), "{spec}");
    assert!(!d.info.serial_number.is_empty(), "{spec}");
    f.shutdown().await;
    d
}

#[tokio::test]
async fn adopt_plain_wsse_camera_reads_everything() {
    let d = adopt_ok("").await;
    assert_eq!(d.auth_mode, Some(AuthMode::WsSecurity));
    assert_eq!(d.media_version, Some(MediaVersion::V20));
    assert!(
        d.steps.iter().all(|s| matches!(s.outcome, StepOutcome::Ok)),
        "{:?}",
        d.steps
    );
    assert_eq!(d.scopes.name.as_deref(), Some("SimCam-00000"));
    assert_eq!(d.hostname.unwrap().name.as_deref(), Some("simcam-00000"));
    assert!(d.users.unwrap().iter().any(|u| u.username == "admin"));
    assert_eq!(d.encoders.len(), 2);
    assert_eq!(d.profiles[0].encoder.as_ref().unwrap().width, Some(1920));
    assert!(d.quirks.is_empty(), "{:?}", d.quirks);
}

#[tokio::test]
async fn auth_mode_is_detected_for_each_scheme() {
    for (spec, mode) in [
        ("noauth", AuthMode::None),
        ("wsse", AuthMode::WsSecurity),
        ("digest-md5", AuthMode::HttpDigest),
        ("digest-sha256", AuthMode::HttpDigest),
        ("both", AuthMode::Both),
    ] {
        assert_eq!(adopt_ok(spec).await.auth_mode, Some(mode), "{spec}");
    }
}

#[tokio::test]
async fn every_tolerable_quirk_still_adopts() {
    for spec in [
        "skew=3600",
        "skew=-86400",
        "gsdt-auth",
        "gsdt-auth,skew=3600,both",
        "fault200",
        "fault401",
        "fault500",
        "soap11",
        "prefixes",
        "wrong-host",
        "doubled-port",
        "no-utc",
        "no-getservices",
        "media1",
        "bom",
        "slow=30",
        "soap11,prefixes,bom,wrong-host,digest-sha256",
    ] {
        adopt_ok(spec).await;
    }
}

#[tokio::test]
async fn clock_skew_is_measured_and_recorded() {
    let d = adopt_ok("skew=3600").await;
    let off = d.clock_offset_ms.unwrap();
    assert!((3_598_000..=3_601_000).contains(&off), "{off}");
    assert!(
        d.quirks
            .iter()
            .any(|q| matches!(q, Quirk::ClockSkew { .. }))
    );
}

#[tokio::test]
async fn gsdt_needing_auth_with_skew_anchors_on_http_date() {
    let d = adopt_ok("gsdt-auth,skew=3600,both").await;
    assert!(d.quirks.contains(&Quirk::DateTimeNeedsAuth));
    assert!(d.quirks.contains(&Quirk::ClockFromHttpDate));
    assert_eq!(d.auth_mode, Some(AuthMode::Both));
}

#[tokio::test]
async fn wrong_host_addresses_are_rewritten_to_the_reached_host() {
    let d = adopt_ok("wrong-host,doubled-port").await;
    for s in &d.services {
        assert!(s.xaddr.starts_with("http://127.0.0.1:"), "{}", s.xaddr);
    }
    assert!(
        d.quirks
            .iter()
            .any(|q| matches!(q, Quirk::AddressRewritten { field, .. } if field == "service"))
    );
    assert!(
        d.quirks
            .iter()
            .any(|q| matches!(q, Quirk::AddressRewritten { field, .. } if field == "stream_uri"))
    );
}

#[tokio::test]
async fn soap11_and_fault_status_quirks_are_recorded() {
    let d = adopt_ok("soap11").await;
    assert!(d.quirks.contains(&Quirk::Soap11Answers));
    let d = adopt_ok("fault200,no-getservices").await;
    assert!(d.quirks.contains(&Quirk::FaultStatus { status: 200 }));
    assert!(d.quirks.contains(&Quirk::NoGetServices));
}

#[tokio::test]
async fn wrong_password_fails_at_identity_without_retry_loop() {
    for spec in ["wsse", "digest-md5", "both", "fault200"] {
        let f = one_camera(spec).await;
        let bad = Credentials {
            username: "admin".into(),
            password: "nope".into(),
        };
        let e = onvif::adopt(
            &transport(),
            &system_clock(),
            request(f.device_url(0), Some(bad)),
        )
        .await
        .expect_err(spec);
        assert_eq!(e.step, AdoptStep::Identity, "{spec}");
        assert_eq!(e.error.class, FaultClass::Unauthorized, "{spec}");
        // GetSystemDateAndTime, the anonymous probe, each of the three
        // modes once (a Digest mode may take one more request to fetch its
        // challenge), one clock re-read and one retry: a bounded ladder,
        // never a loop that locks accounts.
        let n = f.cameras()[0].requests.load(Ordering::Relaxed);
        assert!(n <= 9, "{spec}: {n} requests");
        for mode in [
            "anonymous: ",
            "ws_security: ",
            "http_digest: ",
            "ws_security+http_digest: ",
        ] {
            assert!(
                e.error.message.contains(mode),
                "{spec}: {}",
                e.error.message
            );
        }
        f.shutdown().await;
    }
}

#[tokio::test]
async fn hanging_camera_costs_one_timeout_and_names_the_step() {
    let f = one_camera("hang").await;
    let e = onvif::adopt(
        &transport_with_timeout(300),
        &system_clock(),
        request(f.device_url(0), Some(admin())),
    )
    .await
    .unwrap_err();
    assert_eq!(e.step, AdoptStep::Connect);
    assert_eq!(e.error.class, FaultClass::Timeout);
    f.shutdown().await;
}

#[tokio::test]
async fn garbage_answers_are_malformed_not_a_crash() {
    let f = one_camera("garbage").await;
    let e = onvif::adopt(
        &transport(),
        &system_clock(),
        request(f.device_url(0), Some(admin())),
    )
    .await
    .unwrap_err();
    assert_eq!(e.error.class, FaultClass::Malformed);
    assert!(
        e.steps
            .iter()
            .any(|s| s.step == AdoptStep::Clock && matches!(s.outcome, StepOutcome::Failed { .. }))
    );
    f.shutdown().await;
}

#[tokio::test]
async fn oversized_and_endless_bodies_are_cut_off_at_the_cap() {
    for spec in ["huge", "endless"] {
        let f = one_camera(spec).await;
        let e = onvif::adopt(
            &transport(),
            &system_clock(),
            request(f.device_url(0), Some(admin())),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error.class, FaultClass::Malformed, "{spec}: {e}");
        assert!(e.error.message.contains("larger than"), "{spec}: {e}");
        f.shutdown().await;
    }
}

#[tokio::test]
async fn unreachable_first_xaddr_falls_back_to_the_next() {
    let f = one_camera("").await;
    let req = camfleet::onvif::AdoptRequest {
        xaddrs: vec![
            "urn:uuid:not-a-url".into(),
            "http://127.0.0.1:1/onvif/device_service".into(),
            f.device_url(0),
        ],
        credentials: Some(admin()),
        policy: DevicePolicy::default(),
    };
    let d = onvif::adopt(&transport(), &system_clock(), req)
        .await
        .unwrap();
    assert!(
        d.quirks
            .iter()
            .any(|q| matches!(q, Quirk::XAddrFallback { .. }))
    );
    f.shutdown().await;
}

/// Client and camera each on their own manual clock: nothing here sleeps.
fn manual_pair(
    spec: &str,
) -> (
    FleetConfig,
    std::sync::Arc<camfleet::clock::ManualClock>,
    std::sync::Arc<camfleet::clock::ManualClock>,
) {
    let cam_clock = manual_clock();
    let client_clock = manual_clock();
    let mut q = Quirks::default();
    q.apply(spec).unwrap();
    let mut cfg = FleetConfig::new(1, 0);
    cfg.plan = QuirkPlan::Uniform(q);
    cfg.clock = cam_clock.clone();
    (cfg, cam_clock, client_clock)
}

#[tokio::test]
async fn clock_jump_is_reported_on_resync() {
    let (cfg, cam_clock, client_clock) = manual_pair("");
    let f = fleet_with(cfg).await;
    let clock: SharedClock = client_clock.clone();
    let s = DeviceSession::new(
        transport(),
        clock,
        f.device_url(0).parse().unwrap(),
        Some(admin()),
        DevicePolicy::default(),
    );
    s.sync_clock().await.unwrap();
    assert!(s.take_clock_jumps().is_empty());
    client_clock.advance(Duration::from_secs(60));
    cam_clock.advance(Duration::from_secs(60));
    s.sync_clock().await.unwrap();
    assert!(
        s.take_clock_jumps().is_empty(),
        "both clocks moved together"
    );
    // The camera reboots into 1970-ish time, or NTP steps it by an hour.
    cam_clock.set_wall(cam_clock_now(&cam_clock) + chrono::Duration::hours(1));
    s.sync_clock().await.unwrap();
    let jumps = s.take_clock_jumps();
    assert_eq!(jumps.len(), 1);
    assert!((jumps[0].jump_ms - 3_600_000).abs() < 2_000, "{:?}", jumps);
    f.shutdown().await;
}

fn cam_clock_now(c: &camfleet::clock::ManualClock) -> chrono::DateTime<chrono::Utc> {
    use camfleet::clock::Clock;
    c.now_utc()
}

#[tokio::test]
async fn wsse_refusal_resyncs_clock_once_and_retries() {
    let (cfg, cam_clock, client_clock) = manual_pair("wsse");
    let f = fleet_with(cfg).await;
    let clock: SharedClock = client_clock.clone();
    let s = DeviceSession::new(
        transport(),
        clock,
        f.device_url(0).parse().unwrap(),
        Some(admin()),
        DevicePolicy::default(),
    );
    s.sync_clock().await.unwrap();
    device::get_device_information(&s).await.unwrap();
    // The camera's clock steps 2 h ahead: our Created is now outside its window.
    cam_clock.set_wall(cam_clock_now(&cam_clock) + chrono::Duration::hours(2));
    let before = f.cameras()[0].requests.load(Ordering::Relaxed);
    let info = device::get_device_information(&s).await.unwrap();
    assert!(!info.model.is_empty());
    // refused call, GetSystemDateAndTime, retried call
    assert_eq!(f.cameras()[0].requests.load(Ordering::Relaxed) - before, 3);
    assert_eq!(s.take_clock_jumps().len(), 1);
    f.shutdown().await;
}

#[tokio::test]
async fn stale_digest_nonce_is_renewed_not_reported_as_wrong_password() {
    let (cfg, cam_clock, client_clock) = manual_pair("digest-md5");
    let f = fleet_with(cfg).await;
    let clock: SharedClock = client_clock.clone();
    let s = DeviceSession::new(
        transport(),
        clock,
        f.device_url(0).parse().unwrap(),
        Some(admin()),
        DevicePolicy::default(),
    );
    device::get_device_information(&s).await.unwrap();
    cam_clock.advance(Duration::from_secs(600)); // nonce TTL is 300 s
    client_clock.advance(Duration::from_secs(600));
    device::get_hostname(&s).await.unwrap();
    f.shutdown().await;
}

#[tokio::test]
async fn snapshot_is_fetched_with_digest_and_checked_to_be_an_image() {
    let f = one_camera("digest-md5").await;
    let d = onvif::adopt(
        &transport(),
        &system_clock(),
        request(f.device_url(0), Some(admin())),
    )
    .await
    .unwrap();
    let s = DeviceSession::new(
        transport(),
        system_clock(),
        f.device_url(0).parse().unwrap(),
        Some(admin()),
        DevicePolicy::default(),
    );
    let uri = d.profiles[0]
        .snapshot_uri
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let snap = media::fetch_snapshot(&s, &uri, None).await.unwrap();
    assert_eq!(snap.content_type, "image/bmp");
    assert!(snap.bytes.len() > 1000);
    f.shutdown().await;
}

#[tokio::test]
async fn mixed_fleet_adopts_completely_with_bounded_concurrency() {
    let mut cfg = FleetConfig::new(40, 0);
    cfg.plan = QuirkPlan::Mixed { seed: 42 };
    let f = fleet_with(cfg).await;
    let reqs = (0..40)
        .map(|i| request(f.device_url(i), Some(admin())))
        .collect();
    let results = onvif::adopt::adopt_many(&transport(), &system_clock(), reqs, 8, |_, _| {}).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    f.shutdown().await;
}

#[tokio::test]
async fn adopt_costs_a_known_number_of_requests() {
    // The figure BENCHMARKS.md divides by: GetSystemDateAndTime, the
    // anonymous detection probe, GetDeviceInformation, GetServices, six
    // device reads, GetProfiles, 2 × (GetStreamUri + GetSnapshotUri),
    // GetVideoEncoderConfigurations.
    let f = one_camera("wsse").await;
    onvif::adopt(
        &transport(),
        &system_clock(),
        request(f.device_url(0), Some(admin())),
    )
    .await
    .unwrap();
    assert_eq!(f.cameras()[0].requests.load(Ordering::Relaxed), 16);
    f.shutdown().await;
}

#[tokio::test]
async fn password_text_is_sent_only_when_the_policy_enables_it() {
    let f = one_camera("wsse").await;
    let url: url::Url = f.device_url(0).parse().unwrap();
    // Default: digest, so the password never crosses the wire.
    let s = DeviceSession::new(
        transport(),
        system_clock(),
        url.clone(),
        Some(admin()),
        DevicePolicy::default(),
    );
    s.sync_clock().await.unwrap();
    device::get_device_information(&s).await.unwrap();
    // Enabled for a device that only understands PasswordText.
    let policy = DevicePolicy {
        allow_password_text: true,
        auth_mode: Some(AuthMode::WsSecurity),
        ..DevicePolicy::default()
    };
    let s = DeviceSession::new(transport(), system_clock(), url, Some(admin()), policy);
    assert!(
        !device::get_device_information(&s)
            .await
            .unwrap()
            .model
            .is_empty()
    );
    f.shutdown().await;
}

/// Cameras that refuse an unauthenticated request in ways no word list
/// recognises: each still adopts, by climbing the ladder to WS-Security.
#[tokio::test]
async fn every_way_of_refusing_anonymous_requests_still_adopts() {
    for spec in [
        "refuse-sender500",
        "refuse-receiver400",
        "refuse-html403",
        "refuse-german",
        "refuse-empty500",
        "refuse-german,fault200",
    ] {
        let d = adopt_ok(spec).await;
        assert_eq!(d.auth_mode, Some(AuthMode::WsSecurity), "{spec}");
    }
}

/// The same cameras with a wrong password: the report is `unauthorized`
/// (never invalid_argument) and names every mode's answer.
#[tokio::test]
async fn a_refused_ladder_names_each_modes_answer() {
    for (spec, words) in [
        ("refuse-sender500", "WS-Security header required"),
        ("refuse-receiver400", "Action failed"),
        ("refuse-html403", "HTTP 403"),
        ("refuse-german", "Zugriff verweigert"),
        ("refuse-empty500", "HTTP 500"),
    ] {
        let f = one_camera(spec).await;
        let bad = Credentials {
            username: "admin".into(),
            password: "nope".into(),
        };
        let e = onvif::adopt(
            &transport(),
            &system_clock(),
            request(f.device_url(0), Some(bad)),
        )
        .await
        .expect_err(spec);
        assert_eq!(e.step, AdoptStep::Identity, "{spec}");
        assert_eq!(
            e.error.class,
            FaultClass::Unauthorized,
            "{spec}: {}",
            e.error
        );
        let m = &e.error.message;
        assert!(
            m.starts_with("no authentication mode was accepted: anonymous: "),
            "{spec}: {m}"
        );
        assert!(m.contains("; ws_security: "), "{spec}: {m}");
        assert!(m.contains("; http_digest: "), "{spec}: {m}");
        assert!(m.contains("; ws_security+http_digest: "), "{spec}: {m}");
        assert!(m.contains(words), "{spec}: {m}");
        f.shutdown().await;
    }
}
