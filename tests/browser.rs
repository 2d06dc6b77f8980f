//! The browser test: real headless Chromium (Debian `chromium` +
//! `chromedriver`), driven over WebDriver (fantoccini), against the real
//! server on loopback and a simulated fleet. A technician logs in, runs a
//! multicast discovery (the page follows it live over SSE and reloads when
//! it ends), adopts the cameras, and opens a device page.
//!
//! Ignored by default (it needs Chromium); the interop suite runs it
//! inside a loopback-only network namespace:
//! `cargo test --test browser -- --ignored`.

mod common;

use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use camfleet::app::AppState;
use camfleet::fleet::audit::Actor;
use camfleet::fleet::discovery::{DiscoveryConfig, DiscoveryService};
use camfleet::fleet::users::Role;
use camfleet::secrets::SecretBox;
use camfleet::web;
use common::*;
use fantoccini::{ClientBuilder, Locator};

/// Generous bound for one UI step; waiting polls the page, it never
/// sleeps a fixed time.
const STEP: Duration = Duration::from_secs(30);

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group:
        // end them all, even when the test failed half-way.
        let pgid = self.0.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_count(c: &fantoccini::Client, css: &str, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let found = c
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        if found >= n || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver; run by tests/interop/run.sh"]
async fn technician_discovers_adopts_and_opens_a_device_in_chromium() {
    // The fleet answers WS-Discovery on a private port, loopback only.
    let wsd_port = free_udp_port();
    let mut cfg = camfleet::sim::FleetConfig::new(3, 0);
    cfg.wsd = Some(camfleet::sim::WsdConfig {
        port: wsd_port,
        max_delay: Duration::from_millis(100),
        ..Default::default()
    });
    let fleet = fleet_with(cfg).await;

    let db = test_db().await;
    let clock = system_clock();
    let discovery = DiscoveryService::new(
        DiscoveryConfig {
            port: wsd_port,
            window: Duration::from_millis(1500),
            ..DiscoveryConfig::loopback()
        },
        transport(),
        clock.clone(),
    );
    let state = Arc::new(AppState::new(
        db,
        Arc::new(SecretBox::from_key(1, &[5u8; 32])),
        clock,
        discovery,
        false,
    ));
    state
        .users
        .create_with(
            "tech",
            "correct-horse",
            Role::Technician,
            camfleet::fleet::users::NewUser {
                all_sites: true,
                ..Default::default()
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, web::router(state)).await.unwrap();
    });

    let port = free_tcp_port();
    let _driver = Driver(
        std::process::Command::new(
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium-driver)"),
    );
    let profile = std::env::temp_dir().join(format!("camfleet-chromium-{port}"));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver takes a moment to listen: retry the session, bounded.
    let deadline = tokio::time::Instant::now() + STEP;
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("chromedriver: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };

    // Log in.
    c.goto(&format!("{base}/discovery")).await.unwrap();
    let form = c.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("username", "tech").await.unwrap();
    form.set_by_name("password", "correct-horse").await.unwrap();
    form.submit().await.unwrap();
    c.wait()
        .at_most(STEP)
        .for_element(Locator::Css("select[name=kind]"))
        .await
        .unwrap_or_else(|e| panic!("the discovery page after login: {e}"));
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/discovery")
    );

    // Run a multicast discovery; the run page follows it and reloads.
    c.find(Locator::Css("form[action='/discovery'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let found = wait_for_count(&c, "input[name=result]", 3).await;
    assert_eq!(found, 3, "{}", c.source().await.unwrap_or_default());

    // Adopt all three with the common credentials.
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::XPath("//button[text()='Adopt selected']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let adopted = wait_for_count(&c, "td.outcome a", 3).await;
    assert_eq!(adopted, 3, "{}", c.source().await.unwrap_or_default());

    // Open a device page.
    c.find(Locator::Css("td.outcome a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = c
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(h1.contains("SimCam"), "{h1}");
    let page = c.source().await.unwrap();
    assert!(page.contains("Device service") && page.contains("/snapshot"));
    assert!(!page.contains("admin:admin@"), "no credentials in the page");

    c.close().await.unwrap();
    server.abort();
    let _ = std::fs::remove_dir_all(profile);
    fleet.shutdown().await;
}
