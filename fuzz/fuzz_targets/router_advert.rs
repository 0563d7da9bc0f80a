//! A router advertisement (ICMPv6 message): never panics; whatever decodes
//! re-encodes to a message that decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prefixd::ra::packet::{decode_ra, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(ra) = decode_ra(data) {
        assert_eq!(decode_ra(&encode(&ra)), Ok(ra));
    }
});
