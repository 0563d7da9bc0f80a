//! What the authentication trailer costs: prints, as JSON lines, the time to
//! seal and to open a CLAIM and a 1,280-byte DATA packet, and the bytes added.
//!
//! `cargo run --release -p l3roamd-intercom --example auth_cost`

use std::net::Ipv6Addr;
use std::time::Instant;

use l3roamd_intercom::auth::TRAILER_LEN;
use l3roamd_intercom::{AuthMode, Authenticator, Body, Key, MacAddr, Packet};

const ROUNDS: u32 = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 2);
    let claim = Packet::claim(source, 1, MacAddr([2, 0, 0, 0, 1, 0])).encode();
    let mut ipv6 = vec![0x60, 0, 0, 0, 0x04, 0xd8, 17, 64];
    ipv6.resize(1280, 0);
    let data = Packet::new(1, source, 1, Body::Data { payload: ipv6 }).encode();
    for (name, plain) in [("claim", claim), ("data_1280", data)] {
        let mut tx = Authenticator::new(AuthMode::Require, Some(Key::new(vec![7; 32])?), 1);
        let mut rx = Authenticator::new(AuthMode::Require, Some(Key::new(vec![7; 32])?), 0);
        let start = Instant::now();
        let mut sealed = Vec::with_capacity(ROUNDS as usize);
        for _ in 0..ROUNDS {
            let mut bytes = plain.clone();
            tx.seal(&mut bytes, source);
            sealed.push(bytes);
        }
        let seal = start.elapsed() / ROUNDS;
        let now = Instant::now();
        let start = Instant::now();
        let mut opened = 0u32;
        for bytes in &sealed {
            opened += u32::from(rx.open(bytes, source, now).is_ok());
        }
        let open = start.elapsed() / ROUNDS;
        assert_eq!(opened, ROUNDS);
        println!(
            "{{\"packet\":\"{name}\",\"bytes\":{},\"trailer_bytes\":{TRAILER_LEN},\"seal_ns\":{},\"open_ns\":{}}}",
            plain.len(),
            seal.as_nanos(),
            open.as_nanos()
        );
    }
    Ok(())
}
