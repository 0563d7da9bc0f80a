//! Byte-exact vectors: the 24 packets captured from the C l3roamd
//! (`tests/data/c-l3roamd-intercom.json`, described in `tests/data/README.md`),
//! hand-written FOUND and DATA packets, and one malformed packet per error.

// clippy.toml lets #[test] functions unwrap; the helpers below are test code
// too, and a panic in them is the test failing.
#![allow(clippy::expect_used, reason = "test helpers")]

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_intercom::{
    Body, DecodeError, Header, Info, OtherType, Packet, PacketType, Plat, MULTICAST_GROUP, PORT,
    SEEK_TTL,
};
use l3roamd_types::MacAddr;

// ===== helpers =====

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("IPv6 address")
}

const C1: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0]);

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Reads a capture file of `tests/data`; a missing file fails the test (never skips).
fn read_capture(name: &str) -> String {
    let path = vectors_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `[addr]:port` as in the json's src and dst.
fn socket_addr(s: &str) -> (Ipv6Addr, u16) {
    let sa: std::net::SocketAddrV6 = s.parse().expect("socket address");
    (*sa.ip(), sa.port())
}

// ===== the C vectors =====

/// What each captured packet decodes to, transcribed from the .md file.
fn expected(name: &str) -> Packet {
    let seek = |ttl, nonce, sender, addr| Packet {
        ttl,
        ..Packet::seek(ip(sender), nonce, ip(addr))
    };
    let info = |nonce, sender, addrs: &[&str]| {
        let info = Info {
            mac: C1,
            addrs: addrs.iter().map(|a| ip(a)).collect(),
            plat: Some(Plat::NONE),
        };
        Packet::new(1, ip(sender), nonce, Body::Info(info))
    };
    match name {
        "seek-origin-n1" => seek(255, 0x55d1, "fdff::1", "fddd:1::100"),
        "seek-fwd-n2-back-to-n1" => seek(254, 0x55d1, "fdff::1", "fddd:1::100"),
        "seek-fwd-n2-to-n3" => seek(254, 0x55d1, "fdff::1", "fddd:1::100"),
        "seek-fwd-n3-back-to-n2" => seek(253, 0x55d1, "fdff::1", "fddd:1::100"),
        "seek-fwd-n3-to-n4" => seek(253, 0x55d1, "fdff::1", "fddd:1::100"),
        "seek-fwd-n4-back-to-n3" => seek(252, 0x55d1, "fdff::1", "fddd:1::100"),
        "claim-n2-roam1" => Packet::claim(ip("fdff::2"), 0x560f, C1),
        "info-n4-2addr-with-linklocal" => {
            info(0x556b, "fdff::4", &["fddd:1::100", "fe80::ff:fe00:100"])
        }
        "ack-n2-roam1" => Packet::ack(ip("fdff::2"), 0x560f, C1),
        "seek-n1-second-address-same-nonce-1"
        | "seek-n1-second-address-same-nonce-2"
        | "seek-n1-second-address-same-nonce-3" => seek(255, 0x55d1, "fdff::1", "fddd:1::101"),
        "claim-n3-roam2" => Packet::claim(ip("fdff::3"), 0x5560, C1),
        "info-n2-2addr-global" => info(0x560f, "fdff::2", &["fddd:1::100", "fddd:1::101"]),
        "ack-n3-roam2" => Packet::ack(ip("fdff::3"), 0x5560, C1),
        "seek-origin-n2-on-m-n1" => seek(255, 0x560f, "fdff::2", "fddd:1::101"),
        "seek-fwd-n1-back-to-n2" => seek(254, 0x560f, "fdff::2", "fddd:1::101"),
        "seek-origin-n2-on-m-n3" => seek(255, 0x560f, "fdff::2", "fddd:1::101"),
        "seek-fwd-n3-back-to-n2-b" => seek(254, 0x560f, "fdff::2", "fddd:1::101"),
        "seek-fwd-n3-to-n4-b" => seek(254, 0x560f, "fdff::2", "fddd:1::101"),
        "seek-fwd-n4-back-to-n3-b" => seek(253, 0x560f, "fdff::2", "fddd:1::101"),
        "claim-n4-roam3" => Packet::claim(ip("fdff::4"), 0x556b, C1),
        "info-n3-3addr" => info(
            0x5560,
            "fdff::3",
            &["fddd:1::101", "fddd:1::102", "fddd:1::100"],
        ),
        "ack-n4-roam3" => Packet::ack(ip("fdff::4"), 0x556b, C1),
        other => panic!("vector {other:?} has no expected decoding in this test"),
    }
}

#[test]
fn c_vectors_decode_and_reencode_byte_for_byte() {
    let json: serde_json::Value =
        serde_json::from_str(&read_capture("c-l3roamd-intercom.json")).expect("valid json");
    let markdown = read_capture("c-l3roamd-intercom.md");
    let vectors = json.as_array().expect("a json array");
    assert_eq!(vectors.len(), 24, "the capture has 24 packets");

    for v in vectors {
        let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("field {k} in {v}"));
        let name = field("name");
        let bytes = hex(field("hex"));
        assert!(
            markdown.contains(field("hex")),
            "{name}: hex differs from the .md"
        );

        let packet = Packet::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(packet, expected(name), "{name}");
        assert_eq!(packet.kind().to_string(), field("type"), "{name}");
        assert_eq!(packet.encoded_len(), bytes.len(), "{name}");
        assert_eq!(packet.encode(), bytes, "{name}: re-encoding differs");

        let header = Header::decode(&bytes).expect("header");
        assert_eq!(header, packet.header(), "{name}");
        assert_eq!(header.version, 0, "{name}");

        // Transport facts of docs/protocol.md and the capture notes (D5, D7).
        let (src, sport) = socket_addr(field("src"));
        let (dst, dport) = socket_addr(field("dst"));
        assert_eq!((sport, dport), (PORT, PORT), "{name}");
        if packet.kind() == PacketType::Seek {
            assert_eq!(dst, MULTICAST_GROUP, "{name}");
            // An originated SEEK leaves from its sender, a re-flood from the forwarder.
            assert_eq!(src == packet.sender, packet.ttl == SEEK_TTL, "{name}");
        } else {
            assert_eq!(packet.ttl, 1, "{name}: unicast ttl");
            assert_eq!(src, packet.sender, "{name}");
        }
    }
}

#[test]
fn c_info_plat_is_all_zero_and_means_none() {
    // Vector 8: PLAT first, lease 0, prefix ::; the link-local address is kept.
    let bytes = hex("000102000000556bfdff000000000000000000000000000400140000000000000000000000000000000000000128020000000100fddd0001000000000000000000000100fe80000000000000000000fffe000100");
    let Body::Info(info) = Packet::decode(&bytes).expect("decodes").body else {
        panic!("not an INFO");
    };
    assert_eq!(info.plat, Some(Plat::NONE));
    assert_eq!(info.plat.and_then(|p| p.nat64_prefix()), None);
    assert_eq!(info.addrs[1], C1.link_local());
}

// ===== extension vectors =====

const FOUND_HEX: &str = "
    00 01 04 00 12345678 fdff0000000000000000000000000004
    00 14 0000 fddd0001000000000000000000000100
    01 08 020000000100";

#[test]
fn found_vector() {
    let bytes = hex(FOUND_HEX);
    let packet = Packet::found(ip("fdff::4"), 0x1234_5678, ip("fddd:1::100"), C1);
    assert_eq!(Packet::decode(&bytes), Ok(packet.clone()));
    assert_eq!(packet.encode(), bytes);
    assert_eq!(packet.kind(), PacketType::Found);
    assert!(!packet.kind().is_classic());
}

#[test]
fn found_segments_in_any_order_with_unknown_ones() {
    let bytes = hex("
        00 01 04 00 12345678 fdff0000000000000000000000000004
        07 03 ff
        01 08 020000000100
        00 14 0000 fddd0001000000000000000000000100");
    let packet = Packet::found(ip("fdff::4"), 0x1234_5678, ip("fddd:1::100"), C1);
    assert_eq!(Packet::decode(&bytes), Ok(packet.clone()));
    // Re-encoding drops the unknown segment and restores the canonical order.
    assert_eq!(packet.encode(), hex(FOUND_HEX));
}

/// A minimal IPv6 packet: fddd:1::1 -> fddd:1::100, no next header, no payload.
const IPV6_HEX: &str = "60000000 0000 3b 40
    fddd0001000000000000000000000001
    fddd0001000000000000000000000100";

#[test]
fn data_vector() {
    let inner = hex(IPV6_HEX);
    let bytes = hex(&format!(
        "00 01 05 00 cafebabe fdff0000000000000000000000000001 {IPV6_HEX}"
    ));
    assert_eq!(bytes.len(), 24 + 40);
    let packet = Packet::data(ip("fdff::1"), 0xcafe_babe, inner.clone());
    assert_eq!(Packet::decode(&bytes), Ok(packet.clone()));
    assert_eq!(packet.encode(), bytes);
    assert_eq!(packet.body, Body::Data { payload: inner });
}

#[test]
fn data_payload_is_opaque_even_when_it_looks_like_segments() {
    // A zero-length "segment" would be malformed in a segmented packet.
    let bytes = hex("00 01 05 00 00000001 fdff0000000000000000000000000001 00 00");
    let packet = Packet::decode(&bytes).expect("DATA has no segments");
    assert_eq!(
        packet.body,
        Body::Data {
            payload: vec![0, 0]
        }
    );
    assert_eq!(packet.encode(), bytes);
}

#[test]
fn unknown_packet_type_is_kept_raw() {
    let bytes = hex("00 01 2a 00 00000001 fdff0000000000000000000000000001 00 00 ff");
    let packet = Packet::decode(&bytes).expect("unknown types decode");
    assert_eq!(packet.kind(), PacketType::Other(42));
    let Body::Other { kind, payload } = &packet.body else {
        panic!("not Other");
    };
    assert_eq!(*kind, OtherType::new(42).expect("42 >= 6"));
    assert_eq!(payload, &[0, 0, 0xff]);
    assert_eq!(packet.encode(), bytes);
}

// ===== decisions on odd but valid packets =====

/// Header of vector 1 (SEEK from fdff::1, ttl 255, nonce 0x55d1).
const SEEK_HDR: &str = "00ff0000000055d1fdff0000000000000000000000000001";
/// Header of vector 8 (INFO from fdff::4, ttl 1, nonce 0x556b).
const INFO_HDR: &str = "000102000000556bfdff0000000000000000000000000004";
/// Header of vector 7 (CLAIM from fdff::2, ttl 1, nonce 0x560f).
const CLAIM_HDR: &str = "000101000000560ffdff0000000000000000000000000002";

#[test]
fn unknown_segments_are_skipped() {
    let bytes = hex(&format!(
        "{SEEK_HDR} 09 02  08 05 aabbcc  00 14 0000 fddd0001000000000000000000000100  ee 02"
    ));
    let packet = Packet::decode(&bytes).expect("skips unknown segments");
    assert_eq!(
        packet,
        Packet::seek(ip("fdff::1"), 0x55d1, ip("fddd:1::100"))
    );
    assert_eq!(packet.encoded_len(), 44);
}

#[test]
fn duplicate_address_first_wins() {
    let bytes = hex(&format!(
        "{SEEK_HDR} 00 14 0000 fddd0001000000000000000000000100 00 14 0000 fddd0001000000000000000000000101"
    ));
    assert_eq!(
        Packet::decode(&bytes).map(|p| p.body),
        Ok(Body::Seek {
            addr: ip("fddd:1::100")
        })
    );
}

#[test]
fn seek_reserved_bytes_are_ignored() {
    let bytes = hex(&format!(
        "{SEEK_HDR} 00 14 abcd fddd0001000000000000000000000100"
    ));
    assert_eq!(
        Packet::decode(&bytes),
        Ok(Packet::seek(ip("fdff::1"), 0x55d1, ip("fddd:1::100")))
    );
}

#[test]
fn several_basic_segments_are_collected() {
    let bytes = hex(&format!(
        "{INFO_HDR} 01 18 020000000100 fddd0001000000000000000000000100
                    00 14 0005 0064ff9b000000000000000000000000
                    00 14 0000 00000000000000000000000000000000
                    01 08 020000000100
                    01 18 020000000100 fddd0001000000000000000000000101"
    ));
    let Body::Info(info) = Packet::decode(&bytes).expect("decodes").body else {
        panic!("not an INFO");
    };
    assert_eq!(info.addrs, vec![ip("fddd:1::100"), ip("fddd:1::101")]);
    // The first PLAT wins, wherever it sits.
    let plat = info.plat.expect("PLAT present");
    assert_eq!(plat.lease, 5);
    assert_eq!(plat.nat64_prefix(), Some(ip("64:ff9b::")));
}

#[test]
fn info_without_plat_and_without_addresses() {
    let bytes = hex(&format!("{INFO_HDR} 01 08 020000000100"));
    let packet = Packet::info(ip("fdff::4"), 0x556b, C1, vec![]);
    assert_eq!(Packet::decode(&bytes), Ok(packet.clone()));
    assert_eq!(packet.encode(), bytes);
}

// ===== one malformed packet per error =====

fn decode_err(s: &str) -> DecodeError {
    match Packet::decode(&hex(s)) {
        Ok(p) => panic!("decoded {p:?} from malformed {s}"),
        Err(e) => e,
    }
}

#[test]
fn error_too_short() {
    assert_eq!(Packet::decode(&[]), Err(DecodeError::TooShort { len: 0 }));
    let header = hex(SEEK_HDR);
    assert_eq!(
        Packet::decode(&header[..23]),
        Err(DecodeError::TooShort { len: 23 })
    );
    assert_eq!(
        Header::decode(&header[..23]),
        Err(DecodeError::TooShort { len: 23 })
    );
}

#[test]
fn error_bad_version() {
    let bytes = format!("01{}", &SEEK_HDR[2..]);
    assert_eq!(decode_err(&bytes), DecodeError::BadVersion(1));
    assert_eq!(
        Header::decode(&hex(&bytes)),
        Err(DecodeError::BadVersion(1))
    );
}

#[test]
fn error_segment_too_short() {
    // The zero-length segment that sends a C node into an endless loop.
    assert_eq!(
        decode_err(&format!("{SEEK_HDR} 00 00")),
        DecodeError::SegmentTooShort { offset: 24, len: 0 }
    );
    assert_eq!(
        decode_err(&format!(
            "{SEEK_HDR} 00 14 0000 fddd0001000000000000000000000100 07 01"
        )),
        DecodeError::SegmentTooShort { offset: 44, len: 1 }
    );
}

#[test]
fn error_segment_overrun() {
    assert_eq!(
        decode_err(&format!("{SEEK_HDR} 00 14 0000 fddd0001")),
        DecodeError::SegmentOverrun {
            offset: 24,
            needed: 20,
            available: 8
        }
    );
    // A lone byte after the last segment cannot even hold a segment header.
    assert_eq!(
        decode_err(&format!("{CLAIM_HDR} 00 08 020000000100 00")),
        DecodeError::SegmentOverrun {
            offset: 32,
            needed: 2,
            available: 1
        }
    );
}

#[test]
fn error_bad_segment_length() {
    assert_eq!(
        decode_err(&format!(
            "{SEEK_HDR} 00 12 fddd0001000000000000000000000100"
        )),
        DecodeError::BadSegmentLength {
            packet: PacketType::Seek,
            segment: 0,
            len: 18,
            expected: 20
        }
    );
    assert_eq!(
        decode_err(&format!("{CLAIM_HDR} 00 09 02000000010000")),
        DecodeError::BadSegmentLength {
            packet: PacketType::Claim,
            segment: 0,
            len: 9,
            expected: 8
        }
    );
    assert_eq!(
        decode_err(&format!(
            "{INFO_HDR} 00 13 0000 000000000000000000000000000000 01 08 020000000100"
        )),
        DecodeError::BadSegmentLength {
            packet: PacketType::Info,
            segment: 0,
            len: 19,
            expected: 20
        }
    );
    assert_eq!(
        decode_err(
            "000104000000556bfdff0000000000000000000000000004 00 14 0000 fddd0001000000000000000000000100 01 07 0200000001"
        ),
        DecodeError::BadSegmentLength { packet: PacketType::Found, segment: 1, len: 7, expected: 8 }
    );
}

#[test]
fn error_bad_basic_length() {
    for (basic, len) in [
        ("01 07 0200000001", 7),
        ("01 09 02000000010000", 9),
        ("01 19 020000000100 fddd0001000000000000000000000100 ff", 25),
    ] {
        assert_eq!(
            decode_err(&format!("{INFO_HDR} {basic}")),
            DecodeError::BadBasicLength { len },
            "{basic}"
        );
    }
}

#[test]
fn error_missing_segment() {
    let missing = |packet, segment| DecodeError::MissingSegment { packet, segment };
    // An unknown segment alone does not make a SEEK.
    assert_eq!(
        decode_err(&format!("{SEEK_HDR} 07 02")),
        missing(PacketType::Seek, "ADDRESS")
    );
    assert_eq!(decode_err(CLAIM_HDR), missing(PacketType::Claim, "MAC"));
    assert_eq!(
        decode_err("000103000000556bfdff0000000000000000000000000004"),
        missing(PacketType::Ack, "MAC")
    );
    assert_eq!(
        decode_err(&format!(
            "{INFO_HDR} 00 14 0000 00000000000000000000000000000000"
        )),
        missing(PacketType::Info, "BASIC")
    );
    assert_eq!(
        decode_err(
            "000104000000556bfdff0000000000000000000000000004 00 14 0000 fddd0001000000000000000000000100"
        ),
        missing(PacketType::Found, "MAC")
    );
    assert_eq!(
        decode_err("000104000000556bfdff0000000000000000000000000004 01 08 020000000100"),
        missing(PacketType::Found, "ADDRESS")
    );
}

#[test]
fn error_conflicting_basic_mac() {
    assert_eq!(
        decode_err(&format!("{INFO_HDR} 01 08 020000000100 01 08 020000000200")),
        DecodeError::ConflictingBasicMac {
            first: C1,
            other: MacAddr([2, 0, 0, 0, 2, 0])
        }
    );
}

#[test]
fn errors_have_readable_messages() {
    let e = decode_err(&format!("{SEEK_HDR} 00 00"));
    assert_eq!(
        e.to_string(),
        "segment at offset 24 has length 0, less than its 2-byte header"
    );
    let e = decode_err(CLAIM_HDR);
    assert_eq!(e.to_string(), "CLAIM packet lacks its MAC segment");
}
