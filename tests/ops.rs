//! Operating an installation from the command line, as the operator's
//! guide says: `config check` / `config example`, `mib`, `migrate`,
//! `serve --no-migrate`, and a backup restored into a fresh data
//! directory that still opens the camera passwords.

mod common;

use std::process::Command;

use common::*;

fn camfleet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_camfleet"))
        .args(args)
        // The host's own settings must not leak into the test.
        .env_remove("CAMFLEET_CONFIG")
        .env_remove("CAMFLEET_DATA_DIR")
        .env_remove("CAMFLEET_DATABASE_URL")
        .env_remove("CAMFLEET_SECRET_KEY")
        .output()
        .unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    common::scratch(&format!("ops-{name}"))
}

#[test]
fn config_check_prints_effective_settings_redacted_and_names_a_bad_key_with_its_line() {
    let d = tmp("check");
    let file = d.join("camfleet.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9090\"\ndatabase_url = \"postgres://cf:hunter2@db/cf\"\n\
         trusted_proxies = [\"127.0.0.1\"]\n[discovery]\ninterfaces = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let out = camfleet(&["config", "check", "--config", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("listen = \"127.0.0.1:9090\""), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password is redacted: {text}"
    );
    assert!(text.contains("interfaces = [\"127.0.0.1\"]"), "{text}");

    // A flag beats the file.
    let out = camfleet(&[
        "config",
        "check",
        "--config",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:9191",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9191"));

    // A misspelt key: non-zero, the key and its line named.
    std::fs::write(&file, "listen = \"127.0.0.1:9090\"\npoll_intervall = 30\n").unwrap();
    let out = camfleet(&["config", "check", "--config", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("poll_intervall") && err.contains("line 2"),
        "{err}"
    );

    // An interface this host does not have: the error lists those it has.
    std::fs::write(&file, "[discovery]\ninterfaces = [\"192.0.2.77\"]\n").unwrap();
    let out = camfleet(&["config", "check", "--config", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("192.0.2.77") && err.contains("127.0.0.1"),
        "{err}"
    );

    // The example file is itself a valid configuration.
    let ex = camfleet(&["config", "example"]);
    std::fs::write(&file, &ex.stdout).unwrap();
    let out = camfleet(&["config", "check", "--config", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mib_is_printed_under_an_operators_enterprise_number() {
    let out = camfleet(&["mib"]);
    let mib = String::from_utf8_lossy(&out.stdout);
    assert!(mib.contains("::= { enterprises 32473 }"));
    assert!(mib.contains("SnmpAdminString"));
    let out = camfleet(&["mib", "--enterprise", "55555"]);
    let mib = String::from_utf8_lossy(&out.stdout);
    assert!(mib.contains("::= { enterprises 55555 }") && !mib.contains("32473 }"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restored_into_a_fresh_directory_keeps_devices_and_camera_passwords() {
    let f = fleet(2, "").await;
    let old = tmp("old");
    let cfg = camfleet::app::AppConfig {
        data_dir: old.clone(),
        ..Default::default()
    };
    let state = camfleet::app::build(&cfg).await.unwrap();
    for i in 0..2 {
        adopt_device(&state, &f, i, None).await;
    }
    // Backup by the command line, while the app is open (online backup).
    let to = tmp("to");
    let out = camfleet(&[
        "backup",
        "--to",
        to.to_str().unwrap(),
        "--data-dir",
        old.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = std::fs::read_dir(&to)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest = std::fs::read_to_string(made.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"devices\": 2"), "{manifest}");

    // Restore into a fresh directory; a second restore there is refused.
    let new = tmp("new").join("data");
    let restore = |force: bool| {
        let mut args = vec![
            "restore",
            "--from",
            made.to_str().unwrap(),
            "--data-dir",
            new.to_str().unwrap(),
        ];
        if force {
            args.push("--force");
        }
        camfleet(&args)
    };
    let out = restore(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!restore(false).status.success(), "no silent overwrite");

    // A damaged backup is refused.
    let bad = tmp("bad");
    for e in std::fs::read_dir(&made).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), bad.join(e.file_name())).unwrap();
    }
    std::fs::write(bad.join("secret.key"), "not the key").unwrap();
    assert!(camfleet::fleet::backup::verify(&bad).is_err());

    // The restored installation sees the same devices and opens their
    // camera passwords with the restored key.
    let restored = camfleet::app::build(&camfleet::app::AppConfig {
        data_dir: new.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    use sea_orm::EntityTrait;
    let devices = camfleet::db::entities::device::Entity::find()
        .all(&restored.db)
        .await
        .unwrap();
    assert_eq!(devices.len(), 2);
    for d in &devices {
        let c = restored.inventory.credentials_of(d).await.unwrap().unwrap();
        assert_eq!(c.password, admin().password);
    }
}

#[test]
fn serve_without_migrate_refuses_an_old_schema_and_migrate_fixes_it() {
    let d = tmp("migrate");
    let dd = d.to_str().unwrap();
    let out = camfleet(&[
        "serve",
        "--no-migrate",
        "--data-dir",
        dd,
        "--listen",
        "127.0.0.1:0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("camfleet migrate"), "{err}");
    let out = camfleet(&["migrate", "--data-dir", dd]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migration(s) applied"));
    let out = camfleet(&["migrate", "--data-dir", dd]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 0 migration(s)"));
}

/// A self-signed certificate for 127.0.0.1 named `cn`, by the openssl CLI.
fn self_signed(dir: &std::path::Path, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{cn}.crt"));
    let key = dir.join(format!("{cn}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The subject of the certificate a TLS server at `addr` presents now.
fn served_subject(addr: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_sets_secure_cookies_and_hsts_and_reloads_the_certificate_on_sighup() {
    use std::io::BufRead;
    let d = tmp("tls");
    let (c1, k1) = self_signed(&d, "camfleet-test-1");
    let (c2, k2) = self_signed(&d, "camfleet-test-2");
    let (cert, key) = (d.join("live.crt"), d.join("live.key"));
    std::fs::copy(&c1, &cert).unwrap();
    std::fs::copy(&k1, &key).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_camfleet"))
        .args([
            "serve",
            "--no-poll",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(d.join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("CAMFLEET_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("camfleet listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let addr = url.trim_start_matches("https://").to_string();

    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let r = http.get(format!("{url}/login")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(served_subject(&addr).contains("camfleet-test-1"));

    // A renewed certificate, then SIGHUP: new connections get it.
    std::fs::copy(&c2, &cert).unwrap();
    std::fs::copy(&k2, &key).unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
    let mut subject = String::new();
    for _ in 0..100 {
        subject = served_subject(&addr);
        if subject.contains("camfleet-test-2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(subject.contains("camfleet-test-2"), "{subject}");

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
    let r = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(served_subject(&addr).contains("camfleet-test-2"));

    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(
        child.wait().unwrap().success(),
        "serve stops cleanly on SIGTERM"
    );
}

#[test]
fn user_and_token_commands_generate_passwords_that_must_change_and_tokens_that_work_once_shown() {
    let d = tmp("accounts");
    let dir = d.to_str().unwrap();
    let out = camfleet(&[
        "user",
        "add",
        "ana",
        "--role",
        "technician",
        "--all-sites",
        "--data-dir",
        dir,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("to be changed at first login"), "{text}");
    // A user with no sites is told it sees nothing yet.
    let out = camfleet(&["user", "add", "vic", "--data-dir", dir]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sees no devices"));
    // An unknown site is an error naming it.
    let out = camfleet(&["user", "add", "sam", "--site", "Nowhere", "--data-dir", dir]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nowhere"));
    // A token, printed once, on stdout alone (for scripts).
    let out = camfleet(&["token", "create", "ana", "--name", "ci", "--data-dir", dir]);
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success() && token.starts_with("cf_"), "{token}");
    // passwd with a file: set, not forced to change; generated: forced.
    let pw = d.join("pw");
    std::fs::write(&pw, "a-fine-password-1\n").unwrap();
    let out = camfleet(&[
        "user",
        "passwd",
        "ana",
        "--password-file",
        pw.to_str().unwrap(),
        "--data-dir",
        dir,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.contains("shown once"),
        "{text}"
    );
    let out = camfleet(&["user", "passwd", "nobody", "--data-dir", dir]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_second_server_on_one_sqlite_file_is_refused_with_the_way_to_several_nodes() {
    use std::io::BufRead;
    let d = tmp("lock");
    let data = d.join("data");
    let serve = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_camfleet"));
        c.args([
            "serve",
            "--no-poll",
            "--no-events",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("CAMFLEET_CONFIG")
        .env_remove("CAMFLEET_DATABASE_URL");
        c
    };
    let mut first = serve()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("camfleet listening on"), "{line}");
    // The second refuses at once and says why and what to do instead.
    let second = serve().output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another camfleet server is running on") && err.contains("PostgreSQL"),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // Once the first is gone, a server starts again on the same file.
    let mut again = serve()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(again.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("camfleet listening on"), "{line}");
    again.kill().unwrap();
    again.wait().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}
