//! The reader of packages staged from tape, on arbitrary bytes: it must
//! answer Ok or an error, never panic, hang or read out of bounds; and
//! whatever it accepts, every member it handed out matched the manifest.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut seen = Vec::new();
    let r = bale_pack::read(data, |m, r| {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)?;
        seen.push((m.meta.size, buf.len() as u64));
        Ok(())
    });
    if let Ok(manifest) = r {
        assert_eq!(seen.len(), manifest.members.len());
        for (want, got) in seen {
            assert_eq!(want, got);
        }
    }
});
