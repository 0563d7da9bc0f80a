//! rtnetlink: interfaces, the client bridge's FDB and the IPv6 neighbour table.
//!
//! One multicast socket follows RTNLGRP_LINK and RTNLGRP_NEIGH (which
//! carries both AF_BRIDGE FDB and AF_INET6 neighbour notifications); a
//! second socket dumps links, the FDB and the neighbour table at start and
//! every resync interval. The bridge notifies an FDB entry only when it is
//! learned, moves or is deleted, not on every frame, but each entry carries
//! the time since the client's last frame (`ndm_updated`), so the dumps are
//! what keeps a quiet but present client fresh.
//!
//! What counts (the rest is ignored):
//!
//! - FDB: an entry the bridge learned (NUD_REACHABLE, or NUD_STALE when it
//!   is about to age out; switchdev-learned entries too) on a port of a
//!   client bridge. Local and permanent entries (the bridge's and ports' own
//!   MACs), static ones (NUD_NOARP), entries reported by a port device itself
//!   (NTF_SELF) and locked ones (802.1X not yet authorised) are not clients.
//!   A deleted entry only means the bridge no longer sees the MAC.
//! - Neighbours: entries on a client interface or a device stacked on one
//!   (the next-node macvlan). REACHABLE is a sighting with an address;
//!   STALE, DELAY and PROBE only teach the address of a present client;
//!   INCOMPLETE, FAILED, NOARP and PERMANENT mean nothing.
//! - Links: a port that vanished, left the client bridge or lost its
//!   carrier loses its clients at once; every interface's MAC is our own.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use l3roamd_daemon::{Backoff, Shutdown};
use l3roamd_types::MacAddr;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::{mpsc, watch};

use crate::links::{Link, Links};
use crate::presence::{Event, Sighting, Source};

// ===== decoding =====

/// A learned entry of a bridge's forwarding database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// The MAC the bridge learned.
    pub mac: MacAddr,
    /// The port it was learned on.
    pub port: u32,
    /// The bridge (NDA_MASTER), when the message names it.
    pub bridge: Option<u32>,
    /// Time since the bridge last received a frame from the MAC.
    pub idle: Option<Duration>,
}

/// An IPv6 neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourEntry {
    /// The neighbour's address.
    pub address: Ipv6Addr,
    /// Its link-layer address, if resolved.
    pub mac: Option<MacAddr>,
    /// The interface of the entry.
    pub ifindex: u32,
    /// Its NUD state.
    pub state: NeighbourState,
    /// Time since its reachability was last confirmed.
    pub confirmed: Option<Duration>,
}

/// Kernel `clock_t` ticks per second (`USER_HZ`), the unit of NDA_CACHEINFO.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the C library.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|hz| *hz > 0).unwrap_or(100)
}

fn ticks(t: u32) -> Duration {
    Duration::from_millis(u64::from(t) * 1000 / ticks_per_second())
}

/// Reads a learned FDB entry; `None` for anything that is not one.
pub fn fdb_entry(msg: &NeighbourMessage) -> Option<FdbEntry> {
    let header = &msg.header;
    if header.family != AddressFamily::Bridge
        || header.flags.contains(NeighbourFlags::Own)
        || !matches!(
            header.state,
            NeighbourState::Reachable | NeighbourState::Stale
        )
    {
        return None;
    }
    let mut mac = None;
    let mut bridge = None;
    let mut idle = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = MacAddr::from_slice(bytes).ok(),
            NeighbourAttribute::Controller(index) => bridge = Some(*index),
            NeighbourAttribute::CacheInfo(info) => idle = Some(ticks(info.updated)),
            NeighbourAttribute::ExtFlags(flags) if flags.contains(NeighbourExtFlags::Locked) => {
                return None
            }
            _ => {}
        }
    }
    let mac = mac.filter(|m| !m.is_multicast() && *m != MacAddr::ZERO)?;
    Some(FdbEntry {
        mac,
        port: header.ifindex,
        bridge,
        idle,
    })
}

/// Reads an IPv6 neighbour entry; `None` for other families.
pub fn neighbour_entry(msg: &NeighbourMessage) -> Option<NeighbourEntry> {
    if msg.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut address = None;
    let mut mac = None;
    let mut confirmed = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => address = Some(*a),
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = MacAddr::from_slice(bytes).ok(),
            NeighbourAttribute::CacheInfo(info) => confirmed = Some(ticks(info.confirmed)),
            _ => {}
        }
    }
    Some(NeighbourEntry {
        address: address?,
        mac,
        ifindex: msg.header.ifindex,
        state: msg.header.state,
        confirmed,
    })
}

/// The presence event of an FDB entry learned (`deleted` false) or
/// deleted on a port of a client bridge.
pub fn fdb_event(entry: &FdbEntry, deleted: bool, links: &Links, now: Instant) -> Option<Event> {
    let bridge = entry
        .bridge
        .or_else(|| links.get(entry.port).and_then(|l| l.master))?;
    if !links.is_client_bridge(bridge) || entry.port == bridge {
        return None;
    }
    let port = links.attachment(entry.port)?.to_string();
    if deleted {
        return Some(Event::FdbGone {
            mac: entry.mac,
            port,
        });
    }
    Some(Event::Sighting(Sighting {
        mac: entry.mac,
        source: Source::Fdb,
        interface: port,
        seen_at: now.checked_sub(entry.idle.unwrap_or_default())?,
        address: None,
    }))
}

/// The presence event of a neighbour entry on the client side, if it says
/// anything.
pub fn neighbour_event(entry: &NeighbourEntry, links: &Links, now: Instant) -> Option<Event> {
    let interface = links.client_side(entry.ifindex)?.to_string();
    let mac = entry.mac?;
    match entry.state {
        NeighbourState::Reachable => Some(Event::Sighting(Sighting {
            mac,
            source: Source::Neighbour,
            interface,
            seen_at: now.checked_sub(entry.confirmed.unwrap_or_default())?,
            address: Some(entry.address),
        })),
        NeighbourState::Stale | NeighbourState::Delay | NeighbourState::Probe => {
            Some(Event::AddressHint {
                mac,
                address: entry.address,
            })
        }
        _ => None,
    }
}

// ===== the adapter =====

/// Pause before reconnecting after the netlink sockets failed; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The netlink sources' state between messages.
struct Kernel {
    links: Links,
    published: watch::Sender<Links>,
    inputs: mpsc::Sender<Event>,
    own_sent: Option<std::collections::BTreeSet<MacAddr>>,
}

/// The event loop is gone: stop.
struct Closed;

impl Kernel {
    async fn send(&self, event: Event) -> Result<(), Closed> {
        self.inputs.send(event).await.map_err(|_| Closed)
    }

    /// Passes on what a change of the link table means: clients of lost
    /// attachment points are gone, own MACs are updated (before anything
    /// else is seen with them), the other adapters see the new table.
    async fn links_changed(&mut self, lost: Vec<String>) -> Result<(), Closed> {
        let own = self.links.own_macs();
        if self.own_sent.as_ref() != Some(&own) {
            self.own_sent = Some(own.clone());
            self.send(Event::OwnMacs(own)).await?;
        }
        for interface in lost {
            tracing::debug!(%interface, "client link lost");
            self.send(Event::LinkLost { interface }).await?;
        }
        let links = self.links.clone();
        self.published.send_replace(links);
        Ok(())
    }

    async fn link(&mut self, msg: &LinkMessage, deleted: bool) -> Result<(), Closed> {
        if msg.header.interface_family != AddressFamily::Unspec {
            return Ok(());
        }
        let lost = if deleted {
            self.links.remove(msg.header.index)
        } else {
            match Link::from_message(msg) {
                Some(link) => self.links.upsert(link),
                None => return Ok(()),
            }
        };
        self.links_changed(lost).await
    }

    async fn neighbour(&mut self, msg: &NeighbourMessage, deleted: bool) -> Result<(), Closed> {
        let now = Instant::now();
        let event = match msg.header.family {
            AddressFamily::Bridge => {
                fdb_entry(msg).and_then(|e| fdb_event(&e, deleted, &self.links, now))
            }
            AddressFamily::Inet6 if !deleted => {
                neighbour_entry(msg).and_then(|e| neighbour_event(&e, &self.links, now))
            }
            _ => None,
        };
        match event {
            Some(event) => self.send(event).await,
            None => Ok(()),
        }
    }

    /// Reads links, FDB and neighbours in full.
    async fn resync(&mut self, handle: &Handle) -> Result<Result<(), Closed>, rtnetlink::Error> {
        let links: Vec<LinkMessage> = handle.link().get().execute().try_collect().await?;
        let lost = self
            .links
            .replace_all(links.iter().filter_map(Link::from_message).collect());
        if self.links_changed(lost).await.is_err() {
            return Ok(Err(Closed));
        }
        for family in [AddressFamily::Bridge, AddressFamily::Inet6] {
            let entries: Vec<NeighbourMessage> = handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute()
                .try_collect()
                .await?;
            for entry in &entries {
                if self.neighbour(entry, false).await.is_err() {
                    return Ok(Err(Closed));
                }
            }
        }
        Ok(Ok(()))
    }
}

/// Follows links, FDB and neighbours until shutdown, reconnecting with
/// backoff if the netlink sockets fail. `links` starts empty and is
/// published through `published` after every change.
pub async fn run(
    links: Links,
    published: watch::Sender<Links>,
    inputs: mpsc::Sender<Event>,
    resync: Duration,
    shutdown: Shutdown,
) {
    let mut kernel = Kernel {
        links,
        published,
        inputs,
        own_sent: None,
    };
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        match session(&mut kernel, resync, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "rtnetlink failed; FDB and neighbour sources are paused, reconnecting")
            }
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// One connection's life: subscribe, dump, then events and periodic dumps.
/// `Ok` when the daemon stops.
async fn session(kernel: &mut Kernel, resync: Duration, shutdown: &Shutdown) -> Result<(), String> {
    // Subscribe before dumping, so that no change falls between the two.
    let (connection, _, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link, MulticastGroup::Neigh])
            .map_err(|e| format!("rtnetlink multicast socket: {e}"))?;
    let _events = AbortOnDrop(tokio::spawn(connection));
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("rtnetlink socket: {e}"))?;
    let _requests = AbortOnDrop(tokio::spawn(connection));

    let mut timer = tokio::time::interval(resync);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = tokio::select! {
            _ = timer.tick() => match kernel.resync(&handle).await {
                Ok(step) => step,
                Err(e) => return Err(format!("dump: {e}")),
            },
            message = messages.next() => {
                let Some((message, _)) = message else {
                    return Err("the rtnetlink event socket closed".to_string());
                };
                match message.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => kernel.link(&m, false).await,
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => kernel.link(&m, true).await,
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => kernel.neighbour(&m, false).await,
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m)) => kernel.neighbour(&m, true).await,
                    NetlinkPayload::Overrun(_) => {
                        tracing::warn!("rtnetlink events overran; reading everything again");
                        timer.reset_immediately();
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            _ = shutdown.requested() => return Ok(()),
        };
        if step.is_err() {
            return Ok(());
        }
    }
}

/// A spawned task that ends with its owner.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};
    use netlink_packet_route::neighbour::NeighbourCacheInfo;

    fn links() -> Links {
        let mut links = Links::new(vec!["br-client".into()], Vec::new());
        let link = |index, name: &str, master, lower, is_bridge| Link {
            index,
            name: name.into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            master,
            lower,
            is_bridge,
            up: true,
            carrier: true,
        };
        links.replace_all(vec![
            link(2, "br-client", None, None, true),
            link(3, "veth-c1", Some(2), None, false),
            link(4, "local-node", None, Some(2), false),
            link(5, "br-other", None, None, true),
            link(6, "veth-o1", Some(5), None, false),
        ]);
        links
    }

    /// struct nda_cacheinfo: confirmed, used, updated, refcnt.
    fn cache_info(updated: u32) -> NeighbourCacheInfo {
        let mut bytes = [0u8; 16];
        bytes[8..12].copy_from_slice(&updated.to_ne_bytes());
        NeighbourCacheInfo::parse(&bytes).unwrap()
    }

    fn fdb(
        port: u32,
        state: NeighbourState,
        flags: NeighbourFlags,
        mac: [u8; 6],
    ) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = port;
        msg.header.state = state;
        msg.header.flags = flags;
        msg.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            NeighbourAttribute::Controller(2),
            NeighbourAttribute::CacheInfo(cache_info(250)),
        ];
        msg
    }

    const CLIENT: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];

    #[test]
    fn learned_fdb_entries_on_client_bridge_ports_are_sightings() {
        let now = Instant::now();
        let msg = fdb(
            3,
            NeighbourState::Reachable,
            NeighbourFlags::empty(),
            CLIENT,
        );
        let entry = fdb_entry(&msg).unwrap();
        assert_eq!(
            entry.idle,
            Some(Duration::from_millis(250 * 1000 / ticks_per_second()))
        );
        match fdb_event(&entry, false, &links(), now) {
            Some(Event::Sighting(s)) => {
                assert_eq!(s.interface, "veth-c1");
                assert_eq!(s.mac, MacAddr(CLIENT));
                assert_eq!(s.source, Source::Fdb);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fdb_event(&entry, true, &links(), now),
            Some(Event::FdbGone {
                mac: MacAddr(CLIENT),
                port: "veth-c1".into()
            })
        );
    }

    #[test]
    fn local_static_self_locked_and_group_entries_are_not_clients() {
        let no = |msg: NeighbourMessage| assert_eq!(fdb_entry(&msg), None, "{msg:?}");
        no(fdb(
            3,
            NeighbourState::Permanent,
            NeighbourFlags::empty(),
            CLIENT,
        ));
        no(fdb(
            3,
            NeighbourState::Noarp,
            NeighbourFlags::empty(),
            CLIENT,
        ));
        no(fdb(
            3,
            NeighbourState::Reachable,
            NeighbourFlags::Own,
            CLIENT,
        ));
        no(fdb(
            3,
            NeighbourState::Reachable,
            NeighbourFlags::empty(),
            [0x33, 0x33, 0, 0, 0, 1],
        ));
        let mut locked = fdb(
            3,
            NeighbourState::Reachable,
            NeighbourFlags::empty(),
            CLIENT,
        );
        locked
            .attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Locked));
        no(locked);
        // Entries of another bridge, or on the bridge itself.
        let now = Instant::now();
        let mut other = fdb_entry(&fdb(
            6,
            NeighbourState::Reachable,
            NeighbourFlags::empty(),
            CLIENT,
        ))
        .unwrap();
        other.bridge = Some(5);
        assert_eq!(fdb_event(&other, false, &links(), now), None);
        let on_bridge = fdb_entry(&fdb(
            2,
            NeighbourState::Reachable,
            NeighbourFlags::empty(),
            CLIENT,
        ))
        .unwrap();
        assert_eq!(fdb_event(&on_bridge, false, &links(), now), None);
        // An entry about to age out (STALE) is still a sighting, with its age.
        let stale = fdb_entry(&fdb(
            3,
            NeighbourState::Stale,
            NeighbourFlags::ExtLearned,
            CLIENT,
        ));
        assert!(stale.is_some());
    }

    // Notifications captured on RTNLGRP_NEIGH in the lab (Linux 6.18,
    // little-endian): node namespace with br-client (ifindex 2), the
    // next-node macvlan local-node (3) and the client's port veth-c1 (5).
    /// RTM_NEWNEIGH AF_BRIDGE: the bridge learned 02:c1:00:00:00:01 on
    /// veth-c1 (NUD_REACHABLE, NDA_LLADDR, NDA_MASTER 2, NDA_FLAGS_EXT 0,
    /// NDA_CACHEINFO).
    const FDB_LEARNED: &str = "4c0000001c00000000000000000000000700000005000000020000000a00020002c1000000010000080009000200000008000f00000000001400030000000000000000000000000000000000";
    /// RTM_DELNEIGH AF_BRIDGE: that entry flushed when veth-c1 left the
    /// bridge (ndm_updated 100 ticks).
    const FDB_DELETED: &str = "4c0000001d00000000000000000000000700000005000000020000000a00020002c1000000010000080009000200000008000f00000000001400030000000000f90000006400000000000000";
    /// RTM_DELNEIGH AF_BRIDGE: the port's own MAC, NUD_PERMANENT.
    const FDB_PERMANENT: &str = "4c0000001d00000000000000000000000700000005000000800000000a00020002bb000000c10000080009000200000008000f00000000001400030000000000d60b0000d60b000000000000";
    /// RTM_NEWNEIGH AF_INET6: fddd:1::100 REACHABLE on local-node after the
    /// node pinged it (NDA_DST, NDA_LLADDR, NDA_PROBES, NDA_CACHEINFO).
    const NEIGHBOUR_REACHABLE: &str = "580000001c00000000000000000000000a000000030000000200000114000100fddd00010000000000000000000001000a00020002c100000001000008000400040000001400030000000000000000000000000002000000";
    /// RTM_DELNEIGH AF_INET6: a multicast NUD_NOARP entry on local-node.
    const NEIGHBOUR_NOARP: &str = "580000001d00000000000000000000000a000000030000004000000514000100ff0200000000000000000001ff0001000a0002003333ff0001000000080004000000000014000300d4170000640000006400000000000000";

    fn kernel_message(hex: &str) -> (bool, NeighbourMessage) {
        use netlink_packet_route::RouteNetlinkMessage;
        use rtnetlink::packet_core::NetlinkMessage;
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes)
            .unwrap()
            .payload
        {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => (false, m),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m)) => (true, m),
            other => panic!("{other:?}"),
        }
    }

    fn lab_links() -> Links {
        let mut links = Links::new(vec!["br-client".into()], Vec::new());
        let link = |index, name: &str, master, lower, is_bridge, mac: [u8; 6]| Link {
            index,
            name: name.into(),
            mac: Some(MacAddr(mac)),
            master,
            lower,
            is_bridge,
            up: true,
            carrier: true,
        };
        links.replace_all(vec![
            link(2, "br-client", None, None, true, [2, 0xbb, 0, 0, 0, 1]),
            link(
                3,
                "local-node",
                None,
                Some(2),
                false,
                [2, 0x4e, 0x4e, 0, 0, 1],
            ),
            link(5, "veth-c1", Some(2), None, false, [2, 0xbb, 0, 0, 0, 0xc1]),
        ]);
        links
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn captured_kernel_notifications_decode() {
        let now = Instant::now();
        let links = lab_links();
        let client = MacAddr([2, 0xc1, 0, 0, 0, 1]);

        let (deleted, msg) = kernel_message(FDB_LEARNED);
        let entry = fdb_entry(&msg).unwrap();
        assert_eq!((entry.mac, entry.port, entry.bridge), (client, 5, Some(2)));
        match fdb_event(&entry, deleted, &links, now) {
            Some(Event::Sighting(s)) => {
                assert_eq!(
                    (s.mac, s.interface.as_str(), s.seen_at),
                    (client, "veth-c1", now)
                )
            }
            other => panic!("{other:?}"),
        }

        let (deleted, msg) = kernel_message(FDB_DELETED);
        let entry = fdb_entry(&msg).unwrap();
        assert_eq!(entry.idle, Some(ticks(100)));
        assert_eq!(
            fdb_event(&entry, deleted, &links, now),
            Some(Event::FdbGone {
                mac: client,
                port: "veth-c1".into()
            })
        );

        let (_, msg) = kernel_message(FDB_PERMANENT);
        assert_eq!(fdb_entry(&msg), None);

        let (_, msg) = kernel_message(NEIGHBOUR_REACHABLE);
        let entry = neighbour_entry(&msg).unwrap();
        assert_eq!(entry.address, "fddd:1::100".parse::<Ipv6Addr>().unwrap());
        match neighbour_event(&entry, &links, now) {
            Some(Event::Sighting(s)) => {
                assert_eq!(s.mac, client);
                assert_eq!(s.interface, "br-client");
                assert_eq!(s.address, Some(entry.address));
            }
            other => panic!("{other:?}"),
        }

        let (_, msg) = kernel_message(NEIGHBOUR_NOARP);
        let entry = neighbour_entry(&msg).unwrap();
        assert_eq!(neighbour_event(&entry, &links, now), None);
    }

    fn neighbour(ifindex: u32, state: NeighbourState, mac: Option<[u8; 6]>) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.ifindex = ifindex;
        msg.header.state = state;
        msg.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Inet6(
            "fddd:1::100".parse().unwrap(),
        ))];
        if let Some(mac) = mac {
            msg.attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        msg
    }

    #[test]
    fn neighbour_states_mean_what_they_say() {
        let now = Instant::now();
        let event = |ifindex, state, mac| {
            neighbour_entry(&neighbour(ifindex, state, mac))
                .and_then(|e| neighbour_event(&e, &links(), now))
        };
        match event(4, NeighbourState::Reachable, Some(CLIENT)) {
            Some(Event::Sighting(s)) => {
                assert_eq!(s.interface, "br-client");
                assert_eq!(s.address, Some("fddd:1::100".parse().unwrap()));
                assert_eq!(s.source, Source::Neighbour);
            }
            other => panic!("{other:?}"),
        }
        for state in [
            NeighbourState::Stale,
            NeighbourState::Delay,
            NeighbourState::Probe,
        ] {
            assert!(matches!(
                event(4, state, Some(CLIENT)),
                Some(Event::AddressHint { .. })
            ));
        }
        for state in [
            NeighbourState::Incomplete,
            NeighbourState::Failed,
            NeighbourState::Permanent,
            NeighbourState::Noarp,
        ] {
            assert_eq!(event(4, state, Some(CLIENT)), None);
        }
        // No link-layer address, or not on the client side.
        assert_eq!(event(4, NeighbourState::Reachable, None), None);
        assert_eq!(event(6, NeighbourState::Reachable, Some(CLIENT)), None);
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_messages_never_panic() {
        use netlink_packet_route::RouteNetlinkMessage;
        use rtnetlink::packet_core::NetlinkMessage;
        let mut next = xorshift(0x5eed_0dd0_0000_0006);
        let seeds: Vec<Vec<u8>> = [
            FDB_LEARNED,
            FDB_DELETED,
            FDB_PERMANENT,
            NEIGHBOUR_REACHABLE,
            NEIGHBOUR_NOARP,
        ]
        .iter()
        .map(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
        let (links, lab) = (links(), lab_links());
        let now = Instant::now();
        for round in 0..5000 {
            let bytes = damaged(&seeds[round % seeds.len()], &mut next);
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes) else {
                continue;
            };
            match msg.payload {
                NetlinkPayload::InnerMessage(
                    RouteNetlinkMessage::NewNeighbour(m) | RouteNetlinkMessage::DelNeighbour(m),
                ) => {
                    if let Some(entry) = fdb_entry(&m) {
                        let _ = fdb_event(&entry, round % 2 == 0, &links, now);
                    }
                    if let Some(entry) = neighbour_entry(&m) {
                        let _ = neighbour_event(&entry, &lab, now);
                    }
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                    let _ = Link::from_message(&m);
                }
                _ => {}
            }
        }
    }
}
