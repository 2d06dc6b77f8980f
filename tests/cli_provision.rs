//! `camfleet provision` as a user runs it: the binary against a data
//! directory whose devices are simulated cameras in this test.

mod common;

use camfleet::fleet::audit::Actor;
use camfleet::fleet::provision::{ProfileSpec, ServersSpec};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_from_the_command_line_dry_run_then_apply() {
    let f = fleet(2, "").await;
    let dir = common::scratch("cli-prov");
    let cfg = camfleet::app::AppConfig {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let state = camfleet::app::build(&cfg).await.unwrap();
    let site = state
        .sites
        .create("North", "", &Actor::system())
        .await
        .unwrap();
    for i in 0..2 {
        adopt_device(&state, &f, i, (i == 0).then_some(site.id)).await;
    }
    let spec = ProfileSpec {
        ntp: Some(ServersSpec {
            servers: vec!["ntp.north.example".into()],
            ..Default::default()
        }),
        hostname: Some("north-{id}".into()),
        ..Default::default()
    };
    state
        .provisioner
        .save_profile(None, "North", None, &spec, &Actor::system())
        .await
        .unwrap();
    drop(state);
    let d2 = dir.clone();
    let run = move |extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_camfleet"));
        c.args([
            "provision",
            "--profile",
            "North",
            "--where",
            "site=North",
            "--data-dir",
        ])
        .arg(&d2)
        .args(extra);
        c
    };
    let run2 = run.clone();
    let dry = tokio::task::spawn_blocking(move || run(&["--dry-run"]).output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        text.contains("ntp.north.example") && text.contains("change"),
        "{text}"
    );
    assert!(text.contains("1 devices, 2 settings to change"), "{text}");
    assert_eq!(
        f.cameras()[0].state.lock().unwrap().ntp_servers,
        ["pool.ntp.example"],
        "dry run changed nothing"
    );
    let real = tokio::task::spawn_blocking(move || run2(&[]).output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&real.stdout);
    assert!(
        real.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(text.contains("changed"), "{text}");
    assert_eq!(
        f.cameras()[0].state.lock().unwrap().ntp_servers,
        ["ntp.north.example"]
    );
    // Only the North camera.
    assert_eq!(
        f.cameras()[1].state.lock().unwrap().ntp_servers,
        ["pool.ntp.example"]
    );
    let bad = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_camfleet"))
                .args(["provision", "--profile", "South", "--data-dir"])
                .arg(&dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no profile \"South\""));
    let _ = std::fs::remove_dir_all(&dir);
    f.shutdown().await;
}
