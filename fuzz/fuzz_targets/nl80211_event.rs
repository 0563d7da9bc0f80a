//! A message of the nl80211 event socket (station added or removed), as
//! clientmon reads it: the generic-netlink message, then its attributes.

#![no_main]

use genetlink::message::RawGenlMessage;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::NetlinkMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = NetlinkMessage::<RawGenlMessage>::deserialize(data) {
        let _ = clientmon::nl80211::decode_event(&msg);
    }
});
