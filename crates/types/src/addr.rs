//! Address predicates shared by the daemons. Each name says what the
//! address may be used for, because the daemons need different things:
//! client-db records a client's link-local address (it tells the MAC), while
//! clientmon only publishes addresses a host route can be installed for.

use std::net::Ipv6Addr;

use crate::Ipv6Prefix;

/// fe80::/10.
pub fn is_link_local(addr: &Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Unspecified, loopback or multicast: never the address of a host.
fn is_not_unicast(addr: &Ipv6Addr) -> bool {
    addr.is_unspecified() || addr.is_loopback() || addr.is_multicast()
}

/// Whether a client record may list `addr`: unicast, not unspecified, not
/// loopback, and not a node-client address (those belong to nodes).
/// Link-local addresses qualify: they tell the MAC's link-local address,
/// though nobody routes them.
pub fn is_recordable_client_address(addr: &Ipv6Addr, node_client_prefix: &Ipv6Prefix) -> bool {
    !(is_not_unicast(addr) || node_client_prefix.contains(addr))
}

/// Whether a host route can be installed for `addr` as a client's address:
/// unicast and global in scope (not link-local, not IPv4-mapped), and not a
/// node-client address.
pub fn is_routable_client_address(
    addr: &Ipv6Addr,
    node_client_prefix: Option<&Ipv6Prefix>,
) -> bool {
    !(is_not_unicast(addr)
        || is_link_local(addr)
        || addr.to_ipv4_mapped().is_some()
        || node_client_prefix.is_some_and(|p| p.contains(addr)))
}

/// Whether `addr` can be sought on the mesh: unicast and not link-local
/// (which means nothing off its link).
pub fn is_seekable(addr: &Ipv6Addr) -> bool {
    !(is_not_unicast(addr) || is_link_local(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn link_local_is_fe80_slash_10() {
        assert!(is_link_local(&a("fe80::1")));
        assert!(is_link_local(&a("febf::1")));
        assert!(!is_link_local(&a("fec0::1")));
        assert!(!is_link_local(&a("2001:db8::1")));
    }

    #[test]
    fn the_two_client_address_meanings_differ_on_link_local_and_mapped() {
        let ncp: Ipv6Prefix = "fd00:aa::/64".parse().unwrap();
        for addr in ["2001:db8::1", "fd00:bb::1"] {
            assert!(is_recordable_client_address(&a(addr), &ncp), "{addr}");
            assert!(is_routable_client_address(&a(addr), Some(&ncp)), "{addr}");
        }
        assert!(is_recordable_client_address(&a("fe80::1"), &ncp));
        assert!(!is_routable_client_address(&a("fe80::1"), Some(&ncp)));
        assert!(!is_routable_client_address(&a("::ffff:10.0.0.1"), None));
        for addr in ["::", "::1", "ff02::1", "fd00:aa::5"] {
            assert!(!is_recordable_client_address(&a(addr), &ncp), "{addr}");
            assert!(!is_routable_client_address(&a(addr), Some(&ncp)), "{addr}");
        }
        assert!(is_routable_client_address(&a("fd00:aa::5"), None));
    }

    #[test]
    fn seekable_addresses() {
        assert!(is_seekable(&a("2001:db8::1")));
        assert!(is_seekable(&a("::ffff:10.0.0.1")));
        for addr in ["::", "::1", "ff02::1", "fe80::1"] {
            assert!(!is_seekable(&a(addr)), "{addr}");
        }
    }
}
