//! A submission bundle read from a file, as `grade` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("fuzz-bundle-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = sandbox::cert::Bundle::read(&path);
    let _ = sandbox::cert::Bundle::digest(&path);
});
