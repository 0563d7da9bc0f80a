//! A MAC address as text, as ndproxy reads /sys/class/net/IF/address:
//! never panics; whatever parses prints back to the same MAC.

#![no_main]

use l3roamd_types::MacAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mac) = text.trim().parse::<MacAddr>() {
        assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
    }
});
