//! Accounts: creation rules, login, throttling and lockout with an injected
//! clock (nothing sleeps), all audited.

mod common;

use std::time::Duration;

use camfleet::clock::SharedClock;
use camfleet::db::entities::audit_log;
use camfleet::error::ErrorKind;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::users::{LOCKOUT_SECS, LoginError, MAX_FAILED_LOGINS, Role, Users};
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
    let admin = Actor::user("root");
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

#[tokio::test]
async fn login_succeeds_and_failures_lock_the_account_for_a_while() {
    let (u, clock) = users().await;
    u.create("bob", "correct horse", Role::Viewer, &Actor::system())
        .await
        .unwrap();
    assert!(
        u.authenticate("bob", "correct horse", None)
            .await
            .unwrap()
            .is_ok()
    );
    for i in 1..MAX_FAILED_LOGINS {
        assert_eq!(
            u.authenticate("bob", "wrong", None)
                .await
                .unwrap()
                .unwrap_err(),
            LoginError::BadCredentials,
            "try {i}"
        );
    }
    assert!(matches!(
        u.authenticate("bob", "wrong", None).await.unwrap(),
        Err(LoginError::Locked { .. })
    ));
    // Locked: even the right password is refused…
    assert!(matches!(
        u.authenticate("bob", "correct horse", None).await.unwrap(),
        Err(LoginError::Locked { .. })
    ));
    // …until the lockout has passed.
    clock.advance(Duration::from_secs(LOCKOUT_SECS as u64 + 1));
    assert!(
        u.authenticate("bob", "correct horse", None)
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_user_looks_like_a_wrong_password_and_is_audited() {
    let (u, _) = users().await;
    assert_eq!(
        u.authenticate("nobody", "whatever1", Some("127.0.0.9"))
            .await
            .unwrap()
            .unwrap_err(),
        LoginError::BadCredentials
    );
    let log = audit_log::Entity::find().all(u.db()).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "login.failed");
    assert_eq!(log[0].actor, "nobody");
    assert_eq!(log[0].ip.as_deref(), Some("127.0.0.9"));
}
