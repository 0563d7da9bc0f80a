//! Domain types shared by every l3roamd crate.
//!
//! These are the nouns of the mesh: a client's [`MacAddr`], an IPv6
//! [`Ipv6Prefix`] (client prefixes, the node-client prefix) and the
//! [`node_client_addr`] that makes "whoever serves MAC m" reachable by unicast.
//! They parse from and print to the notation operators type in configuration
//! files and grpcurl output.

pub mod addr;
pub mod damage;

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// Why a textual MAC address or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not six colon-separated hex octets.
    #[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:01:00")]
    Mac(String),
    /// Not `address/length` with an IPv6 address and a length of 0 to 128.
    #[error("invalid IPv6 prefix {0:?}: expected address/length like fddd:1::/64")]
    Prefix(String),
    /// The prefix has bits set beyond its length.
    #[error("IPv6 prefix {0:?} has host bits set")]
    HostBits(String),
    /// A length of six bytes was expected.
    #[error("a MAC address has 6 bytes, got {0}")]
    MacLength(usize),
    /// A length of sixteen bytes was expected.
    #[error("an IPv6 address has 16 bytes, got {0}")]
    Ipv6Length(usize),
}

// ===== MAC address =====

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The all-zero address, never a real client.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds a MAC from a byte slice that must be exactly six bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<MacAddr, ParseError> {
        let octets: [u8; 6] = bytes
            .try_into()
            .map_err(|_| ParseError::MacLength(bytes.len()))?;
        Ok(MacAddr(octets))
    }

    /// Group (multicast or broadcast) addresses have the low bit of the first octet set.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The modified EUI-64 interface identifier (RFC 4291 appendix A).
    pub const fn eui64_interface_id(&self) -> [u8; 8] {
        let m = self.0;
        [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
    }

    /// The EUI-64 link-local address `fe80::/64` + interface identifier.
    pub fn link_local(&self) -> Ipv6Addr {
        with_interface_id(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), self)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::Mac(s.to_string());
        let mut octets = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for octet in octets.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(octets))
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ===== IPv6 prefix =====

/// An IPv6 prefix in canonical form (no host bits set).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// Builds a prefix; fails when `len` exceeds 128 or host bits are set.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Ipv6Prefix, ParseError> {
        if len > 128 {
            return Err(ParseError::Prefix(format!("{addr}/{len}")));
        }
        let prefix = Ipv6Prefix { addr, len };
        if prefix.network() != addr {
            return Err(ParseError::HostBits(format!("{addr}/{len}")));
        }
        Ok(prefix)
    }

    /// The prefix's first address.
    pub const fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// Its length in bits.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True only for `::/0`.
    pub const fn is_default(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> u128 {
        if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        }
    }

    fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        u128::from(*addr) & self.mask() == u128::from(self.addr)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::Prefix(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        Ipv6Prefix::new(addr, len)
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ===== node-client address =====

/// The upper 64 bits of `prefix` with the modified EUI-64 of `mac` below.
fn with_interface_id(prefix: Ipv6Addr, mac: &MacAddr) -> Ipv6Addr {
    let mut octets = prefix.octets();
    octets[8..].copy_from_slice(&mac.eui64_interface_id());
    Ipv6Addr::from(octets)
}

/// The node-client address of `mac`: "whoever serves this MAC" (`docs/protocol.md`,
/// "Node-client address").
///
/// The node-client prefix is a /64; only its upper 64 bits are used.
pub fn node_client_addr(node_client_prefix: &Ipv6Prefix, mac: &MacAddr) -> Ipv6Addr {
    with_interface_id(node_client_prefix.addr(), mac)
}

/// The MAC whose node-client address `addr` is, if it lies in `prefix` and
/// carries a modified EUI-64 interface identifier.
pub fn mac_of_node_client_addr(prefix: &Ipv6Prefix, addr: &Ipv6Addr) -> Option<MacAddr> {
    if !prefix.contains(addr) {
        return None;
    }
    let o = addr.octets();
    if o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    Some(MacAddr([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]))
}

/// Builds an address from a byte slice that must be exactly sixteen bytes long.
pub fn ipv6_from_slice(bytes: &[u8]) -> Result<Ipv6Addr, ParseError> {
    let octets: [u8; 16] = bytes
        .try_into()
        .map_err(|_| ParseError::Ipv6Length(bytes.len()))?;
    Ok(Ipv6Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac: MacAddr = "02:00:00:00:01:00".parse().unwrap();
        assert_eq!(mac.octets(), [2, 0, 0, 0, 1, 0]);
        assert_eq!(mac.to_string(), "02:00:00:00:01:00");
        assert!(!mac.is_multicast());
        assert!("33:33:00:00:00:01"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
    }

    #[test]
    fn mac_rejects_garbage() {
        for bad in [
            "",
            "02:00:00:00:01",
            "02:00:00:00:01:00:00",
            "0g:00:00:00:01:00",
            "002:00:00:00:01:00",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(
            MacAddr::from_slice(&[1, 2, 3]),
            Err(ParseError::MacLength(3))
        );
    }

    #[test]
    fn random_and_damaged_mac_text_never_panics() {
        // xorshift64: a valid MAC with characters replaced, dropped or
        // inserted from an alphabet near the format, multibyte included.
        let mut s: u64 = 0x5eed_0dd0_0000_000a;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as usize
        };
        let alphabet: Vec<char> = "0123456789abcdefABCDEFg:-: \u{e9}\u{1f600}"
            .chars()
            .collect();
        let mut parsed = 0;
        for _ in 0..5000 {
            let mut text: Vec<char> = "02:4e:4e:00:00:01".chars().collect();
            for _ in 0..next() % 3 {
                let c = alphabet[next() % alphabet.len()];
                let at = next() % text.len();
                match next() % 3 {
                    0 => text[at] = c,
                    1 => {
                        text.remove(at);
                    }
                    _ => text.insert(at, c),
                }
            }
            let text: String = text.into_iter().collect();
            if let Ok(mac) = text.parse::<MacAddr>() {
                parsed += 1;
                assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac), "{text:?}");
            }
        }
        assert!(parsed > 0);
    }

    #[test]
    fn node_client_address_matches_captured_claim() {
        // Vector 7 of crates/intercom/tests/data: CLAIM for 02:00:00:00:01:00 went to fec0::ff:fe00:100.
        let prefix: Ipv6Prefix = "fec0::/64".parse().unwrap();
        let mac: MacAddr = "02:00:00:00:01:00".parse().unwrap();
        let addr = node_client_addr(&prefix, &mac);
        assert_eq!(addr, "fec0::ff:fe00:100".parse::<Ipv6Addr>().unwrap());
        assert_eq!(mac_of_node_client_addr(&prefix, &addr), Some(mac));
        assert_eq!(
            mac.link_local(),
            "fe80::ff:fe00:100".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn prefix_parse_and_contains() {
        let p: Ipv6Prefix = "fddd:1::/64".parse().unwrap();
        assert!(p.contains(&"fddd:1::100".parse().unwrap()));
        assert!(!p.contains(&"fddd:2::100".parse().unwrap()));
        assert!(matches!(
            "fddd:1::1/64".parse::<Ipv6Prefix>(),
            Err(ParseError::HostBits(_))
        ));
        assert!("fddd:1::/129".parse::<Ipv6Prefix>().is_err());
        assert!("fddd:1::".parse::<Ipv6Prefix>().is_err());
        let d: Ipv6Prefix = "::/0".parse().unwrap();
        assert!(d.is_default() && d.contains(&"2001:db8::1".parse().unwrap()));
    }
}
