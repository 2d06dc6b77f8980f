//! Crash safety of the whole recorder process: `camfleet record` is killed
//! with SIGKILL again and again while it writes one-second segments from a
//! simulated camera's RTSP stream. After the restart's reconciliation every
//! segment in the ledger is in storage with its checksum and is a complete
//! MP4 (ffprobe decodes it when ffprobe is installed), nothing in storage
//! is unknown to the ledger, and the spool holds nothing half-done.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use camfleet::db::entities::recording;
use camfleet::fleet::audit::Actor;
use camfleet::recorder::Recorder;
use camfleet::recorder::mp4::top_boxes;
use common::*;
use rand::RngExt;
use sea_orm::{EntityTrait, PaginatorTrait};

fn ffprobe_errors(bytes: &[u8]) -> Option<String> {
    let path = common::scratch("crash").join("crash.mp4");
    std::fs::write(&path, bytes).unwrap();
    let out = ffprobe_output(
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
        ],
        &path,
    );
    let _ = std::fs::remove_file(&path);
    let out = out?; // no ffprobe here: the box checks stand alone
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_loses_at_most_the_segment_in_progress() {
    let fleet = one_camera("digest").await;
    let dir = common::scratch("crash");
    let cfg = camfleet::app::AppConfig {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let state = camfleet::app::build(&cfg).await.unwrap();
    let a = camfleet::onvif::adopt(
        &transport(),
        &system_clock(),
        request(fleet.device_url(0), Some(admin())),
    )
    .await
    .unwrap();
    let (d, _) = state
        .inventory
        .record_adoption(&a, None, &[], Some(&admin()), None, &Actor::system())
        .await
        .unwrap();
    let count = || async { recording::Entity::find().count(&state.db).await.unwrap() };
    let mut kills = 0;
    for _ in 0..6 {
        let before = count().await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_camfleet"))
            .args(["record", "--segment", "1", "--device"])
            .arg(d.id.to_string())
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("camfleet record");
        // Wait for a segment to be committed, then kill it at a random
        // moment of the next one.
        let t = tokio::time::Instant::now();
        while count().await <= before {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the recorder committed nothing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ms = rand::rng().random_range(0..1200);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert_eq!(kills, 6);

    // The restart: reconcile the spool as `record` and `serve` do.
    let rec = Recorder::new(
        Arc::new(camfleet::fleet::recordings::Ledger::new(state.db.clone())),
        state.storage.clone(),
        system_clock(),
    );
    rec.reconcile(&dir.join("spool"), "hot").await.unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "spool after reconcile: {leftovers:?}");

    let rows = recording::Entity::find().all(&state.db).await.unwrap();
    assert!(rows.len() >= 6, "{} segments", rows.len());
    for r in &rows {
        let bytes = state.storage.get(&r.storage_key).await.unwrap();
        assert_eq!(bytes.len() as i64, r.bytes, "{}", r.storage_key);
        assert_eq!(camfleet::storage::sha256_hex(&bytes), r.checksum);
        let kinds: Vec<[u8; 4]> = top_boxes(&bytes).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [*b"ftyp", *b"moov", *b"free", *b"mdat"],
            "{}",
            r.storage_key
        );
        if let Some(errors) = ffprobe_errors(&bytes) {
            assert!(errors.is_empty(), "{}: {errors}", r.storage_key);
        }
    }
    let orphans = camfleet::fleet::recordings::Ledger::new(state.db.clone())
        .orphans("hot", &state.storage, 10_000)
        .await
        .unwrap();
    assert!(
        orphans.is_empty(),
        "in storage, not in the ledger: {orphans:?}"
    );
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
