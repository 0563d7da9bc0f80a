//! Intercom traffic on every mesh link, counted by the kernel's copy of each frame.
//!
//! The machine has neither nftables nor ip6tables, and tc's counting actions
//! are not loaded, so the meter opens one `AF_PACKET` socket per member
//! namespace with a classic BPF filter that keeps only what the member
//! *sends* (`PACKET_OUTGOING`) as IPv6/UDP to port 5523 (intercom) or 5524
//! (core's data path), cut to its first 56 bytes. Everything else (pings,
//! babel) is dropped in the kernel, so the meter costs nothing while the mesh
//! is quiet and a few hundred wake-ups per second under roaming. Each packet
//! is counted once per link it crosses (on the sender's mesh interface: a
//! forwarded unicast CLAIM counts on every hop, a SEEK flood on every link
//! it is sent over), by the intercom packet type in its header. Bytes are
//! the IPv6 packet (header included, link layer not), from its header's
//! payload length. Daemon counters could
//! not give that: they count what a daemon sends, not what the links carry.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::error::{Error, Result};
use crate::lab::Node;

/// What kind of mesh packet a counted frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WireKind {
    /// Intercom SEEK (type 0), flooded by multicast.
    Seek,
    /// Intercom CLAIM (type 1).
    Claim,
    /// Intercom INFO (type 2).
    Info,
    /// Intercom ACK (type 3).
    Ack,
    /// FOUND (type 4, data port).
    Found,
    /// DATA (type 5, data port): an encapsulated client packet.
    Data,
    /// Anything else on the two ports.
    Other,
}

impl WireKind {
    /// Every kind, in report order.
    pub const ALL: [WireKind; 7] = [
        WireKind::Seek,
        WireKind::Claim,
        WireKind::Info,
        WireKind::Ack,
        WireKind::Found,
        WireKind::Data,
        WireKind::Other,
    ];

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            WireKind::Seek => "seek",
            WireKind::Claim => "claim",
            WireKind::Info => "info",
            WireKind::Ack => "ack",
            WireKind::Found => "found",
            WireKind::Data => "data",
            WireKind::Other => "other",
        }
    }
}

/// Packets and bytes by (member, kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterCounts {
    /// (member name, kind) to (packets, bytes).
    pub by_member: BTreeMap<(String, WireKind), (u64, u64)>,
}

impl MeterCounts {
    /// What was counted after `earlier` (a snapshot of the same meter).
    pub fn since(&self, earlier: &MeterCounts) -> MeterCounts {
        let mut by_member = BTreeMap::new();
        for (k, (p, b)) in &self.by_member {
            let (p0, b0) = earlier.by_member.get(k).copied().unwrap_or((0, 0));
            let d = (p.saturating_sub(p0), b.saturating_sub(b0));
            if d != (0, 0) {
                by_member.insert(k.clone(), d);
            }
        }
        MeterCounts { by_member }
    }

    /// Packets and bytes of `kind` over all members.
    pub fn kind(&self, kind: WireKind) -> (u64, u64) {
        self.by_member
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .fold((0, 0), |(p, b), (_, (dp, db))| (p + dp, b + db))
    }

    /// Packets and bytes of every kind over all members.
    pub fn total(&self) -> (u64, u64) {
        self.by_member
            .values()
            .fold((0, 0), |(p, b), (dp, db)| (p + dp, b + db))
    }

    /// Packets and bytes `member` sent, all kinds.
    pub fn member(&self, member: &str) -> (u64, u64) {
        self.by_member
            .iter()
            .filter(|((m, _), _)| m == member)
            .fold((0, 0), |(p, b), (_, (dp, db))| (p + dp, b + db))
    }

    /// Packets and bytes of the intercom kinds (SEEK, CLAIM, INFO, ACK, other) over all members.
    pub fn intercom(&self) -> (u64, u64) {
        let (tp, tb) = self.total();
        let (fp, fb) = self.kind(WireKind::Found);
        let (dp, db) = self.kind(WireKind::Data);
        (tp - fp - dp, tb - fb - db)
    }
}

/// The meter: one thread polling one filtered packet socket per member.
pub struct IntercomMeter {
    counts: Arc<Mutex<MeterCounts>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
    error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for IntercomMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntercomMeter").finish_non_exhaustive()
    }
}

/// Bytes of each frame the filter hands up: IPv6 (40) + UDP (8) + the
/// intercom header's first bytes (the type is its third byte).
const SNAP: u32 = 56;

impl IntercomMeter {
    /// Starts counting what `members` send on their mesh interfaces.
    pub fn start(members: &[Node]) -> Result<IntercomMeter> {
        let mut taps = Vec::new();
        for m in members {
            let ns = File::open(m.netns.path())
                .map_err(|e| Error::io(format!("opening namespace of {}", m.name), e))?;
            taps.push((m.name.clone(), ns, m.mesh_interfaces.clone()));
        }
        let counts = Arc::new(Mutex::new(MeterCounts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let (c, s, e) = (counts.clone(), stop.clone(), error.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let handle = thread::Builder::new()
            .name("lab-intercom-meter".into())
            .spawn(move || {
                let sockets = match open_taps(&taps) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                if let Err(err) = count_until_stopped(&sockets, &c, &s) {
                    if let Ok(mut slot) = e.lock() {
                        *slot = Some(err.to_string());
                    }
                }
            })
            .map_err(|e| Error::io("spawning the intercom meter", e))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Usage("intercom meter thread ended".into()))??;
        Ok(IntercomMeter {
            counts,
            stop,
            handle: Some(handle),
            error,
        })
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> Result<MeterCounts> {
        if let Some(e) = self.error.lock().ok().and_then(|e| e.clone()) {
            return Err(Error::Usage(format!("intercom meter failed: {e}")));
        }
        self.counts
            .lock()
            .map(|c| c.clone())
            .map_err(|_| Error::Usage("intercom meter lock poisoned".into()))
    }
}

impl Drop for IntercomMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One member's socket and the interface indexes of its mesh links.
struct Tap {
    member: String,
    sock: OwnedFd,
    mesh: Vec<u32>,
}

fn open_taps(taps: &[(String, File, Vec<String>)]) -> Result<Vec<Tap>> {
    let mut out = Vec::new();
    for (member, ns, ifaces) in taps {
        // SAFETY: setns on a valid open fd; it moves only this dedicated thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error::io(
                format!("setns into {member}"),
                std::io::Error::last_os_error(),
            ));
        }
        let mut mesh = Vec::new();
        for i in ifaces {
            let name = std::ffi::CString::new(i.as_str())
                .map_err(|_| Error::Usage(format!("bad interface name {i:?}")))?;
            // SAFETY: a valid NUL-terminated string.
            match unsafe { libc::if_nametoindex(name.as_ptr()) } {
                0 => {
                    return Err(Error::io(
                        format!("no interface {i} on {member}"),
                        std::io::Error::last_os_error(),
                    ))
                }
                index => mesh.push(index),
            }
        }
        out.push(Tap {
            member: member.clone(),
            sock: filtered_socket()?,
            mesh,
        });
    }
    Ok(out)
}

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// SKF_AD_OFF + SKF_AD_PROTOCOL: the frame's ethertype.
const AD_PROTOCOL: u32 = 0xffff_f000;
/// SKF_AD_OFF + SKF_AD_PKTTYPE: the packet's type (4 = PACKET_OUTGOING).
const AD_PKTTYPE: u32 = 0xffff_f000 + 4;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const PACKET_OUTGOING: u32 = 4;

/// The filter: outgoing IPv6/UDP (no extension headers: ours have none) to port 5523 or 5524.
fn program() -> [libc::sock_filter; 11] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        op(LD_W_ABS, 0, 0, AD_PROTOCOL),
        op(JEQ_K, 0, 8, ETHERTYPE_IPV6),
        op(LD_W_ABS, 0, 0, AD_PKTTYPE),
        op(JEQ_K, 0, 6, PACKET_OUTGOING),
        // SOCK_DGRAM: offset 0 is the IPv6 header; next header at 6.
        op(LD_B_ABS, 0, 0, 6),
        op(JEQ_K, 0, 4, 17),
        // UDP destination port.
        op(LD_H_ABS, 0, 0, 42),
        op(JEQ_K, 1, 0, 5523),
        op(JEQ_K, 0, 1, 5524),
        op(RET_K, 0, 0, SNAP),
        op(RET_K, 0, 0, 0),
    ]
}

/// An `AF_PACKET` datagram socket of this namespace, every interface, with [`program`] attached.
///
/// `ETH_P_ALL`, not `ETH_P_IPV6`: the kernel hands frames a node *sends*
/// only to taps of all protocols; the filter picks IPv6 itself.
fn filtered_socket() -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(proto),
        )
    };
    if raw < 0 {
        return Err(Error::io(
            "opening AF_PACKET socket (needs root)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    l3roamd_net::bpf::attach(sock.as_fd(), &program())
        .map_err(|e| Error::io("attaching the intercom filter", e))?;
    // Frames queued before the filter was attached may be anything: drain them.
    let mut buf = [0u8; SNAP as usize];
    // Bounded: a fresh socket holds at most its receive buffer.
    for _ in 0..10_000 {
        // SAFETY: buffer valid for its length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            break;
        }
    }
    Ok(sock)
}

fn count_until_stopped(taps: &[Tap], counts: &Mutex<MeterCounts>, stop: &AtomicBool) -> Result<()> {
    let mut pfds: Vec<libc::pollfd> = taps
        .iter()
        .map(|t| libc::pollfd {
            fd: t.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = [0u8; SNAP as usize];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `pfds` is a valid array of its length.
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 100) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("poll on the intercom meter", e));
        }
        for (tap, pfd) in taps.iter().zip(&mut pfds) {
            if pfd.revents == 0 {
                continue;
            }
            pfd.revents = 0;
            // Bounded per wake-up, so one busy member cannot starve the others.
            for _ in 0..256 {
                // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: buffer and address storage valid for the lengths given.
                let n = unsafe {
                    libc::recvfrom(
                        tap.sock.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                        (&mut from as *mut libc::sockaddr_ll).cast(),
                        &mut from_len,
                    )
                };
                if n < 0 {
                    break;
                }
                let Ok(ifindex) = u32::try_from(from.sll_ifindex) else {
                    continue;
                };
                if !tap.mesh.contains(&ifindex) {
                    continue;
                }
                let head = buf.get(..(n as usize).min(buf.len())).unwrap_or(&[]);
                let kind = classify(head);
                // The filter cut the frame: its length is in the IPv6 header.
                let bytes = head
                    .get(4..6)
                    .map(|l| 40 + u64::from(u16::from_be_bytes([l[0], l[1]])))
                    .unwrap_or(n as u64);
                if let Ok(mut c) = counts.lock() {
                    let e = c
                        .by_member
                        .entry((tap.member.clone(), kind))
                        .or_insert((0, 0));
                    e.0 += 1;
                    e.1 += bytes;
                }
            }
        }
    }
    Ok(())
}

/// The kind of an IPv6/UDP packet to 5523 or 5524 from its first bytes.
fn classify(head: &[u8]) -> WireKind {
    let port = head.get(42..44).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let kind = head.get(48 + 2).copied();
    match (port, kind) {
        (Some(5523), Some(0)) => WireKind::Seek,
        (Some(5523), Some(1)) => WireKind::Claim,
        (Some(5523), Some(2)) => WireKind::Info,
        (Some(5523), Some(3)) => WireKind::Ack,
        (Some(5524), Some(4)) => WireKind::Found,
        (Some(5524), Some(5)) => WireKind::Data,
        _ => WireKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(port: u16, kind: u8) -> Vec<u8> {
        let mut p = vec![0u8; 56];
        p[0] = 0x60;
        p[6] = 17;
        p[42..44].copy_from_slice(&port.to_be_bytes());
        p[50] = kind;
        p
    }

    #[test]
    fn frames_are_classified_by_port_and_type() {
        assert_eq!(classify(&packet(5523, 0)), WireKind::Seek);
        assert_eq!(classify(&packet(5523, 3)), WireKind::Ack);
        assert_eq!(classify(&packet(5524, 5)), WireKind::Data);
        assert_eq!(classify(&packet(5524, 0)), WireKind::Other);
        assert_eq!(classify(&packet(5523, 4)), WireKind::Other);
        assert_eq!(classify(&[0x60; 30]), WireKind::Other);
    }

    #[test]
    fn counts_subtract_and_sum() {
        let mut a = MeterCounts::default();
        a.by_member.insert(("n1".into(), WireKind::Seek), (2, 184));
        let mut b = a.clone();
        b.by_member.insert(("n1".into(), WireKind::Seek), (5, 460));
        b.by_member.insert(("n2".into(), WireKind::Data), (1, 100));
        let d = b.since(&a);
        assert_eq!(d.kind(WireKind::Seek), (3, 276));
        assert_eq!(d.total(), (4, 376));
        assert_eq!(d.intercom(), (3, 276));
        assert_eq!(d.member("n2"), (1, 100));
        assert!(a.since(&a).by_member.is_empty());
    }

    #[test]
    fn the_filter_jumps_stay_inside_the_program() {
        let p = program();
        for (i, ins) in p.iter().enumerate() {
            if ins.code == JEQ_K {
                assert!(i + 1 + usize::from(ins.jt) < p.len());
                assert!(i + 1 + usize::from(ins.jf) < p.len());
            }
        }
        assert_eq!(p[p.len() - 1].code, RET_K);
    }
}
