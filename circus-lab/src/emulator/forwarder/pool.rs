//! Frame buffers reused for the life of a forwarder thread, and the queue of
//! frames waiting for their due time.
//!
//! Buffers are allocated in chunks the first time that many frames are in
//! flight at once and never freed or moved while the thread runs, so the hot
//! path allocates nothing in steady state and pointers handed to the kernel
//! stay valid.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bytes per buffer: a 1500-byte MTU frame plus its 14-byte Ethernet header
/// fits with room to spare; longer frames are cut and counted as oversize.
pub const FRAME_CAPACITY: usize = 2048;

/// Buffers allocated at once when the pool runs dry.
const CHUNK_FRAMES: usize = 256;

/// Index of one buffer in a [`FramePool`].
pub type Slot = u32;

/// A growable, never-shrinking set of frame buffers.
pub struct FramePool {
    chunks: Vec<Box<[u8]>>,
    free: Vec<Slot>,
    max_frames: usize,
}

impl FramePool {
    /// A pool that grows up to `max_frames` buffers (rounded up to a chunk).
    pub fn new(max_frames: usize) -> FramePool {
        let max_frames = max_frames.div_ceil(CHUNK_FRAMES).max(1) * CHUNK_FRAMES;
        FramePool {
            chunks: Vec::with_capacity(max_frames / CHUNK_FRAMES),
            free: Vec::with_capacity(max_frames),
            max_frames,
        }
    }

    /// A free buffer, or `None` when `max_frames` are all in use.
    pub fn take(&mut self) -> Option<Slot> {
        if self.free.is_empty() && self.allocated() < self.max_frames {
            let first = self.allocated();
            self.chunks
                .push(vec![0u8; CHUNK_FRAMES * FRAME_CAPACITY].into_boxed_slice());
            // Reversed so slots are handed out in ascending order.
            self.free
                .extend((first..first + CHUNK_FRAMES).rev().map(|s| s as Slot));
        }
        self.free.pop()
    }

    /// Returns a buffer to the pool.
    pub fn release(&mut self, slot: Slot) {
        self.free.push(slot);
    }

    /// Buffers allocated so far.
    pub fn allocated(&self) -> usize {
        self.chunks.len() * CHUNK_FRAMES
    }

    /// The buffer of `slot`.
    pub fn buffer(&mut self, slot: Slot) -> &mut [u8] {
        let slot = slot as usize;
        let start = (slot % CHUNK_FRAMES) * FRAME_CAPACITY;
        &mut self.chunks[slot / CHUNK_FRAMES][start..start + FRAME_CAPACITY]
    }

    /// Copies the first `len` bytes of `from` into `to`.
    pub fn copy(&mut self, from: Slot, to: Slot, len: usize) {
        let len = len.min(FRAME_CAPACITY);
        let (from, to) = (from as usize, to as usize);
        let (from_chunk, from_start) =
            (from / CHUNK_FRAMES, (from % CHUNK_FRAMES) * FRAME_CAPACITY);
        let (to_chunk, to_start) = (to / CHUNK_FRAMES, (to % CHUNK_FRAMES) * FRAME_CAPACITY);
        if from_chunk == to_chunk {
            self.chunks[from_chunk].copy_within(from_start..from_start + len, to_start);
        } else {
            let mut scratch = [0u8; FRAME_CAPACITY];
            scratch[..len].copy_from_slice(&self.chunks[from_chunk][from_start..from_start + len]);
            self.chunks[to_chunk][to_start..to_start + len].copy_from_slice(&scratch[..len]);
        }
    }
}

/// A frame waiting to leave: ordered by due time, then arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pending {
    /// Due time in nanoseconds since the forwarder's start.
    pub due_ns: u64,
    /// Arrival order, so frames due at the same time leave in order.
    pub sequence: u64,
    /// Where the frame is.
    pub slot: Slot,
    /// Its length.
    pub len: u32,
}

/// Frames ordered by due time (a min-heap; capacity reserved up front).
pub struct ReleaseQueue {
    heap: BinaryHeap<Reverse<Pending>>,
    next_sequence: u64,
}

impl ReleaseQueue {
    /// A queue for at most `capacity` frames without reallocating.
    pub fn new(capacity: usize) -> ReleaseQueue {
        ReleaseQueue {
            heap: BinaryHeap::with_capacity(capacity),
            next_sequence: 0,
        }
    }

    /// Queues the frame in `slot` to leave at `due_ns`.
    pub fn push(&mut self, due_ns: u64, slot: Slot, len: u32) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Reverse(Pending {
            due_ns,
            sequence,
            slot,
            len,
        }));
    }

    /// The due time of the earliest frame.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(p)| p.due_ns)
    }

    /// Takes the earliest frame if it is due at `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<Pending> {
        match self.heap.peek() {
            Some(Reverse(p)) if p.due_ns <= now_ns => self.heap.pop().map(|Reverse(p)| p),
            _ => None,
        }
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_released_buffers_and_stops_at_its_bound() {
        let mut pool = FramePool::new(CHUNK_FRAMES);
        let slots: Vec<Slot> = (0..CHUNK_FRAMES).map(|_| pool.take().unwrap()).collect();
        assert_eq!(pool.take(), None, "bounded");
        assert_eq!(pool.allocated(), CHUNK_FRAMES);
        pool.release(slots[7]);
        assert_eq!(pool.take(), Some(slots[7]));
    }

    #[test]
    fn pool_grows_by_chunks_and_copies_across_them() {
        let mut pool = FramePool::new(3 * CHUNK_FRAMES);
        let first = pool.take().unwrap();
        let mut last = first;
        for _ in 0..CHUNK_FRAMES {
            last = pool.take().unwrap();
        }
        assert_eq!(pool.allocated(), 2 * CHUNK_FRAMES);
        pool.buffer(first)[..3].copy_from_slice(b"abc");
        pool.copy(first, last, 3);
        assert_eq!(&pool.buffer(last)[..3], b"abc");
        let same_chunk = pool.take().unwrap();
        pool.copy(last, same_chunk, 3);
        assert_eq!(&pool.buffer(same_chunk)[..3], b"abc");
    }

    #[test]
    fn queue_releases_by_due_time_then_arrival() {
        let mut queue = ReleaseQueue::new(8);
        queue.push(30, 1, 10);
        queue.push(10, 2, 10);
        queue.push(10, 3, 10);
        assert_eq!(queue.next_due_ns(), Some(10));
        assert_eq!(queue.pop_due(5), None);
        let order: Vec<Slot> = std::iter::from_fn(|| queue.pop_due(30))
            .map(|p| p.slot)
            .collect();
        assert_eq!(order, vec![2, 3, 1]);
        assert_eq!(queue.next_due_ns(), None);
    }
}
