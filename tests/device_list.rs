//! The device list's keyset pages: following `next` from the first page
//! visits every device once, in order, whatever the duplicates in the
//! sort column, ascending and descending; and a cursor is checked.

mod common;

use std::sync::Arc;

use camfleet::app::AppState;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::console::device_list::DeviceQuery;
use camfleet::fleet::discovery::{DiscoveryConfig, DiscoveryService};
use camfleet::secrets::SecretBox;
use common::*;

async fn state() -> Arc<AppState> {
    let db = test_db().await;
    let clock = system_clock();
    let discovery = DiscoveryService::new(DiscoveryConfig::loopback(), transport(), clock.clone());
    Arc::new(AppState::new(
        db,
        Arc::new(SecretBox::from_key(1, &[3u8; 32])),
        clock,
        discovery,
        false,
    ))
}

#[tokio::test]
async fn following_next_visits_every_device_once_in_order_both_ways() {
    let s = state().await;
    // 53 devices with only 7 distinct names: ties everywhere.
    for n in 0..53u32 {
        seed_named_device(&s, None, n, &format!("cam-{}", n % 7)).await;
    }
    for desc in [false, true] {
        let mut seen = Vec::new();
        let mut q = DeviceQuery {
            per_page: Some(10),
            desc,
            ..Default::default()
        };
        let mut pages = 0;
        loop {
            let l = s.console.list_devices(&Actor::system(), &q).await.unwrap();
            assert_eq!(l.total, 53);
            seen.extend(l.devices.iter().map(|d| (d.name.clone(), d.id)));
            pages += 1;
            match l.next {
                Some(c) => q.after = c,
                None => break,
            }
            assert!(pages < 20);
        }
        let mut want = seen.clone();
        want.sort_by(|a, b| {
            if desc {
                b.0.cmp(&a.0).then(b.1.cmp(&a.1))
            } else {
                a.0.cmp(&b.0).then(a.1.cmp(&b.1))
            }
        });
        assert_eq!(seen, want, "desc={desc}: in order");
        let mut ids: Vec<i32> = seen.iter().map(|x| x.1).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 53, "desc={desc}: each once");
        assert_eq!(pages, 6);
    }
    // A forged or foreign cursor is a clear error, not a 500.
    let bad = DeviceQuery {
        after: "not-a-cursor".into(),
        ..Default::default()
    };
    let e = s
        .console
        .list_devices(&Actor::system(), &bad)
        .await
        .unwrap_err();
    assert_eq!(e.kind, camfleet::error::ErrorKind::InvalidArgument);
    let nullable = DeviceQuery {
        after: "WyJ4IiwxXQ".into(),
        sort: "last_seen".into(),
        ..Default::default()
    };
    assert!(
        s.console
            .list_devices(&Actor::system(), &nullable)
            .await
            .is_err()
    );
}
