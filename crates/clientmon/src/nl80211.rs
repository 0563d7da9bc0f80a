//! nl80211: stations on the wireless client interfaces (access points).
//!
//! The kernel announces every association (NL80211_CMD_NEW_STATION) and
//! disassociation (NL80211_CMD_DEL_STATION) on the nl80211 "mlme"
//! multicast group; a station dump (NL80211_CMD_GET_STATION) at start and
//! at every resync lists the stations with their inactive time, so an idle
//! station is judged by our own presence timeout, not by mac80211's.
//!
//! Events are read from their raw attributes ([`decode_event`]): only the
//! command, NL80211_ATTR_IFINDEX, NL80211_ATTR_MAC and the inactive time in
//! NL80211_ATTR_STA_INFO. wl-nl80211's typed [`Nl80211Message`] parses every
//! attribute, so one it cannot read (a new kernel's station statistic, say)
//! would make it refuse the whole message, losing a DEL_STATION; and one it
//! reads carelessly panics it (wl-nl80211 0.8 slices an NL80211_ATTR_MAC_ADDRS
//! entry shorter than a MAC, found by the `nl80211_event` fuzz target), which
//! with `panic = "abort"` ends the daemon. The station dump still comes
//! typed, from wl-nl80211's own request ([`station_from_message`]).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use genetlink::message::RawGenlMessage;
use l3roamd_daemon::{Backoff, Shutdown};
use l3roamd_types::MacAddr;
use tokio::sync::{mpsc, watch};
use wl_nl80211::packet_core::{NetlinkMessage, NetlinkPayload, NlasIterator};
use wl_nl80211::{
    Nl80211Attr, Nl80211Command, Nl80211Handle, Nl80211Message, Nl80211MulticastGroup,
    Nl80211StationInfo,
};

use crate::links::Links;
use crate::presence::{Event, Sighting, Source};

// ===== decoding =====

/// `NL80211_CMD_NEW_STATION` (nl80211.h).
const NL80211_CMD_NEW_STATION: u8 = 19;
/// `NL80211_CMD_DEL_STATION` (nl80211.h).
const NL80211_CMD_DEL_STATION: u8 = 20;
/// `NL80211_ATTR_IFINDEX`: u32.
const NL80211_ATTR_IFINDEX: u16 = 3;
/// `NL80211_ATTR_MAC`: six bytes.
const NL80211_ATTR_MAC: u16 = 6;
/// `NL80211_ATTR_STA_INFO`: a nest of `NL80211_STA_INFO_*`.
const NL80211_ATTR_STA_INFO: u16 = 21;
/// `NL80211_STA_INFO_INACTIVE_TIME`: u32, milliseconds.
const NL80211_STA_INFO_INACTIVE_TIME: u16 = 1;
/// The attribute kind without the nested and byte-order flag bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// What happened to a station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StationChange {
    /// Associated (an event) or listed (a dump reply).
    New,
    /// Disassociated.
    Del,
}

/// A station event or dump entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationEvent {
    /// New or deleted.
    pub change: StationChange,
    /// The wireless interface.
    pub ifindex: u32,
    /// The station's MAC.
    pub mac: MacAddr,
    /// Time since the station was last active, when the kernel says.
    pub inactive: Option<Duration>,
}

/// A station message without the attributes every one carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StationDecodeError {
    /// NL80211_ATTR_IFINDEX or NL80211_ATTR_MAC is missing or malformed.
    #[error("station message without a valid {0}")]
    Missing(&'static str),
}

/// Reads a typed station message; `Ok(None)` for other commands.
pub fn station_from_message(
    msg: &Nl80211Message,
) -> Result<Option<StationEvent>, StationDecodeError> {
    let change = match msg.cmd {
        Nl80211Command::NewStation => StationChange::New,
        Nl80211Command::DelStation => StationChange::Del,
        _ => return Ok(None),
    };
    let mut ifindex = None;
    let mut mac = None;
    let mut inactive = None;
    for attr in &msg.attributes {
        match attr {
            Nl80211Attr::IfIndex(i) => ifindex = Some(*i),
            Nl80211Attr::Mac(m) => mac = Some(MacAddr(*m)),
            Nl80211Attr::StationInfo(infos) => {
                inactive = infos.iter().find_map(|i| match i {
                    Nl80211StationInfo::InactiveTime(ms) => {
                        Some(Duration::from_millis(u64::from(*ms)))
                    }
                    _ => None,
                });
            }
            _ => {}
        }
    }
    Ok(Some(StationEvent {
        change,
        ifindex: ifindex.ok_or(StationDecodeError::Missing("NL80211_ATTR_IFINDEX"))?,
        mac: mac.ok_or(StationDecodeError::Missing("NL80211_ATTR_MAC"))?,
        inactive,
    }))
}

/// Reads command, interface, MAC and inactive time from raw attributes;
/// `Ok(None)` for other commands.
pub fn station_from_attributes(
    cmd: u8,
    attributes: &[u8],
) -> Result<Option<StationEvent>, StationDecodeError> {
    let change = match cmd {
        NL80211_CMD_NEW_STATION => StationChange::New,
        NL80211_CMD_DEL_STATION => StationChange::Del,
        _ => return Ok(None),
    };
    let mut ifindex = None;
    let mut mac = None;
    let mut inactive = None;
    // A malformed attribute ends the walk; what was read before counts.
    for nla in NlasIterator::new(attributes).map_while(Result::ok) {
        match nla.kind() & NLA_TYPE_MASK {
            NL80211_ATTR_IFINDEX => ifindex = u32_of(nla.value()),
            NL80211_ATTR_MAC => mac = MacAddr::from_slice(nla.value()).ok(),
            NL80211_ATTR_STA_INFO => {
                inactive = NlasIterator::new(nla.value())
                    .map_while(Result::ok)
                    .filter(|i| i.kind() & NLA_TYPE_MASK == NL80211_STA_INFO_INACTIVE_TIME)
                    .find_map(|i| u32_of(i.value()))
                    .map(|ms| Duration::from_millis(u64::from(ms)));
            }
            _ => {}
        }
    }
    Ok(Some(StationEvent {
        change,
        ifindex: ifindex.ok_or(StationDecodeError::Missing("NL80211_ATTR_IFINDEX"))?,
        mac: mac.ok_or(StationDecodeError::Missing("NL80211_ATTR_MAC"))?,
        inactive,
    }))
}

/// A u32 attribute value in host byte order, as netlink carries them.
fn u32_of(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_ne_bytes)
}

/// Decodes one message of the nl80211 event socket: `Ok(None)` for
/// anything but a station event (other commands, netlink errors, overruns).
pub fn decode_event(
    msg: &NetlinkMessage<RawGenlMessage>,
) -> Result<Option<StationEvent>, StationDecodeError> {
    let NetlinkPayload::InnerMessage(raw) = &msg.payload else {
        return Ok(None);
    };
    station_from_attributes(raw.header.cmd, &raw.payload)
}

// ===== the adapter =====

/// Pause before the first retry after nl80211 failed; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Turns a station event on a configured wireless interface into a presence event.
pub fn station_event(
    event: &StationEvent,
    links: &Links,
    wireless: &[String],
    now: Instant,
) -> Option<Event> {
    let name = links.get(event.ifindex)?.name.clone();
    if !wireless.contains(&name) {
        return None;
    }
    Some(match event.change {
        StationChange::New => Event::Sighting(Sighting {
            mac: event.mac,
            source: Source::Station,
            interface: name,
            seen_at: now.checked_sub(event.inactive.unwrap_or_default())?,
            address: None,
        }),
        StationChange::Del => Event::StationGone {
            mac: event.mac,
            interface: name,
        },
    })
}

/// Watches the stations of `wireless` until shutdown, reconnecting with
/// backoff when nl80211 is unavailable (no wireless driver loaded yet).
pub async fn run(
    wireless: Vec<String>,
    mut links: watch::Receiver<Links>,
    inputs: mpsc::Sender<Event>,
    resync: Duration,
    shutdown: Shutdown,
) {
    // Interface names are needed to tell our access points' stations apart.
    if links.wait_for(|l| !l.is_empty()).await.is_err() {
        return;
    }
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut failures = 0u32;
    loop {
        match session(&wireless, &links, &inputs, resync, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, interfaces = ?wireless, "nl80211 unavailable; stations are not watched, retrying");
                } else {
                    tracing::debug!(error = %e, "nl80211 still unavailable");
                }
            }
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// One connection's life: subscribe, dump, then events and periodic dumps.
async fn session(
    wireless: &[String],
    links: &watch::Receiver<Links>,
    inputs: &mpsc::Sender<Event>,
    resync: Duration,
    shutdown: &Shutdown,
) -> Result<(), String> {
    // Subscribe before dumping, so that no event falls between the two.
    let (connection, _, mut events) =
        wl_nl80211::new_multicast_connection(&[Nl80211MulticastGroup::Mlme])
            .map_err(|e| format!("mlme multicast group: {e}"))?;
    let events_task = AbortOnDrop(tokio::spawn(connection));
    let (connection, handle, _) =
        wl_nl80211::new_connection().map_err(|e| format!("nl80211 socket: {e}"))?;
    let requests_task = AbortOnDrop(tokio::spawn(connection));
    tracing::info!(interfaces = ?wireless, "watching nl80211 stations");

    let mut resync = tokio::time::interval(resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = resync.tick() => {
                if !dump(&handle, wireless, links, inputs).await {
                    break Ok(());
                }
            }
            message = events.next() => {
                let Some((message, _)) = message else {
                    break Err("the nl80211 event socket closed".to_string());
                };
                match decode_event(&message) {
                    Ok(Some(event)) => {
                        let input = station_event(&event, &links.borrow(), wireless, Instant::now());
                        if let Some(input) = input {
                            tracing::debug!(?event, "nl80211 station event");
                            if inputs.send(input).await.is_err() {
                                break Ok(());
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "nl80211 station event ignored"),
                }
            }
            _ = shutdown.requested() => break Ok(()),
        }
    };
    drop((events_task, requests_task));
    result
}

/// Dumps the stations of every wireless interface; `false` when the event
/// loop is gone.
async fn dump(
    handle: &Nl80211Handle,
    wireless: &[String],
    links: &watch::Receiver<Links>,
    inputs: &mpsc::Sender<Event>,
) -> bool {
    for name in wireless {
        let Some(ifindex) = links.borrow().index_of(name) else {
            tracing::debug!(interface = %name, "wireless interface does not exist (yet)");
            continue;
        };
        let stream = handle.station().dump(ifindex).execute().await;
        let mut stream = std::pin::pin!(stream);
        loop {
            let reply = match stream.try_next().await {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(interface = %name, error = %e, "station dump failed");
                    break;
                }
            };
            let event = match station_from_message(&reply.payload) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "station dump entry ignored");
                    continue;
                }
            };
            let input = station_event(&event, &links.borrow(), wireless, Instant::now());
            if let Some(input) = input {
                if inputs.send(input).await.is_err() {
                    return false;
                }
            }
        }
    }
    true
}

/// A spawned task that ends with its owner.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ===== tests =====

/// Byte vectors of genuine nl80211 station messages, built by hand after
/// the kernel's UAPI (`include/uapi/linux/nl80211.h`, `linux/netlink.h`,
/// `linux/genetlink.h`) and the layout `nl80211_send_station()` emits:
/// IFINDEX, MAC, GENERATION, then the STA_INFO nest (empty in the
/// NEW_STATION event mac80211 sends on association, full of statistics in
/// DEL_STATION and in dump replies). Netlink is host byte order; these are
/// little-endian.
#[cfg(all(test, target_endian = "little"))]
#[allow(clippy::unwrap_used, reason = "test helpers")]
mod tests {
    use super::*;
    use crate::links::Link;
    use genetlink::message::RawGenlMessage;
    use l3roamd_types::damage::{damaged, xorshift};
    use wl_nl80211::packet_core::NetlinkMessage;

    /// NL80211_CMD_NEW_STATION as multicast on "mlme" when a station
    /// associates to access point ifindex 7.
    #[rustfmt::skip]
    const NEW_STATION_EVENT: [u8; 52] = [
        // struct nlmsghdr: length 52, type 0x1c (the nl80211 family id is
        // dynamic), flags 0, sequence 0, port 0 (from the kernel)
        0x34, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // struct genlmsghdr: cmd 19 (NEW_STATION), version 1, reserved
        0x13, 0x01, 0x00, 0x00,
        // NL80211_ATTR_IFINDEX (3), u32 7
        0x08, 0x00, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00,
        // NL80211_ATTR_MAC (6), 02:11:22:33:44:55, 2 bytes of padding
        0x0a, 0x00, 0x06, 0x00, 0x02, 0x11, 0x22, 0x33,
        0x44, 0x55, 0x00, 0x00,
        // NL80211_ATTR_GENERATION (46), u32 42
        0x08, 0x00, 0x2e, 0x00, 0x2a, 0x00, 0x00, 0x00,
        // NL80211_ATTR_STA_INFO (21), an empty nest
        0x04, 0x00, 0x15, 0x00,
    ];

    /// NL80211_CMD_DEL_STATION for the same station, with its final
    /// statistics (mac80211 fills them in with sta_set_sinfo()).
    #[rustfmt::skip]
    const DEL_STATION_EVENT: [u8; 156] = [
        // nlmsghdr: length 156, type 0x1c
        0x9c, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // genlmsghdr: cmd 20 (DEL_STATION), version 1
        0x14, 0x01, 0x00, 0x00,
        // IFINDEX 7
        0x08, 0x00, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00,
        // MAC 02:11:22:33:44:55
        0x0a, 0x00, 0x06, 0x00, 0x02, 0x11, 0x22, 0x33,
        0x44, 0x55, 0x00, 0x00,
        // GENERATION 43
        0x08, 0x00, 0x2e, 0x00, 0x2b, 0x00, 0x00, 0x00,
        // STA_INFO (21), length 108
        0x6c, 0x00, 0x15, 0x00,
        //   NL80211_STA_INFO_INACTIVE_TIME (1), u32 1200 ms
        0x08, 0x00, 0x01, 0x00, 0xb0, 0x04, 0x00, 0x00,
        //   RX_BYTES (2), u32 12345
        0x08, 0x00, 0x02, 0x00, 0x39, 0x30, 0x00, 0x00,
        //   TX_BYTES (3), u32 54321
        0x08, 0x00, 0x03, 0x00, 0x31, 0xd4, 0x00, 0x00,
        //   SIGNAL (7), u8 -52 dBm, 3 bytes of padding
        0x05, 0x00, 0x07, 0x00, 0xcc, 0x00, 0x00, 0x00,
        //   RX_PACKETS (9), u32 100
        0x08, 0x00, 0x09, 0x00, 0x64, 0x00, 0x00, 0x00,
        //   TX_PACKETS (10), u32 80
        0x08, 0x00, 0x0a, 0x00, 0x50, 0x00, 0x00, 0x00,
        //   TX_BITRATE (8), a nest of length 36:
        0x24, 0x00, 0x08, 0x00,
        //     NL80211_RATE_INFO_BITRATE32 (5), u32 1445 (144.5 Mbit/s)
        0x08, 0x00, 0x05, 0x00, 0xa5, 0x05, 0x00, 0x00,
        //     NL80211_RATE_INFO_BITRATE (1), u16 1445, padding
        0x06, 0x00, 0x01, 0x00, 0xa5, 0x05, 0x00, 0x00,
        //     NL80211_RATE_INFO_MCS (2), u8 15, padding
        0x05, 0x00, 0x02, 0x00, 0x0f, 0x00, 0x00, 0x00,
        //     NL80211_RATE_INFO_40_MHZ_WIDTH (3), flag
        0x04, 0x00, 0x03, 0x00,
        //     NL80211_RATE_INFO_SHORT_GI (4), flag
        0x04, 0x00, 0x04, 0x00,
        //   CONNECTED_TIME (16), u32 300 s
        0x08, 0x00, 0x10, 0x00, 0x2c, 0x01, 0x00, 0x00,
        //   STA_FLAGS (17), struct nl80211_sta_flag_update: mask BIT(1..7),
        //   set AUTHORIZED|WME|AUTHENTICATED|ASSOCIATED
        0x0c, 0x00, 0x11, 0x00, 0xfe, 0x00, 0x00, 0x00,
        0xaa, 0x00, 0x00, 0x00,
    ];

    /// A reply to the station dump (NL80211_CMD_GET_STATION with
    /// NLM_F_DUMP): command NEW_STATION, NLM_F_MULTI, our sequence and port.
    #[rustfmt::skip]
    const STATION_DUMP_REPLY: [u8; 180] = [
        // nlmsghdr: length 180, type 0x1c, flags NLM_F_MULTI (2),
        // sequence 0x2a, port 0x1f40
        0xb4, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x02, 0x00,
        0x2a, 0x00, 0x00, 0x00, 0x40, 0x1f, 0x00, 0x00,
        // genlmsghdr: cmd 19 (NEW_STATION), version 1
        0x13, 0x01, 0x00, 0x00,
        // IFINDEX 7
        0x08, 0x00, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00,
        // MAC 02:aa:bb:cc:dd:ee
        0x0a, 0x00, 0x06, 0x00, 0x02, 0xaa, 0xbb, 0xcc,
        0xdd, 0xee, 0x00, 0x00,
        // GENERATION 44
        0x08, 0x00, 0x2e, 0x00, 0x2c, 0x00, 0x00, 0x00,
        // STA_INFO (21), length 132
        0x84, 0x00, 0x15, 0x00,
        //   INACTIVE_TIME (1), u32 4200 ms
        0x08, 0x00, 0x01, 0x00, 0x68, 0x10, 0x00, 0x00,
        //   NL80211_STA_INFO_PAD (33), aligning the next u64
        0x04, 0x00, 0x21, 0x00,
        //   RX_BYTES64 (23), u64 4294967296
        0x0c, 0x00, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00,
        //   PAD (33)
        0x04, 0x00, 0x21, 0x00,
        //   TX_BYTES64 (24), u64 65536
        0x0c, 0x00, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00,
        //   SIGNAL (7), -60 dBm
        0x05, 0x00, 0x07, 0x00, 0xc4, 0x00, 0x00, 0x00,
        //   SIGNAL_AVG (13), -58 dBm
        0x05, 0x00, 0x0d, 0x00, 0xc6, 0x00, 0x00, 0x00,
        //   RX_BITRATE (14), a nest of length 20: BITRATE32 600, BITRATE 600
        0x14, 0x00, 0x0e, 0x00,
        0x08, 0x00, 0x05, 0x00, 0x58, 0x02, 0x00, 0x00,
        0x06, 0x00, 0x01, 0x00, 0x58, 0x02, 0x00, 0x00,
        //   BSS_PARAM (15), a nest of length 24: SHORT_SLOT_TIME (3) flag,
        //   DTIM_PERIOD (4) u8 2, BEACON_INTERVAL (5) u16 100
        0x18, 0x00, 0x0f, 0x00,
        0x04, 0x00, 0x03, 0x00,
        0x05, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x06, 0x00, 0x05, 0x00, 0x64, 0x00, 0x00, 0x00,
        //   CONNECTED_TIME (16), 3600 s
        0x08, 0x00, 0x10, 0x00, 0x10, 0x0e, 0x00, 0x00,
        //   STA_FLAGS (17)
        0x0c, 0x00, 0x11, 0x00, 0xfe, 0x00, 0x00, 0x00,
        0xaa, 0x00, 0x00, 0x00,
        //   BEACON_LOSS (18), u32 0
        0x08, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// What netlink-proto does with the bytes read from the socket.
    fn receive(bytes: &[u8]) -> NetlinkMessage<RawGenlMessage> {
        let declared = u32::from_ne_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(
            declared as usize,
            bytes.len(),
            "nlmsg_len must match the vector"
        );
        NetlinkMessage::<RawGenlMessage>::deserialize(bytes).unwrap()
    }

    fn typed(bytes: &[u8]) -> Option<StationEvent> {
        let raw = match receive(bytes).payload {
            NetlinkPayload::InnerMessage(raw) => raw,
            other => panic!("{other:?}"),
        };
        let genl = raw.parse_into_genlmsg::<Nl80211Message>().ok()?;
        station_from_message(&genl.payload).unwrap()
    }

    fn raw(bytes: &[u8]) -> Option<StationEvent> {
        let NetlinkPayload::InnerMessage(raw) = receive(bytes).payload else {
            panic!("not an inner message")
        };
        station_from_attributes(raw.header.cmd, &raw.payload).unwrap()
    }

    const STATION: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    #[test]
    fn new_station_event_decodes_with_the_typed_decoder() {
        let expected = StationEvent {
            change: StationChange::New,
            ifindex: 7,
            mac: STATION,
            inactive: None,
        };
        assert_eq!(typed(&NEW_STATION_EVENT), Some(expected));
        assert_eq!(
            decode_event(&receive(&NEW_STATION_EVENT)),
            Ok(Some(expected))
        );
        assert_eq!(raw(&NEW_STATION_EVENT), Some(expected));
    }

    #[test]
    fn del_station_event_with_statistics_decodes() {
        let event = decode_event(&receive(&DEL_STATION_EVENT)).unwrap().unwrap();
        assert_eq!(event.change, StationChange::Del);
        assert_eq!(event.ifindex, 7);
        assert_eq!(event.mac, STATION);
        // The typed decoder reads the whole nest, statistics included.
        assert_eq!(
            typed(&DEL_STATION_EVENT).unwrap().inactive,
            Some(Duration::from_millis(1200))
        );
        assert_eq!(raw(&DEL_STATION_EVENT).unwrap().mac, STATION);
        assert_eq!(event.inactive, Some(Duration::from_millis(1200)));
    }

    /// Found by the `nl80211_event` fuzz target (the input as found): an
    /// NL80211_ATTR_MAC_ADDRS (166) nest whose entry is empty panicked
    /// wl-nl80211 0.8's typed parser, which decode_event used to call first.
    #[rustfmt::skip]
    const SHORT_MAC_ADDRS: [u8; 40] = [
        0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd5, 0x28,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x28, 0x00,
        // genlmsghdr: cmd 20 (DEL_STATION)
        0x14, 0x01, 0xd2, 0x00,
        // NL80211_ATTR_MAC_ADDRS (166), a nest with one empty entry (9)
        0x08, 0x00, 0xa6, 0x00, 0x04, 0x00, 0x09, 0x00,
        // an attribute of length 0 (malformed: the walk ends there)
        0x00, 0x00, 0x0a, 0x00, 0xc1, 0x06, 0x00, 0x02,
        0x80, 0xff, 0x00, 0x02,
    ];

    #[test]
    fn a_short_mac_list_is_not_a_panic() {
        let msg = NetlinkMessage::<RawGenlMessage>::deserialize(&SHORT_MAC_ADDRS).unwrap();
        assert_eq!(
            decode_event(&msg),
            Err(StationDecodeError::Missing("NL80211_ATTR_IFINDEX"))
        );
    }

    #[test]
    fn station_dump_reply_gives_the_inactive_time() {
        let event = typed(&STATION_DUMP_REPLY).expect("wl-nl80211 decodes a dump reply");
        assert_eq!(event.change, StationChange::New);
        assert_eq!(event.mac, MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]));
        assert_eq!(event.inactive, Some(Duration::from_millis(4200)));
        assert_eq!(
            decode_event(&receive(&STATION_DUMP_REPLY)).unwrap(),
            Some(event)
        );
    }

    #[test]
    fn a_statistic_wl_nl80211_refuses_does_not_lose_the_departure() {
        // INACTIVE_TIME two bytes long: wl-nl80211 refuses the message...
        let mut bytes = DEL_STATION_EVENT.to_vec();
        let at = 16 + 4 + 8 + 12 + 8 + 4;
        assert_eq!(&bytes[at..at + 4], &[0x08, 0x00, 0x01, 0x00]);
        bytes[at] = 0x06;
        assert_eq!(typed(&bytes), None);
        // ...and the departure still counts.
        let event = decode_event(&receive(&bytes)).unwrap().unwrap();
        assert_eq!(
            (event.change, event.ifindex, event.mac),
            (StationChange::Del, 7, STATION)
        );
    }

    #[test]
    fn other_commands_and_missing_attributes() {
        let mut other = NEW_STATION_EVENT;
        other[16] = 39; // NL80211_CMD_DEAUTHENTICATE
        assert_eq!(decode_event(&receive(&other)), Ok(None));
        // Without NL80211_ATTR_MAC (its type changed to an unused one).
        let mut no_mac = NEW_STATION_EVENT;
        no_mac[30] = 0x7f;
        no_mac[31] = 0x01;
        assert!(decode_event(&receive(&no_mac)).is_err());
        // Truncated attributes never panic.
        for len in 20..NEW_STATION_EVENT.len() {
            let _ = station_from_attributes(19, &NEW_STATION_EVENT[20..len]);
        }
    }

    #[test]
    fn events_become_presence_events_on_configured_interfaces_only() {
        let mut links = Links::new(vec!["br-client".into()], vec!["client0".into()]);
        let link = |index, name: &str| Link {
            index,
            name: name.into(),
            mac: None,
            master: None,
            lower: None,
            is_bridge: false,
            up: true,
            carrier: true,
        };
        links.replace_all(vec![link(7, "client0"), link(8, "wlan-mesh")]);
        let wireless = vec!["client0".to_string()];
        let now = Instant::now();
        let new = typed(&STATION_DUMP_REPLY).unwrap();
        match station_event(&new, &links, &wireless, now) {
            Some(Event::Sighting(s)) => {
                assert_eq!(s.interface, "client0");
                assert_eq!(s.source, Source::Station);
                assert_eq!(now - s.seen_at, Duration::from_millis(4200));
            }
            other => panic!("{other:?}"),
        }
        let del = typed(&DEL_STATION_EVENT).unwrap();
        assert_eq!(
            station_event(&del, &links, &wireless, now),
            Some(Event::StationGone {
                mac: STATION,
                interface: "client0".into()
            })
        );
        let elsewhere = StationEvent { ifindex: 8, ..del };
        assert_eq!(station_event(&elsewhere, &links, &wireless, now), None);
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_events_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0005);
        let seeds: [&[u8]; 3] = [&NEW_STATION_EVENT, &DEL_STATION_EVENT, &SHORT_MAC_ADDRS];
        for round in 0..5000 {
            let bytes = damaged(seeds[round % seeds.len()], &mut next);
            if let Ok(msg) = NetlinkMessage::<RawGenlMessage>::deserialize(&bytes) {
                let _ = decode_event(&msg);
            }
        }
    }
}
