//! Every column of every table the CLI prints is explained in that
//! command's `--help`: each table is printed from a server with something
//! in it, its header words taken from the output, and each looked for in
//! the help.

use crate::common::*;
use std::collections::BTreeSet;

/// The upper-case words of the header lines of a table's output: lines
/// with two or more upper-case words and no lower case outside
/// parentheses.
fn header_words(out: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for line in out.lines() {
        let outside: String = {
            let mut depth = 0;
            line.chars()
                .filter(|c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .collect()
        };
        if outside.chars().any(|c| c.is_lowercase()) {
            continue;
        }
        let upper: Vec<&str> = outside
            .split(|c: char| c.is_whitespace() || c == '/' || c == ':')
            .filter(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
            .collect();
        if upper.len() >= 2 {
            words.extend(upper.into_iter().map(str::to_string));
        }
    }
    words
}

#[test]
fn every_column_of_every_table_is_explained_in_its_help() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", SMALL_LIBRARY);
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config]);
    s.run(&["mkdir", "/c"]);
    assert_eq!(s.put_data("/c/a", &bytes(1, 5000)).0, 201);
    assert_eq!(s.put_data("/c/b", &bytes(2, 7000)).0, 201);
    s.run(&["queue", "flush"]);
    s.wait_for(60, "a package on tape", |s| {
        s.api_get("packages").as_array().is_some_and(|p| !p.is_empty())
    });
    // One of each: an open pool, a queued job, a quota, an alarm.
    assert_eq!(s.put_data("/c/waiting", &bytes(3, 100)).0, 201);
    s.run(&["drive", "offline", "lib1-d1"]);
    s.run(&["drive", "offline", "lib1-d2"]);
    assert_eq!(s.put_data("/c/big", &bytes(4, 3 << 20)).0, 201);
    s.run(&["quota", "set", "default", "--files", "1000"]);
    s.catalog_sql(
        "INSERT INTO alarms (time, severity, source, message, last_time, count) \
         VALUES (1, 'warning', 'cache', 'a test alarm', 1, 1)",
    );
    let package = s.api_get("packages")[0]["id"].as_str().unwrap().to_string();
    let volume = s.api_get("packages")[0]["volume"].as_str().unwrap().to_string();
    let tables: Vec<Vec<&str>> = vec![
        vec!["volumes"],
        vec!["volume", "show", &volume],
        vec!["drives"],
        vec!["alarms"],
        vec!["workers"],
        vec!["queue", "--all"],
        vec!["packages"],
        vec!["package", "show", &package],
        vec!["quota"],
        vec!["token", "list"],
        vec!["cache"],
        vec!["status"],
        vec!["history", "/c/a"],
    ];
    let mut missing = Vec::new();
    for args in &tables {
        let out = s.run(args);
        let words = header_words(&out);
        assert!(
            !words.is_empty(),
            "no table header in `bale {}`:\n{out}",
            args.join(" ")
        );
        let cmd: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--"))
            .take_while(|a| *a != volume && *a != package && !a.starts_with('/'))
            .collect();
        let help = s.run(&[cmd.as_slice(), &["--help"]].concat());
        let help_words: BTreeSet<&str> = help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).collect();
        for w in &words {
            if !help_words.contains(w.as_str()) {
                missing.push(format!("bale {}: {w}", cmd.join(" ")));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "columns not explained in --help:\n{}",
        missing.join("\n")
    );
}
