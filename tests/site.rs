//! camfleet on a real link behind nginx, as a site's technician meets it:
//! `tests/interop/site.sh` makes two network namespaces joined by a veth
//! pair (a test subnet that exists only inside them), runs 20 simulated
//! cameras in one and `camfleet serve --config FILE` behind Debian's nginx
//! in the other, then runs this test in the server's namespace. Through
//! nginx (with and without `proxy_set_header Host`) and Caddy, an
//! admin logs in, discovers by multicast on the configured interface, by a
//! CIDR sweep and by the cameras' Hello, adopts them with the form while
//! following the progress over SSE, downloads the inventory and logs out.
//!
//!   sudo tests/interop/site.sh      (ignored in a plain `cargo test`)

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let s = v.to_str().unwrap();
            let (kv, _) = s.split_once(';').unwrap_or((s, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.keep_cookies(&r);
        r
    }

    async fn get_text(&mut self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    /// A form POST as a browser sends it: with the page's Origin.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_from(path, form, &self.base.clone()).await
    }

    async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: &str,
    ) -> reqwest::Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.keep_cookies(&r);
        r
    }

    async fn login(&mut self, password: &str) {
        let page = self.get_text("/login").await;
        let csrf = field(&page, "csrf");
        let r = self
            .post(
                "/login",
                &[
                    ("username", "admin"),
                    ("password", password),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "login through {}", self.base);
        assert!(self.cookies.contains_key("camfleet_session"));
    }

    /// The page's form token.
    async fn csrf(&mut self, path: &str) -> String {
        field(&self.get_text(path).await, "csrf")
    }

    /// Follow a run's SSE stream to its `end` event; the last data.
    async fn follow(&mut self, run: i64) -> Value {
        use futures::StreamExt;
        let r = self.get(&format!("/discovery/{run}/events")).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = r.bytes_stream();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let chunk = tokio::time::timeout_at(deadline, stream.next())
                .await
                .expect("SSE ended within 90 s");
            let Some(chunk) = chunk else { break };
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if let Some(i) = text.find("event: end") {
                let rest = &text[i..];
                if let Some(data) = rest.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).unwrap_or(Value::Null);
                }
            }
        }
        panic!("SSE stream closed without an end event: {text}");
    }

    async fn run_detail(&mut self, run: i64) -> Value {
        let r = self.get(&format!("/api/v1/discovery/{run}")).await;
        assert_eq!(r.status(), 200);
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }

    /// Start a run from the discovery form; its id.
    async fn discover(&mut self, form: &[(&str, &str)]) -> i64 {
        let csrf = self.csrf("/discovery").await;
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(form);
        let r = self.post("/discovery", &f).await;
        assert_eq!(r.status(), 303, "discovery form {form:?}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        loc.rsplit('/').next().unwrap().parse().unwrap()
    }
}

/// `value` of the first `<input name="NAME" value="…">`.
fn field(page: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let i = page.find(&key).unwrap_or_else(|| panic!("no {name} field"));
    let rest = &page[i + key.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} (set by tests/interop/site.sh)"))
}

#[tokio::test]
#[ignore = "needs the two namespaces, the simulator and nginx of tests/interop/site.sh"]
async fn a_technician_behind_nginx_finds_adopts_and_exports_cameras_on_a_real_link() {
    let proxies: Vec<String> = env("CAMFLEET_SITE_PROXIES")
        .split(',')
        .map(str::to_string)
        .collect();
    let password = env("CAMFLEET_SITE_PASSWORD");
    let cameras: usize = env("CAMFLEET_SITE_CAMERAS").parse().unwrap();
    let cidr = env("CAMFLEET_SITE_CIDR");
    let iface = env("CAMFLEET_SITE_IFACE");
    let cam_host = env("CAMFLEET_SITE_CAMERA_HOST");

    // 1. Through nginx with `proxy_set_header Host $host`.
    let mut b = Browser::new(&proxies[0]);
    b.login(&password).await;
    let page = b.get_text("/discovery").await;
    assert!(
        page.contains(&iface),
        "the discovery page names the interface"
    );

    // Multicast on the configured (real, non-loopback) interface.
    let run = b
        .discover(&[("kind", "multicast"), ("interface", "")])
        .await;
    let end = b.follow(run).await;
    assert_eq!(end["phase"], "done", "{end}");
    let d = b.run_detail(run).await;
    let results = d["results"].as_array().unwrap();
    assert_eq!(results.len(), cameras, "multicast finds every camera: {d}");
    for r in results {
        let i = r["interface"].as_str().unwrap_or("");
        assert!(i.contains(&iface), "result names its interface: {r}");
        assert!(r["xaddrs"][0].as_str().unwrap().contains(&cam_host));
    }

    // A CIDR sweep over the link finds the same cameras.
    let sweep = b.discover(&[("kind", "cidr"), ("target", &cidr)]).await;
    b.follow(sweep).await;
    let d = b.run_detail(sweep).await;
    assert_eq!(d["run"]["status"], "done", "{d}");
    let mut endpoints: Vec<&str> = d["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["via"] != "http")
        .map(|r| r["endpoint"].as_str().unwrap())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    assert_eq!(
        endpoints.len(),
        cameras,
        "the sweep finds every camera: {d}"
    );

    // The cameras announced themselves with Hello when they started.
    let mut heard = 0;
    for _ in 0..100 {
        let runs: Value =
            serde_json::from_str(&b.get("/api/v1/discovery").await.text().await.unwrap()).unwrap();
        heard = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "hello")
            .map(|r| r["found"].as_i64().unwrap())
            .sum::<i64>();
        if heard as usize >= cameras {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(heard as usize, cameras, "every camera's Hello was heard");

    // Adopt them all with the form, following the progress over SSE.
    let page = b.get_text(&format!("/discovery/{run}")).await;
    let csrf = field(&page, "csrf");
    let ids: Vec<String> = results.iter().map(|r| r["id"].to_string()).collect();
    let mut form: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("username", "admin"),
        ("password", "admin"),
        ("site", ""),
    ];
    for id in &ids {
        form.push(("result", id));
    }
    let r = b.post(&format!("/discovery/{run}/adopt"), &form).await;
    assert_eq!(r.status(), 303, "adopt form");
    let end = b.follow(run).await;
    assert!(
        end["message"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{cameras} adopted")),
        "{end}"
    );

    // A download through the proxy.
    let csv = b.get_text("/inventory.csv").await;
    assert_eq!(csv.lines().count(), cameras + 1, "{csv}");

    // Live view through the proxy: the camera's stream across the link,
    // fragments passed on as they come (not buffered by the proxy).
    let devices: Value =
        serde_json::from_str(&b.get("/api/v1/devices").await.text().await.unwrap()).unwrap();
    let id = devices["devices"][0]["id"].as_i64().expect("a device");
    let mut r = b.get(&format!("/devices/{id}/live.mp4")).await;
    assert_eq!(r.status(), 200, "live view through the proxy");
    let mut got = Vec::new();
    let mut fragments = 0;
    while fragments < 20 {
        let chunk = tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .expect("live bytes within 20 s")
            .unwrap()
            .expect("the stream goes on");
        got.extend_from_slice(&chunk);
        fragments = got.windows(4).filter(|w| w == b"moof").count();
    }
    assert_eq!(&got[4..8], b"ftyp");
    drop(r);

    // A form from another origin is refused even through the proxy.
    let csrf = b.csrf("/discovery").await;
    let r = b
        .post_from(
            "/discovery",
            &[("csrf", &csrf), ("kind", "multicast")],
            "http://evil.example",
        )
        .await;
    assert_eq!(r.status(), 403);

    let csrf = b.csrf("/").await;
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);

    // 2. Through nginx without `proxy_set_header Host` (camfleet sees its
    // own address as Host and accepts the public URL's origin), then
    // through Caddy with the shipped Caddyfile.
    for proxy in &proxies[1..] {
        let mut b = Browser::new(proxy);
        b.login(&password).await;
        let run = b
            .discover(&[("kind", "unicast"), ("target", &cam_host)])
            .await;
        b.follow(run).await;
        let d = b.run_detail(run).await;
        assert_eq!(
            d["results"].as_array().unwrap().len(),
            cameras,
            "{proxy}: {d}"
        );
        let csv = b.get_text("/inventory.csv").await;
        assert_eq!(csv.lines().count(), cameras + 1, "{proxy}");
        let csrf = b.csrf("/").await;
        let r = b.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(r.status(), 303, "{proxy}");
    }
}
