use super::*;

const MU2E: &str = include_str!("../../../examples/mu2e-sfa.toml");

fn tags(sg: Option<&str>, ff: Option<&str>) -> Tags {
    Tags {
        storage_group: sg.map(str::to_string),
        file_family: ff.map(str::to_string),
        ..Tags::default()
    }
}

fn facts<'a>(path: &'a str, size: u64, tags: &'a Tags) -> FileFacts<'a> {
    FileFacts {
        path,
        size,
        owner: "mu2epro",
        group: "mu2e",
        tags,
    }
}

/// The Mu2e table, row by row: family, max_member_size (b),
/// minimal_file_size (kB), max_files_in_pack, max_waiting_time (s).
const TABLE: &[(&str, u64, u64, u32, f64)] = &[
    ("phy-raw", 300000000, 7812500, 2000, 86400.0),
    ("phy-rec", 300000000, 7812500, 2000, 86400.0),
    ("phy-ntd", 300000000, 7812500, 2000, 86400.0),
    ("phy-sim", 300000000, 7812500, 3000, 86400.0),
    ("phy-nts", 300000000, 4882812, 3000, 86400.0),
    ("phy-etc", 300000000, 4882812, 3000, 86400.0),
    ("usr-dat", 300000000, 7812500, 2000, 86400.0),
    ("usr-sim", 300000000, 4882812, 3000, 86400.0),
    ("usr-nts", 400000000, 9765625, 2000, 86400.0),
    ("usr-etc", 300000000, 4882812, 3000, 86400.0),
    ("tat-cos", 300000000, 4882812, 3000, 86400.0),
];

#[test]
fn the_mu2e_table_loads_and_routes_as_it_says() {
    let p = Policy::parse(MU2E).unwrap();
    assert_eq!(p.rules.len(), TABLE.len() + 1);
    for &(ff, max_member, kb, files, wait) in TABLE {
        let t = tags(Some("mu2e"), Some(ff));
        let small = p.route(&facts("/mu2e/data/f.art", max_member - 1, &t));
        assert_eq!(small.rule.name, ff);
        assert_eq!(
            small.route,
            Route::Aggregate {
                pool: format!("{ff}/mu2e.{ff}.tar")
            }
        );
        let Action::Aggregate(a) = &small.rule.action else {
            panic!("{ff} aggregates")
        };
        assert_eq!(
            (a.max_member_size, a.target_size, a.max_files, a.max_wait_s),
            (max_member, kb * 1024, files, wait),
            "{ff}"
        );
        let big = p.route(&facts("/mu2e/data/big.art", max_member, &t));
        assert_eq!((big.rule.name.as_str(), &big.route), (ff, &Route::Direct), "{ff}");
    }
    // phy-raw's target is Mu2e's 8 GB tarball.
    let Action::Aggregate(a) = &p.rules[0].action else {
        panic!()
    };
    assert_eq!(a.target_size, 8_000_000_000);
    // A family the table does not name, or another experiment: the catch-all.
    for t in [
        tags(Some("mu2e"), Some("phy-new")),
        tags(Some("nova"), Some("phy-raw")),
        tags(None, None),
    ] {
        let d = p.route(&facts("/x/f", 10, &t));
        assert_eq!((d.rule.name.as_str(), &d.route), ("default", &Route::Direct));
        assert_eq!(d.skipped.len(), TABLE.len());
    }
}

#[test]
fn route_explains_every_earlier_rule() {
    let p = Policy::parse(
        r#"
[[rule]]
name = "raw tree"
match = { path = "/exp/raw/**" }
action = "aggregate"
max_member_size = "100 MB"
target_size = "10 GB"
max_files = 100
max_wait_s = 60
group_by = "dir:2"

[[rule]]
name = "alice small"
match = { owner = "alice", max_size = "1 MB" }
action = "aggregate"
max_member_size = "1 MB"
target_size = "1 GB"
max_files = 10
max_wait_s = 5
group_by = "tag:library"

[[rule]]
name = "rest"
action = "direct"
"#,
    )
    .unwrap();
    let t = tags(None, None);
    let d = p.route(&facts("/exp/raw/run7/sub/f", 5, &t));
    assert_eq!(
        d.route,
        Route::Aggregate {
            pool: "raw tree/default.default.tar/exp/raw".into()
        }
    );
    let d = p.route(&FileFacts {
        owner: "alice",
        ..facts("/home/a/f", 5, &t)
    });
    assert_eq!(d.rule.name, "alice small");
    assert_eq!(
        d.route,
        Route::Aggregate {
            pool: "alice small/default.default.tar/-".into()
        }
    );
    assert!(d.skipped[0].1.contains("not under"), "{:?}", d.skipped);
    let d = p.route(&FileFacts {
        owner: "alice",
        ..facts("/home/a/f", 2_000_000, &t)
    });
    assert_eq!(d.rule.name, "rest");
    assert!(d.skipped[1].1.contains("not below max_size"), "{:?}", d.skipped);
    let text = d.to_string();
    assert!(
        text.contains("rule \"raw tree\": no match") && text.contains("route: direct"),
        "{text}"
    );
    // A glob does not cross directories where it says one level.
    let p = Policy::parse(
        "[[rule]]\nname = \"one\"\nmatch = { path = \"/a/*\" }\naction = \"direct\"\n[[rule]]\nname = \"z\"\naction = \"direct\"\n",
    )
    .unwrap();
    assert_eq!(p.route(&facts("/a/b", 1, &t)).rule.name, "one");
    assert_eq!(p.route(&facts("/a/b/c", 1, &t)).rule.name, "z");
}

fn err(text: &str) -> PolicyError {
    Policy::parse(text).unwrap_err()
}

#[test]
fn invalid_policies_are_refused_with_line_and_column() {
    let e = err("[[rule]]\nname = \"a\"\naction = \"direct\"\nmax_fils = 3\n");
    assert_eq!(e.line, Some(4), "{e:?}");
    assert!(e.message.contains("max_fils"), "{e:?}");
    let e = err("[[rule]]\nname = \"a\"\naction = \"sideways\"\n");
    assert_eq!((e.line, e.column), (Some(3), Some(10)), "{e:?}");
    let e = err("[[rule]]\nname = \"a\"\naction = \"direct\"\nmatch = { owner = \"x\" }\n");
    assert!(e.message.contains("catch-all"), "{e:?}");
    assert_eq!(e.line, Some(1));
    assert!(err("").message.contains("at least one"));
    let agg = "action = \"aggregate\"\nmax_member_size = 1\nmax_files = 1\nmax_wait_s = 1\n";
    let e = err(&format!(
        "[[rule]]\nname = \"a\"\n{agg}\n[[rule]]\nname = \"z\"\naction = \"direct\"\n"
    ));
    assert!(e.message.contains("needs target_size"), "{e:?}");
    let e = err(&format!(
        "[[rule]]\nname = \"a\"\n{agg}target_size = 5\nminimal_file_size = 5\n[[rule]]\nname = \"z\"\naction = \"direct\"\n"
    ));
    assert!(e.message.contains("not both"), "{e:?}");
    let e = err("[[rule]]\nname = \"z\"\naction = \"direct\"\nmax_files = 3\n");
    assert!(e.message.contains("belongs to aggregate"), "{e:?}");
    let e = err("[[rule]]\nname = \"z\"\naction = \"direct\"\n[[rule]]\nname = \"z\"\naction = \"direct\"\n");
    assert!(e.message.contains("twice") && e.line == Some(4), "{e:?}");
    let e = err("[[rule]]\nname = \"a\"\nmatch = { path = \"/a/[\" }\naction = \"direct\"\n[[rule]]\nname = \"z\"\naction = \"direct\"\n");
    assert!(e.message.contains("path"), "{e:?}");
    let e = err(&format!(
        "[[rule]]\nname = \"a\"\n{agg}target_size = 5\ngroup_by = \"tag:colour\"\n[[rule]]\nname = \"z\"\naction = \"direct\"\n"
    ));
    assert!(e.message.contains("unknown tag"), "{e:?}");
    let e = err("[[rule]]\nname = \"a\"\nmatch = { min_size = 10, max_size = 5 }\naction = \"direct\"\n[[rule]]\nname = \"z\"\naction = \"direct\"\n");
    assert!(e.message.contains("min_size"), "{e:?}");
}

#[test]
fn a_rule_may_say_what_a_read_miss_does() {
    let p = Policy::parse(MU2E).unwrap();
    assert!(
        p.rules.iter().all(|r| r.on_read_miss == Some(OnReadMiss::Error)),
        "Mu2e stages first"
    );
    let p = Policy::parse(
        "[[rule]]\nname = \"raw\"\nmatch = { path = \"/raw/**\" }\naction = \"direct\"\non_read_miss = \"stage\"\n\n\
         [[rule]]\nname = \"rest\"\naction = \"direct\"\n",
    )
    .unwrap();
    assert_eq!(p.rules[0].on_read_miss, Some(OnReadMiss::Stage));
    assert_eq!(p.rules[1].on_read_miss, None, "the server's default");
    let e = err("[[rule]]\nname = \"x\"\naction = \"direct\"\non_read_miss = \"maybe\"\n");
    assert_eq!(e.line, Some(4), "{e:?}");
    assert!(e.message.contains("maybe"), "{}", e.message);
}
