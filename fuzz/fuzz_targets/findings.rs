//! A learner's findings file: strict YAML, then the checks made before grading.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::yaml;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = yaml::Limits {
        max_bytes: sandbox::exercise::MAX_FINDINGS_BYTES as usize,
    };
    if let Ok(f) = yaml::from_str::<grader::findings::Findings>(text, limits) {
        let _ = grader::score::lint(&f);
    }
});
