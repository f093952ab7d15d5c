//! The binary's memory allocator: mimalloc for everything under 1 MiB, glibc's malloc
//! (the system allocator) for larger blocks.
//!
//! - **Why mimalloc.** glibc gives a freed 64 KiB body's pages back to the kernel and
//!   faults them in again for the next call (see the dependency's note in Cargo.toml);
//!   mimalloc keeps freed memory for reuse.
//! - **Why not for large blocks.** An embedded broker's memory limit counts the
//!   process's resident memory, so memory freed when a queue drains must leave the
//!   process, or blocked publishers are never let go. glibc maps every block from
//!   1 MiB on its own and unmaps it on free (the broker fixes that threshold,
//!   `warren_broker`'s `memory/process.rs`); mimalloc kept a drained 24 MiB message
//!   resident. Large blocks are few, so what the system allocator costs them is small
//!   next to the copy that fills them.
//!
//! Which allocator owns a block follows from its size alone, which Rust passes to
//! `dealloc` and `realloc` as it was allocated, so each block goes back where it came
//! from.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of this size and up come from the system allocator.
const LARGE: usize = 1 << 20;

/// mimalloc under [`LARGE`], the system allocator from it.
struct SplitBySize;

#[global_allocator]
static ALLOCATOR: SplitBySize = SplitBySize;

// SAFETY: each call goes to the allocator that `layout.size()` picks; a block is freed
// or resized with the layout it was allocated with (GlobalAlloc's contract), so it goes
// back to the allocator that made it, and a resize across LARGE moves it between them.
unsafe impl GlobalAlloc for SplitBySize {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            System.alloc(layout)
        } else {
            MiMalloc.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            System.alloc_zeroed(layout)
        } else {
            MiMalloc.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            System.dealloc(ptr, layout)
        } else {
            MiMalloc.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (layout.size() >= LARGE, new_size >= LARGE) {
            (false, false) => MiMalloc.realloc(ptr, layout, new_size),
            (true, true) => System.realloc(ptr, layout, new_size),
            _ => {
                // SAFETY: the caller guarantees new_size, rounded up to the alignment,
                // does not overflow isize (realloc's contract).
                let new = Layout::from_size_align_unchecked(new_size, layout.align());
                let moved = self.alloc(new);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

/// Gives the pages mimalloc holds free back to the system (for
/// `BrokerBuilder::release_memory_with`; the broker trims glibc's malloc itself).
pub(crate) fn release_freed_memory() {
    // SAFETY: mi_collect only walks mimalloc's own heaps and arenas under its locks;
    // `true` also purges the free pages of every arena.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::LARGE;

    #[test]
    fn blocks_keep_their_bytes_when_they_grow_and_shrink_across_the_split() {
        let mut v: Vec<u8> = (0..LARGE / 2).map(|i| i as u8).collect();
        v.reserve_exact(LARGE); // mimalloc -> system
        v.extend((0..LARGE).map(|i| (i * 7) as u8));
        assert!(v.capacity() >= LARGE);
        v.truncate(1000);
        v.shrink_to_fit(); // system -> mimalloc
        assert_eq!(v.len(), 1000);
        assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8));
        let big = vec![0u8; 3 * LARGE];
        assert!(big.iter().all(|&b| b == 0));
    }
}
