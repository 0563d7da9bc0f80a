//! One route-netlink message as prefixd's kernel watch reads it.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = prefixd::netlink::parse_events(data);
});
