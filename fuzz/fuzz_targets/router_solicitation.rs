//! An Ethernet frame with a router solicitation, snooped by prefixd.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = prefixd::ra::packet::decode_solicitation_frame(data);
});
