//! This node's interfaces, as far as client presence cares.
//!
//! The rtnetlink adapter keeps a [`Links`] table from link dumps and
//! RTM_NEWLINK/RTM_DELLINK events. It answers the questions the sources
//! need: which interfaces clients attach through (the *attachment points*:
//! ports of a client bridge, a client interface that is not a bridge, a
//! wireless client interface), which MACs are this node's own, and whether
//! a neighbour entry lives on the client side. It also says which
//! attachment points were lost by a change, so clients behind them are gone
//! at once. Pure: no sockets, tested without root.

use std::collections::{BTreeMap, BTreeSet};

use l3roamd_types::MacAddr;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::AddressFamily;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its MAC, if it has an Ethernet-like one.
    pub mac: Option<MacAddr>,
    /// The bridge (or other master) it is enslaved to.
    pub master: Option<u32>,
    /// The device it is stacked on (a macvlan's or VLAN's lower device).
    pub lower: Option<u32>,
    /// Whether it is a bridge.
    pub is_bridge: bool,
    /// Administratively up.
    pub up: bool,
    /// Up with carrier: frames can flow.
    pub carrier: bool,
}

impl Link {
    /// Reads an RTM_NEWLINK message; `None` for messages that are not about
    /// an interface as a whole (AF_BRIDGE port notifications).
    pub fn from_message(msg: &LinkMessage) -> Option<Link> {
        if msg.header.interface_family != AddressFamily::Unspec {
            return None;
        }
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            master: None,
            lower: None,
            is_bridge: false,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg
                .header
                .flags
                .contains(LinkFlags::Up | LinkFlags::LowerUp),
        };
        // IFLA_LINK names an interface of another namespace when
        // IFLA_LINK_NETNSID comes along (a veth's peer, a macvlan or VXLAN
        // whose lower device was moved away): that index means nothing here,
        // and taken as a local one it could be a client bridge, making the
        // neighbours of a mesh veth look like clients.
        let foreign_lower = msg
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::LinkNetNsId(_)));
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Address(bytes) => link.mac = MacAddr::from_slice(bytes).ok(),
                LinkAttribute::Controller(index) => link.master = Some(*index),
                LinkAttribute::Link(index)
                    if *index != 0 && *index != msg.header.index && !foreign_lower =>
                {
                    link.lower = Some(*index)
                }
                LinkAttribute::LinkInfo(infos) => {
                    link.is_bridge = infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
                }
                _ => {}
            }
        }
        (!link.name.is_empty()).then_some(link)
    }
}

/// The interfaces by index, with the configured client and wireless names.
#[derive(Debug, Clone, Default)]
pub struct Links {
    by_index: BTreeMap<u32, Link>,
    client_interfaces: Vec<String>,
    wireless_interfaces: Vec<String>,
}

impl Links {
    /// An empty table for these configured interfaces.
    pub fn new(client_interfaces: Vec<String>, wireless_interfaces: Vec<String>) -> Links {
        Links {
            by_index: BTreeMap::new(),
            client_interfaces,
            wireless_interfaces,
        }
    }

    /// Whether no interface is known yet (before the first dump).
    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// The interface with index `index`.
    pub fn get(&self, index: u32) -> Option<&Link> {
        self.by_index.get(&index)
    }

    /// The index of the interface named `name`.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.by_index
            .values()
            .find(|l| l.name == name)
            .map(|l| l.index)
    }

    fn is_client_interface(&self, link: &Link) -> bool {
        self.client_interfaces.contains(&link.name)
    }

    /// Whether `index` is a configured client interface that is a bridge.
    pub fn is_client_bridge(&self, index: u32) -> bool {
        self.get(index)
            .is_some_and(|l| l.is_bridge && self.is_client_interface(l))
    }

    /// Whether clients attach through `link`: a port of a client bridge, a
    /// client interface that is not a bridge, or a wireless client interface.
    fn is_attachment(&self, link: &Link) -> bool {
        (self.is_client_interface(link) && !link.is_bridge)
            || link.master.is_some_and(|m| self.is_client_bridge(m))
            || self.wireless_interfaces.contains(&link.name)
    }

    /// Whether frames reach clients through `link` now: it has carrier and,
    /// for a port, its bridge is up.
    fn is_live_attachment(&self, link: &Link) -> bool {
        self.is_attachment(link)
            && link.carrier
            && link
                .master
                .and_then(|m| self.get(m))
                .is_none_or(|master| master.up)
    }

    /// The name of attachment point `index`, if it is one.
    pub fn attachment(&self, index: u32) -> Option<&str> {
        self.get(index)
            .filter(|l| self.is_attachment(l))
            .map(|l| l.name.as_str())
    }

    /// The client interface a neighbour entry on `index` belongs to: the
    /// interface itself, the bridge of a port, or the lower device of a
    /// macvlan or VLAN stacked on a client interface (the next-node
    /// macvlan carries the node's addresses on client links).
    pub fn client_side(&self, index: u32) -> Option<&str> {
        let link = self.get(index)?;
        if self.is_client_interface(link) || self.wireless_interfaces.contains(&link.name) {
            return Some(&link.name);
        }
        for up in [link.master, link.lower].into_iter().flatten() {
            if let Some(l) = self.get(up).filter(|l| self.is_client_interface(l)) {
                return Some(&l.name);
            }
        }
        None
    }

    /// The attachment points to snoop on, by index.
    pub fn snoop_points(&self) -> BTreeMap<u32, String> {
        self.by_index
            .values()
            .filter(|l| self.is_attachment(l))
            .map(|l| (l.index, l.name.clone()))
            .collect()
    }

    /// The MACs of all of this node's interfaces.
    pub fn own_macs(&self) -> BTreeSet<MacAddr> {
        self.by_index
            .values()
            .filter_map(|l| l.mac)
            .filter(|m| *m != MacAddr::ZERO)
            .collect()
    }

    fn live(&self) -> BTreeMap<u32, String> {
        self.by_index
            .values()
            .filter(|l| self.is_live_attachment(l))
            .map(|l| (l.index, l.name.clone()))
            .collect()
    }

    /// Replaces the table with a full dump; returns the attachment points lost.
    pub fn replace_all(&mut self, links: Vec<Link>) -> Vec<String> {
        let before = self.live();
        self.by_index = links.into_iter().map(|l| (l.index, l)).collect();
        self.lost_since(before)
    }

    /// Adds or updates one interface; returns the attachment points lost.
    pub fn upsert(&mut self, link: Link) -> Vec<String> {
        let before = self.live();
        self.by_index.insert(link.index, link);
        self.lost_since(before)
    }

    /// Removes one interface; returns the attachment points lost.
    pub fn remove(&mut self, index: u32) -> Vec<String> {
        let before = self.live();
        self.by_index.remove(&index);
        self.lost_since(before)
    }

    fn lost_since(&self, before: BTreeMap<u32, String>) -> Vec<String> {
        let after = self.live();
        before
            .into_iter()
            .filter(|(index, _)| !after.contains_key(index))
            .map(|(_, name)| name)
            .collect()
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: u8) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(MacAddr([0x02, 0, 0, 0, 0, mac])),
            master: None,
            lower: None,
            is_bridge: false,
            up: true,
            carrier: true,
        }
    }

    /// br-client (2) with ports veth-c1 (3), veth-c2 (4), the macvlan
    /// local-node (5) on it, a mesh interface (6), wireless client0 (7) as a
    /// port.
    fn node() -> Links {
        let mut links = Links::new(vec!["br-client".into()], vec!["client0".into()]);
        let bridge = Link {
            is_bridge: true,
            ..link(2, "br-client", 2)
        };
        let port = |i, n: &str| Link {
            master: Some(2),
            ..link(i, n, i as u8)
        };
        let macvlan = Link {
            lower: Some(2),
            ..link(5, "local-node", 5)
        };
        let lost = links.replace_all(vec![
            Link {
                mac: Some(MacAddr::ZERO),
                ..link(1, "lo", 0)
            },
            bridge,
            port(3, "veth-c1"),
            port(4, "veth-c2"),
            macvlan,
            link(6, "mesh0", 6),
            port(7, "client0"),
        ]);
        assert!(lost.is_empty());
        links
    }

    #[test]
    fn attachment_points_are_ports_and_wireless_interfaces() {
        let links = node();
        assert_eq!(
            links.snoop_points().into_values().collect::<Vec<_>>(),
            ["veth-c1", "veth-c2", "client0"]
        );
        assert_eq!(links.attachment(3), Some("veth-c1"));
        assert_eq!(links.attachment(2), None);
        assert_eq!(links.attachment(5), None);
        assert!(links.is_client_bridge(2));
        assert_eq!(links.index_of("veth-c2"), Some(4));
    }

    #[test]
    fn neighbours_on_the_next_node_macvlan_are_on_the_client_side() {
        let links = node();
        assert_eq!(links.client_side(5), Some("br-client"));
        assert_eq!(links.client_side(2), Some("br-client"));
        assert_eq!(links.client_side(3), Some("br-client"));
        assert_eq!(links.client_side(6), None);
        assert_eq!(links.client_side(99), None);
    }

    fn message(index: u32, name: &str, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        msg.attributes = vec![LinkAttribute::IfName(name.into())];
        msg.attributes.extend(attributes);
        msg
    }

    #[test]
    fn a_lower_device_in_another_namespace_is_not_a_local_one() {
        let mut links = node();
        // A macvlan on br-client (index 2) in this namespace.
        let local = message(8, "macvlan0", vec![LinkAttribute::Link(2)]);
        let local = Link::from_message(&local).expect("link");
        assert_eq!(local.lower, Some(2));
        // A mesh veth whose peer has index 2 in the neighbour's namespace:
        // its neighbours (the next mesh node) are not on the client side.
        let veth = message(
            9,
            "m-n3",
            vec![LinkAttribute::Link(2), LinkAttribute::LinkNetNsId(0)],
        );
        let veth = Link::from_message(&veth).expect("link");
        assert_eq!(veth.lower, None);
        assert!(links.upsert(veth).is_empty());
        assert_eq!(links.client_side(9), None);
        assert!(links.upsert(local).is_empty());
        assert_eq!(links.client_side(8), Some("br-client"));
    }

    #[test]
    fn own_macs_are_every_interface_but_zero() {
        let links = node();
        let own = links.own_macs();
        assert_eq!(own.len(), 6);
        assert!(!own.contains(&MacAddr::ZERO) && own.contains(&MacAddr([2, 0, 0, 0, 0, 5])));
    }

    #[test]
    fn ports_that_vanish_leave_or_lose_carrier_are_lost() {
        let mut links = node();
        assert_eq!(links.remove(3), vec!["veth-c1".to_string()]);
        let released = Link {
            master: None,
            ..link(4, "veth-c2", 4)
        };
        assert_eq!(links.upsert(released), vec!["veth-c2".to_string()]);
        let no_carrier = Link {
            master: Some(2),
            carrier: false,
            ..link(7, "client0", 7)
        };
        assert_eq!(
            links.upsert(no_carrier.clone()),
            vec!["client0".to_string()]
        );
        // Nothing more to lose.
        assert!(links.upsert(no_carrier).is_empty());
        assert!(links.remove(6).is_empty());
    }

    #[test]
    fn a_client_bridge_going_down_loses_all_its_ports() {
        let mut links = node();
        let down = Link {
            is_bridge: true,
            up: false,
            carrier: false,
            ..link(2, "br-client", 2)
        };
        let mut lost = links.upsert(down);
        lost.sort();
        assert_eq!(lost, ["client0", "veth-c1", "veth-c2"]);
    }
}
