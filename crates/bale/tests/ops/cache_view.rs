//! `bale cache` shows what the cache holds against its capacity and the
//! purger's marks.

use crate::common::*;

#[test]
fn bale_cache_shows_capacity_and_marks() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "bale.toml",
        "[cache]\ncapacity = \"10 MB\"\npurge_high = 0.8\npurge_low = 0.6\n",
    );
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config]);
    assert_eq!(s.put_data("/one", &bytes(1, 1_000_000)).0, 201);
    let v: serde_json::Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(v["capacity_bytes"], 10_000_000, "{v}");
    assert_eq!(v["purge_high_bytes"], 8_000_000, "{v}");
    assert_eq!(v["purge_low_bytes"], 6_000_000, "{v}");
    assert_eq!(v["cached_bytes"], 1_000_000, "{v}");
    assert!(v["filesystem_free_bytes"].as_u64().unwrap() > 0, "{v}");
    let text = s.run(&["cache"]);
    for want in [
        "capacity",
        "10.00 MB",
        "high mark",
        "(80 %)",
        "low mark",
        "(60 %)",
        "used",
        "(10 %)",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let help = s.run(&["cache", "--help"]);
    assert!(help.contains("purge_high") && help.contains("capacity"), "{help}");
}
