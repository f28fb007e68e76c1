//! Namespace path normalisation on arbitrary bytes: an accepted path is
//! absolute, has no empty, "." or ".." component, parses to itself, and
//! survives the trip through a URL.
#![no_main]
use bale_util::{url_path, NsPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = NsPath::parse_bytes(data) else { return };
    let s = p.as_str();
    assert!(s.starts_with('/'));
    for c in p.components() {
        assert!(!c.is_empty() && c != "." && c != "..", "{s:?}");
    }
    assert_eq!(NsPath::parse(s).unwrap(), p);
    let url = url_path(s);
    let back = percent_encoding::percent_decode_str(&url).decode_utf8().unwrap();
    let back = if back.is_empty() { "/".into() } else { back };
    assert_eq!(NsPath::parse(&back).unwrap(), p, "{s:?} -> {url:?}");
    if let Some(parent) = p.parent() {
        assert_eq!(parent.join(p.name().unwrap()).unwrap(), p);
    }
});
