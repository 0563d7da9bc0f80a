//! A frame on ndproxy's DAD sockets, and the kernel's route text it reads:
//! never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ndproxy::dad::decode_probe(data);
    let _ = ndproxy::dad::parse_ipv6_route(&String::from_utf8_lossy(data));
});
