//! An Ethernet frame snooped on a client link (ND and MLD): never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snooped) = clientmon::packet::decode_frame(data) {
        let _ = snooped.tentative_address();
        let _ = snooped.advertised_address();
        let _ = snooped.used_addresses().count();
    }
});
