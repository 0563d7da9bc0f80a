//! What ndproxy needs to know about its interfaces: index, MAC and the
//! link-local address to solicit from.
//!
//! Read from the kernel's text interfaces (`if_nametoindex`,
//! `/sys/class/net/IF/address`, `/proc/net/if_inet6`), which need no
//! privileges and no netlink socket. Interfaces may appear, disappear or be
//! recreated with another index while ndproxy runs (a mesh VPN coming up, a
//! bridge rebuilt), so the event loop reads them again on every link event
//! the kernel reports, and once a minute in case it missed one (every few
//! seconds when link events cannot be had).

use std::net::Ipv6Addr;

use l3roamd_types::MacAddr;

// ===== one interface =====

/// An interface as the kernel has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// Its MAC, if it has an Ethernet-like one.
    pub mac: Option<MacAddr>,
}

/// The interface called `name`, if it exists.
pub fn lookup(name: &str) -> Option<Link> {
    let index = index_of(name)?;
    Some(Link {
        index,
        mac: mac_of(name),
    })
}

pub use l3roamd_net::interface_index as index_of;

/// The MAC of interface `name` from sysfs; `None` for interfaces without
/// one (a TUN device, WireGuard) or when it cannot be read.
pub fn mac_of(name: &str) -> Option<MacAddr> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mac: MacAddr = text.trim().parse().ok()?;
    (mac != MacAddr::ZERO).then_some(mac)
}

/// Where clients attach to client interface `name`: the ports of a bridge
/// (a socket on the bridge itself misses DAD probes when the bridge snoops
/// multicast: it hands them only to listening ports), or the interface.
pub fn attachment_points(name: &str) -> Vec<String> {
    if name.contains('/') || name.starts_with('.') {
        return Vec::new();
    }
    match std::fs::read_dir(format!("/sys/class/net/{name}/brif")) {
        Ok(ports) => ports
            .filter_map(|p| p.ok()?.file_name().into_string().ok())
            .collect(),
        Err(_) => vec![name.to_string()],
    }
}

// ===== link-local addresses =====

/// `IFA_F_DADFAILED`: the address failed duplicate address detection.
const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`: duplicate address detection is still running.
const IFA_F_TENTATIVE: u32 = 0x40;

/// One line of `/proc/net/if_inet6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// The interface index.
    pub index: u32,
    /// The `IFA_F_*` flags.
    pub flags: u32,
}

impl IfAddr {
    /// A link-local address that can be used as a source now.
    fn is_usable_link_local(&self) -> bool {
        l3roamd_types::addr::is_link_local(&self.addr)
            && self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
    }
}

/// Parses `/proc/net/if_inet6`: `address index prefixlen scope flags name`,
/// all hex; lines that do not parse are skipped.
pub fn parse_if_inet6(text: &str) -> Vec<IfAddr> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hex = fields.next()?;
            let index = u32::from_str_radix(fields.next()?, 16).ok()?;
            let _prefix_len = fields.next()?;
            let _scope = fields.next()?;
            let flags = u32::from_str_radix(fields.next()?, 16).ok()?;
            if hex.len() != 32 {
                return None;
            }
            let addr = u128::from_str_radix(hex, 16).ok()?;
            Some(IfAddr {
                addr: Ipv6Addr::from(addr),
                index,
                flags,
            })
        })
        .collect()
}

/// The addresses of all interfaces; empty if `/proc/net/if_inet6` cannot be read.
pub fn addresses() -> Vec<IfAddr> {
    std::fs::read_to_string("/proc/net/if_inet6")
        .map(|text| parse_if_inet6(&text))
        .unwrap_or_default()
}

/// The address to send solicitations from on interface `index`: one of its
/// own usable link-local addresses, never the next-node address (the answer
/// goes to the source, and a client must keep the next-node address bound
/// to the next-node MAC, not to this node's interface MAC). The lowest
/// qualifying address is taken so the choice is stable.
pub fn solicit_source(addrs: &[IfAddr], index: u32, next_node: &Ipv6Addr) -> Option<Ipv6Addr> {
    addrs
        .iter()
        .filter(|a| a.index == index && a.is_usable_link_local() && a.addr != *next_node)
        .map(|a| a.addr)
        .min()
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};

    const IF_INET6: &str = "\
fddd0001000000000000000000000001 05 40 00 80 br-client
fe800000000000000000000000000001 05 40 20 80 br-client
fe80000000000000004e4efffe000002 05 40 20 80 br-client
fe80000000000000004e4efffe000009 05 40 20 c0 br-client
fe80000000000000000000000000beef 07 40 20 80 m-n2
00000000000000000000000000000001 01 80 10 80 lo
garbage
fe80000000000000004e4efffe00000x 05 40 20 80 br-client
";

    #[test]
    fn parses_proc_if_inet6() {
        let addrs = parse_if_inet6(IF_INET6);
        assert_eq!(addrs.len(), 6);
        assert_eq!(addrs[0].addr, "fddd:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(addrs[0].index, 5);
        assert_eq!(addrs[3].flags, 0xc0);
    }

    #[test]
    fn solicit_source_skips_next_node_tentative_and_other_links() {
        let addrs = parse_if_inet6(IF_INET6);
        let next_node: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(
            solicit_source(&addrs, 5, &next_node),
            Some("fe80::4e:4eff:fe00:2".parse().unwrap())
        );
        assert_eq!(
            solicit_source(&addrs, 7, &next_node),
            Some("fe80::beef".parse().unwrap())
        );
        assert_eq!(solicit_source(&addrs, 1, &next_node), None);
        assert_eq!(solicit_source(&addrs, 9, &next_node), None);
    }

    #[test]
    fn missing_interfaces_are_none() {
        assert_eq!(index_of("no-such-if0"), None);
        assert_eq!(index_of("bad\0name"), None);
        assert_eq!(mac_of("no-such-if0"), None);
        assert_eq!(mac_of("../etc"), None);
        assert!(lookup("no-such-if0").is_none());
        // The loopback device exists everywhere; its all-zero MAC is no MAC.
        assert_eq!(lookup("lo").map(|l| l.mac), Some(None));
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_if_inet6_never_panics() {
        let mut next = xorshift(0x5eed_0dd0_0000_0002);
        for _ in 0..3000 {
            let bytes = damaged(IF_INET6.as_bytes(), &mut next);
            let text = String::from_utf8_lossy(&bytes);
            assert!(parse_if_inet6(&text).len() <= text.lines().count());
        }
    }
}
