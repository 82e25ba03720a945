//! Entry points for the cargo-fuzz targets in `fuzz/`, reaching decoders that are private to
//! their modules. Built only with the `fuzzing` feature, so the normal API stays as it is.

/// The dns probe's path for one captured Ethernet frame: the UDP datagram in it, then the
/// DNS message in that.
pub fn dns_frame(frame: &[u8]) {
    if let Some((_, _, _, _, payload)) = crate::probe::dns::udp_of(frame) {
        let _ = crate::names::decode(payload);
    }
}
