//! The trailer verifier (`l3roamd_intercom::auth`): never panics on any
//! datagram; what it accepts as verified it accepts only once; a packet it
//! sealed itself always opens.

#![no_main]

use std::net::Ipv6Addr;
use std::time::Instant;

use l3roamd_intercom::auth::trailer_offset;
use l3roamd_intercom::{AuthError, AuthMode, Authenticator, Key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = || Key::new(vec![0x5a; 32]).ok();
    let source = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 2);
    let now = Instant::now();
    let _ = trailer_offset(data);
    let mut rx = Authenticator::new(AuthMode::Require, key(), 0);
    if let Ok(opened) = rx.open(data, source, now) {
        assert!(opened.verified);
        assert!(opened.bytes.len() < data.len());
        assert_eq!(rx.open(data, source, now), Err(AuthError::Replayed));
    }
    let mut sign = Authenticator::new(AuthMode::Sign, key(), 0);
    let _ = sign.open(data, source, now);
    // Sealing a segmented packet (SEEK to FOUND) that decodes gives one that
    // opens. (DATA opens only with a consistent IPv6 length, which core's
    // packets from the TUN device have.)
    let segmented = data.get(2).is_some_and(|t| *t <= 4);
    if segmented && l3roamd_intercom::Packet::decode(data).is_ok() && trailer_offset(data).is_none() {
        let mut tx = Authenticator::new(AuthMode::Require, key(), 1);
        let mut sealed = data.to_vec();
        tx.seal(&mut sealed, source);
        let mut fresh = Authenticator::new(AuthMode::Require, key(), 0);
        let opened = fresh.open(&sealed, source, now);
        assert!(matches!(opened, Ok(o) if o.verified && o.bytes == data), "{opened:?}");
    }
});
