//! Mesh-wide duplicate address defence: a client testing an address
//! (duplicate address detection, RFC 4862 section 5.4) that a client of
//! another node uses gets a defending neighbour advertisement, so its DAD
//! fails and it picks another address.
//!
//! What goes in: a DAD probe seen on a client link (a neighbour
//! solicitation from `::`, with the Ethernet source as the client's MAC,
//! [`decode_probe`]), the kernel's IPv6 routes at that moment
//! ([`parse_ipv6_route`]), and `now`. What comes out: a [`Verdict`]. The
//! evidence that another node uses the address is its `/128` learned
//! through a mesh interface (babel's route to the node serving it), not
//! unreachable, and no `/128` of ours via a client interface. The
//! exception is a client roaming here: its node-client address (which
//! names its MAC) is still routed to its old node, and the claim core
//! makes will bring its addresses here; refusing it would take the address
//! of a client that only moved. Defences are bounded by a token bucket and
//! by one per address per [`Settings::per_address`]. No sockets, no clock.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_daemon::TokenBucket;
use l3roamd_net::bpf::{
    jump, stmt, BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W,
    LOAD_PKTTYPE, PACKET_OUTGOING,
};
use l3roamd_types::{node_client_addr, Ipv6Prefix, MacAddr};

use crate::nd;

// ===== the probe on the wire =====

/// Bytes of a frame passed to userspace: the headers and the target fit.
pub const CAPTURE_LEN: u32 = 128;

/// Keeps neighbour solicitations from the unspecified address (DAD probes)
/// received from the link; the rest of the link's traffic never reaches us.
#[rustfmt::skip]
pub const FILTER: [libc::sock_filter; 18] = [
    /*  0 */ stmt(BPF_LD | BPF_H | BPF_ABS, 12),                      // EtherType
    /*  1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 0, 15),           // else DROP
    /*  2 */ stmt(BPF_LD | BPF_B | BPF_ABS, 20),                      // next header
    /*  3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 58, 0, 13),
    /*  4 */ stmt(BPF_LD | BPF_B | BPF_ABS, 54),                      // ICMPv6 type
    /*  5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, nd::NEIGHBOUR_SOLICITATION as u32, 0, 11),
    /*  6 */ stmt(BPF_LD | BPF_W | BPF_ABS, 22),                      // source, 4 words
    /*  7 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 9),
    /*  8 */ stmt(BPF_LD | BPF_W | BPF_ABS, 26),
    /*  9 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 7),
    /* 10 */ stmt(BPF_LD | BPF_W | BPF_ABS, 30),
    /* 11 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 5),
    /* 12 */ stmt(BPF_LD | BPF_W | BPF_ABS, 34),
    /* 13 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
    /* 14 */ stmt(BPF_LD | BPF_W | BPF_ABS, LOAD_PKTTYPE),
    /* 15 */ jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 1, 0),   // DROP
    /* 16 */ stmt(BPF_RET | BPF_K, CAPTURE_LEN),                     // ACCEPT
    /* 17 */ stmt(BPF_RET | BPF_K, 0),                               // DROP
];

/// A client testing an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The client (the frame's Ethernet source).
    pub mac: MacAddr,
    /// The tentative address.
    pub target: Ipv6Addr,
}

/// Why a frame is not a DAD probe we act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Shorter than Ethernet + IPv6 + a neighbour solicitation.
    #[error("{0} bytes are too short for a neighbour solicitation frame (78 at least)")]
    TooShort(usize),
    /// Not IPv6 carrying ICMPv6 directly.
    #[error("not an ICMPv6 frame")]
    NotIcmpv6,
    /// Another ICMPv6 type or code.
    #[error("ICMPv6 type {0} code {1} is not a neighbour solicitation")]
    NotSolicitation(u8, u8),
    /// Hop limit other than 255: not from the link (RFC 4861 section 7.1.1).
    #[error("hop limit {0} (must be 255)")]
    HopLimit(u8),
    /// A source address: an ordinary solicitation, not DAD.
    #[error("source {0} is not the unspecified address")]
    NotDad(Ipv6Addr),
    /// A multicast, link-local or unspecified target: nothing to defend.
    #[error("target {0} is not an address the mesh routes")]
    Target(Ipv6Addr),
    /// A group or zero MAC as the source.
    #[error("source MAC {0} is no client")]
    Mac(MacAddr),
}

/// Decodes a DAD probe from an Ethernet frame.
pub fn decode_probe(frame: &[u8]) -> Result<Probe, ProbeError> {
    let Some(
        &[d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, 0x86, 0xdd, _, _, _, _, _, _, next, hops, ref rest @ ..],
    ) = frame.first_chunk::<78>()
    else {
        return Err(ProbeError::TooShort(frame.len()));
    };
    let _destination_mac = [d0, d1, d2, d3, d4, d5];
    if next != 58 {
        return Err(ProbeError::NotIcmpv6);
    }
    let Some((source, rest)) = rest.split_first_chunk::<16>() else {
        return Err(ProbeError::TooShort(frame.len()));
    };
    let Some((_destination, rest)) = rest.split_first_chunk::<16>() else {
        return Err(ProbeError::TooShort(frame.len()));
    };
    let Some(&[kind, code, _, _, _, _, _, _, ref target @ ..]) = rest.first_chunk::<24>() else {
        return Err(ProbeError::TooShort(frame.len()));
    };
    if kind != nd::NEIGHBOUR_SOLICITATION || code != 0 {
        return Err(ProbeError::NotSolicitation(kind, code));
    }
    if hops != nd::ND_HOP_LIMIT {
        return Err(ProbeError::HopLimit(hops));
    }
    let source = Ipv6Addr::from(*source);
    if !source.is_unspecified() {
        return Err(ProbeError::NotDad(source));
    }
    let target = Ipv6Addr::from(*target);
    if target.is_multicast()
        || target.is_unspecified()
        || target.is_loopback()
        || l3roamd_types::addr::is_link_local(&target)
    {
        return Err(ProbeError::Target(target));
    }
    let mac = MacAddr([s0, s1, s2, s3, s4, s5]);
    if mac.is_multicast() || mac == MacAddr::ZERO {
        return Err(ProbeError::Mac(mac));
    }
    Ok(Probe { mac, target })
}

// ===== the kernel's routes =====

/// `RTF_REJECT`: an unreachable route (babel keeps one for a retracted prefix).
const RTF_REJECT: u32 = 0x0200;

/// One line of `/proc/net/ipv6_route`, reduced to what the defence needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination.
    pub destination: Ipv6Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// An unreachable (reject) route.
    pub reject: bool,
    /// The output interface's name.
    pub device: String,
}

/// Parses `/proc/net/ipv6_route` (all tables): `dest plen src splen
/// nexthop metric refcnt use flags device`, hex fields; lines that do not
/// parse are skipped. Only host routes are kept: nothing else is evidence.
pub fn parse_ipv6_route(text: &str) -> Vec<KernelRoute> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let &[dest, plen, _src, _splen, _via, _metric, _refs, _use, flags, device] =
                fields.as_slice()
            else {
                return None;
            };
            if dest.len() != 32 {
                return None;
            }
            let prefix_len = u8::from_str_radix(plen, 16).ok()?;
            if prefix_len != 128 {
                return None;
            }
            let flags = u32::from_str_radix(flags, 16).ok()?;
            Some(KernelRoute {
                destination: Ipv6Addr::from(u128::from_str_radix(dest, 16).ok()?),
                prefix_len,
                reject: flags & RTF_REJECT != 0,
                device: device.to_string(),
            })
        })
        .collect()
}

/// The host routes of the kernel now; empty if they cannot be read.
pub fn kernel_routes() -> Vec<KernelRoute> {
    std::fs::read_to_string("/proc/net/ipv6_route")
        .map(|text| parse_ipv6_route(&text))
        .unwrap_or_default()
}

// ===== the decision =====

/// What the defence is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The mesh interfaces: a host route through one leads to another node.
    pub mesh_interfaces: Vec<String>,
    /// The client interfaces: a host route through one is a client here.
    pub client_interfaces: Vec<String>,
    /// The prefix of node-client addresses (which name a client's MAC).
    pub node_client_prefix: Ipv6Prefix,
    /// Defences per second, all addresses.
    pub per_second: u32,
    /// Burst of defences.
    pub burst: u32,
    /// Shortest time between two defences of one address.
    pub per_address: Duration,
    /// Most addresses remembered for `per_address`.
    pub max_addresses: usize,
}

/// What to do about a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Another node serves the address for another client: defend it.
    Defend,
    /// Nobody else routes the address: the client may have it.
    Free,
    /// A client of this node has it: the kernel of that client defends it.
    ServedHere,
    /// The probing client is served elsewhere (roaming here): its claim
    /// brings its addresses, it must not lose them.
    Roaming,
    /// The address is in use elsewhere but the rate limit says no.
    Suppressed,
}

/// The defence's state: the rate limits.
#[derive(Debug)]
pub struct Defence {
    settings: Settings,
    bucket: TokenBucket,
    /// Probes looked into (each reads the kernel's routes): ten times the
    /// defence rate, so a client flooding probes costs bounded work.
    evaluations: TokenBucket,
    last: HashMap<Ipv6Addr, Instant>,
}

impl Defence {
    /// A defence with nothing defended yet.
    pub fn new(settings: Settings) -> Defence {
        Defence {
            bucket: TokenBucket::new(settings.per_second.max(1), settings.burst.max(1)),
            evaluations: TokenBucket::new(
                settings.per_second.max(1).saturating_mul(10),
                settings.burst.max(1).saturating_mul(10),
            ),
            last: HashMap::new(),
            settings,
        }
    }

    /// Decides on `probe` with the kernel's host routes (`routes` reads
    /// them, only when the probe is looked into) at `now`.
    pub fn probe(
        &mut self,
        probe: &Probe,
        routes: impl FnOnce() -> Vec<KernelRoute>,
        now: Instant,
    ) -> Verdict {
        if !self.evaluations.take(now) {
            return Verdict::Suppressed;
        }
        let routes = routes();
        let via = |addr: &Ipv6Addr, interfaces: &[String]| {
            routes
                .iter()
                .any(|r| r.destination == *addr && !r.reject && interfaces.contains(&r.device))
        };
        if via(&probe.target, &self.settings.client_interfaces) {
            return Verdict::ServedHere;
        }
        if !via(&probe.target, &self.settings.mesh_interfaces) {
            return Verdict::Free;
        }
        let node_client = node_client_addr(&self.settings.node_client_prefix, &probe.mac);
        if via(&node_client, &self.settings.mesh_interfaces) {
            return Verdict::Roaming;
        }
        if let Some(last) = self.last.get(&probe.target) {
            if now.saturating_duration_since(*last) < self.settings.per_address {
                return Verdict::Suppressed;
            }
        }
        if !self.bucket.take(now) {
            return Verdict::Suppressed;
        }
        if self.last.len() >= self.settings.max_addresses {
            let window = self.settings.per_address;
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < window);
            if self.last.len() >= self.settings.max_addresses {
                self.last.clear();
            }
        }
        self.last.insert(probe.target, now);
        Verdict::Defend
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: &[libc::sock_filter], packet: &[u8], pkttype: u32) -> u32 {
        l3roamd_net::bpf::interpret(program, packet, pkttype).unwrap()
    }
    use l3roamd_types::damage::{damaged, xorshift};

    const B: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 2]);
    const X: Ipv6Addr = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x101);

    /// A DAD probe for X from B as Linux sends it (with a nonce option).
    fn probe_frame() -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0xff, 0, 1, 1];
        f.extend_from_slice(&B.octets());
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&[0; 16]);
        f.extend_from_slice(&nd::solicited_node(&X).octets());
        f.extend_from_slice(&[135, 0, 0x12, 0x34, 0, 0, 0, 0]);
        f.extend_from_slice(&X.octets());
        f.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        f
    }

    fn settings() -> Settings {
        Settings {
            mesh_interfaces: vec!["m-n2".into()],
            client_interfaces: vec!["br-client".into()],
            node_client_prefix: "fec0::/64".parse().unwrap(),
            per_second: 10,
            burst: 2,
            per_address: Duration::from_millis(500),
            max_addresses: 4,
        }
    }

    fn route(addr: Ipv6Addr, device: &str) -> KernelRoute {
        KernelRoute {
            destination: addr,
            prefix_len: 128,
            reject: false,
            device: device.into(),
        }
    }

    #[test]
    fn a_linux_probe_decodes_and_passes_the_filter() {
        let frame = probe_frame();
        assert_eq!(decode_probe(&frame), Ok(Probe { mac: B, target: X }));
        assert_eq!(run(&FILTER, &frame, 0), CAPTURE_LEN);
        assert_eq!(run(&FILTER, &frame, PACKET_OUTGOING), 0, "our own frames");
        let mut ordinary = frame.clone();
        ordinary[22] = 0xfe;
        assert_eq!(run(&FILTER, &ordinary, 0), 0, "not from ::");
        assert!(matches!(
            decode_probe(&ordinary),
            Err(ProbeError::NotDad(_))
        ));
        let mut na = frame.clone();
        na[54] = 136;
        assert_eq!(run(&FILTER, &na, 0), 0);
        assert_eq!(decode_probe(&na), Err(ProbeError::NotSolicitation(136, 0)));
    }

    #[test]
    fn bad_probes_are_typed_errors() {
        let frame = probe_frame();
        assert_eq!(decode_probe(&frame[..77]), Err(ProbeError::TooShort(77)));
        let mut hops = frame.clone();
        hops[21] = 64;
        assert_eq!(decode_probe(&hops), Err(ProbeError::HopLimit(64)));
        let mut link_local = frame.clone();
        link_local[62] = 0xfe;
        link_local[63] = 0x80;
        assert!(matches!(
            decode_probe(&link_local),
            Err(ProbeError::Target(_))
        ));
        let mut group = frame;
        group[6] = 0x03;
        assert!(matches!(decode_probe(&group), Err(ProbeError::Mac(_))));
    }

    #[test]
    fn random_and_damaged_frames_never_panic() {
        let mut next = xorshift(0x5eed_0dad_0000_0001);
        let good = probe_frame();
        for _ in 0..5000 {
            let frame = damaged(&good, &mut next);
            let _ = decode_probe(&frame);
        }
    }

    #[test]
    fn parses_proc_ipv6_route() {
        let text = "\
fddd0001000000000000000000000101 80 00000000000000000000000000000000 00 fe80000000000000000000000000beef 00000060 00000001 00000000 00000003 m-n2
fddd0001000000000000000000000102 80 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
fddd0001000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001 l3roam0
garbage line
";
        let routes = parse_ipv6_route(text);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0], route(X, "m-n2"));
        assert!(routes[1].reject);
    }

    #[test]
    fn random_and_damaged_route_text_never_panics() {
        let mut next = xorshift(0x5eed_0dad_0000_0002);
        let good = "fddd0001000000000000000000000101 80 00000000000000000000000000000000 00 fe80000000000000000000000000beef 00000060 00000001 00000000 00000003 m-n2\n";
        for _ in 0..3000 {
            let bytes = damaged(good.as_bytes(), &mut next);
            let _ = parse_ipv6_route(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn defends_an_address_another_node_serves_for_another_client() {
        let mut d = Defence::new(settings());
        let t = Instant::now();
        let p = Probe { mac: B, target: X };
        assert_eq!(d.probe(&p, || [].to_vec(), t), Verdict::Free);
        let mut unreachable = route(X, "lo");
        unreachable.reject = true;
        assert_eq!(d.probe(&p, || [unreachable].to_vec(), t), Verdict::Free);
        assert_eq!(
            d.probe(&p, || [route(X, "m-n2")].to_vec(), t),
            Verdict::Defend
        );
        // Ours as well as babel's: the client here defends it itself.
        assert_eq!(
            d.probe(&p, || [route(X, "m-n2"), route(X, "br-client")].to_vec(), t),
            Verdict::ServedHere
        );
    }

    #[test]
    fn a_client_roaming_here_is_not_refused() {
        let mut d = Defence::new(settings());
        let nca = node_client_addr(&settings().node_client_prefix, &B);
        let routes = [route(X, "m-n2"), route(nca, "m-n2")];
        assert_eq!(
            d.probe(
                &Probe { mac: B, target: X },
                || routes.to_vec(),
                Instant::now()
            ),
            Verdict::Roaming
        );
    }

    #[test]
    fn defences_are_rate_limited_per_address_and_overall() {
        let mut d = Defence::new(settings());
        let t = Instant::now();
        let y = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x102);
        let z = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x103);
        let routes = [route(X, "m-n2"), route(y, "m-n2"), route(z, "m-n2")];
        let probe = |target| Probe { mac: B, target };
        assert_eq!(d.probe(&probe(X), || routes.to_vec(), t), Verdict::Defend);
        assert_eq!(
            d.probe(&probe(X), || routes.to_vec(), t),
            Verdict::Suppressed
        );
        assert_eq!(d.probe(&probe(y), || routes.to_vec(), t), Verdict::Defend);
        assert_eq!(
            d.probe(&probe(z), || routes.to_vec(), t),
            Verdict::Suppressed,
            "burst 2"
        );
        let later = t + Duration::from_millis(600);
        assert_eq!(
            d.probe(&probe(X), || routes.to_vec(), later),
            Verdict::Defend
        );
        for i in 0..20u16 {
            let a = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 1, i);
            let _ = d.probe(
                &probe(a),
                || vec![route(a, "m-n2")],
                later + Duration::from_secs(u64::from(i)),
            );
        }
        assert!(d.last.len() <= 4, "bounded");
        // A flood of probes reads the routes a bounded number of times.
        let mut d = Defence::new(settings());
        let mut reads = 0;
        for _ in 0..1000 {
            let _ = d.probe(
                &probe(X),
                || {
                    reads += 1;
                    routes.to_vec()
                },
                t,
            );
        }
        assert_eq!(reads, 20, "ten times the burst of 2");
    }
}
