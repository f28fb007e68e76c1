//! Bad input at the command line and in the files read at start: every
//! case gets a clear message and a failing exit status, and changes
//! nothing (the namespace, the policy, volumes, alarms and tokens for the
//! commands; the data directory, file by file, for a refused start).
//! The rows are the CLI and start-time part of the table in
//! docs/RELIABILITY.md.

mod common;

use common::{write_file, Catalog, Server};
use std::path::Path;
use std::time::SystemTime;

/// (arguments, exit status, words the error must contain).
const COMMANDS: &[(&[&str], i32, &str)] = &[
    (
        &["put", "/nonexistent/local/file", "/d"],
        1,
        "cannot read /nonexistent/local/file",
    ),
    (&["mkdir", "relative"], 1, "path must be absolute"),
    (&["mkdir", "/d"], 1, "exists"),
    (&["rm", "/nope"], 1, "/nope does not exist"),
    (&["stat", "/nope"], 1, "/nope does not exist"),
    (&["ls", "/nope"], 1, "/nope does not exist"),
    (&["get", "/nope", "/tmp"], 1, "/nope does not exist"),
    (&["mv", "/nope", "/d/x"], 1, "/nope does not exist"),
    (&["mv", "/d", "/d/inside"], 1, "beneath itself"),
    (&["chmod", "99999", "/d"], 1, "invalid mode \"99999\""),
    (&["chmod", "abc", "/d"], 1, "invalid mode \"abc\""),
    (&["chown", "nobody", "/nope"], 1, "/nope does not exist"),
    (&["tag", "set", "/d", "bogus"], 1, "is not KEY=VALUE"),
    (&["tag", "set", "/nope", "a=b"], 1, "/nope does not exist"),
    (&["volume", "show", "L999999"], 1, "no volume L999999"),
    (&["volume", "set", "L999999", "broken"], 1, "one of: blank, appendable"),
    (&["drive", "offline", "nodrive"], 1, "no drive nodrive"),
    (&["package", "show", "nope"], 1, "no package \"nope\""),
    (&["alarm", "ack", "xyz"], 2, "invalid value 'xyz'"),
    (&["alarm", "ack", "99999"], 1, "no alarm 99999"),
    (&["stage"], 1, "name the files to stage"),
    (&["stage", "status", "9999"], 1, "no stage request 9999"),
    (&["stage", "cancel", "abc"], 2, "invalid value 'abc'"),
    (&["token", "revoke", "nope"], 1, "no live token with id \"nope\""),
    (&["purge", "/nope"], 1, "/nope does not exist"),
    (&["pin", "/d/f"], 2, "--lifetime"),
    (&["pin", "--lifetime", "10x", "/d/f"], 2, "unknown time unit"),
    (
        &["policy", "load", "/nonexistent/policy.toml"],
        1,
        "cannot read /nonexistent/policy.toml",
    ),
    (&["policy", "load", "@bad-type"], 1, "line 4, column 14"),
    (&["policy", "load", "@unclosed"], 1, "unclosed array table"),
    (&["policy", "load", "@bad-action"], 1, "unknown variant `teleport`"),
    (&["frobnicate"], 2, "unrecognized subcommand 'frobnicate'"),
    (&["policy", "load", "@copy-unknown"], 1, "not a configured library"),
    (&["policy", "load", "@copy-twice"], 1, "names library \"lib1\" twice"),
    (&["verify"], 2, "required"),
    (&["verify", "--volume", "L999999"], 1, "no volume \"L999999\""),
    (&["verify", "--package", "nope"], 1, "no package \"nope\""),
    (&["verify", "--cache", "--rate", "fast"], 1, "not a byte size"),
    (&["recover"], 2, "required"),
];

const POLICIES: &[(&str, &str)] = &[
    (
        "bad-type",
        "[[rule]]\nname = \"x\"\naction = \"aggregate\"\nmax_wait_s = \"soon\"\n",
    ),
    ("unclosed", "[[rule]\n"),
    ("bad-action", "[[rule]]\nname = \"x\"\naction = \"teleport\"\n"),
    (
        "copy-unknown",
        "[[rule]]\nname = \"x\"\naction = \"direct\"\ncopy_to = [\"nowhere\"]\n",
    ),
    (
        "copy-twice",
        "[[rule]]\nname = \"x\"\naction = \"direct\"\ncopy_to = [\"lib1\", \"lib1\"]\n",
    ),
];

/// (config file text or policy name with '@', words the error must contain).
const STARTS: &[(&str, &str)] = &[
    (
        "[cache]\npurge_high = 0.5\npurge_low = 0.9\n",
        "must satisfy 0 < low < high",
    ),
    ("[cache\n", "TOML parse error at line 1"),
    ("[cache]\nbogus = 1\n", "unknown field `bogus`"),
    ("[ingest]\ninline_max = \"lots\"\n", "inline_max"),
    ("@bad-type", "line 4, column 14"),
    ("@unclosed", "unclosed array table"),
    ("@bad-action", "unknown variant `teleport`"),
    ("[verify]\nrepair_check_s = 0\n", "repair_check_s"),
    ("@copy-unknown", "not a configured library"),
];

/// What the commands may not change.
fn snapshot(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = s.tree().iter().map(|(p, n)| format!("{p} {n}")).collect();
    for args in [
        &["policy", "show"][..],
        &["volumes", "--json"],
        &["alarms", "--all", "--json"],
        &["token", "list"],
    ] {
        v.push(s.run(args));
    }
    v
}

/// Every file under the data directory with its size and mtime.
fn files(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.path().display().to_string(), m.len(), m.modified().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn bad_commands_and_starts(catalog: Catalog) {
    let mut s = Server::start_on(catalog);
    let cfg = tempfile::tempdir().unwrap();
    for (name, text) in POLICIES {
        write_file(cfg.path(), &format!("{name}.toml"), text);
    }
    let at = |a: &str| match a.strip_prefix('@') {
        Some(name) => cfg.path().join(format!("{name}.toml")).display().to_string(),
        None => a.to_string(),
    };
    s.run(&["mkdir", "/d"]);
    let local = write_file(cfg.path(), "f", "data");
    s.run(&["put", &local, "/d"]);
    let before = snapshot(&s);
    for (args, code, words) in COMMANDS {
        let args: Vec<String> = args.iter().map(|a| at(a)).collect();
        let out = s.bale().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "bale {}: {err}", args.join(" "));
        assert!(err.contains(words), "bale {}: {err:?} lacks {words:?}", args.join(" "));
    }
    // No server, a bad server URL, a bad token.
    for (env, value, words) in [
        (
            "BALE_SERVER",
            "http://127.0.0.1:1",
            "is the server running at http://127.0.0.1:1?",
        ),
        ("BALE_SERVER", "notaurl", "must be an http:// or https:// URL"),
        ("BALE_TOKEN", "wrong", "invalid or revoked token"),
    ] {
        let out = s.bale().env(env, value).args(["ls", "/"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env}={value}: {err}");
        assert!(err.contains(words), "{env}={value}: {err:?}");
    }
    assert_eq!(snapshot(&s), before, "a refused command changed something");

    // Starts refused over a bad config or policy file touch nothing.
    assert!(s.terminate().success());
    let data = s.data_dir();
    let on_disk = files(&data);
    for (text, words) in STARTS {
        let (flag, file) = match text.strip_prefix('@') {
            Some(_) => ("--policy", at(text)),
            None => ("--config", write_file(cfg.path(), "bale.toml", text)),
        };
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args([flag, &file])
            .env("BALE_LOG", "warn");
        if let Some(url) = s.catalog_url() {
            cmd.args(["--catalog", url]);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "serve {flag} {text:?}: {err}");
        assert!(err.contains(words), "serve {flag} {text:?}: {err:?} lacks {words:?}");
        assert_eq!(
            files(&data),
            on_disk,
            "the refused start {text:?} changed the data directory"
        );
    }
    // A refused start needs no recovery: the next one was clean.
    s.restart();
    assert_eq!(snapshot(&s), before);
    let workers = s.api_get("workers");
    assert!(
        workers.as_array().unwrap().iter().all(|w| w["name"] != "crash check"),
        "a clean stop followed by refused starts was taken for a crash: {workers}"
    );
}

on_both_catalogs!(bad_commands_and_starts);
