//! The DNS decoders: a UDP payload as the lab's name server reads it, and a captured frame as
//! the dns probe reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sandbox::names::decode(data);
    sandbox::fuzzing::dns_frame(data);
});
