//! The intercom decoder (SEEK/CLAIM/INFO/ACK on the intercom port, FOUND and
//! DATA on the data port): never panics; whatever decodes re-encodes to
//! bytes that decode to the same packet.

#![no_main]

use l3roamd_intercom::{segments, Header, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(data);
    if let Ok(packet) = Packet::decode(data) {
        let bytes = packet.encode();
        assert_eq!(bytes.len(), packet.encoded_len());
        assert_eq!(Packet::decode(&bytes), Ok(packet));
    }
    for segment in segments(data) {
        let _ = segment;
    }
});
