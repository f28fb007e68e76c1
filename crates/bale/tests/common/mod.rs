//! Test harness: runs the real `bale` binary as a server on a free port,
//! with its own data directory and (for PostgreSQL) its own schema, and
//! runs CLI commands against it.
//!
//! `BALE_TEST_CATALOG=postgres` points every test at PostgreSQL
//! (`BALE_TEST_PG` names the server); the default is SQLite.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bale");

/// A library with one slow drive: 2 MB/s in real time, so that a tape
/// write of 3 MB takes 1.5 s (long enough to pull the plug in the middle).
/// Files from 1 MiB go direct.
pub const SLOW_TAPE: &str = r#"
[tape]
direct_min_size = "1 MiB"
time_scale = 1.0

[tape.media.SLOW]
capacity = "1 GB"
rate = "2 MB"
load_s = 0.05
unload_s = 0.05
robot_s = 0.05
full_locate_s = 0.1
file_mark_s = 0.2

[[tape.libraries]]
name = "lib1"
media = "SLOW"
drives = 1
initial_volumes = 2
"#;

/// A library of two fast drives and two 100 MB volumes (no pacing).
pub const SMALL_LIBRARY: &str = r#"
[tape]
idle_unload_s = 5.0

[[tape.libraries]]
name = "lib1"
drives = 2
initial_volumes = 2
volume_capacity = "100 MB"
"#;

/// Runs each `fn name(Catalog)` as two tests, `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_catalogs {
    ($($f:ident),* $(,)?) => {
        $(
            mod $f {
                #[test]
                fn sqlite() {
                    super::$f($crate::common::Catalog::Sqlite);
                }

                #[test]
                fn postgres() {
                    super::$f($crate::common::Catalog::Postgres);
                }
            }
        )*
    };
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Catalog {
    Sqlite,
    Postgres,
}

impl Catalog {
    /// The backend chosen by `BALE_TEST_CATALOG` (sqlite by default).
    pub fn from_env() -> Catalog {
        match std::env::var("BALE_TEST_CATALOG").as_deref() {
            Ok("postgres") => Catalog::Postgres,
            Ok("sqlite") | Err(_) => Catalog::Sqlite,
            Ok(other) => panic!("BALE_TEST_CATALOG must be sqlite or postgres, not {other:?}"),
        }
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub token: String,
    /// The CA that signed the server's certificate (over https): trusted
    /// by `http()` and given to the CLI as `BALE_CA`.
    pub ca: Option<PathBuf>,
    catalog_arg: Option<String>,
    schema: Option<String>,
    extra: Vec<String>,
    /// Environment of the next launch (e.g. an armed crash point).
    env: Vec<(String, String)>,
    /// The server's stderr goes to [`Server::log_path`] (appended), at
    /// level info, instead of the test's stderr.
    logged: bool,
}

impl Server {
    pub fn start() -> Server {
        Server::start_on(Catalog::from_env())
    }

    pub fn start_on(catalog: Catalog) -> Server {
        Server::start_with(catalog, &[])
    }

    /// Starts a server with extra `bale serve` arguments.
    pub fn start_with(catalog: Catalog, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
        Server::start_in(catalog, dir, extra)
    }

    /// Starts a server whose data directory is `dir/data` (which may be
    /// prepared, e.g. a small filesystem mounted there).
    pub fn start_in(catalog: Catalog, dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::start_opts(catalog, dir, extra, false)
    }

    /// Starts a server whose log (level info, unless `extra` says
    /// otherwise through the environment) goes to [`Server::log_path`].
    pub fn start_logged(catalog: Catalog, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
        Server::start_opts(catalog, dir, extra, true)
    }

    /// Where a logged server's stderr goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// What a logged server wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn start_opts(catalog: Catalog, dir: tempfile::TempDir, extra: &[&str], logged: bool) -> Server {
        let (catalog_arg, schema) = match catalog {
            Catalog::Sqlite => (None, None),
            Catalog::Postgres => {
                let (url, schema) = block_on(bale_catalog::conformance::fresh_postgres());
                (Some(url), Some(schema))
            }
        };
        let mut s = Server {
            child: None,
            url: String::new(),
            dir,
            token: String::new(),
            ca: None,
            catalog_arg,
            schema,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            logged,
        };
        s.launch();
        s.token = std::fs::read_to_string(s.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        s
    }

    /// The `--catalog` URL given to the server (PostgreSQL), if any.
    pub fn catalog_url(&self) -> Option<&str> {
        self.catalog_arg.as_deref()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.extra)
            .env_remove("BALE_CATALOG")
            .env("BALE_LOG", if self.logged { "info" } else { "warn" })
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if self.logged {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .unwrap();
            cmd.stderr(f);
        }
        if let Some(c) = &self.catalog_arg {
            cmd.arg("--catalog").arg(c);
        }
        let mut child = cmd.spawn().expect("spawn bale serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("bale serve did not report its address");
        self.url = line
            .strip_prefix("bale listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        self.child = Some(child);
    }

    /// SIGKILL: no chance to clean up, like a power cut for the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The environment of the next launch, on top of the inherited one.
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.env = env;
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Kills the server and starts it again with other `serve` arguments.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.kill9();
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.launch();
    }

    /// Runs SQL statements on the server's catalog behind its back: a
    /// test's way to make a state that no API makes (a lost row).
    pub fn catalog_sql(&self, sql: &str) {
        match &self.catalog_arg {
            None => {
                let c = rusqlite::Connection::open(self.data_dir().join("catalog.sqlite")).unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                c.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Some(url) => block_on(async {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                let h = tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                drop(client);
                let _ = h.await;
            }),
        }
    }

    /// The first column of a query on the server's catalog, as text (cast
    /// it in the SQL), behind the server's back.
    pub fn catalog_query(&self, sql: &str) -> Vec<String> {
        match &self.catalog_arg {
            None => {
                let c = rusqlite::Connection::open(self.data_dir().join("catalog.sqlite")).unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let rows = st
                    .query_map([], |r| r.get::<_, Option<String>>(0))
                    .unwrap()
                    .map(|r| r.unwrap().unwrap_or_default())
                    .collect();
                rows
            }
            Some(url) => block_on(async {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                let h = tokio::spawn(conn);
                let rows = client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                let out = rows
                    .iter()
                    .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
                    .collect();
                drop(client);
                let _ = h.await;
                out
            }),
        }
    }

    /// The server process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// GET of a JSON API endpoint with the admin token.
    pub fn api_get(&self, endpoint: &str) -> serde_json::Value {
        let r = self
            .http()
            .get(self.url_of(&format!("/api/v1/{endpoint}")))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "GET {endpoint}: {}", r.status());
        r.json().unwrap()
    }

    /// POST of JSON to an API endpoint with a token; status and body.
    pub fn api_post(&self, token: &str, endpoint: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http()
            .post(self.url_of(&format!("/api/v1/{endpoint}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .unwrap();
        status_and_body(r)
    }

    /// PUT of `data` at `path` with the admin token; status and body (JSON
    /// when it is).
    pub fn put_data(&self, path: &str, data: &[u8]) -> (u16, serde_json::Value) {
        let r = self
            .http()
            .put(self.url_of(path))
            .bearer_auth(&self.token)
            .body(data.to_vec())
            .send()
            .unwrap();
        status_and_body(r)
    }

    /// Polls until `f` holds (up to `secs` seconds).
    pub fn wait_for(&self, secs: u64, what: &str, mut f: impl FnMut(&Server) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A CLI command against this server with the admin token.
    pub fn bale(&self) -> Command {
        self.bale_as(&self.token)
    }

    pub fn bale_as(&self, token: &str) -> Command {
        let mut c = Command::new(BIN);
        c.env("BALE_SERVER", &self.url)
            .env("BALE_TOKEN", token)
            .env("BALE_LOG", "warn");
        match &self.ca {
            Some(ca) => c.env("BALE_CA", ca),
            None => c.env_remove("BALE_CA"),
        };
        c
    }

    /// Runs a CLI command and asserts success; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.bale().args(args).output().unwrap();
        assert_ok(&out, &format!("bale {}", args.join(" ")));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The file id of the file at `path` (`bale stat --json`).
    pub fn file_id(&self, path: &str) -> String {
        let e: serde_json::Value = serde_json::from_str(&self.run(&["stat", "--json", path])).unwrap();
        e["file_id"].as_str().unwrap().to_string()
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120));
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).unwrap();
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    pub fn url_of(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Issues a token for a user through the CLI.
    pub fn token_for(&self, user: &str, group: &str) -> String {
        self.run(&["token", "create", "--user", user, "--group", group])
            .trim()
            .to_string()
    }

    /// Entries left in the cache's tmp area.
    pub fn tmp_entries(&self) -> usize {
        std::fs::read_dir(self.data_dir().join("cache/tmp")).unwrap().count()
    }

    /// Every path in the namespace with its size (directories as -1), sorted.
    pub fn tree(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let mut queue = vec!["/".to_string()];
        while let Some(dir) = queue.pop() {
            let mut after: Option<String> = None;
            loop {
                let mut req = self
                    .http()
                    .get(self.url_of("/api/v1/list"))
                    .bearer_auth(&self.token)
                    .query(&[("path", dir.as_str()), ("limit", "1000")]);
                if let Some(a) = &after {
                    req = req.query(&[("after", a.as_str())]);
                }
                let page: serde_json::Value = req.send().unwrap().json().unwrap();
                for e in page["entries"].as_array().unwrap() {
                    let p = e["path"].as_str().unwrap().to_string();
                    if e["kind"] == "dir" {
                        out.push((p.clone(), -1));
                        queue.push(p);
                    } else {
                        out.push((p, e["size"].as_i64().unwrap()));
                    }
                }
                match page["next"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(s) = self.schema.take() {
            block_on(bale_catalog::conformance::drop_postgres_schema(&s));
        }
    }
}

/// A response's status and body (JSON when it is, else the text).
fn status_and_body(r: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Whether a client program is installed; outside CI a missing one skips
/// its test (said on stderr), in CI it fails (CI installs them all).
pub fn installed(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(std::env::var("CI").is_err(), "{name} must be installed in CI");
        eprintln!("skipping the {name} check: not installed");
    }
    found
}

/// Debian's python, which loads gfal2's bindings.
pub const PYTHON: &str = "/usr/bin/python3";

/// Whether Debian's python can load gfal2 (CI installs it; a developer
/// machine without it skips, CI never does).
pub fn gfal2_available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import gfal2"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "gfal2 must be installed in CI (gfal2 gfal2-plugin-http python3-gfal2-util)"
        );
        eprintln!("skipping the gfal2 check: {PYTHON} cannot import gfal2");
    }
    ok
}

/// gfal2's steps (tests/gfal2_client.py, one step per run of Debian's
/// python) against `base`, with `token` on the context ("-": none, gfal2
/// then reads BEARER_TOKEN if `env` has it) and `env` on top.
pub struct Gfal2 {
    pub script: PathBuf,
    pub base: String,
    pub token: String,
    pub env: Vec<(String, String)>,
}

impl Gfal2 {
    /// Writes the client script into `dir`.
    pub fn new(dir: &Path, base: &str, token: &str, env: Vec<(String, String)>) -> Gfal2 {
        let script = dir.join("gfal2_client.py");
        std::fs::write(&script, include_str!("../gfal2_client.py")).unwrap();
        Gfal2 {
            script,
            base: base.to_string(),
            token: token.to_string(),
            env,
        }
    }

    pub fn try_step(&self, args: &[&str]) -> Output {
        Command::new(PYTHON)
            .arg(&self.script)
            .arg(&self.base)
            .arg(&self.token)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// Runs one step; its stdout, trimmed. Panics with stderr on failure.
    pub fn step(&self, args: &[&str]) -> String {
        let out = self.try_step(args);
        assert!(
            out.status.success(),
            "gfal2 {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic pseudo-random bytes.
/// Writes `text` to `dir/name` (a config or policy file); returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// All regular files under `root`, relative, sorted.
pub fn local_files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}
