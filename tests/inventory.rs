//! The device inventory on a real (in-memory SQLite) database: adoptions are
//! stored with sealed credentials, and a camera that moves address is
//! recognised by endpoint UUID, then MAC, then serial — never duplicated.

mod common;

use std::sync::Arc;

use camfleet::db::{
    entities::audit_log, entities::credential, entities::device, entities::device_profile,
};
use camfleet::fleet::audit::Actor;
use camfleet::fleet::inventory::{Change, Inventory, strip_userinfo};
use camfleet::onvif::{self, Credentials};
use camfleet::secrets::SecretBox;
use camfleet::sim::{Fleet, FleetConfig};
use common::*;
use migration::{Migrator, MigratorTrait};
use sea_orm::{EntityTrait, PaginatorTrait};

fn creds() -> Credentials {
    Credentials {
        username: "admin".into(),
        password: "s3cr3t-pw".into(),
    }
}

async fn sim(seed: u64) -> Fleet {
    let mut cfg = FleetConfig::new(2, 0);
    cfg.seed = seed;
    cfg.password = "s3cr3t-pw".into();
    fleet_with(cfg).await
}

async fn inventory() -> Inventory {
    let db = test_db().await;
    Inventory::new(
        db,
        Arc::new(SecretBox::from_key(1, &[9u8; 32])),
        system_clock(),
    )
}

async fn adopt(f: &Fleet, i: usize) -> onvif::AdoptedDevice {
    onvif::adopt(
        &transport(),
        &system_clock(),
        request(f.device_url(i), Some(creds())),
    )
    .await
    .unwrap()
}

fn endpoint(f: &Fleet, i: usize) -> String {
    f.cameras()[i].state.lock().unwrap().endpoint.clone()
}

#[tokio::test]
async fn migrations_go_down_and_up_again() {
    let db = test_db().await;
    Migrator::down(&db, None).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(device::Entity::find().count(&db).await.unwrap(), 0);
}

#[tokio::test]
async fn adoption_is_stored_with_profiles_and_a_sealed_credential() {
    let f = sim(11).await;
    let inv = inventory().await;
    let a = adopt(&f, 0).await;
    let (d, change) = inv
        .record_adoption(
            &a,
            Some(&endpoint(&f, 0)),
            &[f.device_url(0)],
            Some(&creds()),
            None,
            &Actor::operator("tech"),
        )
        .await
        .unwrap();
    assert_eq!(change, Change::Created);
    assert_eq!(d.serial.as_deref(), Some(a.info.serial_number.as_str()));
    assert_eq!(d.mac, a.mac);
    assert_eq!(d.auth_mode.as_deref(), Some("ws_security"));
    let profiles = device_profile::Entity::find().all(inv.db()).await.unwrap();
    assert_eq!(profiles.len(), 2);
    // The password is not in the database in clear, and it opens again.
    let c = credential::Entity::find()
        .one(inv.db())
        .await
        .unwrap()
        .unwrap();
    assert!(!c.sealed.windows(9).any(|w| w == b"s3cr3t-pw"));
    assert_eq!(
        inv.credentials_of(&d).await.unwrap().unwrap().password,
        "s3cr3t-pw"
    );
    let audit = audit_log::Entity::find().all(inv.db()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "device.adopt");
    assert_eq!(audit[0].actor, "tech");
    assert!(audit[0].before.is_none() && audit[0].after.is_some());
    f.shutdown().await;
}

#[tokio::test]
async fn camera_on_a_new_address_is_matched_by_endpoint_uuid() {
    let inv = inventory().await;
    let first = sim(21).await;
    let a = adopt(&first, 0).await;
    let ep = endpoint(&first, 0);
    inv.record_adoption(&a, Some(&ep), &[], Some(&creds()), None, &Actor::system())
        .await
        .unwrap();
    first.shutdown().await;
    // Same cameras (same seed → same identities) come back on new ports.
    let again = sim(21).await;
    assert_eq!(endpoint(&again, 0), ep);
    let b = adopt(&again, 0).await;
    let (d, change) = inv
        .record_adoption(&b, Some(&ep), &[], Some(&creds()), None, &Actor::system())
        .await
        .unwrap();
    assert_eq!(
        change,
        Change::Moved {
            from: a.device_url.clone()
        }
    );
    assert_eq!(d.device_url, b.device_url);
    assert_eq!(device::Entity::find().count(inv.db()).await.unwrap(), 1);
    // The replaced credential does not linger.
    assert_eq!(credential::Entity::find().count(inv.db()).await.unwrap(), 1);
    again.shutdown().await;
}

#[tokio::test]
async fn without_endpoint_uuid_mac_then_serial_identify_the_camera() {
    let inv = inventory().await;
    let f = sim(31).await;
    let a = adopt(&f, 0).await;
    // Found by a sweep's HTTP fallback: no EndpointReference known.
    inv.record_adoption(&a, None, &[], None, None, &Actor::system())
        .await
        .unwrap();
    let (_, change) = inv
        .record_adoption(&a, None, &[], None, None, &Actor::system())
        .await
        .unwrap();
    assert_eq!(change, Change::Refreshed, "matched by MAC");
    let mut no_mac = a.clone();
    no_mac.mac = None;
    no_mac.device_url = "http://127.0.0.1:1/onvif/device_service".into();
    let (_, change) = inv
        .record_adoption(&no_mac, None, &[], None, None, &Actor::system())
        .await
        .unwrap();
    assert!(matches!(change, Change::Moved { .. }), "matched by serial");
    assert_eq!(device::Entity::find().count(inv.db()).await.unwrap(), 1);
    // A different camera is a different device.
    let other = adopt(&f, 1).await;
    let (_, change) = inv
        .record_adoption(&other, None, &[], None, None, &Actor::system())
        .await
        .unwrap();
    assert_eq!(change, Change::Created);
    assert_eq!(device::Entity::find().count(inv.db()).await.unwrap(), 2);
    f.shutdown().await;
}

#[test]
fn credentials_in_uris_are_stripped() {
    assert_eq!(
        strip_userinfo("rtsp://admin:pw@10.0.0.1:554/s"),
        "rtsp://10.0.0.1:554/s"
    );
    assert_eq!(strip_userinfo("rtsp://10.0.0.1/s"), "rtsp://10.0.0.1/s");
}
