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
    c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
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
            panic!("timed out waiting for {what}: {script}\n{}", &html[..html.len().min(4000)]);
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
    c.find(Locator::Id("token")).await.unwrap().send_keys(token).await.unwrap();
    c.find(Locator::Id("login-submit")).await.unwrap().click().await.unwrap();
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
    let s = Server::start_with(Catalog::from_env(), &["--config", &config]);
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
}
