//! Accounts: creation rules, login, throttling and lockout with an injected
//! clock (nothing sleeps), all audited.

mod common;

use std::time::Duration;

use camfleet::clock::SharedClock;
use camfleet::db::entities::audit_log;
use camfleet::error::ErrorKind;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::throttle::{ACCOUNT_FREE, ADDRESS_FREE, BASE_BLOCK_SECS, MAX_BLOCK_SECS};
use camfleet::fleet::users::{LoginError, Role, Users};
use common::*;
use sea_orm::EntityTrait;

async fn users() -> (Users, std::sync::Arc<camfleet::clock::ManualClock>) {
    let clock = manual_clock();
    let shared: SharedClock = clock.clone();
    (Users::new(test_db().await, shared), clock)
}

#[tokio::test]
async fn user_names_and_passwords_are_validated_and_unique() {
    let (u, _) = users().await;
    let admin = Actor::operator("root");
    assert_eq!(
        u.create("a b", "long enough pw", Role::Viewer, &admin)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        u.create("ann", "short", Role::Viewer, &admin)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    let ann = u
        .create("ann", "long enough pw", Role::Technician, &admin)
        .await
        .unwrap();
    assert_eq!(ann.role, "technician");
    assert!(ann.password_hash.starts_with("$argon2id$"));
    assert_eq!(
        u.create("ann", "another long pw", Role::Viewer, &admin)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
}

const REMOTE: Option<&str> = Some("192.0.2.7");

#[tokio::test]
async fn login_succeeds_and_failures_back_off_until_even_the_right_password_waits() {
    let (u, clock) = users().await;
    u.create("bob", "correct horse", Role::Viewer, &Actor::system())
        .await
        .unwrap();
    assert!(
        u.authenticate("bob", "correct horse", REMOTE)
            .await
            .unwrap()
            .is_ok()
    );
    for i in 1..ACCOUNT_FREE {
        assert_eq!(
            u.authenticate("bob", "wrong", REMOTE)
                .await
                .unwrap()
                .unwrap_err(),
            LoginError::BadCredentials,
            "try {i}"
        );
    }
    // The last free try is checked (and wrong), and blocks what follows…
    assert_eq!(
        u.authenticate("bob", "wrong", REMOTE).await.unwrap(),
        Err(LoginError::BadCredentials)
    );
    // …even the right password, without checking it.
    assert!(matches!(
        u.authenticate("bob", "correct horse", REMOTE)
            .await
            .unwrap(),
        Err(LoginError::Throttled { .. })
    ));
    // After the block, one more wrong try doubles it.
    clock.advance(Duration::from_secs(BASE_BLOCK_SECS as u64 + 1));
    assert_eq!(
        u.authenticate("bob", "wrong", REMOTE).await.unwrap(),
        Err(LoginError::BadCredentials)
    );
    clock.advance(Duration::from_secs(BASE_BLOCK_SECS as u64 + 1));
    assert!(matches!(
        u.authenticate("bob", "correct horse", REMOTE)
            .await
            .unwrap(),
        Err(LoginError::Throttled { .. })
    ));
    clock.advance(Duration::from_secs(BASE_BLOCK_SECS as u64));
    // Once the block has passed, the right password works and clears it.
    assert!(
        u.authenticate("bob", "correct horse", REMOTE)
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        u.authenticate("bob", "wrong", REMOTE).await.unwrap(),
        Err(LoginError::BadCredentials)
    );
}

#[tokio::test]
async fn thirty_parallel_guesses_check_at_most_the_free_allowance_and_the_right_password_then_waits()
 {
    let (u, _) = users().await;
    u.create("carol", "correct horse", Role::Viewer, &Actor::system())
        .await
        .unwrap();
    let u = std::sync::Arc::new(u);
    let guesses = (0..30).map(|i| {
        let u = u.clone();
        tokio::spawn(async move {
            u.authenticate("carol", &format!("guess-{i}"), REMOTE)
                .await
                .unwrap()
        })
    });
    let results = futures::future::join_all(guesses).await;
    let checked = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Err(LoginError::BadCredentials)))
        .count();
    let throttled = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Err(LoginError::Throttled { .. })))
        .count();
    assert!(
        checked <= ACCOUNT_FREE as usize,
        "{checked} passwords checked"
    );
    assert_eq!(checked + throttled, 30);
    // The right password, right after, is refused too.
    assert!(matches!(
        u.authenticate("carol", "correct horse", REMOTE)
            .await
            .unwrap(),
        Err(LoginError::Throttled { .. })
    ));
    let log = audit_log::Entity::find().all(u.db()).await.unwrap();
    assert!(
        log.iter()
            .filter(|e| e.action == "login.failed")
            .all(|e| e.ip.as_deref() == Some("192.0.2.7"))
    );
}

#[tokio::test]
async fn a_remote_attacker_cannot_lock_the_admin_out_of_a_local_login() {
    let (u, _) = users().await;
    u.create("admin", "correct horse", Role::Admin, &Actor::system())
        .await
        .unwrap();
    for _ in 0..(ACCOUNT_FREE * 3) {
        let _ = u.authenticate("admin", "guess", REMOTE).await.unwrap();
    }
    assert!(matches!(
        u.authenticate("admin", "correct horse", REMOTE)
            .await
            .unwrap(),
        Err(LoginError::Throttled { .. })
    ));
    assert!(
        u.authenticate("admin", "correct horse", Some("127.0.0.1"))
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_slowed_down_too() {
    let (u, clock) = users().await;
    u.create("dave", "correct horse", Role::Viewer, &Actor::system())
        .await
        .unwrap();
    // A different account each time: no account counter fills up…
    for i in 0..ADDRESS_FREE {
        let _ = u
            .authenticate(&format!("user{i}"), "guess", REMOTE)
            .await
            .unwrap();
    }
    // …but the address is blocked, for every account.
    assert!(matches!(
        u.authenticate("dave", "correct horse", REMOTE)
            .await
            .unwrap(),
        Err(LoginError::Throttled { .. })
    ));
    // Another address is not.
    assert!(
        u.authenticate("dave", "correct horse", Some("198.51.100.9"))
            .await
            .unwrap()
            .is_ok()
    );
    clock.advance(Duration::from_secs(MAX_BLOCK_SECS as u64 + 1));
    assert!(
        u.authenticate("dave", "correct horse", REMOTE)
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn a_disabled_account_is_refused_like_a_wrong_password_and_the_audit_keeps_why() {
    // What the caller sees is the same for all (the web shows one message);
    // the login audit keeps the reason.
    let (u, _) = users().await;
    let e = u
        .create("erin", "correct horse", Role::Viewer, &Actor::system())
        .await
        .unwrap();
    u.update(
        e.id,
        camfleet::fleet::users::Access {
            role: Role::Viewer,
            disabled: true,
            all_sites: false,
            sites: vec![],
        },
        &Actor::system(),
    )
    .await
    .unwrap();
    assert_eq!(
        u.authenticate("erin", "correct horse", REMOTE)
            .await
            .unwrap(),
        Err(LoginError::Disabled)
    );
    let reasons: Vec<String> = audit_log::Entity::find()
        .all(u.db())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .filter_map(|e| e.after.and_then(|a| a["reason"].as_str().map(String::from)))
        .collect();
    assert_eq!(reasons, vec!["disabled"]);
}

#[tokio::test]
async fn unknown_user_looks_like_a_wrong_password_and_is_audited() {
    let (u, _) = users().await;
    assert_eq!(
        u.authenticate("nobody", "whatever1", Some("192.0.2.9"))
            .await
            .unwrap()
            .unwrap_err(),
        LoginError::BadCredentials
    );
    let log = audit_log::Entity::find().all(u.db()).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "login.failed");
    assert_eq!(log[0].actor, "nobody");
    assert_eq!(log[0].ip.as_deref(), Some("192.0.2.9"));
}
