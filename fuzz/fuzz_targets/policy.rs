//! The policy parser on arbitrary text: a policy or an error naming where,
//! never a panic; an accepted policy routes files without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = bale_policy::Policy::parse(text) {
        let tags = bale_catalog::Tags::default();
        for (path, size) in [("/a/b/c.dat", 0u64), ("/mu2e/raw/x", 1 << 30), ("/", u64::MAX)] {
            let _ = p.route(&bale_policy::FileFacts {
                path,
                size,
                owner: "u",
                group: "g",
                tags: &tags,
            });
        }
    }
});
