//! An ICMPv6 neighbour advertisement received by ndproxy: never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ndproxy::nd::decode_advertisement(data);
});
