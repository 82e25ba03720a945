//! A course file through parsing, its own checks, and the checks against the scenarios it
//! names (bundled ones: a bundled course's paths are refused, so nothing is read from disk).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::scenario::Source;

fuzz_target!(|data: &[u8]| {
    let source = Source {
        name: "bundled:fuzz".into(),
        text: String::from_utf8_lossy(data).into_owned(),
    };
    if let Ok(c) = sandbox::course::load(source) {
        let _ = c.backends();
        let _ = sandbox::report::course(&c);
    }
});
