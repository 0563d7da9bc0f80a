//! Tests of the state machine: time is in the test's hands, packets are
//! compared byte for byte with the C vectors where they exist.

use std::time::{Duration, Instant, UNIX_EPOCH};

use l3roamd_intercom::{Body, Info, Plat};

use super::*;
use crate::store::{MemoryStore, Store};

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);

fn node(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, n)
}

fn client(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, last)
}

/// fec0::ff:fe00:100, the node-client address of [`MAC`].
fn ncaddr() -> Ipv6Addr {
    "fec0::ff:fe00:100".parse().unwrap()
}

fn t0() -> Now {
    Now {
        mono: Instant::now(),
        wall: UNIX_EPOCH + Duration::from_secs(1_760_000_000),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn new_db(me: u16, now: Now) -> ClientDb {
    ClientDb::new(Settings::defaults(node(me)), Vec::new(), now).0
}

fn via_mesh() -> Arrival {
    Arrival {
        interface: ArrivalInterface::Mesh,
        destination: None,
    }
}

fn sends(actions: &[Action]) -> Vec<(Ipv6Addr, Packet)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, packet } => Some((*to, packet.clone())),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn persisted(actions: &[Action]) -> Vec<MacAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist(m) => Some(*m),
            _ => None,
        })
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `bytes` with the nonce (header bytes 4..8) of `nonce`.
fn with_nonce(mut bytes: Vec<u8>, nonce: u32) -> Vec<u8> {
    bytes[4..8].copy_from_slice(&nonce.to_be_bytes());
    bytes
}

/// The INFO `from` would send for `addrs`, as received bytes.
fn info_bytes(from: Ipv6Addr, mac: MacAddr, addrs: Vec<Ipv6Addr>) -> Vec<u8> {
    Packet::info(from, 7, mac, addrs).encode()
}

/// Runs ticks every `step` from `from` to `to` (inclusive), collecting actions.
fn run(db: &mut ClientDb, from: Now, to: Duration, step: Duration) -> Vec<(Duration, Action)> {
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    while t <= to {
        for a in db.tick(from.after(t)) {
            out.push((t, a));
        }
        t += step;
    }
    out
}

// Vectors 7, 8 and 9 of crates/intercom/tests/data/c-l3roamd-intercom.md.
const V7_CLAIM: &str = "000101000000560ffdff00000000000000000000000000020008020000000100";
const V8_INFO: &str = "000102000000556bfdff000000000000000000000000000400140000000000000000000000000000000000000128020000000100fddd0001000000000000000000000100fe80000000000000000000fffe000100";
const V9_ACK: &str = "000103000000560ffdff00000000000000000000000000020008020000000100";

// ===== claiming =====

#[test]
fn claim_goes_to_the_node_client_address_in_c_format() {
    let now = t0();
    let mut db = new_db(2, now);
    let (outcome, record, actions) = db.claim(MAC, now);
    assert_eq!(outcome, ClaimOutcome::Started);
    assert!(record.serving);
    let sent = sends(&actions);
    assert_eq!(sent.len(), 1);
    let (to, packet) = &sent[0];
    assert_eq!(*to, ncaddr());
    assert_eq!(packet.encode(), with_nonce(hex(V7_CLAIM), packet.nonce));
    // The new record (served here) is announced and persisted.
    assert!(
        matches!(&events(&actions)[..], [Event::Updated(r)] if r.serving && r.served_by[0].node == node(2))
    );
    assert_eq!(persisted(&actions), [MAC]);
}

#[test]
fn claim_retries_then_gives_up() {
    let now = t0();
    let mut db = new_db(2, now);
    let (_, _, first) = db.claim(MAC, now);
    let mut nonces = vec![sends(&first)[0].1.nonce];
    let log = run(&mut db, now, ms(6000), ms(50));
    let claim_times: Vec<Duration> = log
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Send { packet, .. } => {
                nonces.push(packet.nonce);
                Some(*t)
            }
            _ => None,
        })
        .collect();
    // 1 + 15 sends, 300 ms apart (C: CLAIM_RETRY_MAX 15, every 300 ms).
    assert_eq!(claim_times.len(), 15);
    assert_eq!(claim_times[0], ms(300));
    assert_eq!(claim_times[14], ms(4500));
    let done: Vec<(Duration, Event)> = log
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Emit(e @ Event::ClaimDone { .. }) => Some((*t, e.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        done,
        [(
            ms(4800),
            Event::ClaimDone {
                mac: MAC,
                answered_by: None
            }
        )]
    );
    // Every retransmission has its own nonce (C receivers drop a repeat).
    let mut unique = nonces.clone();
    unique.sort_unstable();
    unique.dedup();
    assert!(unique.len() >= 15, "{nonces:?}");
    assert!(!db.is_claiming(&MAC));
    assert_eq!(db.counters().get(Counter::ClaimsGivenUp), 1);
    // The record stays: this node serves the client (nobody else did).
    assert!(db.get(&MAC).unwrap().serving);
}

#[test]
fn second_claim_restarts_nothing() {
    let now = t0();
    let mut db = new_db(2, now);
    db.claim(MAC, now);
    let (outcome, _, actions) = db.claim(MAC, now.after(ms(100)));
    assert_eq!(outcome, ClaimOutcome::Running);
    assert!(actions.is_empty());
    // The schedule is the first claim's: the next CLAIM at 300 ms.
    assert!(sends(&db.tick(now.after(ms(299)))).is_empty());
    assert_eq!(sends(&db.tick(now.after(ms(300)))).len(), 1);
}

#[test]
fn info_answers_the_claim_merges_and_acks_in_c_format() {
    let now = t0();
    let mut db = new_db(2, now);
    db.claim(MAC, now);
    // Vector 8: n4 answers with PLAT (zeros), fddd:1::100 and the link-local.
    let later = now.after(ms(1));
    let actions = db.mesh_received(&hex(V8_INFO), via_mesh(), later);
    let sent = sends(&actions);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, node(4));
    assert_eq!(sent[0].1.encode(), with_nonce(hex(V9_ACK), sent[0].1.nonce));
    let ev = events(&actions);
    let Event::Updated(record) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        record.addrs().collect::<Vec<_>>(),
        [client(0x100), MAC.link_local()]
    );
    // We serve it (most recent), n4 served it before.
    assert_eq!(
        record.served_by.iter().map(|s| s.node).collect::<Vec<_>>(),
        [node(2), node(4)]
    );
    assert_eq!(
        ev[1],
        Event::ClaimDone {
            mac: MAC,
            answered_by: Some(node(4))
        }
    );
    assert_eq!(ev.len(), 2);
    assert!(persisted(&actions).contains(&MAC));
    assert!(!db.is_claiming(&MAC));
    // No more CLAIMs and no ClaimDone later.
    let log = run(&mut db, later, ms(6000), ms(100));
    assert!(log.iter().all(|(_, a)| !matches!(
        a,
        Action::Send { .. } | Action::Emit(Event::ClaimDone { .. })
    )));
}

#[test]
fn info_addresses_that_cannot_be_clients_and_plat_are_ignored() {
    let now = t0();
    let mut db = new_db(2, now);
    db.claim(MAC, now);
    let info = Info {
        mac: MAC,
        addrs: vec![
            client(0x101),
            Ipv6Addr::UNSPECIFIED,
            "ff02::1".parse().unwrap(),
            ncaddr(),
            Ipv6Addr::LOCALHOST,
        ],
        plat: Some(Plat {
            lease: 60,
            prefix: "64:ff9b::".parse().unwrap(),
        }),
    };
    let bytes = Packet::new(1, node(3), 9, Body::Info(info)).encode();
    db.mesh_received(&bytes, via_mesh(), now);
    assert_eq!(
        db.get(&MAC).unwrap().addrs().collect::<Vec<_>>(),
        [client(0x101)]
    );
    assert_eq!(db.counters().get(Counter::InfoAddressesIgnored), 4);
    assert_eq!(db.counters().get(Counter::PlatIgnored), 1);
}

#[test]
fn duplicate_info_gets_an_ack_and_changes_nothing() {
    let now = t0();
    let mut db = new_db(2, now);
    db.claim(MAC, now);
    db.mesh_received(&hex(V8_INFO), via_mesh(), now);
    let before = db.get(&MAC).cloned();
    // The C node retransmits the identical datagram (same nonce).
    let actions = db.mesh_received(&hex(V8_INFO), via_mesh(), now.after(ms(500)));
    assert_eq!(sends(&actions).len(), 1, "an ACK");
    assert!(matches!(sends(&actions)[0].1.body, Body::Ack { mac } if mac == MAC));
    assert!(events(&actions).is_empty());
    assert!(persisted(&actions).is_empty());
    assert_eq!(db.get(&MAC).cloned(), before);
    // An INFO nobody asked for is acknowledged and ignored too.
    let other = MacAddr([2, 0, 0, 0, 9, 9]);
    let actions = db.mesh_received(
        &info_bytes(node(5), other, vec![client(9)]),
        via_mesh(),
        now,
    );
    assert_eq!(sends(&actions).len(), 1);
    assert!(db.get(&other).is_none());
    assert_eq!(db.counters().get(Counter::InfosUnsolicited), 2);
}

// ===== answering claims =====

/// A node `me` serving MAC with two addresses.
fn serving(me: u16, now: Now) -> ClientDb {
    let mut db = new_db(me, now);
    db.update(MAC, &[client(0x100), MAC.link_local()], now)
        .unwrap();
    db
}

#[test]
fn claim_from_our_own_node_is_ignored() {
    let now = t0();
    let mut db = serving(4, now);
    let own = Packet::claim(node(4), 1, MAC).encode();
    let actions = db.mesh_received(&own, via_mesh(), now);
    assert!(actions.is_empty());
    assert!(db.get(&MAC).unwrap().serving);
    assert_eq!(db.counters().get(Counter::OwnPackets), 1);
}

#[test]
fn claim_releases_a_served_client_and_answers_in_c_format() {
    let now = t0();
    let mut db = serving(4, now);
    // Vector 7: n2 claims the client n4 serves.
    let actions = db.mesh_received(&hex(V7_CLAIM), via_mesh(), now);
    let ev = events(&actions);
    assert_eq!(
        ev[0],
        Event::Release {
            mac: MAC,
            claimed_by: node(2)
        }
    );
    assert!(matches!(&ev[1], Event::Updated(r) if !r.serving && r.served_by[0].node == node(2)));
    let sent = sends(&actions);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, node(2));
    // Vector 8 without the PLAT segment (bytes 24..44), our own nonce.
    let mut expected = hex(V8_INFO);
    expected.drain(24..44);
    assert_eq!(sent[0].1.encode(), with_nonce(expected, sent[0].1.nonce));
    assert!(!db.get(&MAC).unwrap().serving);
}

#[test]
fn release_only_when_serving() {
    let now = t0();
    let mut db = serving(4, now);
    let (record, actions) = db.forget(MAC, now).unwrap();
    assert!(!record.serving);
    assert!(matches!(&events(&actions)[..], [Event::Updated(r)] if !r.serving));
    let claim = Packet::claim(node(2), 1, MAC).encode();
    let actions = db.mesh_received(&claim, via_mesh(), now.after(ms(10)));
    assert!(!events(&actions)
        .iter()
        .any(|e| matches!(e, Event::Release { .. })));
    // A node that forgot the client still answers with what it knows.
    let sent = sends(&actions);
    assert!(matches!(&sent[..], [(to, p)] if *to == node(2)
        && matches!(&p.body, Body::Info(i) if i.addrs == [client(0x100), MAC.link_local()])));
    assert_eq!(db.counters().get(Counter::Releases), 0);
}

#[test]
fn repeated_claim_releases_once_and_does_not_restart_the_info() {
    let now = t0();
    let mut db = serving(4, now);
    let first = db.mesh_received(&Packet::claim(node(2), 1, MAC).encode(), via_mesh(), now);
    assert_eq!(sends(&first).len(), 1);
    let again = db.mesh_received(
        &Packet::claim(node(2), 2, MAC).encode(),
        via_mesh(),
        now.after(ms(300)),
    );
    assert!(sends(&again).is_empty());
    assert!(!events(&again)
        .iter()
        .any(|e| matches!(e, Event::Release { .. })));
    assert_eq!(db.counters().get(Counter::Releases), 1);
    // A claim from a third node gets an INFO of its own.
    let third = db.mesh_received(&Packet::claim(node(3), 1, MAC).encode(), via_mesh(), now);
    assert_eq!(sends(&third)[0].0, node(3));
    assert_eq!(db.infos_pending(), 2);
}

#[test]
fn claim_for_an_unknown_client_is_not_answered() {
    let now = t0();
    let mut db = new_db(4, now);
    let actions = db.mesh_received(&hex(V7_CLAIM), via_mesh(), now);
    assert!(actions.is_empty());
    assert_eq!(db.counters().get(Counter::ClaimsUnknown), 1);
    assert!(db.is_empty());
}

#[test]
fn info_is_retransmitted_until_acked() {
    let now = t0();
    let mut db = serving(4, now);
    let first = db.mesh_received(&Packet::claim(node(2), 1, MAC).encode(), via_mesh(), now);
    let first_nonce = sends(&first)[0].1.nonce;
    let log = run(&mut db, now, ms(1000), ms(50));
    let resent: Vec<(Duration, u32)> = log
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Send { to, packet } if *to == node(2) => Some((*t, packet.nonce)),
            _ => None,
        })
        .collect();
    assert_eq!(
        resent.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [ms(500), ms(1000)]
    );
    assert!(resent.iter().all(|(_, n)| *n != first_nonce));
    // The ACK (from the claimer, for this MAC) stops it.
    let ack = Packet::ack(node(2), 5, MAC).encode();
    db.mesh_received(&ack, via_mesh(), now.after(ms(1100)));
    assert_eq!(db.infos_pending(), 0);
    assert_eq!(db.counters().get(Counter::InfosAcked), 1);
    let later = run(&mut db, now.after(ms(1100)), ms(10_000), ms(100));
    assert!(later.iter().all(|(_, a)| !matches!(a, Action::Send { .. })));
}

#[test]
fn info_gives_up_without_ack_and_ignores_foreign_acks() {
    let now = t0();
    let mut db = serving(4, now);
    db.mesh_received(&Packet::claim(node(2), 1, MAC).encode(), via_mesh(), now);
    // An ACK from another node, or for another MAC, does not stop it.
    db.mesh_received(&Packet::ack(node(3), 5, MAC).encode(), via_mesh(), now);
    db.mesh_received(
        &Packet::ack(node(2), 5, MacAddr([2, 0, 0, 0, 0, 1])).encode(),
        via_mesh(),
        now,
    );
    assert_eq!(db.counters().get(Counter::AcksUnmatched), 2);
    let log = run(&mut db, now, ms(10_000), ms(100));
    let sent = log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Send { .. }))
        .count();
    assert_eq!(sent, 15, "15 retransmissions after the first");
    assert_eq!(db.infos_pending(), 0);
    assert_eq!(db.counters().get(Counter::InfosUnacked), 1);
}

#[test]
fn info_is_capped_at_info_max_addresses() {
    let now = t0();
    let mut settings = Settings::defaults(node(4));
    settings.info_max_addresses = l3roamd_intercom::C_SAFE_INFO_ADDRS;
    let mut db = ClientDb::new(settings, Vec::new(), now).0;
    let addrs: Vec<Ipv6Addr> = (1..=6).map(client).collect();
    db.update(MAC, &addrs, now).unwrap();
    db.update(MAC, &[client(1)], now.after(Duration::from_secs(5)))
        .unwrap();
    let actions = db.mesh_received(&Packet::claim(node(2), 1, MAC).encode(), via_mesh(), now);
    let Body::Info(info) = &sends(&actions)[0].1.body else {
        panic!()
    };
    assert_eq!(info.addrs.len(), 4);
    assert_eq!(info.addrs[0], client(1), "the most recently seen is kept");
}

// ===== updates from core =====

#[test]
fn update_merges_and_announces_only_real_changes() {
    let now = t0();
    let mut db = new_db(1, now);
    let (record, actions) = db.update(MAC, &[client(1)], now).unwrap();
    assert!(record.serving);
    assert_eq!(record.served_by[0].node, node(1));
    assert_eq!(events(&actions).len(), 1);
    // The same address again: timestamps only, persisted but not announced.
    let (record, actions) = db
        .update(MAC, &[client(1)], now.after(Duration::from_secs(10)))
        .unwrap();
    assert!(events(&actions).is_empty());
    assert_eq!(persisted(&actions), [MAC]);
    assert_eq!(record.addresses[0].last_seen, 1_760_000_010);
    let (_, actions) = db.update(MAC, &[client(2)], now).unwrap();
    assert!(matches!(&events(&actions)[..], [Event::Updated(r)] if r.addresses.len() == 2));
    assert!(db.forget(MacAddr([2, 0, 0, 0, 0, 2]), now).is_none());
}

#[test]
fn full_table_evicts_unserved_records_first() {
    let now = t0();
    let mut settings = Settings::defaults(node(1));
    settings.max_records = 2;
    let mut db = ClientDb::new(settings, Vec::new(), now).0;
    let m = |i: u8| MacAddr([2, 0, 0, 0, 0, i]);
    db.update(m(1), &[client(1)], now).unwrap();
    db.update(m(2), &[client(2)], now).unwrap();
    assert_eq!(db.update(m(3), &[client(3)], now).unwrap_err(), db::Full(2));
    db.forget(m(1), now);
    let (_, actions) = db.update(m(3), &[client(3)], now).unwrap();
    assert!(events(&actions).contains(&Event::Removed {
        mac: m(1),
        at: 1_760_000_000
    }));
    assert!(persisted(&actions).contains(&m(1)));
    assert_eq!(db.len(), 2);
}

#[test]
fn pending_claims_and_infos_are_bounded() {
    let now = t0();
    let mut settings = Settings::defaults(node(1));
    settings.max_pending = 2;
    let mut db = ClientDb::new(settings, Vec::new(), now).0;
    let m = |i: u8| MacAddr([2, 0, 0, 0, 0, i]);
    assert_eq!(db.claim(m(1), now).0, ClaimOutcome::Started);
    assert_eq!(db.claim(m(2), now).0, ClaimOutcome::Started);
    let (outcome, _, actions) = db.claim(m(3), now);
    assert_eq!(outcome, ClaimOutcome::Busy);
    assert!(actions.is_empty());
    for i in 10..13 {
        db.update(m(i), &[client(u16::from(i))], now).unwrap();
        db.mesh_received(&Packet::claim(node(9), 1, m(i)).encode(), via_mesh(), now);
    }
    assert_eq!(db.infos_pending(), 2);
    assert_eq!(db.counters().get(Counter::InfosBusy), 1);
}

// ===== expiry and restart =====

#[test]
fn records_and_addresses_expire() {
    let now = t0();
    let mut db = new_db(1, now);
    db.update(MAC, &[client(1)], now).unwrap();
    let other = MacAddr([2, 0, 0, 0, 0, 7]);
    db.update(other, &[client(7)], now).unwrap();
    let half = now.after(Duration::from_secs(600));
    db.update(MAC, &[client(2)], half).unwrap();
    // At 900 s: `other` goes, MAC loses client(1) (seen at 0) but keeps client(2).
    let actions = db.tick(now.after(Duration::from_secs(900)));
    let ev = events(&actions);
    assert!(ev.contains(&Event::Removed {
        mac: other,
        at: 1_760_000_900
    }));
    assert!(ev.iter().any(|e| matches!(e, Event::Updated(r)
        if r.mac == MAC && r.addrs().collect::<Vec<_>>() == [client(2)])));
    assert!(persisted(&actions).contains(&other));
    assert!(db.get(&other).is_none());
    assert_eq!(db.counters().get(Counter::RecordsExpired), 1);
    db.tick(now.after(Duration::from_secs(1500)));
    assert!(db.is_empty());
}

#[test]
fn the_sweep_sleeps_until_the_next_expiry() {
    let now = t0();
    let mut db = new_db(1, now);
    let secs = Duration::from_secs;
    // Empty: after the first sweep, nothing can expire for a TTL.
    assert!(db.tick(now.after(secs(1))).is_empty());
    assert_eq!(db.next_deadline(), now.mono + secs(901));
    // A record learned at 100 s does not bring the sweep forward: it
    // expires at 1000 s, after the sweep at 901 s, which then sleeps until
    // 1000 s (with records, not a TTL: its address is due then).
    db.update(MAC, &[client(1)], now.after(secs(100))).unwrap();
    assert_eq!(db.next_deadline(), now.mono + secs(901));
    assert!(events(&db.tick(now.after(secs(901)))).is_empty());
    assert_eq!(db.next_deadline(), now.mono + secs(1000));
    // Seen again at 950 s with a second address: client(1) and the record
    // are due at 1850 s, and the tick at 1000 s finds nothing.
    db.update(MAC, &[client(1), client(2)], now.after(secs(950)))
        .unwrap();
    assert!(events(&db.tick(now.after(secs(1000)))).is_empty());
    assert_eq!(db.next_deadline(), now.mono + secs(1850));
    let expired = events(&db.tick(now.after(secs(1850))));
    assert!(expired
        .iter()
        .any(|e| matches!(e, Event::Removed { mac, .. } if *mac == MAC)));
    assert!(db.is_empty());
}

#[test]
fn wall_clock_step_keeps_ages() {
    let now = t0();
    let mut db = new_db(1, now);
    db.update(MAC, &[client(1)], now).unwrap();
    // NTP steps the clock a year ahead 10 s later: nothing expires.
    let year = Duration::from_secs(365 * 86_400);
    let stepped = Now {
        mono: now.mono + Duration::from_secs(10),
        wall: now.wall + year + Duration::from_secs(10),
    };
    assert!(events(&db.tick(stepped)).is_empty());
    let r = db.get(&MAC).unwrap();
    assert_eq!(r.updated, 1_760_000_000 + year.as_secs());
    assert_eq!(db.counters().get(Counter::ClockSteps), 1);
    // It still expires 900 s after its last change.
    let at = |secs: u64| Now {
        mono: now.mono + Duration::from_secs(secs),
        wall: now.wall + year + Duration::from_secs(secs),
    };
    assert!(db.tick(at(899)).is_empty());
    assert!(events(&db.tick(at(900)))
        .iter()
        .any(|e| matches!(e, Event::Removed { .. })));
}

/// Carries out `Persist` actions the way the event loop does.
fn persist(store: &mut MemoryStore, db: &ClientDb, actions: &[Action]) {
    for mac in persisted(actions) {
        match db.get(&mac) {
            Some(r) => store.put(r).unwrap(),
            None => store.remove(&mac).unwrap(),
        }
    }
    store.flush().unwrap();
}

#[test]
fn restart_reloads_records_from_the_store() {
    let now = t0();
    let mut store = MemoryStore::default();
    let mut db = new_db(2, now);
    let (_, _, a) = db.claim(MAC, now);
    persist(&mut store, &db, &a);
    let a = db.mesh_received(&hex(V8_INFO), via_mesh(), now);
    persist(&mut store, &db, &a);
    let other = MacAddr([2, 0, 0, 0, 0, 7]);
    let (_, a) = db.update(other, &[client(7)], now).unwrap();
    persist(&mut store, &db, &a);
    let (_, a) = db.forget(other, now).unwrap();
    persist(&mut store, &db, &a);
    let before: Vec<Record> = {
        let mut v: Vec<Record> = db.records().cloned().collect();
        v.sort_by_key(|r| r.mac);
        v
    };
    drop(db);

    // Restarted 60 s later: everything is back, serving flags included.
    let later = now.after(Duration::from_secs(60));
    let loaded = store.load_all().unwrap().records;
    let (db, actions) = ClientDb::new(Settings::defaults(node(2)), loaded, later);
    assert!(actions.is_empty());
    let mut after: Vec<Record> = db.records().cloned().collect();
    after.sort_by_key(|r| r.mac);
    assert_eq!(after, before);
    assert!(db.get(&MAC).unwrap().serving);
    assert!(!db.get(&other).unwrap().serving);
    assert_eq!(db.counters().get(Counter::RecordsLoaded), 2);

    // Restarted after the TTL: expired records are dropped and removed.
    let much_later = now.after(Duration::from_secs(901));
    let loaded = store.load_all().unwrap().records;
    let (db, actions) = ClientDb::new(Settings::defaults(node(2)), loaded, much_later);
    assert!(db.is_empty());
    persist(&mut store, &db, &actions);
    assert!(store.is_empty());
}

#[test]
fn restart_with_fewer_max_records_keeps_served_and_recent() {
    let now = t0();
    let m = |i: u8| MacAddr([2, 0, 0, 0, 0, i]);
    let mut records = Vec::new();
    for i in 0..5u8 {
        let mut r = Record::new(m(i), 1_760_000_000 - u64::from(i));
        r.serving = i == 4;
        records.push(r);
    }
    records.push(records[0].clone()); // a duplicate cannot come from a store, but
    let mut settings = Settings::defaults(node(1));
    settings.max_records = 2;
    let (db, actions) = ClientDb::new(settings, records, now);
    let mut kept: Vec<MacAddr> = db.records().map(|r| r.mac).collect();
    kept.sort_unstable();
    assert_eq!(kept, [m(0), m(4)]);
    assert_eq!(persisted(&actions).len(), 4);
}

// ===== what is accepted =====

#[test]
fn datagrams_from_client_links_or_to_foreign_addresses_are_refused() {
    let now = t0();
    let mut db = serving(4, now);
    let claim = Packet::claim(node(2), 1, MAC).encode();
    let from_client = Arrival {
        interface: ArrivalInterface::Client,
        destination: Some(node(4)),
    };
    assert!(db.mesh_received(&claim, from_client, now).is_empty());
    let elsewhere = Arrival {
        interface: ArrivalInterface::Other,
        destination: Some(client(1)),
    };
    assert!(db.mesh_received(&claim, elsewhere, now).is_empty());
    let multicast = Arrival {
        interface: ArrivalInterface::Mesh,
        destination: Some("ff02::5523".parse().unwrap()),
    };
    assert!(db.mesh_received(&claim, multicast, now).is_empty());
    assert_eq!(db.counters().get(Counter::Foreign), 3);
    // Off the mesh interfaces (loopback, a VPN) to a node-client address: read.
    let to_ncaddr = Arrival {
        interface: ArrivalInterface::Other,
        destination: Some(ncaddr()),
    };
    assert!(!db.mesh_received(&claim, to_ncaddr, now).is_empty());
}

#[test]
fn garbage_is_counted_never_a_panic() {
    let now = t0();
    let mut db = serving(4, now);
    // A SEEK is not ours to handle.
    let seek = Packet::seek(node(1), 1, client(1)).encode();
    assert!(db.mesh_received(&seek, via_mesh(), now).is_empty());
    assert_eq!(db.counters().get(Counter::OtherTypes), 1);
    // Deterministic pseudo-random datagrams, and every cut of real ones.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..300usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        db.mesh_received(&bytes, via_mesh(), now);
        let mut header = hex(V8_INFO);
        header.truncate(len.min(header.len()));
        db.mesh_received(&header, via_mesh(), now);
    }
    assert!(db.counters().get(Counter::Malformed) > 250);
}
