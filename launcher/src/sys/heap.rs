//! The launcher's allocator: a bump arena in front of a general-purpose one.
//!
//! A cached launch makes about 700 allocations (the plan and its decoded form, the environment,
//! the argument vectors, paths) and frees few of them before it `exec`s: under a
//! general-purpose allocator the bookkeeping and its lock showed in profiles of a launch as
//! the largest user-space cost. Here an allocation is a bump of one offset in a static arena;
//! freeing the most recent one takes its room back (so a growing `Vec` or `String` grows in
//! place), freeing another leaves its room unused until the process ends or `exec`s. What does
//! not fit the arena, and everything once it is full, goes to TLSF ([`rlsf`]), which keeps
//! freed memory for reuse: the long-lived processes this executable also runs (the namespace
//! pool, supervisors) leave at most the arena's size unused.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The arena's size: room for a launch with a large policy (a launch under the default policy
/// allocates about 60 KiB, counted with an instrumented build).
const ARENA: usize = 256 << 10;

/// The arena's bytes, page-aligned so that [`Heap::warm`] can make whole pages resident.
#[repr(C, align(4096))]
struct Bytes(UnsafeCell<[u8; ARENA]>);

pub struct Heap {
    arena: Bytes,
    /// Offset of the arena's first unused byte.
    top: AtomicUsize,
    fallback: rlsf::GlobalTlsf,
}

// SAFETY: the arena's bytes are only handed out through `top`, an atomic that gives each
// allocation a range no other allocation overlaps; the fallback is itself `Sync`.
unsafe impl Sync for Heap {}

impl Heap {
    pub const fn new() -> Heap {
        Heap {
            arena: Bytes(UnsafeCell::new([0; ARENA])),
            top: AtomicUsize::new(0),
            fallback: rlsf::GlobalTlsf::new(),
        }
    }

    fn base(&self) -> usize {
        self.arena.0.get() as usize
    }

    /// The arena offset of `ptr`, if it points into the arena.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize)
            .checked_sub(self.base())
            .filter(|&o| o < ARENA)
    }

    /// Makes the first `bytes` of the arena resident now ([`super::populate`]): one system call
    /// instead of a page fault for each page a launch then writes. Called first thing in
    /// `main`, before anything is allocated from the arena.
    pub fn warm(&self, bytes: usize) {
        let len = bytes.min(ARENA);
        // SAFETY: the first `len` bytes of the arena are this process's memory, and no
        // allocation refers to them yet (see above); nothing is read or written through the
        // slice, which only names the range to populate.
        let room = unsafe {
            std::slice::from_raw_parts_mut(
                self.arena.0.get().cast::<std::mem::MaybeUninit<u8>>(),
                len,
            )
        };
        let _ = super::populate(room);
    }

    /// Room for `layout` in the arena, or `None` when it is full.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            let start = (base + top).checked_next_multiple_of(layout.align())? - base;
            let end = start.checked_add(layout.size()).filter(|&e| e <= ARENA)?;
            match self
                .top
                .compare_exchange_weak(top, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // `start` is inside the arena (end <= ARENA), so the pointer stays in bounds.
                Ok(_) => return Some(self.arena.0.get().cast::<u8>().wrapping_add(start)),
                Err(now) => top = now,
            }
        }
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

// SAFETY: every pointer returned is either a range of the arena no other live allocation
// overlaps (handed out once by `bump`, taken back only when it is the most recent) with the
// layout's size and alignment, or the fallback's; each is freed or resized by the allocator
// that made it, told apart by address.
// Not inlined: every allocation site would get a copy (400 KB more code in the launcher,
// whose start-up pays for each page of code it touches).
unsafe impl GlobalAlloc for Heap {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => p,
            // SAFETY: the caller's contract (a layout of non-zero size) passes through.
            None => unsafe { self.fallback.alloc(layout) },
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            // The most recent allocation gives its room back; any other stays unused.
            Some(at) => {
                let _ = self.top.compare_exchange(
                    at + layout.size(),
                    at,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            // SAFETY: `ptr` is not in the arena, so the fallback allocated it with `layout`.
            None => unsafe { self.fallback.dealloc(ptr, layout) },
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(at) = self.offset(ptr) else {
            // SAFETY: `ptr` is not in the arena, so the fallback allocated it with `layout`;
            // the caller's contract on `new_size` passes through.
            return unsafe { self.fallback.realloc(ptr, layout, new_size) };
        };
        // The most recent allocation grows or shrinks where it is, when the arena has room.
        if at + new_size <= ARENA
            && self
                .top
                .compare_exchange(
                    at + layout.size(),
                    at + new_size,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to the alignment, does not
        // overflow `isize`, so this layout is valid.
        let grown = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `grown` has a non-zero size (it is larger than `layout`'s).
        let new = unsafe { self.alloc(grown) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for `layout.size()` bytes and do not overlap (the
            // old allocation is still live while the new one is made).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: `ptr` was allocated here with `layout` and is not used again.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_are_aligned_and_apart_and_the_latest_is_taken_back() {
        let heap = Box::leak(Box::new(Heap::new()));
        // SAFETY: (test) every layout has a non-zero size; pointers are used within their
        // sizes and freed with the layouts they were made with.
        unsafe {
            let a = heap.alloc(layout(3, 1));
            let b = heap.alloc(layout(8, 64));
            assert_eq!(b as usize % 64, 0);
            assert!(b as usize >= a as usize + 3);
            a.write_bytes(0xaa, 3);
            b.write_bytes(0xbb, 8);
            assert_eq!(*a.add(2), 0xaa);
            // Freeing the latest gives its room to the next allocation.
            heap.dealloc(b, layout(8, 64));
            let c = heap.alloc(layout(8, 64));
            assert_eq!(c, b);
            // Freeing an older one leaves its room unused.
            heap.dealloc(a, layout(3, 1));
            let d = heap.alloc(layout(3, 1));
            assert!(d as usize > c as usize);
        }
    }

    #[test]
    fn the_latest_allocation_grows_in_place_and_others_move_with_their_bytes() {
        let heap = Box::leak(Box::new(Heap::new()));
        // SAFETY: (test) as above; realloc is given the layout each pointer has.
        unsafe {
            let a = heap.alloc(layout(4, 4));
            a.copy_from_nonoverlapping([1, 2, 3, 4].as_ptr(), 4);
            let grown = heap.realloc(a, layout(4, 4), 4096);
            assert_eq!(grown, a, "the latest grows where it is");
            let b = heap.alloc(layout(1, 1));
            let moved = heap.realloc(grown, layout(4096, 4), 8192);
            assert_ne!(moved, grown, "no longer the latest: it moves");
            assert_eq!(std::slice::from_raw_parts(moved, 4), &[1, 2, 3, 4]);
            assert_eq!(
                heap.realloc(moved, layout(8192, 4), 16),
                moved,
                "shrinking stays"
            );
            heap.dealloc(b, layout(1, 1));
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_fallback_and_comes_back_to_it() {
        let heap = Box::leak(Box::new(Heap::new()));
        // SAFETY: (test) as above.
        unsafe {
            let big = heap.alloc(layout(ARENA + 1, 8));
            assert!(!big.is_null());
            assert!(heap.offset(big).is_none());
            big.write_bytes(7, ARENA + 1);
            let small = heap.alloc(layout(16, 8));
            assert!(
                heap.offset(small).is_some(),
                "the arena still serves small ones"
            );
            // Fill the arena: then everything is the fallback's.
            let rest = ARENA - heap.top.load(Ordering::Relaxed);
            let fill = heap.alloc(layout(rest, 1));
            assert!(heap.offset(fill).is_some());
            let after = heap.alloc(layout(16, 8));
            assert!(heap.offset(after).is_none());
            // A realloc across the two keeps the bytes.
            small.write_bytes(9, 16);
            let moved = heap.realloc(small, layout(16, 8), 64);
            assert!(heap.offset(moved).is_none());
            assert_eq!(std::slice::from_raw_parts(moved, 16), &[9; 16]);
            for (p, l) in [
                (big, layout(ARENA + 1, 8)),
                (after, layout(16, 8)),
                (moved, layout(64, 8)),
            ] {
                heap.dealloc(p, l);
            }
        }
    }
}
