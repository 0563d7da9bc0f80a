//! The text of /proc/net/if_inet6 (read as UTF-8, as ndproxy does).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let addrs = ndproxy::parse_if_inet6(text);
        assert!(addrs.len() <= text.lines().count());
    }
});
