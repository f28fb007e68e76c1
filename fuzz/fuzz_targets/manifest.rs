//! The manifest a package carries first, on arbitrary JSON: wrapped in a
//! well-formed tar as a package's first member, read back as a restore or
//! `bale recover` reads it. Never a panic; an accepted manifest lists
//! members whose data the tar held.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "bale-manifest-fuzz.json", data).unwrap();
    let tape = b.into_inner().unwrap();
    if let Ok(m) = bale_pack::read(tape.as_slice(), |_, r| std::io::copy(r, &mut std::io::sink()).map(|_| ())) {
        // Only a manifest without members can be complete in a tar that
        // holds nothing else.
        assert!(m.members.is_empty());
    }
    let _ = serde_json::from_slice::<bale_pack::Manifest>(data);
});
