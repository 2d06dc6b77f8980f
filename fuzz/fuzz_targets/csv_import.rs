//! A CSV file uploaded for import: the dry run reads every row against a
//! small inventory (in-memory SQLite). Must report, never panic.
#![no_main]
use std::sync::Arc;

use camfleet::fleet::access::Scope;
use camfleet::fleet::inventory::Inventory;
use libfuzzer_sys::fuzz_target;

struct Rig {
    rt: tokio::runtime::Runtime,
    inv: Inventory,
}

fn rig() -> &'static Rig {
    static RIG: std::sync::OnceLock<Rig> = std::sync::OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let db = rt.block_on(camfleet::db::memory()).expect("database");
        let clock: camfleet::clock::SharedClock = Arc::new(camfleet::clock::SystemClock::new());
        let secrets = Arc::new(camfleet::secrets::SecretBox::from_key(1, &[5u8; 32]));
        let inv = Inventory::new(db, secrets, clock);
        Rig { rt, inv }
    })
}

fuzz_target!(|data: &[u8]| {
    let r = rig();
    let _ = r.rt.block_on(r.inv.import_dry_run(data, &Scope::All));
});
