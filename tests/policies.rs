//! Per-device policies: what a camera needed (its auth mode, its quirks)
//! is learned by a poll, kept on the device row, used by the next session
//! from its first request, shown on the device page and reset there.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use camfleet::app::AppState;
use camfleet::clock::SharedClock;
use camfleet::db::entities::{audit_log, device};
use camfleet::fleet::audit::Actor;
use camfleet::fleet::console::devices::DeviceAction;
use camfleet::fleet::discovery::{DiscoveryConfig, DiscoveryService};
use camfleet::fleet::poller::{Poller, PollerConfig};
use camfleet::onvif::Quirk;
use camfleet::secrets::SecretBox;
use common::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

#[tokio::test]
async fn learned_auth_mode_and_quirks_are_kept_reused_and_reset() {
    // A camera that answers in SOAP 1.1 and refuses anonymous requests
    // with a German fault: the ladder finds WS-Security.
    let f = one_camera("soap11,refuse-german").await;
    let db = test_db().await;
    let clock: SharedClock = system_clock();
    let secrets = Arc::new(SecretBox::from_key(1, &[3u8; 32]));
    let discovery = DiscoveryService::new(DiscoveryConfig::loopback(), transport(), clock.clone());
    let s = Arc::new(AppState::new(
        db.clone(),
        secrets.clone(),
        clock.clone(),
        discovery,
        false,
    ));
    let a = camfleet::onvif::adopt(
        &transport(),
        &clock,
        request(f.device_url(0), Some(admin())),
    )
    .await
    .unwrap();
    let (d, _) = s
        .inventory
        .record_adoption(
            &a,
            Some("urn:uuid:policy-test"),
            &[],
            Some(&admin()),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    // As a device adopted by an older release: nothing learned stored.
    let mut am = d.into_active_model();
    am.auth_mode = Set(None);
    am.quirks = Set(serde_json::json!([{"quirk": "clock_skew", "offset_ms": 9000}]));
    let d = am.update(&db).await.unwrap();

    // Every poll reads the identity (an authenticated call) too.
    let poller = Poller::new(
        db.clone(),
        secrets,
        transport(),
        clock.clone(),
        PollerConfig {
            info_interval: std::time::Duration::ZERO,
            ..PollerConfig::default()
        },
    );
    let poll = || async {
        let before = f.cameras()[0].requests.load(Ordering::Relaxed);
        let r = poller
            .poll_devices(device::Entity::find().all(&db).await.unwrap())
            .await
            .unwrap();
        assert_eq!(r.answered, 1);
        f.cameras()[0].requests.load(Ordering::Relaxed) - before
    };
    let first = poll().await;
    let row = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.auth_mode.as_deref(), Some("ws_security"));
    let kept: Vec<Quirk> = serde_json::from_value(row.quirks.clone()).unwrap();
    assert_eq!(
        kept,
        vec![Quirk::Soap11Answers],
        "skew is not kept: {kept:?}"
    );
    // The next poll starts from the stored mode: no anonymous attempt and
    // no ladder, so fewer requests than the first.
    let second = poll().await;
    assert!(second < first, "first {first}, second {second}");

    // Shown on the device page in words, and reset from there.
    let view = s
        .console
        .device_view(&Actor::system(), d.id, Default::default())
        .await
        .unwrap();
    assert!(
        view.quirks.iter().any(|q| q.contains("SOAP 1.1")),
        "{:?}",
        view.quirks
    );
    let out = s
        .console
        .device_act(
            &s.device_ops(),
            &Actor::operator("tech"),
            d.id,
            DeviceAction::ResetPolicies,
        )
        .await
        .unwrap();
    assert!(out.ok, "{out:?}");
    let row = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.auth_mode, row.quirks), (None, serde_json::json!([])));
    let audit = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("device.policies_reset"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    // Detected afresh on the next poll.
    poll().await;
    let row = device::Entity::find_by_id(d.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.auth_mode.as_deref(), Some("ws_security"));
    f.shutdown().await;
}
