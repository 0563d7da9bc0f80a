//! A route-netlink message as clientmon reads it: links, bridge FDB and
//! neighbour entries, and the presence events they become.

#![no_main]

use std::time::Instant;

use clientmon::links::{Link, Links};
use clientmon::netlink::{fdb_entry, fdb_event, neighbour_entry, neighbour_event};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

fn links() -> Links {
    let mut links = Links::new(vec!["br-client".into()], vec!["wlan0".into()]);
    let link = |index: u32, name: &str, master, is_bridge| Link {
        index,
        name: name.into(),
        mac: Some(l3roamd_intercom::MacAddr([2, 0, 0, 0, 0, index as u8])),
        master,
        lower: None,
        is_bridge,
        up: true,
        carrier: true,
    };
    links.replace_all(vec![
        link(2, "br-client", None, true),
        link(3, "veth-c1", Some(2), false),
        link(4, "wlan0", Some(2), false),
    ]);
    links
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(data) else {
        return;
    };
    let NetlinkPayload::InnerMessage(inner) = msg.payload else {
        return;
    };
    let mut links = links();
    let now = Instant::now();
    match inner {
        RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::DelLink(m) => {
            if let Some(link) = Link::from_message(&m) {
                let _ = links.upsert(link);
            }
        }
        RouteNetlinkMessage::NewNeighbour(m) | RouteNetlinkMessage::DelNeighbour(m) => {
            if let Some(entry) = fdb_entry(&m) {
                let _ = fdb_event(&entry, false, &links, now);
                let _ = fdb_event(&entry, true, &links, now);
            }
            if let Some(entry) = neighbour_entry(&m) {
                let _ = neighbour_event(&entry, &links, now);
            }
        }
        _ => {}
    }
});
