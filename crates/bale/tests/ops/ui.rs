//! The status page in a real browser: Debian's headless chromium driven
//! through chromedriver (WebDriver). After a small workload (files packed
//! and written to tape, purged, staged back by a request, a pin, a write
//! error that raises an alarm and takes its volume out of service, a file
//! left in an open pool), it checks what a person would see: the login
//! form and nothing else without a login; then, logged in with a token,
//! the drives, volumes, pools, alarms and stage requests with the right
//! values, charts drawn with data points, an alarm acknowledged by an
//! administrator and refused to a user, the cookie refused on the WebDAV
//! and JSON API paths, and a bounded DOM. Screenshots are saved as test
//! artifacts in the target directory.

use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url }
}

async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,3000"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a chromium session")
}

/// Runs `script` (a function body with `return`) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Waits until `script` returns something truthy in the page; returns it.
async fn until(c: &Client, secs: u64, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = js(c, script).await;
        if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
            return v;
        }
        if Instant::now() > deadline {
            let html = c.source().await.unwrap_or_default();
            panic!(
                "timed out waiting for {what}: {script}\n{}",
                &html[..html.len().min(4000)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the cell `col` of the row `row` (a CSS selector).
async fn cell(c: &Client, row: &str, col: &str) -> String {
    let css = format!("{row} td[data-col=\"{col}\"]");
    c.find(Locator::Css(&css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(c, 30, "the first render", "return document.body.dataset.loaded === '1'").await;
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Elements in the document.
const DOM_NODES: &str = "return document.getElementsByTagName('*').length";

#[test]
fn the_status_page_shows_the_node_to_a_browser() {
    if !installed("chromium") || !installed("chromedriver") {
        return;
    }
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        &format!("[ui]\nsample_s = 1\n[cache]\npurge_check_ms = 200\n{SMALL_LIBRARY}"),
    );
    let mut s = Server::start_with(Catalog::from_env(), &["--config", &config]);
    let http = s.http();

    // The workload: ten small files packed into a package on tape, purged,
    // staged back by a request; a pin.
    s.run(&["mkdir", "/m"]);
    for i in 0..10 {
        let (code, body) = s.put_data(&format!("/m/f{i}"), &bytes(i, 2000 + 10 * i as usize));
        assert_eq!(code, 201, "{body}");
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "every file purgeable", |s| {
        let c: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        c["purgeable_files"].as_u64() == Some(10)
    });
    s.run(&["purge", "--all"]);
    let paths: Vec<String> = (0..10).map(|i| format!("/m/f{i}")).collect();
    let (code, r) = s.api_post(&s.token, "stage", &json!({ "paths": paths }));
    assert_eq!(code, 201, "{r}");
    let request = r["id"].as_i64().unwrap();
    s.wait_for(60, "the request done", |s| {
        s.api_get(&format!("stage/{request}/progress"))["files_done"].as_u64() == Some(10)
    });
    s.run(&["pin", "--lifetime", "2h", "/m/f1"]);
    // A user's own request, which the administrator sees too.
    let alice = s.token_for("alice", "users");
    let (code, r) = s.api_post(&alice, "stage", &json!({ "paths": ["/m/f2"] }));
    assert_eq!(code, 201, "{r}");
    let alices = r["id"].as_i64().unwrap();
    // A write error on the package's volume: an alarm, the volume out of
    // service, the next file written to the other one.
    let stat: Value = serde_json::from_str(&s.run(&["stat", "--json", "/m/f0"])).unwrap();
    let volume = stat["archive"]["copies"][0]["volume"].as_str().unwrap().to_string();
    let (code, r) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "write_error", "volume": volume}),
    );
    assert_eq!(code, 204, "{r}");
    s.put_data("/m/g", &bytes(99, 5000));
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the write error's alarm", |s| {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"].as_str().unwrap().contains("write error"))
    });
    let alarm = s.api_get("alarms")[0]["id"].as_i64().unwrap();
    // A file left in an open pool.
    s.put_data("/m/open", &bytes(100, 3000));
    // A site's worth of volumes: the page shows them a page at a time.
    let (code, r) = s.api_post(&s.token, "volumes", &json!({"library": "lib1", "count": 9998}));
    assert_eq!(code, 201, "{r}");
    for path in [
        "/ui/data/overview",
        "/ui/data/volumes?limit=50",
        "/ui/data/chart/drives?hours=6",
    ] {
        let t = Instant::now();
        let r = http.get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "{path} with 10,000 volumes: {took:?}");
        if path.contains("volumes") {
            let v: Value = r.json().unwrap();
            assert_eq!(
                (v["total"].as_u64(), v["rows"].as_array().unwrap().len()),
                (Some(10_000), 50)
            );
        }
    }

    let d = driver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = s.url.clone();
    let cookie = rt.block_on(async {
        let c = browser(&d).await;
        // Without a login: the root sends a browser to the page, which
        // shows the login form and nothing else.
        c.goto(&format!("{base}/")).await.unwrap();
        assert!(c.current_url().await.unwrap().as_str().ends_with("/ui/"));
        c.find(Locator::Id("login")).await.expect("the login form");
        let shown = js(&c, "return [document.querySelectorAll('section, table, svg').length, document.body.innerText]").await;
        assert_eq!(shown[0], 0, "nothing but the form: {shown}");
        assert!(!shown[1].as_str().unwrap().contains("lib1"), "{shown}");
        // A bad token: refused, still the form.
        c.find(Locator::Id("token")).await.unwrap().send_keys("bale_nope").await.unwrap();
        c.find(Locator::Id("login-submit")).await.unwrap().click().await.unwrap();
        let error = until(&c, 20, "the refusal", "return document.getElementById('login-error')?.textContent").await;
        assert!(error.as_str().unwrap().contains("not valid"), "{error}");

        login(&c, &base, &s.token).await;
        // Drives: both, idle or busy, in lib1.
        for drive in ["lib1-d1", "lib1-d2"] {
            let row = format!("tr[data-drive=\"{drive}\"]");
            assert_eq!(cell(&c, &row, "library").await, "lib1");
            let state = cell(&c, &row, "state").await;
            assert!(["idle", "busy"].contains(&state.as_str()), "{drive}: {state}");
        }
        let mounts: u64 = js(&c, "return [...document.querySelectorAll('tr[data-drive] td[data-col=mounts]')].map(t => +t.textContent.replace(/,/g, '')).reduce((a, b) => a + b, 0)").await.as_u64().unwrap();
        assert!(mounts >= 2, "a write and a read mounted: {mounts}");
        // Volumes: the one with the write error is out of service, with
        // its family and tape file.
        let row = format!("tr[data-volume=\"{volume}\"]");
        until(&c, 20, "the volume row", &format!("return document.querySelector('{row}')")).await;
        assert_eq!(cell(&c, &row, "state").await, "noaccess");
        assert!(cell(&c, &row, "family").await.contains("."), "a family");
        // Pools: the open one, with its one file.
        let pool = until(&c, 20, "an open pool", "return document.querySelector('tr[data-pool]')?.dataset.pool").await;
        let row = format!("tr[data-pool=\"{}\"]", pool.as_str().unwrap());
        assert_eq!(cell(&c, &row, "files").await, "1");
        // The stage requests: the administrator sees both, with counts.
        let row = format!("tr[data-request=\"{request}\"]");
        assert_eq!(cell(&c, &row, "files").await, "10");
        assert_eq!(cell(&c, &row, "done").await, "10");
        assert_eq!(cell(&c, &row, "failed").await, "0");
        c.find(Locator::Css(&format!("tr[data-request=\"{alices}\"]"))).await.expect("alice's request too");
        // The pin, under the administrator's name.
        let pins = js(&c, "return document.querySelector('#pins').innerText").await;
        assert!(pins.as_str().unwrap().contains("/m/f1"), "{pins}");
        // The workers, every one running.
        let workers = js(&c, "return [...document.querySelectorAll('tr[data-worker] td[data-col=state]')].map(t => t.textContent)").await;
        assert!(workers.as_array().unwrap().len() >= 5, "{workers}");
        // Charts: drawn by the server, with data points.
        for name in ["ingest", "tape", "stage", "cache", "queue", "drives"] {
            let points = until(
                &c,
                30,
                &format!("the {name} chart"),
                &format!("return +document.querySelector('figure[data-chart={name}] svg')?.getAttribute('data-points')"),
            )
            .await;
            assert!(points.as_u64().unwrap() >= 1, "{name}: {points}");
        }
        let lines = js(&c, "return document.querySelectorAll('figure[data-chart=cache] svg polyline').length").await;
        assert!(lines.as_u64().unwrap() >= 1, "the cache chart draws lines");
        // The alarm, acknowledged by the administrator.
        let row = format!("tr[data-alarm=\"{alarm}\"]");
        assert!(cell(&c, &row, "message").await.contains("write error"));
        let nodes = js(&c, DOM_NODES).await.as_u64().unwrap();
        assert!(nodes < 3000, "a bounded page: {nodes} elements");
        screenshot(&c, "status-admin.png").await;
        c.find(Locator::Css(&format!("button.ack[data-alarm=\"{alarm}\"]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until(&c, 20, "the alarm gone", &format!("return !document.querySelector('{row}')")).await;
        let cookie = c.get_named_cookie("bale_ui").await.expect("the session cookie");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.path(), Some("/ui/"));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        let cookie = cookie.value().to_string();
        // Log out: the form again.
        c.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
        until(&c, 20, "the login form after logging out", "return document.getElementById('login')").await;
        c.close().await.unwrap();
        cookie
    });
    let acked = s.api_get("alarms?all=true");
    let a = acked.as_array().unwrap().iter().find(|a| a["id"] == alarm).unwrap();
    assert!(!a["acked_by"].is_null(), "acknowledged: {a}");

    // The cookie is good for the page only: the JSON API and WebDAV
    // refuse it (a new login's, still live).
    let live = {
        let r = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(s.url_of("/ui/login"))
            .form(&[("token", s.token.as_str())])
            .send()
            .unwrap();
        assert_eq!(r.status(), 303);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        set.split(';').next().unwrap().to_string()
    };
    let with = |cookie: &str, path: &str| {
        http.get(s.url_of(path))
            .header("cookie", cookie)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(with(&live, "/ui/data/overview"), 200, "the page's data take it");
    assert_eq!(with(&live, "/api/v1/whoami"), 401, "the JSON API does not");
    assert_eq!(with(&live, "/m/f1"), 401, "nor WebDAV");
    assert_eq!(with(&live, "/api/tape/v1/stage/1"), 401, "nor the Tape REST API");
    let ended = format!("bale_ui={cookie}");
    assert_eq!(with(&ended, "/ui/data/overview"), 401, "a session logged out is over");
    // Without the session's secret, a POST with the cookie is refused.
    let r = http
        .post(s.url_of(&format!("/ui/data/alarms/{alarm}/ack")))
        .header("cookie", &live)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "no X-CSRF-Token");

    // As a user: no workers or alarms, only their own request, and an
    // acknowledgement refused.
    rt.block_on(async {
        let c = browser(&d).await;
        login(&c, &base, &alice).await;
        let hidden = js(&c, "return [document.querySelector('#workers').hidden || getComputedStyle(document.querySelector('#workers')).display === 'none', document.querySelector('#alarms').hidden || getComputedStyle(document.querySelector('#alarms')).display === 'none', document.querySelectorAll('tr[data-alarm], tr[data-worker]').length]").await;
        assert_eq!(hidden, json!([true, true, 0]), "administrators' sections hidden");
        c.find(Locator::Css(&format!("tr[data-request=\"{alices}\"]"))).await.expect("her request");
        let theirs = js(&c, &format!("return document.querySelectorAll('tr[data-request=\"{request}\"]').length")).await;
        assert_eq!(theirs, 0, "not the administrator's request");
        // WebDriver awaits a promise the script returns.
        let refused = js(
            &c,
            &format!(
                "return fetch('/ui/data/overview').then(r => r.json()).then(o =>
                   fetch('/ui/data/alarms/{alarm}/ack', {{method: 'POST', headers: {{'X-CSRF-Token': o.csrf}}}}))
                 .then(r => r.json().then(b => [r.status, b.detail]))"
            ),
        )
        .await;
        assert_eq!(refused[0], 403, "{refused}");
        assert!(refused[1].as_str().unwrap().contains("administrator"), "{refused}");
        let seen = js(&c, "return document.cookie.includes('bale_ui')").await;
        assert_eq!(seen, false, "HttpOnly: the page's scripts never see the session");
        screenshot(&c, "status-user.png").await;
        c.close().await.unwrap();
    });

    // The charts' history is kept on disk: a kill and a restart keep it.
    fn points(s: &Server) -> u64 {
        let svg = s
            .http()
            .get(s.url_of("/ui/data/chart/cache?hours=1"))
            .bearer_auth(&s.token)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let at = svg.find("data-points=\"").expect("a chart") + "data-points=\"".len();
        svg[at..].split('"').next().unwrap().parse().unwrap()
    }
    let before = points(&s);
    assert!(before >= 5, "a sample a second: {before}");
    s.restart();
    let after = points(&s);
    assert!(after >= before, "{after} points after the restart, {before} before");
}

/// The benchmark of the page at scale (not in CI: it writes 100,000
/// files): 100,000 files queued for tape (drives offline) and 10,000
/// volumes; each data endpoint timed (20 calls, p50 and max), and the
/// page's elements counted in the browser. Figures in docs/BENCHMARKS.md:
/// `cargo test --release -p bale --test ops status_page_at_scale -- --ignored --nocapture`
#[test]
#[ignore]
fn status_page_at_scale() {
    if !installed("chromium") || !installed("chromedriver") {
        return;
    }
    const FILES: usize = 100_000;
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        "[ui]\nsample_s = 5\n[[tape.libraries]]\nname = \"lib1\"\ndrives = 10\ninitial_volumes = 10000\nvolume_capacity = \"10 GB\"\n",
    );
    let s = Server::start_with(Catalog::from_env(), &["--config", &config]);
    for i in 1..=10 {
        s.run(&["drive", "offline", &format!("lib1-d{i}")]);
    }
    s.run(&["mkdir", "/scale"]);
    let t = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..16 {
            let s = &s;
            scope.spawn(move || {
                let http = s.http();
                for i in (w..FILES).step_by(16) {
                    let r = http
                        .put(s.url_of(&format!("/scale/f{i:06}")))
                        .bearer_auth(&s.token)
                        .body(vec![b'x'; 100])
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            });
        }
    });
    eprintln!("{FILES} files in {:.1} s", t.elapsed().as_secs_f64());
    let http = s.http();
    let status = s.api_get("status");
    // Files of 100 bytes: in open pools, and in archive jobs by their bytes.
    let queued =
        status["queue"]["pool_files"].as_u64().unwrap() + status["queue"]["jobs"]["queued"][1].as_u64().unwrap() / 100;
    eprintln!("queue: {}", status["queue"]);
    let mut rows = Vec::new();
    let charts: Vec<String> = ["ingest", "tape", "stage", "cache", "queue", "drives"]
        .iter()
        .map(|c| format!("/ui/data/chart/{c}?hours=6"))
        .collect();
    let mut paths = vec![
        "/ui/data/overview".to_string(),
        "/ui/data/volumes?limit=50".to_string(),
        "/ui/data/volumes?limit=50&offset=9950&q=VL".to_string(),
    ];
    paths.extend(charts);
    for path in &paths {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let r = http.get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
            assert_eq!(r.status(), 200, "{path}");
            size = r.bytes().unwrap().len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        rows.push(format!("| `{path}` | {:.1} | {:.1} | {size} |", times[10], times[19]));
        assert!(times[19] < 1000.0, "{path}: {times:?}");
    }
    let d = driver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = s.url.clone();
    let nodes = rt.block_on(async {
        let c = browser(&d).await;
        let t = Instant::now();
        login(&c, &base, &s.token).await;
        until(
            &c,
            30,
            "the volumes",
            "return document.querySelectorAll('tr[data-volume]').length === 50",
        )
        .await;
        until(
            &c,
            30,
            "the charts",
            "return document.querySelectorAll('figure[data-chart] svg').length === 6",
        )
        .await;
        let loaded = t.elapsed();
        let nodes = js(&c, DOM_NODES).await.as_u64().unwrap();
        eprintln!("page loaded and drawn in {:.2} s", loaded.as_secs_f64());
        screenshot(&c, "status-scale.png").await;
        c.close().await.unwrap();
        nodes
    });
    eprintln!("{queued} files queued, 10,000 volumes; the page has {nodes} elements");
    eprintln!(
        "| endpoint | p50 ms | max ms | bytes |\n|---|---|---|---|\n{}",
        rows.join("\n")
    );
    assert_eq!(queued, FILES as u64);
    assert!(nodes < 3000, "{nodes}");
}
