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
}
