//! A scenario file through parsing, validation and every draw validation builds a plan for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::scenario::Source;

fuzz_target!(|data: &[u8]| {
    let source = Source {
        name: "fuzz.yaml".into(),
        text: String::from_utf8_lossy(data).into_owned(),
    };
    if let Ok(s) = source.load() {
        let diagnostics = sandbox::plan::check_draws(&s);
        let _ = source.invalid(diagnostics);
    }
});
