//! A packet read from the TUN catch-all (sent by a client or the mesh): its
//! addresses, and the ICMPv6 error core would send back.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let addresses = l3roamd_core::addresses(data);
    if let Some((to, message)) = l3roamd_core::unreachable_message(data) {
        assert_eq!(addresses.map(|(src, _)| src), Some(to));
        // An error fits the minimum MTU (RFC 4443 §2.4 c).
        assert!(message.len() <= 1280 - 40);
    }
});
