//! The README's tour, run as written: every command of its marked block
//! (between `<!-- tour -->` and `<!-- /tour -->`), in order, in a shell
//! whose `bale` is this build, from a directory where `./bale-data` is the
//! server's data directory (as after the quick start) and the repository's
//! `examples/` is at hand. Each line must succeed, and what the README's
//! comments promise at the key steps is checked, so that the README stays
//! true because CI says so.

use crate::common::*;
use std::process::Command;

/// The shell lines of the README's tour, without comments and the alias.
fn tour_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("<!-- tour -->").expect("the README marks its tour");
    let end = readme
        .find("<!-- /tour -->")
        .expect("the README marks the end of its tour");
    let block = &readme[start..end];
    let body = block
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(b, _)| b)
        .expect("a sh code block in the tour");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("alias bale="))
        .map(String::from)
        .collect()
}

/// What the README says a step shows: (start of the line, text its output has).
const PROMISES: &[(&str, &str)] = &[
    ("bale policy load examples/mu2e-sfa.toml", "one by one"),
    ("bale policy check /mu2e/run1/x.root", "rule phy-raw"),
    ("bale stat /mu2e/run1/f8.dat", "pooled"),
    ("bale queue flush --wait", "every archive job is on tape"),
    ("bale stat /mu2e/run1/big.dat", "archived"),
    ("bale package show /mu2e/run1/f8.dat", "/mu2e/run1/f8.dat"),
    ("bale purge --all --dry-run; bale purge --all", "pinned"),
    ("bale archiveinfo", "TAPE"),
    ("bale stage --from-file list.txt --wait", "3 completed"),
    ("bale history /mu2e/run1/data/f2.dat", "staged"),
    ("bale status", "ready"),
    ("curl -s", "bale_ingest_files_total"),
    ("curl -o /dev/null", "303 http"),
    ("bale recover --all --data-dir ./new-site", "recorded"),
];

#[test]
fn the_readme_tour_runs_as_written() {
    let lines = tour_lines();
    assert!(lines.len() > 30, "{} lines", lines.len());
    let s = Server::start_on(Catalog::Sqlite);
    let work = tempfile::Builder::new().prefix("bale-tour-").tempdir().unwrap();
    let w = work.path();
    std::os::unix::fs::symlink(s.data_dir(), w.join("bale-data")).unwrap();
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"),
        w.join("examples"),
    )
    .unwrap();
    let mut seen = Vec::new();
    for line in &lines {
        let script = format!("set -eo pipefail\nbale() {{ \"$BALE_BIN\" \"$@\"; }}\n{line}\n");
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(w)
            .env("BALE_BIN", BIN)
            .env("BALE_SERVER", &s.url)
            .env("BALE_TOKEN", &s.token)
            .env("BALE_LOG", "warn")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "the tour's line `{line}` failed ({}):\n{text}",
            out.status
        );
        for (start, promise) in PROMISES {
            if line.starts_with(start) {
                assert!(text.contains(promise), "`{line}` should show {promise:?}:\n{text}");
                seen.push(*start);
            }
        }
    }
    for (start, _) in PROMISES {
        assert!(seen.contains(start), "the tour has no line `{start}...`");
    }
    // What the tour got back is what it put.
    assert_eq!(
        std::fs::read(w.join("f2.dat")).unwrap(),
        std::fs::read(w.join("data/f2.dat")).unwrap()
    );
    for i in 1..=7 {
        let name = format!("f{i}.dat");
        assert_eq!(
            std::fs::read(w.join("back").join(&name)).unwrap(),
            std::fs::read(w.join("data").join(&name)).unwrap(),
            "{name}"
        );
    }
}
