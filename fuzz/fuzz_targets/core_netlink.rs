//! A route-netlink message as core reads it: routes and neighbour entries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(data) else {
        return;
    };
    match &msg.payload {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m),
        ) => {
            let _ = l3roamd_core::route_from(m);
        }
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewNeighbour(m) | RouteNetlinkMessage::DelNeighbour(m),
        ) => {
            let _ = l3roamd_core::neighbour_from(m);
        }
        _ => {}
    }
});
