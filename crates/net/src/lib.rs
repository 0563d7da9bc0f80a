//! IPv6 socket helpers shared by the daemons that speak on the mesh
//! (ndproxy, client-db, core): the one place with `recvmsg`/`sendmsg` and
//! the ancillary data std does not expose, and interface name lookups.

// Parses ancillary data the kernel hands over: no indexing that could panic
// (tests may index, clippy.toml).
#![deny(clippy::indexing_slicing)]

pub mod bpf;
pub mod link_events;
pub mod packet;
pub mod pktinfo;
pub mod socket;

pub use link_events::LinkEvents;
pub use socket::PktinfoSocket;

use std::ffi::CString;

/// The index of interface `name`, if it exists.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of interface `index`, if it exists.
pub fn interface_name(index: u32) -> Option<String> {
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: the buffer has IF_NAMESIZE bytes as if_indextoname requires.
    let ptr = unsafe { libc::if_indextoname(index, name.as_mut_ptr().cast()) };
    if ptr.is_null() {
        return None;
    }
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    String::from_utf8(name.get(..end)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_by_name_and_index() {
        let index = interface_index("lo").expect("every namespace has lo");
        assert_eq!(interface_name(index).as_deref(), Some("lo"));
        assert_eq!(interface_index("no-such-if0"), None);
        assert_eq!(interface_index("bad\0name"), None);
    }
}
