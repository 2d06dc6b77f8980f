//! Interop with a device we did not write: the oxvif crate's stateful mock
//! (WS-Security PasswordDigest enforced, faults as HTTP 200, dispatch on the
//! SOAP 1.2 `action` parameter). Every read operation it offers is exercised.

mod common;

use camfleet::onvif::media::{self, MediaVersion};
use camfleet::onvif::session::DeviceSession;
use camfleet::onvif::{self, AuthMode, Credentials, DevicePolicy, FaultClass, device};
use common::*;
use oxvif::mock::{DeviceState, MockServer};

async fn mock(enforce_auth: bool) -> MockServer {
    let mut info = DeviceState::default().info;
    info.serial_number = "SN00007".into();
    info.firmware_version = "1.0.0".into();
    let st = DeviceState {
        hostname: "cam-0007".into(),
        info,
        ..DeviceState::default()
    };
    MockServer::builder()
        .initial_state(st)
        .enforce_auth(enforce_auth)
        .start()
        .await
        .expect("oxvif mock")
}

fn session(m: &MockServer, creds: Option<Credentials>) -> DeviceSession {
    DeviceSession::new(
        transport(),
        system_clock(),
        m.device_url().parse().unwrap(),
        creds,
        DevicePolicy::default(),
    )
}

#[tokio::test]
async fn adopt_oxvif_mock_end_to_end() {
    let m = mock(true).await;
    let d = onvif::adopt(
        &transport(),
        &system_clock(),
        request(m.device_url().to_string(), Some(admin())),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(d.auth_mode, Some(AuthMode::WsSecurity));
    assert_eq!(d.info.serial_number, "SN00007");
    assert_eq!(d.info.firmware_version, "1.0.0");
    assert_eq!(
        d.hostname.as_ref().and_then(|h| h.name.as_deref()),
        Some("cam-0007")
    );
    assert!(!d.profiles.is_empty());
    for p in &d.profiles {
        let uri = p.stream_uri.as_deref().expect("stream uri");
        assert!(uri.starts_with("rtsp://127.0.0.1"), "{uri}");
    }
    assert!(d.mac.is_some(), "{:?}", d.interfaces);
    assert!(
        d.users
            .as_ref()
            .is_some_and(|u| u.iter().any(|u| u.username == "admin"))
    );
}

#[tokio::test]
async fn every_read_operation_against_oxvif() {
    let m = mock(true).await;
    let s = session(&m, Some(admin()));
    let t = s.sync_clock().await.expect("GetSystemDateAndTime");
    assert!((t.utc - chrono::Utc::now()).num_seconds().abs() < 120);
    let info = device::get_device_information(&s)
        .await
        .expect("GetDeviceInformation");
    assert!(!info.manufacturer.is_empty());
    let services = device::get_services(&s).await.expect("GetServices");
    assert!(
        services
            .iter()
            .any(|x| x.namespace == camfleet::onvif::ns::TDS)
    );
    let caps = device::get_capabilities(&s).await.expect("GetCapabilities");
    assert!(
        caps.iter()
            .any(|c| c.service == Some(camfleet::onvif::ops::Service::Media)),
        "{caps:?}"
    );
    let scopes = device::get_scopes(&s).await.expect("GetScopes");
    assert!(!scopes.raw.is_empty());
    assert_eq!(
        device::get_hostname(&s)
            .await
            .expect("GetHostname")
            .name
            .as_deref(),
        Some("cam-0007")
    );
    let ifs = device::get_network_interfaces(&s)
        .await
        .expect("GetNetworkInterfaces");
    assert!(ifs.iter().any(|i| i.mac.is_some()));
    device::get_ntp(&s).await.expect("GetNTP");
    device::get_dns(&s).await.expect("GetDNS");
    let users = device::get_users(&s).await.expect("GetUsers");
    assert!(users.iter().any(|u| u.username == "operator"));

    // Media ver10 always; ver20 where the mock advertises it.
    let mut versions = vec![MediaVersion::V10];
    if services
        .iter()
        .any(|x| x.namespace == camfleet::onvif::ns::TR2)
    {
        versions.push(MediaVersion::V20);
    }
    for svc in &services {
        if let (Some(kind), Ok(url)) = (svc.service, svc.xaddr.parse()) {
            s.set_endpoint(kind, url);
        }
    }
    for v in versions {
        let profiles = media::get_profiles(&s, v)
            .await
            .unwrap_or_else(|e| panic!("GetProfiles {v:?}: {e}"));
        assert!(!profiles.is_empty());
        let tok = &profiles[0].token;
        let uri = media::get_stream_uri(&s, v, tok)
            .await
            .unwrap_or_else(|e| panic!("GetStreamUri {v:?}: {e}"));
        assert!(uri.starts_with("rtsp://"), "{uri}");
        let snap = media::get_snapshot_uri(&s, v, tok)
            .await
            .unwrap_or_else(|e| panic!("GetSnapshotUri {v:?}: {e}"));
        assert!(snap.starts_with("http"), "{snap}");
        let enc = media::get_video_encoder_configurations(&s, v)
            .await
            .unwrap_or_else(|e| panic!("GetVideoEncoderConfigurations {v:?}: {e}"));
        assert!(!enc.is_empty());
    }
}

#[tokio::test]
async fn oxvif_snapshot_is_an_image() {
    let m = mock(false).await;
    let s = session(&m, Some(admin()));
    let profiles = media::get_profiles(&s, MediaVersion::V10).await.unwrap();
    let uri = media::get_snapshot_uri(&s, MediaVersion::V10, &profiles[0].token)
        .await
        .unwrap();
    let uri = camfleet::onvif::address::rewrite(&uri, s.device_url())
        .unwrap()
        .url;
    let img = media::fetch_snapshot(&s, &uri, None)
        .await
        .expect("snapshot");
    assert!(img.content_type.starts_with("image/"));
}

#[tokio::test]
async fn oxvif_wrong_password_is_unauthorized_from_a_200_fault() {
    let m = mock(true).await;
    let bad = Credentials {
        username: "admin".into(),
        password: "wrong".into(),
    };
    let s = session(&m, Some(bad));
    s.sync_clock().await.unwrap();
    let e = device::get_device_information(&s).await.unwrap_err();
    assert_eq!(e.class, FaultClass::Unauthorized, "{e}");
    assert_eq!(e.http_status, Some(200));
}

#[tokio::test]
async fn oxvif_injected_faults_are_classified() {
    let m = mock(true).await;
    let s = session(&m, Some(admin()));
    s.sync_clock().await.unwrap();
    device::get_device_information(&s).await.unwrap();
    // An auth fault earns exactly one clock re-read and one retry, so it
    // takes two injected faults to see it reported.
    for (code, times, class) in [
        ("ter:ActionNotSupported", 1, FaultClass::NotSupported),
        ("ter:InvalidArgVal", 1, FaultClass::InvalidArgument),
        ("ter:NotAuthorized", 2, FaultClass::Unauthorized),
    ] {
        for _ in 0..times {
            m.inject_fault("GetHostname", code, "injected");
        }
        let e = device::get_hostname(&s).await.unwrap_err();
        assert_eq!(e.class, class, "{code}: {e}");
    }
    // One injected auth fault is absorbed by the resync-and-retry.
    m.inject_fault("GetHostname", "ter:NotAuthorized", "injected");
    assert!(device::get_hostname(&s).await.is_ok());
    // Faults are single-shot: the next call works again.
    assert!(device::get_hostname(&s).await.is_ok());
}

/// Its event service dispatches on the SOAP action (ours must be the
/// standard's port-type actions) and answers every lifetime with
/// TerminationTime = CurrentTime, relative or absolute: the watch switches
/// to absolute times, then renews on its own count instead of in a loop.
#[tokio::test]
async fn event_subscription_against_the_oxvif_mock() {
    use camfleet::fleet::events::{EventConfig, Next, Stepped, Watch};
    use camfleet::onvif::ops::Service;
    use oxvif::mock::AckOnlyOperation;
    let m = MockServer::builder()
        .enforce_auth(true)
        // Renew and Unsubscribe are acknowledged without effect there.
        .with_acknowledgment_only(AckOnlyOperation::EventsRenew)
        .with_acknowledgment_only(AckOnlyOperation::EventsUnsubscribe)
        .start()
        .await
        .expect("oxvif mock");
    let d = onvif::adopt(
        &transport(),
        &system_clock(),
        request(m.device_url().to_string(), Some(admin())),
    )
    .await
    .unwrap();
    let events_url = d
        .services
        .iter()
        .find(|s| s.service == Some(Service::Events))
        .map(|s| s.xaddr.parse::<url::Url>().unwrap())
        .expect("the mock advertises an event service");
    let clock = system_clock();
    let mut w = Watch::new(
        1,
        session(&m, Some(admin())),
        events_url,
        clock.clone(),
        // Pulled back to back (no cadence between pulls): two in a row.
        EventConfig {
            pull_every: std::time::Duration::ZERO,
            ..Default::default()
        },
        std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
    );
    assert_eq!(w.step().await, Stepped::Subscribed);
    assert!(w.broken_relative, "TerminationTime == CurrentTime");
    assert_eq!(w.next(), Next::Renew);
    assert_eq!(w.step().await, Stepped::Renewed);
    // Absolute times are answered the same way: renew on our own count.
    let renew_in = w.renew_at().unwrap() - clock.now_utc();
    assert!(
        renew_in > chrono::Duration::seconds(470),
        "no renew loop: {renew_in}"
    );
    assert!(matches!(w.next(), Next::Pull(_)));
    // It synthesises motion and rule-engine events: read, not watched.
    for _ in 0..2 {
        match w.step().await {
            Stepped::Pulled(msgs) => {
                assert_eq!(msgs.len(), 1, "{msgs:?}");
                assert!(
                    msgs[0].topic.starts_with("VideoSource/MotionAlarm")
                        || msgs[0].topic.starts_with("RuleEngine/"),
                    "{msgs:?}"
                );
                assert_eq!(camfleet::onvif::events::signal(&msgs[0]), None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    w.unsubscribe().await;
    assert!(w.subscription().is_none());
}

/// Writes against a device we did not write: they persist there and are
/// read back. Its SetNTP keeps only DNS names and drops IPv4 servers: the
/// verify step must call that a write that did not stick.
#[tokio::test]
async fn provisioning_writes_against_the_oxvif_mock() {
    use camfleet::fleet::audit::Actor;
    use camfleet::fleet::provision::{ProfileSpec, Provisioner, ServersSpec, UserSpec};
    let m = mock(true).await;
    let db = test_db().await;
    let secrets = std::sync::Arc::new(camfleet::secrets::SecretBox::from_key(1, &[3u8; 32]));
    let clock = system_clock();
    let inv =
        camfleet::fleet::inventory::Inventory::new(db.clone(), secrets.clone(), clock.clone());
    let a = onvif::adopt(
        &transport(),
        &clock,
        request(m.device_url().to_string(), Some(admin())),
    )
    .await
    .unwrap();
    let (d, _) = inv
        .record_adoption(&a, None, &[], Some(&admin()), None, &Actor::system())
        .await
        .unwrap();
    let p = Provisioner::new(db.clone(), secrets, transport(), clock);
    let t = p.targets(&[d.id]).await.unwrap().remove(0);
    let good = ProfileSpec {
        hostname: Some("gate-{id}".into()),
        ntp: Some(ServersSpec {
            servers: vec!["ntp1.example".into()],
            ..Default::default()
        }),
        dns: Some(ServersSpec {
            servers: vec!["192.0.2.53".into()],
            ..Default::default()
        }),
        discoverable: Some(false),
        location_scope: Some("North".into()),
        users: vec![UserSpec {
            username: "operator1".into(),
            level: "Operator".into(),
            password_sealed: p.seal_password("op-secret-1"),
        }],
        ..Default::default()
    };
    let applied = p.apply_one(&t, &good, &|_| {}).await;
    assert_eq!(applied.status, "changed", "{:#?}", applied.results);
    let plan = p.plan(&good, &[d.id]).await.unwrap();
    assert!(
        plan[0]
            .settings
            .iter()
            .all(|s| s.action == camfleet::fleet::provision::Action::Same),
        "{:#?}",
        plan[0].settings
    );
    // An IPv4 NTP server: accepted, dropped, caught.
    let ipv4 = ProfileSpec {
        ntp: Some(ServersSpec {
            servers: vec!["ntp1.example".into(), "192.0.2.10".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let applied = p.apply_one(&t, &ipv4, &|_| {}).await;
    assert_eq!(applied.status, "failed");
    assert!(
        applied.results[0].message.contains("did not stick"),
        "{:#?}",
        applied.results
    );
}

/// Profile G against a server we did not write: its services are found,
/// its recordings listed and searched (FindRecordings → results →
/// EndSearch), and a replay address comes back for one of them.
#[tokio::test]
async fn recording_search_and_replay_uri_against_the_oxvif_mock() {
    use camfleet::onvif::ops::Service;
    use camfleet::onvif::recording as rec;
    let m = mock(true).await;
    let s = session(&m, Some(admin()));
    let services = onvif::adopt::discover_services(&s).await.unwrap();
    for svc in [Service::Recording, Service::Search, Service::Replay] {
        assert!(
            services.iter().any(|x| x.service == Some(svc)),
            "{svc:?} missing from {services:?}"
        );
    }
    let tokens = rec::get_recordings(&s).await.unwrap();
    assert!(!tokens.is_empty());
    let found = rec::find_recordings(&s, 5).await.unwrap();
    assert!(
        found.iter().any(|r| tokens.contains(&r.token)),
        "search found {found:?}, recording service lists {tokens:?}"
    );
    let uri = rec::get_replay_uri(&s, &tokens[0]).await.unwrap();
    assert_eq!(uri.scheme(), "rtsp");
    assert!(uri.path().contains(&tokens[0]), "{uri}");
    // A token that names no recording is a fault, not an address.
    assert!(rec::get_replay_uri(&s, "NoSuchRecording").await.is_err());
}

/// A camera without GetSystemBackup says so in a way camfleet reads as
/// "not offered" (the backup job then keeps only its own snapshot).
#[tokio::test]
async fn a_missing_system_backup_is_not_supported_not_a_failure() {
    let m = mock(true).await;
    let s = session(&m, Some(admin()));
    let e = camfleet::onvif::config::get_system_backup(&s)
        .await
        .unwrap_err();
    assert_eq!(e.class, FaultClass::NotSupported, "{e:?}");
}

/// Nor RestoreSystem, and it does not read MTOM requests at all: it
/// answers every mode with `ter:WellFormed`. That is the request's syntax,
/// not the credentials: reported as such, after one answer per mode at
/// most, never as a refused password.
#[tokio::test]
async fn a_camera_that_cannot_read_the_restore_request_is_not_told_a_password_problem() {
    let m = mock(false).await;
    let s = session(&m, Some(admin()));
    let e = camfleet::onvif::config::restore_system(
        &s,
        vec![camfleet::onvif::config::BackupFile {
            name: "settings.json".into(),
            data: b"{}".to_vec(),
        }],
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class, FaultClass::InvalidArgument, "{e:?}");
    assert!(
        e.fault
            .as_ref()
            .is_some_and(|f| f.subcodes.iter().any(|c| c == "WellFormed")),
        "{e:?}"
    );
}
