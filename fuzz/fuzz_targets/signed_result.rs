//! A signed result as `grade --verify` reads it: JSON, then the signature check.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sandbox::cert::{InstructorKey, InstructorPublic, SignedResult};

static PUBLIC: LazyLock<InstructorPublic> = LazyLock::new(|| InstructorKey::generate().public());

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<SignedResult>(data) {
        let _ = sandbox::cert::verify(&PUBLIC, &r);
    }
});
