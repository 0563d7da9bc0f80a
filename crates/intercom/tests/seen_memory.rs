//! What the duplicate filter costs at its bound, measured by a counting
//! allocator (a test binary of its own, so nothing else allocates beside it).
//!
//! ndproxy keeps one [`SeenCache`] of `ndproxy.seen_capacity` (default 1024)
//! entries. Its heap at that bound is the figure `docs/design-notes.md`
//! ("A bigger mesh") quotes; this test prints it and fails if it grows past
//! 300 bytes per entry, which would mean a change of layout worth a look.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use l3roamd_intercom::{Packet, SeenCache};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn the_seek_filter_at_its_bound_stays_small() {
    let capacity = SeenCache::DEFAULT_CAPACITY;
    let sender = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 1);
    let packets: Vec<Packet> = (0..capacity as u32 * 2)
        .map(|i| {
            let sought = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
            Packet::seek(sender, i, sought)
        })
        .collect();
    let t0 = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    let mut cache = SeenCache::new(Duration::from_secs(60), capacity);
    // Twice the capacity: the oldest half is forgotten, the tables have
    // grown to what they keep at the bound.
    for (i, p) in packets.iter().enumerate() {
        assert!(cache.insert(p, t0 + Duration::from_micros(i as u64)));
    }
    assert_eq!(cache.len(), capacity);
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "SeenCache at its bound of {capacity} entries: {bytes} bytes on the heap ({} per entry)",
        bytes / capacity
    );
    assert!(
        bytes <= capacity * 300,
        "{bytes} bytes for {capacity} entries"
    );
    drop(cache);
}
