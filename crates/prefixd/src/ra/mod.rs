//! Router advertisements on client links, as the shared next-node router.
//!
//! Every mesh node pretends to be the same router on its client links:
//! link-local address `mesh.next_node_address` (fe80::1 by default) and MAC
//! `mesh.next_node_mac`. A client that roams from node to node must see one
//! and the same default router everywhere, or it would keep a stale router
//! and lose its addresses' routes. So advertisements leave as whole Ethernet
//! frames ([`link`]) with both sources set to the next-node router's and a
//! source link-layer address option with the next-node MAC. Without a
//! configured `mesh.next_node_mac` the interface's own MAC is used
//! ([`router_mac`]): correct on a single node, but then roaming clients see
//! a different router MAC on each node.
//!
//! Building one advertisement from the node's prefix set:
//!
//! 1. [`prefix_infos`] turns the client prefixes (`mesh.client_prefixes`,
//!    later gateway announcements) into prefix information options with
//!    `[prefixd] valid_lifetime`/`preferred_lifetime` and
//!    `prefixd.on_link`; SLAAC (the A flag) only for /64s.
//! 2. [`advert`] adds the router lifetime, MTU and SLLAO from
//!    [`RaSettings`], and the DNS servers if any.
//! 3. [`encode`] gives the ICMPv6 message; [`advert_frame`] wraps it for a
//!    [`Destination`] that [`Schedule::due`] returned, and
//!    [`ClientLink::send_frame`] sends it.
//!
//! Per link, a [`Schedule`] says when; [`ClientLink::recv_solicitation`]
//! feeds it solicitations. On a change of the prefix set or DNS servers,
//! call [`Schedule::content_changed`] on every link.

pub mod link;
pub mod packet;
pub mod schedule;

use std::io;
use std::net::Ipv6Addr;

use l3roamd_types::{Ipv6Prefix, MacAddr};

pub use link::{is_link_gone, ClientLink};
pub use packet::{
    decode_ra, decode_solicitation_frame, encode, frame, multicast_mac, DecodeError, PrefixInfo,
    Rdnss, RouterAdvert, Solicitation, ALL_NODES,
};
pub use schedule::{xorshift, Destination, RaSettings, Random, Schedule};

/// Hop limit advertised to hosts (Linux's own default).
pub const CUR_HOP_LIMIT: u8 = 64;

/// The prefix information options for the client `prefixes`. Hosts form
/// addresses by SLAAC only in /64s (RFC 4862 §5.5.3 with RFC 2464's 64-bit
/// interface identifiers), so the A flag is set for those alone.
pub fn prefix_infos(
    prefixes: &[Ipv6Prefix],
    on_link: bool,
    valid_lifetime: u32,
    preferred_lifetime: u32,
) -> Vec<PrefixInfo> {
    prefixes
        .iter()
        .map(|prefix| PrefixInfo {
            prefix: *prefix,
            on_link,
            autonomous: prefix.prefix_len() == 64,
            valid_lifetime,
            preferred_lifetime: preferred_lifetime.min(valid_lifetime),
        })
        .collect()
}

/// The advertisement of the next-node router at `router_mac`. Reachable
/// time and retransmission timer are left to the hosts (0).
pub fn advert(
    settings: &RaSettings,
    router_mac: MacAddr,
    prefixes: Vec<PrefixInfo>,
    rdnss: Option<Rdnss>,
) -> RouterAdvert {
    RouterAdvert {
        cur_hop_limit: CUR_HOP_LIMIT,
        router_lifetime: settings.router_lifetime(),
        reachable_time: 0,
        retrans_timer: 0,
        source_lladdr: Some(router_mac),
        mtu: settings.mtu,
        prefixes,
        rdnss,
    }
}

/// The same advertisement with router lifetime 0, for
/// [`Schedule::final_adverts`] (RFC 4861 §6.2.5).
pub fn final_advert(ra: &RouterAdvert) -> RouterAdvert {
    RouterAdvert {
        router_lifetime: 0,
        ..ra.clone()
    }
}

/// The frame carrying the ICMPv6 message `icmp` from the next-node router
/// (`router_mac`, `router_ip`) to `to`.
pub fn advert_frame(
    icmp: &[u8],
    router_mac: MacAddr,
    router_ip: Ipv6Addr,
    to: Destination,
) -> Vec<u8> {
    let (dst_mac, dst_ip) = match to {
        Destination::Multicast => (multicast_mac(&ALL_NODES), ALL_NODES),
        Destination::Unicast { ip, mac } => (mac, ip),
    };
    frame(router_mac, dst_mac, router_ip, dst_ip, icmp)
}

/// The router MAC to advertise on `link`: `mesh.next_node_mac` if
/// configured, else the interface's own.
pub fn router_mac(next_node_mac: Option<MacAddr>, link: &ClientLink) -> io::Result<MacAddr> {
    match next_node_mac {
        Some(mac) => Ok(mac),
        None => link.hardware_address(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT_NODE_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4e, 0, 0, 1]);

    #[test]
    fn an_advert_is_built_from_the_prefix_set() {
        let prefixes: Vec<Ipv6Prefix> = vec![
            "fddd:1::/64".parse().unwrap(),
            "2001:db8::/48".parse().unwrap(),
        ];
        let infos = prefix_infos(&prefixes, false, 2_592_000, 604_800);
        assert!(infos[0].autonomous && !infos[1].autonomous);
        assert!(infos.iter().all(|p| !p.on_link));
        let settings = RaSettings {
            mtu: Some(1400),
            ..RaSettings::default()
        };
        let ra = advert(&settings, NEXT_NODE_MAC, infos.clone(), None);
        assert_eq!(ra.router_lifetime, 1800);
        assert_eq!(ra.source_lladdr, Some(NEXT_NODE_MAC));
        assert_eq!(ra.mtu, Some(1400));
        let decoded = decode_ra(&encode(&ra)).unwrap();
        assert_eq!(decoded, ra);
        assert_eq!(final_advert(&ra).router_lifetime, 0);
        assert_eq!(final_advert(&ra).prefixes, infos);
    }

    #[test]
    fn a_preferred_lifetime_never_exceeds_the_valid_one() {
        let infos = prefix_infos(&["fddd:1::/64".parse().unwrap()], true, 100, 200);
        assert_eq!(infos[0].preferred_lifetime, 100);
        assert!(infos[0].on_link);
    }

    #[test]
    fn frames_go_to_all_nodes_or_to_one_client() {
        let icmp = encode(&advert(&RaSettings::default(), NEXT_NODE_MAC, vec![], None));
        let router: Ipv6Addr = "fe80::1".parse().unwrap();
        let multicast = advert_frame(&icmp, NEXT_NODE_MAC, router, Destination::Multicast);
        assert_eq!(&multicast[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(&multicast[6..12], &NEXT_NODE_MAC.0);
        assert_eq!(&multicast[22..38], &router.octets());
        assert_eq!(&multicast[38..54], &ALL_NODES.octets());
        let client = MacAddr([0x02, 0xc1, 0, 0, 0, 1]);
        let ip: Ipv6Addr = "fe80::c1:ff:fe00:1".parse().unwrap();
        let unicast = advert_frame(
            &icmp,
            NEXT_NODE_MAC,
            router,
            Destination::Unicast { ip, mac: client },
        );
        assert_eq!(&unicast[..6], &client.0);
        assert_eq!(&unicast[38..54], &ip.octets());
        assert_eq!(packet::checksum(&router, &ip, &unicast[54..]), 0);
    }
}
