//! TLS with real clients: the CLI, curl, rclone, davix and gfal2 over
//! https with a CA made at run time; a client that does not trust it is
//! refused; a certificate replaced on disk is served without a restart;
//! behind nginx terminating TLS, with the public URL set, gfal2's Tape REST
//! calls succeed; forwarded headers from an address that is not a trusted
//! proxy change nothing.

use crate::common::{assert_ok, bytes, gfal2_available, write_file, Catalog, Gfal2, Server, SMALL_LIBRARY};
use crate::pki::Ca;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn tool(name: &'static str) -> Option<&'static str> {
    crate::common::installed(name).then_some(name)
}

/// A TLS server whose certificate the test CA signed, and the CA's files.
fn tls_server(dir: &Path, ca: &Ca, extra_config: &str) -> Server {
    let leaf = ca.leaf(dir, "server", "first");
    let cfg = write_file(dir, "bale.toml", &format!("{SMALL_LIBRARY}\n{extra_config}"));
    let mut s = Server::start_with(
        Catalog::Sqlite,
        &[
            "--config",
            &cfg,
            "--tls-cert",
            leaf.cert.to_str().unwrap(),
            "--tls-key",
            leaf.key.to_str().unwrap(),
        ],
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    s.ca = Some(ca.write(dir, "ca.pem"));
    s
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .unwrap()
}

/// gfal2 against `base` trusting the CA in `cert_dir` (a rehashed
/// X509_CERT_DIR), the token on the context and in BEARER_TOKEN.
fn gfal2_tls(dir: &Path, base: &str, token: &str, cert_dir: &Path) -> Gfal2 {
    let env = vec![
        ("X509_CERT_DIR".into(), cert_dir.display().to_string()),
        ("BEARER_TOKEN".into(), token.to_string()),
    ];
    Gfal2::new(dir, base, token, env)
}

/// gfal2's whole round: copy in with ADLER32 checked at both ends, stat,
/// checksum, archive poll until on tape, eviction, bring online, poll,
/// copy out.
fn gfal2_round(s: &Server, g: &Gfal2, dir: &Path, sub: &str) {
    let data = bytes(7, 200_000);
    std::fs::write(dir.join("in.dat"), &data).unwrap();
    let remote = g.url(&format!("/{sub}/in.dat"));
    g.step(&["mkdir", &g.url(&format!("/{sub}"))]);
    g.step(&["copy", &format!("file://{}", dir.join("in.dat").display()), &remote]);
    assert_eq!(g.step(&["status", &remote]), "ONLINE");
    assert_eq!(
        g.step(&["checksum", &remote]),
        format!("{}", bale_util::Adler32::of(&data))
    );
    assert!(g.step(&["archive-poll", &remote]).starts_with("pending:"));
    s.run(&["queue", "flush"]);
    s.wait_for(60, "gfal2 sees it archived", |_| {
        g.step(&["archive-poll", &remote]) == "archived"
    });
    s.wait_for(60, "purgeable", |s| {
        let u: serde_json::Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() >= Some(1)
    });
    s.run(&["purge", "--all"]);
    assert_eq!(g.step(&["status", &remote]), "NEARLINE");
    let req = g.step(&["bring-online", &remote]);
    assert_eq!(g.step(&["poll", &req, &remote]), "online");
    g.step(&["release", &req, &remote]);
    let back = dir.join("back.dat");
    g.step(&["copy", &remote, &format!("file://{}", back.display())]);
    assert!(std::fs::read(&back).unwrap() == data);
}

#[test]
fn clients_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bale test CA");
    let s = tls_server(dir.path(), &ca, "");
    let ca_file = s.ca.clone().unwrap();
    let ca_arg = ca_file.to_str().unwrap();

    // The CLI, trusting the CA by BALE_CA.
    std::fs::write(dir.path().join("cli.dat"), bytes(1, 50_000)).unwrap();
    s.run(&["mkdir", "-p", "/tls"]);
    s.run(&["put", dir.path().join("cli.dat").to_str().unwrap(), "/tls"]);
    let got = dir.path().join("got");
    s.run(&["get", "/tls/cli.dat", got.to_str().unwrap()]);
    let got = if got.is_dir() { got.join("cli.dat") } else { got };
    assert!(std::fs::read(&got).unwrap() == bytes(1, 50_000));
    // ...and by --ca.
    let out = s
        .bale()
        .env_remove("BALE_CA")
        .args(["stat", "--ca", ca_arg, "/tls/cli.dat"])
        .output()
        .unwrap();
    assert_ok(&out, "bale --ca stat");

    // curl: HTTP/2 by ALPN, and HTTP/1.1 when asked.
    if tool("curl").is_some() {
        let auth = format!("Authorization: Bearer {}", s.token);
        let out = curl(&[
            "--cacert",
            ca_arg,
            "-H",
            &auth,
            "-T",
            dir.path().join("cli.dat").to_str().unwrap(),
            "-w",
            "%{http_code} %{http_version}",
            "-o",
            "/dev/null",
            &s.url_of("/tls/curl.dat"),
        ]);
        assert_ok(&out, "curl PUT");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "201 2");
        let out = curl(&[
            "--http1.1",
            "--cacert",
            ca_arg,
            "-H",
            &auth,
            "-w",
            " %{http_version}",
            &s.url_of("/tls/curl.dat"),
        ]);
        assert_ok(&out, "curl GET");
        assert!(out.stdout.ends_with(b" 1.1"));
        assert!(out.stdout[..50_000] == bytes(1, 50_000)[..]);
    }

    // rclone and davix over WebDAV.
    if let Some(rclone) = tool("rclone") {
        let up = dir.path().join("up");
        std::fs::create_dir_all(&up).unwrap();
        std::fs::write(up.join("r.dat"), bytes(2, 70_000)).unwrap();
        let remote_args = [
            "--webdav-url",
            &s.url,
            "--webdav-bearer-token",
            &s.token,
            "--ca-cert",
            ca_arg,
        ];
        let out = Command::new(rclone)
            .arg("copy")
            .arg(&up)
            .arg(":webdav:/tls/rclone")
            .args(remote_args)
            .output()
            .unwrap();
        assert_ok(&out, "rclone copy up");
        let out = Command::new(rclone)
            .args(["lsl", ":webdav:/tls/rclone"])
            .args(remote_args)
            .output()
            .unwrap();
        assert_ok(&out, "rclone lsl");
        assert!(String::from_utf8_lossy(&out.stdout).contains("70000"), "{out:?}");
    }
    let cert_dir = ca.cert_dir(dir.path());
    if tool("davix-ls").is_some() {
        let out = Command::new("davix-ls")
            .arg("-l")
            .arg("--capath")
            .arg(&cert_dir)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", s.token))
            .arg(s.url_of("/tls/"))
            .output()
            .unwrap();
        assert_ok(&out, "davix-ls");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.ends_with("cli.dat") && l.contains("50000")),
            "{text}"
        );
    }

    // gfal2 trusts the CA through a rehashed X509_CERT_DIR.
    if gfal2_available() {
        let g = gfal2_tls(dir.path(), &s.url, &s.token, &cert_dir);
        gfal2_round(&s, &g, dir.path(), "gfal2");
    }
}

#[test]
fn a_client_that_does_not_trust_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bale test CA");
    let s = tls_server(dir.path(), &ca, "");
    // The CLI without the CA: refused, and told about --ca.
    let out = s.bale().env_remove("BALE_CA").args(["ls", "/"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca") && err.contains("certificate"), "{err}");
    // Another CA's certificate does not vouch for this server either.
    let other = Ca::new("another CA");
    let other_file = other.write(dir.path(), "other.pem");
    let out = s.bale().env("BALE_CA", &other_file).args(["ls", "/"]).output().unwrap();
    assert!(!out.status.success());
    if tool("curl").is_some() {
        let out = curl(&["-o", "/dev/null", &s.url_of("/api/v1/whoami")]);
        assert_eq!(out.status.code(), Some(60), "curl: certificate not trusted: {out:?}");
        let out = curl(&[
            "--cacert",
            other_file.to_str().unwrap(),
            "-o",
            "/dev/null",
            &s.url_of("/"),
        ]);
        assert_eq!(out.status.code(), Some(60), "{out:?}");
        // Plain HTTP to the TLS port gets no answer a client could take for one.
        let out = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &s.url.replace("https://", "http://"),
        ]);
        assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
    }
    // The server still serves those that trust it.
    let r = s
        .http()
        .get(s.url_of("/api/v1/whoami"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    if tool("curl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("first CA");
    let s = tls_server(dir.path(), &ca, "");
    let pid = s.pid();
    let first = s.ca.clone().unwrap();
    let second_ca = Ca::new("second CA");
    let second = second_ca.write(dir.path(), "second.pem");
    let probe = |ca: &Path| {
        curl(&["--cacert", ca.to_str().unwrap(), "-o", "/dev/null", &s.url_of("/")])
            .status
            .success()
    };
    assert!(probe(&first) && !probe(&second));
    // The renewed certificate (another CA, so the test can tell) is
    // written over the files, as certbot or a site's tooling would.
    let renewed = second_ca.leaf(dir.path(), "renewed", "second");
    std::fs::copy(&renewed.key, dir.path().join("server.key")).unwrap();
    std::fs::copy(&renewed.cert, dir.path().join("server.crt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe(&second) {
        assert!(Instant::now() < deadline, "the new certificate was not served");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!probe(&first), "the old certificate is no longer served");
    assert_eq!(s.pid(), pid, "no restart");
    // A half-written pair (a key that does not match) keeps the last good one.
    std::fs::write(
        dir.path().join("server.key"),
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(probe(&second), "a key that does not match the certificate is not taken");
    // Nor is an expired certificate: every client would refuse it.
    let expired = second_ca.expired_leaf(dir.path(), "expired");
    std::fs::copy(&expired.key, dir.path().join("server.key")).unwrap();
    std::fs::copy(&expired.cert, dir.path().join("server.crt")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(probe(&second), "an expired certificate is not taken");
    // At start, an expired certificate is an error that says so.
    let out = Command::new(crate::common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other-data"))
        .arg("--tls-cert")
        .arg(&expired.cert)
        .arg("--tls-key")
        .arg(&expired.key)
        .env_remove("BALE_CATALOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expired on") && err.contains("renew"), "{err}");
}

/// A free port on loopback (bound, then released for nginx).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nginx {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx terminating TLS on a free port and proxying to `upstream`
/// (plain HTTP) on `port`, with X-Forwarded-Proto, X-Forwarded-Host and
/// X-Forwarded-For, as a site's front end would.
fn nginx(dir: &Path, ca: &Ca, upstream: &str, port: u16) -> Option<Nginx> {
    let bin = ["/usr/sbin/nginx", "nginx"].into_iter().find(|b| {
        Command::new(b)
            .arg("-v")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    let Some(bin) = bin else {
        assert!(std::env::var("CI").is_err(), "nginx must be installed in CI");
        eprintln!("skipping: nginx is not installed");
        return None;
    };
    let leaf = ca.leaf(dir, "nginx", "front end");
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let conf = format!(
        r#"
master_process off;
worker_processes 1;
error_log {prefix}/logs/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    server_name localhost;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    client_max_body_size 0;
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host:$server_port;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
"#,
        prefix = prefix.display(),
        cert = leaf.cert.display(),
        key = leaf.key.display(),
    );
    let conf_file = prefix.join("nginx.conf");
    std::fs::write(&conf_file, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_file)
        .arg("-e")
        .arg(prefix.join("logs/error.log"))
        .args(["-g", "daemon off;"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {:?}",
            std::fs::read_to_string(prefix.join("logs/error.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Nginx {
        child,
        url: format!("https://localhost:{port}"),
    })
}

#[test]
fn behind_a_tls_proxy_with_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bale test CA");
    // bale behind nginx: plain HTTP on loopback, the public URL nginx's.
    let port = free_port();
    let public = format!("https://localhost:{port}");
    let cfg = write_file(
        dir.path(),
        "bale.toml",
        &format!("{SMALL_LIBRARY}\n[server]\npublic_url = \"{public}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n"),
    );
    let s = Server::start_with(Catalog::Sqlite, &["--config", &cfg]);
    // nginx on the port the public URL names.
    let Some(front) = nginx(dir.path(), &ca, &s.url, port) else {
        return;
    };
    assert_eq!(front.url, public);
    let ca_file = ca.write(dir.path(), "ca.pem");
    let via_front = {
        let pem = std::fs::read(&ca_file).unwrap();
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    };
    // Discovery through the front end advertises the public https URL.
    let d: serde_json::Value = via_front
        .get(format!("{public}/.well-known/wlcg-tape-rest-api"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(d["endpoints"][0]["uri"], format!("{public}/api/tape/v1"), "{d}");
    // gfal2 through nginx: Tape REST (archive poll, bring online, poll,
    // release) and WebDAV succeed.
    if gfal2_available() {
        let cert_dir = ca.cert_dir(dir.path());
        let g = gfal2_tls(dir.path(), &public, &s.token, &cert_dir);
        gfal2_round(&s, &g, dir.path(), "proxied");
    }
    // A stage request's Location is the public URL's.
    s.run(&["mkdir", "-p", "/loc"]);
    s.put_data("/loc/f", b"x");
    let r = via_front
        .post(format!("{public}/api/tape/v1/stage"))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({"files": [{"path": "/loc/f"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{public}/api/tape/v1/stage/")), "{loc}");
    // A MOVE whose Destination names the public URL is ours.
    let r = via_front
        .request(reqwest::Method::from_bytes(b"MOVE").unwrap(), format!("{public}/loc/f"))
        .bearer_auth(&s.token)
        .header("Destination", format!("{public}/loc/g"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
}

#[test]
fn forwarded_headers_from_untrusted_addresses_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bale test CA");
    // A TLS server with no trusted proxy: every client is direct.
    let s = tls_server(dir.path(), &ca, "");
    let http = s.http();
    let forged = [
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "evil.example:80"),
        ("X-Forwarded-For", "10.9.8.7"),
        ("Forwarded", "for=10.9.8.7;proto=http;host=evil.example"),
    ];
    let mut req = http.get(s.url_of("/.well-known/wlcg-tape-rest-api"));
    for (k, v) in forged {
        req = req.header(k, v);
    }
    let d: serde_json::Value = req.send().unwrap().json().unwrap();
    assert_eq!(d["endpoints"][0]["uri"], format!("{}/api/tape/v1", s.url), "{d}");
    // A MOVE to the forged host is not a MOVE within this server: refused,
    // and nothing moved.
    s.run(&["mkdir", "-p", "/fw"]);
    s.put_data("/fw/f", b"data");
    let before = s.tree();
    let mut req = http
        .request(reqwest::Method::from_bytes(b"MOVE").unwrap(), s.url_of("/fw/f"))
        .bearer_auth(&s.token)
        .header("Destination", "http://evil.example/fw/g");
    for (k, v) in forged {
        req = req.header(k, v);
    }
    let r = req.send().unwrap();
    assert_eq!(r.status(), 502, "{:?}", r.text());
    assert_eq!(s.tree(), before);
    // The audit log names the peer, not the forged address.
    let bob = s.token_for("bob", "users");
    let mut req = http
        .post(s.url_of("/api/v1/tokens"))
        .bearer_auth(&bob)
        .json(&serde_json::json!({"user": "x", "group": "x"}));
    for (k, v) in forged {
        req = req.header(k, v);
    }
    assert_eq!(req.send().unwrap().status(), 403);
    let audit = std::fs::read_to_string(s.data_dir().join("audit.log")).unwrap();
    assert!(!audit.contains("10.9.8.7"), "{audit}");
    assert!(audit.contains("127.0.0.1"), "{audit}");
}

#[test]
fn a_reconnecting_client_resumes_its_session() {
    if tool("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bale test CA");
    let s = tls_server(dir.path(), &ca, "");
    let host = s.url.trim_start_matches("https://").to_string();
    let sess = dir.path().join("session.pem");
    // openssl s_client: the first connection keeps its TLS 1.3 ticket
    // (stdin held open a moment so the ticket is read), the second offers it.
    let connect = |arg: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(sleep 0.5; echo) | openssl s_client -connect {host} -tls1_3 -CAfile {ca} {arg} {sess}",
                ca = s.ca.as_ref().unwrap().display(),
                sess = sess.display()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = connect("-sess_out");
    assert!(first.contains("\nNew, TLSv1.3"), "{first}");
    let second = connect("-sess_in");
    assert!(second.contains("\nReused, TLSv1.3"), "{second}");
}

/// Starts `bale serve` on `listen` with `extra` args; returns what it
/// printed on stderr up to the moment it listened (then stops it).
fn start_and_read_stderr(listen: &str, extra: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::common::BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(listen)
        .args(extra)
        .env_remove("BALE_CATALOG")
        .env("BALE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("bale listening on"), "{first}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    err
}

#[test]
fn plain_http_off_loopback_is_warned_about() {
    let err = start_and_read_stderr("0.0.0.0:0", &[]);
    assert!(
        err.contains("WARNING") && err.contains("plain HTTP") && err.contains("--tls-cert"),
        "{err}"
    );
    assert!(err.contains("no [server] public_url"), "{err}");
    let err = start_and_read_stderr("127.0.0.1:0", &[]);
    assert!(!err.contains("WARNING"), "loopback is the embedded default: {err}");
    assert!(!err.contains("public_url"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let leaf = Ca::new("bale test CA").leaf(dir.path(), "server", "first");
    let err = start_and_read_stderr(
        "0.0.0.0:0",
        &[
            "--tls-cert",
            leaf.cert.to_str().unwrap(),
            "--tls-key",
            leaf.key.to_str().unwrap(),
        ],
    );
    assert!(!err.contains("WARNING"), "{err}");
}

#[test]
fn half_open_handshakes_from_one_address_do_not_lock_others_out() {
    if tool("curl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bale test CA");
    let s = tls_server(dir.path(), &ca, "[server]\nmax_connections = 64\n");
    let addr = s.url.trim_start_matches("https://").to_string();
    // 100 connections from 127.0.0.1 that start a handshake and stall.
    let mut stalled = Vec::new();
    for _ in 0..100 {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
        stalled.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    // Another client (127.0.0.2) is served at once.
    let t = Instant::now();
    let out = curl(&[
        "--interface",
        "127.0.0.2",
        "--cacert",
        s.ca.as_ref().unwrap().to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &s.url_of("/api/v1/health"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(stalled);
}
