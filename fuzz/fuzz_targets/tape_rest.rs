//! The WLCG Tape REST API's request bodies (stage; cancel, release and
//! archiveinfo path lists) on arbitrary bytes, parsed as the handlers parse
//! them: an answer or an error message, never a panic; an accepted stage
//! request names at least one file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (stage, _paths) = bale_api::tape_rest_bodies(data);
    if let Ok((paths, _lifetime)) = stage {
        assert!(!paths.is_empty());
    }
});
