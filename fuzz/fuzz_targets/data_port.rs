//! What core does with a datagram on the data port: decode it, and for DATA
//! read the addresses of the encapsulated IPv6 packet (and build the ICMPv6
//! error it would get if nobody claims its destination).

#![no_main]

use l3roamd_intercom::{Body, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    if let Body::Data { payload } = &packet.body {
        let _ = l3roamd_core::addresses(payload);
        if let Some((to, message)) = l3roamd_core::unreachable_message(payload) {
            assert!(!to.is_multicast());
            assert!(message.len() <= 1280 - 40);
        }
    }
});
