//! Decodes arbitrary datagrams: must never panic or hang, and whatever
//! decodes must survive an encode/decode round trip unchanged.

#![no_main]

use l3roamd_intercom::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        let bytes = packet.encode();
        assert_eq!(bytes.len(), packet.encoded_len());
        assert_eq!(Packet::decode(&bytes), Ok(packet));
    }
});
