//! Classic BPF for the filters of packet sockets ([`crate::packet`]): the
//! opcodes (linux/filter.h, linux/bpf_common.h, a stable ABI), instruction
//! builders, and an interpreter of the instructions our filters use, with
//! the kernel's semantics, so that a filter is tested without a socket.

/// Opcode class: load into A.
pub const BPF_LD: u16 = 0x00;
/// Opcode class: arithmetic on A.
pub const BPF_ALU: u16 = 0x04;
/// Opcode class: jump.
pub const BPF_JMP: u16 = 0x05;
/// Opcode class: return.
pub const BPF_RET: u16 = 0x06;
/// Opcode class: register transfers.
pub const BPF_MISC: u16 = 0x07;
/// Load size: 32 bits.
pub const BPF_W: u16 = 0x00;
/// Load size: 16 bits.
pub const BPF_H: u16 = 0x08;
/// Load size: 8 bits.
pub const BPF_B: u16 = 0x10;
/// Load mode: absolute offset.
pub const BPF_ABS: u16 = 0x20;
/// Load mode: offset X + k.
pub const BPF_IND: u16 = 0x40;
/// ALU: add.
pub const BPF_ADD: u16 = 0x00;
/// ALU: shift left.
pub const BPF_LSH: u16 = 0x60;
/// Jump: always.
pub const BPF_JA: u16 = 0x00;
/// Jump: if A == k.
pub const BPF_JEQ: u16 = 0x10;
/// Operand: the constant k.
pub const BPF_K: u16 = 0x00;
/// MISC: X = A.
pub const BPF_TAX: u16 = 0x00;
/// MISC: A = X.
pub const BPF_TXA: u16 = 0x80;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: loads the packet type (host, multicast,
/// outgoing, ...).
pub const LOAD_PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING` (linux/if_packet.h): a frame this host sent.
pub const PACKET_OUTGOING: u32 = 4;

/// An instruction without jump targets.
pub const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump: `jt` or `jf` instructions ahead.
pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Attaches `program` to the socket `fd` (`SO_ATTACH_FILTER`): from now on
/// the kernel passes the socket only what the program accepts, and drops the
/// rest before anything is queued or woken. The kernel copies the program.
pub fn attach(
    fd: std::os::fd::BorrowedFd<'_>,
    program: &[libc::sock_filter],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::c_ushort::try_from(program.len())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points to `len` instructions of `program`, alive for
    // the call; the kernel copies them and never writes through the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Which route notifications a daemon reads (the rest the kernel drops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteNotifications {
    /// Only routes of this destination prefix length (`rtm_dst_len`).
    pub destination_len: u8,
    /// Only routes of this table, when it fits `rtm_table` (below 256).
    pub table: Option<u8>,
    /// Not routes of these protocols (`rtm_protocol`): the daemon's own.
    pub except_protocols: Vec<u8>,
}

/// `RTM_NEWROUTE` and `RTM_DELROUTE` (linux/rtnetlink.h).
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
/// Offsets in a notification: `struct nlmsghdr` (16 bytes: length u32,
/// type u16, ...), then `struct rtmsg` (family, dst_len, src_len, tos,
/// table, protocol, scope, type, flags).
const NLMSG_TYPE: u32 = 4;
const RTM_DST_LEN: u32 = 16 + 1;
const RTM_TABLE: u32 = 16 + 4;
const RTM_PROTOCOL: u32 = 16 + 5;

/// A filter for an rtnetlink multicast socket: route notifications pass
/// only as `wanted` says; every other message (links, addresses) passes.
/// Each notification is a datagram of its own, so the filter sees one
/// message. `nlmsg_type` is in host order, and a 16-bit load reads network
/// order, so the constants are swapped to match on little-endian hosts.
pub fn route_notifications(wanted: &RouteNotifications) -> Vec<libc::sock_filter> {
    let host = |t: u16| u32::from(u16::from_be_bytes(t.to_ne_bytes()));
    const EQ: u16 = BPF_JMP | BPF_JEQ | BPF_K;
    let mut p = vec![
        stmt(BPF_LD | BPF_H | BPF_ABS, NLMSG_TYPE),
        jump(EQ, host(RTM_NEWROUTE), 2, 0),
        jump(EQ, host(RTM_DELROUTE), 1, 0),
        stmt(BPF_RET | BPF_K, u32::MAX),
        stmt(BPF_LD | BPF_B | BPF_ABS, RTM_DST_LEN),
    ];
    // Jumps to the final drop: (index, taken when equal), patched below.
    let mut to_drop = vec![(p.len(), false)];
    p.push(jump(EQ, u32::from(wanted.destination_len), 0, 0));
    if let Some(table) = wanted.table {
        p.push(stmt(BPF_LD | BPF_B | BPF_ABS, RTM_TABLE));
        to_drop.push((p.len(), false));
        p.push(jump(EQ, u32::from(table), 0, 0));
    }
    p.push(stmt(BPF_LD | BPF_B | BPF_ABS, RTM_PROTOCOL));
    // A jump offset is one byte: at most 200 protocols (there are 256).
    for protocol in wanted.except_protocols.iter().take(200) {
        to_drop.push((p.len(), true));
        p.push(jump(EQ, u32::from(*protocol), 0, 0));
    }
    p.push(stmt(BPF_RET | BPF_K, u32::MAX));
    p.push(stmt(BPF_RET | BPF_K, 0));
    let drop = p.len() - 1;
    for (at, when_equal) in to_drop {
        let skip = u8::try_from(drop - at - 1).unwrap_or(u8::MAX);
        if let Some(i) = p.get_mut(at) {
            if when_equal {
                i.jt = skip;
            } else {
                i.jf = skip;
            }
        }
    }
    p
}

/// Runs `program` on `packet` (of packet type `pkttype`): the bytes the
/// kernel would pass (0: dropped). A load beyond the packet drops it, as in
/// the kernel. An instruction our filters do not use, or a jump out of the
/// program, is an error.
pub fn interpret(
    program: &[libc::sock_filter],
    packet: &[u8],
    pkttype: u32,
) -> Result<u32, String> {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |at: u32, size: usize| -> Option<u32> {
        let at = usize::try_from(at).ok()?;
        let bytes = packet.get(at..at.checked_add(size)?)?;
        Some(bytes.iter().fold(0, |v, b| (v << 8) | u32::from(*b)))
    };
    // Bounded: classic BPF only jumps forward, every step moves pc on.
    for _ in 0..=program.len() {
        let i = *program
            .get(pc)
            .ok_or_else(|| format!("pc {pc} is outside the program"))?;
        pc += 1;
        match i.code {
            c if c == BPF_LD | BPF_H | BPF_ABS => match load(i.k, 2) {
                Some(v) => a = v,
                None => return Ok(0),
            },
            c if c == BPF_LD | BPF_B | BPF_ABS => match load(i.k, 1) {
                Some(v) => a = v,
                None => return Ok(0),
            },
            c if c == BPF_LD | BPF_B | BPF_IND => match load(x.wrapping_add(i.k), 1) {
                Some(v) => a = v,
                None => return Ok(0),
            },
            c if c == BPF_LD | BPF_W | BPF_ABS && i.k == LOAD_PKTTYPE => a = pkttype,
            c if c == BPF_LD | BPF_W | BPF_ABS => match load(i.k, 4) {
                Some(v) => a = v,
                None => return Ok(0),
            },
            c if c == BPF_ALU | BPF_ADD | BPF_K => a = a.wrapping_add(i.k),
            c if c == BPF_ALU | BPF_LSH | BPF_K => a = a.checked_shl(i.k).unwrap_or(0),
            c if c == BPF_MISC | BPF_TAX => x = a,
            c if c == BPF_MISC | BPF_TXA => a = x,
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                pc += usize::from(if a == i.k { i.jt } else { i.jf });
            }
            c if c == BPF_RET | BPF_K => return Ok(i.k),
            other => return Err(format!("opcode {other:#x} (k {:#x}) not interpreted", i.k)),
        }
    }
    Err("the program does not end".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_jumps_and_returns_like_the_kernel() {
        // Accept 64 bytes of frames whose second byte is 7, unless outgoing.
        let program = [
            stmt(BPF_LD | BPF_W | BPF_ABS, LOAD_PKTTYPE),
            jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 3, 0),
            stmt(BPF_LD | BPF_B | BPF_ABS, 1),
            jump(BPF_JMP | BPF_JEQ | BPF_K, 7, 0, 1),
            stmt(BPF_RET | BPF_K, 64),
            stmt(BPF_RET | BPF_K, 0),
        ];
        assert_eq!(interpret(&program, &[0, 7], 0), Ok(64));
        assert_eq!(interpret(&program, &[0, 8], 0), Ok(0));
        assert_eq!(interpret(&program, &[0, 7], PACKET_OUTGOING), Ok(0));
        // A load past the end drops the packet.
        assert_eq!(interpret(&program, &[0], 0), Ok(0));
        // Words load big-endian.
        let word = [
            stmt(BPF_LD | BPF_W | BPF_ABS, 1),
            jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0102_0304, 0, 1),
            stmt(BPF_RET | BPF_K, 1),
            stmt(BPF_RET | BPF_K, 0),
        ];
        assert_eq!(interpret(&word, &[9, 1, 2, 3, 4], 0), Ok(1));
        assert_eq!(interpret(&word, &[9, 1, 2, 3], 0), Ok(0));
        // Falling off the end, or an unknown opcode, is a broken program.
        assert!(interpret(&program[..2], &[0, 7], PACKET_OUTGOING).is_err());
        assert!(interpret(&[stmt(0xff, 0)], &[], 0).is_err());
    }

    /// A notification as the kernel sends it: `nlmsghdr` (type in host
    /// order), then `rtmsg`.
    fn notification(kind: u16, dst_len: u8, table: u8, protocol: u8) -> Vec<u8> {
        let mut m = vec![0u8; 16 + 12];
        m[..4].copy_from_slice(&28u32.to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m[16] = 10; // AF_INET6
        m[17] = dst_len;
        m[20] = table;
        m[21] = protocol;
        m
    }

    #[test]
    fn route_notifications_pass_only_what_is_wanted() {
        let core = route_notifications(&RouteNotifications {
            destination_len: 128,
            table: Some(254),
            except_protocols: vec![158, 157],
        });
        let run = |m: Vec<u8>| interpret(&core, &m, 0).unwrap();
        // Another node's client (babel, 42), added and removed: passes whole.
        assert_eq!(run(notification(RTM_NEWROUTE, 128, 254, 42)), u32::MAX);
        assert_eq!(run(notification(RTM_DELROUTE, 128, 254, 42)), u32::MAX);
        // Its own protocols, another length, another table: dropped.
        assert_eq!(run(notification(RTM_NEWROUTE, 128, 254, 158)), 0);
        assert_eq!(run(notification(RTM_DELROUTE, 128, 254, 157)), 0);
        assert_eq!(run(notification(RTM_NEWROUTE, 64, 254, 42)), 0);
        assert_eq!(run(notification(RTM_NEWROUTE, 128, 255, 2)), 0);
        // Other messages pass: a link (RTM_NEWLINK 16), RTM_GETROUTE (26).
        assert_eq!(run(notification(16, 128, 254, 158)), u32::MAX);
        assert_eq!(run(notification(26, 0, 0, 0)), u32::MAX);
        // A route notification cut short is dropped, as the kernel does.
        assert_eq!(
            run(notification(RTM_NEWROUTE, 128, 254, 42)[..20].to_vec()),
            0
        );

        let any_table = route_notifications(&RouteNotifications {
            destination_len: 0,
            table: None,
            except_protocols: Vec::new(),
        });
        let run = |m: Vec<u8>| interpret(&any_table, &m, 0).unwrap();
        assert_eq!(run(notification(RTM_NEWROUTE, 0, 200, 42)), u32::MAX);
        assert_eq!(run(notification(RTM_NEWROUTE, 128, 254, 42)), 0);
    }

    #[test]
    fn many_excepted_protocols_still_jump_in_range() {
        let all: Vec<u8> = (0..=255).collect();
        let p = route_notifications(&RouteNotifications {
            destination_len: 128,
            table: Some(254),
            except_protocols: all,
        });
        assert_eq!(
            interpret(&p, &notification(RTM_NEWROUTE, 128, 254, 3), 0),
            Ok(0)
        );
        assert_eq!(
            interpret(&p, &notification(RTM_NEWROUTE, 128, 254, 250), 0),
            Ok(u32::MAX)
        );
    }
}
