//! IPv6 prefixes as the lab's address plan names them (`2001:db8:a::/64`).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::error::Error;

/// An IPv6 prefix: network address and length (bits past the length are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    network: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// The prefix `network/len`; host bits of `network` are cleared, `len` is capped at 128.
    pub const fn new(network: Ipv6Addr, len: u8) -> Ipv6Prefix {
        let len = if len > 128 { 128 } else { len };
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len as u32)
        };
        Ipv6Prefix {
            network: Ipv6Addr::from_bits(network.to_bits() & mask),
            len,
        }
    }

    /// The network address (`2001:db8:a::`).
    pub const fn network(&self) -> Ipv6Addr {
        self.network
    }

    /// The prefix length.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True for `::/0`.
    pub const fn is_default(&self) -> bool {
        self.len == 0
    }

    /// True if `addr` lies in the prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        Ipv6Prefix::new(addr, self.len).network == self.network
    }

    /// The address with this prefix's upper bits and `interface_id` as the lower 64 bits
    /// (SLAAC: meaningful for /64 prefixes).
    pub fn with_interface_id(&self, interface_id: [u8; 8]) -> Ipv6Addr {
        let mut octets = self.network.octets();
        octets[8..].copy_from_slice(&interface_id);
        Ipv6Addr::from(octets)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::parse("IPv6 prefix", format!("{s:?} is not ADDRESS/LEN"));
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 128 {
            return Err(bad());
        }
        Ok(Ipv6Prefix::new(addr, len))
    }
}

/// The modified EUI-64 interface identifier of `mac` (RFC 4291 appendix A),
/// as SLAAC with `addr_gen_mode` 0 forms it.
pub fn eui64_interface_id(mac: [u8; 6]) -> [u8; 8] {
    let [a, b, c, d, e, f] = mac;
    [a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]
}

/// Parses `02:c1:00:00:00:01` into octets.
pub fn parse_mac(mac: &str) -> Option<[u8; 6]> {
    let octets: Vec<u8> = mac
        .split(':')
        .map(|o| {
            if o.len() == 2 {
                u8::from_str_radix(o, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<Vec<u8>>>()?;
    <[u8; 6]>::try_from(octets).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_print_and_contain() {
        let p: Ipv6Prefix = "2001:db8:a::5/64".parse().expect("prefix");
        assert_eq!(p.to_string(), "2001:db8:a::/64");
        assert!(p.contains("2001:db8:a::1".parse().expect("addr")));
        assert!(!p.contains("2001:db8:b::1".parse().expect("addr")));
        assert!(Ipv6Prefix::new(Ipv6Addr::UNSPECIFIED, 0).contains(Ipv6Addr::LOCALHOST));
        assert!("2001:db8::/129".parse::<Ipv6Prefix>().is_err());
        assert!("2001:db8::".parse::<Ipv6Prefix>().is_err());
    }

    #[test]
    fn eui64_addresses() {
        let mac = parse_mac("02:c1:00:00:00:01").expect("mac");
        let p: Ipv6Prefix = "2001:db8:a::/64".parse().expect("prefix");
        assert_eq!(
            p.with_interface_id(eui64_interface_id(mac)),
            "2001:db8:a::c1:ff:fe00:1"
                .parse::<Ipv6Addr>()
                .expect("addr")
        );
        assert_eq!(parse_mac("02:c1:00:00:00"), None);
        assert_eq!(parse_mac("02:c1:00:00:00:1"), None);
    }
}
