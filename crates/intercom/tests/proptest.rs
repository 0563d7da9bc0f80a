//! Properties of the codec over arbitrary packets and arbitrary bytes.

use std::net::Ipv6Addr;

use l3roamd_intercom::{
    segments, Body, Info, OtherType, Packet, PacketType, Plat, HEADER_LEN, MAX_BASIC_ADDRS,
};
use l3roamd_types::MacAddr;
use proptest::prelude::*;

// ===== strategies =====

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn plat() -> impl Strategy<Value = Option<Plat>> {
    proptest::option::of((any::<u16>(), ipv6()).prop_map(|(lease, prefix)| Plat { lease, prefix }))
}

fn info(max_addrs: usize) -> impl Strategy<Value = Info> {
    (mac(), prop::collection::vec(ipv6(), 0..=max_addrs), plat())
        .prop_map(|(mac, addrs, plat)| Info { mac, addrs, plat })
}

fn other_type() -> impl Strategy<Value = OtherType> {
    (6u8..=u8::MAX).prop_filter_map("known type", OtherType::new)
}

/// Bodies of every type; INFO with up to `max_addrs` addresses.
fn body(max_addrs: usize) -> impl Strategy<Value = Body> {
    prop_oneof![
        ipv6().prop_map(|addr| Body::Seek { addr }),
        mac().prop_map(|mac| Body::Claim { mac }),
        info(max_addrs).prop_map(Body::Info),
        mac().prop_map(|mac| Body::Ack { mac }),
        (ipv6(), mac()).prop_map(|(addr, mac)| Body::Found { addr, mac }),
        prop::collection::vec(any::<u8>(), 0..1600).prop_map(|payload| Body::Data { payload }),
        (other_type(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(kind, payload)| Body::Other { kind, payload }),
    ]
}

fn packet_with(body: impl Strategy<Value = Body>) -> impl Strategy<Value = Packet> {
    (any::<u8>(), any::<u32>(), ipv6(), body)
        .prop_map(|(ttl, nonce, sender, body)| Packet::new(ttl, sender, nonce, body))
}

fn packet() -> impl Strategy<Value = Packet> {
    packet_with(body(40))
}

/// Packets whose every strict prefix is malformed: the segmented types, with
/// at most one BASIC segment (a cut between two BASICs is undetectable).
fn segmented_packet() -> impl Strategy<Value = Packet> {
    packet_with(body(MAX_BASIC_ADDRS)).prop_filter("segmented", |p| {
        !matches!(p.body, Body::Data { .. } | Body::Other { .. })
    })
}

/// A valid version-0 header of any type followed by segment-shaped noise:
/// reaches deeper into the segment parser than uniform bytes do.
fn header_then_noise() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..8,
        any::<[u8; 22]>(),
        prop::collection::vec(
            (
                0u8..3,
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..6,
        ),
    )
        .prop_map(|(kind, rest, segs)| {
            let mut bytes = vec![0, rest[0], kind];
            bytes.extend_from_slice(&rest[1..]);
            for (seg_kind, len, body) in segs {
                bytes.push(seg_kind);
                bytes.push(len);
                bytes.extend(body);
            }
            bytes
        })
}

// ===== properties =====

proptest! {
    #[test]
    fn decode_inverts_encode(p in packet()) {
        let bytes = p.encode();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(Packet::decode(&bytes), Ok(p));
    }

    #[test]
    fn classic_packets_carry_only_segments_c_knows(p in packet()) {
        let bytes = p.encode();
        if p.kind().is_classic() {
            for segment in segments(&bytes[HEADER_LEN..]) {
                let segment = segment.expect("well-formed");
                let known: &[u8] = if p.kind() == PacketType::Info { &[0, 1] } else { &[0] };
                prop_assert!(known.contains(&segment.kind));
                prop_assert!(segment.wire_len() >= 2);
            }
        }
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Packet::decode(&bytes);
    }

    #[test]
    fn decoded_noise_reencodes_stably(bytes in header_then_noise()) {
        if let Ok(p) = Packet::decode(&bytes) {
            prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn mutated_packets_decode_or_fail_cleanly(
        p in packet(),
        index in any::<prop::sample::Index>(),
        xor in 1u8..=u8::MAX,
    ) {
        let mut bytes = p.encode();
        let i = index.index(bytes.len());
        bytes[i] ^= xor;
        if let Ok(q) = Packet::decode(&bytes) {
            prop_assert_eq!(Packet::decode(&q.encode()), Ok(q));
        }
    }

    #[test]
    fn truncated_packets_are_refused(p in segmented_packet()) {
        let bytes = p.encode();
        for cut in 0..bytes.len() {
            prop_assert!(Packet::decode(&bytes[..cut]).is_err(), "cut at {} of {:?}", cut, p);
        }
    }

    #[test]
    fn truncated_headers_are_refused(p in packet(), cut in 0..HEADER_LEN) {
        prop_assert!(Packet::decode(&p.encode()[..cut]).is_err());
    }
}
