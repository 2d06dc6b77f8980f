//! Helpers shared by the integration tests: a simulated fleet on ephemeral
//! loopback ports, a transport with short deadlines, credentials.
#![allow(dead_code)]

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use camfleet::clock::{ManualClock, SharedClock, SystemClock};
use camfleet::onvif::{AdoptRequest, Credentials, DevicePolicy, Transport, TransportConfig};
use camfleet::sim::{Fleet, FleetConfig, QuirkPlan, Quirks};

/// A fresh directory for one test's files, under
/// `$TMPDIR/camfleet-tests/<pid>/`. It stays after the test, passed or
/// failed, for a look; the first call in the next test binary removes the
/// directories of runs whose process has ended, so runs never pile up in
/// the temporary directory. Without `/proc` nothing is swept (a live run's
/// files must never go).
pub fn scratch(label: &str) -> std::path::PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let root = std::env::temp_dir().join("camfleet-tests");
    SWEPT.call_once(|| sweep_ended_runs(&root));
    let dir = root
        .join(std::process::id().to_string())
        .join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn sweep_ended_runs(root: &std::path::Path) {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(runs) = std::fs::read_dir(root) else {
        return;
    };
    for run in runs.flatten() {
        let ended = run
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|pid| !proc.join(pid.to_string()).exists());
        if ended {
            let _ = std::fs::remove_dir_all(run.path());
        }
    }
}

pub fn admin() -> Credentials {
    Credentials {
        username: "admin".into(),
        password: "admin".into(),
    }
}

pub fn transport_with_timeout(ms: u64) -> Transport {
    Transport::new(TransportConfig {
        timeout: Duration::from_millis(ms),
        ..TransportConfig::default()
    })
    .expect("transport")
}

pub fn transport() -> Transport {
    transport_with_timeout(3000)
}

pub fn system_clock() -> SharedClock {
    SystemClock::shared()
}

pub fn manual_clock() -> Arc<ManualClock> {
    ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .into(),
    )
}

/// One simulated camera with these quirks (names as in `Quirks::apply`).
pub async fn one_camera(spec: &str) -> Fleet {
    fleet(1, spec).await
}

pub async fn fleet(n: u32, spec: &str) -> Fleet {
    let mut q = Quirks::default();
    q.apply(spec).expect("quirk spec");
    let mut cfg = FleetConfig::new(n, 0);
    cfg.plan = QuirkPlan::Uniform(q);
    Fleet::start(cfg).await.expect("fleet")
}

pub async fn fleet_with(cfg: FleetConfig) -> Fleet {
    Fleet::start(cfg).await.expect("fleet")
}

pub fn request(url: String, creds: Option<Credentials>) -> AdoptRequest {
    AdoptRequest {
        xaddrs: vec![url],
        credentials: creds,
        policy: DevicePolicy::default(),
    }
}

/// A UDP port nobody else in this process is using (for WS-Discovery tests
/// that must not hear each other).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A fresh, migrated database: in-memory SQLite, or — when the interop suite
/// sets `CAMFLEET_TEST_PG` to an admin URL — a new PostgreSQL database per
/// call, so the same tests prove both backends.
pub async fn test_db() -> sea_orm::DatabaseConnection {
    use sea_orm::ConnectionTrait;
    let Ok(admin_url) = std::env::var("CAMFLEET_TEST_PG") else {
        return camfleet::db::memory().await.expect("sqlite");
    };
    let name = format!("camfleet_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url.as_str())
        .await
        .expect("postgres admin");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    camfleet::db::connect(&format!("{base}/{name}"))
        .await
        .expect("postgres")
}

/// A fresh database with no migrations applied (SQLite file, or a new
/// PostgreSQL database under `CAMFLEET_TEST_PG`): for upgrade tests.
pub async fn raw_test_db() -> sea_orm::DatabaseConnection {
    use sea_orm::ConnectionTrait;
    let Ok(admin_url) = std::env::var("CAMFLEET_TEST_PG") else {
        let dir = scratch("raw");
        return sea_orm::Database::connect(camfleet::db::sqlite_url(&dir).as_str())
            .await
            .expect("sqlite");
    };
    let name = format!("camfleet_raw_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url.as_str())
        .await
        .expect("postgres admin");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    sea_orm::Database::connect(format!("{base}/{name}").as_str())
        .await
        .expect("postgres")
}

/// Adopt simulated camera `i` of `f` (admin/admin) straight into the
/// inventory, into `site`, as an adoption from discovery would.
pub async fn adopt_device(
    state: &camfleet::app::AppState,
    f: &Fleet,
    i: usize,
    site: Option<i32>,
) -> camfleet::db::entities::device::Model {
    let a = camfleet::onvif::adopt(
        &transport(),
        &system_clock(),
        request(f.device_url(i), Some(admin())),
    )
    .await
    .unwrap();
    state
        .inventory
        .record_adoption(
            &a,
            None,
            &[],
            Some(&admin()),
            site,
            &camfleet::fleet::audit::Actor::system(),
        )
        .await
        .unwrap()
        .0
}

/// A device row in a site (no camera behind it: its address refuses).
pub async fn seed_device(state: &camfleet::app::AppState, site: i32, n: u32) -> i32 {
    seed_named_device(state, Some(site), n, &format!("cam-{n}")).await
}

/// A device row with a given name (no camera behind it).
pub async fn seed_named_device(
    state: &camfleet::app::AppState,
    site: Option<i32>,
    n: u32,
    name: &str,
) -> i32 {
    use camfleet::db::entities::device;
    use sea_orm::{ActiveModelTrait, Set};
    let now = chrono::Utc::now();
    device::ActiveModel {
        serial: Set(Some(format!("SER-{n}"))),
        mac: Set(Some(format!(
            "02:00:00:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        ))),
        manufacturer: Set("Sim".into()),
        model: Set("M1".into()),
        firmware: Set("1.0".into()),
        hardware_id: Set(String::new()),
        hostname: Set(String::new()),
        name: Set(name.to_string()),
        device_url: Set("http://127.0.0.1:9/onvif/device_service".into()),
        xaddrs: Set(serde_json::json!([])),
        status: Set("online".into()),
        quirks: Set(serde_json::json!([])),
        policy: Set(serde_json::json!({})),
        site_id: Set(site),
        location: Set(String::new()),
        purchase_order: Set(String::new()),
        supplier: Set(String::new()),
        asset_tag: Set(String::new()),
        notes: Set(String::new()),
        adopted_at: Set(now),
        updated_at: Set(now),
        search_text: Set(name.to_lowercase()),
        state_reason: Set(String::new()),
        poll_failures: Set(0),
        poll_successes: Set(0),
        events_status: Set(String::new()),
        config_drift: Set(String::new()),
        recording_status: Set(String::new()),
        record_transport: Set("tcp".into()),
        ..Default::default()
    }
    .insert(state.users.db())
    .await
    .unwrap()
    .id
}

/// `ffprobe` with these arguments, or None where it is not installed.
/// Under CI (`CI=true`) a missing ffprobe fails the test instead: `.ci/run`
/// installs ffmpeg before `cargo test`, so a skip there would hide a check.
#[allow(dead_code)]
pub fn ffprobe_output(args: &[&str], path: &std::path::Path) -> Option<std::process::Output> {
    match std::process::Command::new("ffprobe")
        .args(args)
        .arg(path)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ffprobe is required under CI: {e}"
            );
            None
        }
    }
}

/// Put a device in a health state with a reason, as the poller would
/// (for pages that show the state).
pub async fn set_device_state(
    db: &sea_orm::DatabaseConnection,
    id: i32,
    status: &str,
    reason: &str,
) {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let d = camfleet::db::entities::device::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .expect("the device");
    let mut am: camfleet::db::entities::device::ActiveModel = d.into();
    am.status = Set(status.into());
    am.state_reason = Set(reason.into());
    am.update(db).await.unwrap();
}
